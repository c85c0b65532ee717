//! Properties: validation and the engine never panic, whatever they are given, and each negated Branch
//! operator is the exact complement of its positive one.

use phlo_flow::condition::{Operator, evaluate};
use phlo_flow::engine::ActiveCall;
use phlo_flow::event::{
    CallDetails, CallOutcome, CallResult, ConferenceEvent, DialResult, HttpResult, MessageDetails,
    Recording, SmsReport,
};
use phlo_flow::{Context, Event, Kind, Phlo, Trigger};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e9f64..1e9).prop_map(|f| json!(f)),
        "\\PC{0,24}".prop_map(Value::String),
        prop::sample::select(vec![
            "{{ x }}",
            "{% if a %}b{% endif %}",
            "{{",
            "{% for %}",
            "+14155550100",
            "sip:a@b.c",
            "https://example.com/x",
            "1",
            "0",
            "TRUE",
            "",
            "{{ 1 | divided_by: 0 }}",
            "([0-9",
            "*",
            "#"
        ])
        .prop_map(|s| Value::String(s.to_owned())),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const IDS: &[&str] = &[
    "bbbbbbbb-0000-4000-8000-000000000000",
    "bbbbbbbb-0000-4000-8000-000000000001",
    "bbbbbbbb-0000-4000-8000-000000000002",
    "bbbbbbbb-0000-4000-8000-000000000003",
    "not-a-uuid",
];

const OPTION_KEYS: &[&str] = &[
    "from",
    "to",
    "message",
    "media_urls",
    "prompts",
    "prompt",
    "allowed_inputs",
    "input_timeout",
    "max_input_size",
    "ring_timeout",
    "record",
    "forwarding",
    "screening",
    "extension",
    "reason",
    "conference_name",
    "role",
    "method",
    "url",
    "headers",
    "params",
    "body",
    "auth",
    "timeout",
    "response",
    "max_count",
    "scope",
    "lhs",
    "conditions",
    "payload",
    "finish_on_key",
    "play_beep",
    "max_length",
    "wait_music_url",
    "enter_sound",
    "start_muted",
];

const STATES: &[&str] = &[
    "api_request",
    "sent",
    "failed",
    "1",
    "no_input",
    "answered",
    "completed",
    "success",
    "count_reached",
    "no_match",
    "x",
];

/// Definitions shaped like real ones (known keys, pooled ids, real types) so the fuzzing reaches the
/// component parsers and the graph checks, not only the top-level type errors.
fn definition_like() -> impl Strategy<Value = Value> {
    let node = (
        prop::sample::select(IDS),
        prop::sample::select(vec!["Start", "A", "B", "Bad Name", ""]),
        prop_oneof![prop::sample::select(Kind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()), Just("nope")],
        prop::collection::btree_map(prop::sample::select(OPTION_KEYS), json_value(), 0..6),
        prop::collection::btree_map(prop::sample::select(STATES), prop::sample::select(IDS), 0..3),
        prop::option::of(json_value()),
    )
        .prop_map(|(id, name, kind, options, transitions, callback)| {
            let mut node = json!({ "node_id": id, "name": name, "type": kind, "options": options, "transitions": transitions });
            if let Some(cb) = callback {
                node["callback"] = cb;
            }
            node
        });
    prop::collection::vec(node, 0..6).prop_map(|nodes| json!({ "name": "fuzz", "nodes": nodes }))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn validation_never_panics_on_any_json(value in json_value()) {
        let _ = phlo_flow::validate(&value);
    }

    #[test]
    fn validation_never_panics_on_definition_like_json(value in definition_like()) {
        let problems = phlo_flow::validate(&value);
        // Whatever it says, compile agrees with it.
        let compiled = phlo_flow::compile(&value);
        prop_assert_eq!(compiled.is_ok(), problems.iter().all(|p| p.severity == phlo_flow::Severity::Warning));
    }

    #[test]
    fn engine_never_panics(node in 0usize..14, vars in json_value(), parked in json_value(), on_call: bool, event in event()) {
        let phlo = every_component();
        let id = *phlo.nodes.keys().nth(node).unwrap();
        let ctx = Context {
            phlo_id: "p".into(),
            run_id: "r".into(),
            vars: object(vars),
            call: on_call.then(|| ActiveCall { uuid: "u".into(), from: "+14155550100".into(), to: "+14155550199".into() }),
            parked: object(parked),
        };
        let _ = phlo_flow::step(&phlo, id, &ctx, &event);
    }

    #[test]
    fn negated_operators_are_exact_complements(lhs in operand(), rhs in operand()) {
        let eval = |op| evaluate(op, &lhs, &rhs).unwrap();
        prop_assert_eq!(eval(Operator::NotEquals), !eval(Operator::Equals));
        prop_assert_eq!(eval(Operator::NotContains), !eval(Operator::Contains));
        prop_assert_eq!(eval(Operator::IsNotEmpty), !eval(Operator::IsEmpty));
        prop_assert_eq!(eval(Operator::LessOrEqual), !eval(Operator::GreaterThan));
        prop_assert_eq!(eval(Operator::GreaterOrEqual), !eval(Operator::LessThan));
    }
}

/// Numbers, numeric-looking text (NaN, inf, padded, exponents) and plain text.
fn operand() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i32>().prop_map(|n| n.to_string()),
        (-1e6f64..1e6).prop_map(|f| f.to_string()),
        prop::sample::select(vec![
            "NaN", "inf", "-inf", " 10 ", "1e3", "1.0", "", " ", "abc", "ABC", "0x10"
        ])
        .prop_map(str::to_owned),
        "\\PC{0,12}",
    ]
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => [("Start".to_owned(), other)].into_iter().collect(),
    }
}

fn event() -> impl Strategy<Value = Event> {
    let text = "\\PC{0,16}";
    prop_oneof![
        Just(Event::Enter),
        Just(Event::Timeout),
        Just(Event::PromptFinished),
        text.prop_map(|digits| Event::Digits { digits }),
        text.prop_map(|cause| Event::Hangup { cause }),
        any::<i64>().prop_map(|count| Event::Counter { count }),
        (text, json_value()).prop_map(|(request_uuid, params)| Event::Trigger(Trigger::Api {
            request_uuid,
            params: object(params)
        })),
        (text, text).prop_map(|(from, to)| Event::Trigger(Trigger::Call(CallDetails {
            from,
            to,
            ..Default::default()
        }))),
        (text, text, text).prop_map(|(from, to, msg)| Event::Trigger(Trigger::Message(
            MessageDetails {
                from,
                to,
                msg,
                ..Default::default()
            }
        ))),
        (0usize..4, text).prop_map(|(recipient, status)| Event::Sms(SmsReport {
            recipient,
            status,
            ..Default::default()
        })),
        (0usize..4, outcome(), text).prop_map(|(leg, outcome, to)| Event::Call(CallResult {
            leg,
            outcome,
            call: CallDetails {
                to,
                ..Default::default()
            }
        })),
        outcome().prop_map(|outcome| Event::Dial(DialResult {
            outcome,
            call: CallDetails::default()
        })),
        (text, any::<u64>()).prop_map(|(url, duration_ms)| Event::Recording(Recording {
            url,
            duration_ms,
            ..Default::default()
        })),
        (text, any::<bool>(), prop::option::of(text)).prop_map(|(event, ended, error)| {
            Event::Conference(ConferenceEvent {
                event,
                ended,
                error,
                ..Default::default()
            })
        }),
        (any::<u16>(), prop::option::of(text), text).prop_map(|(status, content_type, body)| {
            Event::Http(HttpResult::Response {
                status,
                content_type,
                headers: vec![],
                body,
                truncated: false,
            })
        }),
        text.prop_map(|message| Event::Http(HttpResult::Error { message })),
    ]
}

fn outcome() -> impl Strategy<Value = CallOutcome> {
    prop::sample::select(vec![
        CallOutcome::Answered,
        CallOutcome::Completed,
        CallOutcome::NoAnswer,
        CallOutcome::Busy,
        CallOutcome::Failed,
        CallOutcome::Machine,
    ])
}

/// One PHLO with a node of every component, options templated from the context so random contexts matter.
fn every_component() -> Phlo {
    let p = "{{Start.http.params.v}}";
    let nodes: Vec<Value> = [
        ("start", json!({ "payload": { "v": "1" } })),
        ("send_sms", json!({ "from": "+14155550100", "to": p, "message": p, "media_urls": [p] })),
        ("ivr_menu", json!({ "prompts": [{ "type": "speak", "text": p }], "allowed_inputs": ["1", "#"] })),
        ("get_input", json!({ "prompt": { "type": "play", "url": p }, "max_input_size": 4 })),
        ("initiate_call", json!({ "from": "+14155550100", "to": [p, "+14155550101"], "record": p })),
        ("call_forward", json!({ "from": p, "to": p, "forwarding": "parallel", "screening": { "prompt": p }, "extension": p, "record": p })),
        ("hangup", json!({ "reason": "busy" })),
        ("play_audio", json!({ "prompts": [p] })),
        ("record_audio", json!({ "prompt": p })),
        ("multi_party_call", json!({ "conference_name": p, "prompt": p, "agent_hold_music_url": p, "record": p })),
        ("conference_bridge", json!({ "conference_name": p, "announcement": p, "wait_music_url": p })),
        ("http_request", json!({ "method": "POST", "url": p, "headers": { "X": p }, "params": { "q": p },
            "body": { "type": "json", "content": { "a": [p] } }, "auth": { "type": "basic", "username": p, "password": p },
            "response": { "content_type": "application/json", "keys": ["a.b"] } })),
        ("counter", json!({ "max_count": 2 })),
        ("branch", json!({ "lhs": p, "conditions": [{ "alias": "m", "operation": "matches", "rhs": p }, { "alias": "n", "operation": "greater_than", "rhs": "3" }] })),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (kind, options))| {
        json!({ "node_id": format!("cccccccc-0000-4000-8000-{i:012}"), "name": format!("N{i}"), "type": kind, "options": options,
                "callback": { "url": "https://example.com/cb" } })
    })
    .collect();
    match phlo_flow::compile(&json!({ "name": "all", "nodes": nodes })) {
        Ok((phlo, _)) => phlo,
        Err(problems) => panic!("{problems:#?}"),
    }
}
