//! The multiparty-call trigger API (Plivo's `multi_party_call` node and member routes) and the member
//! state behind it. Members are found by address (the phone number or SIP URI the SDKs name); each
//! action checks the member's state (joining, in_call, on_hold, transferring, left) and is carried out
//! through the carrier's live-call control.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use phlo_carrier::{AddParticipant, Carrier, MemberAction};
use phlo_flow::nodes::Component;
use phlo_store::rooms::{self, Member, NewMember};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path, Query, id};
use crate::routes::carrier::events::Params;
use crate::routes::phlos::find;

const UNHOLD_CUSTOMERS: &str = "unhold_customers";

fn created() -> (StatusCode, Json<Value>) {
    (
        StatusCode::CREATED,
        Json(json!({ "api_id": Uuid::now_v7(), "error": "" })),
    )
}

fn conflict(m: &Member, action: &str, needs: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        format!(
            "member {} is {}; {action} needs a member who is {needs}",
            m.address, m.state
        ),
    )
}

/// Lower case, hyphens as underscores: `cold-transfer` and `Cold_Transfer` are `cold_transfer`.
fn action_word(raw: Option<&str>) -> Result<String, ApiError> {
    raw.map(|a| a.trim().to_ascii_lowercase().replace('-', "_"))
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::bad_request("`action` is required"))
}

fn carrier(state: &AppState) -> Result<std::sync::Arc<dyn Carrier>, ApiError> {
    state.runtime.carrier().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no carrier is configured (PHLO_CARRIER_AUTH_ID/PHLO_CARRIER_AUTH_TOKEN)",
        )
    })
}

fn carrier_error(e: phlo_carrier::CarrierError) -> ApiError {
    if e.is_retryable() {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the carrier is unavailable: {e}"),
        )
    } else {
        ApiError::new(StatusCode::BAD_GATEWAY, format!("the carrier refused: {e}"))
    }
}

/// `POST /v1/phlo/{phlo_id}/multi_party_call/{node_id}`: `call`, `warm_transfer`, `cold_transfer`.
pub async fn node_action(
    caller: Caller,
    State(state): State<AppState>,
    Path((phlo_id, node_type, node_id)): Path<(String, String, String)>,
    body: JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if node_type != "multi_party_call" {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{node_type} nodes take member actions only: POST .../members/{{address}}"),
        ));
    }
    let phlo = find(&state, &caller, &phlo_id).await?;
    let node_id = id(&node_id, "multi_party_call node")?;
    let compiled = state
        .runtime
        .phlo(phlo.id, phlo.revision)
        .await?
        .ok_or_else(|| ApiError::not_found("PHLO", phlo.id))?;
    let Some(Component::MultiPartyCall(options)) = compiled
        .node(phlo_flow::NodeId(node_id))
        .map(|n| &n.component)
    else {
        return Err(ApiError::not_found("multi_party_call node", node_id));
    };
    let body = body.object("the action")?;
    let text = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let action = action_word(text("action").as_deref())?;
    if !matches!(action.as_str(), "call" | "warm_transfer" | "cold_transfer") {
        return Err(ApiError::bad_request(format!(
            "`{action}` is not a node action: use call, warm_transfer or cold_transfer (member actions go to /members/{{address}})"
        )));
    }
    let source = text("trigger_source").ok_or_else(|| {
        ApiError::bad_request("`trigger_source` is required: the member who triggers the action")
    })?;
    let to = text("to").ok_or_else(|| {
        ApiError::bad_request("`to` is required: the phone number or SIP URI to call")
    })?;
    phlo_flow::phone::check_address(&to)
        .map_err(|e| ApiError::bad_request(format!("`to`: {e}")))?;
    let role = text("role")
        .unwrap_or_else(|| "agent".into())
        .to_ascii_lowercase();
    if !phlo_flow::nodes::multi_party_call::ROLES.contains(&role.as_str()) {
        return Err(ApiError::bad_request(format!(
            "role `{role}` is not valid: use agent, customer or supervisor"
        )));
    }
    let mut conn = state.pool.acquire().await?;
    let initiator = rooms::find(&mut conn, phlo.id, node_id, &source)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "member",
                format!("{source} in a multiparty call of node {node_id}"),
            )
        })?;
    drop(conn);
    if initiator.state != "in_call" {
        return Err(conflict(&initiator, &action, "in_call"));
    }
    let carrier = carrier(&state)?;
    let room = initiator.room.clone();
    let from = options
        .from
        .as_ref()
        .and_then(|t| t.as_literal())
        .map(str::to_owned)
        .unwrap_or_else(|| source.clone());
    let on_join = if action == "cold_transfer" {
        Some(UNHOLD_CUSTOMERS)
    } else {
        None
    };
    if action != "call" {
        hold_customers(&state, carrier.as_ref(), &room, true).await?;
    }
    let participant = AddParticipant {
        role: role.clone(),
        from,
        to: to.clone(),
        ring_timeout_secs: u32::try_from(options.ring_timeout).ok(),
        status_callback_url: Some(events_url(&state, initiator.run_id, node_id)),
        ..AddParticipant::default()
    };
    let added = carrier
        .mpc_add_participant(&room, participant)
        .await
        .map_err(carrier_error)?;
    let call_uuid = added
        .calls
        .iter()
        .find(|(t, _)| t == &to)
        .or(added.calls.first())
        .map(|(_, c)| c.clone());
    let mut conn = state.pool.acquire().await?;
    rooms::upsert(
        &mut conn,
        &NewMember {
            phlo_id: phlo.id,
            node_id,
            node_type: "multi_party_call",
            room: &room,
            run_id: initiator.run_id,
            address: &to,
            role: &role,
            call_uuid: call_uuid.as_deref(),
            member_id: None,
            state: "joining",
            on_join,
        },
    )
    .await?;
    drop(conn);
    match action.as_str() {
        "warm_transfer" => set_member_state(&state, initiator.id, "transferring").await?,
        "cold_transfer" => {
            if let Some(member_id) = &initiator.member_id {
                carrier
                    .mpc_member(&room, member_id, MemberAction::Kick)
                    .await
                    .map_err(carrier_error)?;
            }
            set_member_state(&state, initiator.id, "left").await?;
        }
        _ => {}
    }
    Ok(created())
}

/// Moves a member to `to`, on a connection of its own: none is held while the carrier acts (its
/// member events come back to this gateway, and an embedded store has a single connection).
async fn set_member_state(state: &AppState, id: i64, to: &str) -> Result<(), ApiError> {
    let mut conn = state.pool.acquire().await?;
    rooms::set_state(&mut conn, id, to, None).await?;
    Ok(())
}

/// Holds (or unholds) every customer present in the room.
async fn hold_customers(
    state: &AppState,
    carrier: &dyn Carrier,
    room: &str,
    hold: bool,
) -> Result<(), ApiError> {
    let (from, to, action) = if hold {
        ("in_call", "on_hold", MemberAction::Hold)
    } else {
        ("on_hold", "in_call", MemberAction::Unhold)
    };
    let present = {
        let mut conn = state.pool.acquire().await?;
        rooms::present(&mut conn, room).await?
    };
    for m in present
        .into_iter()
        .filter(|m| m.role == "customer" && m.state == from)
    {
        if let Some(member_id) = &m.member_id {
            carrier
                .mpc_member(room, member_id, action)
                .await
                .map_err(carrier_error)?;
        }
        set_member_state(state, m.id, to).await?;
    }
    Ok(())
}

/// `POST /v1/phlo/{phlo_id}/{node_type}/{node_id}/members/{member_address}`.
pub async fn member_action(
    caller: Caller,
    State(state): State<AppState>,
    Path((phlo_id, node_type, node_id, address)): Path<(String, String, String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    body: JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let phlo = find(&state, &caller, &phlo_id).await?;
    let node_id = id(&node_id, &format!("{node_type} node"))?;
    let compiled = state
        .runtime
        .phlo(phlo.id, phlo.revision)
        .await?
        .ok_or_else(|| ApiError::not_found("PHLO", phlo.id))?;
    let node = compiled
        .node(phlo_flow::NodeId(node_id))
        .filter(|n| {
            n.kind().as_str() == node_type
                && matches!(node_type.as_str(), "multi_party_call" | "conference_bridge")
        })
        .ok_or_else(|| ApiError::not_found(&format!("{node_type} node"), node_id))?;
    let body = body.object("the action")?;
    // .NET sends the action in the query string.
    let raw = body
        .get("action")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| query.get("action").cloned());
    let action = action_word(raw.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    let member = rooms::find(&mut conn, phlo.id, node.id.0, &address)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "member",
                format!("{address} in a {node_type} of node {node_id}"),
            )
        })?;
    drop(conn);
    let carrier = carrier(&state)?;
    let mpc = node_type == "multi_party_call";
    let present = matches!(
        member.state.as_str(),
        "in_call" | "on_hold" | "transferring"
    );
    let act = |a: MemberAction| {
        let carrier = carrier.clone();
        let room = member.room.clone();
        let member_id = member.member_id.clone();
        async move {
            match member_id {
                Some(id) if mpc => carrier
                    .mpc_member(&room, &id, a)
                    .await
                    .map_err(carrier_error),
                Some(id) => carrier
                    .conference_member(&room, &id, a)
                    .await
                    .map_err(carrier_error),
                None => Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "the member has not joined the room yet",
                )),
            }
        }
    };
    match action.as_str() {
        "hold" => {
            if member.state != "in_call" {
                return Err(conflict(&member, "hold", "in_call"));
            }
            if mpc {
                act(MemberAction::Hold).await?
            } else {
                act(MemberAction::Mute).await?;
                act(MemberAction::Deaf).await?
            }
            set_member_state(&state, member.id, "on_hold").await?;
        }
        "unhold" => {
            if member.state != "on_hold" {
                return Err(conflict(&member, "unhold", "on_hold"));
            }
            if mpc {
                act(MemberAction::Unhold).await?
            } else {
                act(MemberAction::Unmute).await?;
                act(MemberAction::Undeaf).await?
            }
            set_member_state(&state, member.id, "in_call").await?;
        }
        "mute" | "unmute" => {
            if !present {
                return Err(conflict(&member, &action, "in the call"));
            }
            act(if action == "mute" {
                MemberAction::Mute
            } else {
                MemberAction::Unmute
            })
            .await?;
        }
        "voicemail_drop" if mpc => {
            if !present && member.state != "joining" {
                return Err(conflict(&member, &action, "in the call"));
            }
            let message = match &node.component {
                Component::MultiPartyCall(o) => o.voicemail_message.as_ref(),
                _ => None,
            };
            match (message, member.call_uuid.as_deref()) {
                (Some(message), Some(call_uuid)) => {
                    drop_voicemail(&state, carrier.as_ref(), &member, call_uuid, message).await?;
                }
                _ => act(MemberAction::Kick).await?,
            }
            set_member_state(&state, member.id, "left").await?;
        }
        "hangup" => {
            if !present && member.state != "joining" {
                return Err(conflict(&member, &action, "in the call"));
            }
            act(if mpc {
                MemberAction::Kick
            } else {
                MemberAction::Hangup
            })
            .await?;
            set_member_state(&state, member.id, "left").await?;
        }
        "resume_call" if mpc => {
            if member.state != "transferring" {
                return Err(conflict(
                    &member,
                    "resume_call",
                    "transferring (after a warm transfer)",
                ));
            }
            hold_customers(&state, carrier.as_ref(), &member.room, false).await?;
            set_member_state(&state, member.id, "in_call").await?;
        }
        "abort_transfer" if mpc => {
            // Either side of a warm transfer may be named: the agent being added leaves, the
            // transferring agent and the customers are back together.
            let room = {
                let mut conn = state.pool.acquire().await?;
                rooms::present(&mut conn, &member.room).await?
            };
            let transferee = if member.state == "transferring" {
                room.iter()
                    .filter(|m| m.role == "agent" && m.id != member.id && m.state != "transferring")
                    .max_by_key(|m| m.id)
                    .cloned()
            } else {
                Some(member.clone())
            };
            let Some(transferee) =
                transferee.filter(|_| room.iter().any(|m| m.state == "transferring"))
            else {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("there is no warm transfer to abort in the room of {address}"),
                ));
            };
            if let Some(id) = &transferee.member_id {
                carrier
                    .mpc_member(&transferee.room, id, MemberAction::Kick)
                    .await
                    .map_err(carrier_error)?;
            }
            set_member_state(&state, transferee.id, "left").await?;
            for m in room.iter().filter(|m| m.state == "transferring") {
                set_member_state(&state, m.id, "in_call").await?;
            }
            hold_customers(&state, carrier.as_ref(), &member.room, false).await?;
        }
        other => {
            let allowed = if mpc {
                "hold, unhold, hangup, resume_call, abort_transfer, voicemail_drop, mute, unmute"
            } else {
                "hold, unhold, hangup, mute, unmute"
            };
            return Err(ApiError::bad_request(format!(
                "`{other}` is not a member action of a {node_type}: use one of {allowed}"
            )));
        }
    }
    Ok(created())
}

/// Leaves the node's voicemail message on a member answered by a machine: the member's call is moved
/// (Plivo's transfer) to XML that plays the message and hangs up.
async fn drop_voicemail(
    state: &AppState,
    carrier: &dyn Carrier,
    member: &Member,
    call_uuid: &str,
    message: &phlo_flow::nodes::prompt::PromptOption,
) -> Result<(), ApiError> {
    let mut conn = state.pool.acquire().await?;
    // The message may use the run's variables, as seen by the token in the room.
    let ctx = phlo_store::tokens::list(&mut conn, member.run_id)
        .await?
        .into_iter()
        .find(|t| t.node_id == member.node_id)
        .map(|t| t.context.0)
        .unwrap_or_default();
    let prompt = phlo_flow::nodes::prompt::render(&ctx, message).map_err(|e| {
        ApiError::bad_request(format!("the node's voicemail_message does not render: {e}"))
    })?;
    let xml = phlo_carrier::xml::Response::new(vec![
        phlo_carrier::voice::prompt_element(&prompt),
        phlo_carrier::xml::Element::Hangup(phlo_carrier::xml::Hangup::default()),
    ])
    .render();
    if phlo_store::calls::get(&mut conn, call_uuid)
        .await?
        .is_none()
    {
        phlo_store::calls::upsert(
            &mut conn,
            &phlo_store::calls::NewCall {
                call_uuid,
                run_id: member.run_id,
                token: -1,
                direction: "outbound",
                from_number: &member.address,
                to_number: &member.address,
            },
        )
        .await?;
    }
    let version = phlo_store::calls::instruct(
        &mut conn,
        &phlo_store::calls::NewInstruction {
            call_uuid,
            run_id: member.run_id,
            token: -1,
            wait_id: None,
            action: None,
            xml: &xml,
        },
    )
    .await?;
    drop(conn);
    let url = format!(
        "{}/v1/carrier/voice/continue/{call_uuid}?after={}",
        state.config.public_url.trim_end_matches('/'),
        version - 1
    );
    carrier
        .transfer_call(call_uuid, &url)
        .await
        .map_err(carrier_error)
}

/// Where participants added through the API report their events.
fn events_url(state: &AppState, run_id: Uuid, node_id: Uuid) -> String {
    format!(
        "{}/v1/carrier/rooms/{run_id}/{node_id}/events",
        state.config.public_url.trim_end_matches('/')
    )
}

/// A member event from the carrier (a participant added by the API, or a token's own call): the
/// member's state follows it, and a member whose join completes a cold transfer brings the customers
/// back from hold.
pub async fn record_event(
    state: &AppState,
    p: &Params,
    (phlo_id, node_id, node_type, run_id): (Uuid, Uuid, &str, Uuid),
    own: Option<(&str, &str, &str)>,
) -> Result<(), ApiError> {
    let get = |k: &str| p.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let Some(room) = get("MPCName")
        .or_else(|| get("ConferenceName"))
        .map(str::to_owned)
        .or_else(|| own.map(|o| o.0.to_owned()))
    else {
        return Ok(());
    };
    let event = get("EventName")
        .or_else(|| get("ConferenceAction"))
        .unwrap_or_default();
    let new_state = match event {
        "ParticipantJoin" | "enter" => "in_call",
        "ParticipantExit" | "exit" => "left",
        "ParticipantHold" => "on_hold",
        "ParticipantUnhold" => "in_call",
        _ => return Ok(()),
    };
    let call_uuid = get("ParticipantCallUUID").or_else(|| get("CallUUID"));
    let member_id = get("MemberID").or_else(|| get("ConferenceMemberID"));
    let mut conn = state.pool.acquire().await?;
    let known = match call_uuid {
        Some(c) => rooms::by_call(&mut conn, &room, c).await?,
        None => None,
    };
    let (address, role) = match (&known, own) {
        (Some(m), _) => (m.address.clone(), m.role.clone()),
        (None, Some((_, address, role))) => (address.to_owned(), role.to_owned()),
        (None, None) => return Ok(()),
    };
    let role = get("ParticipantRole")
        .map(str::to_ascii_lowercase)
        .unwrap_or(role);
    let member = rooms::upsert(
        &mut conn,
        &NewMember {
            phlo_id,
            node_id,
            node_type,
            room: &room,
            run_id,
            address: &address,
            role: &role,
            call_uuid,
            member_id,
            state: if known.as_ref().is_some_and(|m| m.state == "transferring")
                && new_state == "in_call"
            {
                "transferring"
            } else {
                new_state
            },
            on_join: None,
        },
    )
    .await?;
    drop(conn);
    if new_state == "in_call" && member.on_join.as_deref() == Some(UNHOLD_CUSTOMERS) {
        if let Ok(carrier) = carrier(state) {
            hold_customers(state, carrier.as_ref(), &room, false).await?;
        }
        set_member_state(state, member.id, "in_call").await?;
    }
    Ok(())
}

/// `POST /v1/carrier/rooms/{run_id}/{node_id}/events`: events of participants added through the API.
pub async fn carrier_events(
    State(state): State<AppState>,
    axum::extract::Path((run_id, node_id)): axum::extract::Path<(Uuid, Uuid)>,
    hook: crate::routes::carrier::Webhook,
) -> Result<StatusCode, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let Some(run) = phlo_store::runs::find(&mut conn, run_id).await? else {
        return Ok(StatusCode::OK);
    };
    drop(conn);
    record_event(
        &state,
        &hook.params,
        (run.phlo_id, node_id, "multi_party_call", run_id),
        None,
    )
    .await?;
    Ok(StatusCode::OK)
}
