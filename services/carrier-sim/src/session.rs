//! A call's life once it is answered: run the application's XML, follow transfers, honour the
//! party's hang-up and the call's time limit, and report the end to the hangup URL exactly once.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use crate::Sim;
use crate::calls::{Call, CallStatus, Direction, HangupInfo, Start, Stop};
use crate::events::EventKind;
use crate::scripts::{InputCursor, Script};
use crate::webhooks::{Fetch, Method};
use crate::xml_exec;

/// What the executor needs about the call it acts out.
pub struct CallCtx {
    pub sim: Sim,
    pub call: Arc<Call>,
    pub script: Script,
    input: Mutex<InputCursor>,
    /// The URL of the document being run: relative URLs in it resolve against it.
    doc_url: Mutex<Option<url::Url>>,
}

impl CallCtx {
    pub fn new(sim: Sim, call: Arc<Call>) -> Self {
        let script = sim.scripts.get(&call.info.party);
        let input = Mutex::new(InputCursor::new(script.digits.clone()));
        Self {
            sim,
            call,
            script,
            input,
            doc_url: Mutex::new(None),
        }
    }

    pub fn party(&self) -> &str {
        &self.call.info.party
    }

    pub fn log(&self, kind: EventKind) {
        self.call.log_party(kind);
    }

    /// The party's next input, or `None` for silence: its next scripted entry, or for a
    /// `live_input` party what is posted to the call within `timeout` real seconds.
    pub async fn next_input(&self, timeout: f64) -> Result<Option<String>, Stop> {
        if !self.script.live_input {
            return Ok(self
                .input
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .next_entry());
        }
        let input = self.call.await_input();
        self.log(EventKind::AwaitingInput { seconds: timeout });
        // Real seconds, not simulated ones: a person is typing.
        let wait = std::time::Duration::from_secs_f64(timeout.max(0.0));
        let entry = self.guard(tokio::time::timeout(wait, input)).await?;
        Ok(entry.ok().and_then(Result::ok))
    }

    /// Runs `fut` unless the call is hung up or transferred first.
    pub async fn guard<T>(&self, fut: impl Future<Output = T>) -> Result<T, Stop> {
        tokio::select! {
            biased;
            stop = self.call.stopped() => Err(stop),
            value = fut => Ok(value),
        }
    }

    /// Lets `secs` of simulated time pass on the call.
    pub async fn pause(&self, secs: f64) -> Result<(), Stop> {
        self.guard(self.sim.sleep(secs)).await
    }

    pub fn set_doc_url(&self, url: &str) {
        *self.doc_url.lock().unwrap_or_else(|p| p.into_inner()) = url::Url::parse(url).ok();
    }

    /// A request to the application about this call, with the standard parameters and `extra`.
    /// A relative `url` resolves against the current document's URL, as a browser would.
    pub fn fetch(&self, url: &str, method: Method, extra: Vec<(String, String)>) -> Fetch {
        let mut params = self.call.base_params();
        params.extend(extra);
        let base = self
            .doc_url
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let url = match (url::Url::parse(url), base) {
            (Err(url::ParseError::RelativeUrlWithoutBase), Some(base)) => {
                base.join(url).map_or_else(|_| url.to_owned(), String::from)
            }
            _ => url.to_owned(),
        };
        Fetch {
            url,
            method,
            params,
        }
    }
}

/// Limits that end a call from outside its XML.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The call's `time_limit` (simulated seconds).
    pub time_limit: f64,
    /// For a dialled party with no XML of its own, how long it talks (its script's `talk_secs`).
    pub talk: Option<f64>,
}

/// Acts out an answered call from `first` until it ends.
pub async fn run(sim: Sim, call: Arc<Call>, first: Start, limits: Limits) {
    let ctx = CallCtx::new(sim.clone(), call.clone());
    let timers = start_timers(&ctx, limits);
    let mut next = first;
    let hangup = loop {
        match xml_exec::run_app(&ctx, next).await {
            Ok(h) | Err(Stop::Hangup(h)) => break h,
            Err(Stop::Transfer(start)) => {
                call.resume();
                if let Start::Fetch(f) = &start {
                    ctx.log(EventKind::Transferred { url: f.url.clone() });
                }
                next = start;
            }
        }
    };
    for t in timers {
        t.abort();
    }
    finish(&sim, &call, CallStatus::Completed, hangup).await;
}

fn start_timers(ctx: &CallCtx, limits: Limits) -> Vec<JoinHandle<()>> {
    let source = match ctx.call.info.direction {
        Direction::Inbound => "Caller",
        Direction::Outbound => "Callee",
    };
    let party_hangup = ctx.script.hangup_after_secs.or(limits.talk);
    let mut timers = Vec::new();
    if let Some(secs) = party_hangup {
        let reason = format!("{} hung up after {secs} s", ctx.party());
        timers.push(timer(
            ctx,
            secs,
            HangupInfo::new("NORMAL_CLEARING", source, reason),
        ));
    }
    let limit = HangupInfo::new("ALLOTTED_TIMEOUT", "Plivo", "time limit reached");
    timers.push(timer(ctx, limits.time_limit, limit));
    timers
}

fn timer(ctx: &CallCtx, secs: f64, hangup: HangupInfo) -> JoinHandle<()> {
    let sim = ctx.sim.clone();
    let call = ctx.call.clone();
    tokio::spawn(async move {
        sim.sleep(secs).await;
        call.request_hangup(hangup);
    })
}

/// Ends the call (once) and reports it: the log entry and, if the call has one, the hangup URL.
pub async fn finish(sim: &Sim, call: &Call, status: CallStatus, hangup: HangupInfo) {
    if !call.end(status, &hangup, sim.config.time_scale) {
        return;
    }
    call.log_party(EventKind::HungUp {
        reason: hangup.reason.clone(),
        cause: hangup.cause.clone(),
    });
    if let Some((url, method)) = &call.info.hangup_url {
        let mut params = call.base_params();
        params.push(("Event".into(), "Hangup".into()));
        params.extend(call.hangup_params());
        let fetch = Fetch {
            url: url.clone(),
            method: *method,
            params,
        };
        let _ = sim.webhooks.send(&fetch).await;
    }
}
