//! With 127.0.0.1 allow-listed, each method, body type and auth kind arrives as the user wrote it.

use axum::http::Method;
use phlo_flow::effect::{HttpAuth, HttpBody};
use serde_json::json;

use crate::server::{Server, allowed};
use crate::{request, response};

#[tokio::test]
async fn each_method_arrives_with_query_user_agent_and_idempotency_key() {
    let server = Server::start().await;
    let egress = allowed();
    for (i, method) in ["GET", "post", "PUT", "DELETE"].into_iter().enumerate() {
        let url = server.url("/echo?x=1&y=two%20words");
        let (status, ..) = response(
            egress
                .execute(&request(method, url), &format!("key-{i}"))
                .await,
        );
        assert_eq!(status, 200);
    }
    let seen = server.seen();
    let methods: Vec<&Method> = seen.iter().map(|s| &s.method).collect();
    assert_eq!(
        methods,
        [Method::GET, Method::POST, Method::PUT, Method::DELETE]
    );
    for (i, s) in seen.iter().enumerate() {
        assert_eq!(s.path, "/echo");
        assert_eq!(s.query.as_deref(), Some("x=1&y=two%20words"));
        assert_eq!(
            s.header("idempotency-key"),
            Some(format!("key-{i}").as_str())
        );
        assert!(s.header("user-agent").unwrap().starts_with("phlo-runner/"));
        assert_eq!(s.header("authorization"), None);
        assert!(s.body.is_empty());
    }
}

#[tokio::test]
async fn response_exposes_status_content_type_and_lower_cased_headers() {
    let server = Server::start().await;
    let result = allowed()
        .execute(&request("GET", server.url("/echo")), "k")
        .await;
    let (status, content_type, headers, body, truncated) = response(result);
    assert_eq!((status, truncated), (200, false));
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(body, r#"{"ok":true}"#);
    assert!(
        headers.contains(&("x-custom".into(), "Yes".into())),
        "{headers:?}"
    );
    assert!(headers.iter().all(|(name, _)| *name == name.to_lowercase()));
}

#[tokio::test]
async fn user_headers_are_sent_and_a_user_idempotency_key_wins() {
    let server = Server::start().await;
    let mut req = request("POST", server.url("/echo"));
    req.headers = vec![
        ("X-Trace".into(), "abc".into()),
        ("Idempotency-Key".into(), "mine".into()),
    ];
    response(allowed().execute(&req, "generated").await);
    let seen = server.one();
    assert_eq!(seen.header("x-trace"), Some("abc"));
    let keys: Vec<_> = seen.headers.get_all("idempotency-key").iter().collect();
    assert_eq!(keys, ["mine"]);
}

#[tokio::test]
async fn json_body() {
    let server = Server::start().await;
    let mut req = request("POST", server.url("/echo"));
    req.body = Some(HttpBody::Json {
        value: json!({ "b": 1, "a": ["x", null] }),
    });
    response(allowed().execute(&req, "k").await);
    let seen = server.one();
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(seen.body_text(), r#"{"b":1,"a":["x",null]}"#);
}

#[tokio::test]
async fn form_urlencoded_body() {
    let server = Server::start().await;
    let mut req = request("PUT", server.url("/echo"));
    req.body = Some(HttpBody::FormUrlencoded {
        fields: vec![("a".into(), "1".into()), ("b c".into(), "x y&z=é".into())],
    });
    response(allowed().execute(&req, "k").await);
    let seen = server.one();
    assert_eq!(
        seen.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(seen.body_text(), "a=1&b+c=x+y%26z%3D%C3%A9");
}

#[tokio::test]
async fn form_data_body_uses_its_own_boundary() {
    let server = Server::start().await;
    let mut req = request("POST", server.url("/echo"));
    // A user content type cannot break the multipart boundary.
    req.headers = vec![("Content-Type".into(), "text/plain".into())];
    req.body = Some(HttpBody::FormData {
        fields: vec![
            ("name".into(), "Ada".into()),
            ("city".into(), "Paris".into()),
        ],
    });
    response(allowed().execute(&req, "k").await);
    let seen = server.one();
    let content_type = seen.header("content-type").unwrap();
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap_or_else(|| panic!("{content_type}"));
    let expected = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nAda\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"city\"\r\n\r\nParis\r\n\
         --{boundary}--\r\n"
    );
    assert_eq!(seen.body_text(), expected);
}

#[tokio::test]
async fn text_body_with_its_content_type() {
    let server = Server::start().await;
    let mut req = request("POST", server.url("/echo"));
    req.body = Some(HttpBody::Text {
        content_type: "text/csv".into(),
        text: "a,b\n1,2\n".into(),
    });
    response(allowed().execute(&req, "k").await);
    let seen = server.one();
    assert_eq!(seen.header("content-type"), Some("text/csv"));
    assert_eq!(seen.body_text(), "a,b\n1,2\n");
}

#[tokio::test]
async fn basic_and_bearer_auth() {
    let server = Server::start().await;
    let egress = allowed();
    let mut req = request("GET", server.url("/echo"));
    req.auth = HttpAuth::Basic {
        username: "Aladdin".into(),
        password: "open sesame".into(),
    };
    // The configured auth replaces a user Authorization header.
    req.headers = vec![("Authorization".into(), "Token nope".into())];
    response(egress.execute(&req, "k").await);
    req.auth = HttpAuth::Bearer {
        token: "t0k3n".into(),
    };
    response(egress.execute(&req, "k").await);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    for (s, expected) in seen
        .iter()
        .zip(["Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Bearer t0k3n"])
    {
        let values: Vec<_> = s.headers.get_all("authorization").iter().collect();
        assert_eq!(values, [expected]);
    }
}

#[tokio::test]
async fn credentials_in_the_url_become_basic_auth() {
    let server = Server::start().await;
    let url = format!("http://user:p%40ss@{}/echo", server.addr);
    response(allowed().execute(&request("GET", url), "k").await);
    // base64("user:p@ss")
    assert_eq!(
        server.one().header("authorization"),
        Some("Basic dXNlcjpwQHNz")
    );
}

#[tokio::test]
async fn invalid_requests_are_errors_and_send_nothing() {
    let server = Server::start().await;
    let egress = allowed();
    let mut req = request("PATCH", server.url("/echo"));
    let message = crate::error(egress.execute(&req, "k").await);
    assert!(message.contains("unsupported method `PATCH`"), "{message}");
    req.method = "GET".into();
    req.headers = vec![("bad header".into(), "x".into())];
    let message = crate::error(egress.execute(&req, "k").await);
    assert!(
        message.contains("`bad header` is not a valid header name"),
        "{message}"
    );
    req.headers.clear();
    req.url = "not a url".into();
    let message = crate::error(egress.execute(&req, "k").await);
    assert!(
        message.starts_with("invalid request: the URL is not valid"),
        "{message}"
    );
    assert!(server.seen().is_empty());
}
