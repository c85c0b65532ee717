//! Live control of conference members through Plivo's REST API: hang up, kick, mute and deafen
//! (one member, a comma-separated list, or `all`), and hang up the whole conference.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::Sim;
use crate::api::{api_id, both};
use crate::calls::HangupInfo;
use crate::error::ApiError;
use crate::events::EventKind;
use crate::rooms::MemberView;

pub fn routes(mut r: Router<Sim>) -> Router<Sim> {
    let member = "/Conference/{name}/Member/{member_id}";
    r = both(
        r,
        "/Conference/{name}",
        get(get_conference).delete(end_conference),
    );
    r = both(r, member, delete(hangup_members));
    r = both(r, &format!("{member}/Kick"), post(kick_members));
    r = both(r, &format!("{member}/Mute"), post(mute).delete(unmute));
    r = both(r, &format!("{member}/Deaf"), post(deafen).delete(undeafen));
    r
}

#[derive(serde::Deserialize)]
struct ConfPath {
    name: String,
    member_id: Option<String>,
}

async fn get_conference(
    State(sim): State<Sim>,
    Path(p): Path<ConfPath>,
) -> Result<Json<Value>, ApiError> {
    let room = sim
        .rooms
        .view(&p.name)
        .filter(|r| !r.ended)
        .ok_or_else(|| ApiError::not_found(format!("conference {} not found", p.name)))?;
    let members: Vec<&MemberView> = room.members.iter().filter(|m| m.state != "left").collect();
    Ok(Json(json!({
        "api_id": api_id(),
        "conference_name": room.name,
        "conference_member_count": members.len().to_string(),
        "members": members,
    })))
}

fn hang_up(sim: &Sim, members: &[MemberView], reason: &str) {
    for m in members {
        if let Some(call) = sim.calls.get(&m.call_uuid) {
            call.request_hangup(HangupInfo::new("NORMAL_CLEARING", "API Request", reason));
        }
    }
}

async fn end_conference(
    State(sim): State<Sim>,
    Path(p): Path<ConfPath>,
) -> Result<StatusCode, ApiError> {
    let members = sim.rooms.resolve(&p.name, "all");
    if members.is_empty() {
        return Err(ApiError::not_found(format!(
            "conference {} not found",
            p.name
        )));
    }
    hang_up(&sim, &members, "conference hung up through the API");
    Ok(StatusCode::NO_CONTENT)
}

/// The members a path's comma-separated member ids (or `all`) name; none is a 404.
fn members(sim: &Sim, p: &ConfPath) -> Result<Vec<MemberView>, ApiError> {
    let ids = p.member_id.as_deref().unwrap_or_default();
    let found = sim.rooms.resolve(&p.name, ids);
    if found.is_empty() {
        return Err(ApiError::not_found(format!(
            "member {ids} of conference {} not found",
            p.name
        )));
    }
    Ok(found)
}

fn done(message: &str, members: &[MemberView]) -> (StatusCode, Json<Value>) {
    let ids: Vec<&str> = members.iter().map(|m| m.member_id.as_str()).collect();
    let body = json!({ "message": message, "member_id": ids, "api_id": api_id() });
    (StatusCode::ACCEPTED, Json(body))
}

async fn hangup_members(
    State(sim): State<Sim>,
    Path(p): Path<ConfPath>,
) -> Result<impl IntoResponse, ApiError> {
    let found = members(&sim, &p)?;
    hang_up(&sim, &found, "hung up through the conference API");
    Ok(done("hangup", &found))
}

async fn kick_members(
    State(sim): State<Sim>,
    Path(p): Path<ConfPath>,
) -> Result<impl IntoResponse, ApiError> {
    let found = members(&sim, &p)?;
    for m in &found {
        sim.rooms
            .kick(&p.name, &m.member_id, "kicked through the API");
    }
    Ok(done("kicked", &found))
}

#[derive(Clone, Copy)]
pub enum Flag {
    Muted,
    Unmuted,
    Deafened,
    Undeafened,
}

pub fn log_room_event(sim: &Sim, m: &MemberView, room: &str, flag: Flag) {
    let Some(call) = sim.calls.get(&m.call_uuid) else {
        return;
    };
    let room = room.to_owned();
    call.log_party(match flag {
        Flag::Muted => EventKind::Muted { room },
        Flag::Unmuted => EventKind::Unmuted { room },
        Flag::Deafened => EventKind::Deafened { room },
        Flag::Undeafened => EventKind::Undeafened { room },
    });
}

fn set_flag(sim: &Sim, p: &ConfPath, flag: Flag) -> Result<Vec<MemberView>, ApiError> {
    let found = members(sim, p)?;
    for m in &found {
        let changed = match flag {
            Flag::Muted | Flag::Unmuted => {
                sim.rooms
                    .set_muted(&p.name, &m.member_id, matches!(flag, Flag::Muted))
            }
            Flag::Deafened | Flag::Undeafened => {
                sim.rooms
                    .set_deaf(&p.name, &m.member_id, matches!(flag, Flag::Deafened))
            }
        };
        if let Some(m) = changed {
            log_room_event(sim, &m, &p.name, flag);
        }
    }
    Ok(found)
}

async fn mute(
    State(sim): State<Sim>,
    Path(p): Path<ConfPath>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(done("mute", &set_flag(&sim, &p, Flag::Muted)?))
}

async fn unmute(State(sim): State<Sim>, Path(p): Path<ConfPath>) -> Result<StatusCode, ApiError> {
    set_flag(&sim, &p, Flag::Unmuted)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn deafen(
    State(sim): State<Sim>,
    Path(p): Path<ConfPath>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(done("deaf", &set_flag(&sim, &p, Flag::Deafened)?))
}

async fn undeafen(State(sim): State<Sim>, Path(p): Path<ConfPath>) -> Result<StatusCode, ApiError> {
    set_flag(&sim, &p, Flag::Undeafened)?;
    Ok(StatusCode::NO_CONTENT)
}
