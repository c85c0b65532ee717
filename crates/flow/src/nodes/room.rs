//! What Multiparty Call and Conference Bridge share: a named room the token's call joins, member events
//! while it is there, and `completed` when it leaves or the room empties (`failed` when it cannot join).

use phlo_template::Template;
use serde_json::json;

use crate::effect::{Effect, Prompt, Sound, VoiceAction};
use crate::engine::{Context, EngineError, Reaction, Wait, WaitOn, unexpected};
use crate::event::{ConferenceEvent, Event, Vars};
use crate::model::Node;
use crate::nodes::prompt::{self, PromptOption};
use crate::nodes::record::{self, RecordOption};
use crate::nodes::{CARRIER_GRACE_SECS, check_literal, no_call, region, vars};
use crate::options::{OptionReader, check_url};

pub const STATES: &[&str] = &["completed", "failed"];
pub const MEMBER_EVENTS: &[&str] = &["ConferenceEnter", "ConferenceExit", "Redirect"];

#[derive(Debug, Clone)]
pub struct RoomOptions {
    pub conference_name: Option<Template>,
    pub announcement: Option<PromptOption>,
    pub wait_music_url: Option<Template>,
    pub enter_sound: Sound,
    pub exit_sound: Sound,
    pub start_muted: bool,
    pub record: RecordOption,
    pub max_duration: u64,
}

/// The room's options rendered for one join.
pub(crate) struct Rendered {
    pub name: String,
    pub announcement: Option<Prompt>,
    pub wait_music_url: Option<String>,
    pub record: bool,
}

pub(crate) fn parse(r: &mut OptionReader, announcement_key: &'static str) -> RoomOptions {
    let conference_name =
        r.required_template("conference_name", "the name of the room callers join");
    if conference_name
        .as_ref()
        .and_then(Template::as_literal)
        .is_some_and(|n| n.trim().is_empty())
    {
        let f = r.field("conference_name");
        r.error(&f, "invalid_value", "`conference_name` must not be blank");
    }
    let announcement = prompt::parse_optional(r, announcement_key);
    let wait_music_url = r.template("wait_music_url");
    let f = r.field("wait_music_url");
    check_literal(r, &f, wait_music_url.as_ref(), "invalid_url", check_url);
    let enter_sound = sound(r, "enter_sound");
    let exit_sound = sound(r, "exit_sound");
    let start_muted = r.bool("start_muted", false);
    let record = record::parse(r, "record");
    let max_duration = r.uint("max_duration", 60..=86_400, 14_400);
    RoomOptions {
        conference_name,
        announcement,
        wait_music_url,
        enter_sound,
        exit_sound,
        start_muted,
        record,
        max_duration,
    }
}

pub(crate) fn optional_url(r: &mut OptionReader, key: &'static str) -> Option<Template> {
    let t = r.template(key);
    let f = r.field(key);
    check_literal(r, &f, t.as_ref(), "invalid_url", check_url);
    t
}

fn sound(r: &mut OptionReader, key: &'static str) -> Sound {
    match r.choice(key, &["none", "beep", "double_beep"], "beep") {
        "none" => Sound::None,
        "double_beep" => Sound::DoubleBeep,
        _ => Sound::Beep,
    }
}

pub(crate) fn render_url(ctx: &Context, t: Option<&Template>) -> Result<Option<String>, String> {
    match t {
        Some(t) => Ok(Some(ctx.render(t)?).filter(|s| !s.is_empty())),
        None => Ok(None),
    }
}

pub(crate) fn react(
    room: &RoomOptions,
    node: &Node,
    ctx: &Context,
    event: &Event,
    join: &dyn Fn(Rendered) -> Result<VoiceAction, String>,
) -> Result<Reaction, EngineError> {
    Ok(match event {
        Event::Enter => {
            let Some(call) = &ctx.call else {
                return Ok(Reaction::failed("failed", Vars::new(), no_call(node)));
            };
            let rendered = (|| -> Result<_, String> {
                let name = room
                    .conference_name
                    .as_ref()
                    .map(|t| ctx.render(t))
                    .transpose()?
                    .unwrap_or_default();
                if name.trim().is_empty() {
                    return Err("`conference_name` rendered empty".to_owned());
                }
                let announcement = room
                    .announcement
                    .as_ref()
                    .map(|p| prompt::render(ctx, p))
                    .transpose()?;
                let wait_music_url = render_url(ctx, room.wait_music_url.as_ref())?;
                let record = record::resolve(ctx, &room.record)?;
                Ok(Rendered {
                    name,
                    announcement,
                    wait_music_url,
                    record,
                })
            })();
            let rendered = match rendered {
                Ok(r) => r,
                Err(e) => return Ok(Reaction::failed("failed", Vars::new(), e)),
            };
            let name = rendered.name.clone();
            let action = match join(rendered) {
                Ok(a) => a,
                Err(e) => return Ok(Reaction::failed("failed", Vars::new(), e)),
            };
            let variables = member_vars(
                &Vars::new(),
                &ConferenceEvent {
                    event: String::new(),
                    from: call.from.clone(),
                    to: call.to.clone(),
                    call_uuid: call.uuid.clone(),
                    ..Default::default()
                },
                &name,
            );
            Reaction::wait(
                WaitOn::Conference,
                room.max_duration + CARRIER_GRACE_SECS,
                variables,
                vec![Effect::Voice(action)],
            )
        }
        Event::Conference(ev) => {
            let name = ctx
                .parked
                .get("conference_name")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            let variables = member_vars(&ctx.parked, ev, &name);
            if let Some(error) = &ev.error {
                Reaction::failed(
                    "failed",
                    variables,
                    format!("the call could not join the room: {error}"),
                )
            } else if ev.ended {
                Reaction::done("completed", variables)
            } else {
                Reaction::Wait {
                    waits: vec![Wait {
                        on: WaitOn::Conference,
                        timeout_secs: room.max_duration + CARRIER_GRACE_SECS,
                        variables: variables.clone(),
                    }],
                    effects: Vec::new(),
                    callback_event: Some((ev.event.clone(), variables)),
                }
            }
        }
        Event::Hangup { .. } | Event::Timeout => {
            let mut variables = ctx.parked.clone();
            variables.insert("event".into(), json!("ConferenceExit"));
            Reaction::done("completed", variables)
        }
        _ => return Err(unexpected(node, event)),
    })
}

/// The seed's member variables, keeping what earlier events told when this one leaves a field empty.
fn member_vars(previous: &Vars, ev: &ConferenceEvent, conference_name: &str) -> Vars {
    let keep = |key: &str, new: &str| -> serde_json::Value {
        if new.is_empty() {
            previous.get(key).cloned().unwrap_or(json!(null))
        } else {
            json!(new)
        }
    };
    let from = keep("from", &ev.from);
    let to = keep("to", &ev.to);
    let (to_iso2, to_country) = region(to.as_str().unwrap_or_default());
    let (from_iso2, from_country) = region(from.as_str().unwrap_or_default());
    // A name reported earlier belongs to the caller it was reported with: when the event names another
    // caller without a name, the name defaults to that caller's `from`, as the seed says.
    let same_caller = ev.from.is_empty()
        || previous.get("from").and_then(|f| f.as_str()) == Some(ev.from.as_str());
    let caller_name = match &ev.caller_name {
        Some(n) => json!(n),
        None if same_caller => keep("caller_name", ""),
        None => json!(null),
    };
    vars(json!({
        "from": from,
        "direction": if ev.direction.is_empty() { previous.get("direction").cloned().unwrap_or(json!("inbound")) } else { json!(ev.direction) },
        "caller_name": if caller_name.is_null() { from.clone() } else { caller_name },
        "to": to,
        "event": keep("event", &ev.event),
        "bill_rate": ev.bill_rate.clone().map(|b| json!(b)).unwrap_or_else(|| keep("bill_rate", "")),
        "call_status": "in-progress",
        "conference_name": conference_name,
        "call_uuid": keep("call_uuid", &ev.call_uuid),
        "conference_uuid": keep("conference_uuid", &ev.conference_uuid),
        "member_id": keep("member_id", &ev.member_id),
        "to_iso2": to_iso2,
        "from_iso2": from_iso2,
        "to_country": to_country,
        "from_country": from_country,
    }))
}
