//! SMS webhooks: an inbound message starts the number's PHLO; delivery reports resume Send SMS.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use phlo_bus::StepMessage;
use phlo_flow::{Event, Trigger};
use phlo_runtime::{StartError, StartRequest};
use uuid::Uuid;

use super::Webhook;
use super::events;
use super::wait::resume;
use crate::AppState;
use crate::error::ApiError;

pub async fn inbound(State(state): State<AppState>, hook: Webhook) -> Result<Response, ApiError> {
    let mut message = events::inbound_message(&hook.params);
    // Plivo's inbound message webhook carries no time; the seed's `message.time` is when the message was
    // received, which is now. Same format as the carrier's `MessageTime` (UTC).
    if message.time.is_none() {
        message.time = Some(chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string());
    }
    let mut conn = state.pool.acquire().await?;
    let Some(route) = phlo_store::numbers::route(&mut conn, &message.to).await? else {
        tracing::info!(to = %message.to, "incoming SMS to a number no PHLO answers; ignored");
        return Ok(StatusCode::OK.into_response());
    };
    drop(conn);
    let request = StartRequest {
        account_id: route.account_id,
        phlo_id: route.phlo_id,
        trigger: Trigger::Message(message),
    };
    match state.runtime.start_run(request).await {
        Ok(_) | Err(StartError::PhloNotFound(_)) => Ok(StatusCode::OK.into_response()),
        Err(StartError::Runtime(e)) => Err(e.into()),
    }
}

pub async fn status(
    State(state): State<AppState>,
    Path((run_id, token, wait_id, recipient)): Path<(Uuid, i32, i32, usize)>,
    hook: Webhook,
) -> Result<Response, ApiError> {
    let event = Event::Sms(events::sms_report(&hook.params, recipient));
    resume(
        &state,
        StepMessage::Resume {
            run_id,
            token,
            wait_id,
            event,
        },
    )
    .await?;
    Ok(StatusCode::OK.into_response())
}
