//! Call Forward: a Dial on the token's call, sequential or parallel, with screening, extension and the
//! Record Audio truth table; completed|no_answer|busy|failed with the seed's variables (`leg` BLeg,
//! `parent_call_uuid`, `dial_status`).

use phlo_flow::effect::{DialMode, Prompt, Screening, VoiceAction};
use phlo_flow::event::{CallDetails, CallOutcome, DialResult};
use phlo_flow::{CallChange, Context, Effect, Event, Phlo, WaitOn};
use serde_json::{Value, json};

use crate::support::*;

const STATES: &[&str] = &["completed", "no_answer", "busy", "failed"];
/// The wait allows every ring round, a four-hour call and the carrier grace.
const CALL_AND_GRACE: u64 = 4 * 3600 + 120;

fn forward(options: Value) -> Phlo {
    phlo_with("call_forward", "Forward", options, STATES)
}

fn two_agents(extra: Value) -> Phlo {
    let mut options = json!({ "from": "{{Start.http.params.caller_id}}", "to": "+14155550101, {{Start.http.params.agent}}", "ring_timeout": 20 });
    options
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().cloned().unwrap_or_default());
    forward(options)
}

fn agents_ctx() -> Context {
    params_call_ctx(
        json!({ "caller_id": "+14155550199", "agent": "sip:agent@example.com", "ext": "12w3", "rec": "TRUE" }),
    )
}

fn dial(step_effects: &[phlo_flow::Effect]) -> VoiceAction {
    match step_effects {
        [Effect::Voice(d @ VoiceAction::Dial { .. })] => d.clone(),
        other => panic!("expected one Dial, got {other:#?}"),
    }
}

/// What the node parks with: the seed's variables known before the dial ends.
fn parked() -> Value {
    json!({ "to": "+14155550101,sip:agent@example.com", "from": "+14155550199", "direction": "outbound",
            "from_iso2": "US", "from_country": "United States", "leg": "BLeg", "parent_call_uuid": "call-uuid-1" })
}

fn finish(event: Event) -> phlo_flow::Step {
    let phlo = two_agents(json!({}));
    let (wait, _) = enter_and_wait(&phlo, &agents_ctx());
    run(&phlo, &resumed(&agents_ctx(), &wait), event)
}

#[test]
fn sequential_forwarding_dials_one_after_another() {
    let phlo = two_agents(json!({}));
    let step = run(&phlo, &agents_ctx(), Event::Enter);
    assert_eq!(step.call, CallChange::Keep);
    let (wait, effects) = enter_and_wait(&phlo, &agents_ctx());
    assert_eq!(wait.on, WaitOn::Dial);
    assert_eq!(
        wait.timeout_secs,
        20 * 2 + CALL_AND_GRACE,
        "one ring round per recipient"
    );
    assert_eq!(Value::Object(wait.variables), parked());
    let expected = VoiceAction::Dial {
        from: "+14155550199".into(),
        to: vec!["+14155550101".into(), "sip:agent@example.com".into()],
        mode: DialMode::Sequential,
        ring_timeout_secs: 20,
        record: false,
        screening: None,
        send_digits: None,
    };
    assert_eq!(dial(&effects), expected);
}

#[test]
fn parallel_forwarding_rings_everyone_once() {
    let phlo = two_agents(json!({ "forwarding": "parallel" }));
    let (wait, effects) = enter_and_wait(&phlo, &agents_ctx());
    assert_eq!(
        wait.timeout_secs,
        20 + CALL_AND_GRACE,
        "a single ring round"
    );
    assert!(matches!(
        dial(&effects),
        VoiceAction::Dial {
            mode: DialMode::Parallel,
            ..
        }
    ));
}

#[test]
fn screening_extension_and_record_are_rendered() {
    let phlo = two_agents(json!({
        "screening": { "prompt": { "type": "speak", "text": "Call for {{Start.http.params.agent}}, press 5" }, "confirm_key": "5" },
        "extension": "{{Start.http.params.ext}}",
        "record": "{{Start.http.params.rec}}",
    }));
    let (_, effects) = enter_and_wait(&phlo, &agents_ctx());
    let VoiceAction::Dial {
        screening,
        send_digits,
        record,
        ..
    } = dial(&effects)
    else {
        unreachable!()
    };
    let prompt = Prompt::Speak {
        text: "Call for sip:agent@example.com, press 5".into(),
        language: "en-US".into(),
        voice: "WOMAN".into(),
    };
    assert_eq!(
        screening,
        Some(Screening {
            prompt,
            confirm_key: "5".into()
        })
    );
    assert_eq!(send_digits.as_deref(), Some("12w3"));
    assert!(record);
}

#[test]
fn screening_defaults_to_key_1_and_an_empty_extension_sends_nothing() {
    let phlo = two_agents(json!({
        "screening": { "prompt": { "type": "play", "url": "https://example.com/whisper.mp3" } },
        "extension": "{{Start.http.params.none}}",
    }));
    let (_, effects) = enter_and_wait(&phlo, &agents_ctx());
    let VoiceAction::Dial {
        screening,
        send_digits,
        ..
    } = dial(&effects)
    else {
        unreachable!()
    };
    let prompt = Prompt::Play {
        url: "https://example.com/whisper.mp3".into(),
    };
    assert_eq!(
        screening,
        Some(Screening {
            prompt,
            confirm_key: "1".into()
        })
    );
    assert_eq!(send_digits, None);
}

#[test]
fn every_dial_outcome_reaches_its_state_with_the_seed_variables() {
    // (outcome, state, dial_status, ring_status, error)
    #[rustfmt::skip]
    let cases = [
        (CallOutcome::Completed, "completed", "completed", true, None),
        (CallOutcome::Answered, "completed", "completed", true, None),
        (CallOutcome::NoAnswer, "no_answer", "no-answer", true, None),
        (CallOutcome::Busy, "busy", "busy", false, None),
        (CallOutcome::Failed, "failed", "failed", false, Some("the forwarded call failed: NORMAL_TEMPORARY_FAILURE")),
        (CallOutcome::Machine, "failed", "failed", false, Some("the forwarded call failed: NORMAL_TEMPORARY_FAILURE")),
    ];
    for (outcome, state, dial_status, ring, error) in cases {
        let call = CallDetails {
            uuid: "b-1".into(),
            hangup_cause: Some("NORMAL_TEMPORARY_FAILURE".into()),
            ..Default::default()
        };
        let step = finish(Event::Dial(DialResult { outcome, call }));
        let mut expected = parked();
        for key in [
            "start_time",
            "answer_time",
            "end_time",
            "duration",
            "bill_duration",
            "bill_rate",
            "bill_amount",
        ] {
            expected[key] = Value::Null; // unreported, but present as the seed lists it
        }
        expected["uuid"] = json!("b-1");
        expected["hangup_cause"] = json!("NORMAL_TEMPORARY_FAILURE");
        expected["ring_status"] = json!(ring);
        expected["dial_status"] = json!(dial_status);
        assert_eq!(Value::Object(done(&step, state)), expected, "{outcome:?}");
        assert_eq!(error_of(&step).as_deref(), error, "{outcome:?}");
        assert!(step.effects.is_empty());
        assert_eq!(step.call, CallChange::Keep, "the caller keeps their call");
    }
}

#[test]
fn a_completed_forward_reports_who_answered() {
    let call = CallDetails {
        uuid: "b-2".into(),
        from: "+14155550199".into(),
        to: "sip:agent@example.com".into(),
        start_time: Some("2026-01-02T10:00:00Z".into()),
        answer_time: Some("2026-01-02T10:00:04Z".into()),
        end_time: Some("2026-01-02T10:03:04Z".into()),
        hangup_cause: Some("NORMAL_CLEARING".into()),
        duration: Some(184),
        bill_duration: Some(180),
        bill_rate: Some("0.0085".into()),
        bill_amount: Some("0.0255".into()),
        ring_status: Some(true),
    };
    let step = finish(Event::Dial(DialResult {
        outcome: CallOutcome::Completed,
        call,
    }));
    let expected = json!({
        "uuid": "b-2", "to": "sip:agent@example.com", "from": "+14155550199",
        "start_time": "2026-01-02T10:00:00Z", "answer_time": "2026-01-02T10:00:04Z", "end_time": "2026-01-02T10:03:04Z",
        "direction": "outbound", "from_iso2": "US", "from_country": "United States", "leg": "BLeg",
        "hangup_cause": "NORMAL_CLEARING", "duration": 184, "bill_duration": 180, "bill_rate": "0.0085",
        "bill_amount": "0.0255", "ring_status": true, "parent_call_uuid": "call-uuid-1", "dial_status": "completed",
    });
    assert_eq!(Value::Object(done(&step, "completed")), expected);
}

#[test]
fn a_hang_up_while_bridged_completes_the_forward() {
    let step = finish(Event::Hangup {
        cause: "NORMAL_CLEARING".into(),
    });
    let mut expected = parked();
    expected["dial_status"] = json!("completed");
    expected["hangup_cause"] = json!("NORMAL_CLEARING");
    assert_eq!(Value::Object(done(&step, "completed")), expected);
    assert_eq!(error_of(&step), None);
}

#[test]
fn the_timer_backstop_fails_with_the_reason() {
    let step = finish(Event::Timeout);
    let mut expected = parked();
    expected["dial_status"] = json!("failed");
    assert_eq!(Value::Object(done(&step, "failed")), expected);
    assert_eq!(
        error_of(&step).as_deref(),
        Some("the carrier reported no dial result in time")
    );
}

#[test]
fn without_a_call_the_forward_fails() {
    let step = run(
        &two_agents(json!({})),
        &params_ctx(json!({ "caller_id": "+14155550199" })),
        Event::Enter,
    );
    assert!(done(&step, "failed").is_empty());
    let error = error_of(&step).unwrap_or_default();
    assert!(
        error.starts_with("Forward (call_forward) acts on a call, but this token has none"),
        "{error}"
    );
    assert!(step.effects.is_empty());
}

#[test]
fn render_errors_and_bad_numbers_fail_with_the_reason() {
    let broken = "{{ 1 | divided_by: 0 }}";
    #[rustfmt::skip]
    let cases = [
        (json!({ "from": broken }), "divide by zero"),
        (json!({ "to": [broken] }), "divide by zero"),
        (json!({ "extension": broken }), "divide by zero"),
        (json!({ "record": broken }), "divide by zero"),
        (json!({ "screening": { "prompt": broken } }), "divide by zero"),
        (json!({ "to": "{{Start.http.params.none}}" }), "`to` rendered to no recipients"),
        (json!({ "from": "{{Start.http.params.ext}}" }), "`12w3` is neither a phone number nor a SIP URI"),
    ];
    for (extra, reason) in cases {
        let step = run(&two_agents(extra.clone()), &agents_ctx(), Event::Enter);
        assert_eq!(
            Value::Object(done(&step, "failed")),
            json!({ "dial_status": "failed" }),
            "{extra}"
        );
        let error = error_of(&step).unwrap_or_default();
        assert!(error.contains(reason), "{extra}: {error}");
        assert!(
            step.effects.is_empty(),
            "nothing is dialled when rendering fails"
        );
    }
}

#[test]
fn record_follows_the_truth_table() {
    let phlo = two_agents(json!({ "record": "{{Start.http.params.rec}}" }));
    for (rec, expected) in record_truth_table() {
        let (_, effects) = enter_and_wait(
            &phlo,
            &params_call_ctx(json!({ "caller_id": "+14155550199", "rec": rec })),
        );
        let VoiceAction::Dial { record, .. } = dial(&effects) else {
            unreachable!()
        };
        assert_eq!(record, expected, "rec = {rec}");
    }
}
