//! The connection: setup of the stream and consumers, and the acked, deduplicated publish.

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
use tokio::{sync::watch, time::Instant};
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

/// A handle on the work stream. Cheap to clone; clones share one connection.
#[derive(Clone, Debug)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
    config: Arc<BusConfig>,
    /// Counts (re)connections, so a consumer loop can re-pull at once: the server forgets a
    /// pending pull request when it restarts.
    connections: watch::Receiver<u64>,
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
    pub async fn connect(config: BusConfig) -> Result<Bus, BusError> {
        config.validate().map_err(BusError::Config)?;
        let (connected, connections) = watch::channel(0);
        let client = ConnectOptions::new()
            .name(format!("{}-bus", config.prefix))
            .retry_on_initial_connect()
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
            js: jetstream::new(client.clone()),
            client,
            config: Arc::new(config),
            connections,
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

    async fn setup(&self) -> Result<(), BusError> {
        for queue in Queue::ALL {
            self.ensure_consumer(queue).await?;
        }
        Ok(())
    }

    /// Creates the stream if missing, then creates or updates the queue's consumer, so that a
    /// changed `ack_wait` or `max_deliver` takes effect on the next start. Also used by the
    /// consumer loop to recover from a NATS that lost its state.
    pub(crate) async fn ensure_consumer(
        &self,
        queue: Queue,
    ) -> Result<Consumer<consumer::pull::Config>, BusError> {
        let stream_config = self.config.stream_config();
        let stream_name = stream_config.name.clone();
        let stream = self
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
            let result = tokio::time::timeout(limit, self.publish_once(subject, &message))
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

    /// The subject to publish a queue's messages on.
    pub fn subject(&self, queue: Queue) -> String {
        queue.subject(&self.config.prefix)
    }

    /// The stream holding every queue (for operators and tests).
    pub fn stream_name(&self) -> String {
        self.config.stream_name()
    }

    pub fn config(&self) -> &BusConfig {
        &self.config
    }

    /// For readiness probes: connected to a server right now.
    pub fn healthy(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// Flushes what was sent (acks included) and closes the connection; for shutdown, after
    /// every `consume` loop has returned.
    pub async fn drain(&self) -> Result<(), BusError> {
        self.client.drain().await.map_err(BusError::Drain)
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

    /// Fire-and-forget core-NATS publish for wake-ups.
    pub async fn notify(&self, subject: &str) {
        if let Err(e) = self.client.publish(subject.to_owned(), Bytes::new()).await {
            warn!(subject, error = %e, "notification not sent; the waiter will poll");
        }
    }

    /// Subscribes to wake-ups on `subject`.
    pub async fn subscribe(&self, subject: &str) -> Result<async_nats::Subscriber, BusError> {
        self.client
            .subscribe(subject.to_owned())
            .await
            .map_err(|e| BusError::Config(format!("cannot subscribe to {subject}: {e}")))
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

/// 100 ms, 200 ms, 400 ms, … capped at 2 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(5))).min(Duration::from_secs(2))
}
