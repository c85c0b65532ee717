//! Helpers of the voice and SMS tests: a stack pointed at the carrier simulator, numbers attached to
//! PHLOs, calls and messages into the gateway, and what the simulator saw.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Account, Sim, Stack, Target};

/// Generous: every wait here is a few hundred milliseconds when things work.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A stack with one worker whose gateway and workers talk to `sim`, signatures checked.
pub async fn voice_stack(sim: &Sim) -> (Stack, Account) {
    voice_stack_with(sim, &[]).await
}

/// Like [`voice_stack`], with extra environment for every process.
pub async fn voice_stack_with(sim: &Sim, extra: &[(&str, &str)]) -> (Stack, Account) {
    let env = sim.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.extend_from_slice(extra);
    let stack = Stack::start_with(1, &env).await;
    let acct = stack.account().await;
    (stack, acct)
}

/// A stack on `target` (see [`Target::start`]) with the simulator it talks to, and an account;
/// `extra` adds environment for every process.
pub async fn voice_stack_on(target: Target, extra: &[(&str, &str)]) -> (Stack, Sim, Account) {
    target.start(extra).await
}

/// Attaches `number` to the PHLO: its calls and messages start it.
pub async fn attach(stack: &Stack, acct: &Account, number: &str, phlo_id: &str) {
    let (status, body) = stack
        .call(
            acct,
            Method::PUT,
            &format!("/v1/numbers/{number}"),
            Some(json!({ "phlo_id": phlo_id })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Creates the PHLO and attaches `number` to it.
pub async fn phlo_on(stack: &Stack, acct: &Account, number: &str, definition: Value) -> String {
    let phlo_id = stack.create_phlo(acct, definition).await;
    attach(stack, acct, number, &phlo_id).await;
    phlo_id
}

/// Places an inbound call from `from` to `to` through the simulator and returns its uuid.
pub async fn call_in(stack: &Stack, sim: &Sim, from: &str, to: &str) -> String {
    let body = json!({
        "from": from, "to": to,
        "answer_url": stack.url("/v1/carrier/voice/answer"),
        "hangup_url": stack.url("/v1/carrier/voice/hangup"),
    });
    sim.post(&stack.http, "/sim/calls", body).await["call_uuid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Sends an SMS from `from` to `to` through the simulator to the gateway's inbound URL; returns its uuid.
pub async fn text_in(stack: &Stack, sim: &Sim, from: &str, to: &str, text: &str) -> String {
    let body = json!({
        "from": from, "to": to, "text": text,
        "message_url": stack.url("/v1/carrier/sms/inbound"),
    });
    sim.post(&stack.http, "/sim/messages", body).await["message_uuid"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The run a call started (the newest one).
pub async fn run_of_call(stack: &Stack, acct: &Account) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list) = stack
            .call(acct, Method::GET, "/v1/runs?trigger=call", None)
            .await;
        if let Some(id) = list["objects"][0]["run_id"].as_str() {
            return id.to_owned();
        }
        assert!(Instant::now() < deadline, "no run started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The run whose trigger (or variables) mention `needle`, e.g. a call or message uuid.
pub async fn run_mentioning(stack: &Stack, acct: &Account, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list) = stack
            .call(acct, Method::GET, &format!("/v1/runs?q={needle}"), None)
            .await;
        let ids: Vec<&str> = list["objects"]
            .as_array()
            .map(|a| a.iter().filter_map(|r| r["run_id"].as_str()).collect())
            .unwrap_or_default();
        assert!(ids.len() <= 1, "several runs mention {needle}: {list:#}");
        if let Some(id) = ids.first() {
            return (*id).to_owned();
        }
        assert!(Instant::now() < deadline, "no run mentions {needle}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The finished run a call started.
pub async fn finished_run_of(stack: &Stack, acct: &Account, call_uuid: &str) -> Value {
    let run_id = run_mentioning(stack, acct, call_uuid).await;
    stack.wait_run(acct, &run_id, DEADLINE).await
}

/// What the simulator recorded for a call once it ended.
pub async fn call_log(stack: &Stack, sim: &Sim, call_uuid: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let call = sim
            .get(&stack.http, &format!("/sim/calls/{call_uuid}"))
            .await;
        if call["status"] == "completed" {
            return call;
        }
        assert!(Instant::now() < deadline, "call still up: {call:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn events_of<'a>(call: &'a Value, kind: &str) -> Vec<&'a Value> {
    call["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

/// What the caller heard, in order: spoken text, or the URL of played audio.
pub fn heard(call: &Value) -> Vec<String> {
    events_of(call, "heard")
        .iter()
        .map(|e| {
            e["text"]
                .as_str()
                .or_else(|| e["url"].as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// The keys the caller pressed, one entry per input.
pub fn pressed(call: &Value) -> Vec<String> {
    events_of(call, "pressed")
        .iter()
        .map(|e| e["digits"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The kinds of the call's events, in order (`ringing`, `heard`, `pressed`, ...).
pub fn kinds(call: &Value) -> Vec<String> {
    call["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The one `hung_up` event of a call.
pub fn hung_up(call: &Value) -> &Value {
    let ends = events_of(call, "hung_up");
    assert_eq!(ends.len(), 1, "{call:#}");
    ends[0]
}

/// Every finished step of `node_name` (one per token that passed it).
pub fn done_steps<'a>(run: &'a Value, node_name: &str) -> Vec<&'a Value> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["node_name"] == node_name && s["outcome"] == "done")
        .collect()
}

/// The steps of the run as (node, outcome) pairs, in order.
pub fn journal(run: &Value) -> Vec<(String, String)> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["node_name"].as_str().unwrap().to_owned(),
                s["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `[("a", "done"), ...]` as owned pairs, to compare with [`journal`].
pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(n, o)| ((*n).to_owned(), (*o).to_owned()))
        .collect()
}

/// Every webhook the simulator sent to a URL containing `part`, oldest first.
pub async fn webhooks_to(stack: &Stack, sim: &Sim, part: &str) -> Vec<Value> {
    let all = sim.get(&stack.http, "/sim/webhooks").await;
    all.as_array()
        .unwrap()
        .iter()
        .filter(|w| w["url"].as_str().is_some_and(|u| u.contains(part)))
        .cloned()
        .collect()
}

/// A webhook parameter (the simulator logs them as `[name, value]` pairs).
pub fn param<'a>(webhook: &'a Value, name: &str) -> Option<&'a str> {
    webhook["params"]
        .as_array()?
        .iter()
        .find(|p| p[0] == name)
        .and_then(|p| p[1].as_str())
}

/// Every message the simulator handled, oldest first.
pub async fn sim_messages(stack: &Stack, sim: &Sim) -> Vec<Value> {
    sim.get(&stack.http, "/sim/messages")
        .await
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until the simulator's message to `to` reached a final status.
pub async fn final_message_to(stack: &Stack, sim: &Sim, to: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = sim_messages(stack, sim)
            .await
            .into_iter()
            .find(|m| m["to"] == to && m["direction"] == "outbound");
        if let Some(m) = &found
            && ["delivered", "failed", "undelivered", "rejected"]
                .contains(&m["status"].as_str().unwrap_or_default())
        {
            return m.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no final message to {to}: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls the run until `ready` holds.
pub async fn run_until(
    stack: &Stack,
    acct: &Account,
    run_id: &str,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let run = stack.get_run(acct, run_id).await;
        if ready(&run) {
            return run;
        }
        assert!(Instant::now() < deadline, "{what} never happened: {run:#}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
