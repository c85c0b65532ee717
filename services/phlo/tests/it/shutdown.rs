//! Graceful shutdown under load: 500 runs through the gateway while each of three workers in turn gets
//! SIGTERM (a replacement is started first, as a rolling deploy does). Each SIGTERM'd worker must stop
//! taking messages, finish (or release) what it was applying, and exit with status 0 within
//! `PHLO_SHUTDOWN_GRACE_SECS`. Afterwards, from Postgres: every run completed and every step was
//! applied exactly once (the chaos tests' invariants).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::chaos::{
    JOURNAL, LOAD, Setup, bus_figures, check_invariants, drain_bus, fire, quiet, scalar, settle,
    setup, wait_for_load,
};
use crate::support::{Stack, sigterm, wait_exit};

const RUNS: usize = 500;
const WORKERS: usize = 3;
/// The grace each worker gets (and must keep to).
const GRACE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_each_worker_mid_load() {
    let _one_at_a_time = LOAD.lock().await;
    let grace = GRACE.as_secs().to_string();
    let mut env = quiet();
    env.push(("PHLO_SHUTDOWN_GRACE_SECS", grace.as_str()));
    let Setup {
        mut stack,
        acct,
        phlo_id,
        pool,
    } = setup(Stack::start_with(WORKERS, &env).await).await;
    let started = Instant::now();
    let answered = Arc::new(AtomicUsize::new(0));
    let load = fire(&stack, &acct, &phlo_id, RUNS, answered.clone());

    let mut exits = Vec::new();
    for i in 0..WORKERS {
        // Spread over the load: a quarter, a half, three quarters of the runs answered.
        wait_for_load(&pool, &answered, RUNS * (i + 1) / (WORKERS + 1)).await;
        let replacement = stack.spawn_worker();
        let steps_before = scalar(&pool, "SELECT count(*) FROM steps").await;
        let at = started.elapsed();
        let (status, took) = stack
            .terminate_worker(i, GRACE + Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("worker {i} did not exit after SIGTERM"));
        println!(
            "SIGTERM to worker {i} at {at:.1?} ({} runs answered, {steps_before} steps applied): \
             exited {status} after {took:.2?}; worker {replacement} replaces it",
            answered.load(Ordering::SeqCst)
        );
        exits.push((i, status, took));
    }
    assert_eq!(stack.live_workers(), WORKERS, "the replacements run");

    let fired = load.await.expect("load task");
    let settled = settle(&pool).await;
    let total = started.elapsed();
    println!(
        "fired {RUNS} runs in {:.1?} ({:.0} runs/s, slowest answer {:.1?}); all ended {settled:.1?} later; total {total:.1?}",
        fired.elapsed,
        RUNS as f64 / fired.elapsed.as_secs_f64(),
        fired.slowest,
    );
    for (i, status, took) in &exits {
        assert!(
            status.success(),
            "worker {i} exited with {status} after SIGTERM"
        );
        assert!(
            *took <= GRACE,
            "worker {i} took {took:?} to exit, beyond the {GRACE:?} grace"
        );
    }
    assert!(
        fired.failed.is_empty(),
        "run requests failed although only workers restarted: {:?}",
        fired.failed
    );
    assert_eq!(fired.created.len(), RUNS);

    let phlo_uuid = Uuid::parse_str(&phlo_id).expect("uuid");
    let n = check_invariants(&pool, phlo_uuid, &fired.created).await;
    assert_eq!(n, RUNS, "runs in Postgres: none lost");
    let applied = n * JOURNAL.len();
    bus_figures(&stack, applied).await;
    // Late redeliveries (messages a stopping worker had been sent but never started) change nothing.
    let drained = drain_bus(&stack).await;
    let again = check_invariants(&pool, phlo_uuid, &fired.created).await;
    assert_eq!(again, n, "runs after the redeliveries");
    println!("  bus drained {drained:.1?} later; invariants still hold");
    pool.close().await;
    stack.cleanup().await;
}

const START: &str = "c4a05000-0000-4000-8000-0000000000a0";
const HTTP_1: &str = "c4a05000-0000-4000-8000-0000000000a1";

/// Work that cannot finish within the grace is released, not waited for: a worker whose HTTP Request
/// node hangs on a server that never answers exits 0 at the deadline, and its message goes back to
/// NATS at once (a redelivery on the replacement long before `ack_wait`).
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_releases_what_outlives_the_grace() {
    let hang = crate::support::silent_server().await;
    let mut stack = Stack::start_with(1, &[("PHLO_SHUTDOWN_GRACE_SECS", "2")]).await;
    let acct = stack.account().await;
    let phlo_id = stack
        .create_phlo(&acct, serde_json::json!({ "name": "hangs", "nodes": [
            { "node_id": START, "name": "Start", "type": "start", "transitions": { "api_request": HTTP_1 } },
            { "node_id": HTTP_1, "name": "HTTP_Request_1", "type": "http_request",
              "options": { "method": "GET", "url": format!("http://127.0.0.1:{}/slow", hang.port()), "timeout": 60 } },
        ]}))
        .await;
    let run_id = stack.run(&acct, &phlo_id, serde_json::json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while stack.get_run(&acct, &run_id).await["tokens"][0]["status"] != "waiting" {
        assert!(Instant::now() < deadline, "never parked on the request");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The request message is being handled (the request hangs) by worker 0.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, replacement) = stack.spawn_worker_on_port().await;
    let (status, took) = stack
        .terminate_worker(0, Duration::from_secs(30))
        .await
        .expect("worker 0 exits");
    println!("SIGTERM with a hung request in flight: exited {status} after {took:.2?}");
    assert!(status.success(), "exit status {status}");
    assert!(
        took >= Duration::from_millis(900),
        "it waited for the in-flight request before releasing it ({took:?})"
    );
    assert!(
        took <= Duration::from_secs(2),
        "within the 2 s grace ({took:?})"
    );
    // The released message reaches the replacement as a redelivery, well before ack_wait (30 s).
    let url = format!("{replacement}/metrics");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = crate::support::scrape(&stack.http, &url).await;
        if m.sum("phlo_redeliveries_total", &[("queue", "http")]) >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the released request never reached the replacement:\n{}",
            m.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        stack.get_run(&acct, &run_id).await["status"],
        "active",
        "the run goes on (its request is redone)"
    );
    stack.cleanup().await;
}

/// Run requests in flight in the gateway when it gets SIGTERM.
const BURST: usize = 12;

/// Sessions of the stack's database waiting for a lock in a run start's `INSERT INTO runs`.
async fn run_starts_waiting(pool: &sqlx::PgPool) -> usize {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'
           AND query LIKE '%INSERT INTO runs%'",
    )
    .fetch_one(pool)
    .await
    .expect("pg_stat_activity");
    usize::try_from(n).unwrap_or_default()
}

/// SIGTERM to the gateway while a burst of run requests is inside it: it stops accepting connections at
/// once (a new connection is refused while the burst is still in flight), answers every request it had
/// (201), exits 0, and every run it answered for exists in Postgres and completes.
///
/// The burst is held in the gateway deterministically: the test locks the `runs` table (`SHARE` mode:
/// reads and row locks pass, inserts wait) until the signal has been sent and a connection refused, and
/// it sends the signal only once Postgres shows every request of the burst waiting on that lock.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_gateway_mid_burst() {
    let _one_at_a_time = LOAD.lock().await;
    let mut env = quiet();
    // Enough connections for every request of the burst to hold one while it waits.
    env.extend([("PHLO_SHUTDOWN_GRACE_SECS", "20"), ("PHLO_DB_POOL", "16")]);
    let Setup {
        mut stack,
        acct,
        phlo_id,
        pool,
    } = setup(Stack::start_with(2, &env).await).await;
    let addr = stack.gateway_url.trim_start_matches("http://").to_owned();
    // A connection per request (no keep-alive pool): a request either reached the gateway before the
    // signal or finds the port closed.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let url = stack.url(&format!("/v1/account/{}/phlo/{phlo_id}", acct.auth_id));

    let mut blocker = pool.begin().await.expect("transaction");
    sqlx::query("LOCK TABLE runs IN SHARE MODE")
        .execute(&mut *blocker)
        .await
        .expect("lock runs");
    let answered = Arc::new(AtomicUsize::new(0));
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..BURST {
        let (client, url, acct, answered) =
            (client.clone(), url.clone(), acct.clone(), answered.clone());
        burst.spawn(async move {
            let reply = client
                .post(&url)
                .basic_auth(&acct.auth_id, Some(&acct.token))
                .json(&serde_json::json!({ "i": i }))
                .send()
                .await;
            let result = match reply {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                    match body["phlo_run_id"].as_str().map(Uuid::parse_str) {
                        Some(Ok(id)) if status == 201 => Ok(id),
                        _ => Err(format!("{status}: {body}")),
                    }
                }
                Err(e) => Err(format!("request failed: {e}")),
            };
            answered.fetch_add(1, Ordering::SeqCst);
            (i, result)
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while run_starts_waiting(&pool).await < BURST {
        assert!(
            Instant::now() < deadline,
            "only {} of {BURST} run starts reached the lock",
            run_starts_waiting(&pool).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let gateway = stack.take_gateway().expect("the gateway runs");
    sigterm(&gateway);
    let signalled = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::net::TcpStream::connect(&addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            Ok(_) | Err(_) => {}
        }
        assert!(
            Instant::now() < deadline,
            "{addr} still accepts connections 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused_after = signalled.elapsed();
    assert_eq!(
        answered.load(Ordering::SeqCst),
        0,
        "the burst is still in flight when connections are refused"
    );
    assert_eq!(run_starts_waiting(&pool).await, BURST, "still waiting");
    blocker.rollback().await.expect("release the lock");

    let (status, took) = wait_exit(gateway, Duration::from_secs(40))
        .await
        .expect("the gateway exits after SIGTERM");
    let mut created = Vec::new();
    let mut failed = Vec::new();
    while let Some(joined) = burst.join_next().await {
        match joined.expect("request task") {
            (_, Ok(id)) => created.push(id),
            (i, Err(e)) => failed.push((i, e)),
        }
    }
    println!(
        "SIGTERM to the gateway with {BURST} run requests in flight: new connections refused after \
         {refused_after:.2?}; exited {status} {took:.2?} after the burst was let through"
    );
    assert!(status.success(), "gateway exit status {status}");
    assert!(failed.is_empty(), "in-flight requests cut off: {failed:?}");
    assert_eq!(created.len(), BURST);

    let settled = settle(&pool).await;
    let phlo_uuid = Uuid::parse_str(&phlo_id).expect("uuid");
    let n = check_invariants(&pool, phlo_uuid, &created).await;
    assert_eq!(n, BURST, "runs in Postgres: every answered run, no other");
    println!("  every run completed {settled:.1?} later, each step applied once");
    pool.close().await;
    stack.cleanup().await;
}

/// Runs fired in the callback test; each records `CALLBACKS_PER_RUN` deliveries.
const CALLBACK_RUNS: usize = 60;
const CALLBACKS_PER_RUN: usize = 3;

/// A webhook receiver that takes `delay` to answer 200, so attempts are in flight when the callback
/// service gets SIGTERM; it logs the `webhook-id` of every request.
struct SlowHooks {
    url: String,
    ids: Arc<std::sync::Mutex<Vec<String>>>,
    in_flight: Arc<AtomicUsize>,
}

impl SlowHooks {
    async fn start(delay: Duration) -> SlowHooks {
        let ids: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (log, busy) = (ids.clone(), in_flight.clone());
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
            let (log, busy) = (log.clone(), busy.clone());
            async move {
                busy.fetch_add(1, Ordering::SeqCst);
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                log.lock().expect("lock").push(id);
                tokio::time::sleep(delay).await;
                busy.fetch_sub(1, Ordering::SeqCst);
                axum::http::StatusCode::OK
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        SlowHooks {
            url,
            ids,
            in_flight,
        }
    }

    fn ids(&self) -> Vec<String> {
        self.ids.lock().expect("lock").clone()
    }
}

const CB_START: &str = "c4a05000-0000-4000-8000-0000000000c0";
const CB_BRANCH_1: &str = "c4a05000-0000-4000-8000-0000000000c1";
const CB_BRANCH_2: &str = "c4a05000-0000-4000-8000-0000000000c2";

/// Start → Branch → Branch, a callback on each.
fn callback_phlo(url: &str) -> serde_json::Value {
    let branch = |id: &str, next: Option<&str>| {
        serde_json::json!({ "node_id": id, "name": format!("Branch_{}", &id[id.len() - 1..]), "type": "branch",
          "options": { "lhs": "x", "conditions": [{ "alias": "x", "operation": "equals", "rhs": "x" }] },
          "transitions": { "x": next },
          "callback": { "url": url } })
    };
    serde_json::json!({ "name": "Callbacks under SIGTERM", "nodes": [
        { "node_id": CB_START, "name": "Start", "type": "start",
          "transitions": { "api_request": CB_BRANCH_1 }, "callback": { "url": url } },
        branch(CB_BRANCH_1, Some(CB_BRANCH_2)),
        branch(CB_BRANCH_2, None),
    ]})
}

async fn count(pool: &sqlx::PgPool, sql: &'static str) -> usize {
    usize::try_from(scalar(pool, sql).await).unwrap_or_default()
}

/// SIGTERM to the callback service during delivery load: it exits 0 after the attempts it had in flight
/// finished; a new process delivers the rest; in the end every delivery arrived exactly once (one
/// request per `webhook-id` at the receiver, one attempt per delivery in the log), none lost.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_callback_service_mid_delivery_load() {
    let _one_at_a_time = LOAD.lock().await;
    let hooks = SlowHooks::start(Duration::from_millis(200)).await;
    let mut env = quiet();
    env.push(("PHLO_SHUTDOWN_GRACE_SECS", "10"));
    let mut stack = Stack::start_with(2, &env).await;
    let callback_env = [("PHLO_CALLBACK_CONCURRENCY", "8")];
    let first = stack.spawn_callback(&callback_env);
    let acct = stack.account().await;
    let phlo_id = stack.create_phlo(&acct, callback_phlo(&hooks.url)).await;
    let pool = sqlx::PgPool::connect(&stack.db_url).await.expect("pool");
    let total = CALLBACK_RUNS * CALLBACKS_PER_RUN;
    let load = fire(
        &stack,
        &acct,
        &phlo_id,
        CALLBACK_RUNS,
        Arc::new(AtomicUsize::new(0)),
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    while hooks.ids().len() < total / 3 || hooks.in_flight.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the deliveries never got going");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let child = stack
        .take_callback(first)
        .expect("the callback service runs");
    let (arrived, in_flight) = (hooks.ids().len(), hooks.in_flight.load(Ordering::SeqCst));
    sigterm(&child);
    let (status, took) = wait_exit(child, Duration::from_secs(30))
        .await
        .expect("the callback service exits after SIGTERM");
    let fired = load.await.expect("load task");
    let pending = count(
        &pool,
        "SELECT count(*) FROM callback_deliveries WHERE status = 'pending'",
    )
    .await;
    println!(
        "SIGTERM to the callback service with {arrived} of {total} callbacks arrived and {in_flight} \
         being received: exited {status} after {took:.2?}; {pending} deliveries left pending"
    );
    assert!(status.success(), "callback service exit status {status}");
    assert!(
        fired.failed.is_empty(),
        "run requests failed: {:?}",
        fired.failed
    );

    let restarted = Instant::now();
    stack.spawn_callback(&callback_env);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let delivered = count(
            &pool,
            "SELECT count(*) FROM callback_deliveries WHERE status = 'delivered'",
        )
        .await;
        if delivered == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{delivered} of {total} callbacks delivered 60 s after the restart"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "  the restarted service delivered the rest in {:.1?}",
        restarted.elapsed()
    );
    // Messages still in NATS (duplicates the scheduler published while the service was down, messages
    // released at shutdown) must each find their delivery done and send nothing.
    let client = async_nats::connect(&stack.nats_url).await.expect("NATS");
    let js = async_nats::jetstream::new(client);
    let stream = js
        .get_stream(format!("{}_WORK", stack.prefix.to_uppercase()))
        .await
        .expect("stream");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = stream
            .consumer_info(format!("{}-callback", stack.prefix))
            .await
            .expect("consumer info");
        if c.num_ack_pending == 0 && c.num_pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the callback consumer never drained: {} unacked, {} undelivered",
            c.num_ack_pending,
            c.num_pending
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (deliveries, once): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE status = 'delivered' AND attempts = 1)
         FROM callback_deliveries",
    )
    .fetch_one(&pool)
    .await
    .expect("deliveries");
    assert_eq!(
        (deliveries, once),
        (total as i64, total as i64),
        "every delivery delivered at its first attempt"
    );
    let outcomes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT outcome, count(*) FROM callback_attempts GROUP BY outcome ORDER BY outcome",
    )
    .fetch_all(&pool)
    .await
    .expect("attempts");
    assert_eq!(outcomes, [("delivered".to_owned(), total as i64)]);
    let ids: Vec<(Uuid,)> = sqlx::query_as("SELECT id FROM callback_deliveries")
        .fetch_all(&pool)
        .await
        .expect("ids");
    let expected: std::collections::BTreeSet<String> =
        ids.into_iter().map(|(id,)| id.to_string()).collect();
    let mut received = hooks.ids();
    received.sort();
    let distinct: std::collections::BTreeSet<String> = received.iter().cloned().collect();
    assert_eq!(received.len(), distinct.len(), "a webhook-id arrived twice");
    assert_eq!(
        distinct, expected,
        "the webhook-ids received are the deliveries"
    );
    pool.close().await;
    stack.cleanup().await;
}
