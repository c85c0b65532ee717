//! `phlo dev` as a developer uses it: the real binary, started and restarted on a data directory of
//! the test's own, asserting what it prints, what it keeps on disk, what survives a restart or a
//! `kill -9`, and that the CLI finds its account without being given credentials.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{done_step, recorder_hanging};

/// Generous: a deadline only fails a test that hangs.
const PATIENCE: Duration = Duration::from_secs(30);

/// PHLOs a user made besides the samples: more than a page of `GET /v1/phlo`.
const EXTRA: usize = 100;

const START: &str = "de000000-0000-4000-8000-000000000001";
const BRANCH: &str = "de000000-0000-4000-8000-000000000002";
const COUNTER: &str = "de000000-0000-4000-8000-000000000003";
const HTTP: &str = "de000000-0000-4000-8000-000000000004";

/// One test's directory: the home directory and working directory of every process it starts, their
/// logs, and `data/`, the data directory. Removed on drop.
struct Scratch {
    root: PathBuf,
}

impl Scratch {
    fn new() -> Scratch {
        let root = std::env::temp_dir().join(format!("phlo-dev-{}", uuid::Uuid::new_v4().simple()));
        for dir in ["home", "cwd", "logs"] {
            std::fs::create_dir_all(root.join(dir)).expect("scratch dir");
        }
        Scratch { root }
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    fn cwd(&self) -> PathBuf {
        self.root.join("cwd")
    }

    /// `phlo args…` in a clean environment (only what the test gives it): `HOME` and the working
    /// directory are the scratch's, so nothing of the machine's user leaks in or out.
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_phlo"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env(
                "RUST_LOG",
                std::env::var("PHLO_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .current_dir(self.cwd())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a CLI command to its end.
    async fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let output =
            tokio::time::timeout(Duration::from_secs(60), self.command(args, env).output())
                .await
                .unwrap_or_else(|_| panic!("phlo {args:?} did not finish"))
                .expect("phlo output");
        Out {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// The simulator 50× faster and the worker's timers looked at five times a second.
const FAST: [(&str, &str); 2] = [("SIM_TIME_SCALE", "0.02"), ("PHLO_POLL_INTERVAL_MS", "200")];

/// A running `phlo --output json dev`, killed on drop.
struct Dev {
    child: tokio::process::Child,
    /// The JSON line it printed once ready.
    banner: Value,
    url: String,
    auth_id: String,
    token: String,
    http: reqwest::Client,
    log: PathBuf,
}

impl Dev {
    /// `phlo --output json dev --addr 127.0.0.1:0 <args>` with [`FAST`] and `env`; returns once it
    /// printed its banner.
    async fn start(scratch: &Scratch, args: &[&str], env: &[(&str, &str)]) -> Dev {
        let mut all = vec!["--output", "json", "dev", "--addr", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let env: Vec<(&str, &str)> = FAST.iter().chain(env).copied().collect();
        let log = scratch
            .root
            .join("logs")
            .join(format!("dev-{}.log", uuid::Uuid::new_v4().simple()));
        let mut cmd = scratch.command(&all, &env);
        cmd.stderr(std::fs::File::create(&log).expect("log file"));
        let mut child = cmd.spawn().expect("spawn phlo dev");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // The banner is the JSON line; log lines may come before it (the log goes to stdout too).
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let banner = loop {
            let line = match tokio::time::timeout_at(deadline, lines.next_line()).await {
                Ok(Ok(Some(line))) => line,
                other => panic!(
                    "phlo dev printed no banner ({other:?}); its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            };
            if let Ok(banner) = serde_json::from_str::<Value>(&line)
                && banner.get("url").is_some()
            {
                break banner;
            }
        };
        // Whatever else it prints is read, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let text = |k: &str| banner[k].as_str().unwrap_or_default().to_owned();
        Dev {
            url: text("url"),
            auth_id: text("auth_id"),
            token: text("auth_token"),
            banner,
            child,
            http: reqwest::Client::builder()
                .timeout(PATIENCE)
                .build()
                .expect("client"),
            log,
        }
    }

    /// A request as the banner's account; the status and the JSON body (`null` when none).
    async fn api(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.api_as(&self.auth_id, &self.token, method, path, body)
            .await
    }

    async fn api_as(
        &self,
        auth_id: &str,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .basic_auth(auth_id, Some(token));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("request to phlo dev");
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.api(method.clone(), path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {answer}"
        );
        answer
    }

    /// The account's PHLOs, every page.
    async fn phlos(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut path = "/v1/phlo?limit=100".to_owned();
        loop {
            let page = self.ok(Method::GET, &path, None).await;
            let objects = page["objects"].as_array().expect("objects");
            all.extend(objects.iter().cloned());
            match page["meta"]["next"].as_str() {
                Some(next) if !objects.is_empty() => {
                    path = format!("/v1/phlo?limit=100&cursor={next}");
                }
                _ => return all,
            }
        }
    }

    async fn create_phlo(&self, definition: Value) -> String {
        let created = self.ok(Method::POST, "/v1/phlo", Some(definition)).await;
        created["phlo_id"].as_str().expect("phlo_id").to_owned()
    }

    async fn run(&self, phlo_id: &str, payload: Value) -> String {
        let path = format!("/v1/account/{}/phlo/{phlo_id}", self.auth_id);
        let started = self.ok(Method::POST, &path, Some(payload)).await;
        started["phlo_run_id"]
            .as_str()
            .expect("phlo_run_id")
            .to_owned()
    }

    /// The run once it has ended.
    async fn ended_run(&self, run_id: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let run = self
                .ok(Method::GET, &format!("/v1/runs/{run_id}"), None)
                .await;
            if run["status"] != "active" && run["status"] != "queued" {
                return run;
            }
            assert!(Instant::now() < deadline, "run never ended: {run:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, as Ctrl-C: it must stop cleanly and soon.
    async fn stop(&mut self) {
        let pid = self.child.id().expect("running");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill -TERM");
        assert!(sent.success());
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("phlo dev did not stop on SIGTERM")
            .expect("wait");
        assert!(
            status.success(),
            "phlo dev exited with {status} on SIGTERM; its log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// `kill -9`.
    async fn kill(&mut self) {
        self.child.kill().await.expect("kill -9");
    }

    /// The banner's samples: name → (phlo_id, number).
    fn samples(&self) -> BTreeMap<String, (String, Option<String>)> {
        let samples = self.banner["samples"].as_array().expect("samples");
        let map: BTreeMap<_, _> = samples
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().expect("name").to_owned(),
                    (
                        s["phlo_id"].as_str().expect("phlo_id").to_owned(),
                        s["number"].as_str().map(str::to_owned),
                    ),
                )
            })
            .collect();
        assert_eq!(
            map.len(),
            samples.len(),
            "a sample name twice: {samples:#?}"
        );
        map
    }

    fn sample_id(&self, name: &str) -> String {
        self.samples()
            .remove(name)
            .unwrap_or_else(|| panic!("no sample {name:?}"))
            .0
    }
}

/// docs/examples/*.json: name → whether it is started by incoming calls or SMS (and so needs a
/// number).
fn examples() -> BTreeMap<String, bool> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples");
    let mut examples = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("docs/examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("example");
        let definition: Value = serde_json::from_str(&text).expect("example json");
        let start = definition["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|n| n["type"] == "start")
            .expect("start node");
        let transitions = &start["transitions"];
        let incoming =
            !transitions["incoming_call"].is_null() || !transitions["incoming_message"].is_null();
        let name = definition["name"].as_str().expect("name").to_owned();
        assert!(
            examples.insert(name, incoming).is_none(),
            "two examples named alike"
        );
    }
    examples
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text}", path.display()))
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).expect("dir").next().is_none()
}

/// An API PHLO that needs nothing outside the process: amounts over 10 are `big`, the rest are
/// counted.
fn local_phlo(name: &str) -> Value {
    json!({ "name": name, "nodes": [
        { "node_id": START, "name": "Start", "type": "start",
          "options": { "payload": { "amount": "0" } },
          "transitions": { "api_request": BRANCH } },
        { "node_id": BRANCH, "name": "Route", "type": "branch",
          "options": { "lhs": "{{Start.http.params.amount}}",
                       "conditions": [{ "alias": "big", "operation": "greater_than", "rhs": "10" }] },
          "transitions": { "no_match": COUNTER } },
        { "node_id": COUNTER, "name": "Count", "type": "counter", "options": { "max_count": 5 } },
    ]})
}

/// Each step once: no two with the same token and sequence number, no node entered or finished
/// twice with the same event, and as many as the run counts.
fn assert_steps_once(run: &Value) {
    let steps = run["steps"].as_array().expect("steps");
    assert_eq!(run["step_count"], steps.len(), "{run:#}");
    let mut positions = HashSet::new();
    let mut what = HashSet::new();
    for s in steps {
        assert!(
            positions.insert((s["token"].to_string(), s["seq"].to_string())),
            "step {} of token {} twice: {run:#}",
            s["seq"],
            s["token"]
        );
        assert!(
            what.insert((
                s["node_name"].to_string(),
                s["event"].to_string(),
                s["outcome"].to_string()
            )),
            "{} {} {} twice: {run:#}",
            s["node_name"],
            s["event"],
            s["outcome"]
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_start_creates_a_private_account_and_loads_every_sample_once() {
    let scratch = Scratch::new();
    let data = scratch.data();
    let mut dev = Dev::start(&scratch, &["--data-dir", data.to_str().unwrap()], &[]).await;

    // The banner: where it serves, the carrier simulator under it, the database in the data dir.
    assert!(dev.url.starts_with("http://127.0.0.1:"), "{}", dev.banner);
    assert!(
        !dev.url.ends_with(":0"),
        "the port it picked: {}",
        dev.banner
    );
    assert_eq!(dev.banner["sim_url"], format!("{}/carrier", dev.url));
    let db = std::path::absolute(data.join("phlo.db")).expect("absolute");
    assert_eq!(
        dev.banner["database"],
        format!("sqlite://{}", db.display()),
        "{}",
        dev.banner
    );
    assert!(dev.auth_id.starts_with("MA"), "{}", dev.banner);

    // The account works, and only with its token; the admin token is the operator's.
    let (status, _) = dev.api(Method::GET, "/v1/phlo", None).await;
    assert_eq!(status, 200);
    let (status, _) = dev
        .api_as(&dev.auth_id, "wrong", Method::GET, "/v1/phlo", None)
        .await;
    assert_eq!(status, 401);
    let limits = dev
        .http
        .get(format!("{}/v1/accounts/{}/limits", dev.url, dev.auth_id))
        .bearer_auth(dev.banner["admin_token"].as_str().expect("admin_token"))
        .send()
        .await
        .expect("limits");
    assert_eq!(limits.status(), 200, "the admin token is the operator's");

    // Every example once, as the banner lists it; the ones started by calls and SMS with a number.
    let examples = examples();
    let samples = dev.samples();
    assert_eq!(
        samples.keys().collect::<Vec<_>>(),
        examples.keys().collect::<Vec<_>>(),
        "the banner's samples are docs/examples"
    );
    let phlos = dev.phlos().await;
    assert_eq!(phlos.len(), examples.len(), "{phlos:#?}");
    for p in &phlos {
        let name = p["name"].as_str().expect("name");
        assert_eq!(
            Some(p["phlo_id"].as_str().expect("phlo_id")),
            samples.get(name).map(|s| s.0.as_str()),
            "{name}"
        );
    }
    let numbers = dev.ok(Method::GET, "/v1/numbers", None).await;
    let routed: BTreeMap<String, String> = numbers["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|n| {
            (
                n["number"].as_str().expect("number").to_owned(),
                n["phlo_id"].as_str().expect("phlo_id").to_owned(),
            )
        })
        .collect();
    let mut expected = BTreeMap::new();
    for (name, (phlo_id, number)) in &samples {
        assert_eq!(number.is_some(), examples[name], "{name}: {number:?}");
        if let Some(number) = number {
            assert!(number.starts_with("+155501000"), "{number}");
            expected.insert(number.clone(), phlo_id.clone());
        }
    }
    assert_eq!(routed, expected, "GET /v1/numbers");

    // On disk: a private directory, the credentials and the secret key readable by the user only.
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("account.json")), 0o600);
    assert_eq!(mode(&data.join("secret-key")), 0o600);
    assert!(data.join("phlo.db").is_file());
    let account = read_json(&data.join("account.json"));
    assert_eq!(account["url"], dev.url);
    assert_eq!(account["sim_url"], dev.banner["sim_url"]);
    assert_eq!(account["auth_id"], dev.auth_id);
    assert_eq!(account["auth_token"], dev.token);
    // With --data-dir, nothing goes to ~/.phlo.
    assert!(is_empty_dir(&scratch.home()), "HOME was written to");
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_the_account_the_runs_and_the_users_edits() {
    let scratch = Scratch::new();
    let data = scratch.data();
    let args = ["--data-dir", data.to_str().unwrap()];
    let mut first = Dev::start(&scratch, &args, &[]).await;

    let own = first.create_phlo(local_phlo("Restart demo")).await;
    let run_id = first.run(&own, json!({ "amount": "3" })).await;
    let before = first.ended_run(&run_id).await;
    assert_eq!(before["status"], "completed", "{before:#}");
    assert_eq!(done_step(&before, "Count")["state"], "count_not_reached");

    // The user edits a sample: a second revision, under the same name.
    let menu = first.sample_id("Front desk menu");
    let mut definition = first
        .ok(Method::GET, &format!("/v1/phlo/{menu}"), None)
        .await["definition"]
        .clone();
    definition["description"] = json!("Edited by the developer");
    let edited = first
        .ok(
            Method::PUT,
            &format!("/v1/phlo/{menu}"),
            Some(definition.clone()),
        )
        .await;
    assert_eq!(edited["revision"], 2, "{edited:#}");
    // …points the menu's number at another PHLO…
    let block_list = first.sample_id("Block list");
    first
        .ok(
            Method::PUT,
            "/v1/numbers/+15550100005",
            Some(json!({ "phlo_id": block_list })),
        )
        .await;
    // …and has more PHLOs than a page holds (the samples, the oldest, are not on the first).
    for i in 0..EXTRA {
        first.create_phlo(local_phlo(&format!("Extra {i}"))).await;
    }
    first.stop().await;

    let mut second = Dev::start(&scratch, &args, &[]).await;
    assert_eq!(second.auth_id, first.auth_id, "the same account");
    assert_eq!(second.token, first.token);
    // The same sample PHLOs, the menu without the number the user took for another.
    let mut expected = first.samples();
    expected.get_mut("Front desk menu").expect("menu").1 = None;
    assert_eq!(second.samples(), expected, "the same sample PHLOs");
    let numbers = second.ok(Method::GET, "/v1/numbers", None).await;
    let menu_number = numbers["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .find(|n| n["number"] == "+15550100005")
        .cloned();
    assert_eq!(
        menu_number.map(|n| n["phlo_id"].clone()),
        Some(json!(block_list)),
        "the user's routing is kept: {numbers:#}"
    );
    // The CLI's fallback follows the new port.
    assert_eq!(read_json(&data.join("account.json"))["url"], second.url);

    // No sample twice; the user's PHLO still there.
    let phlos = second.phlos().await;
    let names: Vec<&str> = phlos.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(phlos.len(), examples().len() + 1 + EXTRA, "{names:?}");
    assert_eq!(
        names.iter().collect::<HashSet<_>>().len(),
        names.len(),
        "{names:?}"
    );
    assert!(names.contains(&"Restart demo"), "{names:?}");

    // The edit is kept: the sample was not loaded over it.
    let kept = second
        .ok(Method::GET, &format!("/v1/phlo/{menu}"), None)
        .await;
    assert_eq!(kept["revision"], 2, "{kept:#}");
    assert_eq!(kept["latest_revision"], 2, "{kept:#}");
    assert_eq!(
        kept["definition"]["description"], "Edited by the developer",
        "{kept:#}"
    );

    // The run made before the restart, listed and whole.
    let listed = second.ok(Method::GET, "/v1/runs", None).await;
    assert!(
        listed["objects"]
            .as_array()
            .expect("objects")
            .iter()
            .any(|r| r["run_id"] == run_id.as_str() && r["status"] == "completed"),
        "{listed:#}"
    );
    let after = second
        .ok(Method::GET, &format!("/v1/runs/{run_id}"), None)
        .await;
    assert_eq!(after["status"], "completed");
    assert_eq!(after["steps"], before["steps"], "{after:#}");
    second.stop().await;
}

fn slow_replies(_path: &str) -> (u16, &'static str, String) {
    (200, "application/json", json!({ "ok": true }).to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_waiting_when_dev_is_killed_completes_once_after_the_restart() {
    // The first request to /slow is held until the process that made it dies.
    let local = recorder_hanging(slow_replies, &["/slow"]).await;
    let scratch = Scratch::new();
    let data = scratch.data();
    let args = ["--data-dir", data.to_str().unwrap(), "--no-samples"];
    // An HTTP wait's timer fires after 2 s, whatever the node's own timeout.
    let env = [("PHLO_MAX_WAIT_SECS", "2")];
    let mut dev = Dev::start(&scratch, &args, &env).await;
    let phlo_id = dev
        .create_phlo(json!({ "name": "Killed mid-request", "nodes": [
            { "node_id": START, "name": "Start", "type": "start",
              "transitions": { "api_request": HTTP } },
            { "node_id": HTTP, "name": "HTTP_Request_1", "type": "http_request",
              "options": { "method": "GET", "url": local.url("/slow"), "timeout": 30 },
              "transitions": { "success": BRANCH, "failed": COUNTER } },
            { "node_id": BRANCH, "name": "Branch_1", "type": "branch",
              "options": { "lhs": "{{HTTP_Request_1.status_code}}",
                           "conditions": [{ "alias": "ok", "operation": "equals", "rhs": "200" }] } },
            { "node_id": COUNTER, "name": "Counter_1", "type": "counter",
              "options": { "max_count": 10 } },
        ]}))
        .await;
    let run_id = dev.run(&phlo_id, json!({})).await;

    // The request is in flight, and the message that led to it no longer in the outbox: what is
    // left of the run is the wait and its timer in the database.
    local.wait_for("/slow", 1).await;
    let db = format!(
        "sqlite://{}?mode=ro",
        std::path::absolute(data.join("phlo.db"))
            .expect("absolute")
            .display()
    );
    let pool = sqlx::SqlitePool::connect(&db).await.expect("phlo.db");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM outbox")
            .fetch_one(&pool)
            .await
            .expect("outbox count");
        if rows == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{rows} outbox rows never sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pool.close().await;
    dev.kill().await;

    let mut dev = Dev::start(&scratch, &args, &env).await;
    let run = dev.ended_run(&run_id).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    // The request died with the process; the wait's timer, kept in the database, decided.
    let http = done_step(&run, "HTTP_Request_1");
    assert_eq!(http["event"], "timeout", "{run:#}");
    assert_eq!(http["state"], "failed", "{run:#}");
    assert_eq!(done_step(&run, "Counter_1")["variables"]["count"], 1);
    assert_steps_once(&run);
    let nodes: Vec<(&str, &str)> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["node_name"].as_str().unwrap(),
                s["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        nodes,
        [
            ("Start", "done"),
            ("HTTP_Request_1", "wait"),
            ("HTTP_Request_1", "done"),
            ("Counter_1", "done"),
        ],
        "{run:#}"
    );
    assert_eq!(
        local.requests_to("/slow").len(),
        1,
        "the request is not sent again"
    );

    // The restarted process runs new work: /slow answers now.
    let second = dev.run(&phlo_id, json!({})).await;
    let run = dev.ended_run(&second).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(done_step(&run, "Branch_1")["state"], "ok", "{run:#}");
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sample_answers_a_call_through_the_cli_without_credentials() {
    let scratch = Scratch::new();
    let data = scratch.data();
    let data_env = ("PHLO_DATA_DIR", data.to_str().unwrap());
    // The data directory from the environment, as the CLI finds it.
    let mut dev = Dev::start(&scratch, &[], &[data_env]).await;
    assert!(data.join("account.json").is_file());
    let cli_env = [("PHLO_URL", dev.url.as_str()), data_env];

    let call = scratch
        .cli(
            &["call", "+14155550100", "+15550100005", "--digits", "1"],
            &cli_env,
        )
        .await;
    assert_eq!(call.code, 0, "{call:#?}");
    assert!(call.stdout.contains("pressed: 1"), "{call:#?}");
    assert!(
        call.stdout.contains("dialled +14155550110"),
        "the front desk: {call:#?}"
    );
    assert!(call.stdout.contains("call ended: completed"), "{call:#?}");
    // `run <id> completed`
    let last = call.stdout.lines().last().unwrap_or_default();
    let words: Vec<&str> = last.split_whitespace().collect();
    assert!(
        words.len() == 3 && words[0] == "run" && words[2] == "completed",
        "{call:#?}"
    );
    let run_id = words[1];

    let run = dev.ended_run(run_id).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["trigger"], "call");
    assert_eq!(run["from"], "+14155550100");
    assert_eq!(run["to"], "+15550100005");
    assert_eq!(run["phlo_id"], dev.sample_id("Front desk menu"));
    assert_eq!(done_step(&run, "Main_Menu")["state"], "1", "{run:#}");
    assert_eq!(
        done_step(&run, "Front_Desk")["state"],
        "completed",
        "{run:#}"
    );
    assert_steps_once(&run);

    let runs = scratch.cli(&["--output", "json", "runs"], &cli_env).await;
    assert_eq!(runs.code, 0, "{runs:#?}");
    let listed: Value = serde_json::from_str(&runs.stdout).expect("runs json");
    let listed = listed["runs"].as_array().expect("runs");
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["run_id"], run_id);
    assert_eq!(listed[0]["status"], "completed");
    assert_eq!(listed[0]["trigger"], "call");

    // Against another data directory, there is no account to fall back on.
    let elsewhere = scratch.root.join("elsewhere");
    let runs = scratch
        .cli(
            &["runs"],
            &[
                ("PHLO_URL", dev.url.as_str()),
                ("PHLO_DATA_DIR", elsewhere.to_str().unwrap()),
            ],
        )
        .await;
    assert_ne!(runs.code, 0, "{runs:#?}");
    assert!(runs.stderr.contains("no credentials"), "{runs:#?}");
    dev.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_mode_keeps_nothing_and_shares_nothing() {
    let scratch = Scratch::new();
    let data = scratch.data();
    let args = ["--memory", "--data-dir", data.to_str().unwrap()];
    let (mut a, mut b) = tokio::join!(
        Dev::start(&scratch, &args, &[]),
        Dev::start(&scratch, &args, &[])
    );
    for dev in [&a, &b] {
        let database = dev.banner["database"].as_str().expect("database");
        assert!(database.contains("mode=memory"), "{database}");
    }
    assert_ne!(a.auth_id, b.auth_id, "each process has its own account");

    let own = a.create_phlo(local_phlo("Only in A")).await;
    let run_id = a.run(&own, json!({ "amount": "1" })).await;
    assert_eq!(a.ended_run(&run_id).await["status"], "completed");

    // B knows neither A's account, nor its PHLO, nor its run.
    let (status, _) = b
        .api_as(&a.auth_id, &a.token, Method::GET, "/v1/phlo", None)
        .await;
    assert_eq!(status, 401, "A's account on B");
    let names: Vec<String> = b
        .phlos()
        .await
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), examples().len(), "only the samples: {names:?}");
    let (status, _) = b
        .api(Method::GET, &format!("/v1/runs/{run_id}"), None)
        .await;
    assert_eq!(status, 404);
    let runs = b.ok(Method::GET, "/v1/runs", None).await;
    assert_eq!(runs["objects"], json!([]), "{runs:#}");

    a.stop().await;
    b.stop().await;
    // Nothing written: not the data directory, not ~/.phlo, not the working directory.
    assert!(!data.exists(), "the data directory was created");
    assert!(is_empty_dir(&scratch.home()), "HOME was written to");
    assert!(
        is_empty_dir(&scratch.cwd()),
        "the working directory was written to"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_address_in_use_is_refused_by_name() {
    let scratch = Scratch::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let data = scratch.data();
    let out = scratch
        .cli(
            &["dev", "--addr", &addr, "--data-dir", data.to_str().unwrap()],
            &FAST,
        )
        .await;
    assert_ne!(out.code, 0, "{out:#?}");
    assert!(out.stderr.contains(&addr), "names the address: {out:#?}");
    assert!(out.stderr.contains("--addr"), "says what to do: {out:#?}");
    assert!(out.stdout.trim().is_empty(), "no banner: {out:#?}");
    drop(taken);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_or_stale_account_file_gets_a_new_account() {
    let scratch = Scratch::new();
    let data = scratch.data();
    let args = ["--data-dir", data.to_str().unwrap()];
    let mut first = Dev::start(&scratch, &args, &[]).await;
    let first_id = first.auth_id.clone();
    first.stop().await;
    let account_file = data.join("account.json");

    // Not JSON (and, written anew, readable by others).
    std::fs::remove_file(&account_file).expect("remove");
    std::fs::write(&account_file, "{ this is not json").expect("write");
    let mut second = Dev::start(&scratch, &args, &[]).await;
    assert_ne!(second.auth_id, first_id, "a new account");
    let (status, _) = second.api(Method::GET, "/v1/phlo", None).await;
    assert_eq!(status, 200, "the new account works");
    assert_eq!(
        second.phlos().await.len(),
        examples().len(),
        "the new account has the samples"
    );
    // Its samples' numbers, where it has them, are its own: the earlier account keeps the ones it
    // had (the database is the same).
    let numbers = second.ok(Method::GET, "/v1/numbers", None).await;
    let routed: BTreeMap<String, String> = numbers["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|n| (n["number"].to_string(), n["phlo_id"].to_string()))
        .collect();
    let claimed: BTreeMap<String, String> = second
        .samples()
        .into_values()
        .filter_map(|(phlo_id, number)| {
            Some((json!(number?).to_string(), json!(phlo_id).to_string()))
        })
        .collect();
    assert_eq!(routed, claimed, "the banner's numbers are the account's");
    let kept = read_json(&account_file);
    assert_eq!(kept["auth_id"], second.auth_id);
    assert_eq!(kept["auth_token"], second.token);
    assert_eq!(
        mode(&account_file),
        0o600,
        "the credentials are private again"
    );
    let second_id = second.auth_id.clone();
    second.stop().await;

    // JSON, with credentials the database does not know (a token changed by hand).
    let mut stale = read_json(&account_file);
    stale["auth_token"] = json!("not-the-token");
    std::fs::write(&account_file, stale.to_string()).expect("write");
    let mut third = Dev::start(&scratch, &args, &[]).await;
    assert_ne!(third.auth_id, second_id, "a new account");
    assert_ne!(third.token, "not-the-token");
    let (status, _) = third.api(Method::GET, "/v1/phlo", None).await;
    assert_eq!(status, 200, "the new account works");
    assert_eq!(read_json(&account_file)["auth_id"], third.auth_id);
    third.stop().await;
}
