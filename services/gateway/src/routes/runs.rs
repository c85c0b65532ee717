//! Runs: list with filters, get with steps and context, cancel.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use phlo_store::runs::{self, Run};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Path, Query, id, plivo_time};
use crate::routes::phlos::{cursor, page_limit, parse_cursor};

fn summary(r: &Run) -> Value {
    json!({
        "run_id": r.id,
        "phlo_id": r.phlo_id,
        "revision": r.revision,
        "status": r.status,
        "trigger": r.trigger_type,
        "from": r.from_number,
        "to": r.to_number,
        "error": r.error,
        "step_count": r.steps,
        "created_on": plivo_time(r.created_at),
        "updated_on": plivo_time(r.updated_at),
        "ended_on": r.ended_at.map(plivo_time),
    })
}

#[derive(Deserialize)]
pub struct Filters {
    phlo_id: Option<String>,
    status: Option<String>,
    trigger: Option<String>,
    /// RFC 3339: runs created at or after.
    from: Option<String>,
    /// RFC 3339: runs created before.
    to: Option<String>,
    phone_number: Option<String>,
    /// Text searched in the trigger, the run's error and every step's variables.
    q: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

const STATUSES: &[&str] = &[
    "queued",
    "active",
    "completed",
    "failed",
    "cancelled",
    "timed_out",
];
const TRIGGERS: &[&str] = &["api", "call", "sms"];

pub(crate) fn one_of(
    name: &str,
    value: Option<String>,
    allowed: &[&str],
) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(ApiError::bad_request(format!(
            "{name}={v} is not valid: use one of {}",
            allowed.join(", ")
        ))),
        other => Ok(other),
    }
}

/// A query parameter that must be a UUID when present.
pub(crate) fn uuid_filter(name: &str, raw: Option<String>) -> Result<Option<Uuid>, ApiError> {
    raw.map(|raw| {
        Uuid::parse_str(&raw)
            .map_err(|_| ApiError::bad_request(format!("{name}={raw} is not a UUID")))
    })
    .transpose()
}

pub(crate) fn time(name: &str, value: Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(&v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "{name}={v} is not an RFC 3339 time such as 2026-01-02T03:04:05Z"
                    ))
                })
        })
        .transpose()
}

pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Query(f): Query<Filters>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(f.limit)?;
    let phlo_id = uuid_filter("phlo_id", f.phlo_id)?;
    let filter = runs::Filter {
        account_id: caller.account_id,
        phlo_id,
        status: one_of("status", f.status, STATUSES)?,
        trigger_type: one_of("trigger", f.trigger, TRIGGERS)?,
        created_after: time("from", f.from)?,
        created_before: time("to", f.to)?,
        phone_number: f.phone_number.filter(|p| !p.is_empty()),
        text: f.q.filter(|q| !q.is_empty()),
        before: f.cursor.as_deref().map(parse_cursor).transpose()?,
        limit,
    };
    let mut conn = state.pool.acquire().await?;
    let rows = runs::list(&mut conn, &filter).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| cursor(r.created_at, r.id)))
        .flatten();
    Ok(Json(json!({
        "api_id": Uuid::now_v7(),
        "meta": { "limit": limit, "next": next },
        "objects": rows.iter().map(summary).collect::<Vec<_>>(),
    })))
}

/// The run with its steps (node, state, variables, timing, error), tokens, context and counters.
pub async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run_id = id(&run_id, "run")?;
    Ok(Json(detail(&state, &caller, run_id, None).await?))
}

/// `GET /v1/phlo/{phlo_id}/runs/{run_id}` (the Java SDK's run getter).
pub async fn get_for_phlo(
    caller: Caller,
    State(state): State<AppState>,
    Path((phlo_id, run_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let phlo_id = id(&phlo_id, "PHLO")?;
    let run_id = id(&run_id, "run")?;
    Ok(Json(detail(&state, &caller, run_id, Some(phlo_id)).await?))
}

async fn detail(
    state: &AppState,
    caller: &Caller,
    run_id: Uuid,
    phlo_id: Option<Uuid>,
) -> Result<Value, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let run = runs::get(&mut conn, caller.account_id, run_id)
        .await?
        .filter(|r| phlo_id.is_none_or(|p| p == r.phlo_id))
        .ok_or_else(|| ApiError::not_found("run", run_id))?;
    let steps = phlo_store::steps::list(&mut conn, run_id).await?;
    let tokens = phlo_store::tokens::list(&mut conn, run_id).await?;
    let counters = phlo_store::counters::list(&mut conn, run_id).await?;
    let members = phlo_store::rooms::of_run(&mut conn, run_id).await?;
    let mut ids = json!({ "call_uuids": [], "message_uuids": [], "recording_ids": [] });
    for s in &steps {
        let v = &s.variables.0;
        let found = [
            (
                "call_uuids",
                v.pointer("/call/uuid").or_else(|| v.get("uuid")),
            ),
            (
                "message_uuids",
                v.pointer("/message/message_uuid")
                    .or_else(|| v.get("message_uuid")),
            ),
            ("recording_ids", v.get("recording_uuid")),
        ];
        for (key, value) in found {
            if let (Some(Value::String(x)), Some(Value::Array(list))) = (value, ids.get_mut(key))
                && !x.is_empty()
                && !list.contains(&json!(x))
            {
                list.push(json!(x));
            }
        }
    }
    let mut body = summary(&run);
    body["api_id"] = json!(run.id);
    body["trigger_details"] = serde_json::to_value(&run.trigger.0).unwrap_or(Value::Null);
    body["steps"] = json!(steps.iter().map(|s| json!({
        "token": s.token,
        "seq": s.seq,
        "node_id": s.node_id,
        "node_name": s.node_name,
        "node_type": s.node_type,
        "event": s.event,
        "outcome": s.outcome,
        "state": s.state,
        "variables": s.variables.0,
        "effects": s.effects.0,
        "error": s.error,
        "started_on": plivo_time(s.started_at),
        "finished_on": plivo_time(s.finished_at),
        "duration_ms": (s.finished_at - s.started_at).num_microseconds().map(|us| us as f64 / 1000.0),
    })).collect::<Vec<_>>());
    body["tokens"] = json!(tokens.iter().map(|t| json!({
        "token": t.token,
        "node_id": t.node_id,
        "status": t.status,
        "seq": t.seq,
        "waiting_for": t.wait.as_ref().map(|w| serde_json::to_value(w.0.on).unwrap_or(Value::Null)),
        "ended_reason": t.ended_reason,
    })).collect::<Vec<_>>());
    body["context"] = tokens
        .first()
        .map(|t| Value::Object(t.context.0.vars.clone()))
        .unwrap_or(Value::Null);
    body["counters"] = json!(
        counters
            .iter()
            .map(|c| json!({ "node_id": c.node_id, "scope": c.scope, "value": c.value }))
            .collect::<Vec<_>>()
    );
    body["room_members"] = json!(
        members
            .iter()
            .map(|m| json!({
                "node_id": m.node_id,
                "node_type": m.node_type,
                "room": m.room,
                "address": m.address,
                "role": m.role,
                "state": m.state,
                "member_id": m.member_id,
                "call_uuid": m.call_uuid,
            }))
            .collect::<Vec<_>>()
    );
    if let Some(map) = body.as_object_mut() {
        map.extend(ids.as_object().cloned().unwrap_or_default());
    }
    Ok(body)
}

pub async fn cancel(
    caller: Caller,
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run_id = id(&run_id, "run")?;
    match state.runtime.cancel_run(caller.account_id, run_id).await? {
        None => Err(ApiError::not_found("run", run_id)),
        Some(cancelled) => {
            let mut conn = state.pool.acquire().await?;
            let status = runs::get(&mut conn, caller.account_id, run_id)
                .await?
                .map(|r| r.status);
            Ok(Json(
                json!({ "api_id": Uuid::now_v7(), "run_id": run_id, "cancelled": cancelled, "status": status }),
            ))
        }
    }
}
