//! Counters of a PHLO's Counter nodes with scope `phlo` (run-scoped counts are on the run): read, reset.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Path, id, plivo_time};
use crate::routes::phlos::find;

pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Path(phlo_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let phlo = find(&state, &caller, &phlo_id).await?;
    let compiled = state.runtime.phlo(phlo.id, phlo.revision).await?;
    let mut conn = state.pool.acquire().await?;
    let rows = phlo_store::counters::list(&mut conn, phlo.id).await?;
    let objects: Vec<Value> = rows
        .iter()
        .map(|c| {
            let name = compiled.as_ref().and_then(|p| p.node(phlo_flow::NodeId(c.node_id))).map(|n| n.name.clone());
            json!({ "node_id": c.node_id, "node_name": name, "scope": c.scope, "value": c.value, "updated_on": plivo_time(c.updated_at) })
        })
        .collect();
    Ok(Json(
        json!({ "api_id": Uuid::now_v7(), "phlo_id": phlo.id, "objects": objects }),
    ))
}

pub async fn reset(
    caller: Caller,
    State(state): State<AppState>,
    Path((phlo_id, node_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let phlo = find(&state, &caller, &phlo_id).await?;
    let node_id = id(&node_id, "counter")?;
    let mut conn = state.pool.acquire().await?;
    let n = phlo_store::counters::reset(&mut conn, phlo.id, Some(node_id)).await?;
    Ok(Json(
        json!({ "api_id": Uuid::now_v7(), "phlo_id": phlo.id, "reset": n }),
    ))
}

pub async fn reset_all(
    caller: Caller,
    State(state): State<AppState>,
    Path(phlo_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let phlo = find(&state, &caller, &phlo_id).await?;
    let mut conn = state.pool.acquire().await?;
    let n = phlo_store::counters::reset(&mut conn, phlo.id, None).await?;
    Ok(Json(
        json!({ "api_id": Uuid::now_v7(), "phlo_id": phlo.id, "reset": n }),
    ))
}
