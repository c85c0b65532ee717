//! A whole stack per test: a fresh database, a unique NATS prefix, a gateway process and worker
//! processes, plus a recording HTTP server for the HTTP Request node.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::{Value, json};

pub const ADMIN_TOKEN: &str = "test-admin-token";
/// `PHLO_SECRET_KEY` of every test process: the key webhook secrets are sealed with.
pub const SECRET_KEY: &str = "8nwAQbF+aAyoH3uHhauTKbJL0tKosj1BuU36732dKJE=";

pub struct Stack {
    pub db_url: String,
    pub nats_url: String,
    pub prefix: String,
    pub gateway_url: String,
    pub http: reqwest::Client,
    gateway: Option<Child>,
    workers: Vec<Option<Child>>,
    /// Callback service processes (`phlo callback`), started by the tests that need them.
    callbacks: Vec<Option<Child>>,
    extra_env: Vec<(String, String)>,
    /// Where the processes' stdout and stderr go (`<dir>/<subcommand>.log`); inherited when `None`.
    log_dir: Option<std::path::PathBuf>,
    /// The subcommand of the process that serves the API: `gateway`, or `serve` (see [`Stack::start_serve`]).
    front: &'static str,
}

/// Where a scenario of the conformance suite runs: the distributed services (a gateway, a worker and
/// a callback service, each its own process, on Postgres and NATS, with the carrier simulator in the
/// test's process) or `phlo dev` (one process on SQLite and the in-process queue, serving the
/// simulator itself). [`conformance!`](crate::conformance) runs a scenario on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Distributed,
    Dev,
}

impl Target {
    /// A stack on this target with the carrier simulator it uses, and an account. `env` adds or
    /// overrides variables of every process.
    pub async fn start(self, env: &[(&str, &str)]) -> (Stack, Sim, Account) {
        let (stack, sim) = match self {
            Target::Distributed => {
                let sim = Sim::start().await;
                let sim_env = sim.env();
                let all: Vec<(&str, &str)> = sim_env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .chain(env.iter().copied())
                    .collect();
                let mut stack = Stack::start_with(1, &all).await;
                stack.spawn_callback(env);
                (stack, sim)
            }
            Target::Dev => {
                // A known carrier token (instead of `phlo dev`'s random one), so that scenarios can
                // use the simulator's REST API (`Rig::carrier`) on both targets.
                let dev_env: Vec<(&str, &str)> = [
                    ("SIM_AUTH_TOKEN", DEV_SIM_TOKEN),
                    ("PHLO_CARRIER_AUTH_TOKEN", DEV_SIM_TOKEN),
                ]
                .into_iter()
                .chain(env.iter().copied())
                .collect();
                let (stack, mut sim) = Stack::start_dev(&dev_env).await;
                sim.auth_token = DEV_SIM_TOKEN.to_owned();
                (stack, sim)
            }
        };
        let acct = stack.account().await;
        (stack, sim, acct)
    }
}

/// The simulator's auth token in `phlo dev` stacks of [`Target::start`].
const DEV_SIM_TOKEN: &str = "dev-conformance-sim-token";

/// One test per target for a scenario `async fn name(target: Target)`: `name::distributed` and
/// `name::dev`.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread")]
                async fn distributed() {
                    super::$name($crate::support::Target::Distributed).await
                }

                #[tokio::test(flavor = "multi_thread")]
                async fn dev() {
                    super::$name($crate::support::Target::Dev).await
                }
            }
        )+
    };
}

/// The callback service's settings in tests: a short retry schedule and quick re-drives.
const CALLBACK_ENV: [(&str, &str); 4] = [
    ("PHLO_CALLBACK_ADDR", "127.0.0.1:0"),
    ("PHLO_CALLBACK_SCHEDULE", "0.5,1,1"),
    ("PHLO_CALLBACK_TIMEOUT_SECS", "5"),
    ("PHLO_CALLBACK_REDRIVE_AFTER_SECS", "3"),
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

impl Stack {
    pub async fn start(workers: usize) -> Stack {
        Stack::start_with(workers, &[]).await
    }

    /// `env` adds or overrides variables of every process (e.g. `PHLO_MAX_WAIT_SECS`).
    pub async fn start_with(workers: usize, env: &[(&str, &str)]) -> Stack {
        let nats_url =
            std::env::var("PHLO_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        Stack::start_custom(workers, &nats_url, env).await
    }

    /// Like [`Stack::start_with`], against the NATS at `nats_url` (e.g. a test's own [`NatsServer`]).
    pub async fn start_custom(workers: usize, nats_url: &str, env: &[(&str, &str)]) -> Stack {
        Stack::start_inner("gateway", workers, nats_url, env, None).await
    }

    /// One `phlo serve` process on the in-process queue (`NATS_URL=memory:`): gateway, worker and
    /// callback service together, standing where the gateway stands (`url`, [`Stack::kill_gateway`],
    /// [`Stack::start_gateway`]). `env` adds or overrides variables as in [`Stack::start_with`].
    pub async fn start_serve(env: &[(&str, &str)]) -> Stack {
        let env: Vec<(&str, &str)> = CALLBACK_ENV.iter().chain(env).copied().collect();
        Stack::start_inner("serve", 0, "memory:", &env, None).await
    }

    /// `phlo dev --memory`: everything in one process on SQLite and the in-process queue, with the
    /// carrier simulator under `/carrier` (time ×0.02, as [`Sim::start`]) as its carrier. Returns the
    /// stack and the simulator it serves. `env` adds or overrides variables as in
    /// [`Stack::start_with`].
    pub async fn start_dev(env: &[(&str, &str)]) -> (Stack, Sim) {
        let env: Vec<(&str, &str)> = CALLBACK_ENV
            .iter()
            .filter(|(k, _)| *k != "PHLO_CALLBACK_ADDR")
            .chain(&[("SIM_TIME_SCALE", "0.02")])
            .chain(env)
            .copied()
            .collect();
        let stack = Stack::start_inner("dev", 0, "memory:", &env, None).await;
        let sim = Sim::serving(&format!("{}/carrier", stack.gateway_url));
        (stack, sim)
    }

    /// Like [`Stack::start_with`], with each process's stdout and stderr appended to
    /// `<log_dir>/<subcommand>.log`, for the tests that read what the services log.
    pub async fn start_logged(
        workers: usize,
        env: &[(&str, &str)],
        log_dir: &std::path::Path,
    ) -> Stack {
        let nats_url =
            std::env::var("PHLO_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
        Stack::start_inner("gateway", workers, &nats_url, env, Some(log_dir.to_owned())).await
    }

    async fn start_inner(
        front: &'static str,
        workers: usize,
        nats_url: &str,
        env: &[(&str, &str)],
        log_dir: Option<std::path::PathBuf>,
    ) -> Stack {
        let db_url = if front == "dev" {
            String::new()
        } else {
            phlo_store::testing::fresh_database()
                .await
                .expect("test database")
        };
        let mut stack = Stack {
            db_url,
            nats_url: nats_url.to_owned(),
            prefix: format!("t{}", uuid::Uuid::new_v4().simple()),
            gateway_url: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            gateway: None,
            workers: Vec::new(),
            callbacks: Vec::new(),
            extra_env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            log_dir,
            front,
        };
        stack.start_gateway().await;
        for _ in 0..workers {
            stack.spawn_worker();
        }
        stack
    }

    /// `phlo <sub>` with this stack's settings, not yet started.
    pub fn command(&self, sub: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_phlo"));
        cmd.arg(sub);
        // `phlo dev` brings its own store, queue and carrier; the rest is configured alike.
        if sub != "dev" {
            cmd.env("DATABASE_URL", &self.db_url)
                .env("NATS_URL", &self.nats_url)
                .env("PHLO_NATS_PREFIX", &self.prefix)
                .env("PHLO_WORKER_ADDR", "127.0.0.1:0");
        }
        cmd.env("PHLO_PUBLIC_URL", &self.gateway_url)
            .env("PHLO_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("PHLO_SECRET_KEY", SECRET_KEY)
            .env("PHLO_EGRESS_ALLOW", "127.0.0.1/32")
            .env("PHLO_POLL_INTERVAL_MS", "200")
            .env("PHLO_REDRIVE_AFTER_SECS", "3")
            .env("PHLO_RELAY_AFTER_SECS", "1")
            .env("PHLO_DB_POOL", "8")
            // Load tests fire runs as fast as they can: no rate limit unless a test sets one.
            .env("PHLO_RATE_API_PER_SEC", "0")
            .env("PHLO_RATE_RUNS_PER_SEC", "0")
            .env(
                "RUST_LOG",
                std::env::var("PHLO_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null());
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.log_dir {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{sub}.log")))
                .expect("process log file");
            cmd.stdout(log.try_clone().expect("process log file"))
                .stderr(log);
        }
        cmd
    }

    pub async fn start_gateway(&mut self) {
        let port = free_port();
        // Known before the gateway starts: its own URL is what callback URLs and signatures use.
        self.gateway_url = format!("http://127.0.0.1:{port}");
        let mut cmd = self.command(self.front);
        if self.front == "dev" {
            cmd.args([
                "--memory",
                "--no-samples",
                "--addr",
                &format!("127.0.0.1:{port}"),
            ]);
            if self.log_dir.is_none() {
                // The banner: tests read the account from the admin API instead.
                cmd.stdout(Stdio::null());
            }
        } else {
            cmd.env("PHLO_GATEWAY_ADDR", format!("127.0.0.1:{port}"));
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.front));
        self.gateway = Some(child);
        self.wait_ready(&format!("{}/readyz", self.gateway_url))
            .await;
    }

    /// `kill -9` of the gateway (or of `phlo serve`); [`Stack::start_gateway`] starts it again.
    pub fn kill_gateway(&mut self) {
        if let Some(mut child) = self.gateway.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn wait_ready(&self, url: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(url).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{url} never became ready");
    }

    /// Starts a worker process and returns its index.
    pub fn spawn_worker(&mut self) -> usize {
        let child = self.command("worker").spawn().expect("spawn worker");
        self.workers.push(Some(child));
        self.workers.len() - 1
    }

    /// `kill -9` of a worker.
    pub fn kill_worker(&mut self, i: usize) {
        if let Some(mut child) = self.workers.get_mut(i).and_then(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a callback service process with a short retry schedule (`env` overrides it and anything
    /// else) and returns its index.
    pub fn spawn_callback(&mut self, env: &[(&str, &str)]) -> usize {
        let mut cmd = self.command("callback");
        for (k, v) in CALLBACK_ENV.iter().chain(env) {
            cmd.env(k, v);
        }
        self.callbacks
            .push(Some(cmd.spawn().expect("spawn callback service")));
        self.callbacks.len() - 1
    }

    /// `kill -9` of a callback service process.
    pub fn kill_callback(&mut self, i: usize) {
        if let Some(mut child) = self.callbacks.get_mut(i).and_then(Option::take) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// How many worker processes this stack started and has not killed.
    pub fn live_workers(&self) -> usize {
        self.workers.iter().filter(|w| w.is_some()).count()
    }

    pub fn kill_all_workers(&mut self) {
        for i in 0..self.workers.len() {
            self.kill_worker(i);
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway_url)
    }

    /// Creates an account through the admin API.
    pub async fn account(&self) -> Account {
        let r = self
            .http
            .post(self.url("/v1/accounts"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "name": "test" }))
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

    pub async fn call(
        &self,
        acct: &Account,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .basic_auth(&acct.auth_id, Some(&acct.token));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn create_phlo(&self, acct: &Account, definition: Value) -> String {
        let (status, body) = self
            .call(acct, Method::POST, "/v1/phlo", Some(definition))
            .await;
        assert_eq!(status, 201, "create PHLO: {body}");
        body["phlo_id"].as_str().expect("phlo_id").to_owned()
    }

    pub async fn run(&self, acct: &Account, phlo_id: &str, payload: Value) -> String {
        let path = format!("/v1/account/{}/phlo/{phlo_id}", acct.auth_id);
        let (status, body) = self.call(acct, Method::POST, &path, Some(payload)).await;
        assert_eq!(status, 201, "run: {body}");
        body["phlo_run_id"].as_str().expect("run id").to_owned()
    }

    pub async fn get_run(&self, acct: &Account, run_id: &str) -> Value {
        let (status, body) = self
            .call(acct, Method::GET, &format!("/v1/runs/{run_id}"), None)
            .await;
        assert_eq!(status, 200, "get run: {body}");
        body
    }

    /// Polls until the run is no longer active (nor queued).
    pub async fn wait_run(&self, acct: &Account, run_id: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let run = self.get_run(acct, run_id).await;
            if run["status"] != "active" && run["status"] != "queued" {
                return run;
            }
            if Instant::now() > deadline {
                panic!("run {run_id} still active after {timeout:?}: {run:#}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Deletes the test's JetStream stream.
    pub async fn cleanup(&mut self) {
        self.kill_all_workers();
        for i in 0..self.callbacks.len() {
            self.kill_callback(i);
        }
        if let Some(mut g) = self.gateway.take() {
            let _ = g.kill();
            let _ = g.wait();
        }
        if let Ok(client) = async_nats_connect(&self.nats_url).await {
            let js = async_nats::jetstream::new(client);
            let _ = js
                .delete_stream(format!("{}_WORK", self.prefix.to_uppercase()))
                .await;
        }
    }
}

async fn async_nats_connect(url: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::connect(url).await
}

impl Drop for Stack {
    fn drop(&mut self) {
        for child in self
            .workers
            .iter_mut()
            .chain(self.callbacks.iter_mut())
            .filter_map(Option::take)
            .chain(self.gateway.take())
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug, Clone)]
pub struct Account {
    pub auth_id: String,
    pub token: String,
}

/// One request the recording server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(path, _)| path)
    }

    /// The header's value; empty when it is missing or not text.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    /// The body as JSON; `null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A local HTTP server that records requests and answers with `reply(path)`: (status, content type, body).
pub struct Recorder {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Recorder {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The requests received so far to `path` (any query), oldest first.
    pub fn requests_to(&self, path: &str) -> Vec<Received> {
        let received = self.received.lock().expect("lock");
        received
            .iter()
            .filter(|r| r.path() == path)
            .cloned()
            .collect()
    }

    /// Waits until at least `n` requests to `path` arrived; returns them all.
    pub async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let requests = self.requests_to(path);
            if requests.len() >= n {
                return requests;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: {} of {n}",
                requests.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub async fn recorder(reply: fn(&str) -> (u16, &'static str, String)) -> Recorder {
    recorder_hanging(reply, &[]).await
}

/// Like [`recorder`], except that the first request to each path in `hang_first` is never answered:
/// it hangs until its caller gives up or dies.
pub async fn recorder_hanging(
    reply: fn(&str) -> (u16, &'static str, String),
    hang_first: &'static [&'static str],
) -> Recorder {
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let log = received.clone();
    let app = Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let log = log.clone();
            async move {
                let earlier = {
                    let mut log = log.lock().expect("lock");
                    let earlier = log.iter().filter(|r| r.path() == uri.path()).count();
                    log.push(Received {
                        method: method.to_string(),
                        path_and_query: uri
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default(),
                        headers,
                        body: body.to_vec(),
                    });
                    earlier
                };
                if earlier == 0 && hang_first.contains(&uri.path()) {
                    std::future::pending::<()>().await;
                }
                let (status, content_type, body) = reply(uri.path());
                axum::response::Response::builder()
                    .status(status)
                    .header("content-type", content_type)
                    .body(axum::body::Body::from(body))
                    .expect("response")
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    Recorder { addr, received }
}

/// Whether the webhook `request` carries a valid signature by `secret` (`whsec_<base64 key>`), as
/// docs/api.md documents: HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`, `v1,<base64>`,
/// any of the space-separated signatures.
pub fn signed_by(secret: &str, request: &Received) -> bool {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use hmac::{KeyInit, Mac};

    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_ prefix"))
        .expect("base64 secret");
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).expect("HMAC key");
    let id_and_time = format!(
        "{}.{}.",
        request.header("webhook-id"),
        request.header("webhook-timestamp")
    );
    mac.update(id_and_time.as_bytes());
    mac.update(&request.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    request
        .header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

/// Finds the step of `node_name` with outcome `done`.
pub fn done_step<'a>(run: &'a Value, node_name: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|s| s["node_name"] == node_name && s["outcome"] == "done")
        })
        .unwrap_or_else(|| panic!("no finished step of {node_name} in {run:#}"))
}

/// A server that accepts connections and never answers: requests to it hang until their timeout.
pub async fn silent_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

/// A NATS server of the test's own (JetStream, file storage in a temp dir), for tests that kill or
/// restart NATS: the machine's shared server on 4222 serves every other test. Killed and its
/// directory removed on drop.
pub struct NatsServer {
    pub port: u16,
    pub url: String,
    pub dir: std::path::PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// `PHLO_TEST_NATS_SERVER` overrides the binary (default `/usr/sbin/nats-server`).
    pub async fn start() -> NatsServer {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("phlo-test-nats-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("NATS store dir");
        let mut server = NatsServer {
            port,
            url: format!("nats://127.0.0.1:{port}"),
            dir,
            child: None,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let bin = std::env::var("PHLO_TEST_NATS_SERVER")
            .unwrap_or_else(|_| "/usr/sbin/nats-server".into());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("nats.log"))
            .expect("NATS log");
        let child = Command::new(&bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        self.child = Some(child);
        // Up once a client can connect and JetStream answers.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // A raw request: async-nats cannot decode NATS 2.9's account info, any answer will do.
            if let Ok(client) = async_nats_connect(&self.url).await
                && client.request("$JS.API.INFO", Bytes::new()).await.is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server on port {} never became ready",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and store directory (after [`NatsServer::kill`]).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The carrier simulator, in the test's process, fast (time scaled down 50×).
pub struct Sim {
    pub url: String,
    pub auth_id: String,
    pub auth_token: String,
    stop: tokio_util::sync::CancellationToken,
}

impl Sim {
    pub async fn start() -> Sim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let config = phlo_carrier_sim::Config {
            time_scale: 0.02,
            ..phlo_carrier_sim::Config::default()
        };
        let (auth_id, auth_token) = (config.auth_id.clone(), config.auth_token.clone());
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move { phlo_carrier_sim::run(config, listener, s).await });
        Sim {
            url,
            auth_id,
            auth_token,
            stop,
        }
    }

    /// The simulator a `phlo dev` serves at `url` (its `/carrier`).
    pub fn serving(url: &str) -> Sim {
        let config = phlo_carrier_sim::Config::default();
        Sim {
            url: url.to_owned(),
            auth_id: config.auth_id,
            // Random per dev process, and only the process needs it.
            auth_token: String::new(),
            stop: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// The environment that points the runner at this simulator, signatures checked.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PHLO_CARRIER_URL".into(), self.url.clone()),
            ("PHLO_CARRIER_AUTH_ID".into(), self.auth_id.clone()),
            ("PHLO_CARRIER_AUTH_TOKEN".into(), self.auth_token.clone()),
        ]
    }

    pub async fn script(&self, http: &reqwest::Client, number: &str, script: Value) {
        let r = http
            .put(format!("{}/sim/numbers/{number}", self.url))
            .json(&script)
            .send()
            .await
            .expect("script");
        assert!(
            r.status().is_success(),
            "script {number}: {}",
            r.text().await.unwrap_or_default()
        );
    }

    pub async fn get(&self, http: &reqwest::Client, path: &str) -> Value {
        http.get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("sim")
            .json()
            .await
            .expect("json")
    }

    pub async fn post(&self, http: &reqwest::Client, path: &str, body: Value) -> Value {
        let r = http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .expect("sim");
        assert!(r.status().is_success(), "sim {path}");
        r.json().await.expect("json")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The rig of the call and room tests (`voice_calls`, `voice_rooms`): a simulator, a stack pointed at
/// it, an account, and readers of the simulator's call logs.
pub mod rig {
    use std::time::{Duration, Instant};

    use reqwest::Method;
    use serde_json::{Value, json};

    use super::{Account, Sim, Stack, Target};

    /// Generous: a deadline only fails a test that hangs.
    const PATIENCE: Duration = Duration::from_secs(60);

    pub struct Rig {
        pub sim: Sim,
        pub stack: Stack,
        pub acct: Account,
    }

    impl Rig {
        /// A simulator, a stack on `target` pointed at it (see [`Target::start`]) and an account.
        pub async fn start_on(target: Target) -> Rig {
            let (stack, sim, acct) = target.start(&[]).await;
            Rig { sim, stack, acct }
        }

        /// A simulator and a stack of one gateway and one worker pointed at it.
        pub async fn start() -> Rig {
            let sim = Sim::start().await;
            let env = sim.env();
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let stack = Stack::start_with(1, &env).await;
            let acct = stack.account().await;
            Rig { sim, stack, acct }
        }

        pub async fn phlo(&self, definition: Value) -> String {
            self.stack.create_phlo(&self.acct, definition).await
        }

        /// Attaches `number` to the PHLO: calls to it start the PHLO.
        pub async fn attach(&self, number: &str, phlo_id: &str) {
            let path = format!("/v1/numbers/{number}");
            let (status, body) = self
                .stack
                .call(
                    &self.acct,
                    Method::PUT,
                    &path,
                    Some(json!({ "phlo_id": phlo_id })),
                )
                .await;
            assert_eq!(status, 200, "attach {number}: {body}");
        }

        /// How the party at `number` behaves (`PUT /sim/numbers/{number}`).
        pub async fn script(&self, number: &str, script: Value) {
            self.sim.script(&self.stack.http, number, script).await;
        }

        /// Triggers the PHLO through the API; returns the run id.
        pub async fn trigger(&self, phlo_id: &str, payload: Value) -> String {
            self.stack.run(&self.acct, phlo_id, payload).await
        }

        /// An inbound call from `from` to `to` through the simulator; returns its uuid.
        pub async fn call_in(&self, from: &str, to: &str) -> String {
            let body = json!({
                "from": from, "to": to,
                "answer_url": self.stack.url("/v1/carrier/voice/answer"),
                "hangup_url": self.stack.url("/v1/carrier/voice/hangup"),
            });
            let created = self.sim.post(&self.stack.http, "/sim/calls", body).await;
            created["call_uuid"].as_str().expect("call_uuid").to_owned()
        }

        /// The run the incoming call `call_uuid` started.
        pub async fn run_of_call(&self, call_uuid: &str) -> String {
            let deadline = Instant::now() + PATIENCE;
            loop {
                let path = format!("/v1/runs?trigger=call&q={call_uuid}");
                let (_, list) = self.stack.call(&self.acct, Method::GET, &path, None).await;
                if let Some(id) = list["objects"][0]["run_id"].as_str() {
                    return id.to_owned();
                }
                assert!(
                    Instant::now() < deadline,
                    "no run started by call {call_uuid}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        /// The run once it is no longer active.
        pub async fn finished_run(&self, run_id: &str) -> Value {
            self.stack.wait_run(&self.acct, run_id, PATIENCE).await
        }

        /// The run as it is now.
        pub async fn run(&self, run_id: &str) -> Value {
            self.stack.get_run(&self.acct, run_id).await
        }

        /// Polls the run until `ready` holds of it.
        pub async fn run_until(
            &self,
            run_id: &str,
            what: &str,
            ready: impl Fn(&Value) -> bool,
        ) -> Value {
            let deadline = Instant::now() + PATIENCE;
            loop {
                let run = self.run(run_id).await;
                if ready(&run) {
                    return run;
                }
                assert!(
                    Instant::now() < deadline,
                    "{what}: never happened in {run:#}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        /// What the simulator recorded of a call (by call or request uuid), as it is now.
        pub async fn sim_call(&self, uuid: &str) -> Value {
            self.sim
                .get(&self.stack.http, &format!("/sim/calls/{uuid}"))
                .await
        }

        /// What the simulator recorded of a call once it has ended (any final status).
        pub async fn ended_call(&self, uuid: &str) -> Value {
            let deadline = Instant::now() + PATIENCE;
            loop {
                let call = self.sim_call(uuid).await;
                if is_final(&call) {
                    return call;
                }
                assert!(Instant::now() < deadline, "call still up: {call:#}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        /// Every call the simulator knows, oldest first.
        pub async fn sim_calls(&self) -> Vec<Value> {
            let all = self.sim.get(&self.stack.http, "/sim/calls").await;
            all.as_array().cloned().unwrap_or_default()
        }

        /// The calls placed to `number` (outbound calls and dialled legs), oldest first.
        pub async fn calls_to(&self, number: &str) -> Vec<Value> {
            self.sim_calls()
                .await
                .into_iter()
                .filter(|c| c["to"] == number)
                .collect()
        }

        /// Waits until exactly `n` calls to `number` exist and all have ended; returns them.
        pub async fn ended_calls_to(&self, number: &str, n: usize) -> Vec<Value> {
            let deadline = Instant::now() + PATIENCE;
            loop {
                let calls = self.calls_to(number).await;
                if calls.len() == n && calls.iter().all(is_final) {
                    return calls;
                }
                assert!(Instant::now() < deadline, "calls to {number}: {calls:#?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        /// A conference or multiparty room (`GET /sim/rooms/{name}`).
        pub async fn room(&self, name: &str) -> Value {
            self.sim
                .get(&self.stack.http, &format!("/sim/rooms/{name}"))
                .await
        }

        /// The simulator's Plivo REST API (`/v1/Account/{id}{path}`), as the account holder.
        pub async fn carrier(
            &self,
            method: Method,
            path: &str,
            body: Option<Value>,
        ) -> (u16, Value) {
            let url = format!("{}/v1/Account/{}{path}", self.sim.url, self.sim.auth_id);
            let mut req = self
                .stack
                .http
                .request(method, url)
                .basic_auth(&self.sim.auth_id, Some(&self.sim.auth_token));
            if let Some(b) = body {
                req = req.json(&b);
            }
            let r = req.send().await.expect("carrier API");
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        }

        /// Hangs a live call up through the carrier's REST API.
        pub async fn hang_up(&self, call_uuid: &str) {
            let (status, body) = self
                .carrier(Method::DELETE, &format!("/Call/{call_uuid}/"), None)
                .await;
            assert_eq!(status, 204, "hang up {call_uuid}: {body}");
        }

        /// Polls the simulator's call until `ready` holds of it.
        pub async fn call_until(
            &self,
            uuid: &str,
            what: &str,
            ready: impl Fn(&Value) -> bool,
        ) -> Value {
            let deadline = Instant::now() + PATIENCE;
            loop {
                let call = self.sim_call(uuid).await;
                if ready(&call) {
                    return call;
                }
                assert!(
                    Instant::now() < deadline,
                    "{what}: never happened to {call:#}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        /// Every message the simulator carried.
        pub async fn sim_messages(&self) -> Vec<Value> {
            let all = self.sim.get(&self.stack.http, "/sim/messages").await;
            all.as_array().cloned().unwrap_or_default()
        }

        pub async fn finish(mut self) {
            self.stack.cleanup().await;
        }
    }

    /// `vars` with each carrier timestamp that has Plivo's shape (`2025-01-02 03:04:05`) replaced by
    /// `"<time>"`, so that whole variable sets can be compared exactly.
    pub fn timeless(vars: &Value) -> Value {
        let mut v = vars.clone();
        if let Some(map) = v.as_object_mut() {
            for key in ["start_time", "answer_time", "end_time"] {
                if let Some(t) = map.get_mut(key)
                    && t.as_str().is_some_and(is_plivo_time)
                {
                    *t = json!("<time>");
                }
            }
        }
        v
    }

    fn is_plivo_time(s: &str) -> bool {
        let b = s.as_bytes();
        b.len() == 19
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b' ',
                13 | 16 => *c == b':',
                _ => c.is_ascii_digit(),
            })
    }

    pub fn is_final(call: &Value) -> bool {
        !matches!(
            call["status"].as_str(),
            Some("queued" | "ringing" | "in-progress") | None
        )
    }

    /// The call's log entries of `kind`.
    pub fn events<'a>(call: &'a Value, kind: &str) -> Vec<&'a Value> {
        call["events"]
            .as_array()
            .map(|e| e.iter().filter(|e| e["kind"] == kind).collect())
            .unwrap_or_default()
    }

    /// The kinds of the call's log entries, in order.
    pub fn kinds(call: &Value) -> Vec<String> {
        call["events"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|e| e["kind"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What the call's party heard: spoken texts, and audio URLs.
    pub fn heard(call: &Value) -> Vec<String> {
        events(call, "heard")
            .iter()
            .filter_map(|e| {
                e["text"]
                    .as_str()
                    .or_else(|| e["url"].as_str())
                    .map(str::to_owned)
            })
            .collect()
    }

    /// The keys the call's party pressed.
    pub fn pressed(call: &Value) -> Vec<String> {
        events(call, "pressed")
            .iter()
            .filter_map(|e| e["digits"].as_str().map(str::to_owned))
            .collect()
    }

    /// Every step of `node_name` (all tokens), in the order the run lists them.
    pub fn steps<'a>(run: &'a Value, node_name: &str) -> Vec<&'a Value> {
        run["steps"]
            .as_array()
            .map(|s| s.iter().filter(|s| s["node_name"] == node_name).collect())
            .unwrap_or_default()
    }

    /// The finished step of `node_name` on `token`.
    pub fn done_on<'a>(run: &'a Value, node_name: &str, token: i64) -> &'a Value {
        steps(run, node_name)
            .into_iter()
            .find(|s| s["outcome"] == "done" && s["token"] == token)
            .unwrap_or_else(|| {
                panic!("no finished step of {node_name} on token {token} in {run:#}")
            })
    }
}

/// Graceful shutdown and metrics helpers.
impl Stack {
    /// Starts a worker process with extra environment (e.g. its own `PHLO_WORKER_ADDR`) and returns
    /// its index.
    pub fn spawn_worker_with(&mut self, env: &[(&str, &str)]) -> usize {
        let mut cmd = self.command("worker");
        for (k, v) in env {
            cmd.env(k, v);
        }
        self.workers.push(Some(cmd.spawn().expect("spawn worker")));
        self.workers.len() - 1
    }

    /// Starts a worker whose health and metrics endpoints listen on a known port; returns its index
    /// and base URL once it answers `/readyz`.
    pub async fn spawn_worker_on_port(&mut self) -> (usize, String) {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let i = self.spawn_worker_with(&[("PHLO_WORKER_ADDR", addr.as_str())]);
        let url = format!("http://{addr}");
        self.wait_ready(&format!("{url}/readyz")).await;
        (i, url)
    }

    /// `kill -TERM` of a worker (a graceful shutdown, unlike [`Stack::kill_worker`]), then waits up to
    /// `patience` for it to exit. Returns its exit status and how long it took, or `None` when it
    /// was still running then (it is `kill -9`ed) or was not running.
    pub async fn terminate_worker(
        &mut self,
        i: usize,
        patience: Duration,
    ) -> Option<(std::process::ExitStatus, Duration)> {
        let mut child = self.workers.get_mut(i).and_then(Option::take)?;
        let sent = Instant::now();
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(signalled, "kill -TERM {} failed", child.id());
        while sent.elapsed() < patience {
            if let Ok(Some(status)) = child.try_wait() {
                return Some((status, sent.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// The gateway process, handed to the caller (to signal it and wait for it, see [`sigterm`] and
    /// [`wait_exit`]); the stack no longer manages it.
    pub fn take_gateway(&mut self) -> Option<Child> {
        self.gateway.take()
    }

    /// Callback service process `i`, handed to the caller like [`Stack::take_gateway`].
    pub fn take_callback(&mut self, i: usize) -> Option<Child> {
        self.callbacks.get_mut(i).and_then(Option::take)
    }

    /// The gateway's `/metrics`, parsed.
    pub async fn gateway_metrics(&self) -> Metrics {
        scrape(&self.http, &self.url("/metrics")).await
    }
}

/// `kill -TERM` of a process.
pub fn sigterm(child: &Child) {
    let signalled = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(signalled, "kill -TERM {} failed", child.id());
}

/// Waits up to `patience` for `child` to exit; its exit status and how long the wait took, or `None`
/// when it was still running then (it is `kill -9`ed).
pub async fn wait_exit(
    mut child: Child,
    patience: Duration,
) -> Option<(std::process::ExitStatus, Duration)> {
    let started = Instant::now();
    while started.elapsed() < patience {
        if let Ok(Some(status)) = child.try_wait() {
            return Some((status, started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A Prometheus text exposition, parsed: one sample per line.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub samples: Vec<(String, std::collections::BTreeMap<String, String>, f64)>,
    pub text: String,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = match line.rsplit_once(' ') {
                Some(split) => split,
                None => continue,
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let mut map = std::collections::BTreeMap::new();
            // Label values here never contain `",`: ids, statuses, route templates.
            for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                if let Some((k, v)) = pair.split_once('=') {
                    map.insert(k.trim().to_owned(), v.trim_matches('"').to_owned());
                }
            }
            samples.push((name.to_owned(), map, value));
        }
        Metrics {
            samples,
            text: text.to_owned(),
        }
    }

    /// The sum of the samples of `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).is_some_and(|x| x == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Whether any sample of `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, ..)| n == name)
    }
}

/// GETs `url` (a `/metrics` endpoint) and parses it.
pub async fn scrape(http: &reqwest::Client, url: &str) -> Metrics {
    let r = http.get(url).send().await.expect("scrape");
    assert!(r.status().is_success(), "{url}: {}", r.status());
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain"),
        "{url}: content type {content_type}"
    );
    Metrics::parse(&r.text().await.expect("metrics text"))
}
