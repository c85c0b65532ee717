//! Logs and traces of every service: one `tracing` subscriber with two layers, each with its own
//! filter, so that quieting the logs (`RUST_LOG=warn`) does not switch the spans of a trace off.
//!
//! - Logs: JSON when `PHLO_LOG_FORMAT=json` (production), readable text otherwise; filtered by
//!   `RUST_LOG` (default `info`).
//! - Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, spans
//!   are exported over OTLP/HTTP (protobuf), filtered by `PHLO_TRACE_FILTER` (default `info`: the
//!   request, message, step and callback-attempt spans). W3C trace context is the propagator.
//!
//! Export is the SDK's batch span processor: a dedicated thread that exports every
//! `OTEL_BSP_SCHEDULE_DELAY` ms (default 5000), or sooner when `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` spans
//! (default 512) are waiting, through the blocking reqwest client. That pairing is the one
//! opentelemetry_sdk 0.33 supports: the processor's thread has no Tokio runtime, so an async HTTP client
//! (`reqwest-client`, `hyper-client`) must not be enabled for `opentelemetry-otlp`. The system test
//! `traces` sees spans arrive while the services run.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How long the flush at exit may take. A collector that does not answer holds the exit up this long
/// after the drain (the deployments' termination grace leaves room for it).
const FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs logging and, when configured, trace export. Keep the returned guard until exit: dropping it
/// flushes the spans still buffered.
#[must_use = "dropping the guard shuts the trace exporter down"]
pub fn init_logging() -> Telemetry {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let (provider, otel_error) = match otlp_provider() {
        Ok(provider) => (provider, None),
        Err(e) => (None, Some(e)),
    };
    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    let logs = filter("RUST_LOG");
    // Logs go to stderr: stdout is a command's output (`phlo --output json dev` prints its one JSON
    // line there).
    layers.push(
        if std::env::var("PHLO_LOG_FORMAT").as_deref() == Ok("json") {
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr)
                .with_filter(logs)
                .boxed()
        } else {
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(logs)
                .boxed()
        },
    );
    if let Some(provider) = &provider {
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("phlo"))
                .with_filter(filter("PHLO_TRACE_FILTER"))
                .boxed(),
        );
    }
    // A second call in one process (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(layers).try_init();
    if let Some(e) = otel_error {
        tracing::warn!(error = %e, "OTLP trace export disabled");
    }
    Telemetry { provider }
}

/// The `EnvFilter` in the variable `name` (directives such as `info,phlo_bus=debug`), `info` when it is
/// unset or does not parse.
fn filter(name: &str) -> EnvFilter {
    EnvFilter::try_from_env(name).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The OTLP tracer provider, when an endpoint names a collector.
fn otlp_provider() -> Result<Option<SdkTracerProvider>, String> {
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|v| !v.trim().is_empty()));
    if !configured {
        return Ok(None);
    }
    // The builder reads the endpoint, headers, timeout and compression from the OTEL_EXPORTER_OTLP_*
    // variables, and the batch processor its OTEL_BSP_* ones.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| e.to_string())?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(Some(provider))
}

/// `OTEL_SERVICE_NAME`, else the binary's name (`phlo-gateway`, `phlo-worker`, ...).
fn service_name() -> String {
    std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        })
        .unwrap_or_else(|| "phlo".to_owned())
}

/// Flushes and stops the trace exporter when dropped.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown_with_timeout(FLUSH_TIMEOUT)
        {
            eprintln!("flushing traces failed: {e}");
        }
    }
}
