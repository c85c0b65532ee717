//! Play Audio: rendered prompts played on the call; `prompt_completed` when the carrier reports they
//! finished. No failure state: render errors, hang-ups and a lost report stop the token.

use phlo_flow::effect::{Prompt, VoiceAction};
use phlo_flow::{CallChange, Effect, EngineError, Event, Phlo, WaitOn};
use serde_json::{Value, json};

use crate::support::*;

fn play(options: Value) -> Phlo {
    phlo_with("play_audio", "Greeting", options, &["prompt_completed"])
}

fn greeting() -> Phlo {
    play(json!({ "prompts": [
        { "type": "speak", "text": "Welcome, {{Start.http.params.name}}", "language": "fr-FR", "voice": "MAN" },
        { "type": "play", "url": "https://cdn.example.com/{{Start.http.params.tune}}.mp3" },
        "Goodbye",
    ] }))
}

#[test]
fn enter_plays_every_rendered_prompt_in_order() {
    let ctx = params_call_ctx(json!({ "name": "Ada", "tune": "jingle" }));
    let (wait, effects) = enter_and_wait(&greeting(), &ctx);
    assert_eq!(wait.on, WaitOn::PromptFinished);
    assert_eq!(
        wait.timeout_secs,
        600 + 120,
        "the longest play plus the carrier grace"
    );
    assert!(wait.variables.is_empty());
    let prompts = vec![
        Prompt::Speak {
            text: "Welcome, Ada".into(),
            language: "fr-FR".into(),
            voice: "MAN".into(),
        },
        Prompt::Play {
            url: "https://cdn.example.com/jingle.mp3".into(),
        },
        Prompt::Speak {
            text: "Goodbye".into(),
            language: "en-US".into(),
            voice: "WOMAN".into(),
        },
    ];
    assert_eq!(effects, vec![Effect::Voice(VoiceAction::Play { prompts })]);
    assert_eq!(run(&greeting(), &ctx, Event::Enter).call, CallChange::Keep);
}

#[test]
fn a_single_prompt_is_a_list_of_one() {
    let (_, effects) = enter_and_wait(&play(json!({ "prompts": "Hello" })), &call_ctx(json!({})));
    let prompts = vec![Prompt::Speak {
        text: "Hello".into(),
        language: "en-US".into(),
        voice: "WOMAN".into(),
    }];
    assert_eq!(effects, vec![Effect::Voice(VoiceAction::Play { prompts })]);
}

#[test]
fn the_end_of_the_prompts_is_prompt_completed() {
    let phlo = greeting();
    let (wait, _) = enter_and_wait(&phlo, &call_ctx(json!({})));
    let step = run(
        &phlo,
        &resumed(&call_ctx(json!({})), &wait),
        Event::PromptFinished,
    );
    assert!(
        done(&step, "prompt_completed").is_empty(),
        "the seed lists no variables"
    );
    assert_eq!(error_of(&step), None);
    assert!(step.effects.is_empty());
    assert_eq!(step.call, CallChange::Keep);
}

#[test]
fn hang_ups_and_the_timer_stop_the_token() {
    let cases = [
        (
            Event::Hangup {
                cause: "NORMAL_CLEARING".into(),
            },
            "the caller hung up during the prompts (NORMAL_CLEARING)",
        ),
        (
            Event::Timeout,
            "the carrier never reported the end of the prompts",
        ),
    ];
    for (event, reason) in cases {
        let step = run(&greeting(), &call_ctx(json!({})), event);
        assert_eq!(stopped(&step), reason);
        assert!(step.effects.is_empty());
    }
}

#[test]
fn without_a_call_play_audio_stops() {
    let step = run(
        &greeting(),
        &params_ctx(json!({ "name": "Ada" })),
        Event::Enter,
    );
    let reason = stopped(&step);
    assert!(
        reason.starts_with("Greeting (play_audio) acts on a call, but this token has none"),
        "{reason}"
    );
}

#[test]
fn a_prompt_that_fails_to_render_stops_the_token() {
    for prompt in [
        json!("{{ 1 | divided_by: 0 }}"),
        json!({ "type": "play", "url": "{{ 1 | divided_by: 0 }}" }),
    ] {
        let step = run(
            &play(json!({ "prompts": ["fine", prompt] })),
            &call_ctx(json!({})),
            Event::Enter,
        );
        let reason = stopped(&step);
        assert!(
            reason.starts_with("a prompt did not render:") && reason.contains("divide by zero"),
            "{reason}"
        );
        assert!(step.effects.is_empty(), "nothing is played");
    }
}

#[test]
fn events_of_other_components_are_refused() {
    let err = phlo_flow::step(
        &greeting(),
        node_id(),
        &call_ctx(json!({})),
        &Event::Digits { digits: "1".into() },
    );
    let expected = EngineError::UnexpectedEvent {
        node: "Greeting".into(),
        kind: "play_audio",
        event: "digits",
    };
    assert_eq!(err.unwrap_err(), expected);
}
