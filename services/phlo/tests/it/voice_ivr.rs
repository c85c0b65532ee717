//! Every state of the voice components (Start's incoming call, IVR Menu, Get Input, Play Audio,
//! Record Audio, Hangup) end to end: the simulator's scripted caller calls the gateway, the worker
//! runs the nodes, and each test checks the node's state, its variables and what the caller heard,
//! pressed and was hung up with. Then the waits: a caller leaving mid-menu, a no-input timer that
//! survives every worker being restarted, and a late callback for a wait that has moved on.
//!
//! Conformance scenarios (dev mode and distributed): `ivr_menu_takes_each_allowed_key_to_its_own_state`,
//! `get_input_collects_digits_up_to_the_finish_key_or_ends_in_no_input`,
//! `play_audio_speaks_and_plays_its_prompts_then_completes`,
//! `record_audio_delivers_recordings_with_their_variables`,
//! `hangup_rejects_or_reports_busy_as_configured`, `start_reports_the_incoming_call`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Sim, Target, done_step};
use crate::voice_support::*;

crate::conformance!(
    ivr_menu_takes_each_allowed_key_to_its_own_state,
    get_input_collects_digits_up_to_the_finish_key_or_ends_in_no_input,
    play_audio_speaks_and_plays_its_prompts_then_completes,
    record_audio_delivers_recordings_with_their_variables,
    hangup_rejects_or_reports_busy_as_configured,
    start_reports_the_incoming_call,
);

const START: &str = "71000000-0000-4000-8000-000000000000";
const MENU: &str = "71000000-0000-4000-8000-000000000001";
const INPUT: &str = "71000000-0000-4000-8000-000000000002";
const RECORD_1: &str = "71000000-0000-4000-8000-000000000003";
const RECORD_2: &str = "71000000-0000-4000-8000-000000000004";
const MENU_2: &str = "71000000-0000-4000-8000-000000000005";
const SMS: &str = "71000000-0000-4000-8000-000000000006";
const PLAY_1: &str = "71000000-0000-4000-8000-000000000011";
const PLAY_2: &str = "71000000-0000-4000-8000-000000000012";
const PLAY_STAR: &str = "71000000-0000-4000-8000-000000000013";
const PLAY_HASH: &str = "71000000-0000-4000-8000-000000000014";
const PLAY_NONE: &str = "71000000-0000-4000-8000-000000000015";
const PLAY_WRONG: &str = "71000000-0000-4000-8000-000000000016";
const BYE: &str = "71000000-0000-4000-8000-000000000020";

const NUMBER: &str = "+14155550199";
const MENU_PROMPT: &str =
    "Press 1 for sales, 2 for support, star for the operator or hash to repeat";

fn start(first: &str) -> Value {
    json!({ "node_id": START, "name": "Start", "type": "start", "transitions": { "incoming_call": first } })
}

fn hangup() -> Value {
    json!({ "node_id": BYE, "name": "Hangup_1", "type": "hangup" })
}

fn play(id: &str, name: &str, text: &str) -> Value {
    json!({ "node_id": id, "name": name, "type": "play_audio", "options": { "prompts": [text] },
            "transitions": { "prompt_completed": BYE } })
}

/// A menu of four keys, each leading to its own Play node; no input and wrong input have their own.
fn menu_phlo() -> Value {
    json!({ "name": "Menu", "nodes": [
        start(MENU),
        { "node_id": MENU, "name": "IVR_Menu_1", "type": "ivr_menu",
          "options": { "prompts": [{ "type": "speak", "text": MENU_PROMPT, "language": "en-GB", "voice": "MAN" }],
                       "allowed_inputs": ["1", "2", "*", "#"], "input_timeout": 3 },
          "transitions": { "1": PLAY_1, "2": PLAY_2, "*": PLAY_STAR, "#": PLAY_HASH,
                           "no_input": PLAY_NONE, "wrong_input": PLAY_WRONG } },
        play(PLAY_1, "Play_Sales", "Sales, you pressed {{IVR_Menu_1.digits}}"),
        play(PLAY_2, "Play_Support", "Support, you pressed {{IVR_Menu_1.digits}}"),
        play(PLAY_STAR, "Play_Operator", "Operator, you pressed {{IVR_Menu_1.digits}}"),
        play(PLAY_HASH, "Play_Repeat", "Repeat, you pressed {{IVR_Menu_1.digits}}"),
        play(PLAY_NONE, "Play_No_Input", "We did not hear a key{{IVR_Menu_1.digits}}"),
        play(PLAY_WRONG, "Play_Wrong_Input", "Key {{IVR_Menu_1.digits}} is not an option"),
        hangup(),
    ]})
}

/// The journal of a call through the menu that ends with `play`.
fn menu_journal(play: &str) -> Vec<(String, String)> {
    pairs(&[
        ("Start", "done"),
        ("IVR_Menu_1", "wait"),
        ("IVR_Menu_1", "done"),
        (play, "wait"),
        (play, "done"),
        ("Hangup_1", "done"),
    ])
}

async fn ivr_menu_takes_each_allowed_key_to_its_own_state(target: Target) {
    let (mut stack, sim, acct) = voice_stack_on(target, &[]).await;
    phlo_on(&stack, &acct, NUMBER, menu_phlo()).await;
    let cases = [
        ("+14155550101", "1", "Play_Sales", "Sales, you pressed 1"),
        (
            "+14155550102",
            "2",
            "Play_Support",
            "Support, you pressed 2",
        ),
        (
            "+14155550103",
            "*",
            "Play_Operator",
            "Operator, you pressed *",
        ),
        ("+14155550104", "#", "Play_Repeat", "Repeat, you pressed #"),
    ];
    let mut calls = Vec::new();
    for (caller, key, _, _) in cases {
        sim.script(&stack.http, caller, json!({ "digits": [key] }))
            .await;
        calls.push(call_in(&stack, &sim, caller, NUMBER).await);
    }
    for ((_, key, play, said), call_uuid) in cases.iter().zip(&calls) {
        let run = finished_run_of(&stack, &acct, call_uuid).await;
        assert_eq!(run["status"], "completed", "{run:#}");
        let menu = done_step(&run, "IVR_Menu_1");
        assert_eq!(menu["state"], *key, "{run:#}");
        assert_eq!(
            menu["variables"],
            json!({ "digits": key, "input_type": "digits" })
        );
        assert_eq!(done_step(&run, play)["state"], "prompt_completed");
        let bye = done_step(&run, "Hangup_1");
        assert_eq!(bye["state"], "hangup_complete");
        assert_eq!(bye["variables"], json!({ "reason": "normal" }));
        assert_eq!(journal(&run), menu_journal(play));

        let call = call_log(&stack, &sim, call_uuid).await;
        assert_eq!(heard(&call), [MENU_PROMPT, *said], "{call:#}");
        let prompt = events_of(&call, "heard")[0];
        assert_eq!(
            (&prompt["voice"], &prompt["language"]),
            (&json!("MAN"), &json!("en-GB"))
        );
        assert_eq!(pressed(&call), [*key]);
        assert_eq!(
            kinds(&call),
            ["ringing", "heard", "pressed", "heard", "hung_up"],
            "{call:#}"
        );
        let end = hung_up(&call);
        assert_eq!(
            (&end["cause"], &end["reason"]),
            (&json!("NORMAL_CLEARING"), &json!("Hangup element"))
        );
    }
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ivr_menu_with_a_silent_caller_ends_in_no_input() {
    let sim = Sim::start().await;
    let (mut stack, acct) = voice_stack(&sim).await;
    phlo_on(&stack, &acct, NUMBER, menu_phlo()).await;
    // One caller's script says "silence" for the menu; the other has no script at all.
    sim.script(&stack.http, "+14155550105", json!({ "digits": [""] }))
        .await;
    let silent = call_in(&stack, &sim, "+14155550105", NUMBER).await;
    let unscripted = call_in(&stack, &sim, "+14155550106", NUMBER).await;
    for call_uuid in [&silent, &unscripted] {
        let run = finished_run_of(&stack, &acct, call_uuid).await;
        assert_eq!(run["status"], "completed", "{run:#}");
        let menu = done_step(&run, "IVR_Menu_1");
        assert_eq!(menu["state"], "no_input");
        assert_eq!(
            menu["variables"],
            json!({ "digits": "", "input_type": "digits" })
        );
        // The carrier's fall-through (no Digits) decided, not the wait's timer.
        assert_eq!(menu["event"], "digits", "{menu:#}");
        assert_eq!(journal(&run), menu_journal("Play_No_Input"));

        let call = call_log(&stack, &sim, call_uuid).await;
        assert_eq!(heard(&call), [MENU_PROMPT, "We did not hear a key"]);
        assert_eq!(pressed(&call), Vec::<String>::new());
        let silence = events_of(&call, "silent");
        assert_eq!(silence.len(), 1, "{call:#}");
        // The caller waited out the node's input timeout.
        assert_eq!(silence[0]["seconds"], 3.0);
        assert_eq!(
            kinds(&call),
            ["ringing", "heard", "silent", "heard", "hung_up"]
        );
    }
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ivr_menu_with_a_key_not_allowed_ends_in_wrong_input() {
    let sim = Sim::start().await;
    let (mut stack, acct) = voice_stack(&sim).await;
    phlo_on(&stack, &acct, NUMBER, menu_phlo()).await;
    sim.script(&stack.http, "+14155550107", json!({ "digits": ["9"] }))
        .await;
    let call_uuid = call_in(&stack, &sim, "+14155550107", NUMBER).await;
    let run = finished_run_of(&stack, &acct, &call_uuid).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let menu = done_step(&run, "IVR_Menu_1");
    assert_eq!(menu["state"], "wrong_input");
    assert_eq!(
        menu["variables"],
        json!({ "digits": "9", "input_type": "digits" })
    );
    assert_eq!(journal(&run), menu_journal("Play_Wrong_Input"));

    let call = call_log(&stack, &sim, &call_uuid).await;
    assert_eq!(heard(&call), [MENU_PROMPT, "Key 9 is not an option"]);
    assert_eq!(pressed(&call), ["9"]);
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ivr_menu_interrupt_flag_reaches_the_call_and_every_prompt_plays() {
    let sim = Sim::start().await;
    let (mut stack, acct) = voice_stack(&sim).await;
    let prompts = json!([
        { "type": "speak", "text": "Main menu" },
        { "type": "play", "url": "https://example.com/audio/menu.mp3" },
    ]);
    phlo_on(&stack, &acct, NUMBER, json!({ "name": "Two menus", "nodes": [
        start(MENU),
        { "node_id": MENU, "name": "IVR_Menu_1", "type": "ivr_menu",
          "options": { "prompts": prompts, "allowed_inputs": [1, 2] },
          "transitions": { "1": MENU_2 } },
        { "node_id": MENU_2, "name": "IVR_Menu_2", "type": "ivr_menu",
          "options": { "prompts": prompts, "allowed_inputs": ["3"], "interrupt_on_input": false, "input_timeout": 7 },
          "transitions": { "3": BYE } },
        hangup(),
    ]}))
    .await;
    sim.script(&stack.http, "+14155550108", json!({ "digits": ["1", "3"] }))
        .await;
    let call_uuid = call_in(&stack, &sim, "+14155550108", NUMBER).await;
    let run = finished_run_of(&stack, &acct, &call_uuid).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(done_step(&run, "IVR_Menu_1")["state"], "1");
    assert_eq!(done_step(&run, "IVR_Menu_2")["state"], "3");
    assert_eq!(
        done_step(&run, "IVR_Menu_2")["variables"],
        json!({ "digits": "3", "input_type": "digits" })
    );

    // The flag travels with the call's instruction: prompts nested in the input (a key stops them)
    // by default, played before it (always to the end) when the node says not to interrupt.
    let gather = |interrupt: bool, timeout: u32| {
        json!([{ "effect": "voice", "action": "gather",
            "prompts": [
                { "type": "speak", "text": "Main menu", "language": "en-US", "voice": "WOMAN" },
                { "type": "play", "url": "https://example.com/audio/menu.mp3" },
            ],
            "valid_digits": null, "max_digits": 1, "timeout_secs": timeout, "digit_timeout_secs": timeout,
            "finish_on_key": null, "interrupt": interrupt }])
    };
    let waits: Vec<&Value> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["outcome"] == "wait")
        .collect();
    assert_eq!(waits.len(), 2, "{run:#}");
    assert_eq!(waits[0]["effects"], gather(true, 5));
    assert_eq!(waits[1]["effects"], gather(false, 7));

    // Either way the caller heard every prompt, then pressed.
    let call = call_log(&stack, &sim, &call_uuid).await;
    let menu = ["Main menu", "https://example.com/audio/menu.mp3"];
    assert_eq!(heard(&call), [menu, menu].concat());
    assert_eq!(pressed(&call), ["1", "3"]);
    assert_eq!(
        kinds(&call),
        [
            "ringing", "heard", "heard", "pressed", "heard", "heard", "pressed", "hung_up"
        ]
    );
    stack.cleanup().await;
}

fn get_input_phlo(options: Value) -> Value {
    json!({ "name": "Account number", "nodes": [
        start(INPUT),
        { "node_id": INPUT, "name": "Get_Input_1", "type": "get_input", "options": options,
          "transitions": { "input": PLAY_1, "no_input": PLAY_NONE } },
        play(PLAY_1, "Play_Input", "You entered {{Get_Input_1.input}}"),
        play(PLAY_NONE, "Play_No_Input", "Nothing entered{{Get_Input_1.input}}"),
        hangup(),
    ]})
}

/// Calls `number` from each `(caller, script digits)` and checks the Get Input state, its input,
/// what the caller pressed and what it heard afterwards.
async fn check_inputs(
    stack: &crate::support::Stack,
    acct: &crate::support::Account,
    sim: &Sim,
    number: &str,
    prompt: &str,
    cases: &[(&str, &str, &str, &str, &str)],
) {
    let mut calls = Vec::new();
    for (caller, digits, ..) in cases {
        sim.script(&stack.http, caller, json!({ "digits": [digits] }))
            .await;
        calls.push(call_in(stack, sim, caller, number).await);
    }
    for ((caller, _, state, input, keys), call_uuid) in cases.iter().zip(&calls) {
        let run = finished_run_of(stack, acct, call_uuid).await;
        assert_eq!(run["status"], "completed", "{caller}: {run:#}");
        let step = done_step(&run, "Get_Input_1");
        assert_eq!(step["state"], *state, "{caller}: {run:#}");
        assert_eq!(
            step["variables"],
            json!({ "input": input, "input_type": "digits" }),
            "{caller}"
        );
        let call = call_log(stack, sim, call_uuid).await;
        let after = if *state == "input" {
            format!("You entered {input}")
        } else {
            "Nothing entered".to_owned()
        };
        assert_eq!(
            heard(&call),
            [prompt.to_owned(), after],
            "{caller}: {call:#}"
        );
        let expected: Vec<String> = if keys.is_empty() {
            Vec::new()
        } else {
            vec![(*keys).to_owned()]
        };
        // "#" alone is pressed (and logged as an empty entry); silence presses nothing.
        let pressed_keys: Vec<String> = pressed(&call)
            .into_iter()
            .filter(|k| !k.is_empty())
            .collect();
        assert_eq!(pressed_keys, expected, "{caller}: {call:#}");
    }
}

async fn get_input_collects_digits_up_to_the_finish_key_or_ends_in_no_input(target: Target) {
    let (mut stack, sim, acct) = voice_stack_on(target, &[]).await;
    let prompt = "Enter your account number, then hash";
    phlo_on(
        &stack,
        &acct,
        NUMBER,
        get_input_phlo(json!({ "prompt": prompt, "input_timeout": 4 })),
    )
    .await;
    check_inputs(
        &stack,
        &acct,
        &sim,
        NUMBER,
        prompt,
        &[
            // (caller, script, state, input, keys the caller pressed)
            ("+14155550111", "1234#", "input", "1234", "1234"),
            ("+14155550112", "7", "input", "7", "7"),
            ("+14155550113", "", "no_input", "", ""),
            ("+14155550114", "#", "no_input", "", ""),
        ],
    )
    .await;
    // The finish key alone counts as nothing, and the silent caller waited the input timeout.
    let only_hash = call_log(
        &stack,
        &sim,
        &run_caller_call(&sim, &stack, "+14155550114").await,
    )
    .await;
    assert_eq!(events_of(&only_hash, "pressed")[0]["digits"], "");
    let silent = call_log(
        &stack,
        &sim,
        &run_caller_call(&sim, &stack, "+14155550113").await,
    )
    .await;
    assert_eq!(events_of(&silent, "silent")[0]["seconds"], 4.0);
    stack.cleanup().await;
}

/// The uuid of the (only) call the simulator took from `caller`.
async fn run_caller_call(sim: &Sim, stack: &crate::support::Stack, caller: &str) -> String {
    let calls = sim.get(&stack.http, "/sim/calls").await;
    let mine: Vec<&Value> = calls
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["from"] == caller)
        .collect();
    assert_eq!(mine.len(), 1, "{calls:#}");
    mine[0]["uuid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn get_input_keeps_max_input_size_digits_and_ends_without_a_finish_key() {
    let sim = Sim::start().await;
    let (mut stack, acct) = voice_stack(&sim).await;
    let prompt = "Enter the three digit code";
    let options = json!({ "prompt": { "type": "speak", "text": prompt }, "max_input_size": 3, "finish_on_key": "", "input_timeout": 2 });
    phlo_on(&stack, &acct, NUMBER, get_input_phlo(options)).await;
    check_inputs(
        &stack,
        &acct,
        &sim,
        NUMBER,
        prompt,
        &[
            // The fourth and fifth keys are ignored: the input is complete at three.
            ("+14155550121", "98765", "input", "987", "987"),
            // Two keys and then nothing: the digit timeout ends the input (no finish key).
            ("+14155550122", "42", "input", "42", "42"),
            // With no finish key, "#" is a key like any other.
            ("+14155550123", "1#", "input", "1#", "1#"),
        ],
    )
    .await;
    let run = finished_run_of(
        &stack,
        &acct,
        &run_caller_call(&sim, &stack, "+14155550121").await,
    )
    .await;
    let wait = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["outcome"] == "wait")
        .unwrap();
    assert_eq!(
        wait["effects"],
        json!([{ "effect": "voice", "action": "gather",
            "prompts": [{ "type": "speak", "text": prompt, "language": "en-US", "voice": "WOMAN" }],
            "valid_digits": null, "max_digits": 3, "timeout_secs": 2, "digit_timeout_secs": 2,
            "finish_on_key": null, "interrupt": true }])
    );
    stack.cleanup().await;
}

async fn play_audio_speaks_and_plays_its_prompts_then_completes(target: Target) {
    let (mut stack, sim, acct) = voice_stack_on(target, &[]).await;
    phlo_on(&stack, &acct, NUMBER, json!({ "name": "Welcome", "nodes": [
        start(PLAY_1),
        { "node_id": PLAY_1, "name": "Play_Audio_1", "type": "play_audio",
          "options": { "prompts": [
              { "type": "speak", "text": "Bienvenue au {{Start.call.to}}", "language": "fr-FR", "voice": "MAN" },
              { "type": "play", "url": "https://example.com/audio/{{Start.call.to_iso2}}.mp3" },
              "Goodbye",
          ] },
          "transitions": { "prompt_completed": BYE } },
        hangup(),
    ]}))
    .await;
    let call_uuid = call_in(&stack, &sim, "+14155550130", NUMBER).await;
    let run = finished_run_of(&stack, &acct, &call_uuid).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let play = done_step(&run, "Play_Audio_1");
    assert_eq!(play["state"], "prompt_completed");
    assert_eq!(play["event"], "prompt_finished", "{play:#}");
    assert_eq!(play["variables"], json!({}));
    assert_eq!(
        journal(&run),
        pairs(&[
            ("Start", "done"),
            ("Play_Audio_1", "wait"),
            ("Play_Audio_1", "done"),
            ("Hangup_1", "done")
        ])
    );

    let call = call_log(&stack, &sim, &call_uuid).await;
    let prompts: Vec<Value> = events_of(&call, "heard")
        .iter()
        .map(|e| {
            let mut e = (*e).clone();
            let m = e.as_object_mut().unwrap();
            m.remove("at");
            e
        })
        .collect();
    assert_eq!(
        prompts,
        [
            json!({ "party": "+14155550130", "kind": "heard", "text": "Bienvenue au +14155550199", "voice": "MAN", "language": "fr-FR" }),
            json!({ "party": "+14155550130", "kind": "heard", "url": "https://example.com/audio/US.mp3" }),
            json!({ "party": "+14155550130", "kind": "heard", "text": "Goodbye", "voice": "WOMAN", "language": "en-US" }),
        ]
    );
    assert_eq!(
        kinds(&call),
        ["ringing", "heard", "heard", "heard", "hung_up"]
    );
    stack.cleanup().await;
}

async fn record_audio_delivers_recordings_with_their_variables(target: Target) {
    let (mut stack, sim, acct) = voice_stack_on(target, &[]).await;
    phlo_on(
        &stack,
        &acct,
        NUMBER,
        json!({ "name": "Voicemail", "nodes": [
            start(RECORD_1),
            { "node_id": RECORD_1, "name": "Record_Audio_1", "type": "record_audio",
              "options": { "prompt": "Leave a message after the beep" },
              "transitions": { "recording_completed": RECORD_2 } },
            // No prompt, no beep, and a maximum shorter than what the caller says.
            { "node_id": RECORD_2, "name": "Record_Audio_2", "type": "record_audio",
              "options": { "play_beep": false, "max_length": 2 },
              "transitions": { "recording_completed": BYE } },
            hangup(),
        ]}),
    )
    .await;
    sim.script(&stack.http, "+14155550140", json!({ "record_secs": 3 }))
        .await;
    let call_uuid = call_in(&stack, &sim, "+14155550140", NUMBER).await;
    let run = finished_run_of(&stack, &acct, &call_uuid).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(
        journal(&run),
        pairs(&[
            ("Start", "done"),
            ("Record_Audio_1", "wait"),
            ("Record_Audio_1", "done"),
            ("Record_Audio_2", "wait"),
            ("Record_Audio_2", "done"),
            ("Hangup_1", "done"),
        ])
    );

    let call = call_log(&stack, &sim, &call_uuid).await;
    assert_eq!(heard(&call), ["Leave a message after the beep"]);
    assert_eq!(
        kinds(&call),
        ["ringing", "heard", "recorded", "recorded", "hung_up"]
    );
    let recorded = events_of(&call, "recorded");
    // The simulator's public URL: the in-test one's default, or where `phlo dev` serves it.
    let recordings = match target {
        Target::Distributed => "http://sim.local",
        Target::Dev => sim.url.as_str(),
    };
    let hooks = webhooks_to(&stack, &sim, "/recording").await;
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    for (i, (node, secs, beep)) in [
        ("Record_Audio_1", 3.0, true),
        ("Record_Audio_2", 2.0, false),
    ]
    .into_iter()
    .enumerate()
    {
        let rec = recorded[i];
        assert_eq!(
            (rec["duration_secs"].as_f64(), rec["beep"].as_bool()),
            (Some(secs), Some(beep)),
            "{rec:#}"
        );
        let id = rec["recording_id"].as_str().unwrap();
        assert_eq!(rec["url"], format!("{recordings}/recordings/{id}.mp3"));
        let ms = |name: &str| param(&hooks[i], name).unwrap().parse::<i64>().unwrap();
        let step = done_step(&run, node);
        assert_eq!(step["state"], "recording_completed");
        assert_eq!(
            step["variables"],
            json!({
                "call_uuid": call_uuid,
                "recording_url": format!("{recordings}/recordings/{id}.mp3"),
                "recording_uuid": id,
                "recording_duration": (secs * 1000.0) as i64,
                "recording_start_time": ms("RecordingStartMs") / 1000,
                "recording_end_time": ms("RecordingEndMs") / 1000,
            }),
            "{node}"
        );
        assert_eq!(
            ms("RecordingEndMs") - ms("RecordingStartMs"),
            (secs * 1000.0) as i64
        );
    }
    // The ids the run reports.
    let ids: Vec<&str> = recorded
        .iter()
        .map(|r| r["recording_id"].as_str().unwrap())
        .collect();
    assert_eq!(run["recording_ids"], json!(ids));
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn record_audio_still_completes_when_the_caller_hangs_up_mid_message() {
    let sim = Sim::start().await;
    let (mut stack, acct) = voice_stack(&sim).await;
    phlo_on(&stack, &acct, NUMBER, json!({ "name": "Voicemail to SMS", "nodes": [
        start(RECORD_1),
        { "node_id": RECORD_1, "name": "Record_Audio_1", "type": "record_audio",
          "options": { "prompt": "Leave a message", "max_length": 600 },
          "transitions": { "recording_completed": SMS } },
        { "node_id": SMS, "name": "Send_SMS_1", "type": "send_sms",
          "options": { "from": NUMBER, "to": "+14155550177",
                       "message": "Voicemail from {{Start.call.from}}: {{Record_Audio_1.recording_url}}" } },
    ]}))
    .await;
    // Talks far longer than it stays: hangs up (100 simulated seconds in) while recorded.
    sim.script(
        &stack.http,
        "+14155550141",
        json!({ "record_secs": 500, "hangup_after_secs": 100 }),
    )
    .await;
    let call_uuid = call_in(&stack, &sim, "+14155550141", NUMBER).await;
    let run = finished_run_of(&stack, &acct, &call_uuid).await;
    assert_eq!(run["status"], "completed", "{run:#}");

    let call = call_log(&stack, &sim, &call_uuid).await;
    assert_eq!(kinds(&call), ["ringing", "heard", "recorded", "hung_up"]);
    let end = hung_up(&call);
    assert_eq!(end["cause"], "NORMAL_CLEARING");
    assert_eq!(end["reason"], "+14155550141 hung up after 100 s");
    let rec = events_of(&call, "recorded")[0];
    let id = rec["recording_id"].as_str().unwrap();
    let hook = &webhooks_to(&stack, &sim, "/recording").await[0];
    let step = done_step(&run, "Record_Audio_1");
    assert_eq!(step["state"], "recording_completed");
    assert_eq!(step["variables"]["call_uuid"], call_uuid.as_str());
    assert_eq!(step["variables"]["recording_uuid"], id);
    // What was said before the hang-up, as the carrier measured it.
    let duration: i64 = param(hook, "RecordingDurationMs").unwrap().parse().unwrap();
    assert!(duration > 0 && duration < 500_000, "{hook:#}");
    assert_eq!(step["variables"]["recording_duration"], duration);
    let sms = final_message_to(&stack, &sim, "+14155550177").await;
    assert_eq!(
        sms["text"],
        format!("Voicemail from +14155550141: http://sim.local/recordings/{id}.mp3")
    );
    assert_eq!(done_step(&run, "Send_SMS_1")["state"], "sent");
    stack.cleanup().await;
}

async fn hangup_rejects_or_reports_busy_as_configured(target: Target) {
    let (mut stack, sim, acct) = voice_stack_on(target, &[]).await;
    let cases = [
        ("+14155550191", "rejected", "CALL_REJECTED"),
        ("+14155550192", "busy", "USER_BUSY"),
        ("+14155550193", "normal", "NORMAL_CLEARING"),
    ];
    for (number, reason, _) in cases {
        let definition = json!({ "name": format!("Hangup {reason}"), "nodes": [
            start(BYE),
            { "node_id": BYE, "name": "Hangup_1", "type": "hangup", "options": { "reason": reason } },
        ]});
        phlo_on(&stack, &acct, number, definition).await;
    }
    for (number, reason, cause) in cases {
        let call_uuid = call_in(&stack, &sim, "+14155550190", number).await;
        let run = finished_run_of(&stack, &acct, &call_uuid).await;
        assert_eq!(run["status"], "completed", "{run:#}");
        let bye = done_step(&run, "Hangup_1");
        assert_eq!(bye["state"], "hangup_complete");
        assert_eq!(bye["variables"], json!({ "reason": reason }));
        assert_eq!(
            bye["effects"],
            json!([{ "effect": "voice", "action": "hangup", "reason": reason }])
        );
        let call = call_log(&stack, &sim, &call_uuid).await;
        assert_eq!(kinds(&call), ["ringing", "hung_up"]);
        let end = hung_up(&call);
        assert_eq!(end["cause"], cause, "{call:#}");
        let why = if reason == "normal" {
            "Hangup element".to_owned()
        } else {
            format!("Hangup element (reason {reason})")
        };
        assert_eq!(end["reason"], why);
        assert_eq!(call["hangup_cause"], cause);
    }
    stack.cleanup().await;
}

async fn start_reports_the_incoming_call(target: Target) {
    let (mut stack, sim, acct) = voice_stack_on(target, &[]).await;
    phlo_on(&stack, &acct, NUMBER, json!({ "name": "Hello", "nodes": [
        start(PLAY_1),
        play(PLAY_1, "Play_Audio_1", "Hello {{Start.call.from}} from {{Start.call.from_country}} ({{Start.call.from_iso2}}), \
            calling {{Start.call.to_country}} on leg {{Start.call.leg}}, {{Start.call.direction}}, a {{Start.request_type}}"),
        hangup(),
    ]}))
    .await;
    let caller = "+447700900123";
    let call_uuid = call_in(&stack, &sim, caller, NUMBER).await;
    let run = finished_run_of(&stack, &acct, &call_uuid).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(
        (&run["trigger"], &run["from"], &run["to"]),
        (&json!("call"), &json!(caller), &json!(NUMBER))
    );
    let start = done_step(&run, "Start");
    assert_eq!(start["state"], "incoming_call");
    assert_eq!(
        start["variables"],
        json!({ "request_type": "call", "call": {
            "uuid": call_uuid, "to": NUMBER, "from": caller,
            "direction": "inbound", "leg": "ALeg",
            "to_iso2": "US", "from_iso2": "GB", "to_country": "United States", "from_country": "United Kingdom",
            // The answer webhook reports none of these yet.
            "start_time": null, "answer_time": null, "end_time": null, "hangup_cause": null,
            "duration": null, "bill_duration": null, "bill_rate": null, "bill_amount": null,
        }})
    );
    assert_eq!(run["call_uuids"], json!([call_uuid]));
    let call = call_log(&stack, &sim, &call_uuid).await;
    assert_eq!(
        heard(&call),
        [
            "Hello +447700900123 from United Kingdom (GB), calling United States on leg ALeg, inbound, a call"
        ]
    );
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_hanging_up_mid_menu_ends_the_run() {
    let sim = Sim::start().await;
    let (mut stack, acct) = voice_stack(&sim).await;
    // 100 simulated seconds of prompt and a 60 s input timeout: the caller, who hangs up 100 s
    // after answering, leaves while the menu still waits (whatever the gateway's latency).
    let long_prompt = "Please listen carefully as our menu options have changed. ".repeat(26);
    phlo_on(&stack, &acct, NUMBER, json!({ "name": "Long menu", "nodes": [
        start(MENU),
        { "node_id": MENU, "name": "IVR_Menu_1", "type": "ivr_menu",
          "options": { "prompts": [long_prompt.trim()], "allowed_inputs": ["1"], "input_timeout": 60 },
          "transitions": { "1": BYE, "no_input": BYE, "wrong_input": BYE } },
        hangup(),
    ]}))
    .await;
    sim.script(
        &stack.http,
        "+14155550150",
        json!({ "digits": ["1"], "hangup_after_secs": 100 }),
    )
    .await;
    let call_uuid = call_in(&stack, &sim, "+14155550150", NUMBER).await;
    let run = finished_run_of(&stack, &acct, &call_uuid).await;
    assert_eq!(run["status"], "failed", "{run:#}");
    let reason = "the caller hung up during the menu (NORMAL_CLEARING)";
    assert_eq!(run["error"], format!("IVR_Menu_1: {reason}"));
    let tokens = run["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["status"], "ended");
    assert_eq!(tokens[0]["ended_reason"], reason);
    let last = run["steps"].as_array().unwrap().last().unwrap();
    assert_eq!(
        (&last["node_name"], &last["outcome"], &last["event"]),
        (&json!("IVR_Menu_1"), &json!("stop"), &json!("hangup"))
    );
    assert_eq!(
        journal(&run),
        pairs(&[
            ("Start", "done"),
            ("IVR_Menu_1", "wait"),
            ("IVR_Menu_1", "stop")
        ])
    );

    let call = call_log(&stack, &sim, &call_uuid).await;
    assert_eq!(kinds(&call), ["ringing", "heard", "hung_up"], "{call:#}");
    assert_eq!(pressed(&call), Vec::<String>::new());
    assert_eq!(hung_up(&call)["reason"], "+14155550150 hung up after 100 s");
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_get_input_timeout_fires_after_every_worker_was_restarted() {
    let sim = Sim::start().await;
    // Every wait's timer fires after 1 s; the caller's input only falls through after the prompt
    // (150 simulated seconds) and the input timeout (60): 4.2 s. The timer decides.
    let (mut stack, acct) = voice_stack_with(&sim, &[("PHLO_MAX_WAIT_SECS", "1")]).await;
    let prompt = "Please enter the number on the back of your card. ".repeat(45);
    let prompt = prompt.trim();
    phlo_on(
        &stack,
        &acct,
        NUMBER,
        json!({ "name": "Timer", "nodes": [
            start(INPUT),
            { "node_id": INPUT, "name": "Get_Input_1", "type": "get_input",
              "options": { "prompt": prompt, "input_timeout": 60 },
              "transitions": { "input": BYE, "no_input": BYE } },
            hangup(),
        ]}),
    )
    .await;
    sim.script(&stack.http, "+14155550160", json!({ "digits": [""] }))
        .await;
    let call_uuid = call_in(&stack, &sim, "+14155550160", NUMBER).await;
    let run_id = run_mentioning(&stack, &acct, &call_uuid).await;
    run_until(&stack, &acct, &run_id, "the input's wait", |r| {
        r["tokens"][0]["status"] == "waiting"
    })
    .await;
    stack.kill_all_workers();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let parked = stack.get_run(&acct, &run_id).await;
    assert_eq!(
        parked["status"], "active",
        "nothing moves without a worker: {parked:#}"
    );
    assert_eq!(parked["tokens"][0]["status"], "waiting");
    stack.spawn_worker();

    let run = stack.wait_run(&acct, &run_id, DEADLINE).await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let input = done_step(&run, "Get_Input_1");
    assert_eq!(input["state"], "no_input");
    assert_eq!(input["event"], "timeout", "the timer decided: {run:#}");
    assert_eq!(
        input["variables"],
        json!({ "input": "", "input_type": "digits" })
    );
    assert_eq!(done_step(&run, "Hangup_1")["state"], "hangup_complete");
    assert_eq!(
        journal(&run),
        pairs(&[
            ("Start", "done"),
            ("Get_Input_1", "wait"),
            ("Get_Input_1", "done"),
            ("Hangup_1", "done")
        ])
    );

    // The caller, still in the input when the timer fired, falls through later; that callback
    // finds the wait gone, changes nothing and gets the call's current instruction: the hang-up.
    let call = call_log(&stack, &sim, &call_uuid).await;
    assert_eq!(
        kinds(&call),
        ["ringing", "heard", "silent", "hung_up"],
        "{call:#}"
    );
    assert_eq!(heard(&call), [prompt]);
    assert_eq!(hung_up(&call)["reason"], "Hangup element");
    let late = webhooks_to(&stack, &sim, "/digits").await;
    assert_eq!(late.len(), 1, "{late:?}");
    assert_eq!(late[0]["status"], 200);
    assert_eq!(param(&late[0], "Digits"), None);
    let after = stack.get_run(&acct, &run_id).await;
    assert_eq!(after["step_count"], run["step_count"]);
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_callback_for_a_wait_that_moved_on_is_ignored() {
    let sim = Sim::start().await;
    let (mut stack, acct) = voice_stack(&sim).await;
    phlo_on(&stack, &acct, NUMBER, menu_phlo()).await;
    sim.script(&stack.http, "+14155550170", json!({ "digits": ["2"] }))
        .await;
    let call_uuid = call_in(&stack, &sim, "+14155550170", NUMBER).await;
    let run = finished_run_of(&stack, &acct, &call_uuid).await;
    assert_eq!(done_step(&run, "IVR_Menu_1")["state"], "2");
    call_log(&stack, &sim, &call_uuid).await;

    // The carrier repeats the menu's callback, signed as it was, with another key: too late.
    let hooks = webhooks_to(&stack, &sim, "/digits").await;
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    let hook = &hooks[0];
    assert_eq!(param(hook, "Digits"), Some("2"));
    let mut params: Vec<(String, String)> = hook["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_owned(),
                p[1].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let replay = |params: &Vec<(String, String)>| {
        stack
            .http
            .post(hook["url"].as_str().unwrap())
            .header(
                "X-Plivo-Signature-V3",
                hook["signature_v3"].as_str().unwrap(),
            )
            .header(
                "X-Plivo-Signature-V3-Nonce",
                hook["nonce"].as_str().unwrap(),
            )
            .form(params)
            .send()
    };
    let r = replay(&params).await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    // Nothing to apply: the answer is the call's current instruction, Hangup_1's.
    assert_eq!(
        body,
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>"#
    );
    // Forged parameters do not pass the signature.
    for p in params.iter_mut().filter(|p| p.0 == "Digits") {
        p.1 = "1".into();
    }
    assert_eq!(replay(&params).await.unwrap().status(), 403);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = stack.get_run(&acct, run["run_id"].as_str().unwrap()).await;
    assert_eq!(after["status"], "completed");
    assert_eq!(after["step_count"], run["step_count"]);
    assert_eq!(journal(&after), journal(&run));
    assert_eq!(
        done_step(&after, "IVR_Menu_1")["variables"],
        json!({ "digits": "2", "input_type": "digits" })
    );
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_gone_before_the_menu_starts_ends_the_run_at_the_menu() {
    let hang = crate::support::silent_server().await;
    let sim = Sim::start().await;
    let (mut stack, acct) = voice_stack(&sim).await;
    phlo_on(&stack, &acct, NUMBER, json!({ "name": "Lookup then menu", "nodes": [
        start(SMS),
        { "node_id": SMS, "name": "HTTP_Request_1", "type": "http_request",
          "options": { "method": "GET", "url": format!("http://127.0.0.1:{}/slow", hang.port()), "timeout": 3 },
          "transitions": { "success": MENU, "failed": MENU } },
        { "node_id": MENU, "name": "IVR_Menu_1", "type": "ivr_menu",
          "options": { "prompts": ["Press 1"], "allowed_inputs": ["1"] },
          "transitions": { "1": BYE, "no_input": BYE, "wrong_input": BYE } },
        hangup(),
    ]}))
    .await;
    // Hangs up 1 s (real) after answering, while the HTTP request (3 s) holds the token: the
    // hang-up reaches no voice node, and the menu starts on a call that is already over.
    sim.script(
        &stack.http,
        "+14155550151",
        json!({ "digits": ["1"], "hangup_after_secs": 50 }),
    )
    .await;
    let call_uuid = call_in(&stack, &sim, "+14155550151", NUMBER).await;
    let call = call_log(&stack, &sim, &call_uuid).await;
    assert_eq!(kinds(&call), ["ringing", "hung_up"], "{call:#}");
    assert_eq!(hung_up(&call)["reason"], "+14155550151 hung up after 50 s");

    // Well before the menu's own timer (5 s + 120 s).
    let run = finished_run_of(&stack, &acct, &call_uuid).await;
    assert_eq!(run["status"], "failed", "{run:#}");
    let reason = "the caller hung up during the menu (NORMAL_CLEARING)";
    assert_eq!(run["error"], format!("IVR_Menu_1: {reason}"));
    assert_eq!(run["tokens"][0]["status"], "ended");
    assert_eq!(run["tokens"][0]["ended_reason"], reason);
    let http = done_step(&run, "HTTP_Request_1");
    assert_eq!(
        (&http["state"], &http["error"]),
        (&json!("failed"), &json!("timed out after 3 s"))
    );
    assert_eq!(
        journal(&run),
        pairs(&[
            ("Start", "done"),
            ("HTTP_Request_1", "wait"),
            ("HTTP_Request_1", "done"),
            ("IVR_Menu_1", "wait"),
            ("IVR_Menu_1", "stop"),
        ])
    );
    assert_eq!(
        run["steps"].as_array().unwrap().last().unwrap()["event"],
        "hangup"
    );
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_hanging_up_mid_prompt_or_mid_input_ends_the_token() {
    let sim = Sim::start().await;
    let (mut stack, acct) = voice_stack(&sim).await;
    // 150 simulated seconds of speech: the callers (who leave 100 s after answering) never hear the end.
    let long = "Your call is important to us, please stay on the line. ".repeat(41);
    let long = long.trim();
    phlo_on(
        &stack,
        &acct,
        "+14155550198",
        json!({ "name": "Long play", "nodes": [
            start(PLAY_1),
            { "node_id": PLAY_1, "name": "Play_Audio_1", "type": "play_audio",
              "options": { "prompts": [long] }, "transitions": { "prompt_completed": BYE } },
            hangup(),
        ]}),
    )
    .await;
    phlo_on(
        &stack,
        &acct,
        "+14155550197",
        get_input_phlo(json!({ "prompt": long })),
    )
    .await;
    let cases = [
        (
            "+14155550161",
            "+14155550198",
            "Play_Audio_1",
            "the caller hung up during the prompts (NORMAL_CLEARING)",
        ),
        (
            "+14155550162",
            "+14155550197",
            "Get_Input_1",
            "the caller hung up before entering input (NORMAL_CLEARING)",
        ),
    ];
    let mut calls = Vec::new();
    for (caller, number, ..) in cases {
        sim.script(
            &stack.http,
            caller,
            json!({ "digits": ["1#"], "hangup_after_secs": 100 }),
        )
        .await;
        calls.push(call_in(&stack, &sim, caller, number).await);
    }
    for ((caller, _, node, reason), call_uuid) in cases.iter().zip(&calls) {
        let run = finished_run_of(&stack, &acct, call_uuid).await;
        assert_eq!(run["status"], "failed", "{run:#}");
        assert_eq!(run["error"], format!("{node}: {reason}"));
        assert_eq!(
            (
                &run["tokens"][0]["status"],
                &run["tokens"][0]["ended_reason"]
            ),
            (&json!("ended"), &json!(reason))
        );
        assert_eq!(
            journal(&run),
            pairs(&[("Start", "done"), (node, "wait"), (node, "stop")])
        );
        let call = call_log(&stack, &sim, call_uuid).await;
        assert_eq!(kinds(&call), ["ringing", "heard", "hung_up"], "{call:#}");
        assert_eq!(heard(&call), [long]);
        assert_eq!(
            hung_up(&call)["reason"],
            format!("{caller} hung up after 100 s")
        );
    }
    stack.cleanup().await;
}
