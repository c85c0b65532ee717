//! The HTTP API's contract: accounts, tenant isolation, bad input.

use reqwest::Method;
use serde_json::json;

use crate::support::{ADMIN_TOKEN, Account, Stack, Target};

#[tokio::test(flavor = "multi_thread")]
async fn accounts_need_the_operator_token_and_look_like_plivos() {
    let mut stack = Stack::start(0).await;
    let r = stack
        .http
        .post(stack.url("/v1/accounts"))
        .bearer_auth("wrong")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("PHLO_ADMIN_TOKEN"),
        "{body}"
    );
    assert!(body["api_id"].is_string());

    let acct = stack.account().await;
    assert_eq!(acct.auth_id.len(), 20);
    assert!(acct.auth_id.starts_with("MA"));
    assert!(
        acct.auth_id[2..]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    );
    // The token is stored hashed: the database never sees it.
    let pool = phlo_store::connect(&stack.db_url, 1, 0).await.unwrap();
    let (hash,): (Vec<u8>,) = sqlx_query(&pool, &acct.auth_id).await;
    assert_eq!(hash.len(), 32);
    assert_ne!(hash, acct.token.as_bytes());
    let _ = ADMIN_TOKEN;
    stack.cleanup().await;
}

async fn sqlx_query(pool: &phlo_store::Pool, auth_id: &str) -> (Vec<u8>,) {
    let mut conn = pool.acquire().await.unwrap();
    let account = phlo_store::accounts::find_by_auth_id(&mut conn, auth_id)
        .await
        .unwrap()
        .unwrap();
    (account.token_hash,)
}

#[tokio::test(flavor = "multi_thread")]
async fn another_account_sees_nothing() {
    let mut stack = Stack::start(1).await;
    let a = stack.account().await;
    let b = stack.account().await;
    let phlo = json!({ "name": "mine", "nodes": [
        { "node_id": "11111111-0000-4000-8000-000000000000", "name": "Start", "type": "start" } ] });
    let phlo_id = stack.create_phlo(&a, phlo.clone()).await;
    let run_id = stack.run(&a, &phlo_id, json!({})).await;

    let routes = [
        (Method::GET, format!("/v1/phlo/{phlo_id}")),
        (Method::PUT, format!("/v1/phlo/{phlo_id}")),
        (Method::GET, format!("/v1/phlo/{phlo_id}/revisions")),
        (Method::GET, format!("/v1/phlo/{phlo_id}/revisions/1")),
        (Method::POST, format!("/v1/phlo/{phlo_id}/rollback")),
        (Method::GET, format!("/v1/phlo/{phlo_id}/counters")),
        (Method::GET, format!("/v1/phlo/{phlo_id}/runs/{run_id}")),
        (
            Method::POST,
            format!("/v1/account/{}/phlo/{phlo_id}", b.auth_id),
        ),
        (Method::GET, format!("/v1/runs/{run_id}")),
        (Method::POST, format!("/v1/runs/{run_id}/cancel")),
    ];
    for (method, path) in routes {
        let body = if method == Method::GET {
            None
        } else {
            Some(phlo.clone())
        };
        let (status, response) = stack.call(&b, method.clone(), &path, body).await;
        assert_eq!(status, 404, "{method} {path}: {response}");
        assert!(
            response["error"].as_str().unwrap().contains("not found"),
            "{response}"
        );
    }
    let (status, list) = stack.call(&b, Method::GET, "/v1/runs", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["objects"], json!([]));
    let (_, list) = stack.call(&b, Method::GET, "/v1/phlo", None).await;
    assert_eq!(list["objects"], json!([]));
    // A's own view is intact.
    let (status, _) = stack
        .call(&a, Method::GET, &format!("/v1/runs/{run_id}"), None)
        .await;
    assert_eq!(status, 200);
    stack.cleanup().await;
}

/// A run starts on the PHLO's current revision, also right after an update or a rollback through a
/// gateway that has just started runs of the previous one (it remembers the revision it saw, and the
/// start checks that guess against the PHLO), and its steps are that revision's nodes.
async fn runs_start_on_the_current_revision_after_an_update_or_a_rollback(target: Target) {
    let (mut stack, _sim, a) = target.start(&[]).await;
    let start = "11111111-0000-4000-8000-000000000000";
    let branch = "22222222-0000-4000-8000-000000000000";
    let v1 = json!({ "name": "versions", "nodes": [
        { "node_id": start, "name": "Start", "type": "start" } ] });
    let v2 = json!({ "name": "versions", "nodes": [
        { "node_id": start, "name": "Start", "type": "start",
          "transitions": { "api_request": branch } },
        { "node_id": branch, "name": "Which", "type": "branch",
          "options": { "lhs": "{{Start.http.params.x}}",
                       "conditions": [ { "alias": "one", "operation": "equals", "rhs": "1" } ] } } ] });
    let phlo_id = stack.create_phlo(&a, v1).await;
    assert_eq!(
        run_once(&stack, &a, &phlo_id).await,
        (1, vec!["Start".to_owned()])
    );
    assert_eq!(
        run_once(&stack, &a, &phlo_id).await,
        (1, vec!["Start".to_owned()])
    );

    let path = format!("/v1/phlo/{phlo_id}");
    let (status, body) = stack.call(&a, Method::PUT, &path, Some(v2)).await;
    assert_eq!(status, 200, "{body}");
    let both = vec!["Start".to_owned(), "Which".to_owned()];
    assert_eq!(run_once(&stack, &a, &phlo_id).await, (2, both.clone()));
    assert_eq!(run_once(&stack, &a, &phlo_id).await, (2, both));

    let rollback = format!("/v1/phlo/{phlo_id}/rollback");
    let (status, body) = stack
        .call(&a, Method::POST, &rollback, Some(json!({ "revision": 1 })))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, phlo) = stack.call(&a, Method::GET, &path, None).await;
    let current = phlo["revision"].as_i64().expect("revision");
    assert_eq!(
        run_once(&stack, &a, &phlo_id).await,
        (current, vec!["Start".to_owned()])
    );
    stack.cleanup().await;
}

crate::conformance!(runs_start_on_the_current_revision_after_an_update_or_a_rollback);

/// Runs `phlo_id` and returns its revision and the nodes its steps ran.
async fn run_once(stack: &Stack, a: &Account, phlo_id: &str) -> (i64, Vec<String>) {
    let run_id = stack.run(a, phlo_id, json!({ "x": "1" })).await;
    let run = stack
        .wait_run(a, &run_id, std::time::Duration::from_secs(20))
        .await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let nodes: Vec<String> = run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["node_name"].as_str().unwrap_or_default().to_owned())
        .collect();
    (run["revision"].as_i64().expect("revision"), nodes)
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_clear_4xx() {
    let mut stack = Stack::start(0).await;
    let acct = stack.account().await;
    let send = |method: Method, path: &str, body: &'static str| {
        stack
            .http
            .request(method, stack.url(path))
            .basic_auth(&acct.auth_id, Some(&acct.token))
            .header("content-type", "application/json")
            .body(body)
    };
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            send(Method::POST, "/v1/phlo", "{\"name\": "),
            400,
            "not valid JSON",
        ),
        (send(Method::POST, "/v1/phlo", "[1, 2]"), 400, "error"),
        (
            send(Method::POST, "/v1/phlo", "{\"name\": 5, \"nodes\": []}"),
            400,
            "problems",
        ),
        (
            send(Method::GET, "/v1/phlo/not-a-uuid", ""),
            404,
            "not found",
        ),
        // `%25` is a `%` once decoded: some clients escape it, some send `%` as is.
        (
            send(
                Method::PUT,
                "/v1/numbers/sip:a%2541@example.com",
                "{\"phlo_id\": \"00000000-0000-4000-8000-000000000000\"}",
            ),
            400,
            "cannot hold %-escapes",
        ),
        (
            send(
                Method::GET,
                "/v1/runs/00000000-0000-4000-8000-000000000000",
                "",
            ),
            404,
            "not found",
        ),
        (
            send(Method::GET, "/v1/runs?status=sleeping", ""),
            400,
            "status=sleeping",
        ),
        (
            send(Method::GET, "/v1/runs?from=yesterday", ""),
            400,
            "RFC 3339",
        ),
        (send(Method::GET, "/v1/runs?limit=1000", ""), 400, "limit"),
        (send(Method::DELETE, "/v1/runs", ""), 405, "not allowed"),
        (send(Method::GET, "/v1/nothing-here", ""), 404, "no route"),
    ];
    for (request, status, needle) in cases {
        let r = request.send().await.unwrap();
        let got = r.status().as_u16();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(got, status, "{body}");
        assert!(body["api_id"].is_string(), "{body}");
        assert!(
            body.to_string().contains(needle),
            "expected `{needle}` in {body}"
        );
    }
    // Over the body limit (1 MiB by default). The gateway answers before reading the rest and closes
    // the connection, so this request gets a client of its own: a pooled connection the server is
    // closing would fail whichever request took it next.
    let big = format!("{{\"name\": \"{}\"}}", "x".repeat(2 << 20));
    let r = reqwest::Client::new()
        .post(stack.url("/v1/phlo"))
        .basic_auth(&acct.auth_id, Some(&acct.token))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("PHLO_MAX_BODY_BYTES"),
        "{body}"
    );
    // No credentials, wrong credentials.
    let r = stack.http.get(stack.url("/v1/phlo")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = stack
        .http
        .get(stack.url("/v1/phlo"))
        .basic_auth(&acct.auth_id, Some("nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    stack.cleanup().await;
}

/// Found by `scripts/api-fuzz`: a payload number near the limits of a double (1.7976931348623157e308)
/// was accepted and stored, but Postgres renders it as a 309-digit integer, which serde_json read back
/// as out of range. The worker then dropped the run's first step for good (the run stayed active) and
/// every run list of the account answered 500. Parsed exactly (`float_roundtrip`), every double that
/// goes in comes back out.
#[tokio::test(flavor = "multi_thread")]
async fn payload_numbers_at_the_limits_of_a_double_survive_the_database() {
    let mut stack = Stack::start(1).await;
    let acct = stack.account().await;
    let phlo = json!({ "name": "numbers", "nodes": [
        { "node_id": "11111111-0000-4000-8000-00000000000f", "name": "Start", "type": "start" } ] });
    let phlo_id = stack.create_phlo(&acct, phlo).await;
    let payload = json!({
        "max": f64::MAX,
        "lowest": f64::MIN,
        "near_max": 1.79e308,
        "smallest": 5e-324,
        "subnormal": 2.225073858507203e-309,
        "tenth": 0.1,
    });
    let run_id = stack.run(&acct, &phlo_id, payload.clone()).await;
    let run = stack
        .wait_run(&acct, &run_id, std::time::Duration::from_secs(60))
        .await;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["trigger_details"]["params"], payload, "{run:#}");
    let (status, list) = stack.call(&acct, Method::GET, "/v1/runs", None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["objects"][0]["run_id"], run_id.as_str());
    stack.cleanup().await;
}

fn nul_in_response(_path: &str) -> (u16, &'static str, String) {
    (
        200,
        "application/json",
        json!({ "note": "a\u{0}b", "k\u{0}": 1 }).to_string(),
    )
}

crate::conformance!(an_http_response_with_nul_characters_is_stored_with_replacement_characters);

/// Postgres refuses U+0000 in `jsonb`, SQLite keeps it. The API refuses it in requests (400), but an
/// HTTP Request node's response is not ours to refuse: it used to fail the step for good on Postgres
/// (the run stayed active) and pass on SQLite. Both targets now store U+FFFD in its place.
async fn an_http_response_with_nul_characters_is_stored_with_replacement_characters(
    target: Target,
) {
    let server = crate::support::recorder(nul_in_response).await;
    let (mut stack, _sim, acct) = target.start(&[]).await;
    let phlo = json!({ "name": "nul", "nodes": [
        { "node_id": "11111111-0000-4000-8000-000000000001", "name": "Start", "type": "start",
          "transitions": { "api_request": "11111111-0000-4000-8000-000000000002" } },
        { "node_id": "11111111-0000-4000-8000-000000000002", "name": "HTTP_Request_1", "type": "http_request",
          "options": { "method": "GET", "url": format!("http://127.0.0.1:{}/x", server.addr.port()),
                       "timeout": 5, "response": { "content_type": "application/json" } } } ] });
    let phlo_id = stack.create_phlo(&acct, phlo).await;
    let run_id = stack.run(&acct, &phlo_id, json!({})).await;
    let run = stack
        .wait_run(&acct, &run_id, std::time::Duration::from_secs(60))
        .await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let http = crate::support::done_step(&run, "HTTP_Request_1");
    assert_eq!(http["state"], "success", "{http:#}");
    assert_eq!(
        http["variables"]["response"]["body"],
        json!({ "note": "a\u{FFFD}b", "k\u{FFFD}": 1 })
    );
    stack.cleanup().await;
}
