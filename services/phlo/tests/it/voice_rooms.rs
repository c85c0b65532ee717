//! Conference Bridge and Multiparty Call end to end: incoming callers join rooms in the simulator,
//! member events come back to the gateway, and the node completes when its caller leaves (kicked or
//! hung up) or the room ends. Each test asserts the node's state, its variables (the seed's names),
//! the member events the token saw, and what each caller heard in the simulator's call log.
//!
//! Conformance scenarios (dev mode and distributed):
//! `conference_two_callers_meet_one_is_kicked_and_the_room_ends_for_the_other`,
//! `multiparty_customer_completes_when_taken_out_of_the_room`.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::rig::{Rig, heard, kinds, steps};
use crate::support::{Target, done_step};

crate::conformance!(
    conference_two_callers_meet_one_is_kicked_and_the_room_ends_for_the_other,
    multiparty_customer_completes_when_taken_out_of_the_room,
);

const START: &str = "72000000-0000-4000-8000-000000000000";
const ROOM_NODE: &str = "72000000-0000-4000-8000-000000000001";
const PLAY: &str = "72000000-0000-4000-8000-000000000002";
const BYE: &str = "72000000-0000-4000-8000-000000000003";
const SORRY: &str = "72000000-0000-4000-8000-000000000004";
const OTHER: &str = "72000000-0000-4000-8000-000000000005";

/// The number callers dial.
const OURS: &str = "+14155550199";
const ANN: &str = "+14155550150";
const BEN: &str = "+14155550151";
/// The conference name the PHLOs render for calls to `OURS`.
const ROOM: &str = "support-14155550199";

/// Start (incoming call) → Conference Bridge; with `then`, `completed` → Play Audio → Hangup.
fn conference_phlo(extra: Value, then: bool) -> Value {
    let mut options = json!({
        "conference_name": "support-{{Start.call.to | remove: '+'}}",
        "announcement": { "type": "speak", "text": "Welcome to {{Start.call.to | remove: '+' | prepend: 'support-'}}" },
    });
    if let (Some(o), Some(e)) = (options.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    let transitions = if then {
        json!({ "completed": PLAY })
    } else {
        json!({})
    };
    json!({ "name": "Conference", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "incoming_call": ROOM_NODE } },
        { "node_id": ROOM_NODE, "name": "Conference_Bridge_1", "type": "conference_bridge", "options": options,
          "transitions": transitions,
          "callback": { "url": "https://hooks.example.com/conference", "events": ["ConferenceEnter", "ConferenceExit", "completed"] } },
        { "node_id": PLAY, "name": "Play_Goodbye", "type": "play_audio",
          "options": { "prompts": ["Goodbye from {{Conference_Bridge_1.conference_name}}, member {{Conference_Bridge_1.member_id}}"] },
          "transitions": { "prompt_completed": BYE } },
        { "node_id": BYE, "name": "Hangup_1", "type": "hangup" },
    ]})
}

/// The seed's member variables of `caller`'s call in the room.
fn member_vars(
    caller: &str,
    call_uuid: &str,
    room: &str,
    room_uuid: &str,
    member_id: &str,
    event: &str,
) -> Value {
    json!({
        "conference_name": room, "conference_uuid": room_uuid, "member_id": member_id,
        "call_uuid": call_uuid, "event": event,
        "from": caller, "to": OURS, "direction": "inbound", "caller_name": caller,
        "bill_rate": null, "call_status": "in-progress",
        "to_iso2": "US", "from_iso2": "US", "to_country": "United States", "from_country": "United States",
    })
}

/// Polls the simulator's room until `ready` holds of it.
async fn room_until(rig: &Rig, name: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let room = rig.room(name).await;
        if room.get("members").is_some() && ready(&room) {
            return room;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: never happened in {room:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The room's members as (member_id, party, state, left_reason).
fn members(room: &Value) -> Vec<(String, String, String, Value)> {
    room["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            (
                s("member_id"),
                s("party"),
                s("state"),
                m["left_reason"].clone(),
            )
        })
        .collect()
}

fn present(room: &Value) -> usize {
    members(room).iter().filter(|m| m.2 != "left").count()
}

/// The node's steps on the run's token as (event, outcome, the variables' `event`).
fn room_steps(run: &Value, node: &str) -> Vec<(String, String, Value)> {
    steps(run, node)
        .iter()
        .map(|s| {
            (
                s["event"].as_str().unwrap().to_owned(),
                s["outcome"].as_str().unwrap().to_owned(),
                s["variables"]["event"].clone(),
            )
        })
        .collect()
}

fn step_triple(event: &str, outcome: &str, var: Value) -> (String, String, Value) {
    (event.to_owned(), outcome.to_owned(), var)
}

/// The member event the token saw while in the room: a parked step after a `conference` event.
fn member_event<'a>(run: &'a Value, node: &str, event: &str) -> &'a Value {
    steps(run, node)
        .into_iter()
        .find(|s| {
            s["event"] == "conference" && s["outcome"] == "wait" && s["variables"]["event"] == event
        })
        .unwrap_or_else(|| panic!("no {event} member event at {node} in {run:#}"))
}

/// The callback posts the step asked for: (event, state) of each.
fn callbacks(step: &Value) -> Vec<(Value, Value)> {
    step["effects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["effect"] == "callback")
        .map(|e| (e["event"].clone(), e["state"].clone()))
        .collect()
}

// ---- Conference Bridge ------------------------------------------------------------------------------

async fn conference_two_callers_meet_one_is_kicked_and_the_room_ends_for_the_other(target: Target) {
    let rig = Rig::start_on(target).await;
    let phlo = rig
        .phlo(conference_phlo(json!({ "end_on_exit": true }), true))
        .await;
    rig.attach(OURS, &phlo).await;

    let ann = rig.call_in(ANN, OURS).await;
    let ann_run = rig.run_of_call(&ann).await;
    room_until(&rig, ROOM, "Ann joined", |r| present(r) == 1).await;
    let ben = rig.call_in(BEN, OURS).await;
    let ben_run = rig.run_of_call(&ben).await;
    let room = room_until(&rig, ROOM, "Ben joined", |r| present(r) == 2).await;
    let room_uuid = room["uuid"].as_str().unwrap().to_owned();
    assert_eq!(room["kind"], "conference");
    // Each token heard of its own member entering.
    for (run_id, caller, call, member) in [(&ann_run, ANN, &ann, "1"), (&ben_run, BEN, &ben, "2")] {
        let run = rig
            .run_until(run_id, "ConferenceEnter", |r| {
                steps(r, "Conference_Bridge_1")
                    .iter()
                    .any(|s| s["variables"]["event"] == "ConferenceEnter")
            })
            .await;
        let entered = member_event(&run, "Conference_Bridge_1", "ConferenceEnter");
        assert_eq!(
            entered["variables"],
            member_vars(caller, call, ROOM, &room_uuid, member, "ConferenceEnter")
        );
        assert_eq!(
            callbacks(entered),
            [(json!("ConferenceEnter"), Value::Null)]
        );
    }

    // Ann is taken out of the room; she ends it for everyone (end_on_exit).
    let (status, body) = rig
        .carrier(
            Method::POST,
            &format!("/Conference/{ROOM}/Member/1/Kick/"),
            None,
        )
        .await;
    assert!((200..300).contains(&status), "kick: {status} {body}");

    for (run_id, caller, call, member) in [(&ann_run, ANN, &ann, "1"), (&ben_run, BEN, &ben, "2")] {
        let run = rig.finished_run(run_id).await;
        assert_eq!(run["status"], "completed", "{run:#}");
        let node = done_step(&run, "Conference_Bridge_1");
        assert_eq!(node["state"], "completed");
        assert_eq!(
            node["variables"],
            member_vars(caller, call, ROOM, &room_uuid, member, "ConferenceExit")
        );
        assert_eq!(callbacks(node), [(json!("completed"), json!("completed"))]);
        assert_eq!(
            room_steps(&run, "Conference_Bridge_1"),
            [
                step_triple("enter", "wait", json!(null)),
                step_triple("conference", "wait", json!("ConferenceEnter")),
                step_triple("conference", "done", json!("ConferenceExit")),
            ]
        );
        // The caller is still on the line after the room: the PHLO goes on with them.
        assert_eq!(done_step(&run, "Play_Goodbye")["state"], "prompt_completed");
        let log = rig.ended_call(call).await;
        assert_eq!(
            heard(&log),
            [
                "Welcome to support-14155550199".to_owned(),
                format!("Goodbye from support-14155550199, member {member}")
            ]
        );
        assert_eq!(
            kinds(&log),
            ["ringing", "heard", "joined", "left", "heard", "hung_up"]
        );
        assert_eq!(log["hangup_reason"], "Hangup element");
    }
    let room = rig.room(ROOM).await;
    assert_eq!(room["ended"], true);
    assert_eq!(
        members(&room),
        [
            (
                "1".to_owned(),
                ANN.to_owned(),
                "left".to_owned(),
                json!("kicked through the API")
            ),
            (
                "2".to_owned(),
                BEN.to_owned(),
                "left".to_owned(),
                json!("the room ended")
            ),
        ]
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conference_completes_when_a_caller_hangs_up_and_the_room_ends_when_it_empties() {
    let rig = Rig::start().await;
    let phlo = rig
        .phlo(conference_phlo(
            json!({ "enter_sound": "none", "exit_sound": "double_beep" }),
            false,
        ))
        .await;
    rig.attach(OURS, &phlo).await;
    let ann = rig.call_in(ANN, OURS).await;
    let ann_run = rig.run_of_call(&ann).await;
    room_until(&rig, ROOM, "Ann joined", |r| present(r) == 1).await;
    let ben = rig.call_in(BEN, OURS).await;
    let ben_run = rig.run_of_call(&ben).await;
    let room = room_until(&rig, ROOM, "Ben joined", |r| present(r) == 2).await;
    let room_uuid = room["uuid"].as_str().unwrap().to_owned();

    rig.hang_up(&ann).await;
    let run = rig.finished_run(&ann_run).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let node = done_step(&run, "Conference_Bridge_1");
    assert_eq!(node["state"], "completed");
    assert_eq!(
        node["variables"],
        member_vars(ANN, &ann, ROOM, &room_uuid, "1", "ConferenceExit")
    );
    // Ben is still in the room, which goes on.
    let room = rig.room(ROOM).await;
    assert_eq!(room["ended"], false);
    assert_eq!(
        members(&room),
        [
            (
                "1".to_owned(),
                ANN.to_owned(),
                "left".to_owned(),
                json!("hung up through the API")
            ),
            (
                "2".to_owned(),
                BEN.to_owned(),
                "in_call".to_owned(),
                Value::Null
            ),
        ]
    );
    assert_eq!(rig.run(&ben_run).await["status"], "active");

    rig.hang_up(&ben).await;
    let run = rig.finished_run(&ben_run).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let node = done_step(&run, "Conference_Bridge_1");
    assert_eq!(node["state"], "completed");
    assert_eq!(
        node["variables"],
        member_vars(BEN, &ben, ROOM, &room_uuid, "2", "ConferenceExit")
    );
    assert_eq!(rig.room(ROOM).await["ended"], true);
    for call in [&ann, &ben] {
        let log = rig.ended_call(call).await;
        assert_eq!(heard(&log), ["Welcome to support-14155550199"]);
        assert_eq!(
            kinds(&log),
            ["ringing", "heard", "joined", "left", "hung_up"]
        );
        assert_eq!(log["hangup_reason"], "hung up through the API");
    }
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rooms_fail_without_a_room_name_or_without_a_call() {
    let rig = Rig::start().await;
    // An incoming call whose room name renders blank.
    let mut blank = conference_phlo(
        json!({ "conference_name": "{{Start.call.nothing}}" }),
        false,
    );
    blank["nodes"][1]["transitions"] = json!({ "failed": SORRY });
    blank["nodes"].as_array_mut().unwrap().push(json!(
        { "node_id": SORRY, "name": "Play_Sorry", "type": "play_audio",
          "options": { "prompts": ["Sorry, the conference is not available"] }, "transitions": { "prompt_completed": BYE } }
    ));
    let phlo = rig.phlo(blank).await;
    rig.attach(OURS, &phlo).await;
    let ann = rig.call_in(ANN, OURS).await;
    let run = rig.finished_run(&rig.run_of_call(&ann).await).await;
    let node = done_step(&run, "Conference_Bridge_1");
    assert_eq!(node["state"], "failed");
    assert_eq!(node["error"], "`conference_name` rendered empty");
    assert_eq!(node["variables"], json!({}));
    let log = rig.ended_call(&ann).await;
    assert_eq!(heard(&log), ["Sorry, the conference is not available"]);
    assert_eq!(kinds(&log), ["ringing", "heard", "hung_up"]);

    // An API request has no call to put in a room: Conference Bridge fails, then Multiparty Call does.
    let no_call = json!({ "name": "No call", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "api_request": ROOM_NODE } },
        { "node_id": ROOM_NODE, "name": "Conference_Bridge_1", "type": "conference_bridge",
          "options": { "conference_name": "support" }, "transitions": { "failed": OTHER } },
        { "node_id": OTHER, "name": "Multiparty_Call_1", "type": "multi_party_call",
          "options": { "conference_name": "support" } },
    ]});
    let phlo = rig.phlo(no_call).await;
    let run = rig.finished_run(&rig.trigger(&phlo, json!({})).await).await;
    for (node, kind) in [
        ("Conference_Bridge_1", "conference_bridge"),
        ("Multiparty_Call_1", "multi_party_call"),
    ] {
        let step = done_step(&run, node);
        assert_eq!(step["state"], "failed");
        assert_eq!(step["variables"], json!({}));
        let reason = format!(
            "{node} ({kind}) acts on a call, but this token has none: reach it from an incoming call or after Initiate Call's `answered` state"
        );
        assert_eq!(step["error"], reason.as_str());
    }
    assert_eq!(rig.sim_calls().await.len(), 1, "only Ann's call");
    rig.finish().await;
}

// ---- Multiparty Call --------------------------------------------------------------------------------

const MPC_ROOM: &str = "queue-14155550199";

/// Start (incoming call) → Multiparty Call (customer); with `then`, `completed` → Play Audio → Hangup.
fn mpc_phlo(then: bool) -> Value {
    let transitions = if then {
        json!({ "completed": PLAY })
    } else {
        json!({})
    };
    json!({ "name": "Queue", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "incoming_call": ROOM_NODE } },
        { "node_id": ROOM_NODE, "name": "Multiparty_Call_1", "type": "multi_party_call",
          "options": { "conference_name": "queue-{{Start.call.to | remove: '+'}}", "role": "customer",
                       "prompt": { "type": "speak", "text": "Please hold, {{Start.call.from}}", "voice": "MAN", "language": "en-GB" },
                       "from": OURS },
          "transitions": transitions,
          "callback": { "url": "https://hooks.example.com/mpc" } },
        { "node_id": PLAY, "name": "Play_Goodbye", "type": "play_audio",
          "options": { "prompts": ["You left {{Multiparty_Call_1.conference_name}} as member {{Multiparty_Call_1.member_id}}"] },
          "transitions": { "prompt_completed": BYE } },
        { "node_id": BYE, "name": "Hangup_1", "type": "hangup" },
    ]})
}

/// A customer (Ann) in the multiparty call: (rig, call uuid, run id, the room's uuid).
async fn customer_in_queue(target: Target, then: bool) -> (Rig, String, String, String) {
    let rig = Rig::start_on(target).await;
    let phlo = rig.phlo(mpc_phlo(then)).await;
    rig.attach(OURS, &phlo).await;
    let ann = rig.call_in(ANN, OURS).await;
    let run_id = rig.run_of_call(&ann).await;
    let room = room_until(&rig, MPC_ROOM, "Ann joined", |r| present(r) == 1).await;
    assert_eq!(room["kind"], "mpc");
    assert_eq!(room["members"][0]["role"], "customer");
    assert_eq!(room["members"][0]["call_uuid"], ann.as_str());
    let room_uuid = room["uuid"].as_str().unwrap().to_owned();
    let run = rig
        .run_until(&run_id, "ConferenceEnter", |r| {
            steps(r, "Multiparty_Call_1")
                .iter()
                .any(|s| s["variables"]["event"] == "ConferenceEnter")
        })
        .await;
    let entered = member_event(&run, "Multiparty_Call_1", "ConferenceEnter");
    assert_eq!(
        entered["variables"],
        member_vars(ANN, &ann, MPC_ROOM, &room_uuid, "1", "ConferenceEnter")
    );
    assert_eq!(
        callbacks(entered),
        [(json!("ConferenceEnter"), Value::Null)]
    );
    (rig, ann, run_id, room_uuid)
}

async fn multiparty_customer_completes_when_taken_out_of_the_room(target: Target) {
    let (rig, ann, run_id, room_uuid) = customer_in_queue(target, true).await;
    let (status, body) = rig
        .carrier(
            Method::DELETE,
            &format!("/MultiPartyCall/name_{MPC_ROOM}/Member/1/"),
            None,
        )
        .await;
    assert_eq!(status, 204, "kick: {body}");

    let run = rig.finished_run(&run_id).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let node = done_step(&run, "Multiparty_Call_1");
    assert_eq!(node["state"], "completed");
    assert_eq!(
        node["variables"],
        member_vars(ANN, &ann, MPC_ROOM, &room_uuid, "1", "ConferenceExit")
    );
    assert_eq!(callbacks(node), [(json!("completed"), json!("completed"))]);
    assert_eq!(done_step(&run, "Play_Goodbye")["state"], "prompt_completed");

    let log = rig.ended_call(&ann).await;
    assert_eq!(
        heard(&log),
        [
            "Please hold, +14155550150",
            "You left queue-14155550199 as member 1"
        ]
    );
    let hold = &log["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "heard")
        .unwrap();
    assert_eq!(
        (&hold["voice"], &hold["language"]),
        (&json!("MAN"), &json!("en-GB"))
    );
    assert_eq!(
        kinds(&log),
        ["ringing", "heard", "joined", "left", "heard", "hung_up"]
    );
    let room = rig.room(MPC_ROOM).await;
    assert_eq!(room["ended"], true);
    assert_eq!(
        members(&room),
        [(
            "1".to_owned(),
            ANN.to_owned(),
            "left".to_owned(),
            json!("kicked through the API")
        )]
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn multiparty_customer_completes_when_hanging_up() {
    let (rig, ann, run_id, room_uuid) = customer_in_queue(Target::Distributed, false).await;
    rig.hang_up(&ann).await;

    let run = rig.finished_run(&run_id).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let node = done_step(&run, "Multiparty_Call_1");
    assert_eq!(node["state"], "completed");
    assert_eq!(
        node["variables"],
        member_vars(ANN, &ann, MPC_ROOM, &room_uuid, "1", "ConferenceExit")
    );
    let log = rig.ended_call(&ann).await;
    assert_eq!(heard(&log), ["Please hold, +14155550150"]);
    assert_eq!(
        kinds(&log),
        ["ringing", "heard", "joined", "left", "hung_up"]
    );
    let room = rig.room(MPC_ROOM).await;
    assert_eq!(room["ended"], true);
    assert_eq!(
        members(&room),
        [(
            "1".to_owned(),
            ANN.to_owned(),
            "left".to_owned(),
            json!("hung up through the API")
        )]
    );
    rig.finish().await;
}
