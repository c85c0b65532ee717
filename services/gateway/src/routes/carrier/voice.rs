//! Voice webhooks: answer, action URLs of the waiting node, outbound legs, hangups.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use phlo_bus::StepMessage;
use phlo_carrier::voice::{dial_attempt, next_dial, screening_xml, voice_xml, wait_music_xml};
use phlo_flow::effect::VoiceAction;
use phlo_flow::event::{CallOutcome, CallResult, ConferenceEvent, Recording};
use phlo_flow::{Event, Trigger, WaitOn};
use phlo_runtime::voice::{action_urls, hangup_xml};
use phlo_runtime::{StartError, StartRequest};
use uuid::Uuid;

use super::events::{self, Params};
use super::wait::{after, after_wait, next_xml, resume, seen_by};
use super::{Webhook, xml};
use crate::AppState;
use crate::error::ApiError;

fn call_uuid(p: &Params) -> Result<String, ApiError> {
    p.get("CallUUID")
        .filter(|c| !c.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad_request("CallUUID is missing"))
}

fn rejected() -> String {
    phlo_carrier::xml::Response::new(vec![phlo_carrier::xml::Element::Hangup(
        phlo_carrier::xml::Hangup {
            reason: Some(phlo_carrier::xml::HangupReason::Rejected),
            ..Default::default()
        },
    )])
    .render()
}

/// The answer URL of numbers attached to PHLOs: an incoming call starts the number's PHLO.
pub async fn answer(State(state): State<AppState>, hook: Webhook) -> Result<Response, ApiError> {
    let call = events::call_details(&hook.params);
    let uuid = call_uuid(&hook.params)?;
    let mut conn = state.pool.acquire().await?;
    let Some(route) = phlo_store::numbers::route(&mut conn, &call.to).await? else {
        tracing::info!(to = %call.to, "incoming call to a number no PHLO answers; rejected");
        return Ok(xml(rejected()));
    };
    drop(conn);
    let request = StartRequest {
        account_id: route.account_id,
        phlo_id: route.phlo_id,
        trigger: Trigger::Call(call),
    };
    let started = after(&state, &uuid, async {
        match state.runtime.start_run(request).await {
            Ok(_) => Ok(()),
            Err(StartError::PhloNotFound(_)) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "the number's PHLO is gone",
            )),
            Err(StartError::Runtime(e)) => Err(e.into()),
        }
    })
    .await;
    Ok(xml(match started {
        Ok(x) => x,
        Err(e) if e.status == StatusCode::NOT_FOUND => rejected(),
        Err(e) => return Err(e),
    }))
}

/// A parked token's own state, to tell a live wait from one that has moved on.
async fn waits_on(
    state: &AppState,
    run_id: Uuid,
    token: i32,
    wait_id: i32,
) -> Result<Option<phlo_store::tokens::Token>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    Ok(phlo_store::tokens::get(&mut conn, run_id, token)
        .await?
        .filter(|t| t.status == "waiting" && t.wait_id == Some(wait_id)))
}

/// Action URLs of a parked voice node: digits, prompt, recording, dial, conference (and the XML a Dial
/// and a Conference fetch: screening prompt, wait music).
pub async fn action(
    State(state): State<AppState>,
    Path((run_id, token, wait_id, kind)): Path<(Uuid, i32, i32, String)>,
    hook: Webhook,
) -> Result<Response, ApiError> {
    let p = &hook.params;
    let waiting = waits_on(&state, run_id, token, wait_id).await?;
    let own_call = waiting
        .as_ref()
        .and_then(|t| t.context.0.call.clone())
        .map(|c| c.uuid);
    let call = own_call
        .clone()
        .or_else(|| p.get("CallUUID").cloned())
        .unwrap_or_default();
    let event = match kind.as_str() {
        "digits" => Event::Digits {
            digits: events::digits(p),
        },
        "prompt" => Event::PromptFinished,
        "recording" => {
            // A Dial's call recording reports here too, without asking for XML: news, not the node's result.
            if waiting
                .as_ref()
                .and_then(|t| t.wait.as_ref())
                .is_some_and(|w| w.0.on == WaitOn::Dial)
            {
                return Ok(StatusCode::OK.into_response());
            }
            let rec = events::recording(p);
            Event::Recording(Recording { ..rec })
        }
        "dial" => {
            let attempt: usize = hook
                .query
                .get("attempt")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            if let (Some(status), Some(action)) = (
                p.get("DialStatus"),
                instruction_action(&state, &call).await?,
            ) && let Some(next) = next_dial(&action, attempt, status)
            {
                let urls = action_urls(
                    &state.config.public_url,
                    run_id,
                    token,
                    wait_id,
                    attempt + 1,
                );
                return Ok(xml(voice_xml(&next, &urls).render()));
            }
            if p.contains_key("DialStatus") {
                Event::Dial(events::dial(p))
            } else {
                Event::Dial(phlo_flow::event::DialResult {
                    outcome: CallOutcome::Failed,
                    call: Default::default(),
                })
            }
        }
        "conference" => {
            if hook.query.get("ended").map(String::as_str) == Some("true") {
                Event::Conference(ConferenceEvent {
                    event: "ConferenceExit".into(),
                    ended: true,
                    call_uuid: call.clone(),
                    ..Default::default()
                })
            } else {
                // Member events are news for the node; the carrier does not wait for XML here.
                if let Some(t) = &waiting {
                    record_own_member(&state, t, &call, p).await?;
                }
                if let Some(ev) = events::conference(p, &call) {
                    resume(
                        &state,
                        StepMessage::Resume {
                            run_id,
                            token,
                            wait_id,
                            event: Event::Conference(ev),
                        },
                    )
                    .await?;
                }
                return Ok(StatusCode::OK.into_response());
            }
        }
        "screening" => {
            let screening = match instruction_action(&state, &call).await? {
                Some(VoiceAction::Dial {
                    screening: Some(s), ..
                }) => screening_xml(&s).render(),
                _ => phlo_carrier::xml::Response::new(Vec::new()).render(),
            };
            return Ok(xml(screening));
        }
        "wait_music" => {
            let music = match instruction_action(&state, &call).await? {
                Some(VoiceAction::JoinConference(j)) => j.wait_music_url,
                Some(VoiceAction::JoinMultiParty(j)) => j.wait_music_url,
                _ => None,
            };
            let body = music
                .map(|m| wait_music_xml(&m).render())
                .unwrap_or_else(|| phlo_carrier::xml::Response::new(Vec::new()).render());
            return Ok(xml(body));
        }
        other => return Err(ApiError::not_found("carrier callback", other)),
    };
    if waiting.is_none() {
        // The wait moved on (a timer won, or the callback repeats): nothing to apply. The call gets
        // whatever its token does next, or a hang-up if nothing comes; never this wait's own XML
        // again, which the call has just run (its token may not have reached its next node yet).
        let seen = seen_by(&state, &call, (run_id, token, wait_id), true).await?;
        return Ok(xml(next_xml(&state, &call, seen, None, 0).await?));
    }
    let msg = StepMessage::Resume {
        run_id,
        token,
        wait_id,
        event,
    };
    let answer = after_wait(&state, &call, (run_id, token, wait_id), resume(&state, msg)).await?;
    Ok(xml(answer))
}

/// The voice action behind the call's current XML (sequential dials, screening, wait music).
async fn instruction_action(
    state: &AppState,
    call_uuid: &str,
) -> Result<Option<VoiceAction>, ApiError> {
    let mut conn = state.pool.acquire().await?;
    let action = phlo_store::calls::instruction(&mut conn, call_uuid)
        .await?
        .and_then(|i| i.action)
        .and_then(|a| serde_json::from_value::<VoiceAction>(a.0).ok());
    Ok(action.map(|a| dial_attempt(&a, 0).unwrap_or(a)))
}

/// An Initiate Call leg answered: the token continues on this call.
pub async fn leg_answer(
    State(state): State<AppState>,
    Path((run_id, token, wait_id, leg)): Path<(Uuid, i32, i32, usize)>,
    hook: Webhook,
) -> Result<Response, ApiError> {
    let p = &hook.params;
    let uuid = call_uuid(p)?;
    if waits_on(&state, run_id, token, wait_id).await?.is_none() {
        // Answered after its wait gave up (no_answer by the timer): nobody is there to talk.
        return Ok(xml(hangup_xml()));
    }
    let details = events::call_details(p);
    let mut conn = state.pool.acquire().await?;
    phlo_store::calls::upsert(
        &mut conn,
        &phlo_store::calls::NewCall {
            call_uuid: &uuid,
            run_id,
            token,
            direction: "outbound",
            from_number: &details.from,
            to_number: &details.to,
        },
    )
    .await?;
    drop(conn);
    let machine = p.get("Machine").is_some_and(|m| m == "true");
    let outcome = if machine {
        CallOutcome::Machine
    } else {
        CallOutcome::Answered
    };
    let event = Event::Call(CallResult {
        leg,
        outcome,
        call: phlo_flow::event::CallDetails {
            ring_status: Some(true),
            ..details
        },
    });
    let msg = StepMessage::Resume {
        run_id,
        token,
        wait_id,
        event,
    };
    Ok(xml(after(&state, &uuid, resume(&state, msg)).await?))
}

/// An Initiate Call leg ended: either it never connected (busy, no answer, failed) or it hung up later.
pub async fn leg_hangup(
    State(state): State<AppState>,
    Path((run_id, token, wait_id, leg)): Path<(Uuid, i32, i32, usize)>,
    hook: Webhook,
) -> Result<Response, ApiError> {
    let p = &hook.params;
    let uuid = p.get("CallUUID").cloned().unwrap_or_default();
    let mut conn = state.pool.acquire().await?;
    let answered = !uuid.is_empty() && phlo_store::calls::get(&mut conn, &uuid).await?.is_some();
    drop(conn);
    if answered {
        return ended(&state, p).await;
    }
    let event = Event::Call(CallResult {
        leg,
        outcome: events::unanswered_leg(p),
        call: events::call_details(p),
    });
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

/// The hangup URL: the call is over; a token waiting on it hears so.
pub async fn hangup(State(state): State<AppState>, hook: Webhook) -> Result<Response, ApiError> {
    ended(&state, &hook.params).await
}

async fn ended(state: &AppState, p: &Params) -> Result<Response, ApiError> {
    let uuid = call_uuid(p)?;
    let cause = p
        .get("HangupCause")
        .cloned()
        .unwrap_or_else(|| "NORMAL_CLEARING".into());
    let mut conn = state.pool.acquire().await?;
    let Some(known) = phlo_store::calls::get(&mut conn, &uuid).await? else {
        return Ok(StatusCode::OK.into_response());
    };
    drop(conn);
    // Under the run's lock, like a worker's step: either the step that is parking the token on this
    // call sees it ended (and resumes the wait at once), or this sees the token parked.
    let mut tx = state.pool.begin().await?;
    phlo_store::runs::lock(&mut tx, known.run_id).await?;
    let Some(call) = phlo_store::calls::end(&mut tx, &uuid, Some(&cause)).await? else {
        return Ok(StatusCode::OK.into_response());
    };
    let token = phlo_store::tokens::get(&mut tx, call.run_id, call.token).await?;
    tx.commit().await?;
    let on_this_call =
        |t: &phlo_store::tokens::Token| t.context.0.call.as_ref().is_some_and(|c| c.uuid == uuid);
    if let Some(t) = token.filter(|t| t.status == "waiting" && on_this_call(t))
        && let Some(wait_id) = t.wait_id
    {
        let msg = StepMessage::Resume {
            run_id: call.run_id,
            token: call.token,
            wait_id,
            event: Event::Hangup { cause },
        };
        resume(state, msg).await?;
    }
    Ok(StatusCode::OK.into_response())
}

/// The keep-alive's redirect target: the call asks again for its next XML.
pub async fn resume_waiting(
    State(state): State<AppState>,
    Path(call_uuid): Path<String>,
    hook: Webhook,
) -> Result<Response, ApiError> {
    let seen: i64 = hook
        .query
        .get("after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let round: u32 = hook
        .query
        .get("round")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let subscription = state
        .runtime
        .bus()
        .subscribe(&state.runtime.bus().call_subject(&call_uuid))
        .await
        .ok();
    Ok(xml(
        next_xml(&state, &call_uuid, seen, subscription, round).await?
    ))
}

/// Keeps the room's member list (for the trigger API) in step with the token's own call.
async fn record_own_member(
    state: &AppState,
    t: &phlo_store::tokens::Token,
    call: &str,
    p: &Params,
) -> Result<(), ApiError> {
    let (room, node_type, role) = match instruction_action(state, call).await? {
        Some(VoiceAction::JoinMultiParty(j)) => (j.name, "multi_party_call", j.role),
        Some(VoiceAction::JoinConference(j)) => (j.name, "conference_bridge", "member".to_owned()),
        _ => return Ok(()),
    };
    let mut conn = state.pool.acquire().await?;
    let Some(c) = phlo_store::calls::get(&mut conn, call).await? else {
        return Ok(());
    };
    let Some(run) = phlo_store::runs::find(&mut conn, t.run_id).await? else {
        return Ok(());
    };
    drop(conn);
    // The member's address is the far end of the token's call: the caller of an incoming call, the
    // callee of an outbound one.
    let address = if c.direction == "inbound" {
        c.from_number
    } else {
        c.to_number
    };
    crate::routes::rooms::record_event(
        state,
        p,
        (run.phlo_id, t.node_id, node_type, t.run_id),
        Some((&room, &address, &role)),
    )
    .await
}
