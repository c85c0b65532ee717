//! PHLO definitions: create, list, get (with the definition), update (a new immutable revision),
//! revisions, roll back, and validate without saving.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use phlo_flow::{Problem, Severity};
use phlo_store::phlos::{self, Phlo};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path, Query, id, plivo_time};

/// Checks a definition; on errors, a 400 whose body lists every problem with its node and field.
fn checked(definition: &Value) -> Result<(String, Vec<Problem>), ApiError> {
    match phlo_flow::compile(definition) {
        Ok((phlo, warnings)) => Ok((phlo.name, warnings)),
        Err(problems) => {
            let errors = problems
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .count();
            let first = problems
                .iter()
                .find(|p| p.severity == Severity::Error)
                .map(ToString::to_string)
                .unwrap_or_default();
            Err(ApiError::bad_request(format!(
                "the PHLO definition has {errors} error(s); the first: {first}"
            ))
            .with("problems", json!(problems)))
        }
    }
}

pub(crate) fn view(p: &Phlo) -> Value {
    json!({
        "phlo_id": p.id,
        "name": p.name,
        "created_on": plivo_time(p.created_at),
        "updated_on": plivo_time(p.updated_at),
        "revision": p.revision,
        "latest_revision": p.latest_revision,
    })
}

pub(crate) async fn find(
    state: &AppState,
    caller: &Caller,
    raw_id: &str,
) -> Result<Phlo, ApiError> {
    let phlo_id = id(raw_id, "PHLO")?;
    let mut conn = state.pool.acquire().await?;
    phlos::get(&mut conn, caller.account_id, phlo_id)
        .await?
        .ok_or_else(|| ApiError::not_found("PHLO", phlo_id))
}

pub async fn create(
    caller: Caller,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let definition = body.required("a PHLO definition")?;
    let (name, warnings) = checked(&definition)?;
    let mut tx = state.pool.begin().await?;
    let phlo = phlos::create(
        &mut tx,
        Uuid::now_v7(),
        caller.account_id,
        &name,
        &definition,
    )
    .await?;
    tx.commit().await?;
    let mut body = view(&phlo);
    body["api_id"] = json!(Uuid::now_v7());
    body["warnings"] = json!(warnings);
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn validate(_: Caller, body: JsonBody) -> Result<Json<Value>, ApiError> {
    let definition = body.required("a PHLO definition")?;
    let problems = phlo_flow::validate(&definition);
    let valid = !problems.iter().any(|p| p.severity == Severity::Error);
    Ok(Json(
        json!({ "api_id": Uuid::now_v7(), "valid": valid, "problems": problems }),
    ))
}

/// Plivo's `GET /v1/phlo/{phlo_id}` (`api_id, phlo_id, name, created_on`), plus the current definition.
pub async fn get(
    caller: Caller,
    State(state): State<AppState>,
    Path(phlo_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let phlo = find(&state, &caller, &phlo_id).await?;
    let mut conn = state.pool.acquire().await?;
    let revision = phlos::revision(&mut conn, phlo.id, phlo.revision).await?;
    let mut body = view(&phlo);
    body["api_id"] = json!(Uuid::now_v7());
    body["definition"] = revision.map(|r| r.definition.0).unwrap_or(Value::Null);
    Ok(Json(body))
}

pub async fn update(
    caller: Caller,
    State(state): State<AppState>,
    Path(phlo_id): Path<String>,
    body: JsonBody,
) -> Result<Json<Value>, ApiError> {
    let definition = body.required("a PHLO definition")?;
    let existing = find(&state, &caller, &phlo_id).await?;
    let (name, warnings) = checked(&definition)?;
    let mut tx = state.pool.begin().await?;
    let phlo = phlos::update(&mut tx, caller.account_id, existing.id, &name, &definition)
        .await?
        .ok_or_else(|| ApiError::not_found("PHLO", existing.id))?;
    tx.commit().await?;
    let mut body = view(&phlo);
    body["api_id"] = json!(Uuid::now_v7());
    body["warnings"] = json!(warnings);
    Ok(Json(body))
}

pub async fn revisions(
    caller: Caller,
    State(state): State<AppState>,
    Path(phlo_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let phlo = find(&state, &caller, &phlo_id).await?;
    let mut conn = state.pool.acquire().await?;
    let list = phlos::revisions(&mut conn, phlo.id).await?;
    let objects: Vec<Value> = list
        .iter()
        .map(|r| json!({ "revision": r.revision, "created_on": plivo_time(r.created_at), "current": r.revision == phlo.revision }))
        .collect();
    Ok(Json(
        json!({ "api_id": Uuid::now_v7(), "phlo_id": phlo.id, "objects": objects }),
    ))
}

pub async fn revision(
    caller: Caller,
    State(state): State<AppState>,
    Path((phlo_id, revision)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let phlo = find(&state, &caller, &phlo_id).await?;
    let number: i32 = revision
        .parse()
        .map_err(|_| ApiError::not_found("revision", &revision))?;
    let mut conn = state.pool.acquire().await?;
    let r = phlos::revision(&mut conn, phlo.id, number)
        .await?
        .ok_or_else(|| ApiError::not_found("revision", number))?;
    Ok(Json(json!({
        "api_id": Uuid::now_v7(),
        "phlo_id": phlo.id,
        "revision": r.revision,
        "current": r.revision == phlo.revision,
        "created_on": plivo_time(r.created_at),
        "definition": r.definition.0,
    })))
}

pub async fn rollback(
    caller: Caller,
    State(state): State<AppState>,
    Path(phlo_id): Path<String>,
    body: JsonBody,
) -> Result<Json<Value>, ApiError> {
    let phlo = find(&state, &caller, &phlo_id).await?;
    let body = body.object("the rollback request")?;
    let revision = body
        .get("revision")
        .and_then(Value::as_i64)
        .and_then(|n| i32::try_from(n).ok())
        .ok_or_else(|| {
            ApiError::bad_request("send {\"revision\": N} with the revision to make current")
        })?;
    let mut tx = state.pool.begin().await?;
    let stored = phlos::revision(&mut tx, phlo.id, revision)
        .await?
        .ok_or_else(|| ApiError::not_found("revision", revision))?;
    let name = stored
        .definition
        .0
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(&phlo.name)
        .to_owned();
    let updated = phlos::set_revision(&mut tx, caller.account_id, phlo.id, revision, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("revision", revision))?;
    tx.commit().await?;
    let mut body = view(&updated);
    body["api_id"] = json!(Uuid::now_v7());
    Ok(Json(body))
}

#[derive(Deserialize)]
pub struct Page {
    limit: Option<i64>,
    /// The `next` cursor of the previous page.
    cursor: Option<String>,
}

pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(page.limit)?;
    let before = page.cursor.as_deref().map(parse_cursor).transpose()?;
    let mut conn = state.pool.acquire().await?;
    let rows = phlos::list(&mut conn, caller.account_id, limit, before).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|p| cursor(p.created_at, p.id)))
        .flatten();
    Ok(Json(json!({
        "api_id": Uuid::now_v7(),
        "meta": { "limit": limit, "next": next },
        "objects": rows.iter().map(view).collect::<Vec<_>>(),
    })))
}

pub(crate) fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(20),
        Some(n) if (1..=100).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit={n} is out of range: use 1 to 100"
        ))),
    }
}

/// Keyset cursor: `<microseconds since epoch>_<uuid>` of the last row of a page.
pub(crate) fn cursor(at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}_{id}", at.timestamp_micros())
}

pub(crate) fn parse_cursor(raw: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "cursor `{raw}` is not one this API returned: pass meta.next as is"
        ))
    };
    let (micros, id) = raw.split_once('_').ok_or_else(bad)?;
    let at = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(bad)?;
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}
