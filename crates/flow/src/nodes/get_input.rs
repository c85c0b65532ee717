//! Get Input: play a prompt and collect up to `max_input_size` digits. `input` when something was
//! entered, `no_input` when nothing was within the timeout. Digits past the maximum are ignored.

use serde_json::json;

use crate::effect::{Effect, VoiceAction};
use crate::engine::{Context, EngineError, Reaction, WaitOn, unexpected};
use crate::event::Event;
use crate::model::Node;
use crate::nodes::prompt::{self, PromptOption};
use crate::nodes::{CARRIER_GRACE_SECS, no_call, vars};
use crate::options::OptionReader;

pub const STATES: &[&str] = &["input", "no_input"];

#[derive(Debug, Clone)]
pub struct Options {
    pub prompt: Option<PromptOption>,
    pub max_input_size: u64,
    pub input_timeout: u64,
    /// The key that ends the input early; empty for none.
    pub finish_on_key: String,
    pub interrupt_on_input: bool,
}

pub(crate) fn parse(r: &mut OptionReader) -> Options {
    let prompt = prompt::parse_optional(r, "prompt");
    let max_input_size = r.uint("max_input_size", 1..=99, 99);
    let input_timeout = r.uint("input_timeout", 1..=60, 5);
    let finish_on_key = match r.raw("finish_on_key") {
        None => "#".to_owned(),
        Some(value) => match value.as_str() {
            Some(k) if k.is_empty() || (k.len() == 1 && super::ivr_menu::KEYS.contains(k)) => {
                k.to_owned()
            }
            _ => {
                let f = r.field("finish_on_key");
                r.error(
                    &f,
                    "invalid_value",
                    format!("{value} is not a key: use one of 0-9, # or *, or \"\" for none"),
                );
                "#".to_owned()
            }
        },
    };
    let interrupt_on_input = r.bool("interrupt_on_input", true);
    Options {
        prompt,
        max_input_size,
        input_timeout,
        finish_on_key,
        interrupt_on_input,
    }
}

pub(crate) fn react(
    o: &Options,
    node: &Node,
    ctx: &Context,
    event: &Event,
) -> Result<Reaction, EngineError> {
    let result = |input: &str| vars(json!({ "input": input, "input_type": "digits" }));
    Ok(match event {
        Event::Enter => {
            if ctx.call.is_none() {
                return Ok(Reaction::stop(no_call(node)));
            }
            let prompts = match o
                .prompt
                .as_ref()
                .map(|p| prompt::render(ctx, p))
                .transpose()
            {
                Ok(p) => p.into_iter().collect(),
                Err(e) => return Ok(Reaction::stop(format!("the prompt did not render: {e}"))),
            };
            let timeout = u32::try_from(o.input_timeout).unwrap_or(u32::MAX);
            let gather = VoiceAction::Gather {
                prompts,
                valid_digits: None,
                max_digits: u32::try_from(o.max_input_size).unwrap_or(99),
                timeout_secs: timeout,
                digit_timeout_secs: timeout,
                finish_on_key: Some(o.finish_on_key.clone()).filter(|k| !k.is_empty()),
                interrupt: o.interrupt_on_input,
            };
            // The caller may type one digit per timeout period, so the whole input can take max × timeout.
            let budget = o.input_timeout * (o.max_input_size + 1) + CARRIER_GRACE_SECS;
            Reaction::wait(
                WaitOn::Digits,
                budget,
                Default::default(),
                vec![Effect::Voice(gather)],
            )
        }
        Event::Digits { digits } => {
            let mut input: String = digits
                .trim()
                .chars()
                .filter(|c| super::ivr_menu::KEYS.contains(*c))
                .collect();
            if !o.finish_on_key.is_empty()
                && let Some(cut) = input.find(o.finish_on_key.as_str())
            {
                input.truncate(cut);
            }
            let input: String = input
                .chars()
                .take(usize::try_from(o.max_input_size).unwrap_or(99))
                .collect();
            if input.is_empty() {
                Reaction::done("no_input", result(""))
            } else {
                Reaction::done("input", result(&input))
            }
        }
        Event::Timeout => Reaction::done("no_input", result("")),
        Event::Hangup { cause } => Reaction::stop(format!(
            "the caller hung up before entering input ({cause})"
        )),
        _ => return Err(unexpected(node, event)),
    })
}
