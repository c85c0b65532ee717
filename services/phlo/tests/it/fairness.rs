//! Fair use: per-account rate limits (429 with `Retry-After`, per-account overrides, carrier webhooks
//! exempt), admission (runs beyond an account's cap wait `queued` and start as others end), and the
//! flood: account A fires 10,000 runs while account B runs 100, and B is not starved.
//!
//! The flood asserts outcomes (every run of both accounts completed exactly once, from Postgres) and one
//! deliberately loose latency bound (see [`a_flood_of_runs_does_not_starve_another_account`]); the
//! figures are printed (`--nocapture`).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::chaos::{LOAD, fire, scalar, settle};
use crate::support::{ADMIN_TOKEN, Account, Stack, silent_server};

const START: &str = "fa170000-0000-4000-8000-000000000000";
const COUNTER: &str = "fa170000-0000-4000-8000-000000000001";
const BRANCH: &str = "fa170000-0000-4000-8000-000000000002";
const WAIT: &str = "fa170000-0000-4000-8000-000000000003";

/// Runs account A fires in the flood.
const FLOOD: usize = 10_000;
/// Runs account B fires meanwhile, `B_EVERY` apart.
const B_RUNS: usize = 100;
const B_EVERY: Duration = Duration::from_millis(50);

/// Start → Counter (phlo scope) → Branch: three steps, no waits, no network. An incoming SMS starts it
/// too.
fn short_phlo() -> Value {
    json!({ "name": "short", "nodes": [
        { "node_id": START, "name": "Start", "type": "start",
          "transitions": { "api_request": COUNTER, "incoming_message": COUNTER } },
        { "node_id": COUNTER, "name": "Counter_1", "type": "counter",
          "options": { "max_count": 1_000_000_000, "scope": "phlo" },
          "transitions": { "count_not_reached": BRANCH } },
        { "node_id": BRANCH, "name": "Branch_1", "type": "branch",
          "options": { "lhs": "{{Counter_1.count}}",
                       "conditions": [{ "alias": "counted", "operation": "is_not_empty" }] } },
    ]})
}

/// Start → an HTTP Request to a server that never answers: the run stays active for a minute.
fn waiting_phlo(port: u16) -> Value {
    json!({ "name": "waits", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "api_request": WAIT } },
        { "node_id": WAIT, "name": "HTTP_Request_1", "type": "http_request",
          "options": { "method": "GET", "url": format!("http://127.0.0.1:{port}/"), "timeout": 60 } },
    ]})
}

/// `PUT /v1/accounts/{auth_id}/limits` as the operator.
async fn set_limits(stack: &Stack, acct: &Account, limits: Value) -> (u16, Value) {
    let r = stack
        .http
        .put(stack.url(&format!("/v1/accounts/{}/limits", acct.auth_id)))
        .bearer_auth(ADMIN_TOKEN)
        .json(&limits)
        .send()
        .await
        .expect("set limits");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The gateway's answer to the carrier's webhook for an SMS to `to`.
async fn incoming_sms(stack: &Stack, to: &str) -> u16 {
    stack
        .http
        .post(stack.url("/v1/carrier/sms/inbound"))
        .form(&[
            ("From", "+14155550100"),
            ("To", to),
            ("Text", "hi"),
            ("MessageUUID", &Uuid::new_v4().to_string()),
        ])
        .send()
        .await
        .expect("inbound SMS")
        .status()
        .as_u16()
}

/// A request's status, `Retry-After` header and JSON body.
async fn send(req: reqwest::RequestBuilder) -> (u16, Option<String>, Value) {
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry_after, r.json().await.unwrap_or(Value::Null))
}

fn run_request(stack: &Stack, acct: &Account, phlo_id: &str) -> reqwest::RequestBuilder {
    stack
        .http
        .post(stack.url(&format!("/v1/account/{}/phlo/{phlo_id}", acct.auth_id)))
        .basic_auth(&acct.auth_id, Some(&acct.token))
        .json(&json!({}))
}

/// A 429 as the issue asks: `Retry-After` in whole seconds (≥ 1) and the `{api_id, error}` body.
fn assert_limited((status, retry_after, body): &(u16, Option<String>, Value), budget: &str) -> u64 {
    assert_eq!(*status, 429, "{body}");
    let secs: u64 = retry_after
        .as_deref()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("Retry-After is not whole seconds: {retry_after:?}"));
    assert!(secs >= 1, "Retry-After {secs}");
    assert!(
        body["api_id"]
            .as_str()
            .is_some_and(|id| Uuid::parse_str(id).is_ok()),
        "{body}"
    );
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("rate limit exceeded") && error.contains(budget),
        "{body}"
    );
    secs
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limits_answer_429_with_retry_after_per_account() {
    // Budgets that do not refill during the test (one request per 100 s): exact counts.
    let mut stack = Stack::start_with(
        1,
        &[
            ("PHLO_RATE_API_PER_SEC", "0.01"),
            ("PHLO_RATE_API_BURST", "6"),
            ("PHLO_RATE_RUNS_PER_SEC", "0.01"),
            ("PHLO_RATE_RUNS_BURST", "2"),
        ],
    )
    .await;
    let a = stack.account().await;
    let b = stack.account().await;
    let phlo = stack.create_phlo(&a, short_phlo()).await; // A: 1 API request

    // An incoming SMS to A's number must start runs however spent A's budgets are.
    let (status, body) = stack
        .call(
            &a,
            Method::PUT,
            "/v1/numbers/+14155550123",
            Some(json!({ "phlo_id": phlo })),
        )
        .await; // A: 2
    assert_eq!(status, 200, "{body}");

    // New runs: a burst of 2, then 429 naming the budget.
    for _ in 0..2 {
        let (status, _, body) = send(run_request(&stack, &a, &phlo)).await;
        assert_eq!(status, 201, "{body}");
    } // A: 4
    let refused = send(run_request(&stack, &a, &phlo)).await; // A: 5
    let secs = assert_limited(&refused, "new runs");
    assert!(secs > 50, "one run per 100 s: Retry-After {secs}");

    // API requests: the 6th passes, the 7th does not, whatever the route.
    let (status, body) = stack.call(&a, Method::GET, "/v1/runs", None).await; // A: 6
    assert_eq!(status, 200, "{body}");
    let refused = send(
        stack
            .http
            .get(stack.url("/v1/runs"))
            .basic_auth(&a.auth_id, Some(&a.token)),
    )
    .await;
    assert_limited(&refused, "API requests");
    let refused = send(run_request(&stack, &a, &phlo)).await;
    assert_limited(&refused, "API requests");

    // Per account: B's budget is its own. Wrong credentials are 401 and spend nobody's budget, even
    // when they name an account.
    for _ in 0..10 {
        let (status, _, body) = send(
            stack
                .http
                .get(stack.url("/v1/runs"))
                .basic_auth(&b.auth_id, Some("not-the-token")),
        )
        .await;
        assert_eq!(status, 401, "{body}");
    }
    for i in 0..6 {
        let (status, body) = stack.call(&b, Method::GET, "/v1/runs", None).await;
        assert_eq!(status, 200, "B's request {i}: {body}");
    }
    assert_limited(
        &send(
            stack
                .http
                .get(stack.url("/v1/runs"))
                .basic_auth(&b.auth_id, Some(&b.token)),
        )
        .await,
        "API requests",
    );
    // Unauthenticated routes are not an account's: the operator's and the public ones still answer.
    let r = stack.http.get(stack.url("/v1/openapi.json")).send().await;
    assert_eq!(r.expect("openapi").status(), 200);

    // Carrier webhooks are never limited: 20 incoming SMS to A's number all start runs of A.
    let before = runs_of(&stack, &a).await;
    for i in 0..20 {
        assert_eq!(
            incoming_sms(&stack, "+14155550123").await,
            200,
            "incoming SMS {i}"
        );
    }
    assert_eq!(runs_of(&stack, &a).await, before + 20);

    // The operator lifts A's limits: the next request passes at once on this gateway.
    let (status, limits) = set_limits(
        &stack,
        &a,
        json!({ "api_per_sec": 0, "runs_per_sec": 0, "max_active_runs": 500 }),
    )
    .await;
    assert_eq!(status, 200, "{limits}");
    assert_eq!(limits["overrides"]["api_per_sec"], 0.0);
    assert_eq!(limits["overrides"]["api_burst"], Value::Null);
    assert_eq!(limits["effective"]["api_burst"], 6);
    assert_eq!(limits["effective"]["runs_burst"], 2);
    assert_eq!(limits["effective"]["max_active_runs"], 500);
    for _ in 0..5 {
        let (status, _, body) = send(run_request(&stack, &a, &phlo)).await;
        assert_eq!(status, 201, "{body}");
    }
    // The admin API says what is wrong, and where.
    let (status, body) = set_limits(&stack, &a, json!({ "runs_per_second": 5 })).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`runs_per_second` is not a limit"),
        "{body}"
    );
    let (status, body) = set_limits(&stack, &a, json!({ "max_active_runs": 0 })).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("`max_active_runs` must be a whole number from 1"),
        "{body}"
    );
    let ghost = Account {
        auth_id: "MANOSUCHACCOUNT00000".into(),
        token: String::new(),
    };
    assert_eq!(set_limits(&stack, &ghost, json!({})).await.0, 404);
    let r = stack
        .http
        .get(stack.url(&format!("/v1/accounts/{}/limits", a.auth_id)))
        .basic_auth(&a.auth_id, Some(&a.token))
        .send()
        .await
        .expect("limits as the account");
    assert_eq!(r.status(), 401, "only the operator reads limits");
    stack.cleanup().await;
}

/// A replica works on at most `PHLO_GATEWAY_MAX_IN_FLIGHT` API requests at once. One more is answered
/// 503 with `Retry-After` before it does any work; carrier webhooks are not counted and still pass;
/// the slot comes back when the slow request ends.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_gateway_sheds_api_requests_but_never_carrier_webhooks() {
    let mut stack = Stack::start_with(1, &[("PHLO_GATEWAY_MAX_IN_FLIGHT", "1")]).await;
    let a = stack.account().await;
    let phlo = stack.create_phlo(&a, short_phlo()).await;
    let (status, body) = stack
        .call(
            &a,
            Method::PUT,
            "/v1/numbers/+14155550124",
            Some(json!({ "phlo_id": phlo })),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // One slow request holds the only slot: listing callbacks waits for a table lock.
    let pool = PgPool::connect(&stack.db_url).await.expect("db");
    let mut lock = pool.begin().await.expect("begin");
    sqlx::query("LOCK TABLE callback_deliveries IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .expect("lock");
    let slow = tokio::spawn(send(
        stack
            .http
            .get(stack.url("/v1/callbacks"))
            .basic_auth(&a.auth_id, Some(&a.token)),
    ));
    // Wait until it holds the slot: its listing query waits for the lock (only it lists by change_xid).
    let deadline = Instant::now() + Duration::from_secs(20);
    while scalar(
        &pool,
        "SELECT count(*) FROM pg_stat_activity
         WHERE wait_event_type = 'Lock' AND query LIKE '%ORDER BY change_xid DESC%'",
    )
    .await
        == 0
    {
        assert!(!slow.is_finished(), "the slow request ended early");
        assert!(
            Instant::now() < deadline,
            "the slow request never reached Postgres"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (status, retry_after, body) = send(
        stack
            .http
            .get(stack.url("/v1/phlo"))
            .basic_auth(&a.auth_id, Some(&a.token)),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("PHLO_GATEWAY_MAX_IN_FLIGHT"), "{body}");
    assert!(body["api_id"].as_str().is_some(), "{body}");
    // Nothing was done for it: a refused run request starts no run.
    let runs_before = runs_of(&stack, &a).await;
    let (status, _, body) = send(run_request(&stack, &a, &phlo)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(runs_of(&stack, &a).await, runs_before);
    // Health checks and carrier webhooks are outside the bound.
    let r = stack
        .http
        .get(stack.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(r.status(), 200);
    assert_eq!(
        incoming_sms(&stack, "+14155550124").await,
        200,
        "an incoming SMS while the API is full"
    );
    assert_eq!(runs_of(&stack, &a).await, runs_before + 1);

    lock.commit().await.expect("unlock");
    let (status, _, body) = slow.await.expect("slow request");
    assert_eq!(status, 200, "{body}");
    let (status, body) = stack.call(&a, Method::GET, "/v1/phlo", None).await;
    assert_eq!(status, 200, "the slot came back: {body}");
    pool.close().await;
    stack.cleanup().await;
}

/// How many runs the account has, as the database says.
async fn runs_of(stack: &Stack, acct: &Account) -> i64 {
    let pool = sqlx::PgPool::connect(&stack.db_url).await.expect("pool");
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM runs r JOIN accounts a ON a.id = r.account_id WHERE a.auth_id = $1",
    )
    .bind(&acct.auth_id)
    .fetch_one(&pool)
    .await
    .expect("count");
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_beyond_the_cap_wait_queued_and_start_as_others_end() {
    let hang = silent_server().await;
    let mut stack = Stack::start_with(1, &[("PHLO_MAX_ACTIVE_RUNS", "1")]).await;
    let acct = stack.account().await;
    let phlo = stack.create_phlo(&acct, waiting_phlo(hang.port())).await;
    let path = format!("/v1/account/{}/phlo/{phlo}", acct.auth_id);

    let (status, first) = stack.call(&acct, Method::POST, &path, None).await;
    assert_eq!(
        (status, &first["status"]),
        (201, &json!("active")),
        "{first}"
    );
    let mut queued = Vec::new();
    for _ in 0..3 {
        let (status, body) = stack.call(&acct, Method::POST, &path, None).await;
        assert_eq!((status, &body["status"]), (201, &json!("queued")), "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("queued"),
            "{body}"
        );
        queued.push(body["phlo_run_id"].as_str().unwrap().to_owned());
    }
    let first = first["phlo_run_id"].as_str().unwrap().to_owned();
    let run = stack.get_run(&acct, &queued[0]).await;
    assert_eq!(run["status"], "queued");
    assert_eq!(run["steps"], json!([]), "a queued run has not run: {run:#}");
    assert_eq!(run["tokens"], json!([]));
    let (_, list) = stack
        .call(&acct, Method::GET, "/v1/runs?status=queued", None)
        .await;
    let listed: HashSet<&str> = list["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, queued.iter().map(String::as_str).collect());

    // An incoming call is never queued, even at the cap: the caller is on the line.
    let (status, body) = stack
        .call(
            &acct,
            Method::PUT,
            "/v1/numbers/+14155550124",
            Some(json!({ "phlo_id": phlo })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let r = stack
        .http
        .post(stack.url("/v1/carrier/voice/answer"))
        .form(&[
            ("CallUUID", Uuid::new_v4().to_string().as_str()),
            ("From", "+14155550100"),
            ("To", "+14155550124"),
            ("Direction", "inbound"),
            ("CallStatus", "in-progress"),
        ])
        .send()
        .await
        .expect("answer webhook");
    assert_eq!(r.status(), 200);
    let (_, calls) = stack
        .call(&acct, Method::GET, "/v1/runs?trigger=call", None)
        .await;
    let call_run = calls["objects"][0]["run_id"]
        .as_str()
        .expect("the call's run");
    let run = stack
        .wait_run(&acct, call_run, Duration::from_secs(30))
        .await;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["steps"][0]["event"], "trigger", "{run:#}");

    // A queued run can be cancelled; it frees nothing, so the next one still waits.
    let (status, body) = stack
        .call(
            &acct,
            Method::POST,
            &format!("/v1/runs/{}/cancel", queued[2]),
            None,
        )
        .await;
    assert_eq!((status, &body["cancelled"]), (200, &json!(true)), "{body}");
    assert_eq!(body["status"], "cancelled");
    assert_eq!(stack.get_run(&acct, &queued[0]).await["status"], "queued");

    // Ending the active run admits the oldest queued one, which runs (it parks on its request).
    let (status, _) = stack
        .call(
            &acct,
            Method::POST,
            &format!("/v1/runs/{first}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let run = wait_for(&stack, &acct, &queued[0], |r| {
        r["tokens"][0]["status"] == "waiting"
    })
    .await;
    assert_eq!(run["status"], "active");
    assert_eq!(run["steps"][0]["node_name"], "Start", "{run:#}");
    assert_eq!(stack.get_run(&acct, &queued[1]).await["status"], "queued");

    // Raising the account's cap admits the rest without any run ending: the reconciler's pass.
    let (status, body) = set_limits(&stack, &acct, json!({ "max_active_runs": 5 })).await;
    assert_eq!(status, 200, "{body}");
    wait_for(&stack, &acct, &queued[1], |r| r["status"] == "active").await;

    for id in &queued[..2] {
        let (status, _) = stack
            .call(&acct, Method::POST, &format!("/v1/runs/{id}/cancel"), None)
            .await;
        assert_eq!(status, 200);
    }
    stack.cleanup().await;
}

async fn wait_for(
    stack: &Stack,
    acct: &Account,
    run_id: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = stack.get_run(acct, run_id).await;
        if ready(&run) {
            return run;
        }
        assert!(Instant::now() < deadline, "run never got there: {run:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Account A fires 10,000 short runs as fast as the API takes them (its rate limits lifted); account B,
/// at the default limits, fires 100 runs 50 ms apart meanwhile. Every run of both completes exactly once
/// (checked in Postgres), and B's trigger → completed latency stays far below what a FIFO queue would
/// give it.
///
/// The bound: B's p99 under a quarter of the time A's flood takes to drain. Without admission, B's run
/// triggered at t waits behind every step of A's runs outstanding at t; across the flood that is most of
/// the drain time (the figures print that estimate). With admission, at most the cap's worth of A's
/// messages is ahead of it. The ratio measured is far from the bound, so a loaded machine does not
/// make it flake. `PHLO_MAX_ACTIVE_RUNS=1000000` in the test's environment lifts the cap (the
/// processes inherit it): the same flood then measures plain FIFO, and this assertion fails.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_runs_does_not_starve_another_account() {
    let _one_at_a_time = LOAD.lock().await;
    // The production defaults for rates (support.rs lifts them for the other load tests).
    let mut stack = Stack::start_with(
        2,
        &[
            ("PHLO_RATE_API_PER_SEC", "100"),
            ("PHLO_RATE_RUNS_PER_SEC", "20"),
            ("RUST_LOG", "error"),
        ],
    )
    .await;
    let a = stack.account().await;
    let b = stack.account().await;
    let (status, body) =
        set_limits(&stack, &a, json!({ "api_per_sec": 0, "runs_per_sec": 0 })).await;
    assert_eq!(status, 200, "{body}");
    let phlo_a = stack.create_phlo(&a, short_phlo()).await;
    let phlo_b = stack.create_phlo(&b, short_phlo()).await;
    let pool = sqlx::PgPool::connect(&stack.db_url).await.expect("pool");

    let started = Instant::now();
    let answered = Arc::new(AtomicUsize::new(0));
    let flood = fire(&stack, &a, &phlo_a, FLOOD, answered.clone());
    // B starts once A's backlog is deep: 1,000 of its runs triggered and not ended (queued behind its
    // cap, or, when the cap is lifted to measure plain FIFO, all in the step queue).
    let deadline = Instant::now() + Duration::from_secs(120);
    while scalar(
        &pool,
        "SELECT count(*) FROM runs WHERE status IN ('queued', 'active')",
    )
    .await
        < 1_000
    {
        assert!(
            Instant::now() < deadline,
            "A's flood never had 1,000 runs pending"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let b_started = started.elapsed();
    let mut b_runs = Vec::with_capacity(B_RUNS);
    // A's active runs, sampled as B fires: the cap holds (up to the starts racing for a free slot).
    let mut a_active_peak = 0;
    for _ in 0..B_RUNS {
        let (status, _, body) = send(run_request(&stack, &b, &phlo_b)).await;
        assert_eq!((status, &body["status"]), (201, &json!("active")), "{body}");
        b_runs.push(Uuid::parse_str(body["phlo_run_id"].as_str().unwrap()).unwrap());
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM runs WHERE status = 'active' AND phlo_id = $1::uuid",
        )
        .bind(&phlo_a)
        .fetch_one(&pool)
        .await
        .expect("A's active runs");
        a_active_peak = a_active_peak.max(n);
        tokio::time::sleep(B_EVERY).await;
    }
    let b_fired = started.elapsed();
    let fired = flood.await.expect("flood");
    assert!(
        fired.failed.is_empty(),
        "A's run requests failed: {:?}",
        &fired.failed[..fired.failed.len().min(5)]
    );
    assert_eq!(fired.created.len(), FLOOD);
    let settled = settle(&pool).await;

    // Exactly once, from Postgres: every run of both completed with its three steps, one row each, and
    // each PHLO's counter counted each of its runs once.
    let phlo_a = Uuid::parse_str(&phlo_a).unwrap();
    let phlo_b = Uuid::parse_str(&phlo_b).unwrap();
    check_exactly_once(&pool, phlo_a, &fired.created).await;
    check_exactly_once(&pool, phlo_b, &b_runs).await;

    let f = figures(&pool, phlo_a, phlo_b).await;
    println!(
        "flood: A fired {FLOOD} runs in {:.1?} ({:.0} runs/s accepted, slowest answer {:.1?}); B fired {B_RUNS} from {b_started:.1?} to {b_fired:.1?}; all settled {settled:.1?} after A's last answer",
        fired.elapsed,
        FLOOD as f64 / fired.elapsed.as_secs_f64(),
        fired.slowest,
    );
    println!(
        "  A drained in {:.1} s (first trigger → last completion): {:.0} runs/s, {:.0} steps/s (both accounts)",
        f.a_drain, f.a_runs_per_sec, f.steps_per_sec
    );
    println!(
        "  B trigger → completed (runs.created_at → ended_at): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        f.b_p50 * 1e3,
        f.b_p99 * 1e3,
        f.b_max * 1e3
    );
    println!(
        "  FIFO without admission (estimate): B's run would wait behind A's outstanding steps: median {:.1} s, max {:.1} s",
        f.fifo_median, f.fifo_max
    );
    let cap = std::env::var("PHLO_MAX_ACTIVE_RUNS").unwrap_or_else(|_| "200".into());
    println!("  A's active runs while B fired: at most {a_active_peak} (cap {cap})");
    let bound = f.a_drain / 4.0;
    println!("  bound: B p99 < A's drain / 4 = {bound:.1} s");
    assert!(
        f.b_p99 < bound,
        "B's p99 {:.1} s is not under a quarter of A's drain ({:.1} s): B was starved",
        f.b_p99,
        f.a_drain
    );
    pool.close().await;
    stack.cleanup().await;
}

/// Every run of `phlo_id` (and exactly those in `created`) completed with the three steps of
/// [`short_phlo`], one step row each; the PHLO's counter counted each run once.
async fn check_exactly_once(pool: &PgPool, phlo_id: Uuid, created: &[Uuid]) {
    let runs: Vec<(Uuid, String, i32)> =
        sqlx::query_as("SELECT id, status, steps FROM runs WHERE phlo_id = $1")
            .bind(phlo_id)
            .fetch_all(pool)
            .await
            .expect("runs");
    let ids: HashSet<Uuid> = runs.iter().map(|r| r.0).collect();
    let want: HashSet<Uuid> = created.iter().copied().collect();
    assert_eq!(want.len(), created.len(), "a run id was returned twice");
    assert_eq!(ids, want, "runs in Postgres vs runs the API created");
    let wrong: Vec<_> = runs
        .iter()
        .filter(|(_, status, steps)| status != "completed" || *steps != 3)
        .take(5)
        .collect();
    assert!(
        wrong.is_empty(),
        "runs not completed with 3 steps: {wrong:?}"
    );
    let journals: Vec<(Uuid, Vec<String>)> = sqlx::query_as(
        "SELECT s.run_id, array_agg(s.node_name ORDER BY s.token, s.seq) FROM steps s
         JOIN runs r ON r.id = s.run_id WHERE r.phlo_id = $1 GROUP BY s.run_id",
    )
    .bind(phlo_id)
    .fetch_all(pool)
    .await
    .expect("steps");
    assert_eq!(journals.len(), created.len(), "runs with steps");
    let expected = ["Start", "Counter_1", "Branch_1"];
    let bad: Vec<_> = journals
        .iter()
        .filter(|(_, j)| j.iter().map(String::as_str).ne(expected))
        .take(5)
        .collect();
    assert!(bad.is_empty(), "journals other than {expected:?}: {bad:?}");
    let mut counts: Vec<(i64,)> = sqlx::query_as(
        "SELECT (s.variables->>'count')::bigint FROM steps s JOIN runs r ON r.id = s.run_id
         WHERE r.phlo_id = $1 AND s.node_name = 'Counter_1'",
    )
    .bind(phlo_id)
    .fetch_all(pool)
    .await
    .expect("counts");
    counts.sort_unstable();
    assert!(
        counts.iter().map(|(c,)| *c).eq(1..=created.len() as i64),
        "the counter saw counts other than 1..={}",
        created.len()
    );
}

struct Figures {
    a_drain: f64,
    a_runs_per_sec: f64,
    steps_per_sec: f64,
    b_p50: f64,
    b_p99: f64,
    b_max: f64,
    fifo_median: f64,
    fifo_max: f64,
}

/// The flood's figures, from the rows' own timestamps (database clock: one clock for every process).
async fn figures(pool: &PgPool, phlo_a: Uuid, phlo_b: Uuid) -> Figures {
    let (a_drain, a_runs): (f64, i64) = sqlx::query_as(
        "SELECT extract(epoch FROM max(ended_at) - min(created_at))::float8, count(*)
         FROM runs WHERE phlo_id = $1",
    )
    .bind(phlo_a)
    .fetch_one(pool)
    .await
    .expect("A's drain");
    let (steps,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM steps s JOIN runs r ON r.id = s.run_id
         WHERE r.phlo_id = ANY($1)",
    )
    .bind(vec![phlo_a, phlo_b])
    .fetch_one(pool)
    .await
    .expect("steps");
    let mut b: Vec<(f64,)> = sqlx::query_as(
        "SELECT extract(epoch FROM ended_at - created_at)::float8 FROM runs WHERE phlo_id = $1",
    )
    .bind(phlo_b)
    .fetch_all(pool)
    .await
    .expect("B's latencies");
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    let pct = |p: f64| b[((b.len() as f64 * p).ceil() as usize).clamp(1, b.len()) - 1].0;
    let steps_per_sec = steps as f64 / a_drain;
    // FIFO: everything A had triggered and not finished when B's run was triggered is ahead of it.
    let mut ahead: Vec<(i64,)> = sqlx::query_as(
        "SELECT (SELECT count(*) FROM runs a WHERE a.phlo_id = $1
                 AND a.created_at <= b.created_at AND a.ended_at > b.created_at)
         FROM runs b WHERE b.phlo_id = $2",
    )
    .bind(phlo_a)
    .bind(phlo_b)
    .fetch_all(pool)
    .await
    .expect("A's backlog at B's triggers");
    ahead.sort_unstable();
    let fifo = |n: i64| (n * 3) as f64 / steps_per_sec;
    Figures {
        a_drain,
        a_runs_per_sec: a_runs as f64 / a_drain,
        steps_per_sec,
        b_p50: pct(0.50),
        b_p99: pct(0.99),
        b_max: pct(1.0),
        fifo_median: fifo(ahead[ahead.len() / 2].0),
        fifo_max: fifo(ahead[ahead.len() - 1].0),
    }
}
