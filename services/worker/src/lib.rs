//! The worker: one consumer loop per queue (steps, HTTP requests) around the runtime, plus the
//! background loops (timers, outbox relay, reconciler) and the health endpoints. Stateless: any replica
//! can take any message, and adding replicas adds throughput.

#![warn(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use phlo_bus::{
    Bus, BusConfig, CarrierMessage, Delivery, HttpMessage, Outcome, Queue, StepMessage,
};
use phlo_egress::{Egress, EgressConfig};
use phlo_runtime::background::retry_delay;
use phlo_runtime::{Runtime, RuntimeConfig};
use phlo_service::{CommonConfig, env_parse, env_positive, env_secs};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// `PHLO_WORKER_ADDR`: health endpoints.
    pub addr: String,
    /// `PHLO_WORKER_CONCURRENCY`: steps applied at once by this process.
    pub step_concurrency: usize,
    /// `PHLO_HTTP_CONCURRENCY`: HTTP Request node requests in flight in this process.
    pub http_concurrency: usize,
    /// `PHLO_CARRIER_CONCURRENCY`: carrier API requests in flight in this process.
    pub carrier_concurrency: usize,
    /// The carrier's REST API (`PHLO_CARRIER_URL`, `PHLO_CARRIER_AUTH_ID`, `PHLO_CARRIER_AUTH_TOKEN`);
    /// `None` when no credentials are set: calls and SMS then fail with "no carrier configured".
    pub carrier: Option<phlo_carrier::PlivoConfig>,
    /// `PHLO_EGRESS_ALLOW`: networks the HTTP Request node may reach although private (e.g. `10.0.0.0/8`).
    pub egress: EgressConfig,
    pub runtime: RuntimeConfig,
    /// `PHLO_SHUTDOWN_GRACE_SECS`: how long in-flight work may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        let defaults = RuntimeConfig::default();
        let allow = phlo_service::env_or("PHLO_EGRESS_ALLOW", "");
        Ok(Self {
            common: CommonConfig::from_env()?,
            addr: phlo_service::env_or("PHLO_WORKER_ADDR", "0.0.0.0:9090"),
            step_concurrency: env_positive(
                "PHLO_WORKER_CONCURRENCY",
                32,
                phlo_service::MAX_CONCURRENCY,
            )?,
            http_concurrency: env_positive(
                "PHLO_HTTP_CONCURRENCY",
                64,
                phlo_service::MAX_CONCURRENCY,
            )?,
            carrier_concurrency: env_positive(
                "PHLO_CARRIER_CONCURRENCY",
                32,
                phlo_service::MAX_CONCURRENCY,
            )?,
            carrier: phlo_service::carrier_config()?,
            egress: EgressConfig {
                allow: EgressConfig::parse_allow(&allow)
                    .map_err(|e| format!("PHLO_EGRESS_ALLOW: {e}"))?,
                ..EgressConfig::default()
            },
            runtime: RuntimeConfig {
                max_steps: env_parse("PHLO_MAX_STEPS", defaults.max_steps)?,
                max_repeats: env_parse("PHLO_MAX_REPEATS", defaults.max_repeats)?,
                inline_steps: env_parse("PHLO_INLINE_STEPS", defaults.inline_steps)?.max(1),
                max_active_runs: phlo_service::max_active_runs(defaults.max_active_runs)?,
                max_lifetime: env_secs(
                    "PHLO_MAX_RUN_LIFETIME_SECS",
                    defaults.max_lifetime.as_secs(),
                )?,
                max_wait: env_secs("PHLO_MAX_WAIT_SECS", defaults.max_wait.as_secs())?,
                redrive_after: env_secs(
                    "PHLO_REDRIVE_AFTER_SECS",
                    defaults.redrive_after.as_secs(),
                )?,
                relay_after: env_secs("PHLO_RELAY_AFTER_SECS", defaults.relay_after.as_secs())?,
                poll_interval: Duration::from_millis(env_positive(
                    "PHLO_POLL_INTERVAL_MS",
                    1000,
                    3_600_000,
                )?),
                public_url: phlo_service::env_or("PHLO_PUBLIC_URL", &defaults.public_url),
            },
            shutdown_grace: env_secs("PHLO_SHUTDOWN_GRACE_SECS", 20)?,
        })
    }
}

/// Runs until `shutdown`, then stops taking messages and lets in-flight ones finish.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let pool = phlo_store::connect(
        &config.common.database_url,
        config.common.db_pool,
        config.common.db_pool_min,
    )
    .await?;
    if config.common.migrate {
        phlo_store::migrate(&pool).await?;
    }
    let bus = Bus::connect(BusConfig {
        url: config.common.nats_url.clone(),
        prefix: config.common.nats_prefix.clone(),
        drain_grace: consumer_grace(config.shutdown_grace),
        ..Default::default()
    })
    .await?;
    let egress = Egress::new(config.egress.clone())?;
    let carrier = phlo_service::carrier(config.carrier.as_ref())?;
    let runtime = Runtime::new(
        pool.clone(),
        bus.clone(),
        egress,
        config.runtime.clone(),
        carrier,
    );

    let server =
        phlo_service::spawn_health(&config.addr, "worker", pool, bus.clone(), shutdown.clone())
            .await?;

    let steps = {
        let rt = runtime.clone();
        bus.consume(
            Queue::Step,
            config.step_concurrency,
            shutdown.clone(),
            move |d| on_step(rt.clone(), d),
        )
    };
    let http = {
        let rt = runtime.clone();
        bus.consume(
            Queue::Http,
            config.http_concurrency,
            shutdown.clone(),
            move |d| on_http(rt.clone(), d),
        )
    };
    let carrier_calls = {
        let rt = runtime.clone();
        bus.consume(
            Queue::Carrier,
            config.carrier_concurrency,
            shutdown.clone(),
            move |d| on_carrier(rt.clone(), d),
        )
    };
    let background = runtime.run_background(shutdown.clone());
    let work = async { tokio::join!(steps, http, carrier_calls, background) };
    // On SIGTERM the consumers stop pulling and wait for their handlers (their own deadline is a
    // little shorter, then they release the rest); this is the backstop for the whole drain.
    let drained = phlo_service::drain(work, &shutdown, config.shutdown_grace).await;
    let Some((steps, http, carrier_calls, ())) = drained else {
        tracing::warn!(
            grace = ?config.shutdown_grace,
            "in-flight work outlived the shutdown grace; what did not finish is redelivered by NATS"
        );
        return Ok(());
    };
    steps?;
    http?;
    carrier_calls?;
    let _ = server.await;
    // Acks and publishes still buffered go out before the connection closes.
    phlo_service::close_bus(&bus).await;
    tracing::info!("worker stopped");
    Ok(())
}

/// The consumers' own drain deadline: a second less than the whole grace, so that releasing what
/// is still running and flushing the acks fit in it.
pub fn consumer_grace(grace: Duration) -> Duration {
    grace.saturating_sub(Duration::from_secs(1)).max(grace / 2)
}

async fn on_step(rt: Runtime, d: Delivery) -> Outcome {
    let msg = match StepMessage::from_bytes(&d.payload) {
        Ok(m) => m,
        Err(e) => return Outcome::undecodable(&d, "step", e),
    };
    match rt.apply(&msg).await {
        Ok(_) => Outcome::Ack,
        Err(e) if e.is_transient() => {
            tracing::warn!(error = %e, "step failed; will retry");
            Outcome::Retry(retry_delay(d.delivered))
        }
        // A race with another step of the run (a unique violation, say) clears on a retry.
        Err(e) if d.delivered < PERMANENT_FAILURE_ATTEMPTS => {
            tracing::warn!(error = %e, ?msg, "step failed; will retry in case it was a race");
            Outcome::Retry(retry_delay(d.delivered))
        }
        // Dropping the message would leave the run active with nothing to move it until the
        // lifetime guard, and the reconciler would re-drive it into the same error every minute.
        Err(e) => {
            tracing::error!(error = %e, ?msg, "step cannot be applied; the run fails");
            let reason = format!("a step could not be applied: {e}");
            match rt.fail_run(msg.run_id(), &reason).await {
                Ok(_) => Outcome::Ack,
                Err(fail) => {
                    tracing::warn!(error = %fail, "failing the run failed; will retry");
                    Outcome::Retry(retry_delay(d.delivered))
                }
            }
        }
    }
}

/// Deliveries of a step that failed for a reason that is not transient before its run fails.
const PERMANENT_FAILURE_ATTEMPTS: i64 = 3;

async fn on_http(rt: Runtime, d: Delivery) -> Outcome {
    let msg = match HttpMessage::from_bytes(&d.payload) {
        Ok(m) => m,
        Err(e) => return Outcome::undecodable(&d, "HTTP", e),
    };
    match rt.perform_http(&msg).await {
        Ok(()) => Outcome::Ack,
        Err(e) => {
            tracing::warn!(error = %e, "publishing an HTTP result failed; will retry");
            Outcome::Retry(retry_delay(d.delivered))
        }
    }
}

async fn on_carrier(rt: Runtime, d: Delivery) -> Outcome {
    let msg = match CarrierMessage::from_bytes(&d.payload) {
        Ok(m) => m,
        Err(e) => return Outcome::undecodable(&d, "carrier", e),
    };
    match rt.perform_carrier(&msg).await {
        Ok(()) => Outcome::Ack,
        Err(e) => {
            tracing::warn!(error = %e, "carrier request failed; will retry");
            Outcome::Retry(retry_delay(d.delivered))
        }
    }
}
