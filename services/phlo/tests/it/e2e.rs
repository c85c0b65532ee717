//! A non-voice PHLO end to end through separate gateway and worker processes.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Stack, Target, done_step, recorder};

const START: &str = "e2e00000-0000-4000-8000-000000000000";
const BRANCH_1: &str = "e2e00000-0000-4000-8000-000000000001";
const COUNTER_1: &str = "e2e00000-0000-4000-8000-000000000002";
const HTTP_1: &str = "e2e00000-0000-4000-8000-000000000003";
const BRANCH_2: &str = "e2e00000-0000-4000-8000-000000000004";
const COUNTER_2: &str = "e2e00000-0000-4000-8000-000000000005";

fn order_api(path: &str) -> (u16, &'static str, String) {
    match path {
        "/orders/17" => (
            200,
            "application/json",
            json!({ "order": { "id": "A-17", "status": "shipped" } }).to_string(),
        ),
        _ => (
            404,
            "application/json",
            json!({ "error": "no such order" }).to_string(),
        ),
    }
}

pub fn order_phlo(port: u16) -> Value {
    json!({
        "name": "Order status",
        "nodes": [
            { "node_id": START, "name": "Start", "type": "start",
              "options": { "payload": { "kind": "order" } },
              "transitions": { "api_request": BRANCH_1 } },
            { "node_id": BRANCH_1, "name": "Branch_1", "type": "branch",
              "options": { "lhs": "{{Start.http.params.kind}}",
                           "conditions": [{ "alias": "order", "operation": "equals", "rhs": "order" }] },
              "transitions": { "order": COUNTER_1 } },
            { "node_id": COUNTER_1, "name": "Counter_1", "type": "counter",
              "options": { "max_count": 1000000, "scope": "phlo" },
              "transitions": { "count_not_reached": HTTP_1 } },
            { "node_id": HTTP_1, "name": "HTTP_Request_1", "type": "http_request",
              "options": { "method": "POST", "url": format!("http://127.0.0.1:{port}/orders/{{{{Start.http.params.order_id}}}}"),
                           "headers": { "X-Run": "{{Start.request.uuid}}" },
                           "params": { "source": "phlo" },
                           "body": { "type": "json", "content": { "kind": "{{Start.http.params.kind}}", "n": 1 } },
                           "timeout": 5,
                           "response": { "content_type": "application/json", "keys": ["order.id"] } },
              "transitions": { "success": BRANCH_2 } },
            { "node_id": BRANCH_2, "name": "Branch_2", "type": "branch",
              "options": { "lhs": "{{HTTP_Request_1.response.body.order.status}}",
                           "conditions": [{ "alias": "shipped", "operation": "equals", "rhs": "shipped" }] },
              "transitions": { "shipped": COUNTER_2 } },
            { "node_id": COUNTER_2, "name": "Counter_2", "type": "counter", "options": { "max_count": 1 } },
        ]
    })
}

crate::conformance!(a_non_voice_phlo_runs_end_to_end);

async fn a_non_voice_phlo_runs_end_to_end(target: Target) {
    let server = recorder(order_api).await;
    let (mut stack, _sim, acct) = target.start(&[]).await;
    let phlo_id = stack
        .create_phlo(&acct, order_phlo(server.addr.port()))
        .await;
    let run_id = stack
        .run(&acct, &phlo_id, json!({ "order_id": "17" }))
        .await;
    let run = stack
        .wait_run(&acct, &run_id, Duration::from_secs(30))
        .await;

    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["trigger"], "api");
    let start = done_step(&run, "Start");
    assert_eq!(start["state"], "api_request");
    assert_eq!(start["variables"]["request_type"], "http");
    assert_eq!(
        start["variables"]["http"]["params"],
        json!({ "kind": "order", "order_id": "17" })
    );
    assert_eq!(start["variables"]["request"]["uuid"], run_id.as_str());
    assert_eq!(done_step(&run, "Branch_1")["state"], "order");
    let counter = done_step(&run, "Counter_1");
    assert_eq!(counter["state"], "count_not_reached");
    assert_eq!(counter["variables"]["count"], 1);
    let http = done_step(&run, "HTTP_Request_1");
    assert_eq!(http["state"], "success", "{http:#}");
    assert_eq!(http["variables"]["status_code"], 200);
    assert_eq!(http["variables"]["response"]["body"]["order"]["id"], "A-17");
    assert_eq!(done_step(&run, "Branch_2")["state"], "shipped");
    let last = done_step(&run, "Counter_2");
    assert_eq!(last["state"], "count_reached");
    assert_eq!(last["variables"]["count"], 1);
    // One step per node, and two for the HTTP node: it parks (wait), then finishes (done).
    let journal: Vec<(String, String)> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["node_name"].as_str().unwrap().to_owned(),
                s["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("Start", "done"),
        ("Branch_1", "done"),
        ("Counter_1", "done"),
        ("HTTP_Request_1", "wait"),
        ("HTTP_Request_1", "done"),
        ("Branch_2", "done"),
        ("Counter_2", "done"),
    ];
    assert_eq!(journal, expected.map(|(n, o)| (n.to_owned(), o.to_owned())));
    assert_eq!(run["step_count"], 7);
    assert_eq!(run["context"]["HTTP_Request_1"]["status_code"], 200);

    let received = server.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "the API was called once");
    let r = &received[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path_and_query, "/orders/17?source=phlo");
    assert_eq!(r.headers["x-run"], run_id.as_str());
    assert!(r.headers.contains_key("idempotency-key"));
    assert_eq!(
        serde_json::from_slice::<Value>(&r.body).unwrap(),
        json!({ "kind": "order", "n": 1 })
    );
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timer_due_while_no_worker_runs_fires_when_one_starts() {
    // The API never answers; the wait's timer is capped at 2 s, far below the node's 60 s timeout.
    let hang = crate::support::silent_server().await;
    let mut stack = Stack::start_with(1, &[("PHLO_MAX_WAIT_SECS", "2")]).await;
    let acct = stack.account().await;
    let phlo_id = stack
        .create_phlo(&acct, json!({ "name": "timer", "nodes": [
            { "node_id": START, "name": "Start", "type": "start", "transitions": { "api_request": HTTP_1 } },
            { "node_id": HTTP_1, "name": "HTTP_Request_1", "type": "http_request",
              "options": { "method": "GET", "url": format!("http://127.0.0.1:{}/slow", hang.port()), "timeout": 60 } },
        ]}))
        .await;
    let run_id = stack.run(&acct, &phlo_id, json!({})).await;
    // Wait until the token is parked on the HTTP request, then stop every worker.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let run = stack.get_run(&acct, &run_id).await;
        if run["tokens"][0]["status"] == "waiting" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never parked: {run:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.kill_all_workers();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        stack.get_run(&acct, &run_id).await["status"],
        "active",
        "nothing moves without a worker"
    );
    stack.spawn_worker();
    let run = stack
        .wait_run(&acct, &run_id, Duration::from_secs(30))
        .await;
    let http = done_step(&run, "HTTP_Request_1");
    // The killed worker's request is lost with it; the timer decides.
    assert_eq!(http["state"], "failed", "{run:#}");
    assert_eq!(http["event"], "timeout", "{run:#}");
    assert_eq!(run["status"], "completed");
    stack.cleanup().await;
}
