//! Runs PHLOs durably. Postgres is the source of truth and NATS JetStream carries the work:
//!
//! - [`Runtime::start_run`] writes the run, its first token and the first step message in one
//!   transaction, then publishes the message.
//! - [`Runtime::apply`] applies one step message: lock the run, drop duplicates and stale events (the
//!   token's `seq` and `wait_id` are the fence), run the pure engine, increment counters, write the step,
//!   the tokens, the timers and the next messages (outbox) in one transaction; publish after commit.
//! - [`Runtime::perform_http`] performs an HTTP Request node's request outside any transaction and
//!   feeds the result back as an event.
//! - The background loops ([`background`]) re-publish outbox rows a crash left behind, fire due timers,
//!   re-drive tokens whose message was lost, and end runs that outlived the lifetime guard.
//!
//! Every function here is safe to run on any number of replicas at once.

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod admission;
pub mod background;
mod cache;
pub mod callbacks;
mod cancel;
mod carrier;
mod effects;
mod end;
mod http;
mod outbox;
mod start;
mod step;
pub mod voice;

use std::sync::Arc;
use std::time::Duration;

use phlo_bus::Bus;
use phlo_carrier::Carrier;
use phlo_egress::Egress;
use phlo_store::Pool;

pub use start::{StartError, StartRequest, Started};
pub use step::Applied;

/// The guards and timings of the runtime. Defaults suit production; tests shorten the timings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Most steps one run may take before it fails (`PHLO_MAX_STEPS`).
    pub max_steps: i32,
    /// Most consecutive steps of one token at the same node, a loop guard (`PHLO_MAX_REPEATS`).
    pub max_repeats: i32,
    /// Most consecutive steps of one token applied in one transaction before the rest is handed to a
    /// new step message (`PHLO_INLINE_STEPS`; 1 = one step per message). Bounds how long one run holds a
    /// worker slot.
    pub inline_steps: u32,
    /// Runs one account may have active at once unless it has its own cap (`PHLO_MAX_ACTIVE_RUNS`);
    /// runs beyond it wait as `queued`, so one account's flood cannot fill the step queue. 0: no cap.
    pub max_active_runs: i64,
    /// Longest a run may stay active before it ends as `timed_out` (`PHLO_MAX_RUN_LIFETIME_SECS`).
    pub max_lifetime: Duration,
    /// Longest any wait may last before its timer fires, whatever the node asked for (`PHLO_MAX_WAIT_SECS`).
    pub max_wait: Duration,
    /// A ready token whose step message has not been applied for this long is re-driven.
    pub redrive_after: Duration,
    /// Outbox rows older than this are re-published by the relay.
    pub relay_after: Duration,
    /// How often the background loops look for work.
    pub poll_interval: Duration,
    /// The gateway's URL as the carrier reaches it (`PHLO_PUBLIC_URL`): the base of every callback URL.
    pub public_url: String,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_steps: 1_000,
            max_repeats: 100,
            inline_steps: 16,
            max_active_runs: 200,
            max_lifetime: Duration::from_secs(24 * 3600),
            max_wait: Duration::from_secs(24 * 3600),
            redrive_after: Duration::from_secs(60),
            relay_after: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            public_url: "http://127.0.0.1:8080".to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] phlo_store::StoreError),
    #[error(transparent)]
    Bus(#[from] phlo_bus::BusError),
    #[error("carrier unavailable: {0}")]
    Carrier(String),
    #[error("stored PHLO {phlo_id} revision {revision} no longer compiles: {problems}")]
    Definition {
        phlo_id: uuid::Uuid,
        revision: i32,
        problems: String,
    },
}

impl RuntimeError {
    /// Whether retrying later may succeed (a lost connection), as opposed to a message that never will.
    pub fn is_transient(&self) -> bool {
        match self {
            RuntimeError::Store(e) => e.is_transient(),
            RuntimeError::Bus(_) | RuntimeError::Carrier(_) => true,
            RuntimeError::Definition { .. } => false,
        }
    }
}

impl From<phlo_store::SqlxError> for RuntimeError {
    fn from(e: phlo_store::SqlxError) -> Self {
        RuntimeError::Store(phlo_store::StoreError::Db(e))
    }
}

/// Shared by every task of a service; cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    bus: Bus,
    egress: Egress,
    config: RuntimeConfig,
    phlos: cache::PhloCache,
    /// The carrier's REST API; without one, calls and SMS fail at once ("no carrier configured").
    carrier: Option<Arc<dyn Carrier>>,
    /// Published outbox rows, deleted in batches by [`outbox::sweeper`].
    swept: tokio::sync::mpsc::UnboundedSender<i64>,
}

impl Runtime {
    /// Must be called inside a Tokio runtime: it spawns the outbox sweeper.
    pub fn new(
        pool: Pool,
        bus: Bus,
        egress: Egress,
        config: RuntimeConfig,
        carrier: Option<Arc<dyn Carrier>>,
    ) -> Self {
        let phlos = cache::PhloCache::default();
        let swept = outbox::sweeper(pool.clone());
        Runtime {
            inner: Arc::new(Inner {
                pool,
                bus,
                egress,
                config,
                phlos,
                carrier,
                swept,
            }),
        }
    }

    pub fn has_carrier(&self) -> bool {
        self.inner.carrier.is_some()
    }

    pub fn carrier(&self) -> Option<&Arc<dyn Carrier>> {
        self.inner.carrier.as_ref()
    }

    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    pub fn bus(&self) -> &Bus {
        &self.inner.bus
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }
}
