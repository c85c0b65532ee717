//! Live control of multiparty calls through Plivo's REST API: add a participant (dialled per its
//! script, or an existing call moved in), hold, mute and kick members. Each change is logged on the
//! member's call and reported to its status callback.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::Sim;
use crate::api::{api_id, both};
use crate::api_conference::{Flag, log_room_event};
use crate::body::ApiBody;
use crate::calls::Start;
use crate::error::ApiError;
use crate::outbound::{self, CallRequest, OnAnswer};
use crate::ringing::Screening;
use crate::room_exec::{log_hold, mpc_event};
use crate::rooms::MemberView;
use crate::webhooks::{Fetch, Method};
use crate::xml::Node;

pub fn routes(mut r: Router<Sim>) -> Router<Sim> {
    r = both(r, "/MultiPartyCall/{mpc_id}", get(get_mpc));
    let participants = post(add_participant).get(get_mpc);
    r = both(r, "/MultiPartyCall/{mpc_id}/Participant", participants);
    // The SDKs say Participant; the member endpoints of older docs say Member: both work.
    for kind in ["Participant", "Member"] {
        let path = format!("/MultiPartyCall/{{mpc_id}}/{kind}/{{member_id}}");
        r = both(r, &path, post(update_member).delete(kick_member));
    }
    r
}

#[derive(serde::Deserialize)]
struct MpcPath {
    mpc_id: String,
    member_id: Option<String>,
}

/// `name_<name>` or `uuid_<uuid>`, as the SDKs build them, to the room's name.
fn room_name(sim: &Sim, mpc_id: &str) -> Result<String, ApiError> {
    if let Some(name) = mpc_id.strip_prefix("name_") {
        return Ok(name.to_owned());
    }
    mpc_id
        .strip_prefix("uuid_")
        .and_then(|uuid| sim.rooms.name_by_uuid(uuid))
        .ok_or_else(|| ApiError::not_found(format!("multiparty call {mpc_id} not found")))
}

async fn get_mpc(State(sim): State<Sim>, Path(p): Path<MpcPath>) -> Result<Json<Value>, ApiError> {
    let name = room_name(&sim, &p.mpc_id)?;
    let room = sim
        .rooms
        .view(&name)
        .ok_or_else(|| ApiError::not_found(format!("multiparty call {name} not found")))?;
    Ok(Json(json!({
        "api_id": api_id(),
        "friendly_name": room.name,
        "mpc_uuid": room.uuid,
        "status": if room.ended { "ended" } else { "active" },
        "participants": room.members,
    })))
}

/// The document a participant added through the API runs: just the room.
fn mpc_doc(name: &str, role: &str, body: &ApiBody) -> Vec<Node> {
    let mut attrs = vec![("role".to_owned(), role.to_owned())];
    let map = [
        ("status_callback_url", "statusCallbackUrl"),
        ("status_callback_events", "statusCallbackEvents"),
        ("agent_hold_music_url", "agentHoldMusicUrl"),
        ("customer_hold_music_url", "customerHoldMusicUrl"),
        ("max_duration", "maxDuration"),
        ("max_participants", "maxParticipants"),
        ("hold", "hold"),
        ("mute", "mute"),
        ("end_mpc_on_exit", "endMpcOnExit"),
        ("start_mpc_on_enter", "startMpcOnEnter"),
        ("wait_music_url", "waitMusicUrl"),
        ("enter_sound", "enterSound"),
        ("exit_sound", "exitSound"),
        ("on_exit_action_url", "onExitActionUrl"),
        ("on_exit_action_method", "onExitActionMethod"),
    ];
    for (key, attr) in map {
        if let Some(v) = body.str(key) {
            attrs.push((attr.to_owned(), v));
        }
    }
    // The SDK's default for status callbacks is GET.
    let method = body
        .str("status_callback_method")
        .unwrap_or_else(|| "GET".to_owned());
    attrs.push(("statusCallbackMethod".to_owned(), method));
    vec![Node::element("MultiPartyCall", attrs, name)]
}

async fn add_participant(
    State(sim): State<Sim>,
    Path(p): Path<MpcPath>,
    body: ApiBody,
) -> Result<impl IntoResponse, ApiError> {
    let name = room_name(&sim, &p.mpc_id)?;
    let role = body.required("role")?.to_ascii_lowercase();
    if !["agent", "customer", "supervisor"].contains(&role.as_str()) {
        return Err(ApiError::bad_request(
            "role must be agent, customer or supervisor",
        ));
    }
    let doc = mpc_doc(&name, &role, &body);
    let mut calls = Vec::new();
    if let Some(call_uuid) = body.str("call_uuid") {
        let call = sim
            .calls
            .get(&call_uuid)
            .filter(|c| c.is_live())
            .ok_or_else(|| ApiError::not_found(format!("call {call_uuid} is not in progress")))?;
        call.request_transfer(Start::Doc(doc));
        calls.push(
            json!({ "to": call.info.to, "from": call.info.from, "call_uuid": call.info.uuid }),
        );
    } else {
        let from = body.required("from")?;
        let to = body.required("to")?;
        let screening = body.str("confirm_key").map(|key| Screening {
            sound: body.str("confirm_key_sound_url").map(|url| Fetch {
                url,
                method: Method::parse(Some(
                    &body
                        .str("confirm_key_sound_method")
                        .unwrap_or_else(|| "GET".into()),
                )),
                params: Vec::new(),
            }),
            key,
            timeout: 120.0,
        });
        for to in to.split('<').map(str::trim).filter(|t| !t.is_empty()) {
            let req = CallRequest {
                from: from.clone(),
                to: to.to_owned(),
                caller_name: body.str("caller_name"),
                on_answer: OnAnswer::Doc(doc.clone()),
                hangup: body.target("call_status_callback_url", "call_status_callback_method")?,
                ring: None,
                ring_timeout: body.num("ring_timeout", 45.0)?,
                machine_detection: None,
                machine_detection_url: None,
                time_limit: body.num("max_duration", 14_400.0)?,
                screening: screening.clone(),
            };
            let call = outbound::place(&sim, req);
            calls.push(json!({ "to": to, "from": from, "call_uuid": call.info.uuid }));
        }
    }
    let body = json!({
        "api_id": api_id(),
        "calls": calls,
        "message": "add participant action initiated",
        "request_uuid": api_id(),
    });
    Ok((StatusCode::CREATED, Json(body)))
}

fn member_of(sim: &Sim, name: &str, member_id: &str) -> Result<MemberView, ApiError> {
    sim.rooms
        .resolve(name, member_id)
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(format!("member {member_id} of {name} not found")))
}

/// Hold and mute a multiparty-call member; each change is logged on its call and reported to its
/// status callback.
async fn update_member(
    State(sim): State<Sim>,
    Path(p): Path<MpcPath>,
    body: ApiBody,
) -> Result<Json<Value>, ApiError> {
    let name = room_name(&sim, &p.mpc_id)?;
    let member_id = p.member_id.unwrap_or_default();
    member_of(&sim, &name, &member_id)?;
    let room_uuid = sim.rooms.view(&name).map(|r| r.uuid).unwrap_or_default();
    let mut message = serde_json::Map::new();
    if let Some(hold) = body.flag("hold")? {
        if let Some(m) = sim.rooms.set_held(&name, &member_id, hold) {
            log_hold(&sim, &m.call_uuid, &name, hold, m.hold_music.as_deref());
            let event = if hold {
                "ParticipantHold"
            } else {
                "ParticipantUnhold"
            };
            mpc_event(&sim, &name, &room_uuid, &m, event).await;
        }
        message.insert(
            "hold".into(),
            format!("MPC: {name} hold/unhold member(s) succeeded").into(),
        );
    }
    if let Some(mute) = body.flag("mute")? {
        if let Some(m) = sim.rooms.set_muted(&name, &member_id, mute) {
            log_room_event(
                &sim,
                &m,
                &name,
                if mute { Flag::Muted } else { Flag::Unmuted },
            );
            let event = if mute {
                "ParticipantMute"
            } else {
                "ParticipantUnmute"
            };
            mpc_event(&sim, &name, &room_uuid, &m, event).await;
        }
        message.insert(
            "mute".into(),
            format!("MPC: {name} mute/unmute member(s) succeeded").into(),
        );
    }
    if body.str("coach_mode").is_some() {
        message.insert(
            "coach_mode".into(),
            format!("MPC: {name} coach_mode enable/disable succeeded").into(),
        );
    }
    Ok(Json(
        json!({ "api_id": api_id(), "message": message, "request_uuid": api_id() }),
    ))
}

async fn kick_member(
    State(sim): State<Sim>,
    Path(p): Path<MpcPath>,
) -> Result<StatusCode, ApiError> {
    let name = room_name(&sim, &p.mpc_id)?;
    let member_id = p.member_id.unwrap_or_default();
    if !sim.rooms.kick(&name, &member_id, "kicked through the API") {
        return Err(ApiError::not_found(format!(
            "member {member_id} of {name} not found"
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}
