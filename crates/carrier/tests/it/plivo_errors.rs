//! How the Plivo adapter reports failures, and which configurations it refuses.

use std::sync::Arc;
use std::time::Duration;

use phlo_carrier::*;

use crate::plivo_api::{ACCOUNT, AUTH_ID, CALL_FIRED, call, carrier};
use crate::server::Server;

#[tokio::test]
async fn client_errors_are_rejections_with_plivos_message() {
    let server = Server::answering(
        400,
        r#"{"api_id": "x", "error": "answer_url parameter is missing"}"#,
    )
    .await;
    let err = carrier(&server).place_call(call()).await.unwrap_err();
    assert_eq!(
        err,
        CarrierError::Rejected {
            status: 400,
            message: "answer_url parameter is missing".into()
        }
    );
    assert!(!err.is_retryable());
    let gone = Server::answering(404, r#"{"api_id": "x", "error": "not found"}"#).await;
    let err = carrier(&gone).hangup_call("old").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let auth = Server::answering(401, "").await;
    let err = carrier(&auth).hangup_call("c").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "the carrier refused the request (401): HTTP 401"
    );
}

#[tokio::test]
async fn server_errors_rate_limits_and_transport_failures_are_retryable() {
    for status in [500, 503, 429, 408] {
        let server = Server::answering(status, r#"{"error": "try later"}"#).await;
        let err = carrier(&server).place_call(call()).await.unwrap_err();
        assert_eq!(
            err,
            CarrierError::Unavailable {
                status: Some(status),
                message: "try later".into()
            }
        );
        assert!(err.is_retryable());
    }
    let slow = Server::start(Arc::new(|_, _| {
        (201, CALL_FIRED.to_owned(), Duration::from_secs(5))
    }))
    .await;
    let err = carrier(&slow).place_call(call()).await.unwrap_err();
    assert!(
        matches!(err, CarrierError::Unavailable { status: None, .. }),
        "{err}"
    );
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let config = PlivoConfig {
        base_url: format!("http://{closed}"),
        ..PlivoConfig::new(AUTH_ID, "t")
    };
    let err = PlivoCarrier::new(config)
        .unwrap()
        .hangup_call("c")
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn successes_without_the_expected_fields_are_invalid_responses() {
    for body in ["not json", r#"{"message": "call fired"}"#] {
        let server = Server::answering(201, body).await;
        let err = carrier(&server).place_call(call()).await.unwrap_err();
        assert!(matches!(err, CarrierError::InvalidResponse(_)), "{err}");
        assert!(!err.is_retryable());
    }
    let server = Server::answering(202, r#"{"message_uuid": []}"#).await;
    let err = carrier(&server)
        .send_message(OutboundMessage::default())
        .await
        .unwrap_err();
    assert!(matches!(err, CarrierError::InvalidResponse(_)), "{err}");
}

#[tokio::test]
async fn base_url_may_carry_a_path_prefix() {
    let server = Server::answering(201, CALL_FIRED).await;
    let config = PlivoConfig {
        base_url: format!("{}/plivo/", server.base_url()),
        ..PlivoConfig::new(AUTH_ID, "secret-token")
    };
    PlivoCarrier::new(config)
        .unwrap()
        .place_call(call())
        .await
        .unwrap();
    assert_eq!(server.one().path, format!("/plivo{ACCOUNT}/Call/"));
}

#[test]
fn unusable_configuration_is_refused_and_the_token_never_printed() {
    for base_url in ["not a url", "ftp://example.com", "mailto:a@b.c"] {
        let config = PlivoConfig {
            base_url: base_url.into(),
            ..PlivoConfig::new(AUTH_ID, "t")
        };
        assert!(
            matches!(PlivoCarrier::new(config), Err(CarrierError::Config(_))),
            "{base_url}"
        );
    }
    assert!(PlivoCarrier::new(PlivoConfig::new("", "t")).is_err());
    let config = PlivoConfig::new(AUTH_ID, "secret-token");
    assert_eq!(config.base_url, DEFAULT_BASE_URL);
    let carrier = PlivoCarrier::new(config.clone()).unwrap();
    assert!(!format!("{config:?}{carrier:?}").contains("secret-token"));
}
