//! HTTP Request: the request it asks for (rendered), the answer's states and variables, the 400 rule.

use phlo_flow::effect::{HttpAuth, HttpBody, HttpRequest};
use phlo_flow::event::HttpResult;
use phlo_flow::{Effect, Event, Phlo, WaitOn};
use serde_json::{Value, json};

use crate::support::{
    ctx, done, enter_and_wait, error_of, expected_callback, params_ctx, phlo_with,
    phlo_with_callback, run,
};

const STATES: &[&str] = &["success", "failed"];

fn http_phlo(options: Value) -> Phlo {
    phlo_with("http_request", "HTTP_Request_1", options, STATES)
}

fn params() -> Value {
    json!({ "id": "A-17", "q": "red shoes & socks", "name": "Ada", "user": "ada", "token": "tok-1" })
}

fn answer(status: u16, content_type: Option<&str>, body: &str) -> Event {
    Event::Http(HttpResult::Response {
        status,
        content_type: content_type.map(str::to_owned),
        headers: vec![],
        body: body.into(),
        truncated: false,
    })
}

#[test]
fn post_renders_url_params_headers_json_body_and_basic_auth() {
    let phlo = http_phlo(json!({
        "method": "post",
        "url": "https://api.example.com/orders/{{Start.http.params.id}}?v=1",
        "params": { "q": "{{Start.http.params.q}}", "page": "2" },
        "headers": { "X-Trace": "t-{{Start.http.params.id}}", "Accept": "application/json" },
        "body": { "type": "json", "content": {
            "name": "{{Start.http.params.name}}", "qty": 5, "gift": true, "note": null,
            "tags": ["a", "{{Start.http.params.q}}"], "nested": { "id": "{{Start.http.params.id}}" } } },
        "auth": { "type": "basic", "username": "{{Start.http.params.user}}", "password": "s3cret" },
        "timeout": 20,
        "max_response_bytes": 2048,
    }));
    let (wait, effects) = enter_and_wait(&phlo, &params_ctx(params()));
    let url = "https://api.example.com/orders/A-17?v=1&q=red+shoes+%26+socks&page=2";
    let expected = HttpRequest {
        method: "POST".into(),
        url: url.into(),
        headers: vec![
            ("X-Trace".into(), "t-A-17".into()),
            ("Accept".into(), "application/json".into()),
        ],
        body: Some(HttpBody::Json {
            value: json!({ "name": "Ada", "qty": 5, "gift": true, "note": null,
                           "tags": ["a", "red shoes & socks"], "nested": { "id": "A-17" } }),
        }),
        auth: HttpAuth::Basic {
            username: "ada".into(),
            password: "s3cret".into(),
        },
        timeout_secs: 20,
        max_response_bytes: 2048,
    };
    assert_eq!(effects, vec![Effect::Http(expected)]);
    assert_eq!(wait.on, WaitOn::Http);
    assert_eq!(wait.timeout_secs, 2 * 20 + 120);
    assert_eq!(
        Value::Object(wait.variables),
        json!({ "url": url, "method": "POST" })
    );
}

fn oauth2(client_id: &str, scope: Option<&str>) -> HttpAuth {
    HttpAuth::Oauth2 {
        token_url: "https://auth.example.com/token".into(),
        client_id: client_id.into(),
        client_secret: "cs".into(),
        scope: scope.map(str::to_owned),
    }
}

#[test]
fn bodies_auth_and_defaults() {
    let form = json!({ "a": "{{Start.http.params.name}}", "b": "x y" });
    let fields = vec![
        ("a".to_owned(), "Ada".to_owned()),
        ("b".to_owned(), "x y".to_owned()),
    ];
    let oauth = |id: &str, scope: &str| {
        json!({ "type": "oauth2", "token_url": "https://auth.example.com/token",
                                                "client_id": id, "client_secret": "cs", "scope": scope })
    };
    #[rustfmt::skip]
    let cases = [
        // (extra options, method, body, auth)
        (json!({}), "GET", None, HttpAuth::None),
        (json!({ "method": "put", "body": { "type": "form_urlencoded", "content": form },
                 "auth": { "type": "bearer", "token": "{{Start.http.params.token}}" } }),
         "PUT", Some(HttpBody::FormUrlencoded { fields: fields.clone() }), HttpAuth::Bearer { token: "tok-1".into() }),
        (json!({ "method": "DELETE", "body": { "type": "form-data", "content": form },
                 "auth": oauth("{{Start.http.params.user}}", "orders:read") }),
         "DELETE", Some(HttpBody::FormData { fields }), oauth2("ada", Some("orders:read"))),
        // No body type means JSON; a scope that renders empty is no scope.
        (json!({ "method": "post", "body": { "content": { "k": "{{Start.http.params.q}}" } },
                 "auth": oauth("id", "{{Start.http.params.none}}") }),
         "POST", Some(HttpBody::Json { value: json!({ "k": "red shoes & socks" }) }), oauth2("id", None)),
    ];
    for (extra, method, body, auth) in cases {
        let mut options = json!({ "method": "get", "url": "https://api.example.com/x?fixed=1" });
        options
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (wait, effects) = enter_and_wait(&http_phlo(options), &params_ctx(params()));
        let expected = HttpRequest {
            method: method.into(),
            url: "https://api.example.com/x?fixed=1".into(),
            headers: vec![],
            body,
            auth,
            timeout_secs: 10,
            max_response_bytes: 1 << 20,
        };
        assert_eq!(effects, vec![Effect::Http(expected)], "{method}");
        assert_eq!(wait.timeout_secs, 2 * 10 + 120);
    }
}

#[test]
fn status_codes_and_transport_errors_decide_the_state() {
    let phlo = http_phlo(json!({ "method": "get", "url": "https://api.example.com/x" }));
    let c = ctx(json!({}));
    #[rustfmt::skip]
    let cases = [
        // (status, content type, body, state, parsed body, error)
        (200, Some("application/json"), r#"{"order":{"id":"A-17"}}"#, "success", json!({ "order": { "id": "A-17" } }), None),
        (201, Some("text/plain"), "created", "success", json!("created"), None),
        (204, None, "", "success", json!(""), None),
        (299, Some("application/problem+json"), r#"{"a":1}"#, "success", json!({ "a": 1 }), None),
        (300, Some("text/html"), "<p>moved</p>", "failed", json!("<p>moved</p>"), Some("the server answered HTTP 300")),
        (404, Some("text/plain"), "nope", "failed", json!("nope"), Some("the server answered HTTP 404")),
        (500, Some("application/json"), r#"{"error":"boom"}"#, "failed", json!({ "error": "boom" }), Some("the server answered HTTP 500")),
        (200, Some("application/json"), "not json", "success", json!("not json"), None),
    ];
    for (status, content_type, body, state, parsed, error) in cases {
        let step = run(&phlo, &c, answer(status, content_type, body));
        let expected = json!({
            "content_type": content_type,
            "status_code": status,
            "response": { "body": parsed, "headers": {}, "truncated": false },
        });
        assert_eq!(
            Value::Object(done(&step, state)),
            expected,
            "{status} {body}"
        );
        assert_eq!(error_of(&step).as_deref(), error, "{status}");
    }
    let null_vars = json!({ "content_type": null, "status_code": null, "response": null });
    for (event, error) in [
        (
            Event::Http(HttpResult::Error {
                message: "connection refused".into(),
            }),
            "connection refused",
        ),
        (Event::Timeout, "no response within 10 s"),
    ] {
        let step = run(&phlo, &c, event);
        assert_eq!(Value::Object(done(&step, "failed")), null_vars);
        assert_eq!(error_of(&step).as_deref(), Some(error));
    }
}

#[test]
fn headers_are_lower_cased_and_joined_and_truncation_is_exposed() {
    let phlo = http_phlo(json!({ "method": "get", "url": "https://api.example.com/x" }));
    let event = Event::Http(HttpResult::Response {
        status: 200,
        content_type: Some("text/plain".into()),
        headers: vec![
            ("X-Req".into(), "1".into()),
            ("Set-Cookie".into(), "a=1".into()),
            ("set-cookie".into(), "b=2".into()),
        ],
        body: "partial".into(),
        truncated: true,
    });
    let vars = done(&run(&phlo, &ctx(json!({})), event), "success");
    assert_eq!(
        vars["response"],
        json!({ "body": "partial", "headers": { "x-req": "1", "set-cookie": "a=1, b=2" }, "truncated": true })
    );
}

#[test]
fn json_body_is_reachable_from_later_nodes_liquid() {
    let phlo = http_phlo(json!({ "method": "get", "url": "https://api.example.com/x" }));
    let body = r#"{"order":{"id":"A-17","items":[{"sku":"S1"},{"sku":"S2"}]},"total":42.5}"#;
    let vars = done(
        &run(
            &phlo,
            &ctx(json!({})),
            answer(200, Some("application/json; charset=utf-8"), body),
        ),
        "success",
    );
    let later = ctx(json!({ "HTTP_Request_1": vars }));
    for (source, rendered) in [
        ("{{HTTP_Request_1.response.body.order.id}}", "A-17"),
        ("{{HTTP_Request_1.response.body.order.items[1].sku}}", "S2"),
        (
            "{{HTTP_Request_1.response.body.total}}/{{HTTP_Request_1.status_code}}",
            "42.5/200",
        ),
        (
            "{{HTTP_Request_1.content_type}}",
            "application/json; charset=utf-8",
        ),
    ] {
        let t = phlo_template::Template::parse(source).unwrap();
        assert_eq!(later.render(&t).unwrap(), rendered, "{source}");
    }
    // And through a real node: a Branch on the order id.
    let branch = phlo_with(
        "branch",
        "Branch_1",
        json!({ "lhs": "{{HTTP_Request_1.response.body.order.id}}",
                "conditions": [{ "alias": "found", "operation": "equals", "rhs": "A-17" }] }),
        &["found", "no_match"],
    );
    let vars = done(&run(&branch, &later, Event::Enter), "found");
    assert_eq!(vars["lhs"], json!("A-17"));
}

#[test]
fn the_400_rule_for_content_type_and_expected_keys() {
    let expect_json = json!({ "content_type": "application/json", "keys": ["order.id", "status"] });
    let text = json!({ "content_type": "text/plain" });
    let keys_only = json!({ "keys": ["status"] });
    let full = r#"{"order":{"id":"A-17"},"status":"paid"}"#;
    #[rustfmt::skip]
    let cases = [
        // (expectation, status, content type, body, state, status_code, error)
        (&expect_json, 200, Some("application/json"), full, "success", 200, None),
        (&expect_json, 201, Some("Application/JSON; charset=utf-8"), full, "success", 201, None),
        (&expect_json, 200, Some("text/html"), "<html/>", "failed", 400, Some("expected a application/json response, got text/html")),
        (&expect_json, 200, None, full, "failed", 400, Some("expected a application/json response, got none")),
        (&expect_json, 200, Some("application/json"), r#"{"order":{"id":"A-17"}}"#, "failed", 400, Some("the response lacks the expected keys: status")),
        (&expect_json, 200, Some("application/json"), r#"{"order":{}}"#, "failed", 400, Some("the response lacks the expected keys: order.id, status")),
        (&expect_json, 200, Some("application/json"), "{", "failed", 400, Some("the response is not valid JSON")),
        (&expect_json, 503, Some("application/json"), full, "failed", 503, Some("the server answered HTTP 503")),
        (&text, 200, Some("text/plain"), "ok", "success", 200, None),
        (&text, 200, Some("application/json"), "{}", "failed", 400, Some("expected a text/plain response, got application/json")),
        // Keys alone call for a JSON response.
        (&keys_only, 200, Some("application/json"), full, "success", 200, None),
        (&keys_only, 200, Some("application/json"), "{}", "failed", 400, Some("the response lacks the expected keys: status")),
        (&keys_only, 200, Some("text/plain"), "status", "failed", 400, Some("the response is not valid JSON")),
    ];
    for (expect, status, content_type, body, state, status_code, error) in cases {
        let phlo = http_phlo(
            json!({ "method": "get", "url": "https://api.example.com/x", "response": expect }),
        );
        let step = run(&phlo, &ctx(json!({})), answer(status, content_type, body));
        let vars = done(&step, state);
        assert_eq!(
            vars["status_code"],
            json!(status_code),
            "{expect} {status} {body}"
        );
        assert_eq!(vars["content_type"], json!(content_type));
        assert_eq!(
            error_of(&step).as_deref(),
            error,
            "{expect} {status} {body}"
        );
    }
}

#[test]
fn render_failures_fail_before_any_request() {
    #[rustfmt::skip]
    let cases = [
        // (url, headers, error starts with)
        ("https://x.example.com/{{ 1 | divided_by: 0 }}", json!({}), "options.url: template failed to render: Invalid argument"),
        ("{{Start.http.params.url}}", json!({}), "`ftp://files.example.com/a` is not usable here"),
        ("{{Start.http.params.none}}", json!({}), "`` is not a URL"),
        ("https://x.example.com/", json!({ "X-A": "{{Start.http.params.evil}}" }), "header `X-A` rendered a line break"),
    ];
    let c = params_ctx(json!({ "url": "ftp://files.example.com/a", "evil": "a\r\nHost: b" }));
    for (url, headers, reason) in cases {
        let phlo = http_phlo(json!({ "method": "get", "url": url, "headers": headers }));
        let step = run(&phlo, &c, Event::Enter);
        let vars = done(&step, "failed");
        assert_eq!(
            Value::Object(vars),
            json!({ "content_type": null, "status_code": null, "response": null })
        );
        let error = error_of(&step).unwrap();
        assert!(error.starts_with(reason), "{url}: {error}");
        assert!(step.effects.is_empty());
    }
}

#[test]
fn callbacks_follow_the_events_filter() {
    let url = "https://hooks.example.com/http";
    let options = json!({ "method": "get", "url": "https://api.example.com/x" });
    let callback = json!({ "url": url, "method": "GET", "events": ["failed"] });
    let phlo = phlo_with_callback("http_request", "HTTP_Request_1", options, STATES, callback);
    let c = ctx(json!({}));
    let (_, effects) = enter_and_wait(&phlo, &c);
    assert!(
        matches!(effects.as_slice(), [Effect::Http(_)]),
        "no callback while waiting: {effects:?}"
    );
    let ok = run(&phlo, &c, answer(200, Some("text/plain"), "ok"));
    done(&ok, "success");
    assert!(ok.effects.is_empty(), "success is not subscribed");
    let failed = run(&phlo, &c, answer(502, Some("text/plain"), "bad gateway"));
    let vars = done(&failed, "failed");
    assert_eq!(vars["status_code"], json!(502));
    let expected = expected_callback(
        url,
        "GET",
        "http_request",
        "HTTP_Request_1",
        "failed",
        &vars,
    );
    assert_eq!(failed.effects, vec![expected]);
}
