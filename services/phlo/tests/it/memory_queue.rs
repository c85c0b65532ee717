//! `phlo serve` with the in-process queue (`NATS_URL=memory:`): the real process, no NATS in its
//! configuration at all, driven through the HTTP API; and killed with `kill -9` mid-run, after which
//! Postgres (timers, the callback re-drive) brings the run and its callbacks home.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
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

use crate::support::{ADMIN_TOKEN, Account, SECRET_KEY, done_step};

const START: &str = "3e000000-0000-4000-8000-000000000000";
const BRANCH_1: &str = "3e000000-0000-4000-8000-000000000001";
const COUNTER_1: &str = "3e000000-0000-4000-8000-000000000002";
const HTTP_1: &str = "3e000000-0000-4000-8000-000000000003";
const BRANCH_2: &str = "3e000000-0000-4000-8000-000000000004";
const COUNTER_2: &str = "3e000000-0000-4000-8000-000000000005";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The settings every process here gets: those of `Stack` (fast polls and re-drives), with the
/// in-process queue instead of NATS.
fn configure(cmd: &mut Command, db_url: &str, prefix: &str) {
    cmd.env("DATABASE_URL", db_url)
        .env("NATS_URL", "memory:")
        .env("PHLO_NATS_PREFIX", prefix)
        .env("PHLO_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("PHLO_SECRET_KEY", SECRET_KEY)
        .env("PHLO_WORKER_ADDR", "127.0.0.1:0")
        .env("PHLO_CALLBACK_ADDR", "127.0.0.1:0")
        .env("PHLO_EGRESS_ALLOW", "127.0.0.1/32")
        .env("PHLO_POLL_INTERVAL_MS", "200")
        .env("PHLO_REDRIVE_AFTER_SECS", "3")
        .env("PHLO_RELAY_AFTER_SECS", "1")
        .env("PHLO_CALLBACK_SCHEDULE", "0.5,1,1")
        .env("PHLO_CALLBACK_TIMEOUT_SECS", "10")
        .env("PHLO_CALLBACK_REDRIVE_AFTER_SECS", "3")
        .env("PHLO_DB_POOL", "8")
        .env("PHLO_RATE_API_PER_SEC", "0")
        .env("PHLO_RATE_RUNS_PER_SEC", "0")
        .env(
            "RUST_LOG",
            std::env::var("PHLO_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null());
}

/// One `phlo serve` process: gateway, worker and callback service sharing the in-process queue.
struct Serve {
    db_url: String,
    prefix: String,
    port: u16,
    env: Vec<(String, String)>,
    child: Option<Child>,
    http: reqwest::Client,
}

impl Serve {
    async fn start(env: &[(&str, &str)]) -> Serve {
        let mut serve = Serve {
            db_url: phlo_store::testing::fresh_database()
                .await
                .expect("test database"),
            prefix: format!("t{}", uuid::Uuid::new_v4().simple()),
            port: free_port(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            child: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        };
        serve.spawn().await;
        serve
    }

    /// Starts the process (again, after [`Serve::kill`]) on the same port, database and prefix.
    async fn spawn(&mut self) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_phlo"));
        cmd.arg("serve");
        configure(&mut cmd, &self.db_url, &self.prefix);
        cmd.env("PHLO_GATEWAY_ADDR", format!("127.0.0.1:{}", self.port))
            .env("PHLO_PUBLIC_URL", self.url(""));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn phlo serve"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(self.url("/readyz")).send().await
                && r.status().is_success()
            {
                let ready: Value = r.json().await.expect("readiness json");
                assert_eq!(ready["nats"], true, "the in-process queue is always up");
                return;
            }
            assert!(Instant::now() < deadline, "phlo serve never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`: the in-process queue dies with everything it held.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn account(&self) -> Account {
        let r = self
            .http
            .post(self.url("/v1/accounts"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "name": "memory" }))
            .send()
            .await
            .expect("create account");
        assert_eq!(r.status(), 201, "account creation");
        let body: Value = r.json().await.expect("json");
        Account {
            auth_id: body["auth_id"].as_str().expect("auth_id").to_owned(),
            token: body["auth_token"].as_str().expect("token").to_owned(),
        }
    }

    async fn call(&self, acct: &Account, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, self.url(path))
            .basic_auth(&acct.auth_id, Some(&acct.token));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!((200..300).contains(&status), "{path}: {status} {body}");
        body
    }

    async fn run(&self, acct: &Account, phlo_id: &str, payload: Value) -> String {
        let path = format!("/v1/account/{}/phlo/{phlo_id}", acct.auth_id);
        let body = self.call(acct, Method::POST, &path, Some(payload)).await;
        body["phlo_run_id"].as_str().expect("run id").to_owned()
    }

    async fn wait_run(&self, acct: &Account, run_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let run = self
                .call(acct, Method::GET, &format!("/v1/runs/{run_id}"), None)
                .await;
            if run["status"] != "active" && run["status"] != "queued" {
                return run;
            }
            assert!(Instant::now() < deadline, "run still active: {run:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The run's callback deliveries, once `n` of them are settled (none pending).
    async fn settled_callbacks(&self, acct: &Account, run_id: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let body = self
                .call(
                    acct,
                    Method::GET,
                    &format!("/v1/runs/{run_id}/callbacks"),
                    None,
                )
                .await;
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
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One request the local server received.
#[derive(Debug, Clone)]
struct Hit {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
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

/// A local server standing for both the API the HTTP Request node calls and the webhook receiver;
/// it records every request. Paths in `hang_first` never answer their first request.
struct Local {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Local {
    async fn start(hang_first: &'static [&'static str]) -> Local {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let log = hits.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let log = log.clone();
                async move {
                    let hit = Hit {
                        method: method.to_string(),
                        path: uri.path().to_owned(),
                        query: uri.query().unwrap_or_default().to_owned(),
                        headers,
                        body: body.to_vec(),
                    };
                    let earlier = {
                        let mut log = log.lock().unwrap();
                        let earlier = log.iter().filter(|h| h.path == hit.path).count();
                        log.push(hit.clone());
                        earlier
                    };
                    if earlier == 0 && hang_first.contains(&hit.path.as_str()) {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    let body = match hit.path.as_str() {
                        "/orders/17" => json!({ "order": { "id": "A-17", "status": "shipped" } }),
                        _ => json!({ "ok": true }),
                    };
                    axum::response::Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(axum::body::Body::from(body.to_string()))
                        .unwrap()
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Local { addr, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }

    fn hits(&self, path: &str) -> Vec<Hit> {
        let hits = self.hits.lock().unwrap();
        hits.iter().filter(|h| h.path == path).cloned().collect()
    }

    async fn wait_for(&self, path: &str, n: usize) -> Vec<Hit> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let hits = self.hits(path);
            if hits.len() >= n {
                return hits;
            }
            assert!(Instant::now() < deadline, "{path}: {} of {n}", hits.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The signature check docs/api.md documents: HMAC-SHA256 with the base64 secret after `whsec_`,
/// over `{webhook-id}.{webhook-timestamp}.{body}`.
fn verifies(secret: &str, hit: &Hit) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(
        format!(
            "{}.{}.",
            hit.header("webhook-id"),
            hit.header("webhook-timestamp")
        )
        .as_bytes(),
    );
    mac.update(&hit.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    hit.header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

async fn webhook_secret(serve: &Serve, acct: &Account) -> String {
    let body = serve
        .call(acct, Method::GET, "/v1/account/webhook-secret", None)
        .await;
    body["webhook_secret"].as_str().unwrap().to_owned()
}

async fn create_phlo(serve: &Serve, acct: &Account, definition: Value) -> String {
    let body = serve
        .call(acct, Method::POST, "/v1/phlo", Some(definition))
        .await;
    body["phlo_id"].as_str().expect("phlo_id").to_owned()
}

fn journal(run: &Value) -> Vec<(String, String)> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["node_name"].as_str().unwrap().to_owned(),
                s["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_phlo_runs_end_to_end_in_phlo_serve_without_nats() {
    let local = Local::start(&[]).await;
    let serve = Serve::start(&[]).await;
    let acct = serve.account().await;
    let secret = webhook_secret(&serve, &acct).await;
    let phlo_id = create_phlo(&serve, &acct, json!({ "name": "in memory", "nodes": [
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
          "options": { "method": "POST",
                       "url": local.url("/orders/{{Start.http.params.order_id}}"),
                       "headers": { "X-Run": "{{Start.request.uuid}}" },
                       "body": { "type": "json", "content": { "kind": "{{Start.http.params.kind}}" } },
                       "timeout": 5,
                       "response": { "content_type": "application/json", "keys": ["order.id"] } },
          "transitions": { "success": BRANCH_2 },
          "callback": { "url": local.url("/hooks/http"), "method": "POST" } },
        { "node_id": BRANCH_2, "name": "Branch_2", "type": "branch",
          "options": { "lhs": "{{HTTP_Request_1.response.body.order.status}}",
                       "conditions": [{ "alias": "shipped", "operation": "equals", "rhs": "shipped" }] },
          "transitions": { "shipped": COUNTER_2 } },
        { "node_id": COUNTER_2, "name": "Counter_2", "type": "counter", "options": { "max_count": 1 } },
    ]}))
    .await;

    let run_id = serve
        .run(&acct, &phlo_id, json!({ "order_id": "17" }))
        .await;
    let run = serve.wait_run(&acct, &run_id).await;

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
    assert_eq!(
        journal(&run),
        expected.map(|(n, o)| (n.to_owned(), o.to_owned()))
    );

    let requests = local.hits("/orders/17");
    assert_eq!(requests.len(), 1, "the API was called once");
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].header("x-run"), run_id);
    assert!(!requests[0].header("idempotency-key").is_empty());
    assert_eq!(requests[0].json(), json!({ "kind": "order" }));

    let log = serve.settled_callbacks(&acct, &run_id, 1).await;
    assert_eq!(log[0]["status"], "delivered", "{log:#?}");
    let hooks = local.hits("/hooks/http");
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    assert!(verifies(&secret, hook), "signature of {hook:#?}");
    assert_eq!(hook.header("webhook-id"), log[0]["webhook_id"]);
    let body = hook.json();
    assert_eq!(body["type"], "phlo.node.success", "{body:#}");
    assert_eq!(body["data"]["run_id"], run_id.as_str());
    assert_eq!(body["data"]["node_name"], "HTTP_Request_1");
    assert_eq!(body["data"]["status_code"], 200);
    assert!(hook.query.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_survives_kill_9_of_phlo_serve_mid_request() {
    // The first request of each path hangs until the process that made it dies.
    let local = Local::start(&["/slow", "/hooks/start"]).await;
    // The HTTP wait's timer fires after 2 s whatever the node's own timeout.
    let mut serve = Serve::start(&[("PHLO_MAX_WAIT_SECS", "2")]).await;
    let acct = serve.account().await;
    let secret = webhook_secret(&serve, &acct).await;
    let phlo_id = create_phlo(&serve, &acct, json!({ "name": "killed", "nodes": [
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
    let run_id = serve.run(&acct, &phlo_id, json!({})).await;

    // Both the node's request and the Start callback are in flight, and their messages are held by
    // this process only: published, so no longer in the outbox for the relay to send again.
    local.wait_for("/slow", 1).await;
    local.wait_for("/hooks/start", 1).await;
    let pool = phlo_store::connect(&serve.db_url, 1)
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
    serve.kill();
    serve.spawn().await;

    let run = serve.wait_run(&acct, &run_id).await;
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
    let log = serve.settled_callbacks(&acct, &run_id, 2).await;
    assert!(log.iter().all(|d| d["status"] == "delivered"), "{log:#?}");
    let starts = local.wait_for("/hooks/start", 2).await;
    let counters = local.wait_for("/hooks/counter", 1).await;
    let by_id: HashMap<&str, &Value> = log
        .iter()
        .map(|d| (d["webhook_id"].as_str().unwrap(), d))
        .collect();
    for hit in [&starts[1], &counters[0]] {
        assert!(verifies(&secret, hit), "signature of {hit:#?}");
        assert!(by_id.contains_key(hit.header("webhook-id")), "{hit:#?}");
    }
    assert_eq!(
        starts[0].header("webhook-id"),
        starts[1].header("webhook-id"),
        "the re-sent callback is the same delivery"
    );

    // The restarted process runs new work through its fresh queue: /slow answers now.
    let second = serve.run(&acct, &phlo_id, json!({})).await;
    let run = serve.wait_run(&acct, &second).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(done_step(&run, "HTTP_Request_1")["state"], "success");
    assert_eq!(done_step(&run, "Branch_1")["state"], "ok");
}

/// Separate processes cannot share an in-process queue: each standalone service refuses it at
/// start-up, saying why and what to do.
#[tokio::test(flavor = "multi_thread")]
async fn standalone_services_refuse_the_in_process_queue() {
    let db_url = phlo_store::testing::fresh_database()
        .await
        .expect("test database");
    for service in ["gateway", "worker", "callback"] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_phlo"));
        cmd.arg(service);
        configure(&mut cmd, &db_url, "standalone");
        let out = cmd
            .env("PHLO_GATEWAY_ADDR", "127.0.0.1:0")
            .output()
            .expect("run the service");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{service}: {stderr}");
        assert!(
            stderr.contains("works only in `phlo serve`") && stderr.contains("nats://"),
            "{service}: {stderr}"
        );
    }
}
