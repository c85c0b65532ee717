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
use tracing::{Instrument, debug, error, warn};

use crate::{Bus, BusError, Queue, bus::Backend, bus::Nats};

/// How long one pull request waits at the server for messages. Short enough that a replica
/// notices a lost connection or a shutdown quickly, long enough not to chatter when idle.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// Pause after an error from NATS (server restarting, consumer gone) before pulling again.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// At shutdown, how long to wait for further messages of the pull in progress (to give them back).
const RELEASE_WAIT: Duration = Duration::from_millis(100);

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

/// Deliveries of a message this version cannot decode before it is dropped.
const UNDECODABLE_ATTEMPTS: i64 = 6;
/// How long an undecodable message waits before its next delivery.
const UNDECODABLE_PAUSE: Duration = Duration::from_secs(10);

impl Outcome {
    /// For a message the handler cannot decode. During a rolling upgrade it may come from a newer
    /// version (a new kind of event) that an older replica does not know: it is given back for a
    /// minute, time for a replica that knows it to take it, and only then dropped, with `what` and
    /// `error` in the log.
    pub fn undecodable(delivery: &Delivery, what: &str, error: impl std::fmt::Display) -> Outcome {
        if delivery.delivered < UNDECODABLE_ATTEMPTS {
            warn!(
                subject = %delivery.subject,
                delivered = delivery.delivered,
                %error,
                "undecodable {what} message, perhaps from a newer version; giving it back for another replica"
            );
            Outcome::Retry(UNDECODABLE_PAUSE)
        } else {
            Outcome::Term(format!("undecodable {what} message: {error}"))
        }
    }
}

impl Bus {
    /// Runs `handler` for every message of `queue` until `shutdown` is cancelled, with at most
    /// `max_in_flight` handlers running at once. NATS errors are logged and retried, never
    /// returned. On shutdown it stops pulling, waits for running handlers up to
    /// [`BusConfig::drain_grace`](crate::BusConfig::drain_grace), releases those still running then
    /// (dropped and NAK'd: another replica takes them at once) and flushes the acks. Messages NATS
    /// had already sent but that were not started come back to another replica after `ack_wait`.
    ///
    /// Metrics, by `queue`: `phlo_deliveries_total`, `phlo_redeliveries_total` (deliveries NATS had
    /// made before: a NAK, an ack timeout or a crashed replica), `phlo_consumer_in_flight` and
    /// `phlo_consumer_acks_total{kind}` (`ack`, `retry`, `term`, `released`).
    ///
    /// The in-process queue behaves the same, except that nothing is ever "sent but not started"
    /// and a handler cannot outlive its process, so there is no `ack_wait`: a released message, or
    /// one whose handler panicked, goes straight back to the front of its queue.
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
        match &self.backend {
            Backend::Nats(nats) => {
                self.consume_nats(nats, queue, max_in_flight, shutdown, handler)
                    .await
            }
            Backend::Memory(memory) => {
                memory
                    .consume(self.config(), queue, max_in_flight, shutdown, handler)
                    .await;
                Ok(())
            }
        }
    }

    async fn consume_nats<H, Fut>(
        &self,
        nats: &Nats,
        queue: Queue,
        max_in_flight: usize,
        shutdown: CancellationToken,
        handler: H,
    ) -> Result<(), BusError>
    where
        H: Fn(Delivery) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let release = CancellationToken::new();
        let mut puller = Puller {
            queue: queue.name(),
            slots: Arc::new(Semaphore::new(max_in_flight)),
            tasks: TaskTracker::new(),
            shutdown: shutdown.clone(),
            release: release.clone(),
            connections: nats.connections(),
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
        let grace = self.config().drain_grace;
        if tokio::time::timeout(grace, puller.tasks.wait())
            .await
            .is_err()
        {
            warn!(
                queue = queue.name(),
                running = puller.tasks.len(),
                ?grace,
                "handlers still running at the drain deadline; releasing their messages"
            );
            release.cancel();
            puller.tasks.wait().await;
        }
        if let Err(err) = nats.client().flush().await {
            warn!(error = %err, "could not flush final acks; NATS will redeliver those messages");
        }
        Ok(())
    }
}

/// The state of one `consume` loop.
struct Puller {
    queue: &'static str,
    /// One permit per handler allowed to run.
    slots: Arc<Semaphore>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// Cancelled when the drain deadline passes: running handlers give their messages back.
    release: CancellationToken,
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
                _ = self.shutdown.cancelled() => {
                    release_unstarted(&mut batch).await;
                    return Ok(());
                }
                // A restarted server forgot this pull request: make a new one now rather than
                // when the client gives up on it.
                Ok(()) = self.connections.changed() => return Ok(()),
                next = batch.next() => next,
            };
            match next {
                None => return Ok(()), // the pull request expired
                Some(Err(err)) => return Err(err),
                Some(Ok(message)) => {
                    self.tasks.spawn(handle(
                        message,
                        permit,
                        handler.clone(),
                        ack_wait,
                        self.queue,
                        self.release.clone(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// At shutdown: messages of the current pull that arrive now will not be started here. NAK them so
/// another replica takes them at once instead of after `ack_wait`.
async fn release_unstarted(batch: &mut pull::Batch) {
    while let Ok(Some(Ok(message))) = tokio::time::timeout(RELEASE_WAIT, batch.next()).await {
        if let Err(err) = message.ack_with(AckKind::Nak(None)).await {
            debug!(error = %err, "NAK at shutdown not sent; NATS redelivers after ack_wait");
        }
    }
}

async fn handle<H, Fut>(
    message: jetstream::Message,
    _permit: OwnedSemaphorePermit,
    handler: H,
    ack_wait: Duration,
    queue: &'static str,
    release: CancellationToken,
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
    let outcome = run_handler(delivery, queue, handler, &release, Some((&acker, ack_wait))).await;
    let kind = match &outcome {
        Some(Outcome::Ack) => AckKind::Ack,
        Some(Outcome::Retry(delay)) => AckKind::Nak(Some(*delay)),
        Some(Outcome::Term(_)) => AckKind::Term,
        None => AckKind::Nak(None),
    };
    settled(queue, &subject, stream_sequence, delivered, &outcome);
    if let Err(err) = acker.ack_with(kind).await {
        warn!(%subject, stream_sequence, error = %err, "ack not sent; NATS will redeliver");
    }
}

/// What both backends do around one handler run: the delivery metrics, the in-flight gauge and the
/// `phlo.consume` span, child of the publisher's (`traceparent`). With `keep_alive`, progress acks
/// tell NATS the handler still runs. `None` when `release` cut the handler off (it was dropped: its
/// transaction rolls back).
pub(crate) async fn run_handler<H, Fut>(
    delivery: Delivery,
    queue: &'static str,
    handler: H,
    release: &CancellationToken,
    keep_alive_with: Option<(&Acker, Duration)>,
) -> Option<Outcome>
where
    H: Fn(Delivery) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let subject = delivery.subject.clone();
    let (stream_sequence, delivered) = (delivery.stream_sequence, delivery.delivered);
    metrics::counter!("phlo_deliveries_total", "queue" => queue).increment(1);
    if delivered > 1 {
        metrics::counter!("phlo_redeliveries_total", "queue" => queue).increment(1);
    }
    let _in_flight = InFlight::new(queue);
    // The handler runs in a span whose parent is the publisher's (the `traceparent` header).
    let span = tracing::info_span!("phlo.consume", queue, %subject, stream_sequence, delivered);
    let traceparent = delivery
        .headers
        .as_ref()
        .and_then(|h| h.get(crate::trace::TRACEPARENT));
    crate::trace::set_remote_parent(&span, traceparent.map(|v| v.as_str()));
    let work = handler(delivery);
    let work = async move {
        match keep_alive_with {
            Some((acker, ack_wait)) => keep_alive(work, acker, ack_wait).await,
            None => work.await,
        }
    };
    tokio::select! {
        outcome = work.instrument(span) => Some(outcome),
        // The drain deadline passed: drop the handler and give the message back now.
        () = release.cancelled() => None,
    }
}

/// Logs what became of a delivery and counts it in `phlo_consumer_acks_total{kind}`.
pub(crate) fn settled(
    queue: &'static str,
    subject: &str,
    stream_sequence: u64,
    delivered: i64,
    outcome: &Option<Outcome>,
) {
    let label = match outcome {
        Some(Outcome::Ack) => "ack",
        Some(Outcome::Retry(delay)) => {
            debug!(%subject, stream_sequence, delivered, ?delay, "retrying later");
            "retry"
        }
        Some(Outcome::Term(reason)) => {
            error!(%subject, stream_sequence, delivered, %reason, "dropping message for good");
            "term"
        }
        None => {
            warn!(%subject, stream_sequence, "released at shutdown; another replica takes it");
            "released"
        }
    };
    metrics::counter!("phlo_consumer_acks_total", "queue" => queue, "kind" => label).increment(1);
}

/// `phlo_consumer_in_flight{queue}`: up while a handler runs, down when it ends or is dropped.
struct InFlight(&'static str);

impl InFlight {
    fn new(queue: &'static str) -> Self {
        metrics::gauge!("phlo_consumer_in_flight", "queue" => queue).increment(1.0);
        InFlight(queue)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("phlo_consumer_in_flight", "queue" => self.0).decrement(1.0);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undecodable_message_is_given_back_for_a_minute_then_dropped() {
        let delivery = |delivered| Delivery {
            subject: "t.step".into(),
            payload: Bytes::from_static(b"{\"kind\":\"from_the_future\"}"),
            headers: None,
            delivered,
            stream_sequence: 1,
        };
        for delivered in 1..UNDECODABLE_ATTEMPTS {
            assert_eq!(
                Outcome::undecodable(&delivery(delivered), "step", "unknown variant"),
                Outcome::Retry(UNDECODABLE_PAUSE),
                "delivery {delivered}"
            );
        }
        assert_eq!(
            Outcome::undecodable(&delivery(UNDECODABLE_ATTEMPTS), "step", "unknown variant"),
            Outcome::Term("undecodable step message: unknown variant".into())
        );
        assert!(
            UNDECODABLE_PAUSE * (UNDECODABLE_ATTEMPTS as u32 - 1) >= Duration::from_secs(50),
            "long enough for a rolling upgrade to bring up a newer replica"
        );
    }
}
