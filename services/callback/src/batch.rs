//! Group commit. Each claim and each result is a commit, and a commit waits for Postgres to flush its
//! WAL; those flushes bounded the service when every attempt had its own (docs/benchmarks.md). So the
//! claims of all the attempts starting at one moment go to Postgres as one statement, and the
//! results of all those ending as another: one flush for many deliveries.
//!
//! No timer: one task claims and one records, each a statement at a time, and whatever queued up
//! while the last statement ran goes into the next (up to [`MAX_BATCH`]). A lone attempt waits for
//! nobody; under load the batches grow with the statements' time.
//!
//! Every waiter gets its own answer: a batch that fails answers each of its waiters with the error
//! (their messages are retried), never drops one. A result is answered only once it is committed, so
//! a message is still acked only after its result is in Postgres.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use phlo_store::callbacks::{self, Claim, Finish};
use phlo_store::sealing::Keyring;
use phlo_store::{Pool, StoreError};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Most claims or results in one statement.
pub const MAX_BATCH: usize = 256;

/// A database failure, as each waiter of the batch it hit sees it.
pub type Failure = Arc<StoreError>;

struct ClaimJob {
    id: Uuid,
    reply: oneshot::Sender<Result<Option<Claim>, Failure>>,
}

struct FinishJob {
    id: Uuid,
    attempt: i32,
    finish: Finish,
    reply: oneshot::Sender<Result<bool, Failure>>,
}

/// The claiming and the recording task of one process. Cheap to clone; the tasks end when the last
/// clone is dropped.
#[derive(Clone)]
pub struct Batcher {
    claims: mpsc::Sender<ClaimJob>,
    results: mpsc::Sender<FinishJob>,
    largest: Arc<Largest>,
}

/// The largest batch so far of each kind.
#[derive(Debug, Default)]
struct Largest {
    claims: AtomicUsize,
    results: AtomicUsize,
}

impl Batcher {
    /// Claims lease attempts for `lease_secs`; a delivery due within `slack_secs` counts as due.
    pub fn start(pool: Pool, keys: Keyring, lease_secs: f64, slack_secs: f64) -> Batcher {
        let (claims, claim_jobs) = mpsc::channel(MAX_BATCH);
        let (results, result_jobs) = mpsc::channel(MAX_BATCH);
        let largest = Arc::new(Largest::default());
        tokio::spawn(claimer(
            pool.clone(),
            keys,
            lease_secs,
            slack_secs,
            claim_jobs,
            largest.clone(),
        ));
        tokio::spawn(recorder(pool, result_jobs, largest.clone()));
        Batcher {
            claims,
            results,
            largest,
        }
    }

    /// The most claims and the most results that went into one statement so far.
    pub fn largest_batches(&self) -> (usize, usize) {
        (
            self.largest.claims.load(Ordering::Relaxed),
            self.largest.results.load(Ordering::Relaxed),
        )
    }

    /// Claims the next attempt of `id` together with the other claims waiting. `None`: the statement
    /// did not claim it, and [`callbacks::explain_claim`] tells why (one delivery at a time: rare, and
    /// it must not hold up the next batch).
    pub async fn claim(&self, id: Uuid) -> Result<Option<Claim>, Failure> {
        let (reply, answer) = oneshot::channel();
        self.claims
            .send(ClaimJob { id, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Records attempt `attempt` of `id` together with the other results waiting; returns once it is
    /// committed: whether the delivery's state was updated (see [`callbacks::finish`]).
    pub async fn finish(&self, id: Uuid, attempt: i32, finish: Finish) -> Result<bool, Failure> {
        let (reply, answer) = oneshot::channel();
        self.results
            .send(FinishJob {
                id,
                attempt,
                finish,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// A task that no longer answers (it panicked): the waiter's message is retried like after any
/// database trouble.
fn stopped() -> Failure {
    Arc::new(StoreError::Db(phlo_store::SqlxError::WorkerCrashed))
}

async fn claimer(
    pool: Pool,
    keys: Keyring,
    lease_secs: f64,
    slack_secs: f64,
    mut jobs: mpsc::Receiver<ClaimJob>,
    largest: Arc<Largest>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // A handler that gave up (dropped at the shutdown deadline) would leave its claim leased for
        // nothing.
        batch.retain(|job: &ClaimJob| !job.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let ids: Vec<Uuid> = batch.iter().map(|job| job.id).collect();
        counted("claim", ids.len(), &largest.claims);
        match callbacks::claim_many(&pool, &keys, &ids, lease_secs, slack_secs).await {
            Ok(claims) => {
                for (job, claim) in batch.drain(..).zip(claims) {
                    let _ = job.reply.send(claim.transpose().map_err(Arc::new));
                }
            }
            Err(e) => answer_all(&mut batch, Arc::new(e), |job| job.reply),
        }
    }
}

async fn recorder(pool: Pool, mut jobs: mpsc::Receiver<FinishJob>, largest: Arc<Largest>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // A handler that gave up is still recorded: its attempt was made.
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        counted("finish", batch.len(), &largest.results);
        match record(&pool, &batch).await {
            Ok(updated) => {
                for (job, updated) in batch.drain(..).zip(updated) {
                    let _ = job.reply.send(Ok(updated));
                }
            }
            // One result the statement cannot take (not a passing trouble) must not cost the others
            // of its batch a duplicate attempt: each on its own, so only that one fails.
            Err(e) if batch.len() > 1 && !e.is_transient() => {
                tracing::warn!(error = %e, results = batch.len(), "recording a batch of callback results failed; recording them one by one");
                for job in batch.drain(..) {
                    let alone = record(&pool, std::slice::from_ref(&job)).await;
                    let _ = job.reply.send(
                        alone
                            .map(|updated| updated.first().copied().unwrap_or(false))
                            .map_err(Arc::new),
                    );
                }
            }
            Err(e) => answer_all(&mut batch, Arc::new(e), |job| job.reply),
        }
    }
}

async fn record(pool: &Pool, jobs: &[FinishJob]) -> Result<Vec<bool>, StoreError> {
    let results: Vec<(Uuid, i32, &Finish)> = jobs
        .iter()
        .map(|job| (job.id, job.attempt, &job.finish))
        .collect();
    let mut conn = pool.acquire().await?;
    callbacks::finish_many(&mut conn, &results).await
}

fn answer_all<J, T>(
    batch: &mut Vec<J>,
    error: Failure,
    reply: impl Fn(J) -> oneshot::Sender<Result<T, Failure>>,
) {
    for job in batch.drain(..) {
        let _ = reply(job).send(Err(error.clone()));
    }
}

/// `phlo_callback_batches_total{kind}` and `phlo_callback_batched_total{kind}`: their ratio is the
/// mean batch size of claims and results.
fn counted(kind: &'static str, size: usize, largest: &AtomicUsize) {
    largest.fetch_max(size, Ordering::Relaxed);
    metrics::counter!("phlo_callback_batches_total", "kind" => kind).increment(1);
    metrics::counter!("phlo_callback_batched_total", "kind" => kind).increment(size as u64);
}
