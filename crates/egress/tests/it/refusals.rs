//! Without an allow-list, non-public destinations are refused and nothing reaches them.

use crate::server::{Server, allowed, guarded};
use crate::{error, request};

#[tokio::test]
async fn literal_and_named_local_destinations_are_refused() {
    let server = Server::start().await;
    let port = server.port();
    let egress = guarded();
    let cases = [
        (
            format!("http://127.0.0.1:{port}/"),
            "refused: 127.0.0.1 is a loopback address; allow-list it with PHLO_EGRESS_ALLOW if intended",
        ),
        (
            format!("http://[::1]:{port}/"),
            "refused: ::1 is a loopback address;",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/"),
            "refused: ::ffff:127.0.0.1 is a loopback address;",
        ),
        (
            format!("http://localhost:{port}/"),
            "refused: localhost resolves only to private or loopback addresses (127.0.0.1",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".into(),
            "refused: 169.254.169.254 is a link-local address;",
        ),
        (
            "http://10.0.0.1/".into(),
            "refused: 10.0.0.1 is a private address;",
        ),
        (
            "http://0.0.0.0/".into(),
            "refused: 0.0.0.0 is a \"this network\" address;",
        ),
    ];
    for (url, expected) in cases {
        for method in ["GET", "POST"] {
            let message = error(egress.execute(&request(method, url.clone()), "k").await);
            assert!(message.starts_with(expected), "{url}: {message}");
            assert!(message.contains("PHLO_EGRESS_ALLOW"), "{url}: {message}");
        }
    }
    assert!(server.seen().is_empty(), "{:#?}", server.seen());
}

#[tokio::test]
async fn a_redirect_to_a_refused_literal_is_not_followed() {
    let server = Server::start().await;
    let egress = allowed();
    for (target, expected) in [
        (
            "http://127.0.0.2:9/",
            "refused: redirect: 127.0.0.2 is a loopback address;",
        ),
        (
            "http://169.254.169.254/latest/meta-data/",
            "refused: redirect: 169.254.169.254 is a link-local address;",
        ),
        (
            "http://[::ffff:10.0.0.1]/",
            "refused: redirect: ::ffff:10.0.0.1 is a private address;",
        ),
        (
            "ftp://example.com/",
            "refused: redirect: the URL scheme `ftp` is not supported",
        ),
    ] {
        let url = server.url(&format!("/redirect?{target}"));
        let message = error(egress.execute(&request("GET", url), "k").await);
        assert!(message.starts_with(expected), "{target}: {message}");
    }
    let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/redirect"; 4]);
}

#[tokio::test]
async fn https_only_refuses_plain_http() {
    let egress = phlo_egress::Egress::new(phlo_egress::EgressConfig {
        https_only: true,
        ..Default::default()
    })
    .unwrap();
    let message = error(
        egress
            .execute(&request("GET", "http://example.com/".into()), "k")
            .await,
    );
    assert_eq!(
        message,
        "refused: only https URLs are allowed on this runner"
    );
}
