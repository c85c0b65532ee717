//! Event callbacks: a run's delivery log, the account's deliveries across runs (newest first, or
//! tailed with a cursor), redelivery of a dead or failed delivery, and the account's webhook signing
//! secret (show, rotate).

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use phlo_store::callbacks::{
    self, AccountFilter, Attempt, ChangePage, ChangePosition, Delivery, Redeliver, Secrets,
};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{Path, Query, id, plivo_time};
use crate::routes::phlos::page_limit;
use crate::routes::runs::{one_of, time, uuid_filter};

fn attempt(a: &Attempt, delivery: &Delivery) -> Value {
    // An attempt still `in_progress` without a live lease belongs to a process that died; the next
    // attempt will record it as interrupted.
    let live = delivery.lease_until.is_some_and(|t| t > Utc::now());
    let outcome = if a.outcome == "in_progress" && !live {
        "interrupted"
    } else {
        a.outcome.as_str()
    };
    json!({
        "attempt": a.attempt,
        "attempted_on": plivo_time(a.at),
        "outcome": outcome,
        "status_code": a.status_code,
        "latency_ms": a.latency_ms,
        "error": a.error,
        "response": a.response,
    })
}

fn delivery(d: &Delivery, attempts: &[Attempt]) -> Value {
    json!({
        "delivery_id": d.id,
        "webhook_id": d.id,
        "run_id": d.run_id,
        "phlo_id": d.phlo_id,
        "node_id": d.node_id,
        "node_name": d.node_name,
        "node_type": d.node_type,
        "event": d.event,
        "url": d.url,
        "method": d.method,
        "status": d.status,
        "attempt_count": d.attempts,
        "redeliveries": d.redeliveries,
        "next_attempt_on": d.next_attempt_at.filter(|_| d.status == "pending").map(plivo_time),
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "created_on": plivo_time(d.created_at),
        "updated_on": plivo_time(d.updated_at),
        "delivered_on": d.delivered_at.map(plivo_time),
        "payload": callbacks::payload_value(d),
        "attempts": attempts.iter().map(|a| attempt(a, d)).collect::<Vec<_>>(),
    })
}

/// `GET /v1/runs/{run_id}/callbacks`: every delivery of the run, oldest first, with every attempt.
pub async fn list_for_run(
    caller: Caller,
    State(state): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run_id = id(&run_id, "run")?;
    let mut conn = state.pool.acquire().await?;
    if phlo_store::runs::get(&mut conn, caller.account_id, run_id)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("run", run_id));
    }
    let rows = callbacks::list_for_run(&mut conn, caller.account_id, run_id).await?;
    Ok(Json(json!({
        "api_id": Uuid::now_v7(),
        "run_id": run_id,
        "objects": rows.iter().map(|(d, a)| delivery(d, a)).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
pub struct Filters {
    phlo_id: Option<String>,
    run_id: Option<String>,
    status: Option<String>,
    /// RFC 3339: deliveries that changed at or after.
    since: Option<String>,
    /// `meta.next` of the previous newest-first page.
    cursor: Option<String>,
    /// `meta.after` of the previous listing (or `0`): the changes after it, oldest first.
    after: Option<String>,
    limit: Option<i64>,
}

const DELIVERY_STATUSES: &[&str] = &["pending", "delivered", "failed", "dead"];

/// A place in the order deliveries changed in, as `<transaction id>_<delivery id>`: the same shape as
/// the other listings' cursors, and as opaque to clients.
fn position_text(p: ChangePosition) -> String {
    format!("{}_{}", p.xid, p.id)
}

fn parse_position(name: &str, raw: &str, from: &str) -> Result<ChangePosition, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "{name}={raw} is not a position this API returned: pass {from} as is"
        ))
    };
    let (xid, id) = raw.split_once('_').ok_or_else(bad)?;
    Ok(ChangePosition {
        xid: xid.parse().map_err(|_| bad())?,
        id: Uuid::parse_str(id).map_err(|_| bad())?,
    })
}

/// `GET /v1/callbacks`: the account's deliveries across runs, each with every attempt, in the order they
/// last changed (created, attempted, finished, redelivered).
///
/// Without `after`: the most recently changed first, paged back with `cursor`. With `after`: the
/// changes after that position, oldest first, for tailing; `meta.after` is where to resume. Positions
/// are the id of the transaction that last wrote the delivery (then the delivery's id), and a listing
/// only shows changes of transactions older than every one still running: a transaction that took its
/// id earlier but commits later cannot land behind a cursor a client already holds, as it could with
/// `updated_at` or a sequence (both taken before commit). See migration 0009.
pub async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Query(f): Query<Filters>,
) -> Result<Json<Value>, ApiError> {
    let limit = page_limit(f.limit)?;
    let page = match (f.cursor.as_deref(), f.after.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "cursor and after cannot be used together: cursor pages back through the newest \
                 deliveries, after tails the changes after a position",
            ));
        }
        (None, Some("0")) => ChangePage::After(ChangePosition {
            xid: 0,
            id: Uuid::nil(),
        }),
        (None, Some(after)) => ChangePage::After(parse_position(
            "after",
            after,
            "meta.after, or 0 for the start",
        )?),
        (Some(cursor), None) => ChangePage::Newest {
            before: Some(parse_position("cursor", cursor, "meta.next")?),
        },
        (None, None) => ChangePage::Newest { before: None },
    };
    let filter = AccountFilter {
        account_id: caller.account_id,
        phlo_id: uuid_filter("phlo_id", f.phlo_id)?,
        run_id: uuid_filter("run_id", f.run_id)?,
        status: one_of("status", f.status, DELIVERY_STATUSES)?,
        changed_since: time("since", f.since)?,
        page,
        limit,
    };
    let mut conn = state.pool.acquire().await?;
    let listing = callbacks::list_for_account(&mut conn, &filter).await?;
    let full = listing.deliveries.len() as i64 == limit;
    let last = listing.deliveries.last().map(|d| d.position);
    let (next, after) = match page {
        ChangePage::Newest { .. } => (
            full.then_some(last).flatten().map(position_text),
            listing.horizon,
        ),
        // A short page saw every change below the horizon; a full one may have left some behind
        // its last. A client's own `after` is never moved back.
        ChangePage::After(from) => (
            None,
            match last {
                Some(last) if full => last,
                _ => listing.horizon.max(from),
            },
        ),
    };
    Ok(Json(json!({
        "api_id": Uuid::now_v7(),
        "meta": { "limit": limit, "next": next, "after": position_text(after) },
        "objects": listing
            .deliveries
            .iter()
            .map(|d| delivery(&d.delivery, &d.attempts))
            .collect::<Vec<_>>(),
    })))
}

/// `POST /v1/callbacks/{delivery_id}/redeliver`: a dead or failed delivery goes out again, with the same
/// `webhook-id` and a fresh retry schedule.
pub async fn redeliver(
    caller: Caller,
    State(state): State<AppState>,
    Path(delivery_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let delivery_id = id(&delivery_id, "callback delivery")?;
    match state
        .runtime
        .redeliver_callback(caller.account_id, delivery_id)
        .await?
    {
        Redeliver::Missing => Err(ApiError::not_found("callback delivery", delivery_id)),
        // The request is well-formed; the delivery's state is what refuses it.
        Redeliver::NotRedeliverable(status) => Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            format!(
                "callback delivery {delivery_id} is {status}: only a dead or failed delivery can be redelivered"
            ),
        )),
        Redeliver::Queued { redeliveries } => Ok(Json(json!({
            "api_id": Uuid::now_v7(),
            "delivery_id": delivery_id,
            "webhook_id": delivery_id,
            "status": "pending",
            "redeliveries": redeliveries,
            "message": "queued for redelivery",
        }))),
    }
}

fn secret_body(s: &Secrets) -> Value {
    json!({
        "api_id": Uuid::now_v7(),
        "webhook_secret": s.current,
        "previous_webhook_secret": s.previous,
        "previous_valid_until": s.previous_until.map(plivo_time),
        "rotated_on": s.rotated_at.map(plivo_time),
    })
}

/// `GET /v1/account/webhook-secret`: the secret callbacks are signed with (created now if the account
/// predates callbacks), and the previous one while it still signs after a rotation.
pub async fn secret(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let keys = &state.config.secret_keys;
    let found = match callbacks::secrets(&mut conn, keys, caller.account_id).await? {
        Some(Secrets { current: None, .. }) | None => {
            let fresh = phlo_runtime::callbacks::new_secret();
            callbacks::ensure_secret(&mut conn, keys, caller.account_id, &fresh).await?
        }
        found => found,
    };
    let secrets = found.ok_or_else(|| ApiError::internal("the caller's account vanished"))?;
    Ok(Json(secret_body(&secrets)))
}

/// `POST /v1/account/webhook-secret/rotate`: a new secret; the old one keeps signing (a second
/// signature) for `PHLO_WEBHOOK_SECRET_GRACE_SECS`.
pub async fn rotate_secret(
    caller: Caller,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let fresh = phlo_runtime::callbacks::new_secret();
    let grace = state.config.webhook_secret_grace.as_secs_f64();
    let keys = &state.config.secret_keys;
    let secrets = callbacks::rotate_secret(&mut conn, keys, caller.account_id, &fresh, grace)
        .await?
        .ok_or_else(|| ApiError::internal("the caller's account vanished"))?;
    Ok(Json(secret_body(&secrets)))
}
