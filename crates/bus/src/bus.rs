//! The connection: setup of the stream and consumers, and the acked, deduplicated publish. A
//! [`Bus`] has one of two backends, chosen when it is made: NATS JetStream (every deployment), or
//! the in-process queue of `phlo serve` ([`crate::memory`]).

use std::{sync::Arc, time::Duration};

use async_nats::{
    ConnectOptions, Event, HeaderMap,
    connection::State,
    jetstream::{
        self,
        consumer::{self, Consumer},
        context::{PublishError, PublishErrorKind},
        message::PublishMessage,
    },
};
use bytes::Bytes;
use futures::StreamExt;
use tokio::{
    sync::{broadcast, watch},
    time::Instant,
};
use tracing::{info, warn};

use crate::{BusConfig, BusError, Queue};

/// How long `publish` keeps retrying transient failures (a NATS restart or leader election)
/// before giving up. Well inside the stream's two-minute dedup window, so retries stay safe.
const PUBLISH_BUDGET: Duration = Duration::from_secs(10);
/// One attempt's wait for its PubAck. An attempt made while the connection was down never gets
/// one (seen with NATS restarts), so the client's default 5 s would waste half the budget.
const PUBLISH_ATTEMPT: Duration = Duration::from_secs(2);
/// How long `connect` waits for NATS to come up and accept the stream and consumers, so that
/// pods may start before NATS does.
const SETUP_BUDGET: Duration = Duration::from_secs(30);

/// A handle on the work stream. Cheap to clone; clones share one connection (or one in-process
/// queue).
#[derive(Clone, Debug)]
pub struct Bus {
    pub(crate) backend: Backend,
    config: Arc<BusConfig>,
}

#[derive(Clone, Debug)]
pub(crate) enum Backend {
    /// Shared: clones of a `Bus` share one connection, and a `Bus` stays small.
    Nats(Arc<Nats>),
    Memory(Arc<crate::memory::Memory>),
}

#[derive(Clone, Debug)]
pub(crate) struct Nats {
    client: async_nats::Client,
    js: jetstream::Context,
    /// Counts (re)connections, so a consumer loop can re-pull at once: the server forgets a
    /// pending pull request when it restarts.
    connections: watch::Receiver<u64>,
}

/// Wake-ups on one subject, from [`Bus::subscribe`].
#[derive(Debug)]
pub struct Subscription(SubscriptionInner);

#[derive(Debug)]
enum SubscriptionInner {
    Nats(async_nats::Subscriber),
    Memory {
        subject: String,
        wakeups: broadcast::Receiver<Arc<str>>,
    },
}

impl Subscription {
    /// Waits for the next wake-up; `None` once the bus is closed. Wake-ups are hints: one may be
    /// missed (the waiter polls anyway) and one may come twice.
    pub async fn next(&mut self) -> Option<()> {
        match &mut self.0 {
            SubscriptionInner::Nats(subscriber) => subscriber.next().await.map(|_| ()),
            SubscriptionInner::Memory { subject, wakeups } => loop {
                match wakeups.recv().await {
                    Ok(woken) if *woken == **subject => return Some(()),
                    Ok(_) => {}
                    // Ours may have been among those dropped: wake the waiter to look.
                    Err(broadcast::error::RecvError::Lagged(_)) => return Some(()),
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            },
        }
    }
}

/// The server's receipt for a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Stream sequence of the stored message (the original one when `duplicate`).
    pub sequence: u64,
    /// The msg id was already stored inside the dedup window: nothing new was stored, which
    /// for a retried publish means success.
    pub duplicate: bool,
}

impl Bus {
    /// Connects (retrying in the background until NATS is up) and creates or opens the stream
    /// and every queue's consumer. Safe to run from many replicas at once: creation is
    /// idempotent for identical settings.
    ///
    /// The URL `memory:` ([`crate::MEMORY_URL`]) means the in-process queue instead
    /// ([`Bus::in_memory`]), and is refused unless this process declared that it runs every service
    /// ([`crate::allow_in_memory`]): separate processes cannot share it.
    pub async fn connect(config: BusConfig) -> Result<Bus, BusError> {
        config.validate().map_err(BusError::Config)?;
        if config.is_in_memory() {
            if !crate::memory::allowed() {
                return Err(BusError::Config(format!(
                    "NATS_URL={} (the in-process queue) works only in `phlo serve` and `phlo dev`, which \
                     run the gateway, worker and callback service in one process; separate processes cannot \
                     share it: set NATS_URL to a NATS server, e.g. nats://127.0.0.1:4222",
                    config.url
                )));
            }
            return Bus::in_memory(config);
        }
        let (connected, connections) = watch::channel(0);
        let client = ConnectOptions::new()
            .name(format!("{}-bus", config.prefix))
            .retry_on_initial_connect()
            .reconnect_delay_callback(reconnect_delay)
            .event_callback(move |event| {
                if matches!(event, Event::Connected) {
                    connected.send_modify(|count| *count += 1);
                }
                async move {
                    match event {
                        Event::Connected | Event::Draining | Event::Closed => {
                            info!(%event, "NATS connection")
                        }
                        _ => warn!(%event, "NATS connection"),
                    }
                }
            })
            .connect(config.url.as_str())
            .await
            .map_err(|source| BusError::Connect {
                url: config.url.clone(),
                source,
            })?;
        let bus = Bus {
            backend: Backend::Nats(Arc::new(Nats {
                js: jetstream::new(client.clone()),
                client,
                connections,
            })),
            config: Arc::new(config),
        };
        let deadline = Instant::now() + SETUP_BUDGET;
        let mut attempt = 0;
        loop {
            match bus.setup().await {
                Ok(()) => return Ok(bus),
                Err(err) if Instant::now() + backoff(attempt) < deadline => {
                    warn!(error = %err, "NATS not ready for the work stream yet; retrying");
                    tokio::time::sleep(backoff(attempt)).await;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// The in-process queue: what this process publishes, it consumes; nothing crosses to
    /// another process, and whatever is queued is lost when the process ends. Every `Bus` of one
    /// process with the same prefix shares one queue, so `phlo serve`'s gateway, worker and
    /// callback service, which each make their own, see each other's messages. The behaviour is
    /// NATS's: per-queue FIFO, publish dedup by msg id within the stream's duplicate window, and
    /// [`Bus::consume`] with the same outcomes, limits, metrics and trace context.
    pub fn in_memory(config: BusConfig) -> Result<Bus, BusError> {
        config.validate().map_err(BusError::Config)?;
        let memory =
            crate::memory::Memory::for_prefix(&config.prefix, BusConfig::duplicate_window());
        Ok(Bus {
            backend: Backend::Memory(memory),
            config: Arc::new(config),
        })
    }

    async fn setup(&self) -> Result<(), BusError> {
        for queue in Queue::ALL {
            self.ensure_consumer(queue).await?;
        }
        Ok(())
    }

    fn nats(&self) -> Option<&Nats> {
        match &self.backend {
            Backend::Nats(nats) => Some(nats),
            Backend::Memory(_) => None,
        }
    }

    /// Creates the stream if missing, then creates or updates the queue's consumer, so that a
    /// changed `ack_wait` or `max_deliver` takes effect on the next start. Also used by the
    /// consumer loop to recover from a NATS that lost its state.
    pub(crate) async fn ensure_consumer(
        &self,
        queue: Queue,
    ) -> Result<Consumer<consumer::pull::Config>, BusError> {
        let Some(nats) = self.nats() else {
            return Err(BusError::Config(
                "the in-process queue has no NATS consumers".into(),
            ));
        };
        let stream_config = self.config.stream_config();
        let stream_name = stream_config.name.clone();
        let stream = nats
            .js
            .get_or_create_stream(stream_config)
            .await
            .map_err(|source| BusError::Stream {
                stream: stream_name,
                source,
            })?;
        stream
            .create_consumer(self.config.consumer_config(queue))
            .await
            .map_err(|source| BusError::Consumer {
                consumer: queue.consumer_name(&self.config.prefix),
                source,
            })
    }

    /// Publishes and waits for the server to store the message. `msg_id` becomes the
    /// `Nats-Msg-Id` header: a repeat within two minutes is not stored again. Transient
    /// failures are retried with the same id for up to ~10 s.
    pub async fn publish(
        &self,
        subject: &str,
        msg_id: &str,
        payload: Bytes,
        headers: Option<HeaderMap>,
    ) -> Result<Published, BusError> {
        let nats = match &self.backend {
            Backend::Nats(nats) => nats,
            Backend::Memory(memory) => {
                return memory.publish(subject, msg_id, payload, headers);
            }
        };
        let mut message = PublishMessage::build().payload(payload);
        if let Some(headers) = headers {
            message = message.headers(headers);
        }
        // After `headers`, which would otherwise replace the id header.
        let message = message.message_id(msg_id);
        let deadline = Instant::now() + PUBLISH_BUDGET;
        let mut attempt = 0;
        loop {
            let limit = deadline
                .saturating_duration_since(Instant::now())
                .min(PUBLISH_ATTEMPT);
            let result = tokio::time::timeout(limit, nats.publish_once(subject, &message))
                .await
                .unwrap_or_else(|_elapsed| Err(PublishError::new(PublishErrorKind::TimedOut)));
            let err = match result {
                Ok(ack) => {
                    return Ok(Published {
                        sequence: ack.sequence,
                        duplicate: ack.duplicate,
                    });
                }
                Err(err) => err,
            };
            let pause = backoff(attempt);
            if !is_transient(&err) || Instant::now() + pause >= deadline {
                return Err(BusError::Publish {
                    subject: subject.to_owned(),
                    msg_id: msg_id.to_owned(),
                    source: err,
                });
            }
            warn!(subject, msg_id, error = %err, "publish failed; retrying with the same msg id");
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    /// The subject to publish a queue's messages on.
    pub fn subject(&self, queue: Queue) -> String {
        queue.subject(&self.config.prefix)
    }

    /// The stream holding every queue (for operators and tests).
    pub fn stream_name(&self) -> String {
        self.config.stream_name()
    }

    /// Messages the in-process queue holds (waiting, being handled, or waiting to be retried), like
    /// a work-queue stream's message count; `None` on NATS (ask the server). For operators and tests.
    pub fn held_in_memory(&self) -> Option<u64> {
        match &self.backend {
            Backend::Nats(_) => None,
            Backend::Memory(memory) => Some(memory.held()),
        }
    }

    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    /// For readiness probes: connected to a server right now (always, for the in-process queue).
    pub fn healthy(&self) -> bool {
        match &self.backend {
            Backend::Nats(nats) => nats.client.connection_state() == State::Connected,
            Backend::Memory(_) => true,
        }
    }

    /// Flushes what was sent (acks included) and closes the connection; for shutdown, after
    /// every `consume` loop has returned. Nothing to do for the in-process queue.
    pub async fn drain(&self) -> Result<(), BusError> {
        match &self.backend {
            Backend::Nats(nats) => nats.client.drain().await.map_err(BusError::Drain),
            Backend::Memory(_) => Ok(()),
        }
    }

    /// The core-NATS subject on which a call's next instruction is announced (not JetStream: a lost
    /// notification only means the waiting webhook finds the instruction on its next poll).
    pub fn call_subject(&self, call_uuid: &str) -> String {
        let safe: String = call_uuid
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{}.calls.{safe}", self.config.prefix)
    }

    /// Fire-and-forget publish for wake-ups (core NATS, or the in-process broadcast).
    pub async fn notify(&self, subject: &str) {
        match &self.backend {
            Backend::Nats(nats) => {
                if let Err(e) = nats.client.publish(subject.to_owned(), Bytes::new()).await {
                    warn!(subject, error = %e, "notification not sent; the waiter will poll");
                }
            }
            Backend::Memory(memory) => memory.notify(subject),
        }
    }

    /// Subscribes to wake-ups on `subject`.
    pub async fn subscribe(&self, subject: &str) -> Result<Subscription, BusError> {
        let inner = match &self.backend {
            Backend::Nats(nats) => SubscriptionInner::Nats(
                nats.client
                    .subscribe(subject.to_owned())
                    .await
                    .map_err(|e| BusError::Config(format!("cannot subscribe to {subject}: {e}")))?,
            ),
            Backend::Memory(memory) => SubscriptionInner::Memory {
                subject: subject.to_owned(),
                wakeups: memory.subscribe(),
            },
        };
        Ok(Subscription(inner))
    }
}

impl Nats {
    async fn publish_once(
        &self,
        subject: &str,
        message: &PublishMessage,
    ) -> Result<jetstream::publish::PublishAck, PublishError> {
        // The first await sends; the second waits for the PubAck (stored, or duplicate).
        self.js
            .send_publish(subject.to_owned(), message.clone())
            .await?
            .await
    }

    pub(crate) fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub(crate) fn connections(&self) -> watch::Receiver<u64> {
        self.connections.clone()
    }
}

/// Timeouts and "no responders" (surfaced as `StreamNotFound`) are what a restarting NATS or a
/// leader election looks like; anything else (too large, rejected) will not get better.
fn is_transient(err: &PublishError) -> bool {
    matches!(
        err.kind(),
        PublishErrorKind::TimedOut
            | PublishErrorKind::BrokenPipe
            | PublishErrorKind::StreamNotFound
            | PublishErrorKind::MaxAckPending
    )
}

/// The client's default waits up to 4 s between attempts, so a replica could stay away for 4 s
/// after NATS came back; capped at 500 ms it is back within half a second, and an attempt every
/// 500 ms per replica costs a server nothing.
fn reconnect_delay(attempts: usize) -> Duration {
    let doubled = 1u64 << attempts.min(16);
    Duration::from_millis(doubled.saturating_mul(5)).min(Duration::from_millis(500))
}

/// 100 ms, 200 ms, 400 ms, … capped at 2 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(5))).min(Duration::from_secs(2))
}
