//! The one consumer loop: pull only what can start now, run handlers with bounded concurrency,
//! keep long ones alive, and turn each handler's [`Outcome`] into an ack.

use std::{future::Future, pin::pin, sync::Arc, time::Duration};

use async_nats::{
    HeaderMap,
    jetstream::{
        self, AckKind,
        consumer::{Consumer, pull},
        message::Acker,
    },
};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, error, warn};

use crate::{Bus, BusError, Queue};

/// How long one pull request waits at the server for messages. Short enough that a replica
/// notices a lost connection or a shutdown quickly, long enough not to chatter when idle.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// Pause after an error from NATS (server restarting, consumer gone) before pulling again.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// One delivery of a message to a handler.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub subject: String,
    pub payload: Bytes,
    /// Includes `Nats-Msg-Id` and whatever the publisher added (trace context).
    pub headers: Option<HeaderMap>,
    /// 1 on first delivery; higher means NATS redelivered (nak, ack timeout or crash).
    pub delivered: i64,
    pub stream_sequence: u64,
}

/// What the handler wants done with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done (or already done): remove it from the queue.
    Ack,
    /// Try again after this delay (counts towards `max_deliver`).
    Retry(Duration),
    /// Permanent failure (undecodable, invalid): never redeliver. The reason is logged.
    Term(String),
}

impl Bus {
    /// Runs `handler` for every message of `queue` until `shutdown` is cancelled, with at most
    /// `max_in_flight` handlers running at once. NATS errors are logged and retried, never
    /// returned. On shutdown it stops pulling, waits for running handlers (give them their own
    /// deadline) and flushes their acks. Messages NATS had already sent but that were not
    /// started come back to another replica after `ack_wait`.
    pub async fn consume<H, Fut>(
        &self,
        queue: Queue,
        max_in_flight: usize,
        shutdown: CancellationToken,
        handler: H,
    ) -> Result<(), BusError>
    where
        H: Fn(Delivery) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        if max_in_flight == 0 {
            return Err(BusError::Config("max_in_flight must be at least 1".into()));
        }
        let mut puller = Puller {
            slots: Arc::new(Semaphore::new(max_in_flight)),
            tasks: TaskTracker::new(),
            shutdown: shutdown.clone(),
            connections: self.connections(),
        };
        let mut consumer = None;
        while !shutdown.is_cancelled() {
            let current = match consumer.take() {
                Some(current) => current,
                None => match self.ensure_consumer(queue).await {
                    Ok(fresh) => fresh,
                    Err(err) => {
                        warn!(queue = queue.name(), error = %err, "cannot open consumer; retrying");
                        pause(&shutdown).await;
                        continue;
                    }
                },
            };
            match puller.pull_batch(&current, handler.clone()).await {
                Ok(()) => consumer = Some(current),
                Err(err) => {
                    // E.g. NATS restarting or the consumer deleted: open it again after a pause.
                    warn!(queue = queue.name(), error = %err, "pulling messages failed; retrying");
                    pause(&shutdown).await;
                }
            }
        }
        puller.tasks.close();
        puller.tasks.wait().await;
        if let Err(err) = self.client().flush().await {
            warn!(error = %err, "could not flush final acks; NATS will redeliver those messages");
        }
        Ok(())
    }
}

/// The state of one `consume` loop.
struct Puller {
    /// One permit per handler allowed to run.
    slots: Arc<Semaphore>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    connections: watch::Receiver<u64>,
}

impl Puller {
    /// One pull request for exactly as many messages as there are free slots, so that nothing
    /// waits in this replica's buffer while other replicas are idle.
    async fn pull_batch<H, Fut>(
        &mut self,
        consumer: &Consumer<pull::Config>,
        handler: H,
    ) -> Result<(), async_nats::Error>
    where
        H: Fn(Delivery) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let first = tokio::select! {
            _ = self.shutdown.cancelled() => return Ok(()),
            permit = self.slots.clone().acquire_owned() => permit?,
        };
        let mut permits = vec![first];
        while let Ok(permit) = self.slots.clone().try_acquire_owned() {
            permits.push(permit);
        }
        self.connections.mark_unchanged();
        let mut batch = consumer
            .batch()
            .max_messages(permits.len())
            .expires(PULL_EXPIRES)
            .messages()
            .await?;
        let ack_wait = consumer.cached_info().config.ack_wait;
        // Unused permits go back to the semaphore when `permits` drops.
        while let Some(permit) = permits.pop() {
            let next = tokio::select! {
                _ = self.shutdown.cancelled() => return Ok(()),
                // A restarted server forgot this pull request: make a new one now rather than
                // when the client gives up on it.
                Ok(()) = self.connections.changed() => return Ok(()),
                next = batch.next() => next,
            };
            match next {
                None => return Ok(()), // the pull request expired
                Some(Err(err)) => return Err(err),
                Some(Ok(message)) => {
                    self.tasks
                        .spawn(handle(message, permit, handler.clone(), ack_wait));
                }
            }
        }
        Ok(())
    }
}

async fn handle<H, Fut>(
    message: jetstream::Message,
    _permit: OwnedSemaphorePermit,
    handler: H,
    ack_wait: Duration,
) where
    H: Fn(Delivery) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let (delivered, stream_sequence) = match message.info() {
        Ok(info) => (info.delivered, info.stream_sequence),
        Err(err) => {
            // Only a non-JetStream reply subject lacks these; the ack below would fail too.
            warn!(error = %err, "delivery without JetStream metadata");
            (1, 0)
        }
    };
    let (message, acker) = message.split();
    let delivery = Delivery {
        subject: message.subject.to_string(),
        payload: message.payload,
        headers: message.headers,
        delivered,
        stream_sequence,
    };
    let subject = delivery.subject.clone();
    let outcome = keep_alive(handler(delivery), &acker, ack_wait).await;
    let kind = match outcome {
        Outcome::Ack => AckKind::Ack,
        Outcome::Retry(delay) => {
            debug!(%subject, stream_sequence, delivered, ?delay, "retrying later");
            AckKind::Nak(Some(delay))
        }
        Outcome::Term(reason) => {
            error!(%subject, stream_sequence, delivered, %reason, "dropping message for good");
            AckKind::Term
        }
    };
    if let Err(err) = acker.ack_with(kind).await {
        warn!(%subject, stream_sequence, error = %err, "ack not sent; NATS will redeliver");
    }
}

/// Runs the handler, telling NATS "still working" every half `ack_wait` so a long step is not
/// redelivered to another replica while it runs.
async fn keep_alive<Fut: Future<Output = Outcome>>(
    work: Fut,
    acker: &Acker,
    ack_wait: Duration,
) -> Outcome {
    let period = (ack_wait / 2).max(Duration::from_millis(100));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut work = pin!(work);
    loop {
        tokio::select! {
            outcome = &mut work => return outcome,
            _ = ticks.tick() => {
                if let Err(err) = acker.ack_with(AckKind::Progress).await {
                    warn!(error = %err, "progress ack not sent");
                }
            }
        }
    }
}

async fn pause(shutdown: &CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(ERROR_PAUSE) => {}
    }
}
