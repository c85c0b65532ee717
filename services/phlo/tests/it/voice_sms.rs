//! SMS end to end: Start's incoming message through the gateway's inbound URL, and Send SMS through the
//! carrier's Message API with the simulator's delivery reports coming back to the gateway. Each test
//! checks the node's state and variables and the message the simulator carried.
//!
//! Conformance scenarios (dev mode and distributed): `send_sms_from_an_api_request_is_sent`,
//! `an_incoming_sms_starts_the_phlo_and_the_reply_goes_to_the_sender`.

use serde_json::{Value, json};

use crate::support::{Account, Sim, Stack, Target, done_step};
use crate::voice_support::*;

const START: &str = "72000000-0000-4000-8000-000000000000";
const SEND: &str = "72000000-0000-4000-8000-000000000001";

crate::conformance!(
    send_sms_from_an_api_request_is_sent,
    an_incoming_sms_starts_the_phlo_and_the_reply_goes_to_the_sender,
    an_incoming_sms_with_a_nul_character_runs_with_a_replacement_character,
);

const NUMBER: &str = "+14155550199";
const SENDER: &str = "+14155550100";

/// One step consumer at a time: the simulator's reports (`queued`, `sent`, then `delivered` or a
/// failure) are applied in the order the gateway got them, so the first final one decides.
async fn sms_stack(sim: &Sim) -> (Stack, Account) {
    voice_stack_with(sim, &[("PHLO_WORKER_CONCURRENCY", "1")]).await
}

/// [`sms_stack`] on `target`, with its simulator.
async fn sms_stack_on(target: Target) -> (Stack, Sim, Account) {
    voice_stack_on(target, &[("PHLO_WORKER_CONCURRENCY", "1")]).await
}

fn api_phlo(send: Value) -> Value {
    let mut node = json!({ "node_id": SEND, "name": "Send_SMS_1", "type": "send_sms" });
    node["options"] = send;
    json!({ "name": "Text", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "api_request": SEND } },
        node,
    ]})
}

/// The variables of a Send SMS token for one US recipient of [`SENDER`], as the seed names them.
fn sms_vars(
    to: &str,
    msg: &str,
    message_uuid: &Value,
    status: &str,
    error_code: Option<&str>,
) -> Value {
    json!({
        "message_uuid": message_uuid, "from": SENDER, "to": to,
        "media_urls": [], "media_count": 0, "type": "sms",
        "to.iso2": "US", "from.iso2": "US", "to_country": "United States", "from_country": "United States",
        "msg": msg, "units": 1, "total_rate": "0.00500", "total_amount": "0.00500",
        "direction": "outbound", "status": status, "error_code": error_code,
    })
}

async fn send_sms_from_an_api_request_is_sent(target: Target) {
    let (mut stack, sim, acct) = sms_stack_on(target).await;
    let phlo_id = stack
        .create_phlo(
            &acct,
            api_phlo(json!({ "from": SENDER, "to": "{{Start.http.params.to}}",
                             "message": "Your code is {{Start.http.params.otp}}." })),
        )
        .await;
    let to = "+14155550101";
    sim.script(&stack.http, to, json!({ "sms": "deliver" }))
        .await;
    let run_id = stack
        .run(&acct, &phlo_id, json!({ "to": to, "otp": "779889" }))
        .await;
    let run = stack.wait_run(&acct, &run_id, DEADLINE).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let carried = final_message_to(&stack, &sim, to).await;
    assert_eq!(
        (
            &carried["from"],
            &carried["to"],
            &carried["text"],
            &carried["type"]
        ),
        (
            &json!(SENDER),
            &json!(to),
            &json!("Your code is 779889."),
            &json!("sms")
        )
    );
    assert_eq!(carried["statuses"], json!(["queued", "sent", "delivered"]));
    let uuid = &carried["message_uuid"];
    let send = done_step(&run, "Send_SMS_1");
    assert_eq!(send["state"], "sent");
    assert_eq!(send["error"], Value::Null);
    // The carrier's `sent` report decides; its later `delivered` finds the token gone.
    assert_eq!(
        send["variables"],
        sms_vars(to, "Your code is 779889.", uuid, "delivered", None)
    );
    assert_eq!(run["message_uuids"], json!([uuid]));
    assert_eq!(sim_messages(&stack, &sim).await.len(), 1);
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn send_sms_forks_one_token_per_recipient_and_fails_the_ones_the_carrier_fails() {
    let sim = Sim::start().await;
    let (mut stack, acct) = sms_stack(&sim).await;
    // (recipient, script, state, status, error code, simulator's final status)
    let cases = [
        (
            "+14155550111",
            "deliver",
            "sent",
            "delivered",
            None,
            "delivered",
        ),
        (
            "+14155550112",
            "fail",
            "failed",
            "failed",
            Some("20"),
            "failed",
        ),
        (
            "+14155550113",
            "reject",
            "failed",
            "rejected",
            Some("100"),
            "rejected",
        ),
        // Reported `sent`, then `undelivered`: `sent` is not final, the failure decides.
        (
            "+14155550114",
            "undeliverable",
            "failed",
            "undelivered",
            Some("80"),
            "undelivered",
        ),
    ];
    for (to, script, ..) in cases {
        sim.script(&stack.http, to, json!({ "sms": script })).await;
    }
    let recipients: Vec<&str> = cases.iter().map(|c| c.0).collect();
    let phlo_id = stack
        .create_phlo(&acct, api_phlo(json!({ "from": SENDER, "to": recipients, "message": "Hello {{Start.http.params.name}}" })))
        .await;
    let run_id = stack.run(&acct, &phlo_id, json!({ "name": "Ada" })).await;
    let run = stack.wait_run(&acct, &run_id, DEADLINE).await;
    // A failure state is the PHLO's to handle: it does not fail the run.
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["error"], Value::Null);

    let steps = done_steps(&run, "Send_SMS_1");
    assert_eq!(steps.len(), 4, "one token per recipient: {run:#}");
    let tokens: Vec<i64> = {
        let mut t: Vec<i64> = steps.iter().map(|s| s["token"].as_i64().unwrap()).collect();
        t.sort_unstable();
        t
    };
    assert_eq!(tokens, [0, 1, 2, 3]);
    let all = run["tokens"].as_array().unwrap();
    assert_eq!(all.len(), 4);
    assert!(
        all.iter()
            .all(|t| t["status"] == "ended" && t["ended_reason"].is_null()),
        "{run:#}"
    );

    for (to, _, state, status, code, final_status) in cases {
        let carried = final_message_to(&stack, &sim, to).await;
        assert_eq!(
            (&carried["text"], &carried["from"]),
            (&json!("Hello Ada"), &json!(SENDER))
        );
        assert_eq!(carried["status"], final_status, "{carried:#}");
        let step = steps
            .iter()
            .find(|s| s["variables"]["to"] == to)
            .unwrap_or_else(|| panic!("no token for {to}"));
        assert_eq!(step["state"], state, "{to}: {step:#}");
        assert_eq!(
            step["variables"],
            sms_vars(to, "Hello Ada", &carried["message_uuid"], status, code),
            "{to}"
        );
        let error =
            code.map(|c| format!("the carrier reported the message {status} (error code {c})"));
        assert_eq!(step["error"], json!(error), "{to}");
    }
    assert_eq!(run["message_uuids"].as_array().unwrap().len(), 4);
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn send_sms_with_media_is_an_mms() {
    let sim = Sim::start().await;
    let (mut stack, acct) = sms_stack(&sim).await;
    let media = [
        "https://example.com/img/receipt.png",
        "https://example.com/img/map.gif",
    ];
    let phlo_id = stack
        .create_phlo(
            &acct,
            api_phlo(
                json!({ "from": SENDER, "to": "+14155550121", "message": "Your receipt",
                             "media_urls": [media[0], "{{Start.http.params.map}}"] }),
            ),
        )
        .await;
    let run_id = stack.run(&acct, &phlo_id, json!({ "map": media[1] })).await;
    let run = stack.wait_run(&acct, &run_id, DEADLINE).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let carried = final_message_to(&stack, &sim, "+14155550121").await;
    assert_eq!(
        (
            &carried["type"],
            &carried["media_urls"],
            &carried["text"],
            &carried["units"]
        ),
        (
            &json!("mms"),
            &json!(media),
            &json!("Your receipt"),
            &json!(1)
        )
    );
    let send = done_step(&run, "Send_SMS_1");
    assert_eq!(send["state"], "sent");
    let mut expected = sms_vars(
        "+14155550121",
        "Your receipt",
        &carried["message_uuid"],
        "delivered",
        None,
    );
    expected["type"] = json!("mms");
    expected["media_urls"] = json!(media);
    expected["media_count"] = json!(2);
    assert_eq!(send["variables"], expected);
    stack.cleanup().await;
}

async fn an_incoming_sms_starts_the_phlo_and_the_reply_goes_to_the_sender(target: Target) {
    let (mut stack, sim, acct) = sms_stack_on(target).await;
    phlo_on(&stack, &acct, NUMBER, json!({ "name": "Auto reply", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "incoming_message": SEND } },
        { "node_id": SEND, "name": "Send_SMS_1", "type": "send_sms",
          "options": { "from": "{{Start.message.to}}", "to": "{{Start.message.from}}",
                       "message": "You said {{Start.message.msg}} ({{Start.message.text}}) from {{Start.message.from_country}}" } },
    ]}))
    .await;
    let sender = "+447700900123";
    let message_uuid = text_in(&stack, &sim, sender, NUMBER, "HELP").await;
    let run_id = run_mentioning(&stack, &acct, &message_uuid).await;
    let run = stack.wait_run(&acct, &run_id, DEADLINE).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(
        (&run["trigger"], &run["from"], &run["to"]),
        (&json!("sms"), &json!(sender), &json!(NUMBER))
    );

    let start = done_step(&run, "Start");
    assert_eq!(start["state"], "incoming_message");
    let mut vars = start["variables"].clone();
    // The carrier's inbound webhook carries no time: the gateway's time of receipt, Plivo's format,
    // between the simulator's sending it and the run's creation.
    let time = vars["message"]["time"]
        .as_str()
        .unwrap_or_else(|| panic!("no message.time: {vars:#}"))
        .to_owned();
    let inbound = sim_messages(&stack, &sim)
        .await
        .into_iter()
        .find(|m| m["message_uuid"] == message_uuid.as_str())
        .unwrap();
    let sent_at = inbound["created_at"].as_str().unwrap().replace('T', " ");
    let created = run["created_on"].as_str().unwrap();
    assert_eq!(time.len(), 19, "{time}");
    assert!(
        sent_at[..19] <= *time && time.as_str() <= &created[..19],
        "{sent_at} <= {time} <= {created}"
    );
    vars["message"]["time"] = json!("<time>");
    assert_eq!(
        vars,
        json!({ "request_type": "sms", "message": {
            "message_uuid": message_uuid, "time": "<time>", "direction": "inbound", "status": "received",
            "to": NUMBER, "from": sender,
            "to_iso2": "US", "from_iso2": "GB", "to_country": "United States", "from_country": "United Kingdom",
            "msg": "HELP", "text": "HELP", "units": 1, "total_rate": "0.00000", "total_amount": "0.00000",
        }})
    );

    let reply_text = "You said HELP (HELP) from United Kingdom";
    let reply = final_message_to(&stack, &sim, sender).await;
    assert_eq!(
        (&reply["from"], &reply["to"], &reply["text"]),
        (&json!(NUMBER), &json!(sender), &json!(reply_text))
    );
    let send = done_step(&run, "Send_SMS_1");
    assert_eq!(send["state"], "sent");
    let mut expected = sms_vars(
        sender,
        reply_text,
        &reply["message_uuid"],
        "delivered",
        None,
    );
    expected["from"] = json!(NUMBER);
    expected["to.iso2"] = json!("GB");
    expected["to_country"] = json!("United Kingdom");
    assert_eq!(send["variables"], expected);
    assert_eq!(
        run["message_uuids"],
        json!([message_uuid, reply["message_uuid"]])
    );
    stack.cleanup().await;
}

/// A NUL in a text (GSM 7-bit '@' is 0x00, and a careless decoder passes it on) used to make the
/// inbound webhook fail on Postgres, whose `jsonb` refuses U+0000, so the message started no run; SQLite
/// kept it. Both now store U+FFFD in its place, and the run goes on.
async fn an_incoming_sms_with_a_nul_character_runs_with_a_replacement_character(target: Target) {
    let (mut stack, sim, acct) = sms_stack_on(target).await;
    phlo_on(&stack, &acct, NUMBER, json!({ "name": "Echo", "nodes": [
        { "node_id": START, "name": "Start", "type": "start", "transitions": { "incoming_message": SEND } },
        { "node_id": SEND, "name": "Send_SMS_1", "type": "send_sms",
          "options": { "from": "{{Start.message.to}}", "to": "{{Start.message.from}}",
                       "message": "You said {{Start.message.text}}" } },
    ]}))
    .await;
    let message_uuid = text_in(&stack, &sim, SENDER, NUMBER, "meet @ 5: a\u{0}b").await;
    let run_id = run_mentioning(&stack, &acct, &message_uuid).await;
    let run = stack.wait_run(&acct, &run_id, DEADLINE).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let start = done_step(&run, "Start");
    assert_eq!(
        start["variables"]["message"]["text"],
        "meet @ 5: a\u{FFFD}b"
    );
    let reply = final_message_to(&stack, &sim, SENDER).await;
    assert_eq!(reply["text"], "You said meet @ 5: a\u{FFFD}b");
    stack.cleanup().await;
}

/// The carrier's webhook parameters go into text columns too (the run's `from`), which refuse a NUL
/// byte on Postgres: the webhook failed (500) however often the carrier retried. Every parameter now
/// has U+FFFD in its place, after the signature is checked over what was sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_carrier_webhook_with_nul_characters_starts_the_run() {
    let mut stack = Stack::start(1).await;
    let acct = stack.account().await;
    phlo_on(
        &stack,
        &acct,
        NUMBER,
        json!({ "name": "Inbound", "nodes": [
        { "node_id": START, "name": "Start", "type": "start" } ] }),
    )
    .await;
    let message_uuid = uuid::Uuid::new_v4().to_string();
    let r = stack
        .http
        .post(stack.url("/v1/carrier/sms/inbound"))
        .form(&[
            ("From", "+1415555\u{0}0100"),
            ("To", NUMBER),
            ("Text", "a\u{0}b"),
            ("MessageUUID", &message_uuid),
        ])
        .send()
        .await
        .expect("inbound SMS");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let run_id = run_mentioning(&stack, &acct, &message_uuid).await;
    let run = stack.wait_run(&acct, &run_id, DEADLINE).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["from"], "+1415555\u{FFFD}0100");
    let message = &done_step(&run, "Start")["variables"]["message"];
    assert_eq!(
        (&message["from"], &message["text"]),
        (&json!("+1415555\u{FFFD}0100"), &json!("a\u{FFFD}b"))
    );
    stack.cleanup().await;
}
