//! Multiparty Call: put the token's call in a multiparty room with a role (agent, customer or
//! supervisor). Agents can then add, hold, transfer and hang up members through the trigger API;
//! `from` and `ring_timeout` apply to the calls that API places.

use phlo_template::Template;

use crate::effect::{MultiPartyJoin, VoiceAction};
use crate::engine::{Context, EngineError, Reaction};
use crate::event::Event;
use crate::model::Node;
use crate::nodes::check_literal;
use crate::nodes::prompt::{self, PromptOption};
use crate::nodes::room::{self, RoomOptions};
use crate::options::OptionReader;
use crate::phone;

pub const ROLES: &[&str] = &["agent", "customer", "supervisor"];

#[derive(Debug, Clone)]
pub struct Options {
    pub room: RoomOptions,
    pub role: &'static str,
    pub agent_hold_music_url: Option<Template>,
    pub customer_hold_music_url: Option<Template>,
    /// Caller ID of the calls the trigger API places (`call`, transfers).
    pub from: Option<Template>,
    pub ring_timeout: u64,
    /// What a member answered by a machine hears on the trigger API's `voicemail_drop`.
    pub voicemail_message: Option<PromptOption>,
}

pub(crate) fn parse(r: &mut OptionReader) -> Options {
    let room = room::parse(r, "prompt");
    let role = r.choice("role", ROLES, "customer");
    let agent_hold_music_url = room::optional_url(r, "agent_hold_music_url");
    let customer_hold_music_url = room::optional_url(r, "customer_hold_music_url");
    let from = r.template("from");
    let f = r.field("from");
    check_literal(r, &f, from.as_ref(), "invalid_phone", phone::check_address);
    let ring_timeout = r.uint("ring_timeout", 5..=300, 45);
    let voicemail_message = prompt::parse_optional(r, "voicemail_message");
    Options {
        room,
        role,
        agent_hold_music_url,
        customer_hold_music_url,
        from,
        ring_timeout,
        voicemail_message,
    }
}

pub(crate) fn react(
    o: &Options,
    node: &Node,
    ctx: &Context,
    event: &Event,
) -> Result<Reaction, EngineError> {
    let join = |r: room::Rendered| {
        Ok(VoiceAction::JoinMultiParty(MultiPartyJoin {
            name: r.name,
            role: o.role.to_owned(),
            prompt: r.announcement,
            wait_music_url: r.wait_music_url,
            agent_hold_music_url: room::render_url(ctx, o.agent_hold_music_url.as_ref())?,
            customer_hold_music_url: room::render_url(ctx, o.customer_hold_music_url.as_ref())?,
            enter_sound: o.room.enter_sound,
            exit_sound: o.room.exit_sound,
            start_muted: o.room.start_muted,
            record: r.record,
            max_duration_secs: u32::try_from(o.room.max_duration).unwrap_or(86_400),
        }))
    };
    room::react(&o.room, node, ctx, event, &join)
}
