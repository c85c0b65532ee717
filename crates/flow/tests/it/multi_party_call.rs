//! Multiparty Call: the token's call joins a rendered multiparty room with a role; member events keep it
//! waiting with updated variables (and post the callback subscribed to them); `completed` when it leaves
//! or the room empties, `failed` when it cannot join.

use phlo_flow::effect::{Callback, MultiPartyJoin, Prompt, Sound, VoiceAction};
use phlo_flow::event::ConferenceEvent;
use phlo_flow::{Context, Effect, Event, Outcome, Phlo, Step, WaitOn};
use serde_json::{Value, json};

use crate::support::*;

const HOOK: &str = "https://hooks.example.com/mpc";

fn mpc(options: Value) -> Phlo {
    let callback = json!({ "url": HOOK, "events": ["Redirect", "completed"] });
    phlo_with_callback(
        "multi_party_call",
        "Support",
        options,
        &["completed", "failed"],
        callback,
    )
}

fn agent_room() -> Phlo {
    mpc(json!({
        "conference_name": "Support-{{Start.http.params.room}}",
        "prompt": { "type": "play", "url": "https://media.example.com/{{Start.http.params.room}}.mp3" },
        "role": "agent",
        "wait_music_url": "https://media.example.com/wait.mp3",
        "agent_hold_music_url": "https://media.example.com/{{Start.http.params.agent_tune}}.mp3",
        "customer_hold_music_url": "https://media.example.com/customer.mp3",
        "from": "+14155550100",
        "ring_timeout": 30,
        "enter_sound": "none",
        "exit_sound": "double_beep",
        "record": "TRUE",
        "max_duration": 3600,
    }))
}

fn room_ctx() -> Context {
    params_call_ctx(json!({ "room": "7", "agent_tune": "calm" }))
}

fn joined_vars() -> Value {
    json!({
        "from": "+14155550100", "direction": "inbound", "caller_name": "+14155550100", "to": "+14155550199",
        "event": null, "bill_rate": null, "call_status": "in-progress", "conference_name": "Support-7",
        "call_uuid": "call-uuid-1", "conference_uuid": null, "member_id": null,
        "to_iso2": "US", "from_iso2": "US", "to_country": "United States", "from_country": "United States",
    })
}

fn join_of(effects: &[Effect]) -> MultiPartyJoin {
    match effects {
        [Effect::Voice(VoiceAction::JoinMultiParty(join))] => join.clone(),
        other => panic!("expected one JoinMultiParty, got {other:#?}"),
    }
}

/// Joins the agent room, then feeds `event` to the parked token.
fn after_join(event: Event) -> Step {
    let phlo = agent_room();
    let (wait, _) = enter_and_wait(&phlo, &room_ctx());
    run(&phlo, &resumed(&room_ctx(), &wait), event)
}

fn member(event: &str, ended: bool, error: Option<&str>) -> Event {
    Event::Conference(ConferenceEvent {
        event: event.into(),
        ended,
        error: error.map(str::to_owned),
        from: "+442071838750".into(),
        to: "+14155550199".into(),
        direction: "outbound".into(),
        call_uuid: "member-call-2".into(),
        conference_uuid: "mpc-1".into(),
        member_id: "3".into(),
        ..Default::default()
    })
}

/// The variables after [`member`]: the reporting member's call, its region, the room's ids.
fn member_vars(event: &str) -> Value {
    let mut v = joined_vars();
    #[rustfmt::skip]
    let changed = [
        ("from", "+442071838750"), ("caller_name", "+442071838750"), ("direction", "outbound"), ("event", event),
        ("call_uuid", "member-call-2"), ("conference_uuid", "mpc-1"), ("member_id", "3"),
        ("from_iso2", "GB"), ("from_country", "United Kingdom"),
    ];
    for (key, value) in changed {
        v[key] = json!(value);
    }
    v
}

#[test]
fn enter_joins_the_rendered_room_with_its_role() {
    let (wait, effects) = enter_and_wait(&agent_room(), &room_ctx());
    assert_eq!(wait.on, WaitOn::Conference);
    assert_eq!(
        wait.timeout_secs,
        3600 + 120,
        "the longest call plus the carrier grace"
    );
    assert_eq!(Value::Object(wait.variables), joined_vars());
    let expected = MultiPartyJoin {
        name: "Support-7".into(),
        role: "agent".into(),
        prompt: Some(Prompt::Play {
            url: "https://media.example.com/7.mp3".into(),
        }),
        wait_music_url: Some("https://media.example.com/wait.mp3".into()),
        agent_hold_music_url: Some("https://media.example.com/calm.mp3".into()),
        customer_hold_music_url: Some("https://media.example.com/customer.mp3".into()),
        enter_sound: Sound::None,
        exit_sound: Sound::DoubleBeep,
        start_muted: false,
        record: true,
        max_duration_secs: 3600,
    };
    assert_eq!(join_of(&effects), expected);
}

#[test]
fn defaults_join_as_a_customer() {
    let (wait, effects) = enter_and_wait(
        &mpc(json!({ "conference_name": "Q" })),
        &call_ctx(json!({})),
    );
    assert_eq!(wait.timeout_secs, 14_400 + 120);
    let expected = MultiPartyJoin {
        name: "Q".into(),
        role: "customer".into(),
        prompt: None,
        wait_music_url: None,
        agent_hold_music_url: None,
        customer_hold_music_url: None,
        enter_sound: Sound::Beep,
        exit_sound: Sound::Beep,
        start_muted: false,
        record: false,
        max_duration_secs: 14_400,
    };
    assert_eq!(join_of(&effects), expected);
}

#[test]
fn every_role_is_passed_on() {
    for (role, expected) in [
        ("agent", "agent"),
        ("customer", "customer"),
        ("supervisor", "supervisor"),
        ("Supervisor", "supervisor"),
    ] {
        let (_, effects) = enter_and_wait(
            &mpc(json!({ "conference_name": "Q", "role": role })),
            &call_ctx(json!({})),
        );
        assert_eq!(join_of(&effects).role, expected);
    }
}

#[test]
fn member_events_keep_waiting_and_post_subscribed_callbacks() {
    // (event, posts a callback): the node subscribes to Redirect only.
    for (event, posts) in [
        ("ConferenceEnter", false),
        ("Redirect", true),
        ("ConferenceExit", false),
    ] {
        let step = after_join(member(event, false, None));
        let wait = match &step.outcome {
            Outcome::Wait { waits } if waits.len() == 1 => waits[0].clone(),
            other => panic!("{event}: expected one wait, got {other:#?}"),
        };
        assert_eq!(
            (wait.on, wait.timeout_secs),
            (WaitOn::Conference, 3720),
            "{event}"
        );
        assert_eq!(
            Value::Object(wait.variables.clone()),
            member_vars(event),
            "{event}"
        );
        let callback = Effect::Callback(Callback {
            url: HOOK.into(),
            method: "POST".into(),
            event: event.into(),
            phlo_id: "phlo-1".into(),
            run_id: "run-1".into(),
            node_id: NODE_ID.into(),
            node_name: "Support".into(),
            node_type: "multi_party_call".into(),
            state: None,
            variables: wait.variables.clone(),
        });
        assert_eq!(
            step.effects,
            if posts { vec![callback] } else { vec![] },
            "{event}"
        );
    }
}

#[test]
fn ended_completes_and_error_fails() {
    let step = after_join(member("ConferenceExit", true, None));
    let vars = done(&step, "completed");
    assert_eq!(Value::Object(vars.clone()), member_vars("ConferenceExit"));
    assert_eq!(
        step.effects,
        vec![expected_callback(
            HOOK,
            "POST",
            "multi_party_call",
            "Support",
            "completed",
            &vars
        )]
    );

    let step = after_join(member("ConferenceEnter", false, Some("no such room")));
    assert_eq!(
        Value::Object(done(&step, "failed")),
        member_vars("ConferenceEnter")
    );
    assert_eq!(
        error_of(&step).as_deref(),
        Some("the call could not join the room: no such room")
    );
    assert!(step.effects.is_empty(), "failed is not subscribed");
}

#[test]
fn a_hang_up_or_the_timer_completes_the_node() {
    let mut expected = joined_vars();
    expected["event"] = json!("ConferenceExit");
    for event in [
        Event::Hangup {
            cause: "NORMAL_CLEARING".into(),
        },
        Event::Timeout,
    ] {
        let step = after_join(event.clone());
        assert_eq!(
            Value::Object(done(&step, "completed")),
            expected,
            "{event:?}"
        );
    }
}

#[test]
fn without_a_call_the_node_fails() {
    let step = run(
        &agent_room(),
        &params_ctx(json!({ "room": "7" })),
        Event::Enter,
    );
    assert!(done(&step, "failed").is_empty());
    let error = error_of(&step).unwrap_or_default();
    assert!(
        error.starts_with("Support (multi_party_call) acts on a call, but this token has none"),
        "{error}"
    );
}

#[test]
fn render_errors_fail_the_node_with_the_reason() {
    let broken = "{{ 1 | divided_by: 0 }}";
    for key in [
        "conference_name",
        "prompt",
        "wait_music_url",
        "agent_hold_music_url",
        "customer_hold_music_url",
        "record",
    ] {
        let mut options = json!({ "conference_name": "Q" });
        options[key] = json!(broken);
        let step = run(&mpc(options), &call_ctx(json!({})), Event::Enter);
        assert!(done(&step, "failed").is_empty(), "{key}");
        let error = error_of(&step).unwrap_or_default();
        assert!(error.contains("divide by zero"), "{key}: {error}");
        assert!(step.effects.is_empty(), "{key}: nobody joins");
    }
}

#[test]
fn record_follows_the_truth_table() {
    let phlo = mpc(json!({ "conference_name": "Q", "record": "{{Start.http.params.rec}}" }));
    for (rec, expected) in record_truth_table() {
        let (_, effects) = enter_and_wait(&phlo, &params_call_ctx(json!({ "rec": rec })));
        assert_eq!(join_of(&effects).record, expected, "rec = {rec}");
    }
}
