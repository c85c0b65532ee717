//! Initiate Call and Call Forward end to end: the workers place calls through the simulator's REST API,
//! the simulator's scripted parties answer (or not), and the gateway answers the call's webhooks with the
//! XML the PHLO says. Each test asserts the node's state, its variables (the seed's names) and what each
//! party heard, pressed and received in the simulator's call log.

use serde_json::{Value, json};

use crate::support::rig::{Rig, events, heard, kinds, pressed, steps};
use crate::support::done_step;

const START: &str = "71000000-0000-4000-8000-000000000000";
const CALL: &str = "71000000-0000-4000-8000-000000000001";
const PLAY: &str = "71000000-0000-4000-8000-000000000002";
const BYE: &str = "71000000-0000-4000-8000-000000000003";

const OURS: &str = "+14155550100";
const ALICE: &str = "+14155550101";

/// Start (API) → Initiate Call → `answered`: Play Audio → Hangup.
fn initiate_phlo(to: Value, extra: Value) -> Value {
    let mut options = json!({ "from": OURS, "to": to, "ring_timeout": 10 });
    if let (Some(o), Some(e)) = (options.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    json!({ "name": "Outbound", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "api_request": CALL } },
        { "node_id": CALL, "name": "Initiate_Call_1", "type": "initiate_call", "options": options,
          "transitions": { "answered": PLAY, "voicemail": PLAY } },
        { "node_id": PLAY, "name": "Play_Greeting", "type": "play_audio",
          "options": { "prompts": ["Hello {{Initiate_Call_1.to}}, this is {{Initiate_Call_1.from}}"] },
          "transitions": { "prompt_completed": BYE } },
        { "node_id": BYE, "name": "Hangup_1", "type": "hangup" },
    ]})
}

#[tokio::test(flavor = "multi_thread")]
async fn initiate_call_answered_plays_audio_to_the_callee() {
    let rig = Rig::start().await;
    let phlo = rig.phlo(initiate_phlo(json!([ALICE]), json!({}))).await;
    let run_id = rig.trigger(&phlo, json!({})).await;
    let run = rig.finished_run(&run_id).await;
    println!("{run:#}");
    let calls = rig.ended_calls_to(ALICE, 1).await;
    println!("{:#}", calls[0]);
    rig.finish().await;
}
