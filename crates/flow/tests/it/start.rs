//! Start: one state per trigger, the seed's variables for each, the payload defaults, callbacks.

use phlo_flow::effect::Callback;
use phlo_flow::engine::{ActiveCall, CallChange};
use phlo_flow::event::{CallDetails, MessageDetails};
use phlo_flow::{Effect, EngineError, Event, NodeId, Outcome, Phlo, Step, Trigger, Vars};
use serde_json::{Value, json};

use crate::support::{NODE_ID, START_ID, ctx};

fn start_id() -> NodeId {
    START_ID.parse().unwrap()
}

/// Start (with `options` and `callback`) → Send SMS, every Start state wired to the Send SMS.
fn start_phlo(options: Value, callback: Value) -> Phlo {
    let definition = json!({
        "name": "start test",
        "nodes": [
            { "node_id": START_ID, "name": "Start", "type": "start", "options": options, "callback": callback,
              "transitions": { "api_request": NODE_ID, "incoming_call": NODE_ID, "incoming_message": NODE_ID } },
            { "node_id": NODE_ID, "name": "Send_SMS_1", "type": "send_sms",
              "options": { "from": "+14155550100", "to": "+14155550199", "message": "hi" } },
        ]
    });
    match phlo_flow::compile(&definition) {
        Ok((phlo, _)) => phlo,
        Err(problems) => panic!("test PHLO does not compile: {problems:#?}"),
    }
}

fn trigger(phlo: &Phlo, t: Trigger) -> Step {
    phlo_flow::step(phlo, start_id(), &ctx(json!({})), &Event::Trigger(t)).unwrap()
}

/// Asserts Done in `state`, moving to the node under test, and returns the variables.
fn done_in(step: &Step, state: &str) -> Value {
    match &step.outcome {
        Outcome::Done {
            state: s,
            next,
            variables,
            error,
        } => {
            assert_eq!(s, state);
            assert_eq!(*next, Some(NODE_ID.parse().unwrap()));
            assert_eq!(*error, None);
            Value::Object(variables.clone())
        }
        other => panic!("expected Done({state}), got {other:#?}"),
    }
}

fn obj(v: Value) -> Vars {
    v.as_object().cloned().unwrap()
}

fn api(params: Value) -> Trigger {
    Trigger::Api {
        request_uuid: "req-uuid-1".into(),
        params: obj(params),
    }
}

#[test]
fn api_request_merges_payload_defaults_with_request_params() {
    let phlo = start_phlo(
        json!({ "payload": { "otp": "000000", "lang": "en" } }),
        Value::Null,
    );
    let cases = [
        // (request params, merged params)
        (json!({}), json!({ "otp": "000000", "lang": "en" })),
        (
            json!({ "otp": "779889" }),
            json!({ "otp": "779889", "lang": "en" }),
        ),
        (
            json!({ "otp": "779889", "to": "+14157654321", "n": 3 }),
            json!({ "otp": "779889", "lang": "en", "to": "+14157654321", "n": 3 }),
        ),
    ];
    for (params, merged) in cases {
        let step = trigger(&phlo, api(params.clone()));
        let expected = json!({
            "request_type": "http",
            "request": { "uuid": "req-uuid-1", "params": merged },
            "http": { "params": merged },
        });
        assert_eq!(done_in(&step, "api_request"), expected, "params {params}");
        assert_eq!(step.call, CallChange::Keep);
        assert!(step.effects.is_empty());
    }
}

#[test]
fn api_request_without_payload_option_and_liquid_access() {
    let phlo = start_phlo(json!({}), Value::Null);
    let step = trigger(&phlo, api(json!({ "otp": "779889", "order": { "id": 7 } })));
    let vars = done_in(&step, "api_request");
    assert_eq!(
        vars["http"]["params"],
        json!({ "otp": "779889", "order": { "id": 7 } })
    );
    let context = ctx(json!({ "Start": vars }));
    for (source, rendered) in [
        ("{{Start.http.params.otp}}", "779889"),
        ("{{Start.request.params.order.id}}", "7"),
        (
            "{{Start.request.uuid}}/{{Start.request_type}}",
            "req-uuid-1/http",
        ),
        ("[{{Start.http.params.missing}}]", "[]"),
    ] {
        let t = phlo_template::Template::parse(source).unwrap();
        assert_eq!(context.render(&t).unwrap(), rendered, "{source}");
    }
}

#[test]
fn incoming_call_sets_every_call_variable_and_binds_the_call() {
    let phlo = start_phlo(json!({}), Value::Null);
    let call = CallDetails {
        uuid: "call-uuid-9".into(),
        from: "+14155552671".into(),
        to: "+33612345678".into(),
        start_time: Some("2024-05-01 10:00:00".into()),
        ..CallDetails::default()
    };
    let step = trigger(&phlo, Trigger::Call(call));
    let expected = json!({
        "request_type": "call",
        "call": {
            "uuid": "call-uuid-9", "to": "+33612345678", "from": "+14155552671",
            "start_time": "2024-05-01 10:00:00", "answer_time": null, "end_time": null,
            "direction": "inbound", "leg": "ALeg",
            "to_iso2": "FR", "from_iso2": "US", "to_country": "France", "from_country": "United States",
            "hangup_cause": null, "duration": null, "bill_duration": null, "bill_rate": null, "bill_amount": null,
        }
    });
    assert_eq!(done_in(&step, "incoming_call"), expected);
    let bound = ActiveCall {
        uuid: "call-uuid-9".into(),
        from: "+14155552671".into(),
        to: "+33612345678".into(),
    };
    assert_eq!(step.call, CallChange::Bind(bound));
}

#[test]
fn incoming_call_regions_of_numbers_and_sip_endpoints() {
    let phlo = start_phlo(json!({}), Value::Null);
    let cases = [
        // (from, to, from_iso2, from_country, to_iso2, to_country)
        (
            "14165551234",
            "+442071838750",
            json!("CA"),
            json!("Canada"),
            json!("GB"),
            json!("United Kingdom"),
        ),
        (
            "sip:alice@phone.plivo.com",
            "+4915123456789",
            json!(null),
            json!(null),
            json!("DE"),
            json!("Germany"),
        ),
        (
            "+14155552671",
            "sip:bob@example.com",
            json!("US"),
            json!("United States"),
            json!(null),
            json!(null),
        ),
    ];
    for (from, to, from_iso2, from_country, to_iso2, to_country) in cases {
        let call = CallDetails {
            uuid: "c".into(),
            from: from.into(),
            to: to.into(),
            ..CallDetails::default()
        };
        let vars = done_in(&trigger(&phlo, Trigger::Call(call)), "incoming_call");
        let c = &vars["call"];
        assert_eq!(
            (
                &c["from_iso2"],
                &c["from_country"],
                &c["to_iso2"],
                &c["to_country"]
            ),
            (&from_iso2, &from_country, &to_iso2, &to_country),
            "{from} -> {to}"
        );
        assert_eq!((&c["from"], &c["to"]), (&json!(from), &json!(to)));
    }
}

#[test]
fn incoming_message_sets_every_message_variable() {
    let phlo = start_phlo(json!({}), Value::Null);
    let message = MessageDetails {
        message_uuid: "msg-uuid-1".into(),
        time: Some("2024-05-01T10:00:00Z".into()),
        from: "+33612345678".into(),
        to: "+14155552671".into(),
        msg: "STOP".into(),
        units: Some(1),
        total_rate: Some("0.0050".into()),
        total_amount: Some("0.0050".into()),
    };
    let step = trigger(&phlo, Trigger::Message(message));
    let expected = json!({
        "request_type": "sms",
        "message": {
            "message_uuid": "msg-uuid-1", "time": "2024-05-01T10:00:00Z",
            "direction": "inbound", "status": "received",
            "to": "+14155552671", "from": "+33612345678",
            "to_iso2": "US", "from_iso2": "FR", "to_country": "United States", "from_country": "France",
            "msg": "STOP", "text": "STOP", "units": 1, "total_rate": "0.0050", "total_amount": "0.0050",
        }
    });
    assert_eq!(done_in(&step, "incoming_message"), expected);
    assert_eq!(step.call, CallChange::Keep, "an SMS has no call to bind");
}

#[test]
fn callbacks_follow_the_events_filter() {
    let all = json!({ "url": "https://hooks.example.com/start" });
    let only_api = json!({ "url": "https://hooks.example.com/start", "method": "get", "events": ["api_request"] });
    let call = Trigger::Call(CallDetails {
        uuid: "c1".into(),
        from: "+14155552671".into(),
        to: "+14155550199".into(),
        ..CallDetails::default()
    });
    let cases = [
        (
            all.clone(),
            api(json!({ "otp": "1" })),
            "api_request",
            Some("POST"),
        ),
        (all, call.clone(), "incoming_call", Some("POST")),
        (
            only_api.clone(),
            api(json!({ "otp": "1" })),
            "api_request",
            Some("GET"),
        ),
        (only_api, call, "incoming_call", None),
    ];
    for (callback, t, state, method) in cases {
        let phlo = start_phlo(json!({}), callback);
        let step = trigger(&phlo, t);
        let variables = obj(done_in(&step, state));
        let expected: Vec<Effect> = method
            .map(|m| {
                Effect::Callback(Callback {
                    url: "https://hooks.example.com/start".into(),
                    method: m.into(),
                    event: state.into(),
                    phlo_id: "phlo-1".into(),
                    run_id: "run-1".into(),
                    node_id: START_ID.into(),
                    node_name: "Start".into(),
                    node_type: "start".into(),
                    state: Some(state.into()),
                    variables,
                })
            })
            .into_iter()
            .collect();
        assert_eq!(step.effects, expected, "{state} via {method:?}");
    }
}

#[test]
fn start_takes_only_triggers() {
    let phlo = start_phlo(json!({}), Value::Null);
    let err = phlo_flow::step(&phlo, start_id(), &ctx(json!({})), &Event::Enter).unwrap_err();
    assert_eq!(
        err,
        EngineError::UnexpectedEvent {
            node: "Start".into(),
            kind: "start",
            event: "enter"
        }
    );
}
