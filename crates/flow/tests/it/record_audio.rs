//! Record Audio: an optional rendered prompt, a beep and a recording of the caller; `recording_completed`
//! with the seed's variables. A hang-up (how callers end a voicemail) keeps waiting for the recording.

use phlo_flow::effect::{Prompt, VoiceAction};
use phlo_flow::event::Recording;
use phlo_flow::{CallChange, Context, Effect, EngineError, Event, Phlo, WaitOn};
use serde_json::{Value, json};

use crate::support::*;

fn record(options: Value) -> Phlo {
    phlo_with(
        "record_audio",
        "Voicemail",
        options,
        &["recording_completed"],
    )
}

fn voicemail() -> Phlo {
    record(json!({
        "prompt": { "type": "speak", "text": "Leave a message for {{Start.http.params.name}}" },
        "play_beep": false,
        "max_length": 30,
        "silence_timeout": 5,
        "finish_on_key": "#*",
    }))
}

fn recording() -> Event {
    Event::Recording(Recording {
        url: "https://media.example.com/rec-1.mp3".into(),
        recording_uuid: "rec-1".into(),
        duration_ms: 12_500,
        start_time: Some(1_767_348_000),
        end_time: Some(1_767_348_013),
    })
}

fn seed_vars(call_uuid: &str) -> Value {
    json!({
        "call_uuid": call_uuid,
        "recording_url": "https://media.example.com/rec-1.mp3",
        "recording_uuid": "rec-1",
        "recording_duration": 12_500,
        "recording_start_time": 1_767_348_000,
        "recording_end_time": 1_767_348_013,
    })
}

/// The context a token parked by [`voicemail`] resumes with.
fn parked_ctx() -> Context {
    let ctx = params_call_ctx(json!({ "name": "Ada" }));
    let (wait, _) = enter_and_wait(&voicemail(), &ctx);
    resumed(&ctx, &wait)
}

#[test]
fn enter_plays_the_prompt_and_records() {
    let (wait, effects) = enter_and_wait(&voicemail(), &params_call_ctx(json!({ "name": "Ada" })));
    assert_eq!(wait.on, WaitOn::Recording);
    assert_eq!(
        wait.timeout_secs,
        30 + 120,
        "the longest recording plus the carrier grace"
    );
    assert_eq!(
        Value::Object(wait.variables),
        json!({ "call_uuid": "call-uuid-1" })
    );
    let action = VoiceAction::Record {
        prompt: Some(Prompt::Speak {
            text: "Leave a message for Ada".into(),
            language: "en-US".into(),
            voice: "WOMAN".into(),
        }),
        beep: false,
        max_length_secs: 30,
        silence_timeout_secs: 5,
        finish_on_key: "#*".into(),
    };
    assert_eq!(effects, vec![Effect::Voice(action)]);
}

#[test]
fn defaults_beep_and_record_a_minute() {
    let (wait, effects) = enter_and_wait(&record(json!({})), &call_ctx(json!({})));
    assert_eq!(wait.timeout_secs, 60 + 120);
    let action = VoiceAction::Record {
        prompt: None,
        beep: true,
        max_length_secs: 60,
        silence_timeout_secs: 15,
        finish_on_key: "#".into(),
    };
    assert_eq!(effects, vec![Effect::Voice(action)]);
}

#[test]
fn the_recording_completes_with_the_seed_variables() {
    let step = run(&voicemail(), &parked_ctx(), recording());
    assert_eq!(
        Value::Object(done(&step, "recording_completed")),
        seed_vars("call-uuid-1")
    );
    assert_eq!(error_of(&step), None);
    assert!(step.effects.is_empty());
    assert_eq!(step.call, CallChange::Keep);
}

#[test]
fn unknown_recording_times_are_null() {
    let event = Event::Recording(Recording {
        url: "https://m.example.com/r.wav".into(),
        ..Default::default()
    });
    let step = run(&voicemail(), &parked_ctx(), event);
    let expected = json!({
        "call_uuid": "call-uuid-1", "recording_url": "https://m.example.com/r.wav", "recording_uuid": "",
        "recording_duration": 0, "recording_start_time": null, "recording_end_time": null,
    });
    assert_eq!(Value::Object(done(&step, "recording_completed")), expected);
}

#[test]
fn a_hang_up_keeps_waiting_for_the_recording() {
    let phlo = voicemail();
    let step = run(
        &phlo,
        &parked_ctx(),
        Event::Hangup {
            cause: "NORMAL_CLEARING".into(),
        },
    );
    let (wait, effects) = match step.outcome {
        phlo_flow::Outcome::Wait { mut waits } if waits.len() == 1 => {
            (waits.remove(0), step.effects)
        }
        other => panic!("expected one wait, got {other:#?}"),
    };
    assert_eq!(wait.on, WaitOn::Recording);
    assert_eq!(wait.timeout_secs, 120, "only the carrier grace");
    assert_eq!(
        Value::Object(wait.variables.clone()),
        json!({ "call_uuid": "call-uuid-1" })
    );
    assert!(
        effects.is_empty(),
        "nothing is asked of a call that is gone"
    );
    // The recording arrives after the call ended: it still names the call.
    let mut gone = resumed(&parked_ctx(), &wait);
    gone.call = None;
    let step = run(&phlo, &gone, recording());
    assert_eq!(
        Value::Object(done(&step, "recording_completed")),
        seed_vars("call-uuid-1")
    );
    // No recording within the grace: the token stops.
    let step = run(&phlo, &gone, Event::Timeout);
    assert_eq!(stopped(&step), "the carrier never delivered the recording");
}

#[test]
fn without_a_call_record_audio_stops() {
    let step = run(
        &voicemail(),
        &params_ctx(json!({ "name": "Ada" })),
        Event::Enter,
    );
    let reason = stopped(&step);
    assert!(
        reason.starts_with("Voicemail (record_audio) acts on a call, but this token has none"),
        "{reason}"
    );
    assert!(step.effects.is_empty());
}

#[test]
fn a_prompt_that_fails_to_render_stops_the_token() {
    let phlo = record(
        json!({ "prompt": { "type": "play", "url": "https://x.example.com/{{ 1 | divided_by: 0 }}" } }),
    );
    let step = run(&phlo, &call_ctx(json!({})), Event::Enter);
    let reason = stopped(&step);
    assert!(
        reason.starts_with("the prompt did not render:") && reason.contains("divide by zero"),
        "{reason}"
    );
    assert!(step.effects.is_empty(), "nothing is recorded");
}

#[test]
fn events_of_other_components_are_refused() {
    let err = phlo_flow::step(
        &voicemail(),
        node_id(),
        &call_ctx(json!({})),
        &Event::PromptFinished,
    )
    .unwrap_err();
    let expected = EngineError::UnexpectedEvent {
        node: "Voicemail".into(),
        kind: "record_audio",
        event: "prompt_finished",
    };
    assert_eq!(err, expected);
}
