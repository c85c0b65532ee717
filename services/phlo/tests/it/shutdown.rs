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
use crate::support::Stack;

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
