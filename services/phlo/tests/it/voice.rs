//! Voice end to end: the carrier simulator calls the gateway's webhooks, the workers run the nodes, and
//! the caller hears, presses and is hung up on as the PHLO says.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Sim, done_step};
use crate::voice_support::{attach, call_in, call_log, events_of, run_of_call, voice_stack};

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

#[tokio::test(flavor = "multi_thread")]
async fn an_incoming_call_walks_an_ivr_menu() {
    let sim = Sim::start().await;
    let (mut stack, acct) = voice_stack(&sim).await;
    let phlo_id = stack.create_phlo(&acct, ivr_phlo()).await;
    attach(&stack, &acct, NUMBER, &phlo_id).await;
    sim.script(&stack.http, CALLER, json!({ "digits": ["2"] }))
        .await;

    let call_uuid = call_in(&stack, &sim, CALLER, NUMBER).await;
    let run_id = run_of_call(&stack, &acct).await;
    let run = stack
        .wait_run(&acct, &run_id, Duration::from_secs(30))
        .await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let start = done_step(&run, "Start");
    assert_eq!(start["state"], "incoming_call");
    assert_eq!(start["variables"]["call"]["uuid"], call_uuid.as_str());
    assert_eq!(start["variables"]["call"]["from"], CALLER);
    assert_eq!(start["variables"]["call"]["to_iso2"], "US");
    assert_eq!(start["variables"]["call"]["direction"], "inbound");
    let ivr = done_step(&run, "IVR_Menu_1");
    assert_eq!(ivr["state"], "2");
    assert_eq!(
        ivr["variables"],
        json!({ "digits": "2", "input_type": "digits" })
    );
    assert_eq!(done_step(&run, "Play_Support")["state"], "prompt_completed");
    assert_eq!(done_step(&run, "Hangup_1")["state"], "hangup_complete");

    let call = call_log(&stack, &sim, &call_uuid).await;
    let heard: Vec<&str> = events_of(&call, "heard")
        .iter()
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert_eq!(
        heard,
        [
            "Press 1 for sales or 2 for support",
            "Support it is, +14155550100"
        ]
    );
    let pressed: Vec<&str> = events_of(&call, "pressed")
        .iter()
        .filter_map(|e| e["digits"].as_str())
        .collect();
    assert_eq!(pressed, ["2"]);
    assert_eq!(events_of(&call, "hung_up").len(), 1, "{call:#}");
    stack.cleanup().await;
}
