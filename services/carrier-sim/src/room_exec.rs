//! `Conference` and `MultiPartyCall`: the call joins the named room and stays until its party hangs
//! up, it is kicked, the room ends, or the time limit passes; then the exit is reported and the call
//! goes on (with the action / onExitAction XML when there is one, else with the next element).

use chrono::Utc;

use crate::Sim;
use crate::calls::{Stop, plivo_time};
use crate::events::EventKind;
use crate::rooms::{Callback, JoinSpec, Joined, MemberView, RoomKind};
use crate::session::CallCtx;
use crate::webhooks::{Fetch, Method};
use crate::xml::Node;
use crate::xml_exec::{Step, app_error};

/// Plivo's default hold music, reported when a member is held and no URL was given.
const DEFAULT_HOLD_MUSIC: &str = "https://s3.amazonaws.com/plivocloud/music.mp3";

fn callback(verb: &Node, url_attr: &str, method_attr: &str) -> Option<Callback> {
    verb.attr(url_attr).map(|url| Callback {
        url: url.to_owned(),
        method: Method::parse(verb.attr(method_attr)),
    })
}

/// Adds the call to the room and logs it; a refusal (full room, wrong kind) is logged and `None`.
fn join(ctx: &CallCtx, name: &str, kind: RoomKind, spec: &JoinSpec) -> Option<Joined> {
    let joined = match ctx.sim.rooms.join(name, kind, spec.clone()) {
        Ok(j) => j,
        Err(error) => {
            ctx.log(EventKind::AppError { error });
            return None;
        }
    };
    ctx.log(EventKind::Joined {
        room: name.to_owned(),
        room_kind: kind.as_str(),
        member_id: joined.member_id.clone(),
        role: spec.role.clone(),
    });
    if spec.held {
        log_hold(
            &ctx.sim,
            &ctx.call.info.uuid,
            name,
            true,
            spec.hold_music.as_deref(),
        );
    }
    Some(joined)
}

/// Stays until the member must leave, then leaves. Returns how the stay ended (`Err` when the
/// call was stopped from outside) and whether this exit ended the room.
async fn stay(ctx: &CallCtx, name: &str, joined: &Joined, limit: f64) -> (Result<(), Stop>, bool) {
    let outcome = ctx
        .guard(async {
            tokio::select! {
                () = joined.exit.cancelled() => {},
                () = ctx.sim.sleep(limit) => {},
            }
        })
        .await;
    let default_reason = match &outcome {
        Err(Stop::Hangup(h)) => h.reason.clone(),
        Err(Stop::Transfer(_)) => "transferred".to_owned(),
        Ok(()) => "time limit reached".to_owned(),
    };
    let (reason, ended) = match ctx
        .sim
        .rooms
        .leave(name, &joined.member_id, &default_reason)
    {
        Some(left) => (left.reason, left.ended),
        None => ("the room was reset".to_owned(), false),
    };
    ctx.log(EventKind::Left {
        room: name.to_owned(),
        member_id: joined.member_id.clone(),
        reason,
    });
    (outcome, ended)
}

async fn conference_event(
    ctx: &CallCtx,
    cb: Option<&Callback>,
    name: &str,
    joined: &Joined,
    action: &str,
) {
    if let Some(cb) = cb {
        let params = conference_params(name, joined, Some(action));
        let _ = ctx
            .sim
            .webhooks
            .send(&ctx.fetch(&cb.url, cb.method, params))
            .await;
    }
}

pub async fn conference(ctx: &CallCtx, verb: &Node) -> Result<Step, Stop> {
    let name = verb.text.trim();
    if name.is_empty() {
        return Ok(Step::End(app_error(ctx, "Conference without a room name")));
    }
    let spec = JoinSpec {
        call_uuid: ctx.call.info.uuid.clone(),
        party: ctx.party().to_owned(),
        role: None,
        muted: verb.flag("muted", false),
        held: false,
        end_on_exit: verb.flag("endConferenceOnExit", false),
        max_members: verb.num("maxMembers", 200.0) as usize,
        callback: callback(verb, "callbackUrl", "callbackMethod"),
        hold_music: None,
    };
    let Some(joined) = join(ctx, name, RoomKind::Conference, &spec) else {
        return Ok(Step::Continue);
    };
    let cb = spec.callback.as_ref();
    conference_event(ctx, cb, name, &joined, "enter").await;
    let (outcome, _) = stay(ctx, name, &joined, verb.num("timeLimit", 14400.0)).await;
    conference_event(ctx, cb, name, &joined, "exit").await;
    outcome?;
    let Some(action) = verb.attr("action") else {
        return Ok(Step::Continue);
    };
    let fetch = ctx.fetch(
        action,
        Method::parse(verb.attr("method")),
        conference_params(name, &joined, None),
    );
    if verb.flag("redirect", true) {
        return Ok(Step::Goto(crate::calls::Start::Fetch(fetch)));
    }
    let _ = ctx.sim.webhooks.send(&fetch).await;
    Ok(Step::Continue)
}

fn conference_params(name: &str, joined: &Joined, action: Option<&str>) -> Vec<(String, String)> {
    let mut p = Vec::new();
    if let Some(action) = action {
        p.push(("ConferenceAction".into(), action.into()));
    }
    p.push(("ConferenceName".into(), name.into()));
    p.push(("ConferenceUUID".into(), joined.room_uuid.clone()));
    p.push(("ConferenceMemberID".into(), joined.member_id.clone()));
    p
}

pub async fn multi_party_call(ctx: &CallCtx, verb: &Node) -> Result<Step, Stop> {
    let name = verb.text.trim();
    if name.is_empty() {
        return Ok(Step::End(app_error(ctx, "MultiPartyCall without a name")));
    }
    let role = verb.attr("role").unwrap_or("customer").to_ascii_lowercase();
    let hold_music = match role.as_str() {
        "agent" => verb.attr("agentHoldMusicUrl"),
        _ => verb.attr("customerHoldMusicUrl"),
    };
    let events = verb
        .attr("statusCallbackEvents")
        .unwrap_or("mpc-state-changes,participant-state-changes")
        .to_owned();
    let spec = JoinSpec {
        call_uuid: ctx.call.info.uuid.clone(),
        party: ctx.party().to_owned(),
        role: Some(role.clone()),
        muted: verb.flag("mute", false),
        held: verb.flag("hold", false),
        end_on_exit: verb.flag("endMpcOnExit", false),
        max_members: verb.num("maxParticipants", 10.0) as usize,
        callback: callback(verb, "statusCallbackUrl", "statusCallbackMethod"),
        hold_music: Some(hold_music.unwrap_or(DEFAULT_HOLD_MUSIC).to_owned()),
    };
    let Some(joined) = join(ctx, name, RoomKind::Mpc, &spec) else {
        return Ok(Step::Continue);
    };
    let member = MemberView {
        member_id: joined.member_id.clone(),
        call_uuid: ctx.call.info.uuid.clone(),
        party: ctx.party().to_owned(),
        role: Some(role.clone()),
        state: "in_call",
        muted: spec.muted,
        deaf: false,
        held: spec.held,
        joined_at: Utc::now(),
        left_reason: None,
        callback: spec.callback.clone(),
        hold_music: None,
    };
    let enter: &[&str] = if joined.first {
        &["MPCStart", "ParticipantJoin"]
    } else {
        &["ParticipantJoin"]
    };
    mpc_events(ctx, name, &joined, &member, &events, enter).await;
    let (outcome, ended) = stay(ctx, name, &joined, verb.num("maxDuration", 14400.0)).await;
    let exit: &[&str] = if ended {
        &["ParticipantExit", "MPCEnd"]
    } else {
        &["ParticipantExit"]
    };
    mpc_events(ctx, name, &joined, &member, &events, exit).await;
    outcome?;
    let Some(url) = verb.attr("onExitActionUrl") else {
        return Ok(Step::Continue);
    };
    let extra = vec![
        ("MPCUUID".into(), joined.room_uuid.clone()),
        ("MPCFriendlyName".into(), name.to_owned()),
        ("MemberID".into(), joined.member_id.clone()),
        ("ParticipantCallUUID".into(), ctx.call.info.uuid.clone()),
        ("ParticipantRole".into(), role.clone()),
        ("ParticipantEndTime".into(), plivo_time(Utc::now())),
    ];
    let fetch = ctx.fetch(url, Method::parse(verb.attr("onExitActionMethod")), extra);
    Ok(Step::Goto(crate::calls::Start::Fetch(fetch)))
}

async fn mpc_events(
    ctx: &CallCtx,
    name: &str,
    joined: &Joined,
    member: &MemberView,
    wanted: &str,
    events: &[&str],
) {
    for event in events.iter().filter(|e| wants(wanted, e)) {
        mpc_event(&ctx.sim, name, &joined.room_uuid, member, event).await;
    }
}

/// Whether a member's `statusCallbackEvents` asks for this event.
fn wants(events: &str, event: &str) -> bool {
    let group = if event.starts_with("MPC") {
        "mpc-state-changes"
    } else {
        "participant-state-changes"
    };
    events.split(',').any(|e| e.trim() == group)
}

/// Posts one multiparty-call status event to the member's status callback, if it has one.
pub async fn mpc_event(sim: &Sim, room: &str, room_uuid: &str, member: &MemberView, event: &str) {
    let Some(cb) = &member.callback else {
        return;
    };
    let params = vec![
        ("EventName".into(), event.to_owned()),
        ("EventTimestamp".into(), plivo_time(Utc::now())),
        ("MPCUUID".into(), room_uuid.to_owned()),
        ("MPCName".into(), room.to_owned()),
        ("MemberID".into(), member.member_id.clone()),
        (
            "ParticipantRole".into(),
            member.role.clone().unwrap_or_default(),
        ),
        ("ParticipantCallUUID".into(), member.call_uuid.clone()),
    ];
    let fetch = Fetch {
        url: cb.url.clone(),
        method: cb.method,
        params,
    };
    let _ = sim.webhooks.send(&fetch).await;
}

/// Logs a hold or unhold on the member's call; a held member hears the hold music.
pub fn log_hold(sim: &Sim, call_uuid: &str, room: &str, held: bool, music: Option<&str>) {
    let Some(call) = sim.calls.get(call_uuid) else {
        return;
    };
    let room = room.to_owned();
    if held {
        call.log_party(EventKind::Held { room });
        call.log_party(EventKind::Heard {
            text: None,
            url: Some(music.unwrap_or(DEFAULT_HOLD_MUSIC).to_owned()),
            voice: None,
            language: None,
        });
    } else {
        call.log_party(EventKind::Unheld { room });
    }
}
