//! Secrets never reach the logs or the traces: a full run through every credential the runner handles
//! (an account's Basic auth, the operator token, a webhook signing secret before and after a rotation,
//! the carrier's auth token for its REST API and webhook signatures, the key secrets are sealed with,
//! and the credentials a PHLO's HTTP Request node sends), with the gateway, worker and callback service
//! logging at `debug` and exporting their spans to a capturing OTLP endpoint; then every log line and
//! every exported byte is searched for each secret, raw and encoded (base64, percent-encoding, the Basic
//! header value). Wrong credentials are sent too: what a caller presents is as secret as what is right.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::support::{ADMIN_TOKEN, Account, Received, Recorder, SECRET_KEY, Stack, recorder};

const START: &str = "5ec00000-0000-4000-8000-000000000000";
const LOOKUP: &str = "5ec00000-0000-4000-8000-000000000001";
const TEXT: &str = "5ec00000-0000-4000-8000-000000000002";
const SENDER: &str = "+14155550100";
const CUSTOMER: &str = "+14155550101";
/// Generous: a deadline only fails a test that hangs.
const PATIENCE: Duration = Duration::from_secs(60);

/// The carrier simulator in this process, with an auth token of this test only.
struct Carrier {
    url: String,
    auth_id: String,
    auth_token: String,
    stop: CancellationToken,
}

impl Carrier {
    async fn start() -> Carrier {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let config = phlo_carrier_sim::Config {
            time_scale: 0.02,
            auth_token: format!("carrier-token-{}", uuid::Uuid::new_v4().simple()),
            ..phlo_carrier_sim::Config::default()
        };
        let (auth_id, auth_token) = (config.auth_id.clone(), config.auth_token.clone());
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move { phlo_carrier_sim::run(config, listener, s).await });
        Carrier {
            url,
            auth_id,
            auth_token,
            stop,
        }
    }
}

impl Drop for Carrier {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What the HTTP Request node's server and the callback receiver answer; the OTLP endpoint takes
/// any export (an empty body is an empty `ExportTraceServiceResponse`).
fn reply(path: &str) -> (u16, &'static str, String) {
    match path {
        "/orders" => (200, "application/json", r#"{"status": "shipped"}"#.into()),
        "/v1/traces" => (200, "application/x-protobuf", String::new()),
        _ => (200, "text/plain", "ok".into()),
    }
}

fn definition(server: &Recorder, user_token: &str) -> Value {
    let base = format!("http://{}", server.addr);
    let callback = |event: &str| json!({ "url": format!("{base}/hooks"), "method": "POST", "events": [event] });
    json!({ "name": "Order status by SMS", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "api_request": LOOKUP } },
        { "node_id": LOOKUP, "name": "Lookup", "type": "http_request",
          "options": {
              "method": "POST",
              "url": format!("{base}/orders"),
              "headers": { "X-Api-Key": user_token },
              "body": { "type": "json", "content": { "order_id": "{{Start.http.params.order_id}}" } },
              "auth": { "type": "bearer", "token": user_token },
          },
          "callback": callback("success"),
          "transitions": { "success": TEXT } },
        { "node_id": TEXT, "name": "Text", "type": "send_sms",
          "options": { "from": SENDER, "to": CUSTOMER,
                       "message": "Your order is {{Lookup.response.body.status}}." },
          "callback": callback("sent") },
    ]})
}

/// The `webhook-signature` of a callback, checked against `secret` as a receiver would.
fn signed_with(r: &Received, secret: &str) -> bool {
    let header = |name: &str| {
        r.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("a whsec_ secret");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac key");
    mac.update(header("webhook-id").as_bytes());
    mac.update(b".");
    mac.update(header("webhook-timestamp").as_bytes());
    mac.update(b".");
    mac.update(&r.body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

/// The callbacks received so far, once there are at least `n`.
async fn callbacks(server: &Recorder, n: usize) -> Vec<Received> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got: Vec<Received> = server
            .received
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.path_and_query == "/hooks")
            .cloned()
            .collect();
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "{} of {n} callbacks", got.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn webhook_secret(stack: &Stack, acct: &Account, path: &str, method: Method) -> Value {
    let (status, body) = stack.call(acct, method, path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Every form a secret could take in a log line or a span: itself, base64 (both alphabets),
/// percent-encoded.
fn forms(secret: &str) -> Vec<String> {
    let mut all = vec![
        secret.to_owned(),
        STANDARD.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
    ];
    all.dedup();
    all
}

/// The lines of the log files in `dir`, with the file they came from.
fn log_lines(dir: &Path) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).expect("log dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("log file");
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        lines.extend(text.lines().map(|l| (name.clone(), l.to_owned())));
    }
    lines
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_the_logs_or_the_traces_of_a_full_run() {
    let carrier = Carrier::start().await;
    let server = recorder(reply).await;
    let collector = recorder(reply).await;
    let dir: PathBuf =
        std::env::temp_dir().join(format!("phlo-secrets-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("log dir");
    let otlp = format!("http://{}", collector.addr);
    let env = [
        ("RUST_LOG", "debug"),
        ("PHLO_CARRIER_URL", carrier.url.as_str()),
        ("PHLO_CARRIER_AUTH_ID", carrier.auth_id.as_str()),
        ("PHLO_CARRIER_AUTH_TOKEN", carrier.auth_token.as_str()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "200"),
    ];
    let mut stack = Stack::start_logged(1, &env, &dir).await;
    stack.spawn_callback(&[]);
    let acct = stack.account().await;

    // Wrong credentials, each of them a secret too.
    let wrong_token = format!("wrong-token-{}", uuid::Uuid::new_v4().simple());
    let wrong_admin = format!("wrong-admin-{}", uuid::Uuid::new_v4().simple());
    let forged = STANDARD.encode(format!("forged-{}", uuid::Uuid::new_v4().simple()));
    let r = stack
        .http
        .get(stack.url("/v1/phlo"))
        .basic_auth(&acct.auth_id, Some(&wrong_token))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    let r = stack
        .http
        .post(stack.url("/v1/accounts"))
        .bearer_auth(&wrong_admin)
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    let r = stack
        .http
        .post(stack.url("/v1/carrier/voice/answer"))
        .header("X-Plivo-Signature-V3", &forged)
        .header("X-Plivo-Signature-V3-Nonce", "12345")
        .form(&[
            ("CallUUID", "forged-call"),
            ("From", SENDER),
            ("To", CUSTOMER),
        ])
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 403, "a forged carrier signature is refused");

    // A run: the HTTP Request node with the user's credentials, an SMS through the carrier (its REST
    // API with Basic auth, its delivery report signed with the carrier token), signed callbacks.
    let user_token = format!("user-api-token-{}", uuid::Uuid::new_v4().simple());
    let phlo_id = stack
        .create_phlo(&acct, definition(&server, &user_token))
        .await;
    let r = stack
        .http
        .put(format!("{}/sim/numbers/{CUSTOMER}", carrier.url))
        .json(&json!({ "sms": "deliver" }))
        .send()
        .await
        .expect("script");
    assert!(r.status().is_success());
    let first = webhook_secret(&stack, &acct, "/v1/account/webhook-secret", Method::GET).await;
    let first_secret = first["webhook_secret"].as_str().expect("secret").to_owned();
    let run_id = stack
        .run(&acct, &phlo_id, json!({ "order_id": "42" }))
        .await;
    let run = stack.wait_run(&acct, &run_id, PATIENCE).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let lookup = server
        .received
        .lock()
        .expect("lock")
        .iter()
        .find(|r| r.path_and_query == "/orders")
        .cloned()
        .expect("the HTTP Request node's request");
    assert_eq!(
        lookup.headers["authorization"],
        format!("Bearer {user_token}").as_str()
    );
    let sent = callbacks(&server, 2).await;
    assert!(sent.iter().all(|r| signed_with(r, &first_secret)));

    // After a rotation, callbacks carry two signatures: the new secret's and the previous one's.
    let rotated = webhook_secret(
        &stack,
        &acct,
        "/v1/account/webhook-secret/rotate",
        Method::POST,
    )
    .await;
    let second_secret = rotated["webhook_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    assert_eq!(rotated["previous_webhook_secret"], first_secret.as_str());
    let run_id = stack
        .run(&acct, &phlo_id, json!({ "order_id": "43" }))
        .await;
    let run = stack.wait_run(&acct, &run_id, PATIENCE).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let sent = callbacks(&server, 4).await;
    for r in &sent[2..] {
        assert!(signed_with(r, &second_secret) && signed_with(r, &first_secret));
    }
    let carrier_signed = carrier_signatures(&carrier).await;

    // At rest, the secrets are sealed: the database holds neither.
    let pool = sqlx::PgPool::connect(&stack.db_url).await.expect("db");
    let (current, previous): (String, String) = sqlx::query_as(
        "SELECT webhook_secret, webhook_secret_previous FROM accounts WHERE auth_id = $1",
    )
    .bind(&acct.auth_id)
    .fetch_one(&pool)
    .await
    .expect("account row");
    pool.close().await;
    for stored in [&current, &previous] {
        assert!(stored.starts_with("sealed:v1:"), "{stored}");
        for s in [&first_secret, &second_secret] {
            assert!(!stored.contains(s.trim_start_matches("whsec_")));
        }
    }

    // The spans of the whole run are exported before the processes stop (periodic export).
    let exported = exports(&collector).await;
    stack.cleanup().await;

    let basic = |id: &str, token: &str| STANDARD.encode(format!("{id}:{token}"));
    let mut secrets: Vec<(&str, String)> = vec![
        ("the account's auth token", acct.token.clone()),
        (
            "the account's Basic header",
            basic(&acct.auth_id, &acct.token),
        ),
        ("a wrong auth token", wrong_token.clone()),
        ("a wrong Basic header", basic(&acct.auth_id, &wrong_token)),
        ("the operator token", ADMIN_TOKEN.to_owned()),
        ("a wrong operator token", wrong_admin.clone()),
        ("the first webhook secret", first_secret.clone()),
        ("the second webhook secret", second_secret.clone()),
        ("the carrier's auth token", carrier.auth_token.clone()),
        (
            "the runner's Basic header to the carrier",
            basic(&carrier.auth_id, &carrier.auth_token),
        ),
        ("a forged carrier signature", forged.clone()),
        ("the sealing key", SECRET_KEY.to_owned()),
        ("the HTTP Request node's token", user_token.clone()),
    ];
    for s in [&first_secret, &second_secret] {
        secrets.push((
            "a webhook secret's key",
            s.trim_start_matches("whsec_").to_owned(),
        ));
    }
    for r in &sent {
        for signature in r.headers["webhook-signature"]
            .to_str()
            .expect("ascii")
            .split(' ')
        {
            secrets.push((
                "a callback signature",
                signature.trim_start_matches("v1,").to_owned(),
            ));
        }
    }
    for signature in carrier_signed {
        secrets.push(("a carrier webhook signature", signature));
    }

    let lines = log_lines(&dir);
    for service in ["gateway.log", "worker.log", "callback.log"] {
        let debug = lines
            .iter()
            .filter(|(file, line)| file == service && line.contains("DEBUG"))
            .count();
        assert!(
            debug > 0,
            "{service} has no debug lines: is RUST_LOG=debug in effect?"
        );
    }
    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        for form in forms(secret) {
            for (file, line) in &lines {
                if line.contains(&form) {
                    leaks.push(format!("{what} in {file}: {line}"));
                }
            }
            if exported
                .iter()
                .any(|body| body.windows(form.len()).any(|w| w == form.as_bytes()))
            {
                leaks.push(format!("{what} in an exported span"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    println!(
        "searched {} log lines and {} OTLP exports ({} bytes) for {} secrets",
        lines.len(),
        exported.len(),
        exported.iter().map(Vec::len).sum::<usize>(),
        secrets.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `X-Plivo-Signature-V3` values the simulator sent with its webhooks (its request log).
async fn carrier_signatures(carrier: &Carrier) -> Vec<String> {
    let http = reqwest::Client::new();
    let messages: Value = http
        .get(format!("{}/sim/messages", carrier.url))
        .send()
        .await
        .expect("sim")
        .json()
        .await
        .expect("json");
    let mut found = Vec::new();
    collect_signatures(&messages, &mut found);
    found
}

fn collect_signatures(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k.to_ascii_lowercase().contains("signature")
                    && let Some(s) = v.as_str()
                {
                    out.extend(s.split(',').map(|s| s.trim().to_owned()));
                }
                collect_signatures(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_signatures(i, out)),
        _ => {}
    }
}

/// The OTLP export bodies received, once the gateway's spans are among them and exports have stopped
/// coming for a while (five export periods: everything the finished runs recorded is out).
async fn exports(collector: &Recorder) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + PATIENCE;
    let mut last = (0, Instant::now());
    loop {
        let bodies: Vec<Vec<u8>> = collector
            .received
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.path_and_query == "/v1/traces")
            .map(|r| r.body.clone())
            .collect();
        if bodies.len() != last.0 {
            last = (bodies.len(), Instant::now());
        }
        let has = |name: &[u8]| {
            bodies
                .iter()
                .any(|b| b.windows(name.len()).any(|w| w == name))
        };
        if has(b"http.request") && last.1.elapsed() > Duration::from_secs(1) {
            return bodies;
        }
        assert!(
            Instant::now() < deadline,
            "the expected spans were never exported ({} exports)",
            bodies.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
