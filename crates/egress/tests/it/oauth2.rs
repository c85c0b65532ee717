//! OAuth2 client credentials: the token request, its cache, and its guard.

use phlo_flow::effect::HttpAuth;

use crate::server::{Server, allowed, guarded};
use crate::{error, request, response};

fn oauth2(server: &Server, scope: Option<&str>) -> HttpAuth {
    HttpAuth::Oauth2 {
        token_url: server.url("/token"),
        client_id: "client".into(),
        client_secret: "s3cret".into(),
        scope: scope.map(str::to_owned),
    }
}

#[tokio::test]
async fn token_is_fetched_once_and_sent_as_bearer() {
    let server = Server::start().await;
    let egress = allowed();
    let mut req = request("POST", server.url("/api"));
    req.auth = oauth2(&server, Some("read write"));
    response(egress.execute(&req, "k1").await);
    // A clone shares the cache.
    response(egress.clone().execute(&req, "k2").await);
    assert_eq!(server.token_hits(), 1);

    let seen = server.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/token", "/api", "/api"]);
    let token = &seen[0];
    assert_eq!(token.method, "POST");
    assert_eq!(
        token.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    // base64("client:s3cret")
    assert_eq!(
        token.header("authorization"),
        Some("Basic Y2xpZW50OnMzY3JldA==")
    );
    assert_eq!(
        token.body_text(),
        "grant_type=client_credentials&scope=read+write"
    );
    for api in &seen[1..] {
        assert_eq!(api.header("authorization"), Some("Bearer tok-1"));
    }
}

#[tokio::test]
async fn tokens_are_cached_per_scope() {
    let server = Server::start().await;
    let egress = allowed();
    let mut req = request("GET", server.url("/api"));
    req.auth = oauth2(&server, None);
    response(egress.execute(&req, "k").await);
    req.auth = oauth2(&server, Some("admin"));
    response(egress.execute(&req, "k").await);
    assert_eq!(server.token_hits(), 2);
    let token_bodies: Vec<String> = server
        .seen()
        .iter()
        .filter(|s| s.path == "/token")
        .map(|s| s.body_text())
        .collect();
    assert_eq!(
        token_bodies,
        [
            "grant_type=client_credentials",
            "grant_type=client_credentials&scope=admin"
        ]
    );
}

#[tokio::test]
async fn a_rejected_token_is_fetched_again_next_time() {
    let server = Server::start().await;
    let egress = allowed();
    let mut req = request("GET", server.url("/unauthorized"));
    req.auth = oauth2(&server, None);
    let (status, ..) = response(egress.execute(&req, "k").await);
    assert_eq!(status, 401);
    response(egress.execute(&req, "k").await);
    assert_eq!(server.token_hits(), 2);
}

#[tokio::test]
async fn token_endpoint_errors_name_the_status() {
    let server = Server::start().await;
    let mut req = request("GET", server.url("/api"));
    req.auth = HttpAuth::Oauth2 {
        token_url: server.url("/status/500"),
        client_id: "c".into(),
        client_secret: "s".into(),
        scope: None,
    };
    let message = error(allowed().execute(&req, "k").await);
    assert_eq!(
        message,
        "oauth2 token request failed: the token endpoint answered 500: boom"
    );
    let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        ["/status/500"],
        "the API must not be called without a token"
    );
}

#[tokio::test]
async fn the_token_request_goes_through_the_guard() {
    let server = Server::start().await;
    // A public API address (never contacted), a loopback token endpoint.
    let mut req = request("GET", "https://93.184.215.14/api".into());
    req.auth = oauth2(&server, None);
    let message = error(guarded().execute(&req, "k").await);
    assert!(
        message
            .starts_with("oauth2 token request failed: refused: 127.0.0.1 is a loopback address"),
        "{message}"
    );
    assert!(server.seen().is_empty());
}
