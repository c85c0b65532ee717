//! Builders shared by the component tests: a one-node PHLO behind a Start, contexts with or without a
//! call, and shorthands for running events through the engine.

#![allow(dead_code)]

use phlo_flow::engine::{ActiveCall, Context};
use phlo_flow::{Effect, Event, NodeId, Outcome, Phlo, Step, Vars, Wait};
use serde_json::{Value, json};

pub const START_ID: &str = "00000000-0000-4000-8000-000000000000";
pub const NODE_ID: &str = "00000000-0000-4000-8000-000000000001";
pub const NEXT_ID: &str = "00000000-0000-4000-8000-000000000002";

/// A PHLO of Start → the node under test (named `name`, of `kind`, with `options`), whose every state in
/// `states` leads to a Hangup named `Next`.
pub fn phlo_with(kind: &str, name: &str, options: Value, states: &[&str]) -> Phlo {
    let transitions: serde_json::Map<String, Value> = states
        .iter()
        .map(|s| ((*s).to_owned(), json!(NEXT_ID)))
        .collect();
    let definition = json!({
        "name": "test",
        "nodes": [
            { "node_id": START_ID, "name": "Start", "type": "start", "transitions": { "api_request": NODE_ID, "incoming_call": NODE_ID, "incoming_message": NODE_ID } },
            { "node_id": NODE_ID, "name": name, "type": kind, "options": options, "transitions": transitions },
            { "node_id": NEXT_ID, "name": "Next", "type": "hangup" },
        ]
    });
    match phlo_flow::compile(&definition) {
        Ok((phlo, _)) => phlo,
        Err(problems) => panic!("test PHLO does not compile: {problems:#?}"),
    }
}

pub fn node_id() -> NodeId {
    NODE_ID.parse().unwrap()
}

pub fn next_id() -> NodeId {
    NEXT_ID.parse().unwrap()
}

/// A context with Liquid variables and no call.
pub fn ctx(vars: Value) -> Context {
    Context {
        phlo_id: "phlo-1".into(),
        run_id: "run-1".into(),
        vars: vars.as_object().cloned().unwrap_or_default(),
        call: None,
        parked: Vars::new(),
    }
}

/// A context on an incoming call from +14155550100 to +14155550199.
pub fn call_ctx(vars: Value) -> Context {
    let mut c = ctx(vars);
    c.call = Some(ActiveCall {
        uuid: "call-uuid-1".into(),
        from: "+14155550100".into(),
        to: "+14155550199".into(),
    });
    c
}

pub fn run(phlo: &Phlo, ctx: &Context, event: Event) -> Step {
    phlo_flow::step(phlo, node_id(), ctx, &event).unwrap()
}

/// Enters the node, expects exactly one wait, and returns it with the effects.
pub fn enter_and_wait(phlo: &Phlo, ctx: &Context) -> (Wait, Vec<Effect>) {
    let step = run(phlo, ctx, Event::Enter);
    match step.outcome {
        Outcome::Wait { mut waits } if waits.len() == 1 => (waits.remove(0), step.effects),
        other => panic!("expected one wait, got {other:#?}"),
    }
}

/// The context a parked token resumes with.
pub fn resumed(ctx: &Context, wait: &Wait) -> Context {
    let mut c = ctx.clone();
    c.parked = wait.variables.clone();
    c
}

/// Asserts the step is `Done` in `state` and returns its variables.
pub fn done(step: &Step, state: &str) -> Vars {
    match &step.outcome {
        Outcome::Done {
            state: s,
            variables,
            next,
            ..
        } => {
            assert_eq!(s, state, "state");
            assert_eq!(
                *next,
                Some(next_id()),
                "a state with a transition moves the token on"
            );
            variables.clone()
        }
        other => panic!("expected Done({state}), got {other:#?}"),
    }
}

pub fn error_of(step: &Step) -> Option<String> {
    match &step.outcome {
        Outcome::Done { error, .. } => error.clone(),
        Outcome::Stop { reason, .. } => Some(reason.clone()),
        Outcome::Wait { .. } => None,
    }
}

pub fn stopped(step: &Step) -> String {
    match &step.outcome {
        Outcome::Stop { reason, .. } => reason.clone(),
        other => panic!("expected Stop, got {other:#?}"),
    }
}

/// Like [`phlo_with`], with `callback` (an event-callback block) on the node under test.
pub fn phlo_with_callback(
    kind: &str,
    name: &str,
    options: Value,
    states: &[&str],
    callback: Value,
) -> Phlo {
    let transitions: serde_json::Map<String, Value> = states
        .iter()
        .map(|s| ((*s).to_owned(), json!(NEXT_ID)))
        .collect();
    let definition = json!({
        "name": "test",
        "nodes": [
            { "node_id": START_ID, "name": "Start", "type": "start", "transitions": { "api_request": NODE_ID } },
            { "node_id": NODE_ID, "name": name, "type": kind, "options": options, "transitions": transitions, "callback": callback },
            { "node_id": NEXT_ID, "name": "Next", "type": "hangup" },
        ]
    });
    match phlo_flow::compile(&definition) {
        Ok((phlo, _)) => phlo,
        Err(problems) => panic!("test PHLO does not compile: {problems:#?}"),
    }
}

/// The callback effect for the node under test ending in `state`, in a [`ctx`] context.
pub fn expected_callback(
    url: &str,
    method: &str,
    kind: &str,
    name: &str,
    state: &str,
    variables: &Vars,
) -> Effect {
    Effect::Callback(phlo_flow::effect::Callback {
        url: url.into(),
        method: method.into(),
        event: state.into(),
        phlo_id: "phlo-1".into(),
        run_id: "run-1".into(),
        node_id: NODE_ID.into(),
        node_name: name.into(),
        node_type: kind.into(),
        state: Some(state.into()),
        variables: variables.clone(),
    })
}

/// A context of a run started by the API with these params (`{{Start.http.params.<key>}}`).
pub fn params_ctx(params: Value) -> Context {
    ctx(
        json!({ "Start": { "request_type": "http", "http": { "params": params.clone() }, "request": { "uuid": "req-1", "params": params } } }),
    )
}

/// A context on the incoming call of [`call_ctx`] whose run also carries these API params
/// (`{{Start.http.params.<key>}}`).
pub fn params_call_ctx(params: Value) -> Context {
    let mut c = params_ctx(params);
    c.call = call_ctx(json!({})).call;
    c
}

/// The seed's Record Audio truth table: values of `record` (literal, or passed as
/// `{{Start.http.params.rec}}`) and whether they record. True: any non-zero integer, `true` in any case,
/// a non-empty object or string. False: 0, `false` in any case, empty, null.
#[rustfmt::skip]
pub fn record_truth_table() -> Vec<(Value, bool)> {
    let truthy = [json!("TRUE"), json!("true"), json!("yes"), json!(1), json!(-7), json!("-2"), json!(true), json!({ "a": 1 })];
    let falsy = [json!(0), json!("0"), json!(""), json!("FaLsE"), json!("false"), json!(false), json!(null), json!({})];
    truthy.into_iter().map(|v| (v, true)).chain(falsy.into_iter().map(|v| (v, false))).collect()
}
