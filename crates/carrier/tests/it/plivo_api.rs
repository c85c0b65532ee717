//! The Plivo REST adapter against a local server: paths, Basic auth, JSON bodies, and error mapping.

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use base64::Engine as _;
use phlo_carrier::*;
use serde_json::json;

use crate::server::Server;

pub const AUTH_ID: &str = "MAXXXXXXXXXXXXXXXXXX";
pub const ACCOUNT: &str = "/v1/Account/MAXXXXXXXXXXXXXXXXXX";

pub fn carrier(server: &Server) -> Arc<dyn Carrier> {
    let config = PlivoConfig {
        base_url: server.base_url(),
        timeout: Duration::from_secs(2),
        ..PlivoConfig::new(AUTH_ID, "secret-token")
    };
    Arc::new(PlivoCarrier::new(config).unwrap())
}

fn basic() -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_ID}:secret-token"));
    format!("Basic {token}")
}

pub const CALL_FIRED: &str = r#"{"message": "call fired", "request_uuid": "9834029e-58b6-11e1-b8b7-a5bd0e4e126f", "api_id": "97ceeb52-58b6-11e1-86da-77300b68f8bb"}"#;

pub fn call() -> OutboundCall {
    OutboundCall {
        from: "+14155550100".into(),
        to: "+14155550101".into(),
        answer_url: "https://r/answer".into(),
        hangup_url: "https://r/hangup".into(),
        ring_timeout_secs: 30,
        ..OutboundCall::default()
    }
}

#[tokio::test]
async fn place_call_posts_the_sdk_body_with_basic_auth() {
    let server = Server::answering(201, CALL_FIRED).await;
    let request = carrier(&server).place_call(call()).await.unwrap();
    assert_eq!(request.request_uuid, "9834029e-58b6-11e1-b8b7-a5bd0e4e126f");
    let seen = server.one();
    assert_eq!(seen.method, Method::POST);
    assert_eq!(seen.path, format!("{ACCOUNT}/Call/"));
    assert_eq!(seen.authorization, Some(basic()));
    assert_eq!(seen.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        seen.body,
        json!({ "from": "+14155550100", "to": "+14155550101", "answer_url": "https://r/answer", "answer_method": "POST",
                "hangup_url": "https://r/hangup", "hangup_method": "POST", "ring_timeout": 30 })
    );
}

#[tokio::test]
async fn place_call_sends_optional_parameters_when_set() {
    let server = Server::answering(200, CALL_FIRED).await;
    let full = OutboundCall {
        ring_url: Some("https://r/ring".into()),
        machine_detection: true,
        machine_detection_url: Some("https://r/amd".into()),
        time_limit_secs: Some(600),
        caller_name: Some("Acme".into()),
        ..call()
    };
    carrier(&server).place_call(full).await.unwrap();
    let body = server.one().body;
    assert_eq!(body["ring_url"], "https://r/ring");
    assert_eq!(body["ring_method"], "POST");
    assert_eq!(body["machine_detection"], "true");
    assert_eq!(body["machine_detection_url"], "https://r/amd");
    assert_eq!(body["machine_detection_method"], "POST");
    assert_eq!(body["time_limit"], 600);
    assert_eq!(body["caller_name"], "Acme");
}

#[tokio::test]
async fn send_message_returns_the_message_uuids() {
    let server = Server::answering(
        202,
        r#"{"api_id": "948b53a2", "message": "message(s) queued", "message_uuid": ["5b40a428-bfc7-4daf-9d06-726c558bf3b8"]}"#,
    )
    .await;
    let c = carrier(&server);
    let sms = OutboundMessage {
        src: "+14155550100".into(),
        dst: "+14155550101".into(),
        text: "hello".into(),
        status_url: Some("https://r/status".into()),
        log: true,
        ..OutboundMessage::default()
    };
    assert_eq!(
        c.send_message(sms).await.unwrap(),
        vec!["5b40a428-bfc7-4daf-9d06-726c558bf3b8".to_owned()]
    );
    let mms = OutboundMessage {
        src: "+14155550100".into(),
        dst: "+14155550101".into(),
        text: "look".into(),
        media_urls: vec!["https://m/1.jpg".into()],
        log: false,
        ..OutboundMessage::default()
    };
    c.send_message(mms).await.unwrap();
    let seen = server.seen();
    assert_eq!(seen[0].path, format!("{ACCOUNT}/Message/"));
    assert_eq!(
        seen[0].body,
        json!({ "src": "+14155550100", "dst": "+14155550101", "text": "hello", "type": "sms",
                "method": "POST", "url": "https://r/status", "log": "true" })
    );
    assert_eq!(
        seen[1].body,
        json!({ "src": "+14155550100", "dst": "+14155550101", "text": "look", "type": "mms",
                "log": "false", "media_urls": ["https://m/1.jpg"] })
    );
}

#[tokio::test]
async fn live_call_control() {
    let server = Server::answering(204, "").await;
    let c = carrier(&server);
    c.hangup_call("call-1").await.unwrap();
    c.transfer_call("call-1", "https://r/next?w=2")
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(
        (&seen[0].method, seen[0].path.as_str()),
        (
            &Method::DELETE,
            "/v1/Account/MAXXXXXXXXXXXXXXXXXX/Call/call-1/"
        )
    );
    assert_eq!(seen[0].body, serde_json::Value::Null);
    assert_eq!(
        (&seen[1].method, seen[1].path.as_str()),
        (
            &Method::POST,
            "/v1/Account/MAXXXXXXXXXXXXXXXXXX/Call/call-1/"
        )
    );
    assert_eq!(
        seen[1].body,
        json!({ "legs": "aleg", "aleg_url": "https://r/next?w=2", "aleg_method": "POST" })
    );
    c.record_call("call-1", Some("https://r/recorded"))
        .await
        .unwrap();
    let seen = server.seen();
    assert_eq!(
        (&seen[2].method, seen[2].path.as_str()),
        (
            &Method::POST,
            "/v1/Account/MAXXXXXXXXXXXXXXXXXX/Call/call-1/Record/"
        )
    );
    assert_eq!(
        seen[2].body,
        json!({ "file_format": "mp3", "callback_url": "https://r/recorded", "callback_method": "POST" })
    );
}

#[tokio::test]
async fn mpc_add_participant_calls_into_the_named_room() {
    let server = Server::answering(
        201,
        r#"{"api_id": "a", "calls": [{"to": "+14155550101", "from": "+14155550100", "call_uuid": "c-9"}], "message": "add participant action initiated", "request_uuid": "r-1"}"#,
    )
    .await;
    let added = carrier(&server)
        .mpc_add_participant(
            "Sales Room/1",
            AddParticipant {
                role: "agent".into(),
                from: "+14155550100".into(),
                to: "+14155550101".into(),
                call_status_callback_url: Some("https://r/mpc-call".into()),
                status_callback_url: Some("https://r/room".into()),
                ring_timeout_secs: Some(45),
                start_mpc_on_enter: Some(true),
                ..AddParticipant::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        added,
        ParticipantAdded {
            request_uuid: Some("r-1".into()),
            calls: vec![("+14155550101".into(), "c-9".into())],
        }
    );
    let seen = server.one();
    assert_eq!(
        seen.path,
        format!("{ACCOUNT}/MultiPartyCall/name_Sales%20Room%2F1/Participant/")
    );
    assert_eq!(
        seen.body,
        json!({ "role": "agent", "from": "+14155550100", "to": "+14155550101",
                "call_status_callback_method": "POST", "call_status_callback_url": "https://r/mpc-call",
                "ring_timeout": 45, "status_callback_method": "POST",
                "status_callback_events": "participant-state-changes,mpc-state-changes",
                "status_callback_url": "https://r/room", "start_mpc_on_enter": true })
    );
}

#[tokio::test]
async fn mpc_member_actions() {
    let server = Server::answering(200, r#"{"api_id": "a", "hold": "true"}"#).await;
    let c = carrier(&server);
    for action in [
        MemberAction::Hold,
        MemberAction::Unhold,
        MemberAction::Mute,
        MemberAction::Unmute,
        MemberAction::Kick,
    ] {
        c.mpc_member("support", "17", action).await.unwrap();
    }
    for action in [
        MemberAction::Deaf,
        MemberAction::Undeaf,
        MemberAction::Hangup,
    ] {
        let err = c.mpc_member("support", "17", action).await.unwrap_err();
        assert!(matches!(err, CarrierError::Unsupported(_)), "{err}");
    }
    let path = format!("{ACCOUNT}/MultiPartyCall/name_support/Participant/17/");
    let seen: Vec<_> = server
        .seen()
        .into_iter()
        .map(|s| (s.method, s.path, s.body))
        .collect();
    assert_eq!(
        seen,
        vec![
            (Method::POST, path.clone(), json!({ "hold": true })),
            (Method::POST, path.clone(), json!({ "hold": false })),
            (Method::POST, path.clone(), json!({ "mute": true })),
            (Method::POST, path.clone(), json!({ "mute": false })),
            (Method::DELETE, path, serde_json::Value::Null),
        ]
    );
}

#[tokio::test]
async fn conference_member_actions() {
    let server = Server::answering(202, r#"{"api_id": "a", "message": "ok"}"#).await;
    let c = carrier(&server);
    use MemberAction::*;
    for action in [Mute, Unmute, Deaf, Undeaf, Kick, Hangup] {
        c.conference_member("My Room", "12", action).await.unwrap();
    }
    for action in [Hold, Unhold] {
        assert!(c.conference_member("My Room", "12", action).await.is_err());
    }
    let member = format!("{ACCOUNT}/Conference/My%20Room/Member/12/");
    let seen: Vec<_> = server
        .seen()
        .into_iter()
        .map(|s| (s.method, s.path))
        .collect();
    assert_eq!(
        seen,
        vec![
            (Method::POST, format!("{member}Mute/")),
            (Method::DELETE, format!("{member}Mute/")),
            (Method::POST, format!("{member}Deaf/")),
            (Method::DELETE, format!("{member}Deaf/")),
            (Method::POST, format!("{member}Kick/")),
            (Method::DELETE, member),
        ]
    );
}
