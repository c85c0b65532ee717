//! IVR Menu: rendered prompts and a one-key Gather; one state per allowed key, `no_input`, `wrong_input`;
//! `digits` and `input_type` as the seed names them.

use phlo_flow::effect::{Prompt, VoiceAction};
use phlo_flow::{CallChange, Effect, EngineError, Event, Outcome, Phlo, WaitOn};
use serde_json::{Value, json};

use crate::support::*;

/// A menu whose every state (one per allowed key, `no_input`, `wrong_input`) leads on.
fn menu(options: Value) -> Phlo {
    let keys: Vec<String> = options["allowed_inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| k.as_str().map_or_else(|| k.to_string(), str::to_owned))
        .collect();
    let mut states: Vec<&str> = keys.iter().map(String::as_str).collect();
    states.extend(["no_input", "wrong_input"]);
    phlo_with("ivr_menu", "Menu", options, &states)
}

fn full_menu() -> Phlo {
    menu(json!({
        "prompts": [
            { "type": "speak", "text": "Hello {{Start.http.params.name}}, press 1 or 2", "language": "en-GB", "voice": "MAN" },
            { "type": "play", "url": "https://example.com/{{Start.http.params.file}}.mp3" },
        ],
        "allowed_inputs": ["1", "2", "#"],
        "input_timeout": 7,
        "interrupt_on_input": false,
    }))
}

#[test]
fn enter_renders_the_prompts_and_gathers_one_key() {
    let phlo = full_menu();
    let ctx = params_call_ctx(json!({ "name": "Ada", "file": "menu" }));
    let step = run(&phlo, &ctx, Event::Enter);
    assert_eq!(step.call, CallChange::Keep);
    let (wait, effects) = enter_and_wait(&phlo, &ctx);
    assert_eq!(wait.on, WaitOn::Digits);
    assert_eq!(
        wait.timeout_secs,
        7 + 120,
        "input timeout plus the carrier grace"
    );
    assert!(wait.variables.is_empty());
    let gather = VoiceAction::Gather {
        prompts: vec![
            Prompt::Speak {
                text: "Hello Ada, press 1 or 2".into(),
                language: "en-GB".into(),
                voice: "MAN".into(),
            },
            Prompt::Play {
                url: "https://example.com/menu.mp3".into(),
            },
        ],
        // Every key is collected, so that a key outside the menu can end in wrong_input.
        valid_digits: None,
        max_digits: 1,
        timeout_secs: 7,
        digit_timeout_secs: 7,
        finish_on_key: None,
        interrupt: false,
    };
    assert_eq!(effects, vec![Effect::Voice(gather)]);
}

#[test]
fn defaults_interrupt_on_input_and_wait_five_seconds() {
    let phlo = menu(json!({ "prompts": "Press 1", "allowed_inputs": [1, 2] }));
    let (wait, effects) = enter_and_wait(&phlo, &call_ctx(json!({})));
    assert_eq!(wait.timeout_secs, 5 + 120);
    let gather = VoiceAction::Gather {
        prompts: vec![Prompt::Speak {
            text: "Press 1".into(),
            language: "en-US".into(),
            voice: "WOMAN".into(),
        }],
        valid_digits: None,
        max_digits: 1,
        timeout_secs: 5,
        digit_timeout_secs: 5,
        finish_on_key: None,
        interrupt: true,
    };
    assert_eq!(effects, vec![Effect::Voice(gather)]);
}

#[test]
fn a_menu_without_prompts_gathers_silently() {
    let phlo = menu(json!({ "allowed_inputs": ["1"] }));
    let (_, effects) = enter_and_wait(&phlo, &call_ctx(json!({})));
    match effects.as_slice() {
        [Effect::Voice(VoiceAction::Gather { prompts, .. })] => assert!(prompts.is_empty()),
        other => panic!("expected one Gather, got {other:#?}"),
    }
}

#[test]
fn each_key_ends_in_its_state_with_the_seed_variables() {
    let phlo = full_menu();
    let ctx = call_ctx(json!({}));
    // (digits reported by the carrier, state, `digits` variable)
    let cases = [
        ("1", "1", "1"),
        ("2", "2", "2"),
        ("#", "#", "#"),
        (" 2 ", "2", "2"),
        ("", "no_input", ""),
        ("  ", "no_input", ""),
        ("7", "wrong_input", "7"),
        ("*", "wrong_input", "*"),
        ("0", "wrong_input", "0"),
        ("12", "wrong_input", "12"),
    ];
    for (digits, state, recorded) in cases {
        let step = run(
            &phlo,
            &ctx,
            Event::Digits {
                digits: digits.into(),
            },
        );
        let vars = done(&step, state);
        assert_eq!(
            Value::Object(vars),
            json!({ "digits": recorded, "input_type": "digits" }),
            "digits {digits:?}"
        );
        assert_eq!(error_of(&step), None, "digits {digits:?}");
        assert!(step.effects.is_empty(), "digits {digits:?}");
        assert_eq!(step.call, CallChange::Keep);
    }
}

#[test]
fn the_timer_backstop_is_no_input() {
    let step = run(&full_menu(), &call_ctx(json!({})), Event::Timeout);
    let vars = done(&step, "no_input");
    assert_eq!(
        Value::Object(vars),
        json!({ "digits": "", "input_type": "digits" })
    );
}

#[test]
fn a_state_without_a_transition_ends_the_token() {
    let phlo = phlo_with(
        "ivr_menu",
        "Menu",
        json!({ "allowed_inputs": ["1"] }),
        &["1"],
    );
    let step = run(
        &phlo,
        &call_ctx(json!({})),
        Event::Digits { digits: "9".into() },
    );
    match step.outcome {
        Outcome::Done { state, next, .. } => {
            assert_eq!(state, "wrong_input");
            assert_eq!(next, None);
        }
        other => panic!("expected Done, got {other:#?}"),
    }
}

#[test]
fn a_hang_up_during_the_menu_stops_the_token() {
    let step = run(
        &full_menu(),
        &call_ctx(json!({})),
        Event::Hangup {
            cause: "NORMAL_CLEARING".into(),
        },
    );
    assert_eq!(
        stopped(&step),
        "the caller hung up during the menu (NORMAL_CLEARING)"
    );
    assert!(step.effects.is_empty());
}

#[test]
fn without_a_call_the_menu_stops() {
    let step = run(
        &full_menu(),
        &params_ctx(json!({ "name": "Ada" })),
        Event::Enter,
    );
    let reason = stopped(&step);
    assert!(
        reason.starts_with("Menu (ivr_menu) acts on a call, but this token has none"),
        "{reason}"
    );
    assert!(step.effects.is_empty());
}

#[test]
fn a_prompt_that_fails_to_render_stops_the_token() {
    // IVR Menu has no failure state, so a render error stops the token with the reason.
    let phlo =
        menu(json!({ "prompts": ["ok", "{{ 1 | divided_by: 0 }}"], "allowed_inputs": ["1"] }));
    let step = run(&phlo, &call_ctx(json!({})), Event::Enter);
    let reason = stopped(&step);
    assert!(reason.starts_with("a prompt did not render:"), "{reason}");
    assert!(reason.contains("divide by zero"), "{reason}");
    assert!(
        step.effects.is_empty(),
        "nothing is played when a prompt fails"
    );
}

#[test]
fn events_of_other_components_are_refused() {
    for (event, name) in [
        (Event::PromptFinished, "prompt_finished"),
        (Event::Counter { count: 1 }, "counter"),
    ] {
        let err =
            phlo_flow::step(&full_menu(), node_id(), &call_ctx(json!({})), &event).unwrap_err();
        assert_eq!(
            err,
            EngineError::UnexpectedEvent {
                node: "Menu".into(),
                kind: "ivr_menu",
                event: name
            }
        );
    }
}

#[test]
fn a_callback_posts_the_state_and_digits() {
    let phlo = phlo_with_callback(
        "ivr_menu",
        "Menu",
        json!({ "allowed_inputs": ["1"] }),
        &["1", "no_input", "wrong_input"],
        json!({ "url": "https://hooks.example.com/ivr", "events": ["wrong_input"] }),
    );
    let wrong = run(
        &phlo,
        &call_ctx(json!({})),
        Event::Digits { digits: "5".into() },
    );
    let vars = done(&wrong, "wrong_input");
    let expected = expected_callback(
        "https://hooks.example.com/ivr",
        "POST",
        "ivr_menu",
        "Menu",
        "wrong_input",
        &vars,
    );
    assert_eq!(wrong.effects, vec![expected]);
    // Not subscribed: no post.
    let right = run(
        &phlo,
        &call_ctx(json!({})),
        Event::Digits { digits: "1".into() },
    );
    assert!(right.effects.is_empty());
}
