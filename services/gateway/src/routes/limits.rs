//! `GET`/`PUT /v1/accounts/{auth_id}/limits`: the operator reads and sets an account's own fair-use
//! limits (its API and new-run rates, its cap of active runs); a field left out or `null` uses the
//! gateway's default.

use axum::Json;
use axum::extract::State;
use phlo_store::limits::{AccountLimits, Stored};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::extract::{JsonBody, Path, plivo_time};

/// The largest value any limit may take: beyond it a limit means nothing, and it keeps the
/// arithmetic of the rate limiter far from overflow.
const MAX: f64 = 1_000_000.0;

pub async fn get(
    _: Admin,
    State(state): State<AppState>,
    Path(auth_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let stored = phlo_store::limits::get_by_auth_id(&mut conn, &auth_id)
        .await?
        .ok_or_else(|| ApiError::not_found("account", &auth_id))?;
    Ok(Json(body(&state, &auth_id, &stored)))
}

pub async fn set(
    _: Admin,
    State(state): State<AppState>,
    Path(auth_id): Path<String>,
    body_in: JsonBody,
) -> Result<Json<Value>, ApiError> {
    let fields = body_in.object("the account's limits")?;
    let limits = parse(&fields)?;
    let mut tx = state.pool.begin().await?;
    let account_id = phlo_store::limits::set_by_auth_id(&mut tx, &auth_id, &limits)
        .await?
        .ok_or_else(|| ApiError::not_found("account", &auth_id))?;
    let stored = phlo_store::limits::get_by_auth_id(&mut tx, &auth_id)
        .await?
        .ok_or_else(|| ApiError::not_found("account", &auth_id))?;
    tx.commit().await?;
    state.limits.forget_overrides(account_id);
    // A higher cap frees slots at once: the workers' reconciler admits the queued runs it allows.
    Ok(Json(body(&state, &auth_id, &stored)))
}

fn parse(fields: &Map<String, Value>) -> Result<AccountLimits, ApiError> {
    const KNOWN: [&str; 5] = [
        "api_per_sec",
        "api_burst",
        "runs_per_sec",
        "runs_burst",
        "max_active_runs",
    ];
    if let Some(key) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "`{key}` is not a limit; the limits are {}",
            KNOWN.join(", ")
        )));
    }
    let rate = |key: &str| -> Result<Option<f64>, ApiError> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(n) if (0.0..=MAX).contains(&n) => Ok(Some(n)),
                _ => Err(ApiError::bad_request(format!(
                    "`{key}` must be a number from 0 (unlimited) to {MAX}, or null for the default; found {v}"
                ))),
            },
        }
    };
    let count = |key: &str| -> Result<Option<i32>, ApiError> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if (1..=MAX as i64).contains(&n) => Ok(i32::try_from(n).ok()),
                _ => Err(ApiError::bad_request(format!(
                    "`{key}` must be a whole number from 1 to {MAX}, or null for the default; found {v}"
                ))),
            },
        }
    };
    Ok(AccountLimits {
        api_per_sec: rate("api_per_sec")?,
        api_burst: count("api_burst")?,
        runs_per_sec: rate("runs_per_sec")?,
        runs_burst: count("runs_burst")?,
        max_active_runs: count("max_active_runs")?,
    })
}

/// The account's overrides as set, and the limits in force (overrides over the gateway's defaults).
fn body(state: &AppState, auth_id: &str, stored: &Stored) -> Value {
    let limits = &stored.limits;
    let defaults = state.limits.defaults();
    json!({
        "api_id": Uuid::now_v7(),
        "auth_id": auth_id,
        "overrides": {
            "api_per_sec": limits.api_per_sec,
            "api_burst": limits.api_burst,
            "runs_per_sec": limits.runs_per_sec,
            "runs_burst": limits.runs_burst,
            "max_active_runs": limits.max_active_runs,
        },
        "effective": {
            "api_per_sec": limits.api_per_sec.unwrap_or(defaults.api.per_sec),
            "api_burst": limits.api_burst.map_or(i64::from(defaults.api.burst), i64::from),
            "runs_per_sec": limits.runs_per_sec.unwrap_or(defaults.runs.per_sec),
            "runs_burst": limits.runs_burst.map_or(i64::from(defaults.runs.burst), i64::from),
            "max_active_runs": limits.max_active_runs.map_or(state.config.max_active_runs, i64::from),
        },
        "updated_on": stored.updated_at.map(plivo_time),
    })
}
