//! Initiate Call and Call Forward end to end: the workers place calls through the simulator's REST API,
//! the simulator's scripted parties answer (or not), and the gateway answers the calls' webhooks with
//! the XML the PHLO says. Each test asserts the node's state, its variables (the seed's names) and what
//! each party heard, pressed and received in the simulator's call log.
//!
//! Conformance scenarios (dev mode and distributed):
//! `initiate_call_answered_then_the_callee_hears_play_audio`,
//! `call_forward_completed_when_the_callee_hangs_up`.

use serde_json::{Value, json};

use crate::support::rig::{Rig, done_on, events, heard, kinds, pressed, steps, timeless};
use crate::support::{Target, done_step};

crate::conformance!(
    initiate_call_answered_then_the_callee_hears_play_audio,
    call_forward_completed_when_the_callee_hangs_up,
);

const START: &str = "71000000-0000-4000-8000-000000000000";
const NODE: &str = "71000000-0000-4000-8000-000000000001";
const PLAY: &str = "71000000-0000-4000-8000-000000000002";
const SORRY: &str = "71000000-0000-4000-8000-000000000003";
const BYE: &str = "71000000-0000-4000-8000-000000000004";
const SMS: &str = "71000000-0000-4000-8000-000000000005";

/// Our number: the caller ID of every call the PHLO places, and the number callers dial.
const OURS: &str = "+14155550100";
const ALICE: &str = "+14155550101";
const BOB: &str = "+14155550102";
const CAROL: &str = "+14155550103";
const CALLER: &str = "+14155550150";

fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    base
}

fn uuid_of(call: &Value) -> &str {
    call["uuid"].as_str().expect("call uuid")
}

// ---- Initiate Call ----------------------------------------------------------------------------------

/// Start (API) → Initiate Call → `answered`: Play Audio, `voicemail`: another Play Audio (both then
/// Hangup), `busy`: Send SMS. `no_answer` and `failed` end the token.
fn initiate_phlo(to: Value, extra: Value) -> Value {
    let options = merged(json!({ "from": OURS, "to": to, "ring_timeout": 10 }), extra);
    json!({ "name": "Outbound", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "api_request": NODE } },
        { "node_id": NODE, "name": "Initiate_Call_1", "type": "initiate_call", "options": options,
          "transitions": { "answered": PLAY, "voicemail": SORRY, "busy": SMS } },
        { "node_id": PLAY, "name": "Play_Greeting", "type": "play_audio",
          "options": { "prompts": ["Hello {{Initiate_Call_1.to}}, this is {{Initiate_Call_1.from}}"] },
          "transitions": { "prompt_completed": BYE } },
        { "node_id": SORRY, "name": "Play_Voicemail", "type": "play_audio",
          "options": { "prompts": ["Sorry we missed you, {{Initiate_Call_1.to}}"] },
          "transitions": { "prompt_completed": BYE } },
        { "node_id": BYE, "name": "Hangup_1", "type": "hangup" },
        { "node_id": SMS, "name": "Send_SMS_1", "type": "send_sms",
          "options": { "from": OURS, "to": "{{Initiate_Call_1.to}}", "message": "We called, you were busy" } },
    ]})
}

/// The variables of an answered (or machine-answered) call: the answer webhook reports no times,
/// durations or bill.
fn answered_vars(to: &str, uuid: &str, machine: bool) -> Value {
    // `uuid` is null where the carrier named no call.
    let uuid = Some(uuid).filter(|u| !u.is_empty());
    json!({
        "uuid": uuid, "to": to, "from": OURS, "direction": "outbound",
        "from_iso2": "US", "from_country": "United States", "leg": "ALeg",
        "start_time": null, "answer_time": null, "end_time": null, "hangup_cause": null,
        "duration": null, "bill_duration": null, "bill_rate": null, "bill_amount": null,
        "ring_status": true, "voicemail_detected": machine, "call_status": "in-progress",
    })
}

/// The variables of a call that never connected, from its hang-up report.
fn unanswered_vars(to: &str, uuid: &str, cause: &str, rang: bool) -> Value {
    // `uuid` is null where the carrier named no call.
    let uuid = Some(uuid).filter(|u| !u.is_empty());
    json!({
        "uuid": uuid, "to": to, "from": OURS, "direction": "outbound",
        "from_iso2": "US", "from_country": "United States", "leg": "ALeg",
        "start_time": "<time>", "answer_time": null, "end_time": "<time>", "hangup_cause": cause,
        "duration": 0, "bill_duration": 0, "bill_rate": "0.00850", "bill_amount": "0.00000",
        "ring_status": rang, "voicemail_detected": false,
    })
}

async fn initiate_call_answered_then_the_callee_hears_play_audio(target: Target) {
    let rig = Rig::start_on(target).await;
    let phlo = rig.phlo(initiate_phlo(json!([ALICE]), json!({}))).await;
    let run = rig.finished_run(&rig.trigger(&phlo, json!({})).await).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let calls = rig.ended_calls_to(ALICE, 1).await;
    let call = &calls[0];
    assert_eq!(
        (call["from"].as_str(), call["direction"].as_str()),
        (Some(OURS), Some("outbound"))
    );
    let node = done_step(&run, "Initiate_Call_1");
    assert_eq!(node["state"], "answered");
    assert_eq!(
        node["variables"],
        answered_vars(ALICE, uuid_of(call), false)
    );
    assert_eq!(
        done_step(&run, "Play_Greeting")["state"],
        "prompt_completed"
    );
    assert_eq!(done_step(&run, "Hangup_1")["state"], "hangup_complete");

    assert_eq!(heard(call), ["Hello +14155550101, this is +14155550100"]);
    assert_eq!(kinds(call), ["ringing", "answered", "heard", "hung_up"]);
    assert_eq!(events(call, "answered")[0]["machine"], false);
    assert_eq!(events(call, "hung_up")[0]["reason"], "Hangup element");
    rig.finish().await;
}

/// `record` (true by the seed's truth table) records the answered call through the carrier's Record API.
#[tokio::test(flavor = "multi_thread")]
async fn initiate_call_records_the_answered_call_when_asked() {
    let rig = Rig::start().await;
    let mut definition = initiate_phlo(
        json!([ALICE]),
        json!({ "record": "{{Start.http.params.record}}" }),
    );
    // The recording request races the call's end through the carrier queue. A greeting of about a
    // minute (about 1.5 s at the simulator's time scale) is the seconds a real call gives it; the
    // short one of the other tests ends the call before a loaded machine gets the request out.
    definition["nodes"][2]["options"]["prompts"] =
        json!(["Thank you for taking our call, this message is being recorded. ".repeat(14)]);
    let phlo = rig.phlo(definition).await;
    let run = rig
        .finished_run(&rig.trigger(&phlo, json!({ "record": "TRUE" })).await)
        .await;
    assert_eq!(
        done_step(&run, "Initiate_Call_1")["state"],
        "answered",
        "{run:#}"
    );
    let calls = rig.ended_calls_to(ALICE, 1).await;
    // The recording starts through the REST API beside the call's XML: its place among them may vary.
    let mut kinds_seen = kinds(&calls[0]);
    let recorded = kinds_seen
        .iter()
        .position(|k| k == "recording_started")
        .expect("recording started");
    kinds_seen.remove(recorded);
    assert_eq!(kinds_seen, ["ringing", "answered", "heard", "hung_up"]);

    // "0" is false: no recording.
    let run = rig
        .finished_run(&rig.trigger(&phlo, json!({ "record": "0" })).await)
        .await;
    assert_eq!(done_step(&run, "Initiate_Call_1")["state"], "answered");
    let calls = rig.ended_calls_to(ALICE, 2).await;
    assert!(
        calls
            .iter()
            .filter(|c| kinds(c).contains(&"recording_started".to_owned()))
            .count()
            == 1,
        "{calls:#?}"
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn initiate_call_no_answer() {
    let rig = Rig::start().await;
    rig.script(ALICE, json!({ "answer": "no_answer" })).await;
    let phlo = rig
        .phlo(initiate_phlo(json!([ALICE]), json!({ "ring_timeout": 5 })))
        .await;
    let run = rig.finished_run(&rig.trigger(&phlo, json!({})).await).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let call = &rig.ended_calls_to(ALICE, 1).await[0];
    assert_eq!(call["status"], "no-answer");
    let node = done_step(&run, "Initiate_Call_1");
    assert_eq!(node["state"], "no_answer");
    assert_eq!(
        timeless(&node["variables"]),
        unanswered_vars(ALICE, uuid_of(call), "NO_ANSWER", true)
    );
    assert_eq!(
        steps(&run, "Play_Greeting").len(),
        0,
        "nobody to play to: {run:#}"
    );
    assert_eq!(kinds(call), ["ringing", "no_answer", "hung_up"]);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn initiate_call_busy_then_sends_an_sms() {
    let rig = Rig::start().await;
    rig.script(ALICE, json!({ "answer": "busy" })).await;
    let phlo = rig.phlo(initiate_phlo(json!([ALICE]), json!({}))).await;
    let run = rig.finished_run(&rig.trigger(&phlo, json!({})).await).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let call = &rig.ended_calls_to(ALICE, 1).await[0];
    assert_eq!(call["status"], "busy");
    let node = done_step(&run, "Initiate_Call_1");
    assert_eq!(node["state"], "busy");
    // The hang-up report does not say whether the phone rang; the runner counts a busy call as not rung.
    assert_eq!(
        timeless(&node["variables"]),
        unanswered_vars(ALICE, uuid_of(call), "USER_BUSY", false)
    );
    assert_eq!(kinds(call), ["ringing", "busy", "hung_up"]);
    assert_eq!(done_step(&run, "Send_SMS_1")["state"], "sent");
    let texts: Vec<(Value, Value)> = rig
        .sim_messages()
        .await
        .iter()
        .map(|m| (m["to"].clone(), m["text"].clone()))
        .collect();
    assert_eq!(texts, [(json!(ALICE), json!("We called, you were busy"))]);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn initiate_call_failed() {
    let rig = Rig::start().await;
    rig.script(ALICE, json!({ "answer": "fail" })).await;
    let phlo = rig.phlo(initiate_phlo(json!([ALICE]), json!({}))).await;
    let run = rig.finished_run(&rig.trigger(&phlo, json!({})).await).await;

    let call = &rig.ended_calls_to(ALICE, 1).await[0];
    assert_eq!(call["status"], "failed");
    let node = done_step(&run, "Initiate_Call_1");
    assert_eq!(node["state"], "failed");
    assert_eq!(node["error"], "the call failed: CALL_REJECTED");
    assert_eq!(
        timeless(&node["variables"]),
        unanswered_vars(ALICE, uuid_of(call), "CALL_REJECTED", false)
    );
    // It never rang.
    assert_eq!(kinds(call), ["failed", "hung_up"]);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn initiate_call_voicemail_when_a_machine_answers() {
    let rig = Rig::start().await;
    rig.script(ALICE, json!({ "answer": "voicemail" })).await;
    let phlo = rig
        .phlo(initiate_phlo(
            json!([ALICE]),
            json!({ "machine_detection": true }),
        ))
        .await;
    let run = rig.finished_run(&rig.trigger(&phlo, json!({})).await).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let call = &rig.ended_calls_to(ALICE, 1).await[0];
    let node = done_step(&run, "Initiate_Call_1");
    assert_eq!(node["state"], "voicemail");
    assert_eq!(node["variables"], answered_vars(ALICE, uuid_of(call), true));
    // The machine's call is the token's call: the message is left on it.
    assert_eq!(
        done_step(&run, "Play_Voicemail")["state"],
        "prompt_completed"
    );
    assert_eq!(heard(call), ["Sorry we missed you, +14155550101"]);
    assert_eq!(
        kinds(call),
        [
            "ringing",
            "answered",
            "machine_detected",
            "heard",
            "hung_up"
        ]
    );
    assert_eq!(events(call, "answered")[0]["machine"], true);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn initiate_call_bulk_forks_one_token_per_number() {
    let rig = Rig::start().await;
    rig.script(BOB, json!({ "answer": "voicemail" })).await;
    rig.script(CAROL, json!({ "answer": "busy" })).await;
    let phlo = rig
        .phlo(initiate_phlo(json!([ALICE, BOB, CAROL]), json!({})))
        .await;
    let run = rig.finished_run(&rig.trigger(&phlo, json!({})).await).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let tokens: Vec<i64> = run["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["token"].as_i64().unwrap())
        .collect();
    assert_eq!(tokens.len(), 3, "{run:#}");
    let finished = steps(&run, "Initiate_Call_1")
        .into_iter()
        .filter(|s| s["outcome"] == "done")
        .collect::<Vec<_>>();
    let token_of = |to: &str| -> i64 {
        let step = finished
            .iter()
            .find(|s| s["variables"]["to"] == to)
            .unwrap_or_else(|| panic!("no result for {to}"));
        step["token"].as_i64().unwrap()
    };
    let (alice, bob, carol) = (token_of(ALICE), token_of(BOB), token_of(CAROL));
    let mut distinct = vec![alice, bob, carol];
    distinct.sort_unstable();
    assert_eq!(distinct, [0, 1, 2]);

    let alice_call = &rig.ended_calls_to(ALICE, 1).await[0];
    let bob_call = &rig.ended_calls_to(BOB, 1).await[0];
    let carol_call = &rig.ended_calls_to(CAROL, 1).await[0];
    let node = done_on(&run, "Initiate_Call_1", alice);
    assert_eq!(
        (node["state"].as_str(), &node["variables"]),
        (
            Some("answered"),
            &answered_vars(ALICE, uuid_of(alice_call), false)
        )
    );
    let node = done_on(&run, "Initiate_Call_1", bob);
    assert_eq!(
        (node["state"].as_str(), &node["variables"]),
        (
            Some("voicemail"),
            &answered_vars(BOB, uuid_of(bob_call), true)
        )
    );
    let node = done_on(&run, "Initiate_Call_1", carol);
    assert_eq!(node["state"], "busy");
    assert_eq!(
        timeless(&node["variables"]),
        unanswered_vars(CAROL, uuid_of(carol_call), "USER_BUSY", false)
    );

    // Each token went on with its own call and its own variables.
    assert_eq!(
        done_on(&run, "Play_Greeting", alice)["state"],
        "prompt_completed"
    );
    assert_eq!(
        done_on(&run, "Play_Voicemail", bob)["state"],
        "prompt_completed"
    );
    assert_eq!(done_on(&run, "Send_SMS_1", carol)["variables"]["to"], CAROL);
    assert_eq!(
        steps(&run, "Play_Greeting")
            .iter()
            .filter(|s| s["outcome"] == "done")
            .count(),
        1
    );
    assert_eq!(
        steps(&run, "Play_Voicemail")
            .iter()
            .filter(|s| s["outcome"] == "done")
            .count(),
        1
    );
    assert_eq!(
        steps(&run, "Hangup_1")
            .iter()
            .map(|s| s["token"].as_i64().unwrap())
            .collect::<std::collections::BTreeSet<_>>(),
        [alice, bob].into()
    );
    assert_eq!(
        heard(alice_call),
        ["Hello +14155550101, this is +14155550100"]
    );
    assert_eq!(heard(bob_call), ["Sorry we missed you, +14155550102"]);
    assert_eq!(heard(carol_call), Vec::<String>::new());
    let texts: Vec<Value> = rig
        .sim_messages()
        .await
        .iter()
        .map(|m| m["to"].clone())
        .collect();
    assert_eq!(texts, [json!(CAROL)]);
    rig.finish().await;
}

// ---- Call Forward -----------------------------------------------------------------------------------

/// Start (incoming call) → Call Forward. With `then`: `completed` → Play "The call with … ended",
/// the other states → Play "Nobody could take your call", both then Hangup; without, the token ends
/// at the Call Forward.
fn forward_phlo(extra: Value, then: bool) -> Value {
    let options = merged(
        json!({ "from": OURS, "to": [BOB], "ring_timeout": 10 }),
        extra,
    );
    let transitions = if then {
        json!({ "completed": PLAY, "no_answer": SORRY, "busy": SORRY, "failed": SORRY })
    } else {
        json!({})
    };
    json!({ "name": "Forward", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "incoming_call": NODE } },
        { "node_id": NODE, "name": "Call_Forward_1", "type": "call_forward", "options": options,
          "transitions": transitions },
        { "node_id": PLAY, "name": "Play_Ended", "type": "play_audio",
          "options": { "prompts": ["The call with {{Call_Forward_1.to}} ended: {{Call_Forward_1.dial_status}}"] },
          "transitions": { "prompt_completed": BYE } },
        { "node_id": SORRY, "name": "Play_Sorry", "type": "play_audio",
          "options": { "prompts": ["Nobody could take your call: {{Call_Forward_1.dial_status}}"] },
          "transitions": { "prompt_completed": BYE } },
        { "node_id": BYE, "name": "Hangup_1", "type": "hangup" },
    ]})
}

/// Call Forward's variables: `to` is what the node dialled (the Dial action does not name the
/// connected number), the times, durations and bill of the forwarded call are not reported by it.
fn forward_vars(
    to: &str,
    parent: &str,
    uuid: &str,
    status: &str,
    cause: &str,
    rang: bool,
) -> Value {
    // No B leg (nobody answered): `uuid` is null, as for everything the carrier did not report.
    let uuid = Some(uuid).filter(|u| !u.is_empty());
    json!({
        "uuid": uuid, "to": to, "from": OURS, "direction": "outbound",
        "from_iso2": "US", "from_country": "United States", "leg": "BLeg", "parent_call_uuid": parent,
        "start_time": null, "answer_time": null, "end_time": null, "hangup_cause": cause,
        "duration": null, "bill_duration": null, "bill_rate": null, "bill_amount": null,
        "ring_status": rang, "dial_status": status,
    })
}

/// A rig whose number `OURS` runs `phlo`, called once by `CALLER`: (rig, caller's call uuid, run id).
async fn forwarded(phlo: Value, scripts: &[(&str, Value)]) -> (Rig, String, String) {
    forwarded_on(Target::Distributed, phlo, scripts).await
}

/// [`forwarded`] on `target`.
async fn forwarded_on(
    target: Target,
    phlo: Value,
    scripts: &[(&str, Value)],
) -> (Rig, String, String) {
    let rig = Rig::start_on(target).await;
    for (number, script) in scripts {
        rig.script(number, script.clone()).await;
    }
    let phlo_id = rig.phlo(phlo).await;
    rig.attach(OURS, &phlo_id).await;
    let caller = rig.call_in(CALLER, OURS).await;
    let run_id = rig.run_of_call(&caller).await;
    (rig, caller, run_id)
}

/// An RFC 3339 UTC time of the simulator's log, comparable as text (nanoseconds padded to 9 digits).
fn instant(t: &Value) -> String {
    let t = t.as_str().expect("a time").trim_end_matches('Z');
    let (secs, frac) = t.split_once('.').unwrap_or((t, ""));
    format!("{secs}.{frac:0<9}")
}

/// The numbers the caller's call dialled, in order, and the one it was bridged with.
fn dialled_and_bridged(call: &Value) -> (Vec<String>, Vec<String>) {
    let dialled = events(call, "dialled")
        .iter()
        .map(|e| e["number"].as_str().unwrap().to_owned())
        .collect();
    let bridged = events(call, "bridged")
        .iter()
        .map(|e| e["with"].as_str().unwrap().to_owned())
        .collect();
    (dialled, bridged)
}

async fn call_forward_completed_when_the_callee_hangs_up(target: Target) {
    let (rig, caller, run_id) = forwarded_on(
        target,
        forward_phlo(json!({}), true),
        &[(BOB, json!({ "talk_secs": 2 }))],
    )
    .await;
    let run = rig.finished_run(&run_id).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let caller_call = rig.ended_call(&caller).await;
    let bob = &rig.ended_calls_to(BOB, 1).await[0];
    assert_eq!(bob["parent_call_uuid"], caller.as_str());
    let node = done_step(&run, "Call_Forward_1");
    assert_eq!(node["state"], "completed");
    assert_eq!(
        node["variables"],
        forward_vars(
            BOB,
            &caller,
            uuid_of(bob),
            "completed",
            "NORMAL_CLEARING",
            true
        )
    );

    assert_eq!(
        dialled_and_bridged(&caller_call),
        (vec![BOB.to_owned()], vec![BOB.to_owned()])
    );
    // After the bridge the caller is still there: the PHLO goes on with them.
    assert_eq!(
        heard(&caller_call),
        ["The call with +14155550102 ended: completed"]
    );
    assert_eq!(
        kinds(&caller_call),
        ["ringing", "dialled", "bridged", "heard", "hung_up"]
    );
    assert_eq!(kinds(bob), ["ringing", "answered", "bridged", "hung_up"]);
    assert_eq!(events(bob, "hung_up")[0]["reason"], "+14155550102 hung up");
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn call_forward_completed_when_the_caller_hangs_up() {
    let (rig, caller, run_id) = forwarded(
        forward_phlo(json!({}), false),
        &[(BOB, json!({ "talk_secs": null }))],
    )
    .await;
    rig.call_until(&caller, "bridged", |c| !events(c, "bridged").is_empty())
        .await;
    rig.hang_up(&caller).await;
    let run = rig.finished_run(&run_id).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let bob = &rig.ended_calls_to(BOB, 1).await[0];
    let node = done_step(&run, "Call_Forward_1");
    assert_eq!(node["state"], "completed");
    assert_eq!(
        node["variables"],
        forward_vars(
            BOB,
            &caller,
            uuid_of(bob),
            "completed",
            "NORMAL_CLEARING",
            true
        )
    );
    let caller_call = rig.ended_call(&caller).await;
    assert_eq!(
        kinds(&caller_call),
        ["ringing", "dialled", "bridged", "hung_up"]
    );
    assert_eq!(kinds(bob), ["ringing", "answered", "bridged", "hung_up"]);
    assert_eq!(events(bob, "hung_up")[0]["reason"], "+14155550150 hung up");
    rig.finish().await;
}

/// A forward that connects nobody: the state, its variables (no forwarded call to name), and the
/// caller told so by the PHLO.
async fn forward_fails(
    script: Value,
    state: &str,
    dial_status: &str,
    cause: &str,
    rang: bool,
    bob_kinds: &[&str],
) {
    let (rig, caller, run_id) = forwarded(
        forward_phlo(json!({ "ring_timeout": 5 }), true),
        &[(BOB, script)],
    )
    .await;
    let run = rig.finished_run(&run_id).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let node = done_step(&run, "Call_Forward_1");
    assert_eq!(node["state"], state);
    // The Dial action names no B leg when nobody answered.
    assert_eq!(
        node["variables"],
        forward_vars(BOB, &caller, "", dial_status, cause, rang)
    );
    let caller_call = rig.ended_call(&caller).await;
    assert_eq!(
        dialled_and_bridged(&caller_call),
        (vec![BOB.to_owned()], vec![])
    );
    assert_eq!(
        heard(&caller_call),
        [format!("Nobody could take your call: {dial_status}")]
    );
    let bob = &rig.ended_calls_to(BOB, 1).await[0];
    assert_eq!(kinds(bob), bob_kinds);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn call_forward_no_answer() {
    forward_fails(
        json!({ "answer": "no_answer" }),
        "no_answer",
        "no-answer",
        "NO_ANSWER",
        true,
        &["ringing", "no_answer", "hung_up"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn call_forward_busy() {
    forward_fails(
        json!({ "answer": "busy" }),
        "busy",
        "busy",
        "USER_BUSY",
        false,
        &["ringing", "busy", "hung_up"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn call_forward_failed() {
    forward_fails(
        json!({ "answer": "fail" }),
        "failed",
        "failed",
        "CALL_REJECTED",
        false,
        &["failed", "hung_up"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn call_forward_ring_timeout_is_no_answer() {
    // Bob would answer after 20 s; the forward rings for 5.
    forward_fails(
        json!({ "answer_after_secs": 20 }),
        "no_answer",
        "no-answer",
        "NO_ANSWER",
        true,
        &["ringing", "no_answer", "hung_up"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn call_forward_sequential_tries_the_next_recipient() {
    let phlo = forward_phlo(
        json!({ "to": [BOB, CAROL], "forwarding": "sequential" }),
        true,
    );
    let (rig, caller, run_id) = forwarded(
        phlo,
        &[
            (BOB, json!({ "answer": "busy" })),
            (CAROL, json!({ "talk_secs": 2 })),
        ],
    )
    .await;
    let run = rig.finished_run(&run_id).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let bob = &rig.ended_calls_to(BOB, 1).await[0];
    let carol = &rig.ended_calls_to(CAROL, 1).await[0];
    let node = done_step(&run, "Call_Forward_1");
    assert_eq!(node["state"], "completed");
    let to = format!("{BOB},{CAROL}");
    assert_eq!(
        node["variables"],
        forward_vars(
            &to,
            &caller,
            uuid_of(carol),
            "completed",
            "NORMAL_CLEARING",
            true
        )
    );
    // One result for the node, after both attempts.
    assert_eq!(steps(&run, "Call_Forward_1").len(), 2, "{run:#}");

    let caller_call = rig.ended_call(&caller).await;
    assert_eq!(
        dialled_and_bridged(&caller_call),
        (
            vec![BOB.to_owned(), CAROL.to_owned()],
            vec![CAROL.to_owned()]
        )
    );
    assert_eq!(
        kinds(&caller_call),
        [
            "ringing", "dialled", "dialled", "bridged", "heard", "hung_up"
        ]
    );
    assert_eq!(kinds(bob), ["ringing", "busy", "hung_up"]);
    assert_eq!(kinds(carol), ["ringing", "answered", "bridged", "hung_up"]);
    // Carol was dialled once Bob's attempt was over.
    assert!(
        instant(&carol["start_time"]) >= instant(&bob["end_time"]),
        "{bob:#}\n{carol:#}"
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn call_forward_parallel_the_first_to_answer_wins() {
    let phlo = forward_phlo(
        json!({ "to": [BOB, CAROL], "forwarding": "parallel", "ring_timeout": 60 }),
        true,
    );
    let scripts = [
        (BOB, json!({ "answer_after_secs": 30 })),
        (CAROL, json!({ "answer_after_secs": 1, "talk_secs": 2 })),
    ];
    let (rig, caller, run_id) = forwarded(phlo, &scripts).await;
    let run = rig.finished_run(&run_id).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let bob = &rig.ended_calls_to(BOB, 1).await[0];
    let carol = &rig.ended_calls_to(CAROL, 1).await[0];
    let node = done_step(&run, "Call_Forward_1");
    assert_eq!(node["state"], "completed");
    let to = format!("{BOB},{CAROL}");
    assert_eq!(
        node["variables"],
        forward_vars(
            &to,
            &caller,
            uuid_of(carol),
            "completed",
            "NORMAL_CLEARING",
            true
        )
    );

    let caller_call = rig.ended_call(&caller).await;
    assert_eq!(
        dialled_and_bridged(&caller_call),
        (
            vec![BOB.to_owned(), CAROL.to_owned()],
            vec![CAROL.to_owned()]
        )
    );
    assert_eq!(bob["status"], "cancel");
    assert_eq!(kinds(bob), ["ringing", "cancelled", "hung_up"]);
    assert_eq!(
        events(bob, "cancelled")[0]["reason"],
        "another leg answered first"
    );
    assert_eq!(kinds(carol), ["ringing", "answered", "bridged", "hung_up"]);
    rig.finish().await;
}

fn screened(confirm_key: &str) -> Value {
    json!({ "screening": {
        "prompt": { "type": "speak", "text": "Call from {{Start.call.from}}: press {{Start.call.to | slice: -1}} to accept" },
        "confirm_key": confirm_key,
    }})
}

#[tokio::test(flavor = "multi_thread")]
async fn call_forward_screening_accepted_bridges() {
    let bob_script = json!({ "confirm_key": "0", "talk_secs": 2 });
    let (rig, caller, run_id) =
        forwarded(forward_phlo(screened("0"), true), &[(BOB, bob_script)]).await;
    let run = rig.finished_run(&run_id).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let bob = &rig.ended_calls_to(BOB, 1).await[0];
    let node = done_step(&run, "Call_Forward_1");
    assert_eq!(node["state"], "completed");
    assert_eq!(
        node["variables"],
        forward_vars(
            BOB,
            &caller,
            uuid_of(bob),
            "completed",
            "NORMAL_CLEARING",
            true
        )
    );
    assert_eq!(heard(bob), ["Call from +14155550150: press 0 to accept"]);
    assert_eq!(pressed(bob), ["0"]);
    assert_eq!(
        kinds(bob),
        [
            "ringing", "answered", "heard", "pressed", "bridged", "hung_up"
        ]
    );
    let caller_call = rig.ended_call(&caller).await;
    assert_eq!(
        dialled_and_bridged(&caller_call),
        (vec![BOB.to_owned()], vec![BOB.to_owned()])
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn call_forward_screening_refused_does_not_bridge() {
    let (rig, caller, run_id) = forwarded(
        forward_phlo(screened("0"), true),
        &[(BOB, json!({ "confirm_key": "9" }))],
    )
    .await;
    let run = rig.finished_run(&run_id).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let node = done_step(&run, "Call_Forward_1");
    assert_eq!(node["state"], "no_answer");
    assert_eq!(
        node["variables"],
        forward_vars(BOB, &caller, "", "no-answer", "NO_ANSWER", true)
    );
    let bob = &rig.ended_calls_to(BOB, 1).await[0];
    assert_eq!(heard(bob), ["Call from +14155550150: press 0 to accept"]);
    assert_eq!(pressed(bob), ["9"]);
    assert_eq!(
        kinds(bob),
        ["ringing", "answered", "heard", "pressed", "hung_up"]
    );
    assert_eq!(
        events(bob, "hung_up")[0]["reason"],
        "did not press the confirm key"
    );
    let caller_call = rig.ended_call(&caller).await;
    assert_eq!(
        dialled_and_bridged(&caller_call),
        (vec![BOB.to_owned()], vec![])
    );
    assert_eq!(
        heard(&caller_call),
        ["Nobody could take your call: no-answer"]
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn call_forward_extension_is_sent_to_the_callee() {
    let phlo = forward_phlo(
        json!({ "extension": "ww{{Start.call.from | slice: -3, 3}}#" }),
        true,
    );
    let (rig, caller, run_id) = forwarded(phlo, &[(BOB, json!({ "talk_secs": 2 }))]).await;
    let run = rig.finished_run(&run_id).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    assert_eq!(done_step(&run, "Call_Forward_1")["state"], "completed");
    let bob = &rig.ended_calls_to(BOB, 1).await[0];
    let received: Vec<&Value> = events(bob, "received_digits")
        .iter()
        .map(|e| &e["digits"])
        .collect();
    assert_eq!(received, [&json!("ww150#")]);
    assert_eq!(
        kinds(bob),
        [
            "ringing",
            "answered",
            "bridged",
            "received_digits",
            "hung_up"
        ]
    );
    let caller_call = rig.ended_call(&caller).await;
    assert_eq!(
        dialled_and_bridged(&caller_call),
        (vec![BOB.to_owned()], vec![BOB.to_owned()])
    );
    rig.finish().await;
}
