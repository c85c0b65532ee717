use async_nats::jetstream::{
    consumer::{AckPolicy, PullConsumer},
    stream::RetentionPolicy,
};
use phlo_bus::{Bus, BusConfig, BusError, Queue};

use crate::on_both_backends;
use crate::support::{Backend, TestBus, test_config};

on_both_backends!(same_msg_id_is_stored_once);
async fn same_msg_id_is_stored_once(backend: Backend) {
    let t = TestBus::on(backend).await;
    let subject = t.bus.subject(Queue::Step);

    let first = t
        .bus
        .publish(&subject, "a", "1".into(), None)
        .await
        .unwrap();
    let again = t
        .bus
        .publish(&subject, "a", "other body".into(), None)
        .await
        .unwrap();
    let other = t
        .bus
        .publish(&subject, "b", "2".into(), None)
        .await
        .unwrap();

    assert!(!first.duplicate);
    assert!(
        again.duplicate,
        "the second publish of id `a` is a duplicate"
    );
    assert_eq!(
        again.sequence, first.sequence,
        "a duplicate reports the original sequence"
    );
    assert!(!other.duplicate);
    assert_eq!(other.sequence, first.sequence + 1);
    assert_eq!(t.stream_messages().await, 2);
}

#[tokio::test]
async fn replicas_connecting_at_once_share_one_stream_and_consumers() {
    let config = test_config();
    let (a, b) = tokio::join!(Bus::connect(config.clone()), Bus::connect(config.clone()));
    a.unwrap();
    let t = TestBus::with(config.clone()).await;
    drop(b.unwrap());

    let prefix = &config.prefix;
    assert_eq!(
        t.bus.stream_name(),
        format!("{}_WORK", prefix.to_uppercase())
    );
    let mut stream = t.js().get_stream(t.bus.stream_name()).await.unwrap();
    let info = stream.info().await.unwrap();
    assert_eq!(info.config.retention, RetentionPolicy::WorkQueue);
    assert_eq!(info.config.subjects, vec![format!("{prefix}.v1.>")]);

    for queue in Queue::ALL {
        let name = format!("{prefix}-{}", queue.name());
        let consumer: PullConsumer = stream.get_consumer(&name).await.unwrap();
        let config = &consumer.cached_info().config;
        assert_eq!(
            config.filter_subject,
            format!("{prefix}.v1.{}", queue.name())
        );
        assert_eq!(config.ack_policy, AckPolicy::Explicit);
        assert_eq!(config.ack_wait, BusConfig::default().ack_wait);
        assert_eq!(config.max_deliver, 20);
    }
}

#[tokio::test]
async fn a_changed_ack_wait_updates_the_consumer() {
    let config = test_config();
    let _first = TestBus::with(config.clone()).await;
    let ack_wait = std::time::Duration::from_secs(7);
    let t = TestBus::with(BusConfig { ack_wait, ..config }).await;

    let stream = t.js().get_stream(t.bus.stream_name()).await.unwrap();
    let name = Queue::Step.consumer_name(&t.bus.config().prefix);
    let consumer: PullConsumer = stream.get_consumer(&name).await.unwrap();
    assert_eq!(consumer.cached_info().config.ack_wait, ack_wait);
}

on_both_backends!(headers_reach_the_handler_with_the_msg_id);
async fn headers_reach_the_handler_with_the_msg_id(backend: Backend) {
    let t = TestBus::on(backend).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    );
    let subject = t.bus.subject(Queue::Http);
    t.bus
        .publish(&subject, "h1", "x".into(), Some(headers))
        .await
        .unwrap();

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let consuming = crate::support::Consuming::start(&t.bus, Queue::Http, 1, move |d| {
        let tx = tx.clone();
        async move {
            tx.send(d).unwrap();
            phlo_bus::Outcome::Ack
        }
    });
    let delivery = crate::support::recv(&mut rx, std::time::Duration::from_secs(5)).await;
    consuming.stop().await;

    let headers = delivery.headers.expect("headers");
    assert_eq!(headers.get("Nats-Msg-Id").map(|v| v.as_str()), Some("h1"));
    assert!(headers.get("traceparent").is_some());
    assert_eq!(delivery.subject, subject);
    assert_eq!(&delivery.payload[..], b"x");
}

#[tokio::test]
async fn invalid_prefix_is_refused_before_connecting() {
    let config = BusConfig {
        prefix: "has.dots".into(),
        ..test_config()
    };
    assert!(matches!(
        Bus::connect(config).await,
        Err(BusError::Config(_))
    ));
}
