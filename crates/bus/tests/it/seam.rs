//! Delivery rules both backends must share beyond the basics (max deliveries, release at the drain
//! deadline, a panicking handler, wake-ups), and the in-process queue's own rules.

use std::time::Duration;

use phlo_bus::{Bus, BusConfig, BusError, Delivery, MEMORY_URL, Outcome, Queue};
use tokio::sync::mpsc;

use crate::on_both_backends;
use crate::support::{Backend, Consuming, TestBus, nothing_for, recv, test_config};

const SOON: Duration = Duration::from_secs(5);

fn reporting_deliveries(
    outcome: Outcome,
) -> (
    impl Fn(Delivery) -> std::future::Ready<Outcome> + Clone + Send + 'static,
    mpsc::UnboundedReceiver<i64>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = move |d: Delivery| {
        let _ = tx.send(d.delivered);
        std::future::ready(outcome.clone())
    };
    (handler, rx)
}

on_both_backends!(retries_stop_at_max_deliver);
async fn retries_stop_at_max_deliver(backend: Backend) {
    let t = TestBus::with_on(
        backend,
        BusConfig {
            max_deliver: 3,
            ..test_config()
        },
    )
    .await;
    t.publish(Queue::Step, "m", "always failing").await;

    let (handler, mut rx) = reporting_deliveries(Outcome::Retry(Duration::from_millis(100)));
    let consuming = Consuming::start(&t.bus, Queue::Step, 2, handler);
    for expected in 1..=3 {
        assert_eq!(recv(&mut rx, SOON).await, expected);
    }
    assert!(
        nothing_for(&mut rx, Duration::from_secs(1)).await,
        "delivered more than max_deliver times"
    );
    consuming.stop().await;
}

on_both_backends!(a_handler_past_the_drain_grace_is_released_to_the_next_consumer);
async fn a_handler_past_the_drain_grace_is_released_to_the_next_consumer(backend: Backend) {
    let t = TestBus::with_on(
        backend,
        BusConfig {
            drain_grace: Duration::from_millis(300),
            ..test_config()
        },
    )
    .await;
    t.publish(Queue::Http, "slow", "outlives the grace").await;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let stuck = {
        let tx = tx.clone();
        move |d: Delivery| {
            let tx = tx.clone();
            async move {
                tx.send(("stuck", d.delivered)).unwrap();
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Outcome::Ack
            }
        }
    };
    let first = Consuming::start(&t.bus, Queue::Http, 1, stuck);
    assert_eq!(recv(&mut rx, SOON).await, ("stuck", 1));
    first.stop().await;

    let next = Consuming::start(&t.bus, Queue::Http, 1, move |d: Delivery| {
        let tx = tx.clone();
        async move {
            tx.send(("next", d.delivered)).unwrap();
            Outcome::Ack
        }
    });
    assert_eq!(recv(&mut rx, SOON).await, ("next", 2));
    assert!(t.wait_for_stream_messages(0).await);
    next.stop().await;
}

on_both_backends!(an_undecodable_message_waits_for_a_replica_that_knows_it);
/// A rolling upgrade: an older replica cannot decode a newer release's message and gives it back
/// (after a pause) instead of dropping it; a replica of the newer release then takes it.
async fn an_undecodable_message_waits_for_a_replica_that_knows_it(backend: Backend) {
    let t = TestBus::on(backend).await;
    t.publish(Queue::Step, "new", r#"{"kind":"from_a_newer_release"}"#)
        .await;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let older = {
        let tx = tx.clone();
        move |d: Delivery| {
            tx.send(("older", d.delivered)).unwrap();
            std::future::ready(Outcome::undecodable(&d, "step", "unknown variant"))
        }
    };
    let first = Consuming::start(&t.bus, Queue::Step, 1, older);
    assert_eq!(recv(&mut rx, SOON).await, ("older", 1));
    first.stop().await;

    let newer = Consuming::start(&t.bus, Queue::Step, 1, move |d: Delivery| {
        tx.send(("newer", d.delivered)).unwrap();
        std::future::ready(Outcome::Ack)
    });
    // After the pause the older replica asked for (10 s).
    assert_eq!(recv(&mut rx, Duration::from_secs(30)).await, ("newer", 2));
    assert!(t.wait_for_stream_messages(0).await);
    newer.stop().await;
}

on_both_backends!(a_panicking_handler_gets_its_message_redelivered);
async fn a_panicking_handler_gets_its_message_redelivered(backend: Backend) {
    let t = TestBus::with_ack_wait(backend, Duration::from_secs(1)).await;
    t.publish(Queue::Step, "p", "panics once").await;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let consuming = Consuming::start(&t.bus, Queue::Step, 1, move |d: Delivery| {
        let tx = tx.clone();
        async move {
            tx.send(d.delivered).unwrap();
            assert!(d.delivered > 1, "a handler bug on the first delivery");
            Outcome::Ack
        }
    });
    assert_eq!(recv(&mut rx, SOON).await, 1);
    assert_eq!(recv(&mut rx, SOON).await, 2);
    assert!(t.wait_for_stream_messages(0).await);
    consuming.stop().await;
}

on_both_backends!(notify_wakes_subscribers_of_that_subject_only);
async fn notify_wakes_subscribers_of_that_subject_only(backend: Backend) {
    let t = TestBus::on(backend).await;
    let (ours, other) = (t.bus.call_subject("call-1"), t.bus.call_subject("call-2"));
    let mut sub = t.bus.subscribe(&ours).await.unwrap();
    let mut other_sub = t.bus.subscribe(&other).await.unwrap();
    // Core NATS subscriptions become active once the server has seen them.
    tokio::time::sleep(Duration::from_millis(100)).await;

    t.bus.notify(&ours).await;
    assert_eq!(tokio::time::timeout(SOON, sub.next()).await, Ok(Some(())));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), other_sub.next())
            .await
            .is_err(),
        "a wake-up for another call"
    );
}

#[tokio::test]
async fn the_in_process_queue_is_refused_unless_the_process_runs_every_service() {
    // No test in this binary calls `allow_in_memory`, so the refusal holds here.
    let config = BusConfig {
        url: MEMORY_URL.into(),
        ..test_config()
    };
    let err = Bus::connect(config).await.expect_err("refused");
    assert!(matches!(err, BusError::Config(_)));
    assert!(err.to_string().contains("phlo serve"), "{err}");
}

#[tokio::test]
async fn the_in_process_queue_refuses_subjects_no_queue_takes() {
    let t = TestBus::on(Backend::Memory).await;
    let err = t
        .bus
        .publish("elsewhere.v1.step", "x", "x".into(), None)
        .await
        .expect_err("refused");
    assert!(matches!(err, BusError::UnknownSubject { .. }), "{err}");
}

#[tokio::test]
async fn buses_of_one_process_with_one_prefix_share_the_in_process_queue() {
    let config = test_config();
    let gateway = Bus::in_memory(config.clone()).unwrap();
    let worker = Bus::in_memory(config).unwrap();
    let other = Bus::in_memory(test_config()).unwrap();
    let subject = gateway.subject(Queue::Step);
    gateway
        .publish(&subject, "shared", "x".into(), None)
        .await
        .unwrap();
    assert_eq!(worker.held_in_memory(), Some(1));
    assert_eq!(other.held_in_memory(), Some(0));

    let (tx, mut rx) = mpsc::unbounded_channel();
    let consuming = Consuming::start(&worker, Queue::Step, 1, move |d: Delivery| {
        let tx = tx.clone();
        async move {
            tx.send(d.payload).unwrap();
            Outcome::Ack
        }
    });
    assert_eq!(&recv(&mut rx, SOON).await[..], b"x");
    consuming.stop().await;
    assert_eq!(gateway.held_in_memory(), Some(0));
}

#[tokio::test]
async fn the_in_process_queue_is_first_in_first_out() {
    let t = TestBus::on(Backend::Memory).await;
    for i in 0..20 {
        t.publish(Queue::Callback, &format!("f{i}"), &i.to_string())
            .await;
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let consuming = Consuming::start(&t.bus, Queue::Callback, 1, move |d: Delivery| {
        let tx = tx.clone();
        async move {
            tx.send(String::from_utf8(d.payload.to_vec()).unwrap())
                .unwrap();
            Outcome::Ack
        }
    });
    for i in 0..20 {
        assert_eq!(recv(&mut rx, SOON).await, i.to_string());
    }
    consuming.stop().await;
}
