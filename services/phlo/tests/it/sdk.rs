//! Wire compatibility with Plivo's official SDKs: the Python SDK (plivo 4.63.0 from PyPI, installed
//! once into a venv under the target directory) drives a real stack, and the request shapes of the
//! Node, Go and Java SDKs are replayed with reqwest. The point: what an SDK sends as a run payload
//! reaches Liquid as `{{Start.http.params.<key>}}`.
//!
//! Conformance scenarios (dev mode and distributed): both tests of this file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Account, Stack, Target, done_step};

crate::conformance!(
    the_official_python_sdk_runs_a_phlo_and_its_payload_reaches_liquid,
    the_request_shapes_of_the_node_go_and_java_sdks_are_accepted,
);

const START: &str = "5d400000-0000-4000-8000-000000000000";
const BRANCH_ITEM: &str = "5d400000-0000-4000-8000-000000000001";
const BRANCH_NESTED: &str = "5d400000-0000-4000-8000-000000000002";
const COUNTER_PIZZA: &str = "5d400000-0000-4000-8000-000000000003";
const COUNTER_OTHER: &str = "5d400000-0000-4000-8000-000000000004";
const MPC: &str = "5d400000-0000-4000-8000-000000000005";
const UNKNOWN_PHLO: &str = "5d4fffff-0000-4000-8000-000000000000";

/// The exact SDK release the wire notes were verified with (shared/reference/plivo-api.md).
const PLIVO_PYTHON: &str = "plivo==4.63.0";

/// Start's payload defaults: the request's own keys are merged over them.
fn defaults() -> Value {
    json!({ "channel": "sdk" })
}

/// Start (API) → Branch on `{{Start.http.params.item}}` → `pizza`: Branch on the `from` and nested
/// keys → Counter_Pizza; anything else → Counter_Other. Start (incoming call) → a Multiparty Call node,
/// so the SDK's node getter has something to get.
fn sdk_phlo() -> Value {
    json!({
        "name": "SDK wire test",
        "nodes": [
            { "node_id": START, "name": "Start", "type": "start",
              "options": { "payload": defaults() },
              "transitions": { "api_request": BRANCH_ITEM, "incoming_call": MPC } },
            { "node_id": BRANCH_ITEM, "name": "Branch_Item", "type": "branch",
              "options": { "lhs": "{{Start.http.params.item}}",
                           "conditions": [{ "alias": "pizza", "operation": "equals", "rhs": "pizza" }] },
              "transitions": { "pizza": BRANCH_NESTED, "no_match": COUNTER_OTHER } },
            { "node_id": BRANCH_NESTED, "name": "Branch_Nested", "type": "branch",
              "options": { "lhs": "{{Start.http.params.from}}/{{Start.http.params.nested.k}}/{{Start.http.params.channel}}",
                           "conditions": [{ "alias": "all_keys", "operation": "equals", "rhs": "+14155550100/1/sdk" }] },
              "transitions": { "all_keys": COUNTER_PIZZA, "no_match": COUNTER_OTHER } },
            { "node_id": COUNTER_PIZZA, "name": "Counter_Pizza", "type": "counter",
              "options": { "max_count": 1000, "scope": "phlo" } },
            { "node_id": COUNTER_OTHER, "name": "Counter_Other", "type": "counter",
              "options": { "max_count": 1000, "scope": "phlo" } },
            { "node_id": MPC, "name": "Support_Room", "type": "multi_party_call",
              "options": { "conference_name": "support", "role": "agent" } },
        ]
    })
}

// ---------------------------------------------------------------------------------------------
// The Python environment

fn run_checked(cmd: &mut Command, what: &str) -> Output {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    if !output.status.success() {
        panic!(
            "{what} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output
}

/// A venv with the official SDK, created once under the target directory and reused by later runs.
/// Concurrent tests (and test processes) serialise on a lock file; the marker file is written only
/// after pip succeeded, so a half-made venv from an interrupted run is rebuilt.
/// `PHLO_TEST_PYTHON` picks the interpreter that creates it (default `python3`).
fn python_with_plivo() -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let venv = root.join("py-venv-plivo-4.63.0");
    let python = venv.join("bin").join("python");
    let marker = venv.join(".plivo-installed");
    if marker.exists() {
        return python;
    }
    std::fs::create_dir_all(root).expect("target tmp dir");
    let lock = File::create(root.join("py-venv-plivo-4.63.0.lock")).expect("venv lock file");
    lock.lock().expect("lock the venv");
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&venv);
        let interpreter = std::env::var("PHLO_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        run_checked(
            Command::new(&interpreter).arg("-m").arg("venv").arg(&venv),
            "creating the Python venv",
        );
        run_checked(
            Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                PLIVO_PYTHON,
            ]),
            "pip install plivo",
        );
        std::fs::write(&marker, PLIVO_PYTHON).expect("venv marker");
    }
    let _ = lock.unlock();
    python
}

/// Runs `tests/sdk/<script>` with the venv's Python; returns its JSON lines by `step`.
async fn run_script(script: &str, env: &[(&str, &str)]) -> Vec<Value> {
    run_script_with(script, &[], env).await
}

/// Like [`run_script`], with command-line arguments.
pub(crate) async fn run_script_with(
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Vec<Value> {
    let python = tokio::task::spawn_blocking(python_with_plivo)
        .await
        .expect("venv task");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("sdk")
        .join(script);
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(&path)
        .args(args)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish in 120 s"))
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{script} printed a non-JSON line {l:?}: {e}"))
        })
        .collect()
}

fn step<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["step"] == name)
        .unwrap_or_else(|| panic!("no `{name}` line in {lines:#?}"))
}

fn is_uuid(v: &Value) -> bool {
    v.as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok())
}

/// Plivo's `2018-11-14 04:41:31.827796+00:00`.
fn is_plivo_time(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    s.len() == 32 && s.as_bytes()[10] == b' ' && s.as_bytes()[19] == b'.' && s.ends_with("+00:00")
}

/// A run response as the SDKs parse it: `api_id` is the run id (the only id Node users get).
fn assert_run_response(body: &Value, phlo_id: &str) -> String {
    assert_eq!(body["phlo_id"], phlo_id, "{body}");
    assert!(is_uuid(&body["phlo_run_id"]), "{body}");
    assert_eq!(
        body["api_id"], body["phlo_run_id"],
        "api_id is the run id: {body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    body["phlo_run_id"].as_str().unwrap_or_default().to_owned()
}

/// Waits for the run and checks what reached Liquid: Start's `http.params` and the branch taken.
async fn assert_run(
    stack: &Stack,
    acct: &Account,
    run_id: &str,
    params: Value,
    pizza: bool,
) -> Value {
    let run = stack.wait_run(acct, run_id, Duration::from_secs(30)).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["trigger"], "api", "{run:#}");
    let start = done_step(&run, "Start");
    assert_eq!(start["state"], "api_request", "{run:#}");
    assert_eq!(start["variables"]["http"]["params"], params, "{run:#}");
    assert_eq!(start["variables"]["request"]["params"], params, "{run:#}");
    let item = done_step(&run, "Branch_Item");
    if pizza {
        assert_eq!(item["state"], "pizza", "{run:#}");
        assert_eq!(
            done_step(&run, "Branch_Nested")["state"],
            "all_keys",
            "{run:#}"
        );
        assert_eq!(
            done_step(&run, "Counter_Pizza")["state"],
            "count_not_reached",
            "{run:#}"
        );
    } else {
        assert_eq!(item["state"], "no_match", "{run:#}");
        assert_eq!(
            done_step(&run, "Counter_Other")["state"],
            "count_not_reached",
            "{run:#}"
        );
    }
    run
}

async fn the_official_python_sdk_runs_a_phlo_and_its_payload_reaches_liquid(target: Target) {
    // Install first (minutes on a fresh machine), then start the stack.
    tokio::task::spawn_blocking(python_with_plivo)
        .await
        .expect("venv task");
    let (mut stack, _sim, acct) = target.start(&[]).await;
    let phlo_id = stack.create_phlo(&acct, sdk_phlo()).await;

    let lines = run_script(
        "python_sdk.py",
        &[
            ("PHLO_BASE", stack.gateway_url.as_str()),
            ("PHLO_AUTH_ID", acct.auth_id.as_str()),
            ("PHLO_AUTH_TOKEN", acct.token.as_str()),
            ("PHLO_ID", phlo_id.as_str()),
            ("PHLO_MPC_NODE_ID", MPC),
            ("PHLO_UNKNOWN_ID", UNKNOWN_PHLO),
        ],
    )
    .await;
    assert_eq!(step(&lines, "sdk")["version"], "4.63.0");
    assert_eq!(
        lines.last().map(|l| &l["step"]),
        Some(&json!("done")),
        "{lines:#?}"
    );

    // GET /v1/phlo/{id}/: the fields the SDK builds later URLs from.
    let get = step(&lines, "get");
    assert_eq!(get["type"], "Phlo");
    let phlo = &get["response"];
    assert_eq!(phlo["phlo_id"], phlo_id.as_str(), "{phlo:#}");
    assert_eq!(phlo["name"], "SDK wire test", "{phlo:#}");
    assert!(is_uuid(&phlo["api_id"]), "{phlo:#}");
    assert!(is_plivo_time(&phlo["created_on"]), "{phlo:#}");

    // The three kinds of run the SDK can send, and what reached Start.http.params.
    let sent = json!({ "from": "+14155550100", "item": "pizza", "nested": { "k": 1 } });
    let mut payload_params = defaults();
    payload_params
        .as_object_mut()
        .unwrap()
        .extend(sent.as_object().unwrap().clone());
    let cases = [
        ("run_no_args", defaults(), false),
        ("run_empty_kwargs", defaults(), false),
        ("run_payload", payload_params, true),
        ("run_no_body", defaults(), false),
    ];
    let mut run_ids = Vec::new();
    for (name, params, pizza) in cases {
        let line = step(&lines, name);
        assert_eq!(line["type"], "ResponseObject", "{line}");
        let run_id = assert_run_response(&line["response"], &phlo_id);
        let run = assert_run(&stack, &acct, &run_id, params, pizza).await;
        assert_eq!(run["phlo_id"], phlo_id.as_str());
        run_ids.push(run_id);
    }
    let mut unique = run_ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        run_ids.len(),
        "every run has its own id: {run_ids:?}"
    );

    // The PHLO-scoped counters saw one pizza run and three others.
    let (status, counters) = stack
        .call(
            &acct,
            Method::GET,
            &format!("/v1/phlo/{phlo_id}/counters"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{counters}");
    let value = |name: &str| {
        counters["objects"]
            .as_array()
            .and_then(|o| o.iter().find(|c| c["node_name"] == name))
            .map(|c| c["value"].clone())
    };
    assert_eq!(value("Counter_Pizza"), Some(json!(1)), "{counters:#}");
    assert_eq!(value("Counter_Other"), Some(json!(3)), "{counters:#}");

    // GET /v1/phlo/{id}/multi_party_call/{node}/ and the generic node getter.
    for name in ["multi_party_call", "node"] {
        let line = step(&lines, name);
        let node = &line["response"];
        assert_eq!(node["phlo_id"], phlo_id.as_str(), "{line}");
        assert_eq!(node["node_id"], MPC, "{line}");
        assert_eq!(node["node_type"], "multi_party_call", "{line}");
        assert_eq!(node["name"], "Support_Room", "{line}");
        assert!(is_uuid(&node["api_id"]), "{line}");
        assert!(is_plivo_time(&node["created_on"]), "{line}");
    }
    assert_eq!(step(&lines, "multi_party_call")["type"], "MultiPartyCall");

    // Errors become the SDK's typed exceptions, with our `error` text as the message.
    let expect = |name: &str, exception: &str, needle: &str| {
        let line = step(&lines, name);
        assert_eq!(line["exception"], exception, "{line}");
        let message = line["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "{name}: expected `{needle}` in {message:?}"
        );
    };
    expect(
        "get_unknown",
        "ResourceNotFoundError",
        &format!("PHLO {UNKNOWN_PHLO} not found"),
    );
    expect(
        "node_wrong_type",
        "ResourceNotFoundError",
        &format!("conference_bridge node {MPC} not found"),
    );
    expect(
        "wrong_token",
        "AuthenticationError",
        "authentication failed",
    );
    expect(
        "run_list_payload",
        "ValidationError",
        "must be a JSON object",
    );
    expect(
        "wrong_method",
        "InvalidRequestError",
        "DELETE is not allowed",
    );
    // 403 has no exception of its own in the Python SDK outside its geo-permission endpoints.
    expect("run_other_account", "PlivoRestError", "403");

    // Nothing else started a run: 4 runs, all completed.
    let (status, list) = stack
        .call(
            &acct,
            Method::GET,
            &format!("/v1/runs?phlo_id={phlo_id}&limit=100"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let statuses: Vec<&Value> = list["objects"]
        .as_array()
        .map(|o| o.iter().map(|r| &r["status"]).collect())
        .unwrap_or_default();
    assert_eq!(statuses, vec![&json!("completed"); 4], "{list:#}");
    stack.cleanup().await;
}

/// What the other SDKs put on the wire (shared/reference/plivo-api.md §1), replayed with reqwest.
async fn the_request_shapes_of_the_node_go_and_java_sdks_are_accepted(target: Target) {
    let (mut stack, _sim, acct) = target.start(&[]).await;
    let phlo_id = stack.create_phlo(&acct, sdk_phlo()).await;
    let send = |method: Method, path: &str| {
        stack
            .http
            .request(method, stack.url(path))
            .basic_auth(&acct.auth_id, Some(&acct.token))
            .header("accept", "application/json")
    };
    let json_of = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)),
        )
    };

    // Node: GET /v1/phlo/{id}/?phlo_id={id}; Go and Java: no slash; Python: slash.
    for path in [
        format!("/v1/phlo/{phlo_id}/?phlo_id={phlo_id}"),
        format!("/v1/phlo/{phlo_id}"),
        format!("/v1/phlo/{phlo_id}/"),
    ] {
        let (status, body) = json_of(send(Method::GET, &path).send().await.unwrap()).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["phlo_id"], phlo_id.as_str(), "{path}: {body}");
        assert_eq!(body["name"], "SDK wire test");
        assert!(is_plivo_time(&body["created_on"]), "{body}");
    }

    let run_path = format!("/v1/account/{}/phlo/{phlo_id}", acct.auth_id);
    let with_json = |method: Method, path: &str, body: &'static str| {
        send(method, path)
            .header("content-type", "application/json")
            .body(body)
    };
    // Node `run()`: the JSON string literal "" (Content-Length 2). Node `run({...})`: snake_cased keys.
    // Go `Run(nil)`: an empty body with Content-Type: application/json, and a trailing slash.
    // Java: an object, no slash. .NET: the payload in the query string too.
    let cases: Vec<(reqwest::RequestBuilder, Value, bool)> = vec![
        (
            with_json(Method::POST, &run_path, "\"\""),
            defaults(),
            false,
        ),
        (
            with_json(
                Method::POST,
                &run_path,
                r#"{"from":"+14155550100","item":"pizza","nested":{"k":1}}"#,
            ),
            json!({ "channel": "sdk", "from": "+14155550100", "item": "pizza", "nested": { "k": 1 } }),
            true,
        ),
        (
            with_json(Method::POST, &format!("{run_path}/"), ""),
            defaults(),
            false,
        ),
        (send(Method::POST, &run_path), defaults(), false),
        (
            with_json(
                Method::POST,
                &format!("{run_path}?item=pizza&from=%2B14155550100"),
                r#"{"nested":{"k":1}}"#,
            ),
            json!({ "channel": "sdk", "from": "+14155550100", "item": "pizza", "nested": { "k": 1 } }),
            true,
        ),
    ];
    for (request, params, pizza) in cases {
        let (status, body) = json_of(request.send().await.unwrap()).await;
        assert_eq!(status, 201, "{body}");
        let run_id = assert_run_response(&body, &phlo_id);
        assert_run(&stack, &acct, &run_id, params, pizza).await;

        // Java's run getter: GET /v1/phlo/{id}/runs/{run_id}, both slash forms.
        for suffix in ["", "/"] {
            let (status, run) = json_of(
                send(
                    Method::GET,
                    &format!("/v1/phlo/{phlo_id}/runs/{run_id}{suffix}"),
                )
                .send()
                .await
                .unwrap(),
            )
            .await;
            assert_eq!(status, 200, "{run}");
            assert_eq!(run["api_id"], run_id.as_str());
            assert_eq!(run["run_id"], run_id.as_str());
            assert_eq!(run["phlo_id"], phlo_id.as_str());
            for key in ["call_uuids", "message_uuids", "recording_ids"] {
                assert_eq!(run[key], json!([]), "{key}: {run}");
            }
        }
    }

    // The node getter (Go, Java: no slash; Python: slash), with the PHLO id again in the query.
    for path in [
        format!("/v1/phlo/{phlo_id}/multi_party_call/{MPC}"),
        format!("/v1/phlo/{phlo_id}/multi_party_call/{MPC}/?phlo_id={phlo_id}"),
    ] {
        let (status, body) = json_of(send(Method::GET, &path).send().await.unwrap()).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["node_id"], MPC);
        assert_eq!(body["phlo_id"], phlo_id.as_str());
        assert_eq!(body["node_type"], "multi_party_call");
        assert_eq!(body["name"], "Support_Room");
    }
    // A literal `+` in a path segment stays a `+` (never a space); `%2B` decodes to `+`. The node
    // getter echoes the unknown segment in its 404, which shows what the router saw.
    for raw in ["+14155550102", "%2B14155550102"] {
        let (status, body) = json_of(
            send(
                Method::GET,
                &format!("/v1/phlo/{phlo_id}/multi_party_call/{raw}/"),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(
            body["error"], "multi_party_call node +14155550102 not found",
            "{raw}: {body}"
        );
    }

    // Errors are {api_id, error} with the status the SDKs map to exceptions.
    let wrong = stack
        .http
        .get(stack.url(&format!("/v1/phlo/{phlo_id}/")))
        .basic_auth(&acct.auth_id, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap_or_default()),
        Some("Basic realm=\"phlo\"")
    );
    let (status, body) = json_of(wrong).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        is_uuid(&body["api_id"]) && body["error"].is_string(),
        "{body}"
    );
    let (status, body) = json_of(
        send(
            Method::POST,
            &format!("/v1/account/{}/phlo/{UNKNOWN_PHLO}/", acct.auth_id),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], format!("PHLO {UNKNOWN_PHLO} not found"));

    // Malformed input is a JSON error too (never axum's plain text, never a 500): a query value of the
    // wrong type, a path segment that is not UTF-8, and NUL characters (which Postgres cannot store).
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (send(Method::GET, "/v1/runs?limit=abc"), 400, "limit"),
        (send(Method::GET, "/v1/phlo?limit=1&limit=2"), 400, "limit"),
        (send(Method::GET, "/v1/runs/%FF"), 404, "not found"),
        (send(Method::GET, "/v1/runs?q=%00"), 400, "NUL"),
        (send(Method::POST, &format!("{run_path}?x=%00")), 400, "NUL"),
        (
            with_json(Method::POST, &run_path, r#"{"item": "a\u0000b"}"#),
            400,
            "NUL",
        ),
        (
            with_json(Method::POST, &run_path, r#"{"a\u0000": 1}"#),
            400,
            "NUL",
        ),
        (
            stack
                .http
                .get(stack.url("/v1/phlo"))
                .basic_auth("MA\u{0}", Some(&acct.token)),
            401,
            "authentication failed",
        ),
    ];
    for (request, expected, needle) in cases {
        let r = request.send().await.unwrap();
        assert_eq!(
            r.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json")
        );
        let (status, body) = json_of(r).await;
        assert_eq!(status, expected, "{body}");
        assert!(is_uuid(&body["api_id"]), "{body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains(needle)),
            "expected `{needle}` in {body}"
        );
    }
    stack.cleanup().await;
}
