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

/// While no worker runs, the call's XML cannot come: the gateway keeps the call alive (Wait + Redirect
/// to `/continue`) instead of dropping it, and the call goes on once a worker starts.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_step_keeps_the_call_alive_instead_of_dropping_it() {
    let sim = Sim::start().await;
    let (mut stack, acct) =
        crate::voice_support::voice_stack_with(&sim, &[("PHLO_VOICE_PATIENCE_MS", "300")]).await;
    let phlo_id = stack.create_phlo(&acct, ivr_phlo()).await;
    attach(&stack, &acct, NUMBER, &phlo_id).await;
    sim.script(&stack.http, CALLER, json!({ "digits": ["2"] }))
        .await;
    stack.kill_all_workers();
    let call_uuid = call_in(&stack, &sim, CALLER, NUMBER).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let hooks = sim.get(&stack.http, "/sim/webhooks").await;
        let continues = hooks
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["url"].as_str().is_some_and(|u| u.contains("/continue/")))
            .count();
        if continues >= 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no keep-alive round trips: {hooks:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let call = sim
        .get(&stack.http, &format!("/sim/calls/{call_uuid}"))
        .await;
    assert_eq!(
        call["status"], "in-progress",
        "the call is kept, not dropped: {call:#}"
    );
    assert!(!events_of(&call, "waited").is_empty(), "{call:#}");

    stack.spawn_worker();
    let run_id = run_of_call(&stack, &acct).await;
    let run = stack
        .wait_run(&acct, &run_id, Duration::from_secs(30))
        .await;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(done_step(&run, "IVR_Menu_1")["state"], "2");
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
    stack.cleanup().await;
}

/// Carrier webhooks must carry a valid X-Plivo-Signature-V3 when a carrier token is configured.
#[tokio::test(flavor = "multi_thread")]
async fn unsigned_or_forged_webhooks_are_refused() {
    let sim = Sim::start().await;
    let (mut stack, acct) = voice_stack(&sim).await;
    let phlo_id = stack.create_phlo(&acct, ivr_phlo()).await;
    attach(&stack, &acct, NUMBER, &phlo_id).await;
    let form = [
        ("CallUUID", "forged-1"),
        ("From", CALLER),
        ("To", NUMBER),
        ("Direction", "inbound"),
    ];
    let url = stack.url("/v1/carrier/voice/answer");
    let unsigned = stack.http.post(&url).form(&form).send().await.unwrap();
    assert_eq!(unsigned.status(), 403);
    let forged = stack
        .http
        .post(&url)
        .header("X-Plivo-Signature-V3", "bm90IGEgc2lnbmF0dXJl")
        .header("X-Plivo-Signature-V3-Nonce", "12345678901234567890")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let body: Value = forged.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("X-Plivo-Signature-V3"),
        "{body}"
    );
    // Nothing started.
    let (_, runs) = stack
        .call(&acct, reqwest::Method::GET, "/v1/runs", None)
        .await;
    assert_eq!(runs["objects"], json!([]));
    stack.cleanup().await;
}
