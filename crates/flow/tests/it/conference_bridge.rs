//! Conference Bridge: the token's call joins a rendered room; member events keep it waiting with updated
//! variables (and post the callback subscribed to them); `completed` when it leaves or the room ends,
//! `failed` when it cannot join.

use phlo_flow::effect::{Callback, ConferenceJoin, Prompt, Sound, VoiceAction};
use phlo_flow::event::ConferenceEvent;
use phlo_flow::{CallChange, Context, Effect, Event, Outcome, Phlo, Step, Vars, Wait, WaitOn};
use serde_json::{Value, json};

use crate::support::*;

const HOOK: &str = "https://hooks.example.com/room";

fn bridge(options: Value) -> Phlo {
    let callback = json!({ "url": HOOK, "events": ["ConferenceEnter", "completed", "failed"] });
    phlo_with_callback(
        "conference_bridge",
        "Room",
        options,
        &["completed", "failed"],
        callback,
    )
}

fn full_bridge() -> Phlo {
    bridge(json!({
        "conference_name": "Room-{{Start.http.params.room}}",
        "announcement": { "type": "speak", "text": "Joining room {{Start.http.params.room}}" },
        "wait_music_url": "https://music.example.com/{{Start.http.params.tune}}.mp3",
        "enter_sound": "double_beep",
        "exit_sound": "none",
        "start_muted": true,
        "start_on_enter": false,
        "end_on_exit": true,
        "record": "{{Start.http.params.rec}}",
        "max_duration": 600,
    }))
}

fn room_ctx() -> Context {
    params_call_ctx(json!({ "room": "42", "tune": "jazz", "rec": "yes" }))
}

/// The seed's member variables right after the join, before any member event.
fn joined_vars() -> Value {
    json!({
        "from": "+14155550100", "direction": "inbound", "caller_name": "+14155550100", "to": "+14155550199",
        "event": null, "bill_rate": null, "call_status": "in-progress", "conference_name": "Room-42",
        "call_uuid": "call-uuid-1", "conference_uuid": null, "member_id": null,
        "to_iso2": "US", "from_iso2": "US", "to_country": "United States", "from_country": "United States",
    })
}

fn one_wait(step: &Step) -> Wait {
    match &step.outcome {
        Outcome::Wait { waits } if waits.len() == 1 => waits[0].clone(),
        other => panic!("expected one wait, got {other:#?}"),
    }
}

/// Joins, then feeds `events` in turn, each to the context the previous one parked.
fn member_events(events: &[Event]) -> Vec<Step> {
    let phlo = full_bridge();
    let (mut wait, _) = enter_and_wait(&phlo, &room_ctx());
    let mut steps = Vec::new();
    for event in events {
        let step = run(&phlo, &resumed(&room_ctx(), &wait), event.clone());
        if let Outcome::Wait { waits } = &step.outcome {
            wait = waits[0].clone();
        }
        steps.push(step);
    }
    steps
}

fn enter_event() -> Event {
    Event::Conference(ConferenceEvent {
        event: "ConferenceEnter".into(),
        caller_name: Some("Ada".into()),
        bill_rate: Some("0.003".into()),
        conference_uuid: "conf-1".into(),
        member_id: "m-7".into(),
        ..Default::default()
    })
}

fn exit_event(ended: bool, error: Option<&str>) -> Event {
    let error = error.map(str::to_owned);
    Event::Conference(ConferenceEvent {
        event: "ConferenceExit".into(),
        ended,
        error,
        ..Default::default()
    })
}

fn member_callback(event: &str, variables: &Vars) -> Effect {
    Effect::Callback(Callback {
        url: HOOK.into(),
        method: "POST".into(),
        event: event.into(),
        phlo_id: "phlo-1".into(),
        run_id: "run-1".into(),
        node_id: NODE_ID.into(),
        node_name: "Room".into(),
        node_type: "conference_bridge".into(),
        state: None,
        variables: variables.clone(),
    })
}

/// [`joined_vars`] after the ConferenceEnter of [`enter_event`], with `event` as the latest event.
fn entered_vars(event: &str) -> Value {
    let mut v = joined_vars();
    for (key, value) in [
        ("event", event),
        ("caller_name", "Ada"),
        ("bill_rate", "0.003"),
        ("conference_uuid", "conf-1"),
        ("member_id", "m-7"),
    ] {
        v[key] = json!(value);
    }
    v
}

#[test]
fn enter_joins_the_rendered_room() {
    let step = run(&full_bridge(), &room_ctx(), Event::Enter);
    assert_eq!(step.call, CallChange::Keep);
    let wait = one_wait(&step);
    assert_eq!(wait.on, WaitOn::Conference);
    assert_eq!(
        wait.timeout_secs,
        600 + 120,
        "the longest conference plus the carrier grace"
    );
    assert_eq!(Value::Object(wait.variables), joined_vars());
    let join = ConferenceJoin {
        name: "Room-42".into(),
        announcement: Some(Prompt::Speak {
            text: "Joining room 42".into(),
            language: "en-US".into(),
            voice: "WOMAN".into(),
        }),
        wait_music_url: Some("https://music.example.com/jazz.mp3".into()),
        enter_sound: Sound::DoubleBeep,
        exit_sound: Sound::None,
        start_muted: true,
        start_on_enter: false,
        end_on_exit: true,
        record: true,
        max_duration_secs: 600,
    };
    assert_eq!(
        step.effects,
        vec![Effect::Voice(VoiceAction::JoinConference(join))],
        "no callback on joining"
    );
}

#[test]
fn defaults() {
    let phlo = bridge(json!({ "conference_name": "Sales" }));
    let (wait, effects) = enter_and_wait(&phlo, &call_ctx(json!({})));
    assert_eq!(wait.timeout_secs, 14_400 + 120);
    let join = ConferenceJoin {
        name: "Sales".into(),
        announcement: None,
        wait_music_url: None,
        enter_sound: Sound::Beep,
        exit_sound: Sound::Beep,
        start_muted: false,
        start_on_enter: true,
        end_on_exit: false,
        record: false,
        max_duration_secs: 14_400,
    };
    assert_eq!(
        effects,
        vec![Effect::Voice(VoiceAction::JoinConference(join))]
    );
}

#[test]
fn member_events_keep_waiting_with_updated_variables() {
    let steps = member_events(&[enter_event(), exit_event(false, None)]);
    // ConferenceEnter: subscribed, so its callback is posted with the updated variables.
    let wait = one_wait(&steps[0]);
    assert_eq!((wait.on, wait.timeout_secs), (WaitOn::Conference, 720));
    assert_eq!(
        Value::Object(wait.variables.clone()),
        entered_vars("ConferenceEnter")
    );
    assert_eq!(
        steps[0].effects,
        vec![member_callback("ConferenceEnter", &wait.variables)]
    );
    // ConferenceExit of another member: not subscribed; what earlier events told is kept.
    let wait = one_wait(&steps[1]);
    assert_eq!(
        Value::Object(wait.variables),
        entered_vars("ConferenceExit")
    );
    assert!(steps[1].effects.is_empty());
}

#[test]
fn the_room_ending_completes_the_node() {
    let steps = member_events(&[enter_event(), exit_event(true, None)]);
    let vars = done(&steps[1], "completed");
    assert_eq!(Value::Object(vars.clone()), entered_vars("ConferenceExit"));
    assert_eq!(
        steps[1].effects,
        vec![expected_callback(
            HOOK,
            "POST",
            "conference_bridge",
            "Room",
            "completed",
            &vars
        )]
    );
    assert_eq!(error_of(&steps[1]), None);
}

#[test]
fn a_join_error_fails_the_node_with_the_reason() {
    let steps = member_events(&[exit_event(true, Some("room is full"))]);
    let vars = done(&steps[0], "failed");
    let mut expected = joined_vars();
    expected["event"] = json!("ConferenceExit");
    assert_eq!(Value::Object(vars.clone()), expected);
    assert_eq!(
        error_of(&steps[0]).as_deref(),
        Some("the call could not join the room: room is full")
    );
    assert_eq!(
        steps[0].effects,
        vec![expected_callback(
            HOOK,
            "POST",
            "conference_bridge",
            "Room",
            "failed",
            &vars
        )]
    );
}

#[test]
fn a_hang_up_or_the_timer_completes_the_node() {
    for event in [
        Event::Hangup {
            cause: "NORMAL_CLEARING".into(),
        },
        Event::Timeout,
    ] {
        let steps = member_events(&[enter_event(), event.clone()]);
        assert_eq!(
            Value::Object(done(&steps[1], "completed")),
            entered_vars("ConferenceExit"),
            "{event:?}"
        );
        assert_eq!(error_of(&steps[1]), None);
    }
}

#[test]
fn without_a_call_the_node_fails() {
    let step = run(
        &full_bridge(),
        &params_ctx(json!({ "room": "42" })),
        Event::Enter,
    );
    assert!(done(&step, "failed").is_empty());
    let error = error_of(&step).unwrap_or_default();
    assert!(
        error.starts_with("Room (conference_bridge) acts on a call, but this token has none"),
        "{error}"
    );
}

#[test]
fn render_errors_fail_the_node_with_the_reason() {
    let broken = "{{ 1 | divided_by: 0 }}";
    #[rustfmt::skip]
    let cases = [
        (json!({ "conference_name": broken }), "divide by zero"),
        (json!({ "conference_name": "{{Start.http.params.none}} " }), "`conference_name` rendered empty"),
        (json!({ "conference_name": "A", "announcement": broken }), "divide by zero"),
        (json!({ "conference_name": "A", "wait_music_url": broken }), "divide by zero"),
        (json!({ "conference_name": "A", "record": broken }), "divide by zero"),
    ];
    for (options, reason) in cases {
        let step = run(&bridge(options.clone()), &room_ctx(), Event::Enter);
        assert!(done(&step, "failed").is_empty(), "{options}");
        let error = error_of(&step).unwrap_or_default();
        assert!(error.contains(reason), "{options}: {error}");
        assert!(
            !step.effects.iter().any(|e| matches!(e, Effect::Voice(_))),
            "nobody joins"
        );
    }
}

#[test]
fn record_follows_the_truth_table() {
    let phlo = bridge(json!({ "conference_name": "A", "record": "{{Start.http.params.rec}}" }));
    for (rec, expected) in record_truth_table() {
        let (_, effects) = enter_and_wait(&phlo, &params_call_ctx(json!({ "rec": rec })));
        let [Effect::Voice(VoiceAction::JoinConference(join))] = effects.as_slice() else {
            panic!("{effects:#?}")
        };
        assert_eq!(join.record, expected, "rec = {rec}");
    }
}
