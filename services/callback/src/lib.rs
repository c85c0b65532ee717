//! The callback service: delivers the event callbacks that steps record (DESIGN §7) to customers'
//! webhooks. Stateless: any number of replicas consume the callback queue; Postgres holds every
//! delivery and attempt.
//!
//! Per message, one attempt ([`deliver`]): claim it in Postgres (a lease, so two copies of a message
//! never attempt at once), send it through the one SSRF-guarded client with Standard Webhooks headers,
//! record the result, and on a retryable failure set the next attempt's time and NAK the message with
//! that delay (long delays park the delivery in Postgres instead, see [`Config::nak_max`]). The claims
//! and results of the attempts in flight together share statements and commits ([`batch`]).
//!
//! A scheduler loop ([`schedule_once`]) on every replica publishes deliveries whose next attempt is due
//! but that have no message in NATS: parked ones, and ones whose message was lost or whose attempt's
//! process died. So a lost message costs latency, never a callback.

#![warn(clippy::unwrap_used, clippy::expect_used)]

pub mod batch;
pub mod deliver;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use phlo_bus::{Bus, BusConfig, CallbackMessage, Delivery, Outcome, Queue};
use phlo_egress::{Egress, EgressConfig};
use phlo_runtime::background::retry_delay;
use phlo_service::{CommonConfig, env_parse, env_positive, env_secs};
use phlo_store::Pool;
use tokio_util::sync::CancellationToken;

use crate::batch::Batcher;
use crate::deliver::{DUE_SLACK_SECS, Deliverer, Settings};
use crate::schedule::{DEFAULT_SCHEDULE, Schedule};

#[derive(Debug, Clone)]
pub struct Config {
    pub common: CommonConfig,
    /// `PHLO_CALLBACK_ADDR`: health endpoints.
    pub addr: String,
    /// `PHLO_CALLBACK_CONCURRENCY`: attempts in flight in this process (default 128). Their claims and
    /// results share statements, so more in flight means larger batches: on a backlog, 128 delivered
    /// 4,500–5,200 callbacks/s on 2 cores where 64 delivered 3,800–4,600 (docs/benchmarks.md, run 6).
    pub concurrency: usize,
    /// `PHLO_CALLBACK_SCHEDULE`: seconds between attempts, e.g. `5,300,1800,7200,18000,36000,36000`.
    pub schedule: Schedule,
    /// `PHLO_CALLBACK_JITTER`: each delay varies by ± this fraction (default 0.2).
    pub jitter: f64,
    /// `PHLO_CALLBACK_TIMEOUT_SECS`: total time of one attempt (default 15).
    pub timeout: Duration,
    /// `PHLO_CALLBACK_CONNECT_TIMEOUT_SECS`: time to connect (default 5).
    pub connect_timeout: Duration,
    /// `PHLO_CALLBACK_MAX_RESPONSE_BYTES`: response bytes read (and logged) per attempt (default 1024).
    pub max_response_bytes: u64,
    /// `PHLO_CALLBACK_NAK_MAX_SECS`: retries due within this long wait in NATS (a NAK with the delay);
    /// later ones are parked in Postgres and published when due (default 60). NAK'd messages count
    /// against the consumer's `max_ack_pending`, so hours-long delays must not sit there.
    pub nak_max: Duration,
    /// `PHLO_CALLBACK_MAX_RETRY_AFTER_SECS`: the longest `Retry-After` honoured (default 86400).
    pub max_retry_after: Duration,
    /// `PHLO_CALLBACK_REDRIVE_AFTER_SECS`: a delivery due this long ago without an attempt has lost its
    /// message and is published again (default 300).
    pub redrive_after: Duration,
    /// `PHLO_POLL_INTERVAL_MS`: how often the scheduler looks for due deliveries (default 1000).
    pub poll_interval: Duration,
    /// `PHLO_EGRESS_ALLOW`: private networks callbacks may reach (e.g. `10.0.0.0/8`); none by default.
    pub egress: EgressConfig,
    /// `PHLO_SHUTDOWN_GRACE_SECS`: how long in-flight attempts may take to finish after SIGTERM
    /// (default 20); attempts still running then are released and redelivered.
    pub shutdown_grace: Duration,
    /// `PHLO_SECRET_KEY` (or `PHLO_SECRET_KEY_FILE`), `PHLO_SECRET_KEY_PREVIOUS`: the keys the webhook
    /// signing secrets are sealed with; the gateway's (see `phlo_store::sealing`).
    pub secret_keys: phlo_store::sealing::Keyring,
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        let allow = phlo_service::env_or("PHLO_EGRESS_ALLOW", "");
        let schedule = phlo_service::env_or("PHLO_CALLBACK_SCHEDULE", DEFAULT_SCHEDULE);
        let jitter: f64 = env_parse("PHLO_CALLBACK_JITTER", 0.2)?;
        if !(0.0..1.0).contains(&jitter) {
            return Err(format!(
                "PHLO_CALLBACK_JITTER={jitter} must be at least 0 and below 1"
            ));
        }
        let timeout = env_secs("PHLO_CALLBACK_TIMEOUT_SECS", 15)?;
        if timeout.is_zero() {
            return Err("PHLO_CALLBACK_TIMEOUT_SECS must be at least 1".into());
        }
        Ok(Self {
            common: CommonConfig::from_env()?,
            addr: phlo_service::env_or("PHLO_CALLBACK_ADDR", "0.0.0.0:9091"),
            concurrency: env_positive(
                "PHLO_CALLBACK_CONCURRENCY",
                128,
                phlo_service::MAX_CONCURRENCY,
            )?,
            schedule: Schedule::parse(&schedule)
                .map_err(|e| format!("PHLO_CALLBACK_SCHEDULE: {e}"))?,
            jitter,
            timeout,
            connect_timeout: env_secs("PHLO_CALLBACK_CONNECT_TIMEOUT_SECS", 5)?,
            max_response_bytes: env_parse("PHLO_CALLBACK_MAX_RESPONSE_BYTES", 1024)?,
            nak_max: env_secs("PHLO_CALLBACK_NAK_MAX_SECS", 60)?,
            max_retry_after: env_secs("PHLO_CALLBACK_MAX_RETRY_AFTER_SECS", 86_400)?,
            redrive_after: env_secs("PHLO_CALLBACK_REDRIVE_AFTER_SECS", 300)?,
            poll_interval: Duration::from_millis(env_positive(
                "PHLO_POLL_INTERVAL_MS",
                1000,
                3_600_000,
            )?),
            egress: EgressConfig {
                allow: EgressConfig::parse_allow(&allow)
                    .map_err(|e| format!("PHLO_EGRESS_ALLOW: {e}"))?,
                connect_timeout: env_secs("PHLO_CALLBACK_CONNECT_TIMEOUT_SECS", 5)?,
                ..EgressConfig::default()
            },
            shutdown_grace: env_secs("PHLO_SHUTDOWN_GRACE_SECS", 20)?,
            secret_keys: phlo_store::sealing::Keyring::from_settings(phlo_service::var)
                .map_err(|e| e.to_string())?,
        })
    }
}

/// Runs until `shutdown`, then stops taking messages and lets in-flight attempts finish (each is
/// bounded by the attempt timeout).
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
    phlo_store::callbacks::seal_stored_secrets(&pool, &config.secret_keys).await?;
    let bus = Bus::connect(BusConfig {
        url: config.common.nats_url.clone(),
        prefix: config.common.nats_prefix.clone(),
        drain_grace: config
            .shutdown_grace
            .saturating_sub(Duration::from_secs(1))
            .max(config.shutdown_grace / 2),
        ..Default::default()
    })
    .await?;
    let settings = Arc::new(Settings {
        schedule: config.schedule.clone(),
        jitter: config.jitter,
        timeout: config.timeout,
        max_response_bytes: config.max_response_bytes,
        nak_max: config.nak_max,
        max_retry_after: config.max_retry_after,
    });
    let deliverer = Deliverer {
        pool: pool.clone(),
        batcher: Batcher::start(
            pool.clone(),
            config.secret_keys.clone(),
            settings.lease().as_secs_f64(),
            DUE_SLACK_SECS,
        ),
        egress: Egress::new(config.egress.clone())?,
        secret_keys: config.secret_keys.clone(),
        settings,
    };

    let server = phlo_service::spawn_health(
        &config.addr,
        "callback service",
        pool.clone(),
        bus.clone(),
        shutdown.clone(),
    )
    .await?;

    let consume = bus.consume(
        Queue::Callback,
        config.concurrency,
        shutdown.clone(),
        move |d| on_callback(deliverer.clone(), d),
    );
    let scheduler = run_scheduler(&pool, &bus, &config, shutdown.clone());
    let work = async { tokio::join!(consume, scheduler) };
    let Some((consumed, ())) = phlo_service::drain(work, &shutdown, config.shutdown_grace).await
    else {
        tracing::warn!("attempts outlived the shutdown grace; their deliveries are redelivered");
        return Ok(());
    };
    consumed?;
    let _ = server.await;
    phlo_service::close_bus(&bus).await;
    tracing::info!("callback service stopped");
    Ok(())
}

async fn on_callback(deliverer: Deliverer, d: Delivery) -> Outcome {
    let msg = match CallbackMessage::from_bytes(&d.payload) {
        Ok(m) => m,
        Err(e) => return Outcome::undecodable(&d, "callback", e),
    };
    match deliverer.handle(msg.delivery_id).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::warn!(error = %e, delivery_id = %msg.delivery_id, "callback attempt failed; will retry");
            Outcome::Retry(retry_delay(d.delivered))
        }
    }
}

const BATCH: i64 = 200;

/// Publishes deliveries that are due but have no message in NATS; returns how many. Safe on every
/// replica at once (`SKIP LOCKED`).
pub async fn schedule_once(
    pool: &Pool,
    bus: &Bus,
    redrive_after: Duration,
) -> anyhow::Result<usize> {
    let mut tx = pool.begin().await?;
    let due = phlo_store::callbacks::take_due(&mut tx, redrive_after.as_secs_f64(), BATCH).await?;
    let subject = bus.subject(Queue::Callback);
    // A fresh id per pass: NATS would drop a re-publish with an earlier id inside its dedup window.
    let pass = chrono::Utc::now().timestamp_millis();
    for d in &due {
        let msg = CallbackMessage { delivery_id: d.id };
        let id = format!("{}:due:{}:{pass}", msg.msg_id(), d.attempts);
        // The recording step's trace context: a retry, a redrive or a parked delivery published hours
        // later still continues the run's trace, not the scheduler's.
        let headers = phlo_bus::trace::traceparent_headers(d.traceparent.as_deref());
        // On failure the transaction rolls back: the rows stay due for the next pass.
        bus.publish(&subject, &id, msg.to_bytes(), headers).await?;
    }
    tx.commit().await?;
    Ok(due.len())
}

async fn run_scheduler(pool: &Pool, bus: &Bus, config: &Config, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(config.poll_interval) => {}
        }
        match schedule_once(pool, bus, config.redrive_after).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(published = n, "scheduler published due callbacks"),
            Err(e) => tracing::warn!(error = %e, "callback scheduler failed"),
        }
    }
}
