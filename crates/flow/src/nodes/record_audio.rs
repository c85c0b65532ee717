//! Record Audio: optionally play a prompt, beep, and record the caller; `recording_completed` with the
//! recording's URL, id, duration and times.

use serde_json::json;

use crate::effect::{Effect, VoiceAction};
use crate::engine::{Context, EngineError, Reaction, WaitOn, unexpected};
use crate::event::Event;
use crate::model::Node;
use crate::nodes::prompt::{self, PromptOption};
use crate::nodes::{CARRIER_GRACE_SECS, no_call, vars};
use crate::options::OptionReader;

pub const STATES: &[&str] = &["recording_completed"];

#[derive(Debug, Clone)]
pub struct Options {
    pub prompt: Option<PromptOption>,
    pub play_beep: bool,
    pub max_length: u64,
    pub silence_timeout: u64,
    pub finish_on_key: String,
}

pub(crate) fn parse(r: &mut OptionReader) -> Options {
    let prompt = prompt::parse_optional(r, "prompt");
    let play_beep = r.bool("play_beep", true);
    let max_length = r.uint("max_length", 1..=14_400, 60);
    let silence_timeout = r.uint("silence_timeout", 1..=60, 15);
    let finish_on_key = match r.raw("finish_on_key") {
        None => "#".to_owned(),
        Some(v) => match v.as_str() {
            Some(k) if !k.is_empty() && k.chars().all(|c| super::ivr_menu::KEYS.contains(c)) => {
                k.to_owned()
            }
            _ => {
                let f = r.field("finish_on_key");
                r.error(
                    &f,
                    "invalid_value",
                    format!("{v} is not a set of keys: use digits, # or *"),
                );
                "#".to_owned()
            }
        },
    };
    Options {
        prompt,
        play_beep,
        max_length,
        silence_timeout,
        finish_on_key,
    }
}

pub(crate) fn react(
    o: &Options,
    node: &Node,
    ctx: &Context,
    event: &Event,
) -> Result<Reaction, EngineError> {
    Ok(match event {
        Event::Enter => {
            let Some(call) = &ctx.call else {
                return Ok(Reaction::stop(no_call(node)));
            };
            let prompt = match o
                .prompt
                .as_ref()
                .map(|p| prompt::render(ctx, p))
                .transpose()
            {
                Ok(p) => p,
                Err(e) => return Ok(Reaction::stop(format!("the prompt did not render: {e}"))),
            };
            let record = VoiceAction::Record {
                prompt,
                beep: o.play_beep,
                max_length_secs: u32::try_from(o.max_length).unwrap_or(14_400),
                silence_timeout_secs: u32::try_from(o.silence_timeout).unwrap_or(60),
                finish_on_key: o.finish_on_key.clone(),
            };
            Reaction::wait(
                WaitOn::Recording,
                o.max_length + CARRIER_GRACE_SECS,
                // Parked so the recording still names its call when it arrives after a hang-up.
                vars(json!({ "call_uuid": call.uuid })),
                vec![Effect::Voice(record)],
            )
        }
        Event::Recording(rec) => {
            let call_uuid = ctx.parked.get("call_uuid").cloned();
            let call_uuid = call_uuid.or_else(|| ctx.call.as_ref().map(|c| json!(c.uuid)));
            Reaction::done(
                "recording_completed",
                vars(json!({
                    "call_uuid": call_uuid,
                    "recording_url": rec.url,
                    "recording_uuid": rec.recording_uuid,
                    "recording_duration": rec.duration_ms,
                    "recording_start_time": rec.start_time,
                    "recording_end_time": rec.end_time,
                })),
            )
        }
        Event::Timeout => Reaction::stop("the carrier never delivered the recording"),
        // Hanging up is how callers usually end a voicemail: the carrier still delivers what was
        // recorded, so keep waiting for it (the timer gives up after the grace period).
        Event::Hangup { .. } => Reaction::wait(
            WaitOn::Recording,
            CARRIER_GRACE_SECS,
            ctx.parked.clone(),
            Vec::new(),
        ),
        _ => return Err(unexpected(node, event)),
    })
}
