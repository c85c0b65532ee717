use phlo_bus::{DecodeError, HttpMessage, StepMessage};
use phlo_flow::{
    Event,
    effect::{HttpAuth, HttpRequest},
    event::SmsReport,
};
use serde_json::{Value, json};
use uuid::Uuid;

fn run() -> Uuid {
    Uuid::parse_str("0190f5a4-7b2c-7d3e-8f41-2a6b9c0d1e2f").unwrap()
}

fn resume(event: Event) -> StepMessage {
    StepMessage::Resume {
        run_id: run(),
        token: 1,
        wait_id: 4,
        event,
    }
}

fn http() -> HttpMessage {
    HttpMessage {
        run_id: run(),
        token: 0,
        wait_id: 2,
        request: HttpRequest {
            method: "POST".into(),
            url: "https://example.com/hook?a=1".into(),
            headers: vec![("x-k".into(), "v".into())],
            body: None,
            auth: HttpAuth::None,
            timeout_secs: 10,
            max_response_bytes: 1 << 20,
        },
    }
}

#[test]
fn messages_round_trip_in_a_versioned_envelope() {
    let advance = StepMessage::Advance {
        run_id: run(),
        token: 0,
        seq: 7,
    };
    let wire: Value = serde_json::from_slice(&advance.to_bytes()).unwrap();
    assert_eq!(
        wire,
        json!({"v": 1, "msg": {"type": "advance", "run_id": run(), "token": 0, "seq": 7}})
    );

    let digits = resume(Event::Digits {
        digits: "12#".into(),
    });
    for step in [advance, digits, resume(Event::Timeout)] {
        assert_eq!(StepMessage::from_bytes(&step.to_bytes()).unwrap(), step);
    }
    assert_eq!(HttpMessage::from_bytes(&http().to_bytes()).unwrap(), http());
}

#[test]
fn msg_ids_are_deterministic() {
    let advance = StepMessage::Advance {
        run_id: run(),
        token: 3,
        seq: 9,
    };
    assert_eq!(advance.msg_id(), format!("adv:{}:3:9", run()));
    assert_eq!(http().msg_id(), format!("http:{}:0:2", run()));

    let timeout = resume(Event::Timeout).msg_id();
    assert!(
        timeout.starts_with(&format!("res:{}:1:4:timeout:", run())),
        "{timeout}"
    );
    assert_eq!(
        timeout,
        resume(Event::Timeout).msg_id(),
        "same event, same id"
    );
}

#[test]
fn different_events_for_one_wait_get_different_ids() {
    let sms = |status: &str| {
        resume(Event::Sms(SmsReport {
            status: status.into(),
            ..SmsReport::default()
        }))
    };
    let queued = sms("queued").msg_id();
    let sent = sms("sent").msg_id();
    assert!(
        queued.starts_with(&format!("res:{}:1:4:sms:", run())),
        "{queued}"
    );
    assert_ne!(
        queued, sent,
        "a later status must not be dropped as a duplicate"
    );
    assert_ne!(
        queued,
        resume(Event::Timeout).msg_id(),
        "timer and event differ"
    );
}

#[test]
fn unknown_versions_and_garbage_are_decode_errors() {
    let future = br#"{"v":2,"msg":{"type":"advance","run_id":"x","token":0,"seq":1}}"#;
    let err = StepMessage::from_bytes(future).unwrap_err();
    assert!(
        matches!(err, DecodeError::UnknownVersion { found: 2 }),
        "{err}"
    );
    assert!(err.to_string().contains("version 2"), "{err}");

    assert!(matches!(
        StepMessage::from_bytes(b"not json"),
        Err(DecodeError::Invalid { .. })
    ));
    assert!(matches!(
        StepMessage::from_bytes(br#"{"msg":{}}"#),
        Err(DecodeError::Invalid { .. })
    ));
    // An http message on the step queue is not a step message.
    assert!(matches!(
        StepMessage::from_bytes(&http().to_bytes()),
        Err(DecodeError::Invalid { .. })
    ));
}
