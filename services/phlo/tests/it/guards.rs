//! Runs always end: guards stop loops and lingering runs, and cancel stops a waiting one.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Account, Stack, silent_server};

const START: &str = "9a000000-0000-4000-8000-000000000000";
const A: &str = "9a000000-0000-4000-8000-000000000001";
const B: &str = "9a000000-0000-4000-8000-000000000002";

/// Start → Counter A → (not reached) → `loop_to`; a Counter that never reaches its count loops forever.
fn looping(loop_to: &str) -> Value {
    json!({ "name": "loop", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "api_request": A } },
        { "node_id": A, "name": "A", "type": "counter", "options": { "max_count": 1000000 },
          "transitions": { "count_not_reached": loop_to } },
        { "node_id": B, "name": "B", "type": "branch",
          "options": { "lhs": "x", "conditions": [{ "alias": "never", "operation": "equals", "rhs": "y" }] },
          "transitions": { "no_match": A } },
    ]})
}

/// Start → an HTTP Request to `port` (a server that never answers) that times out after `timeout` s.
fn waiting_on(port: u16, timeout: u64) -> Value {
    json!({ "name": "waits", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "api_request": A } },
        { "node_id": A, "name": "HTTP_Request_1", "type": "http_request",
          "options": { "method": "GET", "url": format!("http://127.0.0.1:{port}/"), "timeout": timeout } },
    ]})
}

async fn wait_parked(stack: &Stack, acct: &Account, run_id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while stack.get_run(acct, run_id).await["tokens"][0]["status"] != "waiting" {
        assert!(std::time::Instant::now() < deadline, "never parked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn guards_end_loops_with_a_clear_reason() {
    let mut stack =
        Stack::start_with(1, &[("PHLO_MAX_REPEATS", "5"), ("PHLO_MAX_STEPS", "30")]).await;
    let acct = stack.account().await;

    // A node that leads to itself: the repeat guard.
    let phlo = stack.create_phlo(&acct, looping(A)).await;
    let run_id = stack.run(&acct, &phlo, json!({})).await;
    let run = stack
        .wait_run(&acct, &run_id, Duration::from_secs(30))
        .await;
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(
        run["error"].as_str().unwrap().contains("5 times in a row"),
        "{run:#}"
    );
    // A ran five times in a row; the guard stops the sixth.
    let counts: Vec<i64> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["node_name"] == "A")
        .map(|s| s["variables"]["count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, vec![1, 2, 3, 4, 5]);
    assert_eq!(run["tokens"][0]["status"], "ended");

    // Two nodes in a cycle never repeat one node in a row: the step guard.
    let phlo = stack.create_phlo(&acct, looping(B)).await;
    let run_id = stack.run(&acct, &phlo, json!({})).await;
    let run = stack
        .wait_run(&acct, &run_id, Duration::from_secs(30))
        .await;
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("maximum of 30 steps"),
        "{run:#}"
    );
    assert_eq!(run["step_count"], 30);
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lingering_runs_time_out_and_waiting_runs_can_be_cancelled() {
    let hang = silent_server().await;
    let mut stack = Stack::start_with(1, &[("PHLO_MAX_RUN_LIFETIME_SECS", "2")]).await;
    let acct = stack.account().await;
    let phlo = stack.create_phlo(&acct, waiting_on(hang.port(), 60)).await;

    let lingering = stack.run(&acct, &phlo, json!({})).await;
    let run = stack
        .wait_run(&acct, &lingering, Duration::from_secs(30))
        .await;
    assert_eq!(run["status"], "timed_out", "{run:#}");
    assert!(run["error"].as_str().unwrap().contains("longer than 2 s"));
    assert_eq!(run["tokens"][0]["status"], "ended");

    stack.kill_all_workers();
    let mut stack2 = Stack::start(1).await;
    let acct2 = stack2.account().await;
    let phlo2 = stack2
        .create_phlo(&acct2, waiting_on(hang.port(), 60))
        .await;
    let run_id = stack2.run(&acct2, &phlo2, json!({})).await;
    wait_parked(&stack2, &acct2, &run_id).await;
    let (status, body) = stack2
        .call(
            &acct2,
            Method::POST,
            &format!("/v1/runs/{run_id}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["cancelled"], true);
    assert_eq!(body["status"], "cancelled");
    let run = stack2.get_run(&acct2, &run_id).await;
    assert_eq!(run["tokens"][0]["status"], "ended");
    assert_eq!(
        run["tokens"][0]["ended_reason"],
        "cancelled through the API"
    );
    // Cancelling again is harmless and says nothing changed.
    let (status, body) = stack2
        .call(
            &acct2,
            Method::POST,
            &format!("/v1/runs/{run_id}/cancel"),
            None,
        )
        .await;
    assert_eq!((status, body["cancelled"].clone()), (200, json!(false)));
    let pool = phlo_store::connect(&stack2.db_url, 1, 0).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    assert_eq!(phlo_store::outbox::backlog(&mut conn).await.unwrap(), 0);
    stack.cleanup().await;
    stack2.cleanup().await;
}

/// A step that can never be applied (here: its step row breaks a constraint, as after a bad manual
/// edit or an incompatible downgrade) is retried, then fails its run with the reason, instead of
/// being dropped and leaving the run active until the lifetime guard.
#[tokio::test(flavor = "multi_thread")]
async fn a_step_that_can_never_be_applied_fails_its_run() {
    let hang = silent_server().await;
    let mut stack = Stack::start(1).await;
    let acct = stack.account().await;
    let phlo = stack.create_phlo(&acct, waiting_on(hang.port(), 2)).await;
    let run_id = stack.run(&acct, &phlo, json!({})).await;
    wait_parked(&stack, &acct, &run_id).await;
    let pool = sqlx::PgPool::connect(&stack.db_url).await.unwrap();
    // NOT VALID: rows already written stay; only the step the request's result writes breaks it.
    sqlx::query(
        "ALTER TABLE steps ADD CONSTRAINT simulated_fault \
         CHECK (node_name <> 'HTTP_Request_1' OR outcome <> 'done') NOT VALID",
    )
    .execute(&pool)
    .await
    .unwrap();

    // The request times out after 2 s; its result cannot be written.
    let run = stack
        .wait_run(&acct, &run_id, Duration::from_secs(40))
        .await;
    assert_eq!(run["status"], "failed", "{run:#}");
    let error = run["error"].as_str().unwrap();
    assert!(error.contains("a step could not be applied"), "{error}");
    assert!(error.contains("simulated_fault"), "{error}");
    assert_eq!(run["tokens"][0]["status"], "ended", "{run:#}");
    assert_eq!(run["tokens"][0]["ended_reason"], error, "{run:#}");
    let outcomes: Vec<&Value> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["outcome"])
        .collect();
    assert_eq!(outcomes, [&json!("done"), &json!("wait")], "{run:#}");
    // Operators find such runs by their error (docs/operations.md).
    let (status, found) = stack
        .call(
            &acct,
            Method::GET,
            "/v1/runs?status=failed&q=could+not+be+applied",
            None,
        )
        .await;
    assert_eq!(status, 200, "{found}");
    let found: Vec<&Value> = found["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["run_id"])
        .collect();
    assert_eq!(found, [&json!(run_id)]);
    let store = phlo_store::connect(&stack.db_url, 1, 0).await.unwrap();
    let mut conn = store.acquire().await.unwrap();
    assert_eq!(phlo_store::outbox::backlog(&mut conn).await.unwrap(), 0);
    stack.cleanup().await;
}
