//! What every service binary shares: configuration from the environment, logging, the health
//! endpoints (`/healthz` live, `/readyz` ready when Postgres and NATS answer) and the shutdown signal.

#![warn(clippy::unwrap_used, clippy::expect_used)]

use std::str::FromStr;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use phlo_bus::Bus;
use phlo_store::PgPool;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Settings every service reads.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// `DATABASE_URL`: the Postgres primary.
    pub database_url: String,
    /// `NATS_URL`.
    pub nats_url: String,
    /// `PHLO_NATS_PREFIX`: subject and stream prefix, so several installations can share a NATS.
    pub nats_prefix: String,
    /// `PHLO_DB_POOL`: connections per process.
    pub db_pool: u32,
    /// `PHLO_MIGRATE`: apply migrations at start-up (safe with many replicas: an advisory lock serialises them).
    pub migrate: bool,
}

impl CommonConfig {
    pub fn from_env() -> Result<Self, String> {
        Ok(Self {
            database_url: env_or("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/phlo"),
            nats_url: env_or("NATS_URL", "nats://127.0.0.1:4222"),
            nats_prefix: env_or("PHLO_NATS_PREFIX", "phlo"),
            db_pool: env_parse("PHLO_DB_POOL", 20)?,
            migrate: env_parse("PHLO_MIGRATE", true)?,
        })
    }
}

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Parses an environment variable, or returns the default when it is unset; a bad value is an error
/// naming the variable, so a typo stops the service at start-up instead of being ignored.
pub fn env_parse<T: FromStr>(name: &str, default: T) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .map_err(|e| format!("{name}={v:?} is invalid: {e}")),
        _ => Ok(default),
    }
}

pub fn env_secs(name: &str, default: u64) -> Result<Duration, String> {
    env_parse(name, default).map(Duration::from_secs)
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

/// JSON logs when `PHLO_LOG_FORMAT=json` (production), readable text otherwise; level from `RUST_LOG`.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if std::env::var("PHLO_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

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

#[derive(Clone)]
struct Health {
    pool: PgPool,
    bus: Bus,
}

/// `/healthz` (the process answers) and `/readyz` (Postgres and NATS answer).
pub fn health_routes(pool: PgPool, bus: Bus) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(ready))
        .with_state(Health { pool, bus })
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
