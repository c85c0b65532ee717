//! Initiate Call: one PlaceCall and one wait per number (bulk calls fork the token), each leg resolving
//! on its own into answered|no_answer|busy|failed|voicemail with the seed's variables; an answered or
//! voicemail leg becomes the token's call. The Record Audio truth table applies to `record`.

use phlo_flow::effect::PlaceCall;
use phlo_flow::engine::ActiveCall;
use phlo_flow::event::{CallDetails, CallOutcome, CallResult};
use phlo_flow::{
    CallChange, Context, Effect, EngineError, Event, Outcome, Phlo, Step, Wait, WaitOn,
};
use serde_json::{Value, json};

use crate::support::*;

const STATES: &[&str] = &["answered", "no_answer", "busy", "failed", "voicemail"];
const NUMBERS: [&str; 3] = ["+14155550101", "+442071838750", "sip:alice@example.com"];

fn initiate(options: Value) -> Phlo {
    phlo_with("initiate_call", "Call_Out", options, STATES)
}

fn bulk() -> Phlo {
    initiate(json!({
        "from": "{{Start.http.params.caller}}",
        "to": ["+14155550101", "{{Start.http.params.more}}"],
        "ring_timeout": 25,
        "machine_detection": false,
    }))
}

fn bulk_ctx() -> Context {
    params_ctx(json!({ "caller": "+14155550100", "more": "+442071838750, sip:alice@example.com" }))
}

fn waits(step: &Step) -> Vec<Wait> {
    match &step.outcome {
        Outcome::Wait { waits } => waits.clone(),
        other => panic!("expected waits, got {other:#?}"),
    }
}

/// Enters the bulk node, then feeds `event` to the token parked on leg `leg`.
fn resume_leg(leg: usize, event: Event) -> Step {
    let phlo = bulk();
    let wait = waits(&run(&phlo, &bulk_ctx(), Event::Enter)).remove(leg);
    run(&phlo, &resumed(&bulk_ctx(), &wait), event)
}

/// What a leg parks with: the seed's variables the node knows before the carrier answers.
fn parked(to: &str) -> Value {
    json!({ "to": to, "from": "+14155550100", "direction": "outbound", "from_iso2": "US",
            "from_country": "United States", "leg": "ALeg" })
}

fn result(leg: usize, outcome: CallOutcome, call: CallDetails) -> Event {
    Event::Call(CallResult { leg, outcome, call })
}

fn bound(uuid: &str, to: &str) -> CallChange {
    CallChange::Bind(ActiveCall {
        uuid: uuid.into(),
        from: "+14155550100".into(),
        to: to.into(),
    })
}

fn carrier_call(uuid: &str) -> CallDetails {
    CallDetails {
        uuid: uuid.into(),
        start_time: Some("2026-01-02T10:00:00Z".into()),
        answer_time: Some("2026-01-02T10:00:07Z".into()),
        ..Default::default()
    }
}

#[test]
fn bulk_places_one_call_and_one_wait_per_number() {
    let step = run(&bulk(), &bulk_ctx(), Event::Enter);
    let place = |leg: usize, to: &str| PlaceCall {
        leg,
        from: "+14155550100".into(),
        to: to.into(),
        ring_timeout_secs: 25,
        record: false,
        machine_detection: false,
    };
    let expected: Vec<Effect> = NUMBERS
        .iter()
        .enumerate()
        .map(|(leg, to)| Effect::PlaceCall(place(leg, to)))
        .collect();
    assert_eq!(step.effects, expected);
    assert_eq!(step.call, CallChange::Keep);
    let waits = waits(&step);
    assert_eq!(waits.len(), 3);
    for (leg, (wait, to)) in waits.iter().zip(NUMBERS).enumerate() {
        assert_eq!(wait.on, WaitOn::Call { leg });
        assert_eq!(wait.timeout_secs, 25 + 120); // the ring timeout plus the carrier grace
        assert_eq!(Value::Object(wait.variables.clone()), parked(to));
    }
}

#[test]
fn each_leg_resolves_independently() {
    // The carrier leaves `to` and `from` empty: what the node decided stands.
    let answered = resume_leg(0, result(0, CallOutcome::Answered, carrier_call("leg-0")));
    assert_eq!(done(&answered, "answered")["to"], json!("+14155550101"));
    assert_eq!(answered.call, bound("leg-0", "+14155550101"));

    let busy = resume_leg(1, result(1, CallOutcome::Busy, CallDetails::default()));
    assert_eq!(done(&busy, "busy")["to"], json!("+442071838750"));
    assert_eq!(busy.call, CallChange::Keep);

    let machine = resume_leg(2, result(2, CallOutcome::Machine, carrier_call("leg-2")));
    let vars = done(&machine, "voicemail");
    assert_eq!(
        (&vars["to"], &vars["voicemail_detected"]),
        (&json!("sip:alice@example.com"), &json!(true))
    );
    assert_eq!(machine.call, bound("leg-2", "sip:alice@example.com"));
}

#[test]
fn an_answered_call_has_every_seed_variable() {
    let call = CallDetails {
        from: "+14155550100".into(),
        to: "+14155550101".into(),
        duration: Some(7),
        bill_duration: Some(60),
        bill_rate: Some("0.0085".into()),
        bill_amount: Some("0.0085".into()),
        ..carrier_call("c-1")
    };
    let step = resume_leg(0, result(0, CallOutcome::Answered, call));
    let expected = json!({
        "uuid": "c-1", "to": "+14155550101", "from": "+14155550100",
        "start_time": "2026-01-02T10:00:00Z", "answer_time": "2026-01-02T10:00:07Z", "end_time": null,
        "direction": "outbound", "from_iso2": "US", "from_country": "United States", "leg": "ALeg",
        "hangup_cause": null, "duration": 7, "bill_duration": 60, "bill_rate": "0.0085", "bill_amount": "0.0085",
        "ring_status": true, "voicemail_detected": false, "call_status": "in-progress",
    });
    assert_eq!(Value::Object(done(&step, "answered")), expected);
    assert_eq!(error_of(&step), None);
    assert!(step.effects.is_empty());
}

#[test]
fn every_outcome_reaches_its_state() {
    // (outcome, state, ring_status, voicemail_detected, call_status, binds the call, error)
    #[rustfmt::skip]
    let cases = [
        (CallOutcome::Answered, "answered", true, false, Some("in-progress"), true, None),
        (CallOutcome::Completed, "answered", true, false, Some("in-progress"), true, None),
        (CallOutcome::Machine, "voicemail", true, true, Some("in-progress"), true, None),
        (CallOutcome::NoAnswer, "no_answer", true, false, None, false, None),
        (CallOutcome::Busy, "busy", false, false, None, false, None),
        (CallOutcome::Failed, "failed", false, false, None, false, Some("the call failed: UNALLOCATED_NUMBER")),
    ];
    for (outcome, state, ring, machine, status, binds, error) in cases {
        let call = CallDetails {
            uuid: "c-9".into(),
            hangup_cause: Some("UNALLOCATED_NUMBER".into()),
            ..Default::default()
        };
        let step = resume_leg(0, result(0, outcome, call));
        let vars = done(&step, state);
        assert_eq!(vars["ring_status"], json!(ring), "{outcome:?}");
        assert_eq!(vars["voicemail_detected"], json!(machine), "{outcome:?}");
        assert_eq!(
            vars.get("call_status"),
            status.map(|s| json!(s)).as_ref(),
            "{outcome:?}"
        );
        assert_eq!(
            (&vars["uuid"], &vars["hangup_cause"]),
            (&json!("c-9"), &json!("UNALLOCATED_NUMBER"))
        );
        // Unreported times are null, not missing.
        assert_eq!(
            (vars.get("answer_time"), vars.get("end_time")),
            (Some(&Value::Null), Some(&Value::Null))
        );
        assert_eq!(
            matches!(step.call, CallChange::Bind(_)),
            binds,
            "{outcome:?}"
        );
        assert_eq!(error_of(&step).as_deref(), error, "{outcome:?}");
    }
}

#[test]
fn the_carrier_ring_status_wins() {
    let call = CallDetails {
        ring_status: Some(true),
        ..Default::default()
    };
    let step = resume_leg(0, result(0, CallOutcome::Busy, call));
    assert_eq!(done(&step, "busy")["ring_status"], json!(true));
}

#[test]
fn the_timer_backstop_is_no_answer_with_the_reason() {
    let step = resume_leg(1, Event::Timeout);
    let mut expected = parked("+442071838750");
    expected["ring_status"] = json!(false);
    assert_eq!(Value::Object(done(&step, "no_answer")), expected);
    assert_eq!(
        error_of(&step).as_deref(),
        Some("the carrier reported no result for the call in time")
    );
}

#[test]
fn render_errors_and_bad_numbers_end_in_failed() {
    #[rustfmt::skip]
    let cases = [
        (json!({ "from": "{{ 1 | divided_by: 0 }}", "to": "+14155550101" }), "divide by zero"),
        (json!({ "from": "+14155550100", "to": ["{{ 1 | divided_by: 0 }}"] }), "divide by zero"),
        (json!({ "from": "{{Start.http.params.caller}}", "to": "+14155550101" }), "`not-a-number` is neither a phone number"),
        (json!({ "from": "+14155550100", "to": "{{Start.http.params.nobody}}" }), "`to` rendered to no recipients"),
        (json!({ "from": "+14155550100", "to": "{{Start.http.params.bad}}" }), "`bob` is neither a phone number"),
    ];
    for (options, reason) in cases {
        let ctx = params_ctx(json!({ "caller": "not-a-number", "bad": "+14155550101,bob" }));
        let step = run(&initiate(options.clone()), &ctx, Event::Enter);
        assert!(done(&step, "failed").is_empty(), "{options}");
        let error = error_of(&step).unwrap_or_default();
        assert!(error.contains(reason), "{options}: {error}");
        assert!(step.effects.is_empty(), "no call placed");
    }
}

#[test]
fn more_than_a_hundred_numbers_fail() {
    let many: Vec<String> = (0..101).map(|i| format!("+1415555{i:04}")).collect();
    let phlo = initiate(json!({ "from": "+14155550100", "to": "{{Start.http.params.to}}" }));
    let step = run(
        &phlo,
        &params_ctx(json!({ "to": many.join(",") })),
        Event::Enter,
    );
    done(&step, "failed");
    assert_eq!(
        error_of(&step).as_deref(),
        Some("`to` rendered to 101 recipients; the limit is 100")
    );
}

fn recorded(phlo: &Phlo, ctx: &Context) -> bool {
    match run(phlo, ctx, Event::Enter).effects.as_slice() {
        [Effect::PlaceCall(p)] => p.record,
        other => panic!("expected one PlaceCall, got {other:#?}"),
    }
}

#[test]
fn record_follows_the_truth_table_through_liquid_and_as_a_literal() {
    let dynamic = initiate(
        json!({ "from": "+14155550100", "to": "+14155550101", "record": "{{Start.http.params.rec}}" }),
    );
    for (rec, expected) in record_truth_table() {
        assert_eq!(
            recorded(&dynamic, &params_ctx(json!({ "rec": rec }))),
            expected,
            "rec = {rec}"
        );
        let literal =
            initiate(json!({ "from": "+14155550100", "to": "+14155550101", "record": rec }));
        assert_eq!(
            recorded(&literal, &ctx(json!({}))),
            expected,
            "record: {rec}"
        );
    }
    assert!(
        !recorded(&dynamic, &params_ctx(json!({}))),
        "a missing parameter renders empty"
    );
}

#[test]
fn initiate_call_needs_no_call_and_leaves_the_tokens_call_alone() {
    let phlo = initiate(json!({ "from": "+14155550100", "to": "+14155550101" }));
    let (wait, effects) = enter_and_wait(&phlo, &call_ctx(json!({})));
    assert_eq!(
        (wait.on, wait.timeout_secs),
        (WaitOn::Call { leg: 0 }, 60 + 120),
        "the default ring timeout is 60 s"
    );
    let place = PlaceCall {
        leg: 0,
        from: "+14155550100".into(),
        to: "+14155550101".into(),
        ring_timeout_secs: 60,
        record: false,
        machine_detection: true,
    };
    assert_eq!(effects, vec![Effect::PlaceCall(place)]);
}

#[test]
fn a_hang_up_is_not_an_initiate_call_event() {
    // The token waits on its outbound leg, whose end arrives as Event::Call; a hang-up is refused.
    let hangup = Event::Hangup {
        cause: "NORMAL_CLEARING".into(),
    };
    let err = phlo_flow::step(&bulk(), node_id(), &bulk_ctx(), &hangup).unwrap_err();
    assert_eq!(
        err,
        EngineError::UnexpectedEvent {
            node: "Call_Out".into(),
            kind: "initiate_call",
            event: "hangup"
        }
    );
}

#[test]
fn an_answered_call_is_recorded_when_record_holds() {
    use phlo_flow::effect::Effect;
    use phlo_flow::event::{CallDetails, CallOutcome, CallResult};
    for (record, recorded) in [
        (json!(true), true),
        (json!("TRUE"), true),
        (json!(0), false),
        (json!("false"), false),
    ] {
        let phlo = phlo_with(
            "initiate_call",
            "Initiate_Call_1",
            json!({ "from": "+14155550100", "to": ["+14155550101"], "record": record }),
            &["answered", "voicemail"],
        );
        let c = ctx(json!({}));
        let (wait, _) = enter_and_wait(&phlo, &c);
        for outcome in [CallOutcome::Answered, CallOutcome::Machine] {
            let event = phlo_flow::Event::Call(CallResult {
                leg: 0,
                outcome,
                call: CallDetails {
                    uuid: "leg-uuid".into(),
                    ..Default::default()
                },
            });
            let step = run(&phlo, &resumed(&c, &wait), event);
            let records: Vec<Effect> = step
                .effects
                .into_iter()
                .filter(|e| matches!(e, Effect::RecordCall { .. }))
                .collect();
            let expected = if recorded {
                vec![Effect::RecordCall {
                    call_uuid: "leg-uuid".into(),
                }]
            } else {
                vec![]
            };
            assert_eq!(records, expected, "record={record} {outcome:?}");
        }
    }
}
