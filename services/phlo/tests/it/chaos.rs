//! Fault tests under load: 1,000 runs through the gateway's HTTP API while a worker is `kill -9`ed, or
//! while NATS is `kill -9`ed and restarted. Afterwards, read straight from Postgres: every run completed,
//! every step was applied exactly once (one step row per run, token and sequence, in order, without
//! gaps) and a phlo-scoped counter equals the number of runs that passed it.
//!
//! The assertions are about outcomes only; the timings printed (`--nocapture`) document the figures.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::support::{Account, NatsServer, Stack};

const START: &str = "c4a05000-0000-4000-8000-000000000000";
const BRANCH_1: &str = "c4a05000-0000-4000-8000-000000000001";
const COUNTER_1: &str = "c4a05000-0000-4000-8000-000000000002";
const BRANCH_2: &str = "c4a05000-0000-4000-8000-000000000003";
const COUNTER_2: &str = "c4a05000-0000-4000-8000-000000000004";

/// Runs fired per test.
const RUNS: usize = 1_000;
/// API requests in flight at once.
const IN_FLIGHT: usize = 32;
/// How long the runs may take to settle once all are fired.
const SETTLE: Duration = Duration::from_secs(120);
/// The journal every run must have: (token, seq, node, outcome).
pub(crate) const JOURNAL: [(i32, i32, &str, &str); 5] = [
    (0, 0, "Start", "done"),
    (0, 1, "Branch_1", "done"),
    (0, 2, "Counter_1", "done"),
    (0, 3, "Branch_2", "done"),
    (0, 4, "Counter_2", "done"),
];

/// The load tests would slow each other down (and everything else) on a small machine: one at a time.
pub(crate) static LOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Five non-voice steps per run, no network: Start → Branch → Counter (phlo) → Branch → Counter (run).
pub(crate) fn load_phlo() -> Value {
    json!({
        "name": "Chaos load",
        "nodes": [
            { "node_id": START, "name": "Start", "type": "start",
              "options": { "payload": { "kind": "load" } },
              "transitions": { "api_request": BRANCH_1 } },
            { "node_id": BRANCH_1, "name": "Branch_1", "type": "branch",
              "options": { "lhs": "{{Start.http.params.kind}}",
                           "conditions": [{ "alias": "load", "operation": "equals", "rhs": "load" }] },
              "transitions": { "load": COUNTER_1 } },
            { "node_id": COUNTER_1, "name": "Counter_1", "type": "counter",
              "options": { "max_count": 1_000_000_000, "scope": "phlo" },
              "transitions": { "count_not_reached": BRANCH_2 } },
            { "node_id": BRANCH_2, "name": "Branch_2", "type": "branch",
              "options": { "lhs": "{{Counter_1.max_count}}",
                           "conditions": [{ "alias": "big", "operation": "equals", "rhs": "1000000000" }] },
              "transitions": { "big": COUNTER_2 } },
            { "node_id": COUNTER_2, "name": "Counter_2", "type": "counter",
              "options": { "max_count": 1, "scope": "run" } },
        ]
    })
}

/// What the API answered to the run requests.
#[derive(Default)]
pub(crate) struct Fired {
    /// Runs the API answered 201 for.
    pub(crate) created: Vec<Uuid>,
    /// Requests that got anything else: (index, status or error).
    pub(crate) failed: Vec<(usize, String)>,
    pub(crate) elapsed: Duration,
    /// Slowest answer.
    pub(crate) slowest: Duration,
}

/// Fires `runs` run requests, `IN_FLIGHT` at a time, in a task; `answered` counts the answers so far.
pub(crate) fn fire(
    stack: &Stack,
    acct: &Account,
    phlo_id: &str,
    runs: usize,
    answered: Arc<AtomicUsize>,
) -> JoinHandle<Fired> {
    let client = stack.http.clone();
    let url = stack.url(&format!("/v1/account/{}/phlo/{phlo_id}", acct.auth_id));
    let acct = acct.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..runs {
            let permit = slots.clone().acquire_owned().await.expect("semaphore");
            let (client, url, acct, answered) =
                (client.clone(), url.clone(), acct.clone(), answered.clone());
            tasks.spawn(async move {
                let sent = Instant::now();
                let reply = client
                    .post(&url)
                    .basic_auth(&acct.auth_id, Some(&acct.token))
                    .json(&json!({ "i": i }))
                    .send()
                    .await;
                let result = match reply {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body: Value = r.json().await.unwrap_or(Value::Null);
                        match body["phlo_run_id"]
                            .as_str()
                            .and_then(|id| Uuid::parse_str(id).ok())
                        {
                            Some(id) if status == 201 => Ok(id),
                            _ => Err(format!("{status}: {body}")),
                        }
                    }
                    Err(e) => Err(format!("request failed: {e}")),
                };
                answered.fetch_add(1, Ordering::SeqCst);
                drop(permit);
                (i, result, sent.elapsed())
            });
        }
        let mut fired = Fired::default();
        while let Some(joined) = tasks.join_next().await {
            let (i, result, took) = joined.expect("request task");
            fired.slowest = fired.slowest.max(took);
            match result {
                Ok(id) => fired.created.push(id),
                Err(e) => fired.failed.push((i, e)),
            }
        }
        fired.failed.sort();
        fired.elapsed = started.elapsed();
        fired
    })
}

pub(crate) async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    n
}

/// Waits until `answered` reaches `n`, then until steps are being applied.
pub(crate) async fn wait_for_load(pool: &PgPool, answered: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while answered.load(Ordering::SeqCst) < n
        || scalar(pool, "SELECT count(*) FROM steps").await == 0
    {
        assert!(Instant::now() < deadline, "the load never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded by `SETTLE`) until no run is active or queued; returns how long that took.
pub(crate) async fn settle(pool: &PgPool) -> Duration {
    let started = Instant::now();
    let mut report = Instant::now();
    loop {
        let active = scalar(
            pool,
            "SELECT count(*) FROM runs WHERE status IN ('active', 'queued')",
        )
        .await;
        if active == 0 {
            return started.elapsed();
        }
        if report.elapsed() > Duration::from_secs(5) {
            let steps = scalar(pool, "SELECT count(*) FROM steps").await;
            let outbox = scalar(pool, "SELECT count(*) FROM outbox").await;
            println!("  … {active} runs still active, {steps} steps applied, {outbox} outbox rows");
            report = Instant::now();
        }
        assert!(
            started.elapsed() < SETTLE,
            "{active} runs still active {SETTLE:?} after the load"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls until `sql` counts zero (rows that go away shortly after their run completed), bounded.
async fn eventually_empty(pool: &PgPool, sql: &'static str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = scalar(pool, sql).await;
        if n == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{n} {what} left 30 s after every run ended"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Checks the invariants from Postgres and returns how many runs exist. `created` are the runs the API
/// answered 201 for: each must exist and have completed. Runs whose request failed may exist too (the
/// run was committed but the answer was lost); they must have completed as well.
pub(crate) async fn check_invariants(pool: &PgPool, phlo_id: Uuid, created: &[Uuid]) -> usize {
    // Every run completed, with exactly the journal's steps.
    let runs: Vec<(Uuid, String, i32, Option<String>)> =
        sqlx::query_as("SELECT id, status, steps, error FROM runs")
            .fetch_all(pool)
            .await
            .expect("runs");
    let by_id: BTreeMap<Uuid, (String, i32, Option<String>)> = runs
        .into_iter()
        .map(|(id, status, steps, error)| (id, (status, steps, error)))
        .collect();
    let n = by_id.len();
    let not_completed: Vec<_> = by_id
        .iter()
        .filter(|(_, (status, ..))| status != "completed")
        .take(5)
        .collect();
    assert!(
        not_completed.is_empty(),
        "runs that did not complete (first 5): {not_completed:?}"
    );
    let missing: Vec<_> = created
        .iter()
        .filter(|id| !by_id.contains_key(id))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "runs the API created that are not in Postgres: {missing:?}"
    );
    let distinct: HashSet<&Uuid> = created.iter().collect();
    assert_eq!(
        distinct.len(),
        created.len(),
        "the API returned a run id twice"
    );
    let wrong_count: Vec<_> = by_id
        .iter()
        .filter(|(_, (_, steps, _))| *steps != JOURNAL.len() as i32)
        .take(5)
        .collect();
    assert!(
        wrong_count.is_empty(),
        "runs whose step count is not {} (first 5): {wrong_count:?}",
        JOURNAL.len()
    );

    // One step row per (run, token, seq): the primary key says so; check it anyway, then check that each
    // run's journal is exactly the expected one (seqs 0..n without gaps, node by node).
    let (rows, distinct_keys): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT (run_id, token, seq)) FROM steps")
            .fetch_one(pool)
            .await
            .expect("steps");
    assert_eq!(
        rows, distinct_keys,
        "duplicate (run_id, token, seq) step rows"
    );
    assert_eq!(rows, (n * JOURNAL.len()) as i64, "step rows for {n} runs");
    let steps: Vec<(Uuid, i32, i32, String, String)> = sqlx::query_as(
        "SELECT run_id, token, seq, node_name, outcome FROM steps ORDER BY run_id, token, seq",
    )
    .fetch_all(pool)
    .await
    .expect("steps");
    let mut journals: BTreeMap<Uuid, Vec<(i32, i32, String, String)>> = BTreeMap::new();
    for (run_id, token, seq, node, outcome) in steps {
        journals
            .entry(run_id)
            .or_default()
            .push((token, seq, node, outcome));
    }
    let expected: Vec<(i32, i32, String, String)> = JOURNAL
        .iter()
        .map(|(t, s, n, o)| (*t, *s, (*n).to_owned(), (*o).to_owned()))
        .collect();
    assert_eq!(journals.len(), n, "runs with steps");
    for (run_id, journal) in &journals {
        assert!(
            by_id.contains_key(run_id),
            "steps of an unknown run {run_id}"
        );
        assert_eq!(journal, &expected, "journal of run {run_id}");
    }

    // The phlo-scoped counter counted each run once: its value is the number of runs, and the counts the
    // Counter_1 steps saw are exactly 1..=n (no increment lost, none applied twice).
    let counter_1 = Uuid::parse_str(COUNTER_1).expect("uuid");
    let (value,): (i64,) = sqlx::query_as(
        "SELECT value FROM counters WHERE owner_id = $1 AND node_id = $2 AND scope = 'phlo'",
    )
    .bind(phlo_id)
    .bind(counter_1)
    .fetch_one(pool)
    .await
    .expect("the phlo-scoped counter");
    assert_eq!(
        value, n as i64,
        "phlo-scoped counter vs runs that passed it"
    );
    let mut seen: Vec<(i64,)> = sqlx::query_as(
        "SELECT (variables->>'count')::bigint FROM steps WHERE node_name = 'Counter_1'",
    )
    .fetch_all(pool)
    .await
    .expect("counts");
    seen.sort_unstable();
    let seen: Vec<i64> = seen.into_iter().map(|(c,)| c).collect();
    assert!(
        seen.iter().copied().eq(1..=n as i64),
        "Counter_1 saw counts other than 1..={n}"
    );

    // The run-scoped counter: one row per run, each 1.
    let counter_2 = Uuid::parse_str(COUNTER_2).expect("uuid");
    let (rows, min, max, owners): (i64, Option<i64>, Option<i64>, i64) = sqlx::query_as(
        "SELECT count(*), min(c.value), max(c.value), count(r.id) FROM counters c LEFT JOIN runs r ON r.id = c.owner_id
         WHERE c.scope = 'run' AND c.node_id = $1",
    )
    .bind(counter_2)
    .fetch_one(pool)
    .await
    .expect("run counters");
    assert_eq!(
        (rows, owners),
        (n as i64, n as i64),
        "one run-scoped counter per run"
    );
    assert_eq!(
        (min, max),
        (Some(1), Some(1)),
        "every run-scoped counter is 1"
    );
    let (count_reached,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM steps WHERE node_name = 'Counter_2' AND state = 'count_reached' AND (variables->>'count')::bigint = 1")
            .fetch_one(pool)
            .await
            .expect("Counter_2 steps");
    assert_eq!(count_reached, n as i64, "every run's Counter_2 counted 1");

    // Nothing left over: every token ended, no timers, and the outbox drains (the last publish of a run
    // is deleted just after it was consumed, or by the relay).
    assert_eq!(
        scalar(pool, "SELECT count(*) FROM tokens WHERE status <> 'ended'").await,
        0,
        "live tokens"
    );
    assert_eq!(
        scalar(pool, "SELECT count(*) FROM tokens").await,
        n as i64,
        "one token per run"
    );
    assert_eq!(
        scalar(pool, "SELECT count(*) FROM timers").await,
        0,
        "timers left"
    );
    eventually_empty(pool, "SELECT count(*) FROM outbox", "outbox rows").await;
    n
}

/// Waits until the step consumer has nothing delivered-but-unacked and nothing undelivered: the dead
/// worker's messages (or the acks a killed NATS forgot) come back after `ack_wait` (30 s) and must be
/// dropped by the seq fence. Bounded; returns how long it took.
pub(crate) async fn drain_bus(stack: &Stack) -> Duration {
    let started = Instant::now();
    let client = async_nats::connect(&stack.nats_url).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    let stream = js
        .get_stream(format!("{}_WORK", stack.prefix.to_uppercase()))
        .await
        .expect("stream");
    loop {
        let c = stream
            .consumer_info(format!("{}-step", stack.prefix))
            .await
            .expect("consumer info");
        if c.num_ack_pending == 0 && c.num_pending == 0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(75),
            "the step consumer never drained: {} unacked, {} undelivered",
            c.num_ack_pending,
            c.num_pending
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Stream and step-consumer figures: messages stored, deliveries, deliveries unacked. After a NATS
/// `kill -9` the consumer restarts from its last flushed state: deliveries undercount, and acks sent
/// shortly before the kill are forgotten (those messages come back after `ack_wait`).
pub(crate) async fn bus_figures(stack: &Stack, applied: usize) {
    let Ok(client) = async_nats::connect(&stack.nats_url).await else {
        println!("  (NATS figures unavailable)");
        return;
    };
    let js = async_nats::jetstream::new(client);
    let Ok(mut stream) = js
        .get_stream(format!("{}_WORK", stack.prefix.to_uppercase()))
        .await
    else {
        println!("  (stream figures unavailable)");
        return;
    };
    let stored = stream
        .info()
        .await
        .map(|i| i.state.last_sequence)
        .unwrap_or_default();
    match stream.consumer_info(format!("{}-step", stack.prefix)).await {
        Ok(c) => {
            let deliveries = c.delivered.consumer_sequence;
            println!(
                "  bus: {stored} step messages stored ({} beyond the {applied} applied steps: re-drives); \
                 {deliveries} deliveries ({} not applied: duplicates and stale re-drives the seq fence \
                 dropped); {} delivered but unacked (redelivered after ack_wait)",
                stored.saturating_sub(applied as u64),
                deliveries.saturating_sub(applied as u64),
                c.num_ack_pending,
            );
        }
        Err(e) => println!("  bus: {stored} step messages stored (consumer info: {e})"),
    }
}

/// How long NATS stays down: 2 s, or `PHLO_CHAOS_NATS_OUTAGE_SECS` (longer than the 10 s publish retry
/// budget makes the gateway give up publishing, leaving the first steps to the outbox relay).
fn outage() -> Duration {
    let secs = std::env::var("PHLO_CHAOS_NATS_OUTAGE_SECS")
        .ok()
        .and_then(|s| s.parse().ok());
    Duration::from_secs_f64(secs.unwrap_or(2.0))
}

/// The processes log every failed publish and lost connection at `warn`, hundreds of lines under these
/// faults: only errors, unless `PHLO_TEST_LOG` asks for more.
pub(crate) fn quiet() -> Vec<(&'static str, &'static str)> {
    if std::env::var_os("PHLO_TEST_LOG").is_some() {
        vec![]
    } else {
        vec![("RUST_LOG", "error")]
    }
}

pub(crate) struct Setup {
    pub(crate) stack: Stack,
    pub(crate) acct: Account,
    pub(crate) phlo_id: String,
    pub(crate) pool: PgPool,
}

pub(crate) async fn setup(stack: Stack) -> Setup {
    let acct = stack.account().await;
    let phlo_id = stack.create_phlo(&acct, load_phlo()).await;
    let pool = sqlx::PgPool::connect(&stack.db_url).await.expect("pool");
    Setup {
        stack,
        acct,
        phlo_id,
        pool,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_a_worker_mid_load() {
    let _one_at_a_time = LOAD.lock().await;
    let Setup {
        mut stack,
        acct,
        phlo_id,
        pool,
    } = setup(Stack::start_with(3, &quiet()).await).await;
    let started = Instant::now();
    let answered = Arc::new(AtomicUsize::new(0));
    let load = fire(&stack, &acct, &phlo_id, RUNS, answered.clone());

    wait_for_load(&pool, &answered, RUNS / 3).await;
    let steps_before = scalar(&pool, "SELECT count(*) FROM steps").await;
    stack.kill_worker(1);
    let killed_at = started.elapsed();
    println!(
        "kill -9 of worker 1 at {killed_at:.1?}: {} runs answered, {steps_before} steps applied; {} workers left",
        answered.load(Ordering::SeqCst),
        stack.live_workers()
    );

    let fired = load.await.expect("load task");
    let settled = settle(&pool).await;
    let total = started.elapsed();
    println!(
        "fired {} runs in {:.1?} ({:.0} runs/s, slowest answer {:.1?}); all ended {settled:.1?} later; total {total:.1?}",
        RUNS,
        fired.elapsed,
        RUNS as f64 / fired.elapsed.as_secs_f64(),
        fired.slowest,
    );
    assert!(
        fired.failed.is_empty(),
        "run requests failed although only a worker died: {:?}",
        fired.failed
    );
    assert_eq!(fired.created.len(), RUNS);

    let phlo_uuid = Uuid::parse_str(&phlo_id).expect("uuid");
    let n = check_invariants(&pool, phlo_uuid, &fired.created).await;
    assert_eq!(n, RUNS, "runs in Postgres");
    settle_and_recheck(&stack, &pool, phlo_uuid, &fired.created, n, total).await;
    pool.close().await;
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_restart_mid_load() {
    let _one_at_a_time = LOAD.lock().await;
    // Declared first, dropped last: the stack's processes go before their NATS does.
    let mut nats = NatsServer::start().await;
    let url = nats.url.clone();
    let Setup {
        mut stack,
        acct,
        phlo_id,
        pool,
    } = setup(Stack::start_custom(2, &url, &quiet()).await).await;
    let started = Instant::now();
    let answered = Arc::new(AtomicUsize::new(0));
    let load = fire(&stack, &acct, &phlo_id, RUNS, answered.clone());

    wait_for_load(&pool, &answered, RUNS / 3).await;
    let steps_before = scalar(&pool, "SELECT count(*) FROM steps").await;
    nats.kill();
    let killed_at = started.elapsed();
    let answered_at_kill = answered.load(Ordering::SeqCst);
    tokio::time::sleep(outage()).await;
    let answered_in_outage = answered.load(Ordering::SeqCst) - answered_at_kill;
    let outbox_in_outage = scalar(&pool, "SELECT count(*) FROM outbox").await;
    nats.restart().await;
    println!(
        "kill -9 of nats-server at {killed_at:.1?} ({answered_at_kill} runs answered, {steps_before} steps applied); \
         restarted {:.1?} later; {answered_in_outage} answers and {outbox_in_outage} outbox rows during the outage",
        started.elapsed() - killed_at,
    );

    let fired = load.await.expect("load task");
    let settled = settle(&pool).await;
    let total = started.elapsed();
    println!(
        "fired {} runs in {:.1?} ({:.0} runs/s, slowest answer {:.1?}): {} created, {} failed; all ended {settled:.1?} later; total {total:.1?}",
        RUNS,
        fired.elapsed,
        RUNS as f64 / fired.elapsed.as_secs_f64(),
        fired.slowest,
        fired.created.len(),
        fired.failed.len(),
    );
    for (i, e) in &fired.failed {
        println!("  run request {i} failed: {e}");
    }

    let phlo_uuid = Uuid::parse_str(&phlo_id).expect("uuid");
    let n = check_invariants(&pool, phlo_uuid, &fired.created).await;
    // Runs whose request failed may or may not exist (committed, answer lost); all that exist completed.
    assert!(
        n >= fired.created.len() && n <= RUNS,
        "{n} runs in Postgres for {} created",
        fired.created.len()
    );
    println!(
        "  {n} runs in Postgres ({} beyond those answered 201)",
        n - fired.created.len()
    );
    settle_and_recheck(&stack, &pool, phlo_uuid, &fired.created, n, total).await;
    pool.close().await;
    stack.cleanup().await;
    nats.kill();
}

/// Prints the throughput, then waits for the bus's late redeliveries (after the ack wait) and checks that
/// they changed nothing.
async fn settle_and_recheck(
    stack: &Stack,
    pool: &PgPool,
    phlo_uuid: Uuid,
    created: &[Uuid],
    n: usize,
    total: Duration,
) {
    let applied = n * JOURNAL.len();
    println!(
        "  {applied} steps in {total:.1?}: {:.0} steps/s end to end",
        applied as f64 / total.as_secs_f64()
    );
    bus_figures(stack, applied).await;
    let drained = drain_bus(stack).await;
    let again = check_invariants(pool, phlo_uuid, created).await;
    assert_eq!(again, n, "runs after the redeliveries");
    println!("  redeliveries drained {drained:.1?} later; invariants still hold");
    bus_figures(stack, applied).await;
}
