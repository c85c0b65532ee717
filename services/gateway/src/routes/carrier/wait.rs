//! Answering the carrier with the call's next XML: wait for a newer instruction than the one the call
//! had, within the carrier's patience; past it, keep the call alive with Wait + Redirect to `continue`.

use std::time::Duration;

use phlo_bus::StepMessage;
use phlo_runtime::voice::hangup_xml;
use tokio::time::Instant;

use crate::AppState;
use crate::error::ApiError;

/// How many keep-alive rounds a call gets before the runner gives up on it and hangs up: a token that
/// never produces XML (its event was stale, its run is stuck) must not hold a call forever.
const MAX_KEEP_ALIVE_ROUNDS: u32 = 60;
/// Seconds the carrier waits before asking again.
const KEEP_ALIVE_SECS: u32 = 2;

/// The call's current instruction version (0 when it has none yet).
pub async fn version(state: &AppState, call_uuid: &str) -> Result<i64, ApiError> {
    let mut conn = state.pool.acquire().await?;
    Ok(phlo_store::calls::instruction(&mut conn, call_uuid)
        .await?
        .map_or(0, |i| i.version))
}

/// Runs `act` (which makes the run produce the call's next XML), then waits for that XML.
pub async fn after<F>(state: &AppState, call_uuid: &str, act: F) -> Result<String, ApiError>
where
    F: std::future::Future<Output = Result<(), ApiError>>,
{
    let seen = version(state, call_uuid).await?;
    after_seen(state, call_uuid, seen, act).await
}

/// [`after`] for a webhook of the wait `(run_id, token, wait_id)`, which the call's XML came from.
pub async fn after_wait<F>(
    state: &AppState,
    call_uuid: &str,
    wait: (uuid::Uuid, i32, i32),
    act: F,
) -> Result<String, ApiError>
where
    F: std::future::Future<Output = Result<(), ApiError>>,
{
    let seen = seen_by(state, call_uuid, wait, false).await?;
    after_seen(state, call_uuid, seen, act).await
}

/// The instruction version the call ran when the wait `(run_id, token, wait_id)` sent its webhook:
/// the answer is the first XML newer than it. That is the wait's own XML, unless the call already
/// has XML the wait did not write: of the same token's later wait (it moved on meanwhile; waiting past
/// that XML would keep the call on hold forever), or any when `moved_on` (the wait is gone) — then
/// that XML is the answer, at once.
pub async fn seen_by(
    state: &AppState,
    call_uuid: &str,
    (run_id, token, wait_id): (uuid::Uuid, i32, i32),
    moved_on: bool,
) -> Result<i64, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let current = phlo_store::calls::instruction(&mut conn, call_uuid).await?;
    Ok(match current {
        Some(i) if (i.run_id, i.token, i.wait_id) == (run_id, token, Some(wait_id)) => i.version,
        Some(i)
            if moved_on
                || ((i.run_id, i.token) == (run_id, token)
                    && i.wait_id.is_some_and(|w| w > wait_id)) =>
        {
            i.version - 1
        }
        Some(i) => i.version,
        None => 0,
    })
}

async fn after_seen<F>(
    state: &AppState,
    call_uuid: &str,
    seen: i64,
    act: F,
) -> Result<String, ApiError>
where
    F: std::future::Future<Output = Result<(), ApiError>>,
{
    // Subscribe before acting, so the announcement cannot slip between the act and the wait.
    let subscription = state
        .runtime
        .bus()
        .subscribe(&state.runtime.bus().call_subject(call_uuid))
        .await
        .ok();
    act.await?;
    next_xml(state, call_uuid, seen, subscription, 0).await
}

/// The first instruction newer than `seen`, or a keep-alive when it takes longer than the patience.
pub async fn next_xml(
    state: &AppState,
    call_uuid: &str,
    seen: i64,
    mut subscription: Option<phlo_bus::Subscription>,
    round: u32,
) -> Result<String, ApiError> {
    let deadline = Instant::now() + state.config.voice_patience;
    loop {
        let mut conn = state.pool.acquire().await?;
        if let Some(i) = phlo_store::calls::instruction(&mut conn, call_uuid).await?
            && i.version > seen
        {
            return Ok(i.xml);
        }
        drop(conn);
        if Instant::now() >= deadline {
            if round >= MAX_KEEP_ALIVE_ROUNDS {
                tracing::warn!(
                    call_uuid,
                    "no XML for the call after {round} keep-alive rounds; hanging up"
                );
                return Ok(hangup_xml());
            }
            let url = format!(
                "{}/v1/carrier/voice/continue/{call_uuid}?after={seen}&round={}",
                state.config.public_url.trim_end_matches('/'),
                round + 1
            );
            return Ok(phlo_carrier::voice::keep_alive(&url, KEEP_ALIVE_SECS).render());
        }
        let tick = Duration::from_millis(200);
        match subscription.as_mut() {
            Some(sub) => {
                let _ = tokio::time::timeout(tick, sub.next()).await;
            }
            None => tokio::time::sleep(tick).await,
        }
    }
}

/// Publishes an event for a parked token.
pub async fn resume(state: &AppState, msg: StepMessage) -> Result<(), ApiError> {
    let bus = state.runtime.bus();
    let subject = bus.subject(phlo_bus::Queue::Step);
    bus.publish(
        &subject,
        &msg.msg_id(),
        msg.to_bytes(),
        phlo_bus::trace::current_headers(),
    )
    .await
    .map_err(|e| {
        tracing::warn!(error = %e, "could not publish a carrier event");
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "the runner is unavailable; retry the webhook",
        )
    })?;
    Ok(())
}
