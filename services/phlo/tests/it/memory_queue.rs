//! `phlo serve` with the in-process queue (`NATS_URL=memory:`): the real process, no NATS in its
//! configuration at all, driven through the HTTP API; and killed with `kill -9` mid-run, after which
//! Postgres (timers, the callback re-drive) brings the run and its callbacks home.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::{Value, json};

use crate::e2e::order_phlo;
use crate::support::{Account, Stack, done_step, recorder, recorder_hanging, signed_by};
use crate::voice_support::{journal, pairs};

const START: &str = "3e000000-0000-4000-8000-000000000000";
const BRANCH_1: &str = "3e000000-0000-4000-8000-000000000001";
const COUNTER_1: &str = "3e000000-0000-4000-8000-000000000002";
const HTTP_1: &str = "3e000000-0000-4000-8000-000000000003";

/// Generous: a deadline only fails a test that hangs.
const PATIENCE: Duration = Duration::from_secs(60);

/// The API the HTTP Request node calls and the webhook receiver, in one.
fn replies(path: &str) -> (u16, &'static str, String) {
    let body = match path {
        "/orders/17" => json!({ "order": { "id": "A-17", "status": "shipped" } }),
        _ => json!({ "ok": true }),
    };
    (200, "application/json", body.to_string())
}

/// `phlo serve` answers readiness with its queue up: the in-process queue always is.
async fn assert_queue_up(stack: &Stack) {
    let r = stack
        .http
        .get(stack.url("/readyz"))
        .send()
        .await
        .expect("readiness");
    let ready: Value = r.json().await.expect("readiness json");
    assert_eq!(ready["nats"], true, "the in-process queue is always up");
}

async fn webhook_secret(stack: &Stack, acct: &Account) -> String {
    let (status, body) = stack
        .call(acct, Method::GET, "/v1/account/webhook-secret", None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["webhook_secret"].as_str().unwrap().to_owned()
}

/// The run's callback deliveries, once `n` of them are settled (none pending).
async fn settled_callbacks(stack: &Stack, acct: &Account, run_id: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + PATIENCE;
    let path = format!("/v1/runs/{run_id}/callbacks");
    loop {
        let (status, body) = stack.call(acct, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        let log = body["objects"].as_array().expect("objects").clone();
        if log.len() == n && log.iter().all(|d| d["status"] != "pending") {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "callbacks of {run_id} not settled: {log:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_phlo_runs_end_to_end_in_phlo_serve_without_nats() {
    let local = recorder(replies).await;
    let stack = Stack::start_serve(&[]).await;
    assert_queue_up(&stack).await;
    let acct = stack.account().await;
    let secret = webhook_secret(&stack, &acct).await;
    // The PHLO of the NATS end-to-end test, its HTTP Request node with a callback.
    let mut phlo = order_phlo(local.addr.port());
    let http_node = phlo["nodes"]
        .as_array_mut()
        .and_then(|nodes| nodes.iter_mut().find(|n| n["name"] == "HTTP_Request_1"))
        .expect("an HTTP Request node");
    http_node["callback"] = json!({ "url": local.url("/hooks/http"), "method": "POST" });
    let phlo_id = stack.create_phlo(&acct, phlo).await;

    let run_id = stack
        .run(&acct, &phlo_id, json!({ "order_id": "17" }))
        .await;
    let run = stack.wait_run(&acct, &run_id, PATIENCE).await;

    assert_eq!(run["status"], "completed", "{run:#}");
    let start = done_step(&run, "Start");
    assert_eq!(
        start["variables"]["http"]["params"],
        json!({ "kind": "order", "order_id": "17" })
    );
    assert_eq!(done_step(&run, "Branch_1")["state"], "order");
    let counter = done_step(&run, "Counter_1");
    assert_eq!(counter["state"], "count_not_reached");
    assert_eq!(counter["variables"]["count"], 1);
    let http = done_step(&run, "HTTP_Request_1");
    assert_eq!(http["state"], "success", "{http:#}");
    assert_eq!(http["variables"]["status_code"], 200);
    assert_eq!(http["variables"]["response"]["body"]["order"]["id"], "A-17");
    assert_eq!(done_step(&run, "Branch_2")["state"], "shipped");
    assert_eq!(done_step(&run, "Counter_2")["state"], "count_reached");
    let expected = [
        ("Start", "done"),
        ("Branch_1", "done"),
        ("Counter_1", "done"),
        ("HTTP_Request_1", "wait"),
        ("HTTP_Request_1", "done"),
        ("Branch_2", "done"),
        ("Counter_2", "done"),
    ];
    assert_eq!(journal(&run), pairs(&expected));

    let requests = local.requests_to("/orders/17");
    assert_eq!(requests.len(), 1, "the API was called once");
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].header("x-run"), run_id);
    assert!(!requests[0].header("idempotency-key").is_empty());
    assert_eq!(requests[0].json(), json!({ "kind": "order", "n": 1 }));

    let log = settled_callbacks(&stack, &acct, &run_id, 1).await;
    assert_eq!(log[0]["status"], "delivered", "{log:#?}");
    let hooks = local.requests_to("/hooks/http");
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    assert!(signed_by(&secret, hook), "signature of {hook:#?}");
    assert_eq!(hook.header("webhook-id"), log[0]["webhook_id"]);
    let body = hook.json();
    assert_eq!(body["type"], "phlo.node.success", "{body:#}");
    assert_eq!(body["data"]["run_id"], run_id.as_str());
    assert_eq!(body["data"]["node_name"], "HTTP_Request_1");
    assert_eq!(body["data"]["status_code"], 200);
    assert_eq!(hook.path_and_query, "/hooks/http", "no query");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_survives_kill_9_of_phlo_serve_mid_request() {
    // The first request of each path hangs until the process that made it dies.
    let local = recorder_hanging(replies, &["/slow", "/hooks/start"]).await;
    // The HTTP wait's timer fires after 2 s whatever the node's own timeout.
    let mut stack = Stack::start_serve(&[("PHLO_MAX_WAIT_SECS", "2")]).await;
    assert_queue_up(&stack).await;
    let acct = stack.account().await;
    let secret = webhook_secret(&stack, &acct).await;
    let phlo_id = stack.create_phlo(&acct, json!({ "name": "killed", "nodes": [
        { "node_id": START, "name": "Start", "type": "start",
          "transitions": { "api_request": HTTP_1 },
          "callback": { "url": local.url("/hooks/start") } },
        { "node_id": HTTP_1, "name": "HTTP_Request_1", "type": "http_request",
          "options": { "method": "GET", "url": local.url("/slow"), "timeout": 30 },
          "transitions": { "success": BRANCH_1, "failed": COUNTER_1 } },
        { "node_id": BRANCH_1, "name": "Branch_1", "type": "branch",
          "options": { "lhs": "{{HTTP_Request_1.status_code}}",
                       "conditions": [{ "alias": "ok", "operation": "equals", "rhs": "200" }] } },
        { "node_id": COUNTER_1, "name": "Counter_1", "type": "counter",
          "options": { "max_count": 10 },
          "callback": { "url": local.url("/hooks/counter") } },
    ]}))
    .await;
    let run_id = stack.run(&acct, &phlo_id, json!({})).await;

    // Both the node's request and the Start callback are in flight, and their messages are held by
    // this process only: published, so no longer in the outbox for the relay to send again.
    local.wait_for("/slow", 1).await;
    local.wait_for("/hooks/start", 1).await;
    let pool = sqlx::PgPool::connect(&stack.db_url)
        .await
        .expect("database");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM outbox")
            .fetch_one(&pool)
            .await
            .expect("outbox count");
        if rows == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{rows} outbox rows never published"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pool.close().await;
    stack.kill_gateway();
    stack.start_gateway().await;
    assert_queue_up(&stack).await;

    let run = stack.wait_run(&acct, &run_id, PATIENCE).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    // The request died with the process (as with a killed worker on NATS): the wait's timer decides.
    let http = done_step(&run, "HTTP_Request_1");
    assert_eq!(http["state"], "failed", "{run:#}");
    assert_eq!(http["event"], "timeout", "{run:#}");
    let counter = done_step(&run, "Counter_1");
    assert_eq!(counter["state"], "count_not_reached");
    assert_eq!(counter["variables"]["count"], 1);

    // The Start callback's message was lost with the queue: the callback service's re-drive
    // (Postgres) sent it again after the restart, and the Counter's came through the new queue.
    let log = settled_callbacks(&stack, &acct, &run_id, 2).await;
    assert!(log.iter().all(|d| d["status"] == "delivered"), "{log:#?}");
    let starts = local.wait_for("/hooks/start", 2).await;
    let counters = local.wait_for("/hooks/counter", 1).await;
    let by_id: HashMap<&str, &Value> = log
        .iter()
        .map(|d| (d["webhook_id"].as_str().unwrap(), d))
        .collect();
    for hit in [&starts[1], &counters[0]] {
        assert!(signed_by(&secret, hit), "signature of {hit:#?}");
        assert!(by_id.contains_key(hit.header("webhook-id")), "{hit:#?}");
    }
    assert_eq!(
        starts[0].header("webhook-id"),
        starts[1].header("webhook-id"),
        "the re-sent callback is the same delivery"
    );

    // The restarted process runs new work through its fresh queue: /slow answers now.
    let second = stack.run(&acct, &phlo_id, json!({})).await;
    let run = stack.wait_run(&acct, &second, PATIENCE).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(done_step(&run, "HTTP_Request_1")["state"], "success");
    assert_eq!(done_step(&run, "Branch_1")["state"], "ok");
}

/// Separate processes cannot share an in-process queue: each standalone service refuses it at
/// start-up, saying why and what to do.
#[tokio::test(flavor = "multi_thread")]
async fn standalone_services_refuse_the_in_process_queue() {
    // The settings of the `phlo serve` that runs beside them, `NATS_URL=memory:` among them.
    let stack = Stack::start_serve(&[]).await;
    assert_refused(
        &stack,
        &["gateway", "worker", "callback"],
        &[],
        ["works only in `phlo serve`", "nats://"],
    );
}

/// Nor can they share an embedded SQLite store: SQLite serialises writers within one process only.
#[tokio::test(flavor = "multi_thread")]
async fn standalone_services_refuse_a_sqlite_store() {
    let dir = std::env::temp_dir().join(format!("phlo-sqlite-{}", uuid::Uuid::new_v4().simple()));
    let url = format!("sqlite://{}/phlo.db", dir.display());
    let stack = Stack::start_serve(&[]).await;
    assert_refused(
        &stack,
        &["gateway", "worker", "callback", "migrate"],
        &[
            ("DATABASE_URL", &url),
            ("NATS_URL", "nats://127.0.0.1:4222"),
        ],
        ["works only in `phlo dev` and `phlo serve`", "postgres://"],
    );
    assert!(!dir.join("phlo.db").exists(), "no database file was made");
}

/// Each standalone `service`, with the stack's settings and `env`, exits 2 at start-up with a message
/// holding both parts of `says` (why, and what to set instead).
fn assert_refused(stack: &Stack, services: &[&str], env: &[(&str, &str)], says: [&str; 2]) {
    for service in services {
        let out = stack
            .command(service)
            .envs(env.iter().copied())
            .env("PHLO_GATEWAY_ADDR", "127.0.0.1:0")
            .output()
            .expect("run the service");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{service}: {stderr}");
        assert!(
            says.iter().all(|part| stderr.contains(part)),
            "{service}: {stderr}"
        );
    }
}
