//! Play Audio: speak or play prompts on the call; `prompt_completed` once the carrier reports they
//! finished.

use crate::effect::{Effect, VoiceAction};
use crate::engine::{Context, EngineError, Reaction, WaitOn, unexpected};
use crate::event::Event;
use crate::model::Node;
use crate::nodes::prompt::{self, PromptOption};
use crate::nodes::{CARRIER_GRACE_SECS, no_call};
use crate::options::OptionReader;

pub const STATES: &[&str] = &["prompt_completed"];

/// Longest the prompts of one node may play before the wait's timer gives up on the carrier.
pub const MAX_PLAY_SECS: u64 = 600;

#[derive(Debug, Clone)]
pub struct Options {
    pub prompts: Vec<PromptOption>,
}

pub(crate) fn parse(r: &mut OptionReader) -> Options {
    let prompts = prompt::parse_list(r, "prompts");
    if prompts.is_empty() {
        let f = r.field("prompts");
        r.error(
            &f,
            "missing_option",
            "`prompts` is required: add a speak or play prompt",
        );
    }
    Options { prompts }
}

pub(crate) fn react(
    o: &Options,
    node: &Node,
    ctx: &Context,
    event: &Event,
) -> Result<Reaction, EngineError> {
    Ok(match event {
        Event::Enter => {
            if ctx.call.is_none() {
                return Ok(Reaction::stop(no_call(node)));
            }
            match prompt::render_all(ctx, &o.prompts) {
                Ok(prompts) => Reaction::wait(
                    WaitOn::PromptFinished,
                    MAX_PLAY_SECS + CARRIER_GRACE_SECS,
                    Default::default(),
                    vec![Effect::Voice(VoiceAction::Play { prompts })],
                ),
                Err(e) => Reaction::stop(format!("a prompt did not render: {e}")),
            }
        }
        Event::PromptFinished => Reaction::done("prompt_completed", Default::default()),
        Event::Timeout => Reaction::stop("the carrier never reported the end of the prompts"),
        Event::Hangup { cause } => {
            Reaction::stop(format!("the caller hung up during the prompts ({cause})"))
        }
        _ => return Err(unexpected(node, event)),
    })
}
