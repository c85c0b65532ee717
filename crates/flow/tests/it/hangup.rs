//! Hangup: ends the token's call with a reason (normal, rejected, busy); `hangup_complete`, and the token's
//! call is released.

use phlo_flow::effect::{HangupReason, VoiceAction};
use phlo_flow::{CallChange, Effect, EngineError, Event, Phlo};
use serde_json::{Value, json};

use crate::support::*;

fn hangup(options: Value) -> Phlo {
    phlo_with("hangup", "Bye", options, &["hangup_complete"])
}

#[test]
fn every_reason_hangs_up_the_call_and_releases_it() {
    #[rustfmt::skip]
    let cases = [
        (json!({}), HangupReason::Normal, "normal"),
        (json!({ "reason": "normal" }), HangupReason::Normal, "normal"),
        (json!({ "reason": "rejected" }), HangupReason::Rejected, "rejected"),
        (json!({ "reason": "Rejected" }), HangupReason::Rejected, "rejected"),
        (json!({ "reason": "busy" }), HangupReason::Busy, "busy"),
        (json!({ "reason": "BUSY" }), HangupReason::Busy, "busy"),
    ];
    for (options, reason, word) in cases {
        let step = run(&hangup(options.clone()), &call_ctx(json!({})), Event::Enter);
        assert_eq!(
            Value::Object(done(&step, "hangup_complete")),
            json!({ "reason": word }),
            "{options}"
        );
        assert_eq!(
            step.effects,
            vec![Effect::Voice(VoiceAction::Hangup { reason })],
            "{options}"
        );
        assert_eq!(step.call, CallChange::Release, "{options}");
        assert_eq!(error_of(&step), None);
    }
}

#[test]
fn without_a_call_hangup_stops() {
    let step = run(
        &hangup(json!({ "reason": "busy" })),
        &params_ctx(json!({})),
        Event::Enter,
    );
    let reason = stopped(&step);
    assert!(
        reason.starts_with("Bye (hangup) acts on a call, but this token has none"),
        "{reason}"
    );
    assert!(step.effects.is_empty());
    assert_eq!(step.call, CallChange::Keep);
}

#[test]
fn hangup_never_waits_so_it_takes_no_other_event() {
    let events = [
        (Event::Timeout, "timeout"),
        (
            Event::Hangup {
                cause: "NORMAL_CLEARING".into(),
            },
            "hangup",
        ),
        (Event::Digits { digits: "1".into() }, "digits"),
    ];
    for (event, name) in events {
        let err = phlo_flow::step(&hangup(json!({})), node_id(), &call_ctx(json!({})), &event)
            .unwrap_err();
        assert_eq!(
            err,
            EngineError::UnexpectedEvent {
                node: "Bye".into(),
                kind: "hangup",
                event: name
            }
        );
    }
}

#[test]
fn a_callback_follows_the_hangup() {
    let phlo = phlo_with_callback(
        "hangup",
        "Bye",
        json!({ "reason": "rejected" }),
        &["hangup_complete"],
        json!({ "url": "https://hooks.example.com/bye", "method": "get" }),
    );
    let step = run(&phlo, &call_ctx(json!({})), Event::Enter);
    let vars = done(&step, "hangup_complete");
    let callback = expected_callback(
        "https://hooks.example.com/bye",
        "GET",
        "hangup",
        "Bye",
        "hangup_complete",
        &vars,
    );
    let hangup = Effect::Voice(VoiceAction::Hangup {
        reason: HangupReason::Rejected,
    });
    assert_eq!(
        step.effects,
        vec![hangup, callback],
        "the call is hung up, then the callback posted"
    );
}
