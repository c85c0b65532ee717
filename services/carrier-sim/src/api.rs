//! Plivo's REST API as the runner's carrier adapter uses it: Basic auth with the account's id and
//! token, JSON (or form) in, JSON out, trailing slashes optional, errors as `{api_id, error}`.
//! Calls and messages live here; multiparty calls in `api_mpc`, conferences in
//! `api_conference`.

use std::collections::HashMap;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::body::ApiBody;
use crate::calls::{HangupInfo, Start};
use crate::error::ApiError;
use crate::events::EventKind;
use crate::messages::{self, Outgoing};
use crate::outbound::{self, CallRequest, OnAnswer};
use crate::rooms::Callback;
use crate::webhooks::Fetch;
use crate::{Sim, api_conference, api_mpc};

/// Registers `path` with and without its trailing slash: Plivo's SDKs always add one, other
/// clients often do not.
pub fn both(router: Router<Sim>, path: &str, route: MethodRouter<Sim>) -> Router<Sim> {
    router
        .route(path, route.clone())
        .route(&format!("{path}/"), route)
}

pub fn routes(sim: Sim) -> Router<Sim> {
    let mut account = Router::new();
    account = both(account, "/Call", post(create_call));
    account = both(
        account,
        "/Call/{call_id}",
        get(get_call).post(transfer_call).delete(hangup_call),
    );
    account = both(account, "/Call/{call_id}/Record", post(record_call));
    account = both(account, "/Request/{call_id}", delete(hangup_call));
    account = both(account, "/Message", post(send_message));
    account = both(account, "/Message/{message_id}", get(get_message));
    let account = api_conference::routes(api_mpc::routes(account))
        .route_layer(middleware::from_fn_with_state(sim, auth));
    Router::new().nest("/v1/Account/{auth_id}", account)
}

pub fn api_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn auth(
    State(sim): State<Sim>,
    Path(params): Path<HashMap<String, String>>,
    req: Request,
    next: Next,
) -> Response {
    let expected = format!("{}:{}", sim.config.auth_id, sim.config.auth_token);
    let given = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| STANDARD.decode(b64.trim()).ok());
    let path_ok = params.get("auth_id") == Some(&sim.config.auth_id);
    // Like Plivo, the credentials are compared in constant time.
    let credentials_ok = given.is_some_and(|g| {
        g.len() == expected.len()
            && g.iter()
                .zip(expected.as_bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !credentials_ok || !path_ok {
        return ApiError::unauthorized().into_response();
    }
    next.run(req).await
}

#[derive(serde::Deserialize)]
struct CallPath {
    call_id: String,
}

async fn create_call(State(sim): State<Sim>, body: ApiBody) -> Result<impl IntoResponse, ApiError> {
    let from = body.required("from")?;
    let to = body.required("to")?;
    let answer_url = body
        .url("answer_url")?
        .ok_or_else(|| ApiError::bad_request("answer_url parameter is missing"))?;
    let targets: Vec<&str> = to
        .split('<')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if targets.is_empty() || targets.len() > 1000 {
        return Err(ApiError::bad_request(
            "to must name 1 to 1000 destinations separated by <",
        ));
    }
    let machine_detection = body
        .str("machine_detection")
        .map(|v| v.to_ascii_lowercase())
        .filter(|v| v == "true" || v == "hangup");
    let template = CallRequest {
        from,
        to: String::new(),
        caller_name: body.str("caller_name"),
        on_answer: OnAnswer::Url(answer_url, body.method("answer_method")),
        hangup: body.target("hangup_url", "hangup_method")?,
        ring: body.target("ring_url", "ring_method")?,
        ring_timeout: body.num("ring_timeout", 120.0)?,
        machine_detection,
        machine_detection_url: body.target("machine_detection_url", "machine_detection_method")?,
        time_limit: body.num("time_limit", 14_400.0)?,
        screening: None,
    };
    let request_uuids: Vec<Value> = targets
        .iter()
        .map(|to| {
            let req = CallRequest {
                to: (*to).to_owned(),
                ..template.clone()
            };
            Value::from(outbound::place(&sim, req).info.request_uuid.clone())
        })
        .collect();
    let (message, request_uuid) = match request_uuids.as_slice() {
        [one] => ("call fired", one.clone()),
        _ => ("calls fired", Value::Array(request_uuids)),
    };
    let body = json!({ "message": message, "request_uuid": request_uuid, "api_id": api_id() });
    Ok((StatusCode::CREATED, Json(body)))
}

async fn get_call(
    State(sim): State<Sim>,
    Path(p): Path<CallPath>,
) -> Result<Json<Value>, ApiError> {
    let call = sim
        .calls
        .get(&p.call_id)
        .ok_or_else(|| ApiError::not_found(format!("call {} not found", p.call_id)))?;
    let v = call.view();
    Ok(Json(json!({
        "api_id": api_id(),
        "call_uuid": v.uuid,
        "request_uuid": v.request_uuid,
        "parent_call_uuid": v.parent_call_uuid,
        "from_number": v.from,
        "to_number": v.to,
        "call_direction": v.direction,
        "call_status": v.status,
        "answer_time": v.answer_time,
        "end_time": v.end_time,
        "call_duration": v.duration,
        "bill_duration": v.duration.div_ceil(60) * 60,
        "hangup_cause_name": v.hangup_cause,
        "hangup_source": v.hangup_source,
    })))
}

/// `legs=aleg` with `aleg_url`: the call drops what it is doing and runs the new URL's XML.
async fn transfer_call(
    State(sim): State<Sim>,
    Path(p): Path<CallPath>,
    body: ApiBody,
) -> Result<impl IntoResponse, ApiError> {
    let call = sim
        .calls
        .get(&p.call_id)
        .filter(|c| c.is_live())
        .ok_or_else(|| ApiError::not_found(format!("call {} is not in progress", p.call_id)))?;
    let legs = body.str("legs").unwrap_or_else(|| "aleg".to_owned());
    if legs == "bleg" || body.str("bleg_url").is_some() {
        return Err(ApiError::bad_request(
            "the simulator transfers only the A leg (aleg_url)",
        ));
    }
    let (url, method) = body
        .target("aleg_url", "aleg_method")?
        .ok_or_else(|| ApiError::bad_request("aleg_url parameter is missing"))?;
    let mut params = call.base_params();
    params.push(("Event".to_owned(), "Transfer".to_owned()));
    if !call.request_transfer(Start::Fetch(Fetch {
        url,
        method,
        params,
    })) {
        return Err(ApiError::not_found(format!(
            "call {} is hanging up",
            p.call_id
        )));
    }
    let body = json!({ "message": "call transfered", "api_id": api_id() });
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// Plivo's Record API: starts recording the whole call. The simulator logs it on the call; the
/// recording itself is never delivered (there is no audio to record).
async fn record_call(
    State(sim): State<Sim>,
    Path(p): Path<CallPath>,
) -> Result<impl IntoResponse, ApiError> {
    let call = sim
        .calls
        .get(&p.call_id)
        .filter(|c| c.is_live())
        .ok_or_else(|| ApiError::not_found(format!("call {} is not in progress", p.call_id)))?;
    let recording_id = uuid::Uuid::new_v4().to_string();
    let url = format!(
        "{}/recordings/{recording_id}.mp3",
        sim.config.public_url.trim_end_matches('/')
    );
    call.log_party(EventKind::RecordingStarted {
        recording_id: recording_id.clone(),
        url: url.clone(),
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "api_id": api_id(),
            "message": "call recording started",
            "recording_id": recording_id,
            "url": url,
        })),
    ))
}

async fn hangup_call(
    State(sim): State<Sim>,
    Path(p): Path<CallPath>,
) -> Result<StatusCode, ApiError> {
    let call = sim
        .calls
        .get(&p.call_id)
        .filter(|c| c.is_live())
        .ok_or_else(|| ApiError::not_found(format!("call {} is not in progress", p.call_id)))?;
    call.request_hangup(HangupInfo::new(
        "NORMAL_CLEARING",
        "API Request",
        "hung up through the API",
    ));
    Ok(StatusCode::NO_CONTENT)
}

async fn send_message(
    State(sim): State<Sim>,
    body: ApiBody,
) -> Result<impl IntoResponse, ApiError> {
    let src = body
        .str("src")
        .or_else(|| body.str("powerpack_uuid"))
        .ok_or_else(|| ApiError::bad_request("src parameter is missing"))?;
    let dst = body.required("dst")?;
    let media_urls = body.list("media_urls");
    let text = body.str("text").unwrap_or_default();
    if text.is_empty() && media_urls.is_empty() {
        return Err(ApiError::bad_request("text parameter is missing"));
    }
    let kind = match body.str("type") {
        Some(t) => t.to_ascii_lowercase(),
        None if !media_urls.is_empty() => "mms".to_owned(),
        None => "sms".to_owned(),
    };
    let callback = body
        .target("url", "method")?
        .map(|(url, method)| Callback { url, method });
    let dsts: Vec<&str> = dst
        .split('<')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    if dsts.is_empty() || dsts.len() > 1000 {
        return Err(ApiError::bad_request(
            "dst must name 1 to 1000 numbers separated by <",
        ));
    }
    let uuids: Vec<String> = dsts
        .iter()
        .map(|dst| {
            let out = Outgoing {
                src: src.clone(),
                dst: (*dst).to_owned(),
                text: text.clone(),
                kind: kind.clone(),
                media_urls: media_urls.clone(),
                callback: callback.clone(),
            };
            messages::send(&sim, out)
        })
        .collect();
    let body = json!({ "api_id": api_id(), "message": "message(s) queued", "message_uuid": uuids });
    Ok((StatusCode::ACCEPTED, Json(body)))
}

#[derive(serde::Deserialize)]
struct MessagePath {
    message_id: String,
}

async fn get_message(
    State(sim): State<Sim>,
    Path(p): Path<MessagePath>,
) -> Result<Json<Value>, ApiError> {
    let m = sim
        .messages
        .get(&p.message_id)
        .ok_or_else(|| ApiError::not_found(format!("message {} not found", p.message_id)))?;
    Ok(Json(json!({
        "api_id": api_id(),
        "message_uuid": m.message_uuid,
        "from_number": m.from,
        "to_number": m.to,
        "message_direction": m.direction,
        "message_state": m.status,
        "message_type": m.kind,
        "error_code": m.error_code,
        "units": m.units,
        "message_time": m.created_at,
    })))
}
