//! The command line (`phlo apply`, `run`, `follow`, `runs`, `callbacks tail`, `call`, `sms`) as a
//! user runs it: the real binary as a subprocess, against a real stack, asserting what it prints and
//! how it exits, and what the gateway recorded.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::{Account, Sim, Stack, recorder};
use crate::voice_support::voice_stack;

const START: &str = "c1100000-0000-4000-8000-000000000001";
const ROUTE: &str = "c1100000-0000-4000-8000-000000000002";
const COUNT: &str = "c1100000-0000-4000-8000-000000000003";
const GREETING: &str = "c1100000-0000-4000-8000-000000000004";
const MENU: &str = "c1100000-0000-4000-8000-000000000005";
const SALES: &str = "c1100000-0000-4000-8000-000000000006";
const SUPPORT: &str = "c1100000-0000-4000-8000-000000000007";

/// What one `phlo` invocation printed and how it exited.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// The JSON lines of `--output json` for follow, tail, call and sms.
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?} in {self:#?}")))
            .collect()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:#?}"))
    }
}

/// Runs the CLI against `stack` as `acct`, with the simulator at `sim_url`.
struct Cli {
    url: String,
    auth_id: String,
    token: String,
    sim_url: String,
    dir: PathBuf,
}

impl Cli {
    fn new(stack: &Stack, acct: &Account) -> Cli {
        let dir = std::env::temp_dir().join(format!("phlo-cli-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Cli {
            url: stack.gateway_url.clone(),
            auth_id: acct.auth_id.clone(),
            token: acct.token.clone(),
            sim_url: "http://127.0.0.1:9".into(),
            dir,
        }
    }

    fn with_sim(mut self, sim: &Sim) -> Cli {
        self.sim_url = sim.url.clone();
        self
    }

    /// Writes `value` to a file of the test's directory and returns its path.
    fn file(&self, name: &str, value: &Value) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(value).expect("json")).expect("write");
        path.display().to_string()
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_phlo"));
        cmd.args(args)
            .env("PHLO_URL", &self.url)
            .env("PHLO_AUTH_ID", &self.auth_id)
            .env("PHLO_AUTH_TOKEN", &self.token)
            .env("PHLO_SIM_URL", &self.sim_url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    async fn run(&self, args: &[&str]) -> Out {
        self.run_with_input(args, None).await
    }

    /// Runs `phlo args…` with `input` on its standard input (closed after it).
    async fn run_with_input(&self, args: &[&str], input: Option<&str>) -> Out {
        let mut cmd = self.command(args);
        if input.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn phlo");
        if let Some(input) = input {
            let mut stdin = child.stdin.take().expect("stdin");
            stdin
                .write_all(input.as_bytes())
                .await
                .expect("write stdin");
        }
        let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("phlo {args:?} did not finish"))
            .expect("phlo output");
        let out = Out {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        // `PHLO_TEST_CLI_ECHO=1 cargo test … -- --nocapture` shows what each command printed.
        if std::env::var_os("PHLO_TEST_CLI_ECHO").is_some() {
            eprintln!(
                "$ phlo {}\n{}{}[exit {}]\n",
                args.join(" "),
                out.stdout,
                out.stderr,
                out.code
            );
        }
        out
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An API PHLO: amounts over 1000 go to a voice node, which has no call and so fails the run; others
/// go through a counter and complete. `callbacks` adds callbacks to the Route and Count nodes.
fn demo(description: &str, callbacks: Option<(String, String)>) -> Value {
    let mut route = json!({
        "node_id": ROUTE, "name": "Route", "type": "branch",
        "options": { "lhs": "{{Start.http.params.amount}}",
                     "conditions": [{ "alias": "big", "operation": "greater_than", "rhs": "1000" }] },
        "transitions": { "big": GREETING, "no_match": COUNT },
    });
    let mut count = json!({
        "node_id": COUNT, "name": "Count", "type": "counter", "options": { "max_count": 5 },
    });
    if let Some((route_url, count_url)) = callbacks {
        route["callback"] = json!({ "url": route_url });
        count["callback"] = json!({ "url": count_url });
    }
    json!({ "name": "CLI demo", "description": description, "nodes": [
        { "node_id": START, "name": "Start", "type": "start",
          "options": { "payload": { "amount": "0" } },
          "transitions": { "api_request": ROUTE } },
        route,
        count,
        { "node_id": GREETING, "name": "Greeting", "type": "play_audio",
          "options": { "prompts": "Hello" } },
    ]})
}

fn phlo_id_of(apply: &Out) -> String {
    // `created PHLO <id> (<name>) revision <n>`
    apply
        .stdout
        .split_whitespace()
        .nth(2)
        .expect("id")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_run_follow_and_list_runs() {
    let mut stack = Stack::start(1).await;
    let acct = stack.account().await;
    let cli = Cli::new(&stack, &acct);

    // apply: created, then unchanged (no new revision), then updated.
    let file = cli.file("demo.json", &demo("first", None));
    let created = cli.run(&["apply", &file]).await;
    assert_eq!(created.code, 0, "{created:#?}");
    let phlo_id = phlo_id_of(&created);
    assert_eq!(
        created.stdout.trim(),
        format!("created PHLO {phlo_id} (CLI demo) revision 1")
    );
    let again = cli.run(&["apply", &file]).await;
    assert_eq!(
        again.stdout.trim(),
        format!("unchanged PHLO {phlo_id} (CLI demo) revision 1"),
        "{again:#?}"
    );
    let file = cli.file("demo.json", &demo("second", None));
    let updated = cli.run(&["apply", &file]).await;
    assert_eq!(
        updated.stdout.trim(),
        format!("updated PHLO {phlo_id} (CLI demo) revision 2"),
        "{updated:#?}"
    );
    let (_, revisions) = stack
        .call(
            &acct,
            Method::GET,
            &format!("/v1/phlo/{phlo_id}/revisions"),
            None,
        )
        .await;
    assert_eq!(revisions["objects"].as_array().map(Vec::len), Some(2));
    let by_id = cli
        .run(&["apply", &file, "--id", &phlo_id, "--output", "json"])
        .await
        .json();
    assert_eq!(by_id["action"], "unchanged");
    assert_eq!(by_id["phlo_id"], phlo_id.as_str());
    assert_eq!(by_id["revision"], 2);

    // The server's problems, printed exactly as `phlo validate` prints the same file's.
    let mut broken = demo("broken", None);
    broken["nodes"][1]["transitions"]["no_match"] = json!("c1100000-0000-4000-8000-0000000000ff");
    broken["nodes"][2]["options"]["max_cont"] = json!(5);
    let broken = cli.file("broken.json", &broken);
    let rejected = cli.run(&["apply", &broken]).await;
    let validated = cli.run(&["validate", &broken]).await;
    assert_eq!(rejected.code, 1, "{rejected:#?}");
    assert_eq!(validated.code, 1);
    assert_eq!(rejected.stdout, validated.stdout);
    assert!(
        rejected.stdout.contains(
            "error in node Route (c1100000-0000-4000-8000-000000000002) at transitions.no_match"
        ),
        "{rejected:#?}"
    );
    assert!(
        rejected.stdout.contains("error in node Count"),
        "{rejected:#?}"
    );

    // A run that completes, followed in text: every step with node, state and variables.
    let done = cli
        .run(&[
            "run",
            "CLI demo",
            "--payload",
            r#"{"amount": "5"}"#,
            "--follow",
        ])
        .await;
    assert_eq!(done.code, 0, "{done:#?}");
    let lines = done.lines();
    let completed_id = lines[0]
        .split_whitespace()
        .nth(1)
        .expect("run id")
        .to_owned();
    assert_eq!(
        lines[0],
        format!("run {completed_id}  PHLO {phlo_id} revision 2  trigger api")
    );
    let steps: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("  ") && !l.starts_with("      "))
        .map(|l| l.split_once(']').map_or("", |(_, rest)| rest.trim()))
        .collect();
    assert_eq!(
        steps,
        [
            "Start (start) trigger -> api_request",
            "Route (branch) enter -> no_match",
            "Count (counter) enter -> count_not_reached",
        ],
        "{done:#?}"
    );
    assert!(lines.contains(&"      count = 1"), "{done:#?}");
    assert!(lines.contains(&"      max_count = 5"), "{done:#?}");
    assert_eq!(
        lines.last().copied(),
        Some(format!("run {completed_id} completed after 3 steps").as_str())
    );

    // A run that fails: exit 1, the stopped step with its error, and the run's error.
    let failed = cli
        .run(&[
            "run",
            &phlo_id,
            "--payload",
            r#"{"amount": "5000"}"#,
            "--follow",
        ])
        .await;
    assert_eq!(failed.code, 1, "{failed:#?}");
    let failed_id = failed.lines()[0]
        .split_whitespace()
        .nth(1)
        .expect("run id")
        .to_owned();
    assert!(
        failed
            .stdout
            .contains("Greeting (play_audio) enter -> stopped"),
        "{failed:#?}"
    );
    let last = failed
        .lines()
        .last()
        .copied()
        .unwrap_or_default()
        .to_owned();
    assert!(
        last.starts_with(&format!("run {failed_id} failed after 3 steps: ")),
        "{failed:#?}"
    );
    let run = stack.get_run(&acct, &failed_id).await;
    assert_eq!(run["status"], "failed");

    // The JSON lines of a followed run: started, one line per step, end.
    let payload = cli.file("payload.json", &json!({ "amount": "7" }));
    let followed = cli
        .run(&[
            "--output",
            "json",
            "run",
            "CLI demo",
            "--payload-file",
            &payload,
            "--follow",
        ])
        .await;
    assert_eq!(followed.code, 0, "{followed:#?}");
    let lines = followed.json_lines();
    assert_eq!(lines[0]["type"], "started");
    assert_eq!(lines[0]["phlo_id"], phlo_id.as_str());
    let json_id = lines[0]["run_id"].as_str().expect("run id").to_owned();
    let steps: Vec<(&str, &str)> = lines[1..lines.len() - 1]
        .iter()
        .map(|l| {
            assert_eq!(l["type"], "step");
            assert_eq!(l["run_id"], json_id.as_str());
            (
                l["node_name"].as_str().unwrap(),
                l["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("Start", "api_request"),
            ("Route", "no_match"),
            ("Count", "count_not_reached")
        ]
    );
    assert_eq!(lines[1]["variables"]["http"]["params"]["amount"], "7");
    let end = lines.last().expect("end");
    assert_eq!(end["type"], "end");
    assert_eq!(end["status"], "completed");
    assert_eq!(end["step_count"], 3);

    // Following a run that has ended prints it whole, with the same exit code.
    let refollowed = cli.run(&["follow", &failed_id, "--output", "json"]).await;
    assert_eq!(refollowed.code, 1);
    let end = refollowed.json_lines().pop().expect("end");
    assert_eq!(end["status"], "failed");

    // Without --follow: the run id alone.
    let started = cli.run(&["run", "CLI demo"]).await;
    assert_eq!(started.code, 0);
    let quiet_id = started.stdout.trim().to_owned();
    stack
        .wait_run(&acct, &quiet_id, Duration::from_secs(30))
        .await;

    // runs: filters by PHLO, status, trigger and time, and the limit.
    let listed = |out: Out| -> Vec<String> {
        assert_eq!(out.code, 0, "{out:#?}");
        out.json()["runs"]
            .as_array()
            .expect("runs")
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let failed_runs = listed(
        cli.run(&[
            "runs", "--phlo", "CLI demo", "--status", "failed", "--output", "json",
        ])
        .await,
    );
    assert_eq!(failed_runs, [failed_id.as_str()]);
    let all = listed(
        cli.run(&[
            "runs", "--phlo", &phlo_id, "--since", "1h", "--output", "json",
        ])
        .await,
    );
    assert_eq!(
        all,
        [
            quiet_id.as_str(),
            json_id.as_str(),
            failed_id.as_str(),
            completed_id.as_str()
        ]
    );
    let two = listed(cli.run(&["runs", "--limit", "2", "--output", "json"]).await);
    assert_eq!(two, [quiet_id.as_str(), json_id.as_str()]);
    let none = cli.run(&["runs", "--until", "2000-01-01T00:00:00Z"]).await;
    assert_eq!(none.stdout.trim(), "no runs");
    let table = cli
        .run(&["runs", "--status", "completed", "--trigger", "api"])
        .await;
    assert_eq!(table.code, 0);
    assert!(table.lines()[0].starts_with("RUN"), "{table:#?}");
    assert_eq!(table.lines().len(), 4, "{table:#?}");
    assert!(table.stdout.contains(&completed_id) && !table.stdout.contains(&failed_id));
    let bad = cli.run(&["runs", "--status", "finished"]).await;
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr.contains("status=finished is not valid"),
        "{bad:#?}"
    );

    // Clear errors: a payload that is not an object, a file that is not JSON, an unknown run, wrong
    // credentials, no gateway.
    let listy = cli.run(&["run", "CLI demo", "--payload", "[1]"]).await;
    assert_eq!(listy.code, 2);
    assert!(
        listy.stderr.contains("--payload must be a JSON object"),
        "{listy:#?}"
    );
    let not_json = cli.dir.join("not.json");
    std::fs::write(&not_json, "{\"name\": ").expect("write");
    let garbled = cli.run(&["apply", &not_json.display().to_string()]).await;
    assert_eq!(garbled.code, 2);
    assert!(
        garbled.stderr.contains("is not a JSON document"),
        "{garbled:#?}"
    );
    let unknown = cli
        .run(&["follow", "c1100000-0000-4000-8000-0000000000aa"])
        .await;
    assert_eq!(unknown.code, 2);
    assert!(
        unknown.stderr.contains("404") && unknown.stderr.contains("not found"),
        "{unknown:#?}"
    );
    let wrong = cli.run(&["runs", "--auth-token", "not-the-token"]).await;
    assert_eq!(wrong.code, 2);
    assert!(
        wrong.stderr.contains("401") && wrong.stderr.contains("--auth-id/--auth-token"),
        "{wrong:#?}"
    );
    let away = cli.run(&["runs", "--url", "http://127.0.0.1:9"]).await;
    assert_eq!(away.code, 2);
    assert!(
        away.stderr
            .contains("the gateway at http://127.0.0.1:9 cannot be reached"),
        "{away:#?}"
    );
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn callbacks_tail_prints_each_attempt() {
    let receiver = recorder(|path| {
        if path.ends_with("/gone") {
            (410, "text/plain", "gone".into())
        } else {
            (200, "text/plain", "ok".into())
        }
    })
    .await;
    let mut stack = Stack::start(1).await;
    stack.spawn_callback(&[]);
    let acct = stack.account().await;
    let cli = Cli::new(&stack, &acct);
    let hooks = format!("http://{}", receiver.addr);
    let file = cli.file(
        "demo.json",
        &demo(
            "callbacks",
            Some((format!("{hooks}/gone"), format!("{hooks}/count"))),
        ),
    );
    let phlo_id = phlo_id_of(&cli.run(&["apply", &file]).await);

    // Tail first, bounded to the two attempts the run will cause.
    let tail = cli
        .command(&[
            "callbacks",
            "tail",
            "--phlo",
            "CLI demo",
            "--since",
            "5m",
            "--limit",
            "2",
            "--output",
            "json",
        ])
        .spawn()
        .expect("spawn tail");
    let run_id = stack.run(&acct, &phlo_id, json!({ "amount": "3" })).await;
    let (stdout, lines) = tail_lines(tail, "the tail never printed two attempts").await;
    assert_eq!(lines.len(), 2, "{stdout}");
    let (count, route) = (&lines[0], &lines[1]);
    assert_eq!(count["type"], "attempt");
    assert_eq!(count["run_id"], run_id.as_str());
    assert_eq!(count["node_name"], "Count");
    assert_eq!(count["event"], "count_not_reached");
    assert_eq!(count["url"], format!("{hooks}/count"));
    assert_eq!(count["attempt"], 1);
    assert_eq!(count["outcome"], "delivered");
    assert_eq!(count["status_code"], 200);
    assert_eq!(count["status"], "delivered");
    assert_eq!(route["node_name"], "Route");
    assert_eq!(route["outcome"], "disabled");
    assert_eq!(route["status_code"], 410);
    assert_eq!(route["status"], "failed");

    // One run's log at once, in text; and tailing one run stops by itself once nothing is pending.
    let once = cli
        .run(&["callbacks", "tail", "--run", &run_id, "--once"])
        .await;
    assert_eq!(once.code, 0, "{once:#?}");
    let text = once.stdout.clone();
    assert!(
        text.contains(&format!(
            "delivered attempt 1  HTTP 200  POST {hooks}/count  Count count_not_reached"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "disabled attempt 1  HTTP 410  POST {hooks}/gone  Route no_match"
        )),
        "{text}"
    );
    let whole = cli.run(&["callbacks", "tail", "--run", &run_id]).await;
    assert_eq!(whole.code, 0);
    assert_eq!(
        whole
            .lines()
            .iter()
            .filter(|l| l.contains(" attempt 1 "))
            .count(),
        2,
        "{whole:#?}"
    );

    // Without --since, only what happens after the tail started: the second run's deliveries, one
    // of them recorded failed without an attempt (its URL was disabled by the first run's 410).
    let mut tail = cli
        .command(&[
            "callbacks",
            "tail",
            "--phlo",
            &phlo_id,
            "--limit",
            "2",
            "--output",
            "json",
        ])
        .spawn()
        .expect("spawn tail");
    let mut stderr = BufReader::new(tail.stderr.take().expect("stderr")).lines();
    let watching = tokio::time::timeout(Duration::from_secs(30), stderr.next_line())
        .await
        .expect("the tail never started watching")
        .expect("stderr");
    assert_eq!(
        watching.as_deref(),
        Some("watching callback deliveries from now on (Ctrl-C to stop)")
    );
    let second = stack.run(&acct, &phlo_id, json!({ "amount": "4" })).await;
    let (stdout, lines) =
        tail_lines(tail, "the tail never printed the second run's deliveries").await;
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines.iter().all(|l| l["run_id"] == second.as_str()),
        "{stdout}"
    );
    assert_eq!(lines[0]["type"], "attempt");
    assert_eq!(lines[0]["outcome"], "delivered");
    assert_eq!(lines[1]["type"], "delivery", "{stdout}");
    assert_eq!(lines[1]["node_name"], "Route");
    assert_eq!(lines[1]["status"], "failed");
    assert!(
        lines[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("disabled")),
        "{stdout}"
    );

    // A redelivery of the first run, which ended long before this tail started, shows up in it: the
    // tail lists the account's changes, not a list of runs it watches.
    let (status, log) = stack
        .call(
            &acct,
            Method::GET,
            &format!("/v1/runs/{run_id}/callbacks"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{log}");
    let gone = log["objects"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["node_name"] == "Route"))
        .and_then(|d| d["delivery_id"].as_str())
        .expect("the first run's Route delivery")
        .to_owned();
    let mut tail = cli
        .command(&["callbacks", "tail", "--output", "json"])
        .spawn()
        .expect("spawn tail");
    let mut stderr = BufReader::new(tail.stderr.take().expect("stderr")).lines();
    let watching = tokio::time::timeout(Duration::from_secs(30), stderr.next_line())
        .await
        .expect("the tail never started watching")
        .expect("stderr");
    assert!(watching.is_some_and(|l| l.starts_with("watching")));
    let (status, body) = stack
        .call(
            &acct,
            Method::POST,
            &format!("/v1/callbacks/{gone}/redeliver"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut stdout = BufReader::new(tail.stdout.take().expect("stdout")).lines();
    let redelivered = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = stdout.next_line().await.expect("stdout") {
            let line: Value = serde_json::from_str(&line).expect("json line");
            // Attempt 1 may be printed too, when it was less than the tail's lag before it started.
            if line["delivery_id"] == gone.as_str() && line["attempt"] == 2 {
                return line;
            }
        }
        panic!("the tail ended without the redelivered attempt");
    })
    .await
    .expect("the tail never printed the redelivered attempt");
    tail.kill().await.expect("stop the tail");
    assert_eq!(redelivered["run_id"], run_id.as_str());
    assert_eq!(redelivered["outcome"], "disabled");
    assert_eq!(redelivered["status_code"], 410);
    assert_eq!(redelivered["status"], "failed");
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn commands_wait_out_the_rate_limit() {
    // Two requests a second: following a run (four polls a second) runs into 429s.
    let mut stack = Stack::start_with(
        1,
        &[("PHLO_RATE_API_PER_SEC", "2"), ("PHLO_RATE_API_BURST", "2")],
    )
    .await;
    let acct = stack.account().await;
    let cli = Cli::new(&stack, &acct);
    let file = cli.file("demo.json", &demo("limited", None));
    let applied = cli.run(&["apply", &file]).await;
    assert_eq!(applied.code, 0, "{applied:#?}");
    for _ in 0..2 {
        let done = cli
            .run(&[
                "run",
                "CLI demo",
                "--payload",
                r#"{"amount": "5"}"#,
                "--follow",
            ])
            .await;
        assert_eq!(done.code, 0, "{done:#?}");
        assert!(
            done.stdout.contains(" completed after 3 steps"),
            "{done:#?}"
        );
    }
    // The limit is in force: five requests at once exceed the burst of two.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(stack.call(&acct, Method::GET, "/v1/runs", None).await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    stack.cleanup().await;
}

/// A menu: 1 for sales, 2 for support, each saying which key was pressed, then the call ends.
/// Waits for a bounded `callbacks tail --output json` to exit 0; its output and its lines, by node name.
async fn tail_lines(tail: tokio::process::Child, never: &str) -> (String, Vec<Value>) {
    let output = tokio::time::timeout(Duration::from_secs(60), tail.wait_with_output())
        .await
        .expect(never)
        .expect("tail output");
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    lines.sort_by_key(|l| l["node_name"].as_str().unwrap_or_default().to_owned());
    (stdout, lines)
}

fn menu() -> Value {
    let play = |id: &str, name: &str, text: &str| json!({ "node_id": id, "name": name, "type": "play_audio", "options": { "prompts": text } });
    json!({ "name": "CLI menu", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "incoming_call": MENU } },
        { "node_id": MENU, "name": "Menu", "type": "ivr_menu",
          "options": { "prompts": "Press 1 for sales or 2 for support", "allowed_inputs": ["1", "2"],
                       "input_timeout": 3 },
          "transitions": { "1": SALES, "2": SUPPORT } },
        play(SALES, "Sales", "Sales, you pressed {{Menu.digits}}"),
        play(SUPPORT, "Support", "Support, you pressed {{Menu.digits}}"),
    ]})
}

#[tokio::test(flavor = "multi_thread")]
async fn call_with_digits_prints_what_the_caller_hears_and_the_run() {
    let sim = Sim::start().await;
    let (mut stack, acct) = voice_stack(&sim).await;
    let cli = Cli::new(&stack, &acct).with_sim(&sim);
    let file = cli.file("menu.json", &menu());
    assert_eq!(cli.run(&["apply", &file]).await.code, 0);

    let call = cli
        .run(&[
            "call",
            "+14155550100",
            "+14155550199",
            "--phlo",
            "CLI menu",
            "--digits",
            "2",
        ])
        .await;
    assert_eq!(call.code, 0, "{call:#?}");
    let said: Vec<&str> = call
        .lines()
        .iter()
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest.trim()))
        .filter_map(|l| l.split_once(' ').map(|(_, what)| what))
        .filter(|w| w.starts_with("heard") || w.starts_with("pressed"))
        .collect();
    assert_eq!(
        said,
        [
            "heard: \"Press 1 for sales or 2 for support\"",
            "pressed: 2",
            "heard: \"Support, you pressed 2\"",
        ],
        "{call:#?}"
    );
    let uuid = call.lines()[0]
        .split_whitespace()
        .nth(1)
        .expect("uuid")
        .to_owned();
    assert!(call.stdout.contains("call ended: completed"), "{call:#?}");
    let last = call.lines().last().copied().unwrap_or_default().to_owned();
    let run_id = last.split_whitespace().nth(1).expect("run id").to_owned();
    assert_eq!(last, format!("run {run_id} completed"));
    let run = stack.get_run(&acct, &run_id).await;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["trigger_details"]["uuid"], uuid.as_str(), "{run:#}");
    let menu_step = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["node_name"] == "Menu" && s["outcome"] == "done")
        .expect("menu step");
    assert_eq!(menu_step["state"], "2");

    // The same in JSON lines, pressing 1.
    let call = cli
        .run(&[
            "--output",
            "json",
            "call",
            "+14155550100",
            "+14155550199",
            "--digits",
            "1",
        ])
        .await;
    assert_eq!(call.code, 0, "{call:#?}");
    let lines = call.json_lines();
    assert_eq!(lines[0]["type"], "call");
    let heard: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "event" && l["kind"] == "heard")
        .filter_map(|l| l["text"].as_str())
        .collect();
    assert_eq!(
        heard,
        ["Press 1 for sales or 2 for support", "Sales, you pressed 1"]
    );
    let end = lines.last().expect("run line");
    assert_eq!(end["type"], "run");
    assert_eq!(end["status"], "completed");

    // Answers from standard input: the caller waits at the prompt for the line typed.
    let call = cli
        .run_with_input(&["call", "+14155550100", "+14155550199"], Some("2\n"))
        .await;
    assert_eq!(call.code, 0, "{call:#?}");
    let events: Vec<&str> = call
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("  "))
        .map(|l| l.trim().split_once(' ').map_or("", |(_, what)| what))
        .collect();
    let menu = events
        .iter()
        .position(|e| *e == "heard: \"Press 1 for sales or 2 for support\"")
        .unwrap_or_else(|| panic!("no menu prompt: {call:#?}"));
    assert!(
        events[menu + 1].starts_with("waiting for an answer"),
        "{call:#?}"
    );
    assert_eq!(events[menu + 2], "pressed: 2", "{call:#?}");
    assert_eq!(
        events[menu + 3],
        "heard: \"Support, you pressed 2\"",
        "{call:#?}"
    );
    assert!(
        call.lines()
            .last()
            .is_some_and(|l| l.ends_with(" completed")),
        "{call:#?}"
    );
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sms_follows_the_run_and_prints_the_reply() {
    let sim = Sim::start().await;
    let (mut stack, acct) = voice_stack(&sim).await;
    let cli = Cli::new(&stack, &acct).with_sim(&sim);
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/examples/incoming_message.json"
    );
    assert_eq!(cli.run(&["apply", example]).await.code, 0);

    let sms = cli
        .run(&[
            "sms",
            "+14155550100",
            "+14155550199",
            "help",
            "--phlo",
            "SMS keywords",
        ])
        .await;
    assert_eq!(sms.code, 0, "{sms:#?}");
    assert!(sms.lines()[0].starts_with("message "), "{sms:#?}");
    assert!(
        sms.stdout
            .contains("Start (start) trigger -> incoming_message"),
        "{sms:#?}"
    );
    assert!(
        sms.stdout.contains("Keyword (branch) enter -> help"),
        "{sms:#?}"
    );
    assert!(sms.stdout.contains("Reply_Help (send_sms)"), "{sms:#?}");
    assert!(
        sms.stdout.contains(
            ": \"Acme alerts: reply STOP to unsubscribe. Help: https://example.com/help\""
        ),
        "{sms:#?}"
    );
    let run_line = sms
        .lines()
        .into_iter()
        .find(|l| l.starts_with("run ") && l.contains(" completed after "))
        .unwrap_or_else(|| panic!("no end line: {sms:#?}"))
        .to_owned();
    let run_id = run_line.split_whitespace().nth(1).expect("run id");
    let run = stack.get_run(&acct, run_id).await;
    assert_eq!(run["trigger"], "sms");
    assert_eq!(run["status"], "completed");
    stack.cleanup().await;
}
