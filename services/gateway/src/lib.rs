//! The gateway: Plivo's PHLO API (the official SDKs work unchanged against it), the management API
//! (accounts, PHLOs and revisions, runs, counters) and, later, the carrier webhooks. Stateless: any
//! number of replicas behind a load balancer.

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod error;
mod extract;
pub mod limits;
mod routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use phlo_runtime::{Runtime, RuntimeConfig};
use phlo_service::CommonConfig;
use phlo_store::Pool;
use tokio_util::sync::CancellationToken;
use tower::Layer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};

pub use auth::{hash_token, new_auth_id, new_auth_token};

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// `PHLO_GATEWAY_ADDR`: where to listen.
    pub addr: String,
    /// `PHLO_ADMIN_TOKEN`: the operator's bearer token for `POST /v1/accounts`; unset disables it.
    pub admin_token: Option<phlo_service::Secret>,
    /// `PHLO_MAX_BODY_BYTES`: largest request body (PHLO definitions included).
    pub max_body_bytes: usize,
    /// `PHLO_PUBLIC_URL`: this gateway's URL as the carrier reaches it (callback URLs, signatures).
    pub public_url: String,
    /// `PHLO_CARRIER_AUTH_TOKEN`: when set, carrier webhooks must carry a valid `X-Plivo-Signature-V3`.
    pub carrier_auth_token: Option<phlo_service::Secret>,
    /// `PHLO_VOICE_PATIENCE_MS`: how long a voice webhook waits for the call's next XML before answering
    /// with a keep-alive (Wait + Redirect). Carriers give up after a few seconds.
    pub voice_patience: std::time::Duration,
    /// `PHLO_WEBHOOK_SECRET_GRACE_SECS`: after a rotation, how long the previous webhook secret keeps
    /// signing callbacks (a second signature) so receivers can switch without losing any.
    pub webhook_secret_grace: std::time::Duration,
    /// `PHLO_SHUTDOWN_GRACE_SECS`: after SIGTERM the gateway stops accepting connections and gives
    /// requests in flight this long to finish (default 20).
    pub shutdown_grace: std::time::Duration,
    /// `PHLO_AUTH_CACHE_SECS`: how long a replica trusts credentials it has checked (default 60; 0 checks
    /// every request against Postgres), see [`auth::AuthCache`].
    pub auth_cache: std::time::Duration,
    /// Per-account rate limits (`PHLO_RATE_*`), see [`limits`].
    pub rate_limits: limits::RateConfig,
    /// `PHLO_GATEWAY_MAX_IN_FLIGHT`: API requests this replica works on at once; past it, 503 with
    /// `Retry-After` (see `limits::shed`). Carrier webhooks are not counted and never refused.
    pub max_in_flight: usize,
    /// `PHLO_MAX_ACTIVE_RUNS`: runs one account may have active; more are started `queued`.
    pub max_active_runs: i64,
    /// `PHLO_SECRET_KEY` (or `PHLO_SECRET_KEY_FILE`), `PHLO_SECRET_KEY_PREVIOUS`: the keys webhook signing
    /// secrets are sealed with at rest; required (see `phlo_store::sealing`).
    pub secret_keys: phlo_store::sealing::Keyring,
    /// The carrier (`PHLO_CARRIER_*`): the gateway drives live calls (the multiparty trigger API)
    /// through the same carrier as workers.
    pub carrier: Option<phlo_carrier::PlivoConfig>,
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        Ok(Self {
            common: CommonConfig::from_env()?,
            addr: phlo_service::env_or("PHLO_GATEWAY_ADDR", "0.0.0.0:8080"),
            admin_token: phlo_service::Secret::from_env("PHLO_ADMIN_TOKEN"),
            max_body_bytes: phlo_service::env_parse("PHLO_MAX_BODY_BYTES", 1 << 20)?,
            public_url: phlo_service::env_or("PHLO_PUBLIC_URL", "http://127.0.0.1:8080"),
            carrier_auth_token: phlo_service::Secret::from_env("PHLO_CARRIER_AUTH_TOKEN"),
            voice_patience: std::time::Duration::from_millis(phlo_service::env_parse(
                "PHLO_VOICE_PATIENCE_MS",
                3000,
            )?),
            webhook_secret_grace: phlo_service::env_secs("PHLO_WEBHOOK_SECRET_GRACE_SECS", 86_400)?,
            shutdown_grace: phlo_service::env_secs("PHLO_SHUTDOWN_GRACE_SECS", 20)?,
            auth_cache: phlo_service::env_secs("PHLO_AUTH_CACHE_SECS", 60)?,
            rate_limits: limits::RateConfig::from_env()?,
            max_in_flight: phlo_service::env_positive(
                "PHLO_GATEWAY_MAX_IN_FLIGHT",
                2048,
                phlo_service::MAX_CONCURRENCY,
            )?,
            max_active_runs: phlo_service::max_active_runs(
                RuntimeConfig::default().max_active_runs,
            )?,
            secret_keys: phlo_store::sealing::Keyring::from_settings(phlo_service::var)
                .map_err(|e| e.to_string())?,
            carrier: phlo_service::carrier_config()?,
        })
    }
}

#[derive(Clone)]
pub struct AppState {
    pub runtime: Runtime,
    pub pool: Pool,
    pub config: Arc<Config>,
    pub limits: Arc<limits::RateLimiter>,
    pub auth: Arc<auth::AuthCache>,
    /// One permit per API request in flight (`Config::max_in_flight`).
    pub in_flight: Arc<tokio::sync::Semaphore>,
}

/// The whole API. Trailing slashes are trimmed before routing: the SDKs disagree about them.
pub fn app(state: AppState) -> NormalizePath<Router> {
    app_with(state, Router::new())
}

/// The API and `extra` routes on the same port (`phlo dev` serves the carrier simulator beside it).
pub fn app_with(state: AppState, extra: Router) -> NormalizePath<Router> {
    let health = phlo_service::health_routes(state.pool.clone(), state.runtime.bus().clone());
    let limit = state.config.max_body_bytes;
    let router = routes::router(&state)
        .with_state(state)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(extract::limit_headers))
        .merge(health)
        .merge(extra)
        .layer(axum::middleware::from_fn(http_metrics))
        // A bug must cost one request a 500, never the process.
        .layer(CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                axum::response::IntoResponse::into_response(error::ApiError::internal(
                    "a handler panicked",
                ))
            },
        ));
    NormalizePathLayer::trim_trailing_slash().layer(router)
}

/// `phlo_http_request_duration_seconds{method, route, status}`: every request's latency by route
/// template (`/v1/account/{auth_id}/phlo/{phlo_id}`, never the ids themselves), method and status.
/// Requests no route matched count under `route="unmatched"`, so scanners cannot grow the label set.
async fn http_metrics(
    route: Option<axum::extract::MatchedPath>,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = match req.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    let route = route.map_or_else(|| "unmatched".to_owned(), |r| r.as_str().to_owned());
    // One span per request, continuing the caller's trace when it sent a W3C `traceparent`.
    let span = tracing::info_span!("http.request", http.method = method, http.route = %route);
    let traceparent = req
        .headers()
        .get(phlo_bus::trace::TRACEPARENT)
        .and_then(|v| v.to_str().ok());
    phlo_bus::trace::set_remote_parent(&span, traceparent);
    let response = tracing::Instrument::instrument(next.run(req), span).await;
    metrics::histogram!(
        "phlo_http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => response.status().as_u16().to_string(),
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// Connects to Postgres and NATS, migrates if configured, and serves until `shutdown`.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with(config, listener, Router::new(), shutdown).await
}

/// [`run`], serving `extra` routes beside the API.
pub async fn run_with(
    config: Config,
    listener: tokio::net::TcpListener,
    extra: Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let pool = phlo_store::connect(
        &config.common.database_url,
        config.common.db_pool,
        config.common.db_pool_min,
    )
    .await?;
    if config.common.migrate {
        phlo_store::migrate(&pool).await?;
    }
    // Before serving: secrets from before migration 0007, or under a rotated-out key, are sealed anew.
    phlo_store::callbacks::seal_stored_secrets(&pool, &config.secret_keys).await?;
    let bus = phlo_bus::Bus::connect(phlo_bus::BusConfig {
        url: config.common.nats_url.clone(),
        prefix: config.common.nats_prefix.clone(),
        ..Default::default()
    })
    .await?;
    let egress = phlo_egress::Egress::new(phlo_egress::EgressConfig::default())?;
    let runtime_config = RuntimeConfig {
        public_url: config.public_url.clone(),
        max_active_runs: config.max_active_runs,
        ..RuntimeConfig::default()
    };
    let carrier = phlo_service::carrier(config.carrier.as_ref())?;
    let runtime = Runtime::new(pool.clone(), bus.clone(), egress, runtime_config, carrier);
    let grace = config.shutdown_grace;
    let state = AppState {
        runtime,
        pool,
        limits: Arc::new(limits::RateLimiter::new(config.rate_limits.clone())),
        auth: Arc::new(auth::AuthCache::new(config.auth_cache)),
        in_flight: Arc::new(tokio::sync::Semaphore::new(config.max_in_flight)),
        config: Arc::new(config),
    };
    let stop = shutdown.clone();
    let serve = axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service(app_with(state, extra)),
    )
    .with_graceful_shutdown(async move { stop.cancelled().await })
    .into_future();
    match phlo_service::drain(serve, &shutdown, grace).await {
        Some(served) => served?,
        None => tracing::warn!(?grace, "requests outlived the shutdown grace; closing them"),
    }
    // Runs answered just before the signal publish their first step in the background: flush it.
    phlo_service::close_bus(&bus).await;
    Ok(())
}
