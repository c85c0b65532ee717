//! `Dial`: ring every `Number`/`User` at once, let each callee's script decide, screen answered
//! callees when asked, bridge the first one who accepts and cancel the rest, then report the
//! outcome to the action URL. The bridge lasts until the callee's `talk_secs` run out, the caller
//! hangs up, either leg is hung up through the API, or `timeLimit` passes.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use crate::Sim;
use crate::calls::{Call, CallInfo, CallStatus, Direction, HangupInfo, Stop};
use crate::events::EventKind;
use crate::ringing::{Ring, Screening, ring, screen};
use crate::scripts::Answer;
use crate::session::{CallCtx, finish};
use crate::webhooks::{Fetch, Method};
use crate::xml::Node;
use crate::xml_exec::{Step, app_error, follow_action};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Accepted,
    Busy,
    NoAnswer,
    Failed,
    /// Answered, but did not press the confirm key.
    Refused,
}

pub async fn dial(ctx: &CallCtx, verb: &Node) -> Result<Step, Stop> {
    let targets: Vec<(&str, Option<String>)> = verb
        .children
        .iter()
        .map(|c| (c.text.trim(), c.attr("sendDigits").map(str::to_owned)))
        .filter(|(n, _)| !n.is_empty())
        .collect();
    if targets.is_empty() {
        return Ok(Step::End(app_error(ctx, "Dial without a Number or User")));
    }
    let timeout = verb.num("timeout", 30.0);
    let caller_id = verb.attr("callerId").unwrap_or(&ctx.call.info.from);
    let screening = verb.attr("confirmKey").map(|key| Screening {
        sound: verb.attr("confirmSound").map(|url| Fetch {
            url: url.to_owned(),
            method: Method::Post,
            params: Vec::new(),
        }),
        key: key.to_owned(),
        timeout: verb.num("confirmTimeout", 120.0),
    });
    if let Some(music) = verb
        .attr("dialMusic")
        .filter(|m| !m.eq_ignore_ascii_case("real"))
    {
        ctx.log(EventKind::Heard {
            text: None,
            url: Some(music.to_owned()),
            voice: None,
            language: None,
        });
    }

    let legs: Vec<Arc<Call>> = targets
        .iter()
        .map(|(number, _)| new_leg(ctx, verb, number, caller_id))
        .collect();
    let pending: FuturesUnordered<_> = legs
        .iter()
        .enumerate()
        .map(|(i, leg)| {
            let attempt = attempt(ctx.sim.clone(), leg.clone(), screening.clone(), timeout);
            async move { (i, attempt.await) }
        })
        .collect();

    match ctx.guard(race(pending)).await {
        Err(stop) => {
            cancel_live(&ctx.sim, &legs, "the caller hung up").await;
            report_after_hangup(ctx, verb, ("cancel", false, "ORIGINATOR_CANCEL"), "").await;
            Err(stop)
        }
        Ok(Err(outcomes)) => {
            let rang = outcomes
                .iter()
                .any(|a| matches!(a, Attempt::NoAnswer | Attempt::Refused));
            let (status, cause) = if rang {
                ("no-answer", "NO_ANSWER")
            } else if outcomes.contains(&Attempt::Busy) {
                ("busy", "USER_BUSY")
            } else {
                ("failed", "CALL_REJECTED")
            };
            let params = action_params(ctx, (status, rang, cause), "");
            Ok(follow_action(ctx, verb, params).await)
        }
        Ok(Ok(winner)) => {
            let others: Vec<Arc<Call>> = legs
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != winner)
                .map(|(_, l)| l.clone())
                .collect();
            cancel_live(&ctx.sim, &others, "another leg answered first").await;
            let digits = targets[winner].1.clone();
            bridge(ctx, verb, &legs[winner], digits).await
        }
    }
}

fn new_leg(ctx: &CallCtx, verb: &Node, number: &str, caller_id: &str) -> Arc<Call> {
    let leg = Call::new(CallInfo {
        uuid: uuid::Uuid::new_v4().to_string(),
        request_uuid: None,
        from: caller_id.to_owned(),
        to: number.to_owned(),
        direction: Direction::Outbound,
        caller_name: verb.attr("callerName").map(str::to_owned),
        parent_call_uuid: Some(ctx.call.info.uuid.clone()),
        hangup_url: None,
        party: number.to_owned(),
    });
    ctx.sim.calls.insert(leg.clone());
    ctx.log(EventKind::Dialled {
        number: number.to_owned(),
        call_uuid: leg.info.uuid.clone(),
    });
    leg
}

/// The first leg to accept, or every leg's failure once all have failed.
async fn race<F>(mut pending: FuturesUnordered<F>) -> Result<usize, Vec<Attempt>>
where
    F: Future<Output = (usize, Attempt)>,
{
    let mut outcomes = Vec::new();
    while let Some((i, outcome)) = pending.next().await {
        if outcome == Attempt::Accepted {
            return Ok(i);
        }
        outcomes.push(outcome);
    }
    Err(outcomes)
}

/// Rings one leg and screens it; a leg that fails is ended here, with its own status.
async fn attempt(sim: Sim, leg: Arc<Call>, screening: Option<Screening>, timeout: f64) -> Attempt {
    let script = sim.scripts.get(&leg.info.party);
    let party = leg.info.party.clone();
    if script.answer != Answer::Fail {
        leg.set_status(CallStatus::Ringing);
        leg.log(&party, EventKind::Ringing);
    }
    let outcome = tokio::select! {
        outcome = ring(&sim, &script, timeout) => outcome,
        // Hung up through the API while ringing.
        _ = leg.stopped() => Ring::NoAnswer,
    };
    let (status, cause, kind, attempt) = match outcome {
        Ring::Busy => (
            CallStatus::Busy,
            "USER_BUSY",
            EventKind::Busy,
            Attempt::Busy,
        ),
        Ring::NoAnswer => (
            CallStatus::NoAnswer,
            "NO_ANSWER",
            EventKind::NoAnswer,
            Attempt::NoAnswer,
        ),
        Ring::Failed => (
            CallStatus::Failed,
            "CALL_REJECTED",
            EventKind::Failed,
            Attempt::Failed,
        ),
        Ring::Answered { machine } => {
            leg.mark_answered();
            leg.log(&party, EventKind::Answered { machine });
            let Some(mut screening) = screening else {
                return Attempt::Accepted;
            };
            if let Some(sound) = &mut screening.sound {
                sound.params = leg.base_params();
            }
            if screen(&sim, &leg, &script, &screening).await {
                return Attempt::Accepted;
            }
            let refused =
                HangupInfo::new("NORMAL_CLEARING", "Plivo", "did not press the confirm key");
            finish(&sim, &leg, CallStatus::Completed, refused).await;
            return Attempt::Refused;
        }
    };
    leg.log(&party, kind);
    finish(
        &sim,
        &leg,
        status,
        HangupInfo::new(cause, "Callee", cause.to_lowercase()),
    )
    .await;
    attempt
}

/// Ends legs that are still ringing (or being screened) when the dial is decided without them.
async fn cancel_live(sim: &Sim, legs: &[Arc<Call>], reason: &str) {
    for leg in legs.iter().filter(|l| l.is_live()) {
        leg.log(
            &leg.info.party,
            EventKind::Cancelled {
                reason: reason.to_owned(),
            },
        );
        let hangup = HangupInfo::new("ORIGINATOR_CANCEL", "Plivo", reason);
        finish(sim, leg, CallStatus::Cancel, hangup).await;
    }
}

async fn bridge(
    ctx: &CallCtx,
    verb: &Node,
    leg: &Arc<Call>,
    digits: Option<String>,
) -> Result<Step, Stop> {
    let sim = &ctx.sim;
    let b_party = leg.info.party.clone();
    let b_uuid = leg.info.uuid.clone();
    ctx.log(EventKind::Bridged {
        with: b_party.clone(),
        call_uuid: b_uuid.clone(),
    });
    leg.log(
        &b_party,
        EventKind::Bridged {
            with: ctx.party().to_owned(),
            call_uuid: ctx.call.info.uuid.clone(),
        },
    );
    if let Some(digits) = digits {
        leg.log(&b_party, EventKind::ReceivedDigits { digits });
    }
    dial_callback(ctx, verb, leg, "answer");
    let talk_secs = sim.scripts.get(&b_party).talk_secs;
    let time_limit = verb.num("timeLimit", 14400.0);
    let callee_side = async {
        let talk = async {
            match talk_secs {
                Some(secs) => sim.sleep(secs).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = talk => HangupInfo::new("NORMAL_CLEARING", "Callee", format!("{b_party} hung up")),
            stop = leg.stopped() => match stop {
                Stop::Hangup(h) => h,
                Stop::Transfer(_) => HangupInfo::new("NORMAL_CLEARING", "API Request", "transferred"),
            },
            () = sim.sleep(time_limit) => HangupInfo::new("ALLOTTED_TIMEOUT", "Plivo", "Dial timeLimit reached"),
        }
    };
    match ctx.guard(callee_side).await {
        Ok(hangup) => {
            let cause = hangup.cause.clone();
            finish(sim, leg, CallStatus::Completed, hangup).await;
            dial_callback(ctx, verb, leg, "hangup");
            let params = action_params(ctx, ("completed", true, &cause), &b_uuid);
            Ok(follow_action(ctx, verb, params).await)
        }
        Err(stop) => {
            let reason = format!("{} hung up", ctx.party());
            let hangup = HangupInfo::new("NORMAL_CLEARING", "Caller", reason);
            finish(sim, leg, CallStatus::Completed, hangup).await;
            dial_callback(ctx, verb, leg, "hangup");
            report_after_hangup(ctx, verb, ("completed", true, "NORMAL_CLEARING"), &b_uuid).await;
            Err(stop)
        }
    }
}

fn action_params(
    ctx: &CallCtx,
    (status, rang, cause): (&str, bool, &str),
    b_leg: &str,
) -> Vec<(String, String)> {
    vec![
        ("DialStatus".into(), status.into()),
        ("DialRingStatus".into(), rang.to_string()),
        ("DialHangupCause".into(), cause.into()),
        ("DialALegUUID".into(), ctx.call.info.uuid.clone()),
        ("DialBLegUUID".into(), b_leg.into()),
    ]
}

/// When the caller is gone the dial result is still reported (that is how the application learns
/// the forward completed), but the XML that comes back has no call left to run on.
async fn report_after_hangup(ctx: &CallCtx, verb: &Node, outcome: (&str, bool, &str), b_leg: &str) {
    if let Some(url) = verb.attr("action") {
        let params = action_params(ctx, outcome, b_leg);
        let fetch = ctx.fetch(url, Method::parse(verb.attr("method")), params);
        let _ = ctx.sim.webhooks.send(&fetch).await;
    }
}

fn dial_callback(ctx: &CallCtx, verb: &Node, leg: &Call, action: &str) {
    let Some(url) = verb.attr("callbackUrl") else {
        return;
    };
    let extra = vec![
        ("DialAction".into(), action.into()),
        ("DialBLegStatus".into(), action.into()),
        ("DialALegUUID".into(), ctx.call.info.uuid.clone()),
        ("DialBLegUUID".into(), leg.info.uuid.clone()),
        ("DialBLegFrom".into(), leg.info.from.clone()),
        ("DialBLegTo".into(), leg.info.to.clone()),
    ];
    ctx.sim
        .fire(ctx.fetch(url, Method::parse(verb.attr("callbackMethod")), extra));
}
