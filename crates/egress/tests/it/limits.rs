//! Size cap, timeout, error statuses and redirects.

use std::time::{Duration, Instant};

use phlo_egress::{HeaderMap, Method, Outbound};

use crate::server::{Server, allowed};
use crate::{error, request, response};

#[tokio::test]
async fn size_cap_truncates_the_body() {
    let server = Server::start().await;
    let mut req = request("GET", server.url("/big"));
    req.max_response_bytes = 1000;
    let (status, _, _, body, truncated) = response(allowed().execute(&req, "k").await);
    assert_eq!(status, 200);
    assert!(truncated);
    assert_eq!(body, "x".repeat(1000));

    // A body exactly at the cap is complete.
    req.max_response_bytes = 100_000;
    let (_, _, _, body, truncated) = response(allowed().execute(&req, "k").await);
    assert!(!truncated);
    assert_eq!(body.len(), 100_000);
}

#[tokio::test]
async fn timeout_is_an_error_within_the_bound() {
    let server = Server::start().await;
    let mut req = request("GET", server.url("/slow"));
    req.timeout_secs = 1;
    let started = Instant::now();
    let message = error(allowed().execute(&req, "k").await);
    assert_eq!(message, "timed out after 1 s");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn error_statuses_are_responses() {
    let server = Server::start().await;
    let (status, _, _, body, _) = response(
        allowed()
            .execute(&request("POST", server.url("/status/500")), "k")
            .await,
    );
    assert_eq!((status, body.as_str()), (500, "boom"));
}

#[tokio::test]
async fn connect_failures_name_the_destination() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let req = request("GET", format!("http://127.0.0.1:{port}/x?secret=1"));
    let message = error(allowed().execute(&req, "k").await);
    assert!(
        message.starts_with(&format!("connect failed: 127.0.0.1:{port}: ")),
        "{message}"
    );
    assert!(!message.contains("secret"), "{message}");
}

#[tokio::test]
async fn redirects_are_followed_to_allowed_targets() {
    let server = Server::start().await;
    let req = request("GET", server.url("/redirect?/echo"));
    let (status, _, _, body, _) = response(allowed().execute(&req, "k").await);
    assert_eq!((status, body.as_str()), (200, r#"{"ok":true}"#));
    let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/redirect", "/echo"]);
}

#[tokio::test]
async fn redirect_loops_stop() {
    let server = Server::start().await;
    let message = error(
        allowed()
            .execute(&request("GET", server.url("/loop")), "k")
            .await,
    );
    assert_eq!(message, "request failed: too many redirects (more than 5)");
    assert_eq!(server.seen().len(), 6, "the original request and 5 hops");
}

#[tokio::test]
async fn send_can_return_redirects_as_responses() {
    let server = Server::start().await;
    let response = allowed()
        .send(Outbound {
            method: Method::POST,
            url: server.url("/redirect?/echo").parse().unwrap(),
            headers: HeaderMap::new(),
            body: Some(("application/json".into(), "{}".into())),
            timeout: Duration::from_secs(5),
            max_response_bytes: 1024,
            follow_redirects: false,
        })
        .await
        .unwrap();
    assert_eq!(response.status, 302);
    assert_eq!(response.header("location"), Some("/echo"));
    assert!(response.elapsed < Duration::from_secs(5));
    let seen = server.one();
    assert_eq!(
        (seen.header("content-type"), seen.body_text().as_str()),
        (Some("application/json"), "{}")
    );
}
