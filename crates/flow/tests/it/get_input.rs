//! Get Input: a rendered prompt and a Gather of up to `max_input_size` digits; `input` or `no_input`, with
//! `input` and `input_type` as the seed names them. Digits past the maximum are ignored, the finish key
//! ends the input early.

use phlo_flow::effect::{Prompt, VoiceAction};
use phlo_flow::{CallChange, Effect, EngineError, Event, Phlo, WaitOn};
use serde_json::{Value, json};

use crate::support::*;

fn get_input(options: Value) -> Phlo {
    phlo_with("get_input", "Account", options, &["input", "no_input"])
}

fn four_digits_ending_with_star() -> Phlo {
    get_input(json!({
        "prompt": { "type": "play", "url": "https://example.com/{{Start.http.params.file}}.wav" },
        "max_input_size": 4,
        "input_timeout": 3,
        "finish_on_key": "*",
        "interrupt_on_input": false,
    }))
}

fn input_vars(input: &str) -> Value {
    json!({ "input": input, "input_type": "digits" })
}

#[test]
fn enter_renders_the_prompt_and_gathers_up_to_the_maximum() {
    let phlo = four_digits_ending_with_star();
    let ctx = params_call_ctx(json!({ "file": "pin" }));
    let (wait, effects) = enter_and_wait(&phlo, &ctx);
    assert_eq!(wait.on, WaitOn::Digits);
    // One timeout per digit (the caller may type one digit per period), plus one to start, plus the grace.
    assert_eq!(wait.timeout_secs, 3 * (4 + 1) + 120);
    assert!(wait.variables.is_empty());
    let gather = VoiceAction::Gather {
        prompts: vec![Prompt::Play {
            url: "https://example.com/pin.wav".into(),
        }],
        valid_digits: None,
        max_digits: 4,
        timeout_secs: 3,
        digit_timeout_secs: 3,
        finish_on_key: Some("*".into()),
        interrupt: false,
    };
    assert_eq!(effects, vec![Effect::Voice(gather)]);
}

#[test]
fn defaults_are_99_digits_5_seconds_hash_and_interrupt() {
    let (wait, effects) = enter_and_wait(&get_input(json!({})), &call_ctx(json!({})));
    assert_eq!(wait.timeout_secs, 5 * (99 + 1) + 120);
    let gather = VoiceAction::Gather {
        prompts: vec![],
        valid_digits: None,
        max_digits: 99,
        timeout_secs: 5,
        digit_timeout_secs: 5,
        finish_on_key: Some("#".into()),
        interrupt: true,
    };
    assert_eq!(effects, vec![Effect::Voice(gather)]);
}

#[test]
fn an_empty_finish_key_disables_it() {
    let phlo = get_input(
        json!({ "prompt": "Your PIN, {{Start.http.params.name}}?", "finish_on_key": "" }),
    );
    let (_, effects) = enter_and_wait(&phlo, &params_call_ctx(json!({ "name": "Ada" })));
    match effects.as_slice() {
        [
            Effect::Voice(VoiceAction::Gather {
                finish_on_key,
                prompts,
                ..
            }),
        ] => {
            assert_eq!(*finish_on_key, None);
            assert_eq!(
                *prompts,
                vec![Prompt::Speak {
                    text: "Your PIN, Ada?".into(),
                    language: "en-US".into(),
                    voice: "WOMAN".into()
                }]
            );
        }
        other => panic!("expected one Gather, got {other:#?}"),
    }
    // With no finish key, `#` is an ordinary key and is part of the input.
    let step = run(
        &phlo,
        &call_ctx(json!({})),
        Event::Digits {
            digits: "12#3".into(),
        },
    );
    assert_eq!(Value::Object(done(&step, "input")), input_vars("12#3"));
}

#[test]
fn digits_are_cut_at_the_finish_key_and_the_maximum() {
    let phlo = four_digits_ending_with_star();
    let ctx = call_ctx(json!({}));
    // (digits reported by the carrier, state, `input` variable)
    let cases = [
        ("1234", "input", "1234"),
        ("7", "input", "7"),
        ("123456", "input", "1234"),
        ("12*34", "input", "12"),
        ("1234*", "input", "1234"),
        ("#9", "input", "#9"),
        (" 42 ", "input", "42"),
        ("1a2b", "input", "12"),
        ("*123", "no_input", ""),
        ("*", "no_input", ""),
        ("", "no_input", ""),
        ("   ", "no_input", ""),
    ];
    for (digits, state, input) in cases {
        let step = run(
            &phlo,
            &ctx,
            Event::Digits {
                digits: digits.into(),
            },
        );
        assert_eq!(
            Value::Object(done(&step, state)),
            input_vars(input),
            "digits {digits:?}"
        );
        assert_eq!(error_of(&step), None);
        assert!(step.effects.is_empty());
        assert_eq!(step.call, CallChange::Keep);
    }
}

#[test]
fn the_default_finish_key_is_hash() {
    let phlo = get_input(json!({ "max_input_size": 3 }));
    let ctx = call_ctx(json!({}));
    for (digits, state, input) in [
        ("55#", "input", "55"),
        ("#", "no_input", ""),
        ("9999#", "input", "999"),
    ] {
        let step = run(
            &phlo,
            &ctx,
            Event::Digits {
                digits: digits.into(),
            },
        );
        assert_eq!(
            Value::Object(done(&step, state)),
            input_vars(input),
            "digits {digits:?}"
        );
    }
}

#[test]
fn the_timer_backstop_is_no_input() {
    let step = run(
        &four_digits_ending_with_star(),
        &call_ctx(json!({})),
        Event::Timeout,
    );
    assert_eq!(Value::Object(done(&step, "no_input")), input_vars(""));
}

#[test]
fn a_hang_up_while_waiting_stops_the_token() {
    let step = run(
        &four_digits_ending_with_star(),
        &call_ctx(json!({})),
        Event::Hangup {
            cause: "ORIGINATOR_CANCEL".into(),
        },
    );
    assert_eq!(
        stopped(&step),
        "the caller hung up before entering input (ORIGINATOR_CANCEL)"
    );
}

#[test]
fn without_a_call_get_input_stops() {
    let step = run(
        &four_digits_ending_with_star(),
        &params_ctx(json!({ "file": "pin" })),
        Event::Enter,
    );
    let reason = stopped(&step);
    assert!(
        reason.starts_with("Account (get_input) acts on a call, but this token has none"),
        "{reason}"
    );
}

#[test]
fn a_prompt_that_fails_to_render_stops_the_token() {
    let phlo =
        get_input(json!({ "prompt": { "type": "speak", "text": "{{ 1 | divided_by: 0 }}" } }));
    let step = run(&phlo, &call_ctx(json!({})), Event::Enter);
    let reason = stopped(&step);
    assert!(reason.starts_with("the prompt did not render:"), "{reason}");
    assert!(reason.contains("divide by zero"), "{reason}");
    assert!(step.effects.is_empty());
}

#[test]
fn events_of_other_components_are_refused() {
    let err = phlo_flow::step(
        &get_input(json!({})),
        node_id(),
        &call_ctx(json!({})),
        &Event::PromptFinished,
    )
    .unwrap_err();
    assert_eq!(
        err,
        EngineError::UnexpectedEvent {
            node: "Account".into(),
            kind: "get_input",
            event: "prompt_finished"
        }
    );
}
