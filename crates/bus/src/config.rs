//! Names and server-side settings: which stream, subjects and consumers exist, and how they behave.

use std::time::Duration;

use async_nats::jetstream::{consumer, stream};

/// How to reach NATS and how the work stream and its consumers are configured.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// NATS server URL(s), e.g. `nats://127.0.0.1:4222` (comma-separated for a cluster), or
    /// [`MEMORY_URL`] for the in-process queue of `phlo serve`.
    pub url: String,
    /// Namespace of every subject, stream and consumer; lets several deployments (or tests)
    /// share one NATS. Letters, digits, `-` and `_` only.
    pub prefix: String,
    /// Stream replicas: 1 for a single server, 3 in production.
    pub replicas: usize,
    /// How long a delivery may go unacknowledged before NATS redelivers it. Handlers running
    /// longer are kept alive with progress acks, so this only bounds how long a crashed
    /// worker's message waits before another replica gets it.
    pub ack_wait: Duration,
    /// Deliveries per message before NATS gives up on it (it then stays in the stream and an
    /// advisory is published).
    pub max_deliver: i64,
    /// After shutdown, how long a `consume` loop waits for its running handlers before it releases
    /// them: the handler is dropped and its message NAK'd, so another replica takes it at once.
    pub drain_grace: Duration,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            prefix: "phlo".into(),
            replicas: 1,
            ack_wait: Duration::from_secs(30),
            max_deliver: 20,
            drain_grace: Duration::from_secs(20),
        }
    }
}

/// The bus URL that means "no NATS: the in-process queue" (see [`crate::Bus::in_memory`]).
pub const MEMORY_URL: &str = "memory:";

impl BusConfig {
    /// The URL names the in-process queue rather than a NATS server.
    pub fn is_in_memory(&self) -> bool {
        self.url.trim() == MEMORY_URL
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        let prefix_ok = !self.prefix.is_empty()
            && self
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !prefix_ok {
            return Err(format!(
                "prefix {:?} must be non-empty letters, digits, '-' or '_'",
                self.prefix
            ));
        }
        if self.replicas == 0 {
            return Err("replicas must be at least 1".into());
        }
        if self.ack_wait < Duration::from_secs(1) {
            return Err("ack_wait must be at least 1s".into());
        }
        if self.max_deliver == 0 || self.max_deliver < -1 {
            return Err("max_deliver must be positive (or -1 for unlimited)".into());
        }
        Ok(())
    }

    /// The one stream holding every queue, e.g. `PHLO_WORK` for prefix `phlo`.
    pub fn stream_name(&self) -> String {
        let upper: String = self
            .prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("{upper}_WORK")
    }

    /// How long a msg id is remembered for publish dedup (both backends).
    pub(crate) fn duplicate_window() -> Duration {
        Duration::from_secs(120)
    }

    pub(crate) fn stream_config(&self) -> stream::Config {
        stream::Config {
            name: self.stream_name(),
            subjects: vec![format!("{}.v1.>", self.prefix)],
            // Each message is for exactly one consumer and is deleted once acked.
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            num_replicas: self.replicas,
            // The publisher's retry horizon; the Postgres inbox covers anything older.
            duplicate_window: Self::duplicate_window(),
            // Undelivered work older than this is lost to NATS; the reconciler re-drives runs.
            max_age: Duration::from_secs(7 * 24 * 3600),
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        }
    }

    pub(crate) fn consumer_config(&self, queue: Queue) -> consumer::pull::Config {
        let name = queue.consumer_name(&self.prefix);
        consumer::pull::Config {
            durable_name: Some(name),
            // WorkQueue streams reject consumers whose filters overlap: one subject each.
            filter_subject: queue.subject(&self.prefix),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_deliver: self.max_deliver,
            // Caps deliveries in flight across all replicas; each replica's own limit is the
            // `max_in_flight` given to `Bus::consume`.
            max_ack_pending: MAX_ACK_PENDING,
            ..Default::default()
        }
    }
}

/// Room for many replicas at typical per-replica concurrency (tens of handlers each).
const MAX_ACK_PENDING: i64 = 1024;

/// A kind of work; each has one subject and one durable pull consumer shared by all replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    /// Advance or resume a token: the workers' main queue ([`crate::StepMessage`]).
    Step,
    /// Perform an HTTP Request node's request outside any transaction ([`crate::HttpMessage`]).
    Http,
    /// Call the carrier's REST API: place calls, send SMS, hang up ([`crate::CarrierMessage`]).
    Carrier,
    /// Deliver an event callback to a customer's webhook ([`crate::CallbackMessage`]).
    Callback,
}

impl Queue {
    pub const ALL: [Queue; 4] = [Queue::Step, Queue::Http, Queue::Carrier, Queue::Callback];

    pub fn name(self) -> &'static str {
        match self {
            Queue::Step => "step",
            Queue::Http => "http",
            Queue::Carrier => "carrier",
            Queue::Callback => "callback",
        }
    }

    /// `{prefix}.v1.{name}`; the `v1` lets a future incompatible layout live beside this one.
    pub fn subject(&self, prefix: &str) -> String {
        format!("{prefix}.v1.{}", self.name())
    }

    /// `{prefix}-{name}`, with anything NATS forbids in a consumer name replaced by `_`.
    pub fn consumer_name(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.name())
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}
