//! Event callbacks end to end: gateway, workers and callback service processes, a capturing receiver
//! on a local port. Signatures are checked here with the algorithm docs/api.md documents, written
//! independently of the runner's own code.
//!
//! Conformance scenario (dev mode and distributed):
//! `every_callback_of_a_run_arrives_signed_with_the_nodes_variables`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::{Account, Stack, Target};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
    at: Instant,
}

impl Hit {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// How the receiver answers the n-th request (0-based) to a path.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    delay: Duration,
    body: &'static str,
}

fn status(code: u16) -> Reply {
    Reply {
        status: code,
        headers: Vec::new(),
        delay: Duration::ZERO,
        body: "thanks",
    }
}

type Script = dyn Fn(&str, usize) -> Reply + Send + Sync;

/// A capturing webhook receiver with scripted answers per path.
struct Receiver {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    async fn start(script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> Receiver {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let script: Arc<Script> = Arc::new(script);
        let log = hits.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (log, script) = (log.clone(), script.clone());
                async move {
                    let hit = Hit {
                        method: method.to_string(),
                        path: uri.path().to_owned(),
                        query: uri.query().unwrap_or_default().to_owned(),
                        headers,
                        body: body.to_vec(),
                        at: Instant::now(),
                    };
                    let nth = {
                        let mut log = log.lock().unwrap();
                        let nth = log.iter().filter(|h| h.path == hit.path).count();
                        log.push(hit.clone());
                        nth
                    };
                    let reply = script(&hit.path, nth);
                    if !reply.delay.is_zero() {
                        tokio::time::sleep(reply.delay).await;
                    }
                    let mut response = axum::response::Response::builder().status(reply.status);
                    for (k, v) in reply.headers {
                        response = response.header(k, v);
                    }
                    response.body(axum::body::Body::from(reply.body)).unwrap()
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }

    fn hits(&self, path: &str) -> Vec<Hit> {
        let hits = self.hits.lock().unwrap();
        hits.iter().filter(|h| h.path == path).cloned().collect()
    }

    fn all(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    async fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Hit> {
        let deadline = Instant::now() + timeout;
        loop {
            let hits = self.hits(path);
            if hits.len() >= n {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: {} of {n} requests after {timeout:?}",
                hits.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The documented check: HMAC-SHA256 keyed with the base64-decoded secret after `whsec_`, over
/// `{webhook-id}.{webhook-timestamp}.{body}`, `v1,<base64>`; any of the space-separated signatures.
fn verifies(secret: &str, hit: &Hit) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let signed: &[u8] = if hit.method == "GET" {
        hit.query.as_bytes()
    } else {
        &hit.body
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(
        format!(
            "{}.{}.",
            hit.header("webhook-id"),
            hit.header("webhook-timestamp")
        )
        .as_bytes(),
    );
    mac.update(signed);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    hit.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

async fn secret(stack: &Stack, acct: &Account) -> String {
    let (status, body) = stack
        .call(acct, Method::GET, "/v1/account/webhook-secret", None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["webhook_secret"].as_str().unwrap().to_owned()
}

async fn deliveries(stack: &Stack, acct: &Account, run_id: &str) -> Vec<Value> {
    let (status, body) = stack
        .call(
            acct,
            Method::GET,
            &format!("/v1/runs/{run_id}/callbacks"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["objects"].as_array().unwrap().clone()
}

/// Polls the run's delivery log until `done` holds for it.
async fn wait_log(
    stack: &Stack,
    acct: &Account,
    run_id: &str,
    timeout: Duration,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let log = deliveries(stack, acct, run_id).await;
        if done(&log) {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "delivery log of {run_id} not as expected after {timeout:?}: {log:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn settled(log: &[Value], n: usize) -> bool {
    log.len() == n && log.iter().all(|d| d["status"] != "pending")
}

fn by_node<'a>(log: &'a [Value], name: &str) -> &'a Value {
    log.iter()
        .find(|d| d["node_name"] == name)
        .unwrap_or_else(|| panic!("no delivery of {name} in {log:#?}"))
}

crate::conformance!(every_callback_of_a_run_arrives_signed_with_the_nodes_variables);

const START: &str = "cb000000-0000-4000-8000-000000000000";

fn node_id(i: usize) -> String {
    format!("cb000000-0000-4000-8000-{i:012}")
}

/// Start, then `branches` Branch nodes in a chain (each takes `next`), with the given callbacks
/// (index 0 is Start's).
fn chain(name: &str, callbacks: &[Value]) -> Value {
    let branches = callbacks.len() - 1;
    let mut nodes = vec![json!({
        "node_id": START, "name": "Start", "type": "start",
        "options": { "payload": { "kind": "order" } },
        "transitions": { "api_request": if branches > 0 { json!(node_id(1)) } else { Value::Null } },
        "callback": callbacks[0],
    })];
    for (i, callback) in callbacks.iter().enumerate().skip(1) {
        let next = if i < branches {
            json!(node_id(i + 1))
        } else {
            Value::Null
        };
        nodes.push(json!({
            "node_id": node_id(i), "name": format!("Branch_{i}"), "type": "branch",
            "options": { "lhs": "{{Start.http.params.kind}}",
                         "conditions": [{ "alias": "next", "operation": "equals", "rhs": "order" }] },
            "transitions": { "next": next },
            "callback": callback,
        }));
    }
    json!({ "name": name, "nodes": nodes })
}

async fn every_callback_of_a_run_arrives_signed_with_the_nodes_variables(target: Target) {
    let receiver = Receiver::start(|_, _| status(200)).await;
    // A worker and a callback service (distributed), or `phlo dev`'s own.
    let (mut stack, _sim, acct) = target.start(&[]).await;
    let secret_before = secret(&stack, &acct).await;
    assert!(secret_before.starts_with("whsec_"), "{secret_before}");
    assert_eq!(STANDARD.decode(&secret_before[6..]).unwrap().len(), 32);

    let definition = json!({ "name": "callbacks", "nodes": [
        { "node_id": START, "name": "Start", "type": "start",
          "options": { "payload": { "kind": "order" } },
          "transitions": { "api_request": node_id(1) },
          "callback": { "url": receiver.url("/hooks/start") } },
        { "node_id": node_id(1), "name": "Branch_1", "type": "branch",
          "options": { "lhs": "{{Start.http.params.kind}}",
                       "conditions": [{ "alias": "order", "operation": "equals", "rhs": "order" }] },
          "transitions": { "order": node_id(2) },
          "callback": { "url": receiver.url("/hooks/branch"), "method": "POST", "events": ["order"] } },
        { "node_id": node_id(2), "name": "Counter_1", "type": "counter",
          "options": { "max_count": 5 },
          "transitions": { "count_not_reached": node_id(3) },
          "callback": { "url": format!("{}?source=phlo", receiver.url("/hooks/counter")), "method": "get" } },
        // Its event list does not include the state it ends in: no callback.
        { "node_id": node_id(3), "name": "Branch_2", "type": "branch",
          "options": { "lhs": "x", "conditions": [{ "alias": "x", "operation": "equals", "rhs": "x" }] },
          "callback": { "url": receiver.url("/hooks/never"), "events": ["no_match"] } },
    ]});
    let phlo_id = stack.create_phlo(&acct, definition).await;
    let run_id = stack
        .run(&acct, &phlo_id, json!({ "order_id": "17" }))
        .await;
    let run = stack
        .wait_run(&acct, &run_id, Duration::from_secs(30))
        .await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let log = wait_log(&stack, &acct, &run_id, Duration::from_secs(30), |l| {
        settled(l, 3)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hits = receiver.all();
    assert_eq!(hits.len(), 3, "{hits:#?}");
    assert!(receiver.hits("/hooks/never").is_empty());

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for hit in &hits {
        assert!(verifies(&secret_before, hit), "signature of {hit:#?}");
        let ts: i64 = hit.header("webhook-timestamp").parse().unwrap();
        assert!((now - ts).abs() < 60, "timestamp {ts} vs {now}");
        let delivery = log
            .iter()
            .find(|d| d["webhook_id"] == hit.header("webhook-id"))
            .unwrap_or_else(|| panic!("no delivery with the webhook-id of {hit:#?}"));
        assert_eq!(delivery["status"], "delivered", "{delivery:#}");
        assert_eq!(delivery["attempt_count"], 1);
        assert_eq!(delivery["attempts"][0]["status_code"], 200);
        assert_eq!(delivery["attempts"][0]["outcome"], "delivered");
        assert_eq!(delivery["attempts"][0]["response"], "thanks");
    }

    let start = &receiver.hits("/hooks/start")[0];
    assert_eq!(start.method, "POST");
    assert_eq!(start.header("content-type"), "application/json");
    let body = start.json();
    assert_eq!(body["type"], "phlo.node.api_request", "{body:#}");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    let data = &body["data"];
    assert_eq!(data["phlo_id"], phlo_id.as_str());
    assert_eq!(data["run_id"], run_id.as_str());
    assert_eq!(data["node_id"], START);
    assert_eq!(data["node_name"], "Start");
    assert_eq!(data["node_type"], "start");
    assert_eq!(data["event"], "api_request");
    assert_eq!(data["state"], "api_request");
    assert_eq!(data["timestamp"], body["timestamp"]);
    assert_eq!(data["request_type"], "http");
    assert_eq!(
        data["http"]["params"],
        json!({ "kind": "order", "order_id": "17" })
    );
    assert_eq!(data["request"]["uuid"], run_id.as_str());
    // The body sent is the body recorded.
    assert_eq!(by_node(&log, "Start")["payload"], body);

    let branch = receiver.hits("/hooks/branch")[0].json();
    assert_eq!(branch["type"], "phlo.node.order");
    assert_eq!(branch["data"]["node_name"], "Branch_1");
    assert_eq!(branch["data"]["lhs"], "order");
    assert_eq!(branch["data"]["matched"], "order");
    assert_eq!(branch["data"]["operation"], "equals");

    let counter = &receiver.hits("/hooks/counter")[0];
    assert_eq!(counter.method, "GET");
    assert!(counter.body.is_empty());
    let query: BTreeMap<String, String> = url_pairs(&counter.query);
    assert_eq!(query["source"], "phlo", "the URL's own parameters stay");
    assert_eq!(query["node_name"], "Counter_1");
    assert_eq!(query["node_type"], "counter");
    assert_eq!(query["event"], "count_not_reached");
    assert_eq!(query["run_id"], run_id);
    assert_eq!(query["count"], "1");
    assert_eq!(query["max_count"], "5");
    assert_eq!(by_node(&log, "Counter_1")["method"], "GET");

    // Rotation: the new secret signs, and the old one still does (a second signature) in the grace period.
    let (status, rotated) = stack
        .call(
            &acct,
            Method::POST,
            "/v1/account/webhook-secret/rotate",
            None,
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let secret_after = rotated["webhook_secret"].as_str().unwrap().to_owned();
    assert_ne!(secret_after, secret_before);
    assert_eq!(rotated["previous_webhook_secret"], secret_before.as_str());
    assert!(rotated["previous_valid_until"].is_string());
    let run_2 = stack.run(&acct, &phlo_id, json!({})).await;
    wait_log(&stack, &acct, &run_2, Duration::from_secs(30), |l| {
        settled(l, 3)
    })
    .await;
    let later: Vec<Hit> = receiver.all().into_iter().skip(3).collect();
    assert_eq!(later.len(), 3);
    for hit in &later {
        assert_eq!(hit.header("webhook-signature").split(' ').count(), 2);
        assert!(verifies(&secret_after, hit) && verifies(&secret_before, hit));
    }
    assert!(
        !verifies(&secret_after, &hits[0]),
        "the first run predates the new secret"
    );
    stack.cleanup().await;
}

fn url_pairs(query: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

fn gaps(hits: &[Hit]) -> Vec<f64> {
    hits.windows(2)
        .map(|w| (w[1].at - w[0].at).as_secs_f64())
        .collect()
}

crate::conformance!(a_response_with_a_nul_byte_is_recorded_with_a_replacement_character);

/// Postgres text refuses a NUL byte. A receiver answering with one made recording the attempt fail
/// every time on Postgres (the delivery re-driven after each lease), while SQLite kept it.
async fn a_response_with_a_nul_byte_is_recorded_with_a_replacement_character(target: Target) {
    let receiver = Receiver::start(|_, _| Reply {
        body: "ok\0done",
        ..status(200)
    })
    .await;
    let (mut stack, _sim, acct) = target.start(&[]).await;
    let definition = json!({ "name": "nul", "nodes": [
        { "node_id": START, "name": "Start", "type": "start",
          "callback": { "url": receiver.url("/hooks/nul") } } ] });
    let phlo_id = stack.create_phlo(&acct, definition).await;
    let run_id = stack.run(&acct, &phlo_id, json!({})).await;
    let log = wait_log(&stack, &acct, &run_id, Duration::from_secs(30), |l| {
        settled(l, 1)
    })
    .await;
    let delivery = by_node(&log, "Start");
    assert_eq!(delivery["status"], "delivered", "{delivery:#}");
    assert_eq!(delivery["attempt_count"], 1, "{delivery:#}");
    assert_eq!(delivery["attempts"][0]["response"], "ok\u{FFFD}done");
    assert_eq!(receiver.hits("/hooks/nul").len(), 1);
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_follow_the_schedule_and_retry_after_and_410_disables_the_url() {
    let receiver = Receiver::start(|path, nth| match (path, nth) {
        ("/flaky", 0 | 1) => status(500),
        ("/busy", 0) => Reply {
            status: 503,
            headers: vec![("retry-after", "2".into())],
            ..status(503)
        },
        ("/gone", _) => status(410),
        ("/down", 0..=3) => status(502),
        ("/rejected", _) => status(404),
        _ => status(200),
    })
    .await;
    let mut stack = Stack::start(2).await;
    // Attempt n + 1 comes 1 s, 2 s, 2 s after attempt n (± 20 %).
    stack.spawn_callback(&[("PHLO_CALLBACK_SCHEDULE", "1,2,2")]);
    let acct = stack.account().await;
    let phlo_id = stack
        .create_phlo(
            &acct,
            chain(
                "retries",
                &[
                    json!({ "url": receiver.url("/flaky") }),
                    json!({ "url": receiver.url("/busy") }),
                    json!({ "url": receiver.url("/down") }),
                    json!({ "url": receiver.url("/rejected") }),
                ],
            ),
        )
        .await;
    let run_id = stack.run(&acct, &phlo_id, json!({})).await;

    let flaky = receiver
        .wait_for("/flaky", 3, Duration::from_secs(30))
        .await;
    let busy = receiver.wait_for("/busy", 2, Duration::from_secs(30)).await;
    let log = wait_log(&stack, &acct, &run_id, Duration::from_secs(40), |l| {
        settled(l, 4)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // 500, 500, 200: exactly three attempts, one webhook-id, spaced per the schedule.
    let flaky = receiver
        .hits("/flaky")
        .len()
        .eq(&3)
        .then_some(flaky)
        .expect("exactly 3 attempts");
    let ids: BTreeSet<&str> = flaky.iter().map(|h| h.header("webhook-id")).collect();
    assert_eq!(ids.len(), 1, "one webhook-id across retries");
    let g = gaps(&flaky);
    println!(
        "500, 500, 200: attempts {:.2} s and {:.2} s apart (schedule 1 s, 2 s ± 20 %)",
        g[0], g[1]
    );
    assert!(
        (0.75..2.0).contains(&g[0]),
        "first retry after {:.2} s",
        g[0]
    );
    assert!(
        (1.55..3.2).contains(&g[1]),
        "second retry after {:.2} s",
        g[1]
    );
    let d = by_node(&log, "Start");
    assert_eq!(d["status"], "delivered", "{d:#}");
    let outcomes: Vec<(&Value, &Value)> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (&a["outcome"], &a["status_code"]))
        .collect();
    assert_eq!(
        outcomes,
        [
            (&json!("retry"), &json!(500)),
            (&json!("retry"), &json!(500)),
            (&json!("delivered"), &json!(200))
        ]
    );
    assert_eq!(d["attempts"][0]["error"], "HTTP 500");

    // 503 with Retry-After: 2 outweighs the 1 s of the schedule.
    assert_eq!(receiver.hits("/busy").len(), 2);
    let g = gaps(&busy);
    println!("503 Retry-After: 2, then 200: attempts {:.2} s apart", g[0]);
    assert!(g[0] >= 1.95, "Retry-After not honoured: {:.2} s", g[0]);
    assert_eq!(by_node(&log, "Branch_1")["status"], "delivered");

    // 502 four times: the schedule's 4 attempts, then dead.
    let down = by_node(&log, "Branch_2");
    assert_eq!(down["status"], "dead", "{down:#}");
    assert_eq!(down["attempt_count"], 4);
    assert_eq!(down["attempts"][3]["outcome"], "dead");
    assert_eq!(receiver.hits("/down").len(), 4);

    // 404: rejected for good, one attempt.
    let rejected = by_node(&log, "Branch_3");
    assert_eq!(rejected["status"], "failed", "{rejected:#}");
    assert_eq!(rejected["attempt_count"], 1);
    assert!(
        rejected["last_error"]
            .as_str()
            .unwrap()
            .contains("not retried")
    );
    assert_eq!(receiver.hits("/rejected").len(), 1);

    // Redelivering the dead one: the receiver now answers 200, with the same webhook-id.
    let dead_id = down["delivery_id"].as_str().unwrap().to_owned();
    let redeliver = format!("/v1/callbacks/{dead_id}/redeliver");
    let other = stack.account().await;
    let (status, body) = stack.call(&other, Method::POST, &redeliver, None).await;
    assert_eq!(status, 404, "another account's delivery: {body}");
    let (status, body) = stack
        .call(
            &other,
            Method::GET,
            &format!("/v1/runs/{run_id}/callbacks"),
            None,
        )
        .await;
    assert_eq!(status, 404, "another account's run: {body}");
    let delivered = by_node(&log, "Start")["delivery_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = stack
        .call(
            &acct,
            Method::POST,
            &format!("/v1/callbacks/{delivered}/redeliver"),
            None,
        )
        .await;
    assert_eq!(status, 409, "a delivered one cannot be redelivered: {body}");
    let (status, body) = stack.call(&acct, Method::POST, &redeliver, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["webhook_id"], dead_id.as_str());
    let down_hits = receiver.wait_for("/down", 5, Duration::from_secs(20)).await;
    assert!(down_hits.iter().all(|h| h.header("webhook-id") == dead_id));
    let log = wait_log(&stack, &acct, &run_id, Duration::from_secs(20), |l| {
        by_node(l, "Branch_2")["status"] == "delivered"
    })
    .await;
    let redelivered = by_node(&log, "Branch_2");
    assert_eq!(redelivered["attempt_count"], 5);
    assert_eq!(redelivered["redeliveries"], 1);
    assert_eq!(redelivered["attempts"][4]["outcome"], "delivered");

    // 410 Gone: no retry, and the URL is disabled for the PHLO.
    let gone_phlo = stack
        .create_phlo(
            &acct,
            chain("gone", &[json!({ "url": receiver.url("/gone") })]),
        )
        .await;
    let first = stack.run(&acct, &gone_phlo, json!({})).await;
    let log = wait_log(&stack, &acct, &first, Duration::from_secs(20), |l| {
        settled(l, 1)
    })
    .await;
    assert_eq!(log[0]["status"], "failed", "{log:#?}");
    assert_eq!(log[0]["attempts"][0]["outcome"], "disabled");
    assert_eq!(log[0]["attempts"][0]["status_code"], 410);
    let second = stack.run(&acct, &gone_phlo, json!({})).await;
    let log = wait_log(&stack, &acct, &second, Duration::from_secs(20), |l| {
        settled(l, 1)
    })
    .await;
    assert_eq!(log[0]["status"], "failed", "{log:#?}");
    assert_eq!(log[0]["attempts"], json!([]), "not attempted");
    let why = log[0]["last_error"].as_str().unwrap();
    assert!(
        why.starts_with("not attempted: this URL answered 410 Gone"),
        "{why}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.hits("/gone").len(), 1, "no request after the 410");
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn private_loopback_and_link_local_urls_are_refused_unless_allow_listed() {
    let receiver = Receiver::start(|_, _| status(200)).await;
    let mut stack = Stack::start(1).await;
    // No allow-list in this callback service (the stack allow-lists 127.0.0.1 by default).
    let guarded = stack.spawn_callback(&[("PHLO_EGRESS_ALLOW", "")]);
    let acct = stack.account().await;
    let port = receiver.addr.port();
    let phlo_id = stack
        .create_phlo(
            &acct,
            chain(
                "ssrf",
                &[
                    json!({ "url": format!("http://127.0.0.1:{port}/literal") }),
                    json!({ "url": format!("http://localhost:{port}/resolved") }),
                    json!({ "url": "http://169.254.169.254/latest/meta-data/" }),
                    json!({ "url": "http://10.0.0.7/hook" }),
                    json!({ "url": format!("http://[::ffff:127.0.0.1]:{port}/mapped") }),
                ],
            ),
        )
        .await;
    let run_id = stack.run(&acct, &phlo_id, json!({})).await;
    let log = wait_log(&stack, &acct, &run_id, Duration::from_secs(30), |l| {
        settled(l, 5)
    })
    .await;
    let expected = [
        (
            "Start",
            "refused: 127.0.0.1 is a loopback address; allow-list it with PHLO_EGRESS_ALLOW",
        ),
        (
            "Branch_1",
            "refused: localhost resolves only to private or loopback addresses (127.0.0.1",
        ),
        (
            "Branch_2",
            "refused: 169.254.169.254 is a link-local address",
        ),
        ("Branch_3", "refused: 10.0.0.7 is a private address"),
        (
            "Branch_4",
            "refused: ::ffff:127.0.0.1 is a loopback address",
        ),
    ];
    for (node, error) in expected {
        let d = by_node(&log, node);
        assert_eq!(d["status"], "failed", "{d:#}");
        assert_eq!(d["attempt_count"], 1, "a refusal is not retried: {d:#}");
        let attempt = &d["attempts"][0];
        assert_eq!(attempt["outcome"], "failed");
        assert_eq!(attempt["status_code"], Value::Null);
        let shown = attempt["error"].as_str().unwrap();
        assert!(shown.starts_with(error), "{node}: {shown}");
        println!("{node}: {shown}");
    }
    assert!(receiver.all().is_empty(), "nothing reached the receiver");

    // Allow-listed by the operator: redelivered, it arrives, with the same webhook-id.
    stack.kill_callback(guarded);
    stack.spawn_callback(&[("PHLO_EGRESS_ALLOW", "127.0.0.1/32")]);
    let literal = by_node(&log, "Start")["delivery_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = stack
        .call(
            &acct,
            Method::POST,
            &format!("/v1/callbacks/{literal}/redeliver"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let hits = receiver
        .wait_for("/literal", 1, Duration::from_secs(20))
        .await;
    assert_eq!(hits[0].header("webhook-id"), literal);
    let log = wait_log(&stack, &acct, &run_id, Duration::from_secs(20), |l| {
        by_node(l, "Start")["status"] == "delivered"
    })
    .await;
    let d = by_node(&log, "Start");
    assert_eq!(d["attempts"][0]["outcome"], "failed");
    assert_eq!(d["attempts"][1]["outcome"], "delivered");
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_callback_service_during_1000_deliveries_loses_none() {
    const RUNS: usize = 50;
    const PER_RUN: usize = 20;
    const TOTAL: usize = RUNS * PER_RUN;
    // A little latency, so that a kill always lands on attempts in flight.
    let receiver = Receiver::start(|_, _| Reply {
        delay: Duration::from_millis(5),
        ..status(200)
    })
    .await;
    let mut stack = Stack::start(2).await;
    let acct = stack.account().await;
    let callbacks: Vec<Value> = (0..PER_RUN)
        .map(|_| json!({ "url": receiver.url("/load") }))
        .collect();
    let phlo_id = stack.create_phlo(&acct, chain("load", &callbacks)).await;
    for _ in 0..RUNS {
        stack.run(&acct, &phlo_id, json!({})).await;
    }
    let pool = sqlx::PgPool::connect(&stack.db_url).await.unwrap();
    let count = |status: &'static str| {
        let pool = pool.clone();
        async move {
            let (n,): (i64,) =
                sqlx::query_as("SELECT count(*) FROM callback_deliveries WHERE status = $1")
                    .bind(status)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            n as usize
        }
    };
    // Every run has recorded its deliveries before the service starts: they wait in NATS.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count("pending").await < TOTAL {
        assert!(
            Instant::now() < deadline,
            "the runs did not record {TOTAL} deliveries"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let started = Instant::now();
    let mut current = stack.spawn_callback(&[]);
    let mut kills = Vec::new();
    for threshold in [250, 600] {
        let deadline = Instant::now() + Duration::from_secs(60);
        while receiver.all().len() < threshold {
            assert!(
                Instant::now() < deadline,
                "stuck below {threshold} requests"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stack.kill_callback(current);
        let at = started.elapsed();
        let seen = receiver.all().len();
        kills.push((at, seen));
        println!("kill -9 of the callback service at {at:.2?}, after {seen} requests");
        if kills.len() == 1 {
            let hits = receiver.all();
            let span = hits[hits.len() - 1].at - hits[0].at;
            let rate = (hits.len() - 1) as f64 / span.as_secs_f64();
            println!(
                "before the first kill: {seen} requests in {at:.2?} from the start of the process; \
                 {rate:.0}/s from the first request to the last"
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        current = stack.spawn_callback(&[]);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while count("delivered").await < TOTAL {
        assert!(
            Instant::now() < deadline,
            "only {} of {TOTAL} delivered: pending {}, failed {}, dead {}",
            count("delivered").await,
            count("pending").await,
            count("failed").await,
            count("dead").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();

    let hits = receiver.all();
    let mut by_id: HashMap<String, Vec<&Hit>> = HashMap::new();
    for hit in &hits {
        by_id
            .entry(hit.header("webhook-id").to_owned())
            .or_default()
            .push(hit);
    }
    let ids: Vec<(uuid::Uuid,)> = sqlx::query_as("SELECT id FROM callback_deliveries")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(ids.len(), TOTAL);
    for (id,) in &ids {
        assert!(
            by_id.contains_key(&id.to_string()),
            "delivery {id} never arrived"
        );
    }
    assert_eq!(by_id.len(), TOTAL, "no request with an unknown webhook-id");
    // A duplicate is the same callback (same body: run and node) with the same webhook-id.
    let mut callback_ids: HashMap<(String, String), BTreeSet<String>> = HashMap::new();
    for hit in &hits {
        let body = hit.json();
        let key = (
            body["data"]["run_id"].as_str().unwrap().to_owned(),
            body["data"]["node_id"].as_str().unwrap().to_owned(),
        );
        callback_ids
            .entry(key)
            .or_default()
            .insert(hit.header("webhook-id").to_owned());
    }
    assert_eq!(callback_ids.len(), TOTAL);
    assert!(callback_ids.values().all(|ids| ids.len() == 1));
    for (id, same) in &by_id {
        let first = &same[0].body;
        assert!(
            same.iter().all(|h| &h.body == first),
            "{id}: duplicates differ"
        );
    }
    let duplicates = hits.len() - TOTAL;
    let outcomes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT outcome, count(*) FROM callback_attempts GROUP BY outcome ORDER BY outcome",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let delivered = outcomes
        .iter()
        .find(|(o, _)| o == "delivered")
        .map(|(_, n)| *n);
    assert_eq!(
        delivered,
        Some(TOTAL as i64),
        "one delivered attempt per delivery: {outcomes:?}"
    );
    // Every request comes from a logged attempt.
    let attempts: Vec<(uuid::Uuid, i32)> =
        sqlx::query_as("SELECT id, attempts FROM callback_deliveries")
            .fetch_all(&pool)
            .await
            .unwrap();
    for (id, n) in &attempts {
        let requests = by_id[&id.to_string()].len();
        assert!(
            requests <= *n as usize,
            "{id}: {requests} requests, {n} attempts"
        );
    }
    println!(
        "{TOTAL} callbacks delivered in {elapsed:.2?} ({:.0}/s overall) across {} kills; {} requests, \
         {duplicates} duplicates (same webhook-id); attempts by outcome: {outcomes:?}",
        TOTAL as f64 / elapsed.as_secs_f64(),
        kills.len(),
        hits.len(),
    );
    pool.close().await;
    stack.cleanup().await;
}

/// `GET /v1/callbacks` as `acct`, with `query` (already encoded); asserts a 200.
async fn listing(stack: &Stack, acct: &Account, query: &str) -> Value {
    let (status, body) = stack
        .call(acct, Method::GET, &format!("/v1/callbacks?{query}"), None)
        .await;
    assert_eq!(status, 200, "?{query}: {body}");
    body
}

fn delivery_ids(page: &Value) -> Vec<String> {
    page["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["delivery_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Tails `GET /v1/callbacks` from `after` until `done` holds for what it listed (every change, in
/// order, a delivery again each time it changed); returns those and the position reached.
async fn tail_until(
    stack: &Stack,
    acct: &Account,
    filter: &str,
    mut after: String,
    done: impl Fn(&[Value]) -> bool,
) -> (Vec<Value>, String) {
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut seen = Vec::new();
    loop {
        let page = listing(stack, acct, &format!("{filter}&after={after}&limit=100")).await;
        assert_eq!(page["meta"]["next"], Value::Null, "{page}");
        seen.extend(page["objects"].as_array().unwrap().iter().cloned());
        after = page["meta"]["after"].as_str().unwrap().to_owned();
        if done(&seen) {
            return (seen, after);
        }
        assert!(
            Instant::now() < deadline,
            "tailing {filter} never got there: {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The latest state of each delivery among what a tail listed.
fn latest(seen: &[Value]) -> HashMap<String, Value> {
    seen.iter()
        .map(|d| (d["delivery_id"].as_str().unwrap().to_owned(), d.clone()))
        .collect()
}

fn all_settled(seen: &[Value], n: usize) -> bool {
    let latest = latest(seen);
    latest.len() == n && latest.values().all(|d| d["status"] != "pending")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_account_listing_filters_pages_tails_and_keeps_accounts_apart() {
    let receiver = Receiver::start(|path, _| match path {
        "/gone" => status(410),
        _ => status(200),
    })
    .await;
    let mut stack = Stack::start(1).await;
    stack.spawn_callback(&[]);
    let acct = stack.account().await;
    let other = stack.account().await;
    let ok = json!({ "url": receiver.url("/ok") });
    let gone = json!({ "url": receiver.url("/gone") });
    let phlo_a = stack
        .create_phlo(&acct, chain("listing a", &[ok.clone(), gone]))
        .await;
    let phlo_b = stack
        .create_phlo(&acct, chain("listing b", std::slice::from_ref(&ok)))
        .await;
    let phlo_other = stack
        .create_phlo(&other, chain("listing other", &[ok]))
        .await;

    // Before anything happened: nothing, and where a tail starts.
    let empty = listing(&stack, &acct, "").await;
    assert_eq!(empty["objects"], json!([]));
    assert_eq!(empty["meta"]["limit"], 20);
    assert_eq!(empty["meta"]["next"], Value::Null);
    let start = empty["meta"]["after"].as_str().unwrap().to_owned();

    let run_a = stack.run(&acct, &phlo_a, json!({})).await;
    let run_b = stack.run(&acct, &phlo_b, json!({})).await;
    let run_other = stack.run(&other, &phlo_other, json!({})).await;
    let (seen, position) =
        tail_until(&stack, &acct, "", start.clone(), |s| all_settled(s, 3)).await;
    let mine = latest(&seen);
    let runs: BTreeSet<&str> = mine
        .values()
        .map(|d| d["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(runs, BTreeSet::from([run_a.as_str(), run_b.as_str()]));
    let failed: Vec<&Value> = mine.values().filter(|d| d["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{mine:#?}");
    let gone_id = failed[0]["delivery_id"].as_str().unwrap().to_owned();
    assert_eq!(failed[0]["attempts"][0]["outcome"], "disabled");
    // The same objects as a run's log.
    let log_a = deliveries(&stack, &acct, &run_a).await;
    let from_log = by_node(&log_a, "Branch_1");
    assert_eq!(mine[&gone_id]["attempts"], from_log["attempts"]);
    assert_eq!(mine[&gone_id]["updated_on"], from_log["updated_on"]);

    // Only the caller's account: the other one lists its own run alone, even by our run's id.
    let (theirs, _) = tail_until(&stack, &other, "", "0".into(), |s| all_settled(s, 1)).await;
    assert_eq!(theirs[0]["run_id"], run_other.as_str());
    assert!(
        !seen.iter().any(|d| d["run_id"] == run_other.as_str()),
        "{seen:#?}"
    );
    for query in [
        format!("run_id={run_a}"),
        format!("phlo_id={phlo_a}"),
        format!("run_id={run_a}&after=0"),
    ] {
        let page = listing(&stack, &other, &query).await;
        assert_eq!(page["objects"], json!([]), "?{query}: {page}");
    }

    // Filters.
    let count = |page: &Value| page["objects"].as_array().unwrap().len();
    assert_eq!(
        count(&listing(&stack, &acct, &format!("phlo_id={phlo_a}")).await),
        2
    );
    assert_eq!(
        count(&listing(&stack, &acct, &format!("phlo_id={phlo_b}")).await),
        1
    );
    let only_b = listing(&stack, &acct, &format!("run_id={run_b}&after=0")).await;
    assert_eq!(count(&only_b), 1);
    assert_eq!(only_b["objects"][0]["run_id"], run_b.as_str());
    let failed_only = listing(&stack, &acct, "status=failed").await;
    assert_eq!(delivery_ids(&failed_only), [gone_id.as_str()]);
    assert_eq!(count(&listing(&stack, &acct, "status=delivered").await), 2);
    assert_eq!(count(&listing(&stack, &acct, "status=pending").await), 0);
    assert_eq!(
        count(&listing(&stack, &acct, "since=2000-01-01T00:00:00Z").await),
        3
    );
    assert_eq!(
        count(&listing(&stack, &acct, "since=2999-01-01T00:00:00Z").await),
        0
    );

    // Newest first, a page at a time: every delivery once, the most recently changed first.
    let newest = delivery_ids(&listing(&stack, &acct, "limit=3").await);
    let mut paged = Vec::new();
    let mut query = "limit=1".to_owned();
    loop {
        let page = listing(&stack, &acct, &query).await;
        paged.extend(delivery_ids(&page));
        match page["meta"]["next"].as_str() {
            Some(next) => query = format!("limit=1&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(paged, newest);
    assert_eq!(paged.len(), 3);

    // Tailing across concurrent writes: a transaction that took its id earlier (here it touches a
    // delivery of run B) but commits after a redelivery's changes holds those back: a tail that
    // moved past them would never see the earlier one.
    let pool = sqlx::PgPool::connect(&stack.db_url).await.unwrap();
    let touched = mine
        .values()
        .find(|d| d["run_id"] == run_b.as_str())
        .and_then(|d| d["delivery_id"].as_str())
        .unwrap()
        .to_owned();
    let mut slow = pool.begin().await.unwrap();
    sqlx::query("UPDATE callback_deliveries SET last_error = last_error WHERE id = $1::uuid")
        .bind(&touched)
        .execute(&mut *slow)
        .await
        .unwrap();
    let (status, body) = stack
        .call(
            &acct,
            Method::POST,
            &format!("/v1/callbacks/{gone_id}/redeliver"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Committed: the run's log shows the second attempt; the account listing does not yet.
    wait_log(&stack, &acct, &run_a, Duration::from_secs(30), |log| {
        by_node(log, "Branch_1")["attempts"][1]["outcome"] == "disabled"
            && by_node(log, "Branch_1")["status"] == "failed"
    })
    .await;
    let held = listing(&stack, &acct, &format!("after={position}")).await;
    assert_eq!(held["objects"], json!([]), "{held}");
    slow.commit().await.unwrap();
    let (after_commit, _) = tail_until(
        &stack,
        &acct,
        "",
        held["meta"]["after"].as_str().unwrap().to_owned(),
        |s| {
            let l = latest(s);
            l.contains_key(&touched) && l.get(&gone_id).is_some_and(|d| d["status"] == "failed")
        },
    )
    .await;
    let order: Vec<&str> = after_commit
        .iter()
        .map(|d| d["delivery_id"].as_str().unwrap())
        .collect();
    let first_touch = order.iter().position(|id| *id == touched).unwrap();
    let last_gone = order.iter().rposition(|id| *id == gone_id).unwrap();
    assert!(first_touch < last_gone, "in commit order: {order:?}");
    assert_eq!(
        latest(&after_commit)[&gone_id]["attempts"][1]["outcome"],
        "disabled"
    );

    // Bad input: 400 naming the parameter.
    for (query, names) in [
        ("phlo_id=nope", "phlo_id=nope is not a UUID"),
        ("run_id=nope", "run_id=nope is not a UUID"),
        ("status=lost", "status=lost is not valid"),
        ("since=yesterday", "since=yesterday is not an RFC 3339 time"),
        ("limit=0", "limit=0 is out of range"),
        ("limit=101", "limit=101 is out of range"),
        ("cursor=12", "cursor=12 is not a position this API returned"),
        (
            "after=latest",
            "after=latest is not a position this API returned",
        ),
        (
            "after=1_nope",
            "after=1_nope is not a position this API returned",
        ),
        (
            "after=0&cursor=0",
            "cursor and after cannot be used together",
        ),
    ] {
        let (status, body) = stack
            .call(&acct, Method::GET, &format!("/v1/callbacks?{query}"), None)
            .await;
        assert_eq!(status, 400, "?{query}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.starts_with(names), "?{query}: {error}");
    }
    stack.cleanup().await;
}
