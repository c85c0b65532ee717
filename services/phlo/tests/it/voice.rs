//! Voice end to end: the carrier simulator calls the gateway's webhooks, the workers run the nodes, and
//! the caller hears, presses and is hung up on as the PHLO says.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Account, Sim, Stack, done_step};

const START: &str = "70000000-0000-4000-8000-000000000000";
const IVR: &str = "70000000-0000-4000-8000-000000000001";
const PLAY: &str = "70000000-0000-4000-8000-000000000002";
const BYE: &str = "70000000-0000-4000-8000-000000000003";
const CALLER: &str = "+14155550100";
const NUMBER: &str = "+14155550199";

fn ivr_phlo() -> Value {
    json!({ "name": "IVR", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "incoming_call": IVR } },
        { "node_id": IVR, "name": "IVR_Menu_1", "type": "ivr_menu",
          "options": { "prompts": [{ "type": "speak", "text": "Press 1 for sales or 2 for support" }],
                       "allowed_inputs": ["1", "2"], "input_timeout": 5 },
          "transitions": { "2": PLAY, "no_input": BYE, "wrong_input": BYE } },
        { "node_id": PLAY, "name": "Play_Support", "type": "play_audio",
          "options": { "prompts": ["Support it is, {{Start.call.from}}"] },
          "transitions": { "prompt_completed": BYE } },
        { "node_id": BYE, "name": "Hangup_1", "type": "hangup" },
    ]})
}

async fn voice_stack(sim: &Sim) -> (Stack, Account) {
    let env = sim.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let stack = Stack::start_with(1, &env).await;
    let acct = stack.account().await;
    (stack, acct)
}

async fn attach(stack: &Stack, acct: &Account, number: &str, phlo_id: &str) {
    let (status, body) = stack.call(acct, Method::PUT, &format!("/v1/numbers/{number}"), Some(json!({ "phlo_id": phlo_id }))).await;
    assert_eq!(status, 200, "{body}");
}

/// Places an inbound call from `from` to `to` through the simulator and returns its uuid.
async fn call_in(stack: &Stack, sim: &Sim, from: &str, to: &str) -> String {
    let body = json!({
        "from": from, "to": to,
        "answer_url": stack.url("/v1/carrier/voice/answer"),
        "hangup_url": stack.url("/v1/carrier/voice/hangup"),
    });
    sim.post(&stack.http, "/sim/calls", body).await["call_uuid"].as_str().unwrap().to_owned()
}

/// The run a call started (the newest one).
async fn run_of_call(stack: &Stack, acct: &Account) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list) = stack.call(acct, Method::GET, "/v1/runs?trigger=call", None).await;
        if let Some(id) = list["objects"][0]["run_id"].as_str() {
            return id.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "no run started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What the simulator recorded for a call once it ended.
async fn call_log(stack: &Stack, sim: &Sim, call_uuid: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let call = sim.get(&stack.http, &format!("/sim/calls/{call_uuid}")).await;
        if call["status"] == "completed" {
            return call;
        }
        assert!(std::time::Instant::now() < deadline, "call still up: {call:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn events_of<'a>(call: &'a Value, kind: &str) -> Vec<&'a Value> {
    call["events"].as_array().unwrap().iter().filter(|e| e["kind"] == kind).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incoming_call_walks_an_ivr_menu() {
    let sim = Sim::start().await;
    let (mut stack, acct) = voice_stack(&sim).await;
    let phlo_id = stack.create_phlo(&acct, ivr_phlo()).await;
    attach(&stack, &acct, NUMBER, &phlo_id).await;
    sim.script(&stack.http, CALLER, json!({ "digits": ["2"] })).await;

    let call_uuid = call_in(&stack, &sim, CALLER, NUMBER).await;
    let run_id = run_of_call(&stack, &acct).await;
    let run = stack.wait_run(&acct, &run_id, Duration::from_secs(30)).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let start = done_step(&run, "Start");
    assert_eq!(start["state"], "incoming_call");
    assert_eq!(start["variables"]["call"]["uuid"], call_uuid.as_str());
    assert_eq!(start["variables"]["call"]["from"], CALLER);
    assert_eq!(start["variables"]["call"]["to_iso2"], "US");
    assert_eq!(start["variables"]["call"]["direction"], "inbound");
    let ivr = done_step(&run, "IVR_Menu_1");
    assert_eq!(ivr["state"], "2");
    assert_eq!(ivr["variables"], json!({ "digits": "2", "input_type": "digits" }));
    assert_eq!(done_step(&run, "Play_Support")["state"], "prompt_completed");
    assert_eq!(done_step(&run, "Hangup_1")["state"], "hangup_complete");

    let call = call_log(&stack, &sim, &call_uuid).await;
    let heard: Vec<&str> = events_of(&call, "heard").iter().filter_map(|e| e["text"].as_str()).collect();
    assert_eq!(heard, ["Press 1 for sales or 2 for support", "Support it is, +14155550100"]);
    let pressed: Vec<&str> = events_of(&call, "pressed").iter().filter_map(|e| e["digits"].as_str()).collect();
    assert_eq!(pressed, ["2"]);
    assert_eq!(events_of(&call, "hung_up").len(), 1, "{call:#}");
    stack.cleanup().await;
}
