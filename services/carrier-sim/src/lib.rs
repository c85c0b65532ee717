//! A carrier simulator. It speaks Plivo's REST API (Call, Message, multiparty call and conference
//! member control) and drives Plivo-style signed webhooks into an application, acting out every
//! call with scripted parties, so the runner's voice and SMS components run end to end in tests,
//! demos and `dev` mode with no real carrier.
//!
//! It is an independent implementation of the carrier side: it shares no code with the runner's
//! carrier adapter or XML builder, so it really tests the XML the runner writes.
//!
//! What it must not do: reach a real network, or let one misbehaving application (slow, down,
//! invalid XML) stall or crash anything but that application's own calls.

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod api_conference;
mod api_mpc;
mod body;
mod call_store;
mod calls;
mod control;
mod dial;
mod error;
mod events;
mod input;
mod lifecycle;
mod messages;
mod outbound;
mod record;
mod ringing;
mod room_exec;
mod rooms;
mod scripts;
mod session;
pub mod signature;
mod webhooks;
mod xml;
mod xml_exec;

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio_util::sync::CancellationToken;

pub use scripts::{Answer, Script, SmsOutcome};

/// The simulator's settings, from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// `SIM_ADDR`: where to listen.
    pub addr: String,
    /// `SIM_AUTH_ID`: the account id the REST API accepts (Plivo's shape: `MA` + 18 characters).
    pub auth_id: String,
    /// `SIM_AUTH_TOKEN`: the REST API password and the webhook signing key.
    pub auth_token: String,
    /// `SIM_TIME_SCALE`: every simulated duration (ringing, speech, waits, timeouts, talk) is
    /// multiplied by this; tests use e.g. 0.02 to run a minute-long call in a second.
    pub time_scale: f64,
    /// `SIM_WEBHOOK_TIMEOUT_SECS`: real seconds an application gets to answer a webhook.
    pub webhook_timeout: Duration,
    /// `SIM_MAX_RECORDS`: calls, messages, webhooks, rooms and scripts kept (oldest dropped).
    pub max_records: usize,
    /// `SIM_PUBLIC_URL`: base of the recording URLs the simulator reports.
    pub public_url: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: "0.0.0.0:8070".to_owned(),
            auth_id: "MASIMULATORACCOUNT01".to_owned(),
            auth_token: "sim-token".to_owned(),
            time_scale: 1.0,
            webhook_timeout: Duration::from_secs(10),
            max_records: 10_000,
            public_url: "http://sim.local".to_owned(),
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        use phlo_service::{env_or, env_parse};
        let d = Self::default();
        let config = Self {
            addr: env_or("SIM_ADDR", &d.addr),
            auth_id: env_or("SIM_AUTH_ID", &d.auth_id),
            auth_token: env_or("SIM_AUTH_TOKEN", &d.auth_token),
            time_scale: env_parse("SIM_TIME_SCALE", d.time_scale)?,
            webhook_timeout: Duration::try_from_secs_f64(env_parse(
                "SIM_WEBHOOK_TIMEOUT_SECS",
                10.0,
            )?)
            .map_err(|e| format!("SIM_WEBHOOK_TIMEOUT_SECS is invalid: {e}"))?,
            max_records: env_parse("SIM_MAX_RECORDS", d.max_records)?,
            public_url: env_or("SIM_PUBLIC_URL", &d.public_url),
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            return Err(format!(
                "SIM_TIME_SCALE={} must be a positive number",
                self.time_scale
            ));
        }
        if self.auth_id.is_empty() || self.auth_token.is_empty() {
            return Err("SIM_AUTH_ID and SIM_AUTH_TOKEN must not be empty".to_owned());
        }
        if self.webhook_timeout.is_zero() {
            return Err("SIM_WEBHOOK_TIMEOUT_SECS must be positive".to_owned());
        }
        if self.max_records == 0 {
            return Err("SIM_MAX_RECORDS must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// The simulator's whole state, shared by the HTTP handlers and the tasks acting out calls.
#[derive(Clone)]
pub struct Sim(Arc<SimInner>);

pub struct SimInner {
    pub config: Config,
    scripts: scripts::Scripts,
    calls: calls::Calls,
    rooms: rooms::Rooms,
    messages: messages::Messages,
    webhooks: webhooks::Webhooks,
}

impl Deref for Sim {
    type Target = SimInner;
    fn deref(&self) -> &SimInner {
        &self.0
    }
}

impl Sim {
    pub fn new(config: Config) -> anyhow::Result<Self> {
        config.validate().map_err(anyhow::Error::msg)?;
        let cap = config.max_records;
        let webhooks = webhooks::Webhooks::new(&config.auth_token, config.webhook_timeout, cap)?;
        Ok(Self(Arc::new(SimInner {
            scripts: scripts::Scripts::new(cap),
            calls: calls::Calls::new(cap),
            rooms: rooms::Rooms::new(cap),
            messages: messages::Messages::new(cap),
            webhooks,
            config,
        })))
    }

    /// Real time for a simulated duration; negative or absurd values are clamped, never a panic.
    pub fn scaled(&self, secs: f64) -> Duration {
        let real = secs * self.config.time_scale;
        if real.is_nan() || real <= 0.0 {
            return Duration::ZERO;
        }
        // A day of real time stands for "forever" in a simulation.
        Duration::try_from_secs_f64(real.min(86_400.0)).unwrap_or(Duration::ZERO)
    }

    pub async fn sleep(&self, secs: f64) {
        tokio::time::sleep(self.scaled(secs)).await;
    }

    /// Sends a webhook in the background: for notifications whose reply changes nothing.
    pub fn fire(&self, fetch: webhooks::Fetch) {
        let sim = self.clone();
        tokio::spawn(async move {
            let _ = sim.webhooks.send(&fetch).await;
        });
    }
}

/// Every route: the Plivo-compatible REST API under `/v1`, the control API under `/sim`, `/healthz`.
pub fn app(sim: Sim) -> Router {
    Router::new()
        .merge(api::routes(sim.clone()))
        .merge(control::routes())
        .route(
            "/healthz",
            axum::routing::get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
        )
        .with_state(sim)
}

/// Serves the simulator on `listener` until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let sim = Sim::new(config)?;
    axum::serve(listener, app(sim))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
