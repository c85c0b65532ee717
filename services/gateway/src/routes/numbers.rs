//! Phone numbers attached to PHLOs: incoming calls and SMS to a number start its PHLO.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path, id, plivo_time};

fn view(n: &phlo_store::numbers::Number) -> Value {
    json!({ "number": n.number, "phlo_id": n.phlo_id, "created_on": plivo_time(n.created_at) })
}

/// `PUT /v1/numbers/{number}` with `{"phlo_id": ...}`.
pub async fn attach(
    caller: Caller,
    State(state): State<AppState>,
    Path(number): Path<String>,
    body: JsonBody,
) -> Result<Json<Value>, ApiError> {
    phlo_flow::phone::check_address(&number).map_err(ApiError::bad_request)?;
    // Clients disagree on whether a `%` in a path is already an escape, so the number one sent and the
    // number attached could differ.
    if number.contains('%') {
        return Err(ApiError::bad_request(format!(
            "`{number}`: a number in the path cannot hold %-escapes; attach sip:user@host with plain characters"
        )));
    }
    let body = body.object("the number")?;
    let raw = body.get("phlo_id").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad_request("send {\"phlo_id\": \"...\"}: the PHLO this number starts")
    })?;
    let phlo_id = id(raw, "PHLO")?;
    let mut conn = state.pool.acquire().await?;
    if phlo_store::phlos::get(&mut conn, caller.account_id, phlo_id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("PHLO", phlo_id));
    }
    let attached = phlo_store::numbers::attach(&mut conn, &number, caller.account_id, phlo_id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                format!("{number} is attached by another account"),
            )
        })?;
    let mut body = view(&attached);
    body["api_id"] = json!(Uuid::now_v7());
    Ok(Json(body))
}

pub async fn list(caller: Caller, State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let rows = phlo_store::numbers::list(&mut conn, caller.account_id).await?;
    Ok(Json(
        json!({ "api_id": Uuid::now_v7(), "objects": rows.iter().map(view).collect::<Vec<_>>() }),
    ))
}

pub async fn detach(
    caller: Caller,
    State(state): State<AppState>,
    Path(number): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    if !phlo_store::numbers::detach(&mut conn, &number, caller.account_id).await? {
        return Err(ApiError::not_found("number", &number));
    }
    Ok(Json(
        json!({ "api_id": Uuid::now_v7(), "number": number, "detached": true }),
    ))
}
