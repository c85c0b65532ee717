//! IVR Menu: play prompts, take one key press, branch on it. One state per allowed input plus
//! `no_input` (nothing within the timeout) and `wrong_input` (a key not in the allowed list).

use serde_json::{Value, json};

use crate::effect::{Effect, VoiceAction};
use crate::engine::{Context, EngineError, Reaction, WaitOn, unexpected};
use crate::event::Event;
use crate::model::Node;
use crate::nodes::prompt::{self, PromptOption};
use crate::nodes::{CARRIER_GRACE_SECS, no_call, vars};
use crate::options::{OptionReader, kind};

pub const KEYS: &str = "0123456789#*";

#[derive(Debug, Clone)]
pub struct Options {
    pub prompts: Vec<PromptOption>,
    pub allowed_inputs: Vec<String>,
    pub input_timeout: u64,
    pub interrupt_on_input: bool,
}

pub(crate) fn parse(r: &mut OptionReader) -> Options {
    let prompts = prompt::parse_list(r, "prompts");
    let field = r.field("allowed_inputs");
    let mut allowed_inputs: Vec<String> = Vec::new();
    match r.raw("allowed_inputs") {
        None => r.error(
            &field,
            "missing_option",
            "`allowed_inputs` is required: list the keys callers may press, e.g. [\"1\", \"2\"]",
        ),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let key = match item {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    other => {
                        r.error(
                            &format!("{field}[{i}]"),
                            "wrong_type",
                            format!("expected a key such as \"1\", found {}", kind(other)),
                        );
                        continue;
                    }
                };
                if key.len() != 1 || !KEYS.contains(key.as_str()) {
                    r.error(
                        &format!("{field}[{i}]"),
                        "invalid_value",
                        format!("`{key}` is not a key: use one of 0-9, # or *"),
                    );
                } else if allowed_inputs.contains(&key) {
                    r.error(
                        &format!("{field}[{i}]"),
                        "invalid_value",
                        format!("`{key}` is listed twice"),
                    );
                } else {
                    allowed_inputs.push(key);
                }
            }
            if items.is_empty() {
                r.error(
                    &field,
                    "missing_option",
                    "`allowed_inputs` must list at least one key",
                );
            }
        }
        Some(other) => r.error(
            &field,
            "wrong_type",
            format!("expected a list of keys, found {}", kind(other)),
        ),
    }
    let input_timeout = r.uint("input_timeout", 1..=60, 5);
    let interrupt_on_input = r.bool("interrupt_on_input", true);
    Options {
        prompts,
        allowed_inputs,
        input_timeout,
        interrupt_on_input,
    }
}

pub(crate) fn states(o: &Options) -> Vec<String> {
    let mut states = o.allowed_inputs.clone();
    states.extend(["no_input".to_owned(), "wrong_input".to_owned()]);
    states
}

pub(crate) fn react(
    o: &Options,
    node: &Node,
    ctx: &Context,
    event: &Event,
) -> Result<Reaction, EngineError> {
    let result = |digits: &str| vars(json!({ "digits": digits, "input_type": "digits" }));
    Ok(match event {
        Event::Enter => {
            if ctx.call.is_none() {
                return Ok(Reaction::stop(no_call(node)));
            }
            let prompts = match prompt::render_all(ctx, &o.prompts) {
                Ok(p) => p,
                Err(e) => return Ok(Reaction::stop(format!("a prompt did not render: {e}"))),
            };
            let timeout = u32::try_from(o.input_timeout).unwrap_or(u32::MAX);
            let gather = VoiceAction::Gather {
                prompts,
                // Any key is collected so that a key outside the menu can end in `wrong_input`.
                valid_digits: None,
                max_digits: 1,
                timeout_secs: timeout,
                digit_timeout_secs: timeout,
                finish_on_key: None,
                interrupt: o.interrupt_on_input,
            };
            Reaction::wait(
                WaitOn::Digits,
                o.input_timeout + CARRIER_GRACE_SECS,
                Default::default(),
                vec![Effect::Voice(gather)],
            )
        }
        Event::Digits { digits } => {
            let digits = digits.trim();
            if digits.is_empty() {
                Reaction::done("no_input", result(""))
            } else if o.allowed_inputs.iter().any(|k| k == digits) {
                Reaction::done(digits, result(digits))
            } else {
                Reaction::done("wrong_input", result(digits))
            }
        }
        Event::Timeout => Reaction::done("no_input", result("")),
        Event::Hangup { cause } => {
            Reaction::stop(format!("the caller hung up during the menu ({cause})"))
        }
        _ => return Err(unexpected(node, event)),
    })
}
