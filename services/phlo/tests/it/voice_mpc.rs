//! The multiparty-call trigger API end to end: a customer calls in and joins a multiparty call; agents
//! are called, transferred, held and hung up through the API; the simulator's room shows the result.
//!
//! Conformance scenarios (dev mode and distributed): `the_official_python_sdk_drives_a_multiparty_call`,
//! `conference_bridge_member_actions`.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Account, Sim, Stack, Target};
use crate::voice_support::{call_in, phlo_on, run_of_call, voice_stack, voice_stack_on};

crate::conformance!(
    the_official_python_sdk_drives_a_multiparty_call,
    conference_bridge_member_actions,
);

const START: &str = "3c000000-0000-4000-8000-000000000000";
pub const MPC: &str = "3c000000-0000-4000-8000-000000000001";
pub const CUSTOMER: &str = "+14155550100";
pub const NUMBER: &str = "+14155550199";
pub const AGENTS: [&str; 4] = [
    "+14155550111",
    "+14155550122",
    "+14155550133",
    "+14155550144",
];
pub const ROOM: &str = "support";

pub fn mpc_phlo() -> Value {
    json!({ "name": "Support line", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "incoming_call": MPC } },
        { "node_id": MPC, "name": "Multiparty_Call_1", "type": "multi_party_call",
          "options": { "conference_name": ROOM, "role": "customer", "from": NUMBER,
                       "prompt": "Connecting you to support",
                       "voicemail_message": "Sorry we missed you, call {{Start.call.to}} back" } },
    ]})
}

/// A customer on the line in the multiparty call, with agents that answer and stay.
pub async fn customer_in_room(sim: &Sim) -> (Stack, Account, String, String) {
    let (stack, acct) = voice_stack(sim).await;
    let (phlo_id, run_id) = customer_joins(&stack, sim, &acct).await;
    (stack, acct, phlo_id, run_id)
}

/// [`customer_in_room`] on `target`: (stack, its simulator, account, PHLO id, run id).
pub async fn customer_in_room_on(target: Target) -> (Stack, Sim, Account, String, String) {
    let (stack, sim, acct) = voice_stack_on(target, &[]).await;
    let (phlo_id, run_id) = customer_joins(&stack, &sim, &acct).await;
    (stack, sim, acct, phlo_id, run_id)
}

/// The support PHLO on `NUMBER`, agents scripted, and the customer called in and in the room:
/// (PHLO id, run id).
async fn customer_joins(stack: &Stack, sim: &Sim, acct: &Account) -> (String, String) {
    let phlo_id = phlo_on(stack, acct, NUMBER, mpc_phlo()).await;
    sim.script(&stack.http, CUSTOMER, json!({ "talk_secs": null }))
        .await;
    for agent in AGENTS {
        sim.script(
            &stack.http,
            agent,
            json!({ "answer": "answer", "answer_after_secs": 1, "talk_secs": null }),
        )
        .await;
    }
    call_in(stack, sim, CUSTOMER, NUMBER).await;
    let run_id = run_of_call(stack, acct).await;
    wait_member(stack, acct, &run_id, CUSTOMER, "in_call").await;
    (phlo_id, run_id)
}

/// Waits until the run's room lists `address` in `state`.
pub async fn wait_member(stack: &Stack, acct: &Account, run_id: &str, address: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = stack.get_run(acct, run_id).await;
        let found = run["room_members"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["address"] == address && m["state"] == state);
        if found {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{address} never {state}: {:#}",
            run["room_members"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The simulator's view of the room: address → state.
pub async fn sim_room(stack: &Stack, sim: &Sim) -> Vec<(String, String)> {
    let room = sim.get(&stack.http, &format!("/sim/rooms/{ROOM}")).await;
    room["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["party"].as_str().unwrap_or_default().to_owned(),
                m["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn node_action(stack: &Stack, acct: &Account, phlo_id: &str, body: Value) -> (u16, Value) {
    stack
        .call(
            acct,
            Method::POST,
            &format!("/v1/phlo/{phlo_id}/multi_party_call/{MPC}"),
            Some(body),
        )
        .await
}

async fn member_action(
    stack: &Stack,
    acct: &Account,
    phlo_id: &str,
    address: &str,
    action: &str,
) -> (u16, Value) {
    let path = format!("/v1/phlo/{phlo_id}/multi_party_call/{MPC}/members/{address}");
    stack
        .call(acct, Method::POST, &path, Some(json!({ "action": action })))
        .await
}

fn ok(response: (u16, Value)) {
    assert_eq!(response.0, 201, "{}", response.1);
    assert_eq!(response.1["error"], "", "{}", response.1);
    assert!(response.1["api_id"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_004_cold_transfer() {
    let sim = Sim::start().await;
    let (mut stack, acct, phlo_id, run_id) = customer_in_room(&sim).await;
    ok(node_action(
        &stack,
        &acct,
        &phlo_id,
        json!({ "action": "call", "trigger_source": CUSTOMER, "to": AGENTS[0], "role": "agent" }),
    )
    .await);
    wait_member(&stack, &acct, &run_id, AGENTS[0], "in_call").await;

    // The request exactly as seed 004 sends it.
    let raw = r#"{"action":"cold_transfer","to":"+14155550122","role":"agent","trigger_source":"+14155550111"}"#;
    let r = stack
        .http
        .post(stack.url(&format!("/v1/phlo/{phlo_id}/multi_party_call/{MPC}")))
        .basic_auth(&acct.auth_id, Some(&acct.token))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "");
    assert!(body["api_id"].as_str().is_some_and(|a| !a.is_empty()));

    wait_member(&stack, &acct, &run_id, AGENTS[1], "in_call").await;
    wait_member(&stack, &acct, &run_id, AGENTS[0], "left").await;
    wait_member(&stack, &acct, &run_id, CUSTOMER, "in_call").await;
    let room = sim_room(&stack, &sim).await;
    let state_of = |who: &str| {
        room.iter()
            .filter(|(p, _)| p == who)
            .map(|(_, s)| s.clone())
            .next_back()
    };
    assert_eq!(state_of(CUSTOMER).as_deref(), Some("in_call"), "{room:?}");
    assert_eq!(state_of(AGENTS[1]).as_deref(), Some("in_call"), "{room:?}");
    assert_eq!(state_of(AGENTS[0]).as_deref(), Some("left"), "{room:?}");
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_action_moves_members_and_wrong_states_are_refused() {
    let sim = Sim::start().await;
    let (mut stack, acct, phlo_id, run_id) = customer_in_room(&sim).await;
    let [a1, a2, a3, a4] = AGENTS;
    ok(node_action(
        &stack,
        &acct,
        &phlo_id,
        json!({ "action": "call", "trigger_source": CUSTOMER, "to": a1, "role": "agent" }),
    )
    .await);
    wait_member(&stack, &acct, &run_id, a1, "in_call").await;

    ok(member_action(&stack, &acct, &phlo_id, CUSTOMER, "hold").await);
    wait_member(&stack, &acct, &run_id, CUSTOMER, "on_hold").await;
    let (status, body) = member_action(&stack, &acct, &phlo_id, CUSTOMER, "hold").await;
    assert_eq!(status, 409, "holding a held member: {body}");
    assert!(
        body["error"].as_str().unwrap().contains("on_hold"),
        "{body}"
    );
    ok(member_action(&stack, &acct, &phlo_id, CUSTOMER, "unhold").await);
    wait_member(&stack, &acct, &run_id, CUSTOMER, "in_call").await;

    // Warm transfer, then resume: the customer waits on hold, then everyone is together.
    ok(node_action(
        &stack,
        &acct,
        &phlo_id,
        json!({ "action": "warm-transfer", "trigger_source": a1, "to": a2 }),
    )
    .await);
    wait_member(&stack, &acct, &run_id, CUSTOMER, "on_hold").await;
    wait_member(&stack, &acct, &run_id, a2, "in_call").await;
    ok(member_action(&stack, &acct, &phlo_id, a1, "resume_call").await);
    wait_member(&stack, &acct, &run_id, CUSTOMER, "in_call").await;
    wait_member(&stack, &acct, &run_id, a1, "in_call").await;

    // Warm transfer aborted: the new agent leaves, the customer is back.
    ok(node_action(
        &stack,
        &acct,
        &phlo_id,
        json!({ "action": "warm_transfer", "trigger_source": a1, "to": a3 }),
    )
    .await);
    wait_member(&stack, &acct, &run_id, a3, "in_call").await;
    ok(member_action(&stack, &acct, &phlo_id, a3, "abort_transfer").await);
    wait_member(&stack, &acct, &run_id, a3, "left").await;
    wait_member(&stack, &acct, &run_id, CUSTOMER, "in_call").await;

    ok(member_action(&stack, &acct, &phlo_id, a2, "mute").await);
    ok(member_action(&stack, &acct, &phlo_id, a2, "unmute").await);
    ok(member_action(&stack, &acct, &phlo_id, a2, "voicemail_drop").await);
    wait_member(&stack, &acct, &run_id, a2, "left").await;
    // The agent's line heard the node's voicemail message, then was hung up.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let calls = sim.get(&stack.http, "/sim/calls").await;
        let agent = calls
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["to"] == a2)
            .cloned()
            .unwrap_or_default();
        let heard: Vec<&str> = agent["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["kind"] == "heard")
            .filter_map(|e| e["text"].as_str())
            .collect();
        if agent["status"] == "completed" {
            assert!(
                heard.contains(&"Sorry we missed you, call +14155550199 back"),
                "{agent:#}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the voicemail was never left: {agent:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = member_action(&stack, &acct, &phlo_id, a2, "hangup").await;
    assert_eq!(status, 404, "a member who left is no longer in the room");

    ok(node_action(
        &stack,
        &acct,
        &phlo_id,
        json!({ "action": "cold_transfer", "trigger_source": a1, "to": a4, "role": "agent" }),
    )
    .await);
    wait_member(&stack, &acct, &run_id, a4, "in_call").await;
    wait_member(&stack, &acct, &run_id, a1, "left").await;

    // Bad input: unknown action, bad address, unknown member.
    let (status, body) = member_action(&stack, &acct, &phlo_id, CUSTOMER, "dance").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = node_action(
        &stack,
        &acct,
        &phlo_id,
        json!({ "action": "call", "trigger_source": CUSTOMER, "to": "nobody" }),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = node_action(
        &stack,
        &acct,
        &phlo_id,
        json!({ "action": "call", "trigger_source": "+19999999999", "to": a3 }),
    )
    .await;
    assert_eq!(status, 404);

    // The customer hangs up through the API: the node completes and the run ends.
    ok(member_action(&stack, &acct, &phlo_id, CUSTOMER, "hangup").await);
    let run = stack
        .wait_run(&acct, &run_id, Duration::from_secs(30))
        .await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let mpc = crate::support::done_step(&run, "Multiparty_Call_1");
    assert_eq!(mpc["state"], "completed");
    assert_eq!(mpc["variables"]["conference_name"], ROOM);
    stack.cleanup().await;
}

/// The official Python SDK's multiparty and member calls, unchanged, against the gateway.
async fn the_official_python_sdk_drives_a_multiparty_call(target: Target) {
    let (mut stack, _sim, acct, phlo_id, run_id) = customer_in_room_on(target).await;
    let env = [
        ("PHLO_BASE", stack.gateway_url.as_str()),
        ("PHLO_AUTH_ID", acct.auth_id.as_str()),
        ("PHLO_AUTH_TOKEN", acct.token.as_str()),
        ("PHLO_ID", phlo_id.as_str()),
        ("PHLO_MPC_NODE_ID", MPC),
    ];
    let sdk = |args: Vec<&'static str>| async move {
        let lines = crate::sdk::run_script_with("python_mpc.py", &args, &env).await;
        let response = &lines[0]["response"];
        assert_eq!(response["error"], "", "{args:?}: {response}");
        assert!(
            response["api_id"].as_str().is_some_and(|a| !a.is_empty()),
            "{args:?}: {response}"
        );
    };
    let [a1, a2, a3, a4] = AGENTS;
    sdk(vec!["call", CUSTOMER, a1, "agent"]).await;
    wait_member(&stack, &acct, &run_id, a1, "in_call").await;
    sdk(vec!["hold", CUSTOMER]).await;
    wait_member(&stack, &acct, &run_id, CUSTOMER, "on_hold").await;
    sdk(vec!["unhold", CUSTOMER]).await;
    wait_member(&stack, &acct, &run_id, CUSTOMER, "in_call").await;
    sdk(vec!["warm_transfer", a1, a2]).await;
    wait_member(&stack, &acct, &run_id, a2, "in_call").await;
    sdk(vec!["resume_call", a1]).await;
    wait_member(&stack, &acct, &run_id, CUSTOMER, "in_call").await;
    sdk(vec!["warm_transfer", a1, a3]).await;
    wait_member(&stack, &acct, &run_id, a3, "in_call").await;
    sdk(vec!["abort_transfer", a3]).await;
    wait_member(&stack, &acct, &run_id, a3, "left").await;
    sdk(vec!["mute", a2]).await;
    sdk(vec!["unmute", a2]).await;
    sdk(vec!["voicemail_drop", a2]).await;
    wait_member(&stack, &acct, &run_id, a2, "left").await;
    sdk(vec!["cold_transfer", a1, a4]).await;
    wait_member(&stack, &acct, &run_id, a4, "in_call").await;
    wait_member(&stack, &acct, &run_id, a1, "left").await;
    sdk(vec!["hangup", CUSTOMER]).await;
    let run = stack
        .wait_run(&acct, &run_id, Duration::from_secs(30))
        .await;
    assert_eq!(run["status"], "completed", "{run:#}");
    stack.cleanup().await;
}

/// Conference Bridge members take hold, unhold, mute, unmute and hangup through the same member route
/// (Python's `client.phlo.member(...)` defaults to `conference_bridge`).
async fn conference_bridge_member_actions(target: Target) {
    const BRIDGE: &str = "3c000000-0000-4000-8000-0000000000cb";
    let (mut stack, sim, acct) = voice_stack_on(target, &[]).await;
    let phlo = json!({ "name": "Bridge", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "incoming_call": BRIDGE } },
        { "node_id": BRIDGE, "name": "Conference_Bridge_1", "type": "conference_bridge",
          "options": { "conference_name": "bridge-room" } },
    ]});
    let phlo_id = phlo_on(&stack, &acct, NUMBER, phlo).await;
    sim.script(&stack.http, CUSTOMER, json!({ "talk_secs": null }))
        .await;
    call_in(&stack, &sim, CUSTOMER, NUMBER).await;
    let run_id = run_of_call(&stack, &acct).await;
    wait_member(&stack, &acct, &run_id, CUSTOMER, "in_call").await;

    let path = format!("/v1/phlo/{phlo_id}/conference_bridge/{BRIDGE}/members/{CUSTOMER}");
    let act = |action: &'static str| {
        let (stack, acct, path) = (&stack, &acct, path.clone());
        async move {
            stack
                .call(acct, Method::POST, &path, Some(json!({ "action": action })))
                .await
        }
    };
    ok(act("hold").await);
    wait_member(&stack, &acct, &run_id, CUSTOMER, "on_hold").await;
    // A bridge has no hold: the member is muted and deafened.
    let calls = sim.get(&stack.http, "/sim/calls").await;
    let line = calls
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["from"] == CUSTOMER)
        .cloned()
        .unwrap();
    let kinds: Vec<&str> = line["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"muted") && kinds.contains(&"deafened"),
        "{kinds:?}"
    );
    let (status, body) = act("resume_call").await;
    assert_eq!(
        status, 400,
        "multiparty-only actions are refused on a bridge: {body}"
    );
    ok(act("unhold").await);
    wait_member(&stack, &acct, &run_id, CUSTOMER, "in_call").await;
    ok(act("mute").await);
    ok(act("unmute").await);
    let room = sim.get(&stack.http, "/sim/rooms/bridge-room").await;
    let customer = room["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["party"] == CUSTOMER)
        .cloned()
        .unwrap();
    assert_eq!(customer["state"], "in_call", "{room:#}");
    ok(act("hangup").await);
    let run = stack
        .wait_run(&acct, &run_id, Duration::from_secs(30))
        .await;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(
        crate::support::done_step(&run, "Conference_Bridge_1")["state"],
        "completed"
    );
    stack.cleanup().await;
}
