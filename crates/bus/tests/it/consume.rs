use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use phlo_bus::{BusError, Delivery, Outcome, Queue};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::on_both_backends;
use crate::support::{Backend, Consuming, TestBus, nothing_for, recv};

const SOON: Duration = Duration::from_secs(5);

/// A handler that reports every delivery and answers `outcome(&delivery)`.
fn reporting(
    outcome: impl Fn(&Delivery) -> Outcome + Clone + Send + Sync + 'static,
) -> (
    impl Fn(Delivery) -> std::future::Ready<Outcome> + Clone + Send + 'static,
    mpsc::UnboundedReceiver<(Delivery, Instant)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = move |d: Delivery| {
        let result = outcome(&d);
        let _ = tx.send((d, Instant::now()));
        std::future::ready(result)
    };
    (handler, rx)
}

on_both_backends!(acked_messages_leave_the_stream_and_queues_stay_apart);
async fn acked_messages_leave_the_stream_and_queues_stay_apart(backend: Backend) {
    let t = TestBus::on(backend).await;
    for i in 0..5 {
        t.publish(Queue::Step, &format!("s{i}"), &i.to_string())
            .await;
    }
    t.publish(Queue::Http, "h", "for the http queue").await;

    let (handler, mut rx) = reporting(|_| Outcome::Ack);
    let consuming = Consuming::start(&t.bus, Queue::Step, 4, handler);
    let mut payloads = Vec::new();
    for _ in 0..5 {
        let (d, _) = recv(&mut rx, SOON).await;
        assert_eq!(d.delivered, 1);
        assert_eq!(d.subject, t.bus.subject(Queue::Step));
        payloads.push(String::from_utf8(d.payload.to_vec()).unwrap());
    }
    payloads.sort();
    assert_eq!(payloads, ["0", "1", "2", "3", "4"]);

    // Work-queue retention deletes acked messages; only the http one is left.
    assert!(t.wait_for_stream_messages(1).await);
    consuming.stop().await;
    assert!(rx.try_recv().is_err(), "nothing delivered twice");
}

on_both_backends!(retry_redelivers_after_the_delay);
async fn retry_redelivers_after_the_delay(backend: Backend) {
    let t = TestBus::on(backend).await;
    t.publish(Queue::Step, "r", "again").await;

    let (handler, mut rx) = reporting(|d| match d.delivered {
        1 => Outcome::Retry(Duration::from_secs(1)),
        _ => Outcome::Ack,
    });
    let consuming = Consuming::start(&t.bus, Queue::Step, 2, handler);
    let (first, at_first) = recv(&mut rx, SOON).await;
    let (second, at_second) = recv(&mut rx, SOON).await;

    assert_eq!((first.delivered, second.delivered), (1, 2));
    assert_eq!(first.stream_sequence, second.stream_sequence);
    let gap = at_second - at_first;
    assert!(
        gap >= Duration::from_millis(900),
        "redelivered after {gap:?}"
    );
    assert!(t.wait_for_stream_messages(0).await);
    consuming.stop().await;
}

on_both_backends!(term_is_never_redelivered);
async fn term_is_never_redelivered(backend: Backend) {
    let t = TestBus::with_ack_wait(backend, Duration::from_secs(1)).await;
    t.publish(Queue::Step, "t", "poison").await;

    let (handler, mut rx) = reporting(|_| Outcome::Term("undecodable".into()));
    let consuming = Consuming::start(&t.bus, Queue::Step, 2, handler);
    recv(&mut rx, SOON).await;

    // Longer than ack_wait: an un-terminated message would have come back by now.
    assert!(nothing_for(&mut rx, Duration::from_millis(2500)).await);
    assert!(
        t.wait_for_stream_messages(0).await,
        "terminated messages leave a work queue"
    );
    consuming.stop().await;
}

on_both_backends!(never_more_than_max_in_flight_handlers);
async fn never_more_than_max_in_flight_handlers(backend: Backend) {
    const LIMIT: usize = 3;
    let t = TestBus::on(backend).await;
    for i in 0..12 {
        t.publish(Queue::Step, &format!("c{i}"), "work").await;
    }

    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = {
        let (running, most) = (running.clone(), most.clone());
        move |_d: Delivery| {
            let (running, most, tx) = (running.clone(), most.clone(), tx.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                tx.send(()).unwrap();
                Outcome::Ack
            }
        }
    };
    let consuming = Consuming::start(&t.bus, Queue::Step, LIMIT, handler);
    for _ in 0..12 {
        recv(&mut rx, SOON).await;
    }
    consuming.stop().await;

    let most = most.load(Ordering::SeqCst);
    assert!(most <= LIMIT, "{most} handlers ran at once");
    assert!(most >= 2, "handlers ran concurrently ({most})");
    assert!(t.wait_for_stream_messages(0).await);
}

on_both_backends!(replicas_share_the_queue);
async fn replicas_share_the_queue(backend: Backend) {
    let t = TestBus::on(backend).await;
    for i in 0..6 {
        t.publish(Queue::Step, &format!("m{i}"), "work").await;
    }
    // Each replica takes one message at a time, so the other gets the rest meanwhile.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let replica = |name: &'static str| {
        let tx = tx.clone();
        move |_d: Delivery| {
            let tx = tx.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                tx.send(name).unwrap();
                Outcome::Ack
            }
        }
    };
    let a = Consuming::start(&t.bus, Queue::Step, 1, replica("a"));
    let b = Consuming::start(&t.bus, Queue::Step, 1, replica("b"));
    let mut by = Vec::new();
    for _ in 0..6 {
        by.push(recv(&mut rx, SOON).await);
    }
    a.stop().await;
    b.stop().await;
    assert!(by.contains(&"a") && by.contains(&"b"), "{by:?}");
}

on_both_backends!(progress_acks_keep_a_slow_handler_from_redelivery);
async fn progress_acks_keep_a_slow_handler_from_redelivery(backend: Backend) {
    let t = TestBus::with_ack_wait(backend, Duration::from_secs(2)).await;
    t.publish(Queue::Step, "slow", "takes a while").await;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = move |d: Delivery| {
        let tx = tx.clone();
        async move {
            tx.send(d.delivered).unwrap();
            // More than twice ack_wait.
            tokio::time::sleep(Duration::from_millis(4500)).await;
            Outcome::Ack
        }
    };
    let consuming = Consuming::start(&t.bus, Queue::Step, 4, handler);
    assert_eq!(recv(&mut rx, SOON).await, 1);
    assert_eq!(
        t.stream_messages().await,
        1,
        "still in the queue while running"
    );
    assert!(
        nothing_for(&mut rx, Duration::from_secs(5)).await,
        "redelivered while the first handler was still running"
    );
    assert!(t.wait_for_stream_messages(0).await);
    consuming.stop().await;
}

on_both_backends!(shutdown_waits_for_running_handlers_and_their_acks);
async fn shutdown_waits_for_running_handlers_and_their_acks(backend: Backend) {
    let t = TestBus::on(backend).await;
    t.publish(Queue::Step, "x", "in flight at shutdown").await;

    let finished = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = {
        let finished = finished.clone();
        move |_d: Delivery| {
            let (finished, tx) = (finished.clone(), tx.clone());
            async move {
                tx.send(()).unwrap();
                tokio::time::sleep(Duration::from_millis(500)).await;
                finished.store(true, Ordering::SeqCst);
                Outcome::Ack
            }
        }
    };
    let consuming = Consuming::start(&t.bus, Queue::Step, 2, handler);
    recv(&mut rx, SOON).await;
    consuming.shutdown();
    consuming.join().await;

    assert!(
        finished.load(Ordering::SeqCst),
        "consume returned before its handler finished"
    );
    assert!(
        t.wait_for_stream_messages(0).await,
        "the final ack was flushed"
    );
}

on_both_backends!(zero_max_in_flight_is_refused);
async fn zero_max_in_flight_is_refused(backend: Backend) {
    let t = TestBus::on(backend).await;
    let result = t
        .bus
        .consume(Queue::Step, 0, CancellationToken::new(), |_d| async {
            Outcome::Ack
        })
        .await;
    assert!(matches!(result, Err(BusError::Config(_))));
}
