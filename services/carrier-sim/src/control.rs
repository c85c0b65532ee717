//! The simulator's own control API under `/sim` (JSON, no auth; never expose it beyond a test or
//! dev network): scripts for parties, inbound calls and messages, and everything observed.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::Sim;
use crate::body::ApiBody;
use crate::calls::{CallView, HangupInfo};
use crate::error::ApiError;
use crate::messages::{self, MessageView};
use crate::outbound::{self, InboundRequest};
use crate::rooms::{Callback, RoomView};
use crate::scripts::{Script, number_key};
use crate::webhooks::WebhookRecord;

pub fn routes() -> Router<Sim> {
    Router::new()
        .route("/sim/numbers", get(list_numbers))
        .route(
            "/sim/numbers/{number}",
            put(set_number).get(get_number).delete(delete_number),
        )
        .route("/sim/calls", get(list_calls).post(place_inbound))
        .route("/sim/calls/{uuid}", get(get_call))
        .route("/sim/calls/{uuid}/input", post(live_input))
        .route("/sim/messages", get(list_messages).post(inbound_message))
        .route("/sim/rooms/{name}", get(get_room))
        .route("/sim/webhooks", get(list_webhooks))
        .route("/sim/reset", post(reset))
}

async fn list_numbers(State(sim): State<Sim>) -> Json<Value> {
    Json(json!(sim.scripts.all()))
}

async fn set_number(
    State(sim): State<Sim>,
    Path(number): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let script: Script = if body.iter().all(u8::is_ascii_whitespace) {
        Script::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid script: {e}")))?
    };
    sim.scripts
        .set(&number, script.clone())
        .map_err(ApiError::bad_request)?;
    Ok(Json(
        json!({ "number": number_key(&number), "script": script }),
    ))
}

async fn get_number(State(sim): State<Sim>, Path(number): Path<String>) -> Json<Value> {
    Json(json!({ "number": number_key(&number), "script": sim.scripts.get(&number) }))
}

async fn delete_number(State(sim): State<Sim>, Path(number): Path<String>) -> StatusCode {
    if sim.scripts.remove(&number) {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    }
}

async fn list_calls(State(sim): State<Sim>) -> Json<Vec<CallView>> {
    Json(sim.calls.list().iter().map(|c| c.view()).collect())
}

async fn get_call(
    State(sim): State<Sim>,
    Path(uuid): Path<String>,
) -> Result<Json<CallView>, ApiError> {
    sim.calls
        .get(&uuid)
        .map(|c| Json(c.view()))
        .ok_or_else(|| ApiError::not_found(format!("call {uuid} not found")))
}

/// `{"input": "12#"}` for the prompt a `live_input` party is waiting at: keys, `""` for silence,
/// or words said to a speech prompt.
async fn live_input(
    State(sim): State<Sim>,
    Path(uuid): Path<String>,
    body: ApiBody,
) -> Result<StatusCode, ApiError> {
    let call = sim
        .calls
        .get(&uuid)
        .ok_or_else(|| ApiError::not_found(format!("call {uuid} not found")))?;
    if call.give_input(body.str("input").unwrap_or_default()) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "call {uuid} is not waiting for input: its prompt timed out, or it is not at a prompt"
            ),
        ))
    }
}

/// An inbound call to the application; the caller behaves per the script of `from`.
async fn place_inbound(
    State(sim): State<Sim>,
    body: ApiBody,
) -> Result<impl IntoResponse, ApiError> {
    let answer = body
        .target("answer_url", "answer_method")?
        .ok_or_else(|| ApiError::bad_request("answer_url parameter is missing"))?;
    let call = outbound::receive(
        &sim,
        InboundRequest {
            from: body.required("from")?,
            to: body.required("to")?,
            caller_name: body.str("caller_name"),
            answer,
            hangup: body.target("hangup_url", "hangup_method")?,
        },
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({ "call_uuid": call.info.uuid })),
    ))
}

async fn list_messages(State(sim): State<Sim>) -> Json<Vec<MessageView>> {
    Json(sim.messages.list())
}

/// An inbound SMS, posted to the application's message URL.
async fn inbound_message(
    State(sim): State<Sim>,
    body: ApiBody,
) -> Result<impl IntoResponse, ApiError> {
    let (url, method) = body
        .target("message_url", "message_method")?
        .ok_or_else(|| ApiError::bad_request("message_url parameter is missing"))?;
    let uuid = messages::receive(
        &sim,
        &body.required("from")?,
        &body.required("to")?,
        &body.str("text").unwrap_or_default(),
        Callback { url, method },
    );
    Ok((StatusCode::CREATED, Json(json!({ "message_uuid": uuid }))))
}

async fn get_room(
    State(sim): State<Sim>,
    Path(name): Path<String>,
) -> Result<Json<RoomView>, ApiError> {
    sim.rooms
        .view(&name)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("room {name} not found")))
}

async fn list_webhooks(State(sim): State<Sim>) -> Json<Vec<WebhookRecord>> {
    Json(sim.webhooks.records())
}

/// Forgets everything. Live calls are told to hang up first; whatever they report afterwards goes
/// to their application but no longer shows here.
async fn reset(State(sim): State<Sim>) -> StatusCode {
    for call in sim.calls.clear() {
        call.request_hangup(HangupInfo::new(
            "NORMAL_CLEARING",
            "Plivo",
            "simulator reset",
        ));
    }
    sim.rooms.clear();
    sim.messages.clear();
    sim.webhooks.clear();
    sim.scripts.clear();
    StatusCode::NO_CONTENT
}
