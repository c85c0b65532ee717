//! The PHLO runner routes Plivo's SDKs call: run a PHLO, and get one of its nodes.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use phlo_flow::Trigger;
use phlo_runtime::{StartError, StartRequest, Started};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path, Query, id, plivo_time};
use crate::limits::Budget;
use crate::routes::phlos::find;

/// `POST /v1/account/{auth_id}/phlo/{phlo_id}`: starts a run with the payload as `Start.http.params`.
/// The body may be missing, `{}`, `""` (Node SDK) or an object; query parameters count too (.NET SDK).
pub async fn run(
    caller: Caller,
    State(state): State<AppState>,
    Path((auth_id, phlo_id)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    body: JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if auth_id != caller.auth_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the auth_id in the path ({auth_id}) is not the one you authenticated as"),
        ));
    }
    let phlo_id = id(&phlo_id, "PHLO")?;
    state
        .limits
        .acquire(&state.pool, caller.account_id, Budget::Runs)
        .await?;
    let mut params: serde_json::Map<String, Value> = query
        .into_iter()
        .filter(|(k, _)| k != "phlo_id")
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    params.extend(body.object("the run payload")?);
    let request = StartRequest {
        account_id: caller.account_id,
        phlo_id,
        trigger: Trigger::Api {
            request_uuid: String::new(),
            params,
        },
    };
    let Started { run_id, queued } = match state.runtime.start(request).await {
        Ok(started) => started,
        Err(StartError::PhloNotFound(id)) => return Err(ApiError::not_found("PHLO", id)),
        Err(StartError::Runtime(e)) => return Err(e.into()),
    };
    // A queued run is accepted as durably as a started one (Plivo's SDKs only read `phlo_run_id`);
    // `status` and the message say that it waits for one of the account's active runs to end.
    let (status, message) = if queued {
        (
            "queued",
            format!(
                "PHLO run queued with phlo_run_id {run_id}: the account has as many runs active as it may; it starts when one of them ends"
            ),
        )
    } else {
        (
            "active",
            format!("PHLO run started with phlo_run_id {run_id}"),
        )
    };
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "api_id": run_id,
            "phlo_id": phlo_id,
            "phlo_run_id": run_id,
            "status": status,
            "message": message,
        })),
    ))
}

/// `GET /v1/phlo/{phlo_id}/{node_type}/{node_id}` (`multi_party_call`, `conference_bridge`, ...).
pub async fn node(
    caller: Caller,
    State(state): State<AppState>,
    Path((phlo_id, node_type, node_id)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let phlo = find(&state, &caller, &phlo_id).await?;
    let compiled = state
        .runtime
        .phlo(phlo.id, phlo.revision)
        .await?
        .ok_or_else(|| ApiError::not_found("PHLO", phlo.id))?;
    let node = id(&node_id, "node")
        .ok()
        .and_then(|n| compiled.node(phlo_flow::NodeId(n)))
        .filter(|n| n.kind().as_str() == node_type)
        .ok_or_else(|| ApiError::not_found(&format!("{node_type} node"), &node_id))?;
    Ok(Json(json!({
        "api_id": Uuid::now_v7(),
        "node_id": node.id,
        "phlo_id": phlo.id,
        "name": node.name,
        "node_type": node_type,
        "created_on": plivo_time(phlo.updated_at),
    })))
}
