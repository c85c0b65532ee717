//! Hangup: end the token's call, optionally as `rejected` or `busy` (useful before answering).

use crate::effect::{Effect, HangupReason, VoiceAction};
use crate::engine::{CallChange, Context, EngineError, Reaction, unexpected};
use crate::event::Event;
use crate::model::Node;
use crate::nodes::{no_call, vars};
use crate::options::OptionReader;

pub const STATES: &[&str] = &["hangup_complete"];

#[derive(Debug, Clone)]
pub struct Options {
    pub reason: HangupReason,
}

pub(crate) fn parse(r: &mut OptionReader) -> Options {
    let reason = match r.choice("reason", &["normal", "rejected", "busy"], "normal") {
        "rejected" => HangupReason::Rejected,
        "busy" => HangupReason::Busy,
        _ => HangupReason::Normal,
    };
    Options { reason }
}

pub(crate) fn react(
    o: &Options,
    node: &Node,
    ctx: &Context,
    event: &Event,
) -> Result<Reaction, EngineError> {
    if !matches!(event, Event::Enter) {
        return Err(unexpected(node, event));
    }
    if ctx.call.is_none() {
        return Ok(Reaction::stop(no_call(node)));
    }
    let reason = match o.reason {
        HangupReason::Normal => "normal",
        HangupReason::Rejected => "rejected",
        HangupReason::Busy => "busy",
    };
    Ok(Reaction::done(
        "hangup_complete",
        vars(serde_json::json!({ "reason": reason })),
    )
    .with_effects(vec![Effect::Voice(VoiceAction::Hangup {
        reason: o.reason,
    })])
    .with_call(CallChange::Release))
}
