//! W3C trace context crosses NATS: the consumer's span is a child of the publisher's.

use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceContextExt, TraceId, TracerProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use phlo_bus::{Outcome, Queue};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

use crate::on_both_backends;
use crate::support::{Backend, Consuming, TestBus, recv};

/// A subscriber that records finished spans in memory (thread-local: use a current-thread runtime).
fn in_memory() -> (
    InMemorySpanExporter,
    SdkTracerProvider,
    impl tracing::Subscriber,
) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    (exporter, provider, subscriber)
}

on_both_backends!(
    the_consumer_span_is_a_child_of_the_publisher_span,
    "current_thread"
);
async fn the_consumer_span_is_a_child_of_the_publisher_span(backend: Backend) {
    let (exporter, provider, subscriber) = in_memory();
    let _guard = tracing::subscriber::set_default(subscriber);
    let t = TestBus::on(backend).await;
    let subject = t.bus.subject(Queue::Step);

    let producer = tracing::info_span!("producer");
    let (trace_id, producer_id) = {
        let cx = producer.context();
        let sc = cx.span().span_context().clone();
        (sc.trace_id(), sc.span_id())
    };
    assert_ne!(trace_id, TraceId::INVALID);
    let headers = async {
        let headers = phlo_bus::trace::current_headers().expect("a traceparent inside a span");
        t.bus
            .publish(&subject, "traced-1", "x".into(), Some(headers.clone()))
            .await
            .unwrap();
        headers
    }
    .instrument(producer.clone())
    .await;
    assert_eq!(
        headers.get("traceparent").map(|v| v.as_str().to_owned()),
        Some(format!("00-{trace_id}-{producer_id}-01"))
    );
    drop(producer);

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let consuming = Consuming::start(&t.bus, Queue::Step, 1, move |_d| {
        let tx = tx.clone();
        async move {
            // Inside the handler, the current span is the consumer span, in the publisher's trace.
            let cx = tracing::Span::current().context();
            let sc = cx.span().span_context().clone();
            tx.send((sc.trace_id(), sc.span_id())).unwrap();
            Outcome::Ack
        }
    });
    let (handler_trace, handler_span) = recv(&mut rx, Duration::from_secs(5)).await;
    consuming.stop().await;
    assert_eq!(handler_trace, trace_id);

    let spans = exporter.get_finished_spans().unwrap();
    let consume = spans
        .iter()
        .find(|s| s.name == "phlo.consume")
        .expect("the consume span was exported");
    assert_eq!(consume.span_context.trace_id(), trace_id);
    assert_eq!(consume.parent_span_id, producer_id);
    assert!(consume.parent_span_is_remote);
    assert_eq!(consume.span_context.span_id(), handler_span);
    let producer = spans.iter().find(|s| s.name == "producer").unwrap();
    assert_eq!(producer.parent_span_id, SpanId::INVALID);
    provider.shutdown().unwrap();
}

on_both_backends!(
    without_a_traceparent_the_consumer_starts_a_new_trace,
    "current_thread"
);
async fn without_a_traceparent_the_consumer_starts_a_new_trace(backend: Backend) {
    let (exporter, provider, subscriber) = in_memory();
    let _guard = tracing::subscriber::set_default(subscriber);
    let t = TestBus::on(backend).await;
    assert!(
        phlo_bus::trace::current_headers().is_none(),
        "no span, no header"
    );
    t.publish(Queue::Step, "untraced-1", "x").await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let consuming = Consuming::start(&t.bus, Queue::Step, 1, move |_d| {
        let tx = tx.clone();
        async move {
            tx.send(()).unwrap();
            Outcome::Ack
        }
    });
    recv(&mut rx, Duration::from_secs(5)).await;
    consuming.stop().await;
    let spans = exporter.get_finished_spans().unwrap();
    let consume = spans.iter().find(|s| s.name == "phlo.consume").unwrap();
    assert_eq!(consume.parent_span_id, SpanId::INVALID);
    provider.shutdown().unwrap();
}
