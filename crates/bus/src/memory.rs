//! The in-process queue: the bus of `phlo serve` without NATS. The same contract as the JetStream
//! backend (per-queue FIFO, publish dedup by msg id within the duplicate window, the consumer loop
//! with its outcomes, limits, metrics and trace context) for services that share one process.
//!
//! Nothing here survives the process. That is the same loss NATS may inflict (a lost stream, a
//! message past `max_deliver`): Postgres is the source of truth, the outbox relay re-publishes what
//! was not published and the reconciler re-drives runs that stopped moving.

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    sync::{
        Arc, Mutex, MutexGuard, OnceLock, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use async_nats::{HeaderMap, header::NATS_MESSAGE_ID};
use bytes::Bytes;
use tokio::{
    sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast},
    time::Instant,
};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::warn;

use crate::{
    BusConfig, BusError, Delivery, Outcome, Published, Queue,
    consume::{run_handler, settled},
};

/// Wake-ups buffered per subscriber before the slowest one skips some (it then looks anyway).
const WAKEUP_BUFFER: usize = 256;

const QUEUES: usize = Queue::ALL.len();

static ALLOWED: AtomicBool = AtomicBool::new(false);

/// Declares that this process runs every service that uses the bus (`phlo serve`), so that
/// [`Bus::connect`](crate::Bus::connect) accepts the URL `memory:`. A process running only some of
/// them (a standalone gateway, worker or callback service) must not: whatever it publishes would
/// never reach the others.
pub fn allow_in_memory() {
    ALLOWED.store(true, Ordering::SeqCst);
}

pub(crate) fn allowed() -> bool {
    ALLOWED.load(Ordering::SeqCst)
}

/// One prefix's queues, shared by every `Bus` of the process with that prefix.
#[derive(Debug)]
pub(crate) struct Memory {
    prefix: String,
    duplicate_window: Duration,
    state: Mutex<State>,
    /// Signalled when a queue gains a message; indexed by [`index`].
    arrivals: [Notify; QUEUES],
    wakeups: broadcast::Sender<Arc<str>>,
}

#[derive(Debug, Default)]
struct State {
    /// Stream-wide, like a JetStream stream sequence.
    last_sequence: u64,
    /// Messages stored and not yet acked, terminated or given up on.
    held: u64,
    /// Indexed by [`index`].
    queues: [VecDeque<Stored>; QUEUES],
    /// msg id → the sequence it was stored under, for the dedup window.
    seen: HashMap<String, (u64, Instant)>,
    /// The same ids in publish order, so expiry is cheap.
    seen_order: VecDeque<(Instant, String)>,
}

#[derive(Debug, Clone)]
struct Stored {
    sequence: u64,
    subject: String,
    payload: Bytes,
    headers: HeaderMap,
    /// Deliveries so far.
    delivered: i64,
}

/// The queue's slot in the per-queue arrays.
fn index(queue: Queue) -> usize {
    match queue {
        Queue::Step => 0,
        Queue::Http => 1,
        Queue::Carrier => 2,
        Queue::Callback => 3,
    }
}

impl Memory {
    /// The process's queues for `prefix`, made on first use. They live as long as the process (as a
    /// NATS stream outlives its clients), so a service that reconnects finds its messages.
    pub(crate) fn for_prefix(prefix: &str, duplicate_window: Duration) -> Arc<Memory> {
        static ALL: OnceLock<Mutex<HashMap<String, Arc<Memory>>>> = OnceLock::new();
        let mut all = lock(ALL.get_or_init(Default::default));
        all.entry(prefix.to_owned())
            .or_insert_with(|| {
                tracing::info!(
                    prefix,
                    "queueing in this process (bus URL `memory:`), without NATS"
                );
                Arc::new(Memory {
                    prefix: prefix.to_owned(),
                    duplicate_window,
                    state: Mutex::default(),
                    arrivals: Default::default(),
                    wakeups: broadcast::channel(WAKEUP_BUFFER).0,
                })
            })
            .clone()
    }

    pub(crate) fn publish(
        &self,
        subject: &str,
        msg_id: &str,
        payload: Bytes,
        headers: Option<HeaderMap>,
    ) -> Result<Published, BusError> {
        let queue = Queue::ALL
            .into_iter()
            .find(|q| q.subject(&self.prefix) == subject)
            .ok_or_else(|| BusError::UnknownSubject {
                subject: subject.to_owned(),
            })?;
        let mut headers = headers.unwrap_or_default();
        // What NATS hands consumers too.
        headers.insert(NATS_MESSAGE_ID, msg_id);
        let now = Instant::now();
        let sequence = {
            let mut state = lock(&self.state);
            state.forget_ids_before(now.checked_sub(self.duplicate_window));
            if let Some((sequence, _)) = state.seen.get(msg_id) {
                return Ok(Published {
                    sequence: *sequence,
                    duplicate: true,
                });
            }
            state.last_sequence += 1;
            state.held += 1;
            let sequence = state.last_sequence;
            state.seen.insert(msg_id.to_owned(), (sequence, now));
            state.seen_order.push_back((now, msg_id.to_owned()));
            state.queues[index(queue)].push_back(Stored {
                sequence,
                subject: subject.to_owned(),
                payload,
                headers,
                delivered: 0,
            });
            sequence
        };
        self.arrivals[index(queue)].notify_waiters();
        Ok(Published {
            sequence,
            duplicate: false,
        })
    }

    pub(crate) fn held(&self) -> u64 {
        lock(&self.state).held
    }

    /// A message leaves for good.
    fn forget(&self) {
        let mut state = lock(&self.state);
        state.held = state.held.saturating_sub(1);
    }

    pub(crate) fn notify(&self, subject: &str) {
        // An error only means nobody listens.
        let _ = self.wakeups.send(Arc::from(subject));
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.wakeups.subscribe()
    }

    /// Waits for the oldest message of `queue` and takes it, counting the delivery.
    async fn take(&self, queue: Queue) -> Stored {
        loop {
            let arrival = self.arrivals[index(queue)].notified();
            let mut arrival = std::pin::pin!(arrival);
            // Registered before looking, so a publish between the look and the wait still wakes us.
            arrival.as_mut().enable();
            if let Some(mut stored) = lock(&self.state).queues[index(queue)].pop_front() {
                stored.delivered += 1;
                return stored;
            }
            arrival.await;
        }
    }

    /// Puts a message back for another delivery: at the front now (`None`), or at the back after
    /// a delay; unless it has had `max_deliver` deliveries, when it is dropped as NATS would stop
    /// delivering it.
    fn give_back(
        self: &Arc<Self>,
        queue: Queue,
        stored: Stored,
        delay: Option<Duration>,
        max_deliver: i64,
    ) {
        if max_deliver > 0 && stored.delivered >= max_deliver {
            warn!(
                subject = %stored.subject,
                stream_sequence = stored.sequence,
                delivered = stored.delivered,
                "maximum deliveries reached; dropping the message (the reconciler re-drives its run)"
            );
            self.forget();
            return;
        }
        match delay {
            None => {
                lock(&self.state).queues[index(queue)].push_front(stored);
                self.arrivals[index(queue)].notify_waiters();
            }
            Some(delay) => {
                let memory = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    lock(&memory.state).queues[index(queue)].push_back(stored);
                    memory.arrivals[index(queue)].notify_waiters();
                });
            }
        }
    }

    /// The consumer loop of [`Bus::consume`](crate::Bus::consume) for this backend.
    pub(crate) async fn consume<H, Fut>(
        self: &Arc<Self>,
        config: &BusConfig,
        queue: Queue,
        max_in_flight: usize,
        shutdown: CancellationToken,
        handler: H,
    ) where
        H: Fn(Delivery) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let slots = Arc::new(Semaphore::new(max_in_flight));
        let tasks = TaskTracker::new();
        let release = CancellationToken::new();
        loop {
            // Shutdown first: a message is only taken when a handler will start on it at once.
            let permit = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_closed) => break,
                },
            };
            let stored = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                stored = self.take(queue) => stored,
            };
            let lease = Lease {
                memory: self.clone(),
                queue,
                max_deliver: config.max_deliver,
                stored: Some(stored),
            };
            tasks.spawn(handle(lease, permit, handler.clone(), release.clone()));
        }
        tasks.close();
        let grace = config.drain_grace;
        if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
            warn!(
                queue = queue.name(),
                running = tasks.len(),
                ?grace,
                "handlers still running at the drain deadline; releasing their messages"
            );
            release.cancel();
            tasks.wait().await;
        }
    }
}

impl State {
    fn forget_ids_before(&mut self, horizon: Option<Instant>) {
        let Some(horizon) = horizon else { return };
        while let Some((at, _)) = self.seen_order.front()
            && *at <= horizon
        {
            if let Some((at, id)) = self.seen_order.pop_front()
                && self
                    .seen
                    .get(&id)
                    .is_some_and(|(_, seen_at)| *seen_at == at)
            {
                self.seen.remove(&id);
            }
        }
    }
}

/// A message being handled. Dropped without [`Lease::settle`] (its handler panicked), it goes back
/// to its queue, as NATS redelivers after `ack_wait` a message nobody acked.
struct Lease {
    memory: Arc<Memory>,
    queue: Queue,
    max_deliver: i64,
    stored: Option<Stored>,
}

impl Lease {
    fn settle(mut self, outcome: &Option<Outcome>) {
        let Some(stored) = self.stored.take() else {
            return;
        };
        match outcome {
            // Acked, or terminated: gone for good (`settled` logged why).
            Some(Outcome::Ack | Outcome::Term(_)) => self.memory.forget(),
            Some(Outcome::Retry(delay)) => {
                self.memory
                    .give_back(self.queue, stored, Some(*delay), self.max_deliver)
            }
            None => self
                .memory
                .give_back(self.queue, stored, None, self.max_deliver),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(stored) = self.stored.take() {
            warn!(
                subject = %stored.subject,
                stream_sequence = stored.sequence,
                "handler ended without an outcome; the message goes back to its queue"
            );
            self.memory
                .give_back(self.queue, stored, None, self.max_deliver);
        }
    }
}

async fn handle<H, Fut>(
    lease: Lease,
    _permit: OwnedSemaphorePermit,
    handler: H,
    release: CancellationToken,
) where
    H: Fn(Delivery) -> Fut,
    Fut: Future<Output = Outcome>,
{
    let Some(stored) = lease.stored.as_ref() else {
        return;
    };
    let delivery = Delivery {
        subject: stored.subject.clone(),
        payload: stored.payload.clone(),
        headers: Some(stored.headers.clone()),
        delivered: stored.delivered,
        stream_sequence: stored.sequence,
    };
    let (subject, stream_sequence, delivered) =
        (stored.subject.clone(), stored.sequence, stored.delivered);
    let queue = lease.queue.name();
    let outcome = run_handler(delivery, queue, handler, &release, None).await;
    settled(queue, &subject, stream_sequence, delivered, &outcome);
    lease.settle(&outcome);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays consistent under a panic (every change is one push or pop).
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
