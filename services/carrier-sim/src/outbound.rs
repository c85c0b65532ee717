//! Placing calls: outbound calls from the Call API (and participants dialled into a multiparty call)
//! ring their callee, who answers per its script, and inbound calls from the control API reach the
//! application's answer URL. Either way, once answered the call is acted out by `session`.

use std::sync::Arc;

use crate::Sim;
use crate::calls::{Call, CallInfo, CallStatus, Direction, HangupInfo, Start};
use crate::events::EventKind;
use crate::ringing::{Ring, Screening, ring, screen};
use crate::scripts::Answer;
use crate::session::{self, Limits, finish};
use crate::webhooks::{Fetch, Method};
use crate::xml::Node;

/// What an answered outbound call runs.
#[derive(Debug, Clone)]
pub enum OnAnswer {
    /// The application's answer URL (the Call API).
    Url(String, Method),
    /// A document of the simulator's own (a participant joining a multiparty call); the callee
    /// then hangs up after its script's `talk_secs`.
    Doc(Vec<Node>),
}

#[derive(Debug, Clone)]
pub struct CallRequest {
    pub from: String,
    pub to: String,
    pub caller_name: Option<String>,
    pub on_answer: OnAnswer,
    pub hangup: Option<(String, Method)>,
    pub ring: Option<(String, Method)>,
    pub ring_timeout: f64,
    /// Plivo's `machine_detection`: `true` (report it) or `hangup` (hang up on machines).
    pub machine_detection: Option<String>,
    pub machine_detection_url: Option<(String, Method)>,
    pub time_limit: f64,
    pub screening: Option<Screening>,
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Places one outbound call and acts it out in the background.
pub fn place(sim: &Sim, req: CallRequest) -> Arc<Call> {
    let call = Call::new(CallInfo {
        uuid: new_id(),
        request_uuid: Some(new_id()),
        from: req.from.clone(),
        to: req.to.clone(),
        direction: Direction::Outbound,
        caller_name: req.caller_name.clone(),
        parent_call_uuid: None,
        hangup_url: req.hangup.clone(),
        party: req.to.clone(),
    });
    sim.calls.insert(call.clone());
    tokio::spawn(run_outbound(sim.clone(), call.clone(), req));
    call
}

fn notify(sim: &Sim, call: &Call, target: Option<&(String, Method)>, extra: &[(&str, &str)]) {
    if let Some((url, method)) = target {
        let mut params = call.base_params();
        params.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        sim.fire(Fetch {
            url: url.clone(),
            method: *method,
            params,
        });
    }
}

async fn run_outbound(sim: Sim, call: Arc<Call>, req: CallRequest) {
    let script = sim.scripts.get(&call.info.party);
    // A call that cannot be placed never rings.
    if script.answer != Answer::Fail {
        call.set_status(CallStatus::Ringing);
        call.log_party(EventKind::Ringing);
        notify(&sim, &call, req.ring.as_ref(), &[("Event", "Ring")]);
    }
    let outcome = tokio::select! {
        outcome = ring(&sim, &script, req.ring_timeout) => Some(outcome),
        _ = call.stopped() => None,
    };
    let (status, cause, kind) = match outcome {
        None => (
            CallStatus::Cancel,
            "ORIGINATOR_CANCEL",
            EventKind::Cancelled {
                reason: "hung up through the API while ringing".to_owned(),
            },
        ),
        Some(Ring::Busy) => (CallStatus::Busy, "USER_BUSY", EventKind::Busy),
        Some(Ring::NoAnswer) => (CallStatus::NoAnswer, "NO_ANSWER", EventKind::NoAnswer),
        Some(Ring::Failed) => (CallStatus::Failed, "CALL_REJECTED", EventKind::Failed),
        Some(Ring::Answered { machine }) => return answered(sim, call, req, machine).await,
    };
    call.log_party(kind);
    let source = if outcome.is_none() {
        "API Request"
    } else {
        "Callee"
    };
    finish(
        &sim,
        &call,
        status,
        HangupInfo::new(cause, source, cause.to_lowercase()),
    )
    .await;
}

async fn answered(sim: Sim, call: Arc<Call>, req: CallRequest, machine: bool) {
    call.mark_answered();
    call.log_party(EventKind::Answered { machine });
    let mut extra = vec![("Event".to_owned(), "StartApp".to_owned())];
    if let Some(detection) = &req.machine_detection {
        extra.push(("Machine".to_owned(), machine.to_string()));
        if machine {
            call.log_party(EventKind::MachineDetected);
            let if_machine = if detection == "hangup" {
                "hangup"
            } else {
                "continue"
            };
            let md = [
                ("Machine", "true"),
                ("IfMachine", if_machine),
                ("Event", "MachineDetection"),
            ];
            notify(&sim, &call, req.machine_detection_url.as_ref(), &md);
            if detection == "hangup" {
                let hangup = HangupInfo::new("MACHINE_DETECTED", "Plivo", "answering machine");
                finish(&sim, &call, CallStatus::Completed, hangup).await;
                return;
            }
        }
    }
    if let Some(screening) = &req.screening {
        let mut screening = screening.clone();
        if let Some(sound) = &mut screening.sound {
            sound.params = call.base_params();
        }
        let script = sim.scripts.get(&call.info.party);
        if !screen(&sim, &call, &script, &screening).await {
            let refused =
                HangupInfo::new("NORMAL_CLEARING", "Plivo", "did not press the confirm key");
            finish(&sim, &call, CallStatus::Completed, refused).await;
            return;
        }
    }
    let talk = sim.scripts.get(&call.info.party).talk_secs;
    let (first, talk) = match req.on_answer {
        OnAnswer::Url(url, method) => {
            let mut params = call.base_params();
            params.extend(extra);
            (
                Start::Fetch(Fetch {
                    url,
                    method,
                    params,
                }),
                None,
            )
        }
        OnAnswer::Doc(doc) => (Start::Doc(doc), talk),
    };
    let limits = Limits {
        time_limit: req.time_limit,
        talk,
    };
    session::run(sim, call, first, limits).await;
}

/// An inbound call from the control API.
#[derive(Debug, Clone)]
pub struct InboundRequest {
    pub from: String,
    pub to: String,
    pub caller_name: Option<String>,
    pub answer: (String, Method),
    pub hangup: Option<(String, Method)>,
}

/// Delivers a call to the application: its answer URL is requested at once (with
/// `CallStatus=ringing`, as Plivo does for inbound calls) and the caller's script drives the rest.
pub fn receive(sim: &Sim, req: InboundRequest) -> Arc<Call> {
    let call = Call::new(CallInfo {
        uuid: new_id(),
        request_uuid: None,
        from: req.from.clone(),
        to: req.to.clone(),
        direction: Direction::Inbound,
        caller_name: req.caller_name.clone(),
        parent_call_uuid: None,
        hangup_url: req.hangup.clone(),
        party: req.from.clone(),
    });
    sim.calls.insert(call.clone());
    call.set_status(CallStatus::Ringing);
    call.log_party(EventKind::Ringing);
    let mut params = call.base_params();
    params.push(("Event".to_owned(), "StartApp".to_owned()));
    let (url, method) = req.answer;
    let first = Start::Fetch(Fetch {
        url,
        method,
        params,
    });
    let sim = sim.clone();
    let task_call = call.clone();
    tokio::spawn(async move {
        task_call.mark_answered();
        let limits = Limits {
            time_limit: 14_400.0,
            talk: None,
        };
        session::run(sim, task_call, first, limits).await;
    });
    call
}
