//! What every service binary shares: configuration from the environment, logging, the health
//! endpoints (`/healthz` live, `/readyz` ready when Postgres and NATS answer), the Prometheus
//! `/metrics` endpoint and the shutdown signal.

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod secret;

pub use secret::Secret;

use std::future::Future;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use phlo_bus::Bus;
use phlo_store::Pool;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Settings every service reads.
#[derive(Clone)]
pub struct CommonConfig {
    /// `DATABASE_URL`: the Postgres primary.
    pub database_url: String,
    /// `NATS_URL`; `memory:` is the in-process queue, which only `phlo serve` accepts.
    pub nats_url: String,
    /// `PHLO_NATS_PREFIX`: subject and stream prefix, so several installations can share a NATS.
    pub nats_prefix: String,
    /// `PHLO_DB_POOL`: connections per process.
    pub db_pool: u32,
    /// `PHLO_DB_POOL_MIN`: connections each process keeps open even when idle. Opening one costs
    /// Postgres a process; a burst that opens many at once stalls every commit meanwhile.
    pub db_pool_min: u32,
    /// `PHLO_MIGRATE`: apply migrations at start-up (safe with many replicas: an advisory lock serialises them).
    pub migrate: bool,
}

/// The URLs without their passwords.
impl std::fmt::Debug for CommonConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommonConfig")
            .field("database_url", &secret::redact_url(&self.database_url))
            .field("nats_url", &secret::redact_url(&self.nats_url))
            .field("nats_prefix", &self.nats_prefix)
            .field("db_pool", &self.db_pool)
            .field("db_pool_min", &self.db_pool_min)
            .field("migrate", &self.migrate)
            .finish()
    }
}

impl CommonConfig {
    pub fn from_env() -> Result<Self, String> {
        let db_pool = env_positive("PHLO_DB_POOL", 20, 10_000)?;
        let db_pool_min = env_parse("PHLO_DB_POOL_MIN", 0)?;
        check_pool(db_pool, db_pool_min)?;
        Ok(Self {
            database_url: env_or("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/phlo"),
            nats_url: env_or("NATS_URL", "nats://127.0.0.1:4222"),
            nats_prefix: env_or("PHLO_NATS_PREFIX", "phlo"),
            db_pool,
            db_pool_min,
            migrate: env_parse("PHLO_MIGRATE", true)?,
        })
    }
}

fn check_pool(max: u32, min: u32) -> Result<(), String> {
    if min > max {
        return Err(format!(
            "PHLO_DB_POOL_MIN={min} is more than PHLO_DB_POOL={max}: a pool keeps at most PHLO_DB_POOL connections"
        ));
    }
    Ok(())
}

/// Defaults a command sets for the settings the environment leaves unset (`phlo dev`: a SQLite
/// file, the in-process queue, the simulator as carrier). The environment still wins.
static DEFAULTS: OnceLock<std::sync::Mutex<std::collections::HashMap<String, String>>> =
    OnceLock::new();

pub fn set_default(name: &str, value: &str) {
    let mut defaults = DEFAULTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    defaults.insert(name.to_owned(), value.to_owned());
}

/// The setting `name`: the environment's value unless unset or empty, else the default a command
/// set ([`set_default`]), which may be empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| {
            let defaults = DEFAULTS.get()?.lock().unwrap_or_else(|e| e.into_inner());
            defaults.get(name).cloned()
        })
}

pub fn env_or(name: &str, default: &str) -> String {
    var(name).unwrap_or_else(|| default.to_owned())
}

/// Parses an environment variable, or returns the default when it is unset; a bad value is an error
/// naming the variable, so a typo stops the service at start-up instead of being ignored.
pub fn env_parse<T: FromStr>(name: &str, default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        Some(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|e| format!("{name}={v:?} is invalid: {e}")),
        _ => Ok(default),
    }
}

/// Like [`env_parse`], for a count or an interval that must be 1 to `max`: 0 would leave the service
/// doing nothing (a pool or a semaphore of none) or spinning (a poll every 0 ms), and far too much
/// overflows what it sizes (tokio's semaphores panic past 2^61 permits).
pub fn env_positive<T>(name: &str, default: T, max: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + Default + std::fmt::Display,
    T::Err: std::fmt::Display,
{
    let value = env_parse(name, default)?;
    if value <= T::default() || value > max {
        return Err(format!("{name}={value} is invalid: give 1 to {max}"));
    }
    Ok(value)
}

/// The most handlers or requests in flight a `*_CONCURRENCY` setting allows in one process.
pub const MAX_CONCURRENCY: usize = 100_000;

/// The longest duration a `*_SECS` setting takes: ten years. Far longer ones overflowed the clock
/// arithmetic they feed (a deadline = now + the setting).
pub const MAX_SECS: u64 = 10 * 365 * 24 * 3600;

pub fn env_secs(name: &str, default: u64) -> Result<Duration, String> {
    let secs = env_parse(name, default)?;
    if secs > MAX_SECS {
        return Err(format!(
            "{name}={secs} is invalid: at most {MAX_SECS} seconds (ten years)"
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// `PHLO_MAX_ACTIVE_RUNS`: runs one account may have active at once (more wait as `queued`). Read by
/// the gateway, which admits new runs, and the worker, which admits queued runs as others end: set it
/// to the same value on both.
pub fn max_active_runs(default: i64) -> Result<i64, String> {
    match env_parse("PHLO_MAX_ACTIVE_RUNS", default)? {
        n if n >= 0 => Ok(n),
        n => Err(format!(
            "PHLO_MAX_ACTIVE_RUNS={n} is invalid: give at least 1 active run per account, or 0 for no cap"
        )),
    }
}

/// The carrier from `PHLO_CARRIER_*`, shared by the gateway (signatures, live-call control) and workers.
pub fn carrier_config() -> Result<Option<phlo_carrier::PlivoConfig>, String> {
    let id = env_or("PHLO_CARRIER_AUTH_ID", "");
    let token = env_or("PHLO_CARRIER_AUTH_TOKEN", "");
    match (id.is_empty(), token.is_empty()) {
        (true, true) => Ok(None),
        (false, false) => {
            let mut config = phlo_carrier::PlivoConfig::new(id, token);
            config.base_url = env_or("PHLO_CARRIER_URL", &config.base_url);
            Ok(Some(config))
        }
        _ => {
            Err("set both PHLO_CARRIER_AUTH_ID and PHLO_CARRIER_AUTH_TOKEN, or neither".to_owned())
        }
    }
}

/// The carrier client, if one is configured.
pub fn carrier(
    config: Option<&phlo_carrier::PlivoConfig>,
) -> Result<Option<std::sync::Arc<dyn phlo_carrier::Carrier>>, phlo_carrier::CarrierError> {
    Ok(match config {
        Some(c) => Some(std::sync::Arc::new(phlo_carrier::PlivoCarrier::new(
            c.clone(),
        )?)),
        None => None,
    })
}

mod telemetry;

pub use telemetry::{Telemetry, init_logging};

/// A token cancelled on SIGTERM or Ctrl-C.
pub fn shutdown_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        t.cancel();
    });
    token
}

/// For `phlo serve` and `phlo dev`, which run the gateway, a worker and the callback service in this
/// one process: lets `NATS_URL=memory:` choose the in-process queue and `DATABASE_URL=sqlite://…` the
/// embedded store, which a standalone service refuses (what it published would never reach the
/// others; SQLite serialises writers only within a process).
pub fn allow_in_process_queue() {
    phlo_bus::allow_in_memory();
    phlo_store::db::allow_embedded();
}

#[derive(Clone)]
struct Health {
    pool: Pool,
    bus: Bus,
}

/// Runs the gateway, a worker and the callback service in one process (`phlo serve`, `phlo dev`):
/// whichever stops first (an error, or the shutdown signal) stops the others. The first error wins.
pub async fn run_together<E>(
    shutdown: &CancellationToken,
    gateway: impl Future<Output = Result<(), E>>,
    worker: impl Future<Output = Result<(), E>>,
    callback: impl Future<Output = Result<(), E>>,
) -> Result<(), E> {
    let stopping = |r: Result<(), E>| {
        shutdown.cancel();
        r
    };
    let (g, w, c) = tokio::join!(
        async { stopping(gateway.await) },
        async { stopping(worker.await) },
        async { stopping(callback.await) }
    );
    g.and(w).and(c)
}

/// Runs `work` to its end, but once `shutdown` is cancelled gives it at most `grace` more: the drain
/// deadline of SIGTERM. Returns `None` when the deadline cut it off (the caller logs what it released).
pub async fn drain<F: Future>(
    work: F,
    shutdown: &CancellationToken,
    grace: Duration,
) -> Option<F::Output> {
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        out = work => Some(out),
        () = deadline => None,
    }
}

/// At shutdown, once nothing consumes or publishes any more: flushes buffered acks and publishes and
/// closes the NATS connection, giving up after a second (NATS down must not hold the exit up; what
/// was not flushed is redelivered or relayed).
pub async fn close_bus(bus: &Bus) {
    match tokio::time::timeout(Duration::from_secs(1), bus.drain()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "closing the NATS connection"),
        Err(_) => tracing::warn!("closing the NATS connection timed out"),
    }
}

/// `/healthz` (the process answers), `/readyz` (Postgres and NATS answer) and `/metrics` (Prometheus).
pub fn health_routes(pool: Pool, bus: Bus) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(ready))
        .with_state(Health { pool, bus })
        .merge(metrics_routes())
}

/// Serves [`health_routes`] on `addr` until `shutdown`, in the background. An empty `addr` serves
/// nothing: `phlo dev` answers health on its one port.
pub async fn spawn_health(
    addr: &str,
    what: &'static str,
    pool: Pool,
    bus: Bus,
    shutdown: CancellationToken,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    if addr.is_empty() {
        return Ok(tokio::spawn(async {}));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "{what} health endpoints listening");
    let health = health_routes(pool, bus);
    Ok(tokio::spawn(async move {
        let served = axum::serve(listener, health)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "{what} health endpoints stopped");
        }
    }))
}

/// Buckets (seconds) of every latency histogram: steps take milliseconds, HTTP requests up to the
/// voice webhooks' patience, callback attempts up to their timeout.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's Prometheus recorder, installed as the `metrics` facade's global recorder on first
/// use (once per process, however many services it runs). Its upkeep runs every few seconds on the
/// current Tokio runtime.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = match builder.set_buckets(&LATENCY_BUCKETS) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "histogram buckets rejected; rendering summaries");
                    PrometheusBuilder::new()
                }
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %e, "a metrics recorder was already installed; /metrics stays empty");
            }
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let upkeep = handle.clone();
                rt.spawn(async move {
                    let mut every = tokio::time::interval(Duration::from_secs(5));
                    loop {
                        every.tick().await;
                        upkeep.run_upkeep();
                    }
                });
            }
            handle
        })
        .clone()
}

/// `/metrics`: everything recorded through the `metrics` facade in this process, in Prometheus' text
/// format. Installs the recorder if nothing did yet.
pub fn metrics_routes() -> Router {
    let handle = metrics_handle();
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    handle.render(),
                )
            }
        }),
    )
}

async fn ready(State(h): State<Health>) -> (StatusCode, Json<serde_json::Value>) {
    let db = tokio::time::timeout(Duration::from_secs(2), phlo_store::ping(&h.pool)).await;
    let db_ok = matches!(db, Ok(Ok(())));
    let nats_ok = h.bus.healthy();
    let status = if db_ok && nats_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(json!({ "postgres": db_ok, "nats": nats_ok })))
}
