//! Conference Bridge: put the token's call in a named conference room.

use crate::effect::{ConferenceJoin, VoiceAction};
use crate::engine::{Context, EngineError, Reaction};
use crate::event::Event;
use crate::model::Node;
use crate::nodes::room::{self, RoomOptions};
use crate::options::OptionReader;

#[derive(Debug, Clone)]
pub struct Options {
    pub room: RoomOptions,
    /// The conference starts when this caller enters (callers before a starter hear the wait music).
    pub start_on_enter: bool,
    /// The conference ends for everyone when this caller leaves.
    pub end_on_exit: bool,
}

pub(crate) fn parse(r: &mut OptionReader) -> Options {
    let room = room::parse(r, "announcement");
    let start_on_enter = r.bool("start_on_enter", true);
    let end_on_exit = r.bool("end_on_exit", false);
    Options {
        room,
        start_on_enter,
        end_on_exit,
    }
}

pub(crate) fn react(
    o: &Options,
    node: &Node,
    ctx: &Context,
    event: &Event,
) -> Result<Reaction, EngineError> {
    let join = |r: room::Rendered| {
        Ok(VoiceAction::JoinConference(ConferenceJoin {
            name: r.name,
            announcement: r.announcement,
            wait_music_url: r.wait_music_url,
            enter_sound: o.room.enter_sound,
            exit_sound: o.room.exit_sound,
            start_muted: o.room.start_muted,
            start_on_enter: o.start_on_enter,
            end_on_exit: o.end_on_exit,
            record: r.record,
            max_duration_secs: u32::try_from(o.room.max_duration).unwrap_or(86_400),
        }))
    };
    room::react(&o.room, node, ctx, event, &join)
}
