//! W3C trace context (`traceparent`) carried in NATS headers, so one run is one trace across
//! processes. Without an OpenTelemetry layer installed the current span has no trace context and
//! nothing is added.

use std::collections::HashMap;

use async_nats::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub const TRACEPARENT: &str = "traceparent";

/// The current span's `traceparent`, if it belongs to a sampled or recorded trace.
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Headers carrying `traceparent`, or `None` when there is none.
pub fn traceparent_headers(traceparent: Option<&str>) -> Option<HeaderMap> {
    let traceparent = traceparent?;
    let mut headers = HeaderMap::new();
    headers.insert(TRACEPARENT, traceparent);
    Some(headers)
}

/// The current span's context as NATS headers (`None` outside a trace).
pub fn current_headers() -> Option<HeaderMap> {
    traceparent_headers(current_traceparent().as_deref())
}

/// Makes the trace named by a `traceparent` (an HTTP or NATS header) the parent of `span`; without
/// one, or with an invalid one, `span` starts a new trace.
pub fn set_remote_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}
