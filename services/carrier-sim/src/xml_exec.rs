//! Acting out a call's XML: fetch a document, run its verbs in order, follow `Redirect` and action
//! URLs, and turn every failure of the application into an "application error" hang-up.

use crate::calls::{Call, HangupInfo, Start, Stop};
use crate::events::EventKind;
use crate::session::CallCtx;
use crate::webhooks::{Fetch, Method};
use crate::xml::{self, Node};
use crate::{Sim, dial, input, messages, record, room_exec};

/// Documents one call may run; an application redirecting to itself forever must not spin a
/// simulator task forever.
const MAX_DOCUMENTS: usize = 10_000;

/// What a verb tells the executor to do next.
pub enum Step {
    Continue,
    Goto(Start),
    End(HangupInfo),
}

/// Runs documents from `first` on until the call ends: `Ok` when the XML ends it (a `Hangup`, the
/// end of the document, an application error), `Err` when something outside stops it.
pub async fn run_app(ctx: &CallCtx, first: Start) -> Result<HangupInfo, Stop> {
    let mut next = first;
    for _ in 0..MAX_DOCUMENTS {
        let verbs = match next {
            Start::Doc(verbs) => verbs,
            Start::Fetch(fetch) => match fetch_doc(ctx, &fetch).await? {
                Ok(verbs) => verbs,
                Err(hangup) => return Ok(hangup),
            },
        };
        match run_verbs(ctx, &verbs).await? {
            Step::Continue => {
                return Ok(HangupInfo::new(
                    "NORMAL_CLEARING",
                    "Plivo",
                    "end of XML instructions",
                ));
            }
            Step::Goto(start) => next = start,
            Step::End(hangup) => return Ok(hangup),
        }
    }
    Ok(app_error(
        ctx,
        &format!("more than {MAX_DOCUMENTS} documents: a redirect loop?"),
    ))
}

/// Fetches XML for the call; the inner `Err` is the hang-up an application failure causes.
pub async fn fetch_doc(
    ctx: &CallCtx,
    fetch: &Fetch,
) -> Result<Result<Vec<Node>, HangupInfo>, Stop> {
    let reply = ctx.guard(ctx.sim.webhooks.send(fetch)).await?;
    let problem = match reply {
        Err(e) => e.to_string(),
        Ok(r) if !r.is_success() => format!("HTTP {}", r.status),
        Ok(r) => match xml::parse_response(&r.body) {
            Ok(verbs) => {
                ctx.set_doc_url(&fetch.url);
                return Ok(Ok(verbs));
            }
            Err(e) => e.to_string(),
        },
    };
    Ok(Err(app_error(ctx, &format!("{}: {problem}", fetch.url))))
}

/// Logs an application error on the call and returns the hang-up it causes.
pub fn app_error(ctx: &CallCtx, error: &str) -> HangupInfo {
    ctx.log(EventKind::AppError {
        error: error.to_owned(),
    });
    HangupInfo::app_error(error)
}

async fn run_verbs(ctx: &CallCtx, verbs: &[Node]) -> Result<Step, Stop> {
    for verb in verbs {
        let step = match verb.name.as_str() {
            "Speak" | "Play" | "Wait" => {
                ctx.guard(play(&ctx.sim, &ctx.call, ctx.party(), verb))
                    .await?;
                Step::Continue
            }
            "GetDigits" | "GetInput" => input::gather(ctx, verb).await?,
            "Record" => record::record(ctx, verb).await?,
            "Dial" => dial::dial(ctx, verb).await?,
            "Conference" => room_exec::conference(ctx, verb).await?,
            "MultiPartyCall" => room_exec::multi_party_call(ctx, verb).await?,
            "Hangup" => hangup(ctx, verb),
            "Redirect" => redirect(ctx, verb),
            // Early media runs like the rest of the call: the simulator answers at once anyway.
            "PreAnswer" => Box::pin(run_verbs(ctx, &verb.children)).await?,
            "DTMF" => {
                ctx.log(EventKind::SentDigits {
                    digits: verb.text.clone(),
                });
                Step::Continue
            }
            "Message" => {
                messages::send_from_xml(&ctx.sim, &ctx.call, verb);
                Step::Continue
            }
            other => {
                ctx.log(EventKind::Skipped {
                    element: other.to_owned(),
                });
                Step::Continue
            }
        };
        if !matches!(step, Step::Continue) {
            return Ok(step);
        }
    }
    Ok(Step::Continue)
}

/// Plays a `Speak`, `Play` or `Wait` to `party` of `call`, taking the time it would take: speech
/// at 15 characters a second, a second per audio file. `loop="0"` (forever) plays until the call
/// is stopped from outside.
pub async fn play(sim: &Sim, call: &Call, party: &str, verb: &Node) {
    let times = verb.num("loop", 1.0).round() as u64;
    let forever = times == 0;
    let times = times.clamp(1, 1000);
    for _ in 0..times {
        match verb.name.as_str() {
            "Speak" => {
                call.log(
                    party,
                    EventKind::Heard {
                        text: Some(verb.text.clone()),
                        url: None,
                        voice: Some(verb.attr("voice").unwrap_or("WOMAN").to_owned()),
                        language: Some(verb.attr("language").unwrap_or("en-US").to_owned()),
                    },
                );
                sim.sleep(verb.text.chars().count() as f64 / 15.0).await;
            }
            "Play" => {
                call.log(
                    party,
                    EventKind::Heard {
                        text: None,
                        url: Some(verb.text.clone()),
                        voice: None,
                        language: None,
                    },
                );
                sim.sleep(1.0).await;
            }
            "Wait" => {
                let seconds = verb.num("length", 1.0);
                call.log(party, EventKind::Waited { seconds });
                sim.sleep(seconds).await;
            }
            _ => {}
        }
    }
    if forever && verb.name != "Wait" {
        std::future::pending::<()>().await;
    }
}

fn hangup(ctx: &CallCtx, verb: &Node) -> Step {
    let reason = verb.attr("reason").unwrap_or("");
    let cause = match reason {
        "rejected" => "CALL_REJECTED",
        "busy" => "USER_BUSY",
        _ => "NORMAL_CLEARING",
    };
    let why = if reason.is_empty() {
        "Hangup element".to_owned()
    } else {
        format!("Hangup element (reason {reason})")
    };
    let info = HangupInfo::new(cause, "Answer XML", why);
    let schedule = verb.num("schedule", 0.0);
    if schedule > 0.0 {
        // A scheduled hang-up lets the rest of the document run until the moment comes.
        let sim = ctx.sim.clone();
        let call = ctx.call.clone();
        tokio::spawn(async move {
            sim.sleep(schedule).await;
            call.request_hangup(info);
        });
        return Step::Continue;
    }
    Step::End(info)
}

fn redirect(ctx: &CallCtx, verb: &Node) -> Step {
    let url = verb.text.trim();
    if url.is_empty() {
        return Step::End(app_error(ctx, "Redirect without a URL"));
    }
    let method = Method::parse(verb.attr("method"));
    Step::Goto(Start::Fetch(ctx.fetch(
        url,
        method,
        vec![("Event".into(), "Redirect".into())],
    )))
}

/// After an action URL got its parameters: with `redirect` (the default) its XML replaces the rest
/// of the document; without, it was only a notification and the document goes on.
pub async fn follow_action(ctx: &CallCtx, verb: &Node, extra: Vec<(String, String)>) -> Step {
    let Some(url) = verb.attr("action") else {
        return Step::Continue;
    };
    let fetch = ctx.fetch(url, Method::parse(verb.attr("method")), extra);
    if verb.flag("redirect", true) {
        return Step::Goto(Start::Fetch(fetch));
    }
    let _ = ctx.sim.webhooks.send(&fetch).await;
    Step::Continue
}
