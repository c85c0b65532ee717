//! Calls: each simulated call's identity, its state and event log, and the control channel through
//! which the REST API, the parties' scripts and the rooms stop or redirect what the call is doing.

pub use crate::call_store::Calls;
pub use crate::lifecycle::{CallStatus, Control, Direction, HangupInfo, Start, Stop};

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{oneshot, watch};

use crate::events::{Event, EventKind};
use crate::webhooks::{Method, Params};

/// Events kept per call; a call looping forever must not grow without bound.
const EVENTS_PER_CALL: usize = 2_000;

/// What never changes about a call.
#[derive(Debug, Clone)]
pub struct CallInfo {
    pub uuid: String,
    pub request_uuid: Option<String>,
    pub from: String,
    pub to: String,
    pub direction: Direction,
    pub caller_name: Option<String>,
    /// For a dialled leg, the call that dialled it.
    pub parent_call_uuid: Option<String>,
    pub hangup_url: Option<(String, Method)>,
    /// The party whose script drives this call and who hears its XML: the caller of an inbound
    /// call, the callee of an outbound one.
    pub party: String,
}

#[derive(Debug)]
struct CallState {
    status: CallStatus,
    hangup: Option<HangupInfo>,
    start_time: DateTime<Utc>,
    answer_time: Option<DateTime<Utc>>,
    answered_at: Option<Instant>,
    end_time: Option<DateTime<Utc>>,
    duration_secs: u64,
    events: VecDeque<Event>,
}

#[derive(Debug)]
pub struct Call {
    pub info: CallInfo,
    state: Mutex<CallState>,
    control: watch::Sender<Control>,
    /// Where live input goes while a prompt of a `live_input` party waits for it.
    live_input: Mutex<Option<oneshot::Sender<String>>>,
}

/// A call as `GET /sim/calls` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CallView {
    pub uuid: String,
    pub request_uuid: Option<String>,
    pub parent_call_uuid: Option<String>,
    pub from: String,
    pub to: String,
    pub direction: Direction,
    pub status: CallStatus,
    pub hangup_cause: Option<String>,
    pub hangup_source: Option<String>,
    pub hangup_reason: Option<String>,
    pub start_time: DateTime<Utc>,
    pub answer_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    /// Simulated seconds from answer to hang-up.
    pub duration: u64,
    pub events: Vec<Event>,
}

/// Plivo's timestamp format in webhooks (`yyyy-MM-dd HH:mm:ss`, UTC here).
pub fn plivo_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

impl Call {
    pub fn new(info: CallInfo) -> Arc<Self> {
        Arc::new(Self {
            info,
            state: Mutex::new(CallState {
                status: CallStatus::Queued,
                hangup: None,
                start_time: Utc::now(),
                answer_time: None,
                answered_at: None,
                end_time: None,
                duration_secs: 0,
                events: VecDeque::new(),
            }),
            control: watch::Sender::new(Control::Running),
            live_input: Mutex::new(None),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, CallState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn log(&self, party: &str, kind: EventKind) {
        let mut state = self.state();
        if state.events.len() >= EVENTS_PER_CALL {
            state.events.pop_front();
        }
        state.events.push_back(Event {
            at: Utc::now(),
            party: party.to_owned(),
            kind,
        });
    }

    /// Logs an event of the party that runs this call.
    pub fn log_party(&self, kind: EventKind) {
        self.log(&self.info.party, kind);
    }

    pub fn status(&self) -> CallStatus {
        self.state().status
    }

    pub fn set_status(&self, status: CallStatus) {
        let mut state = self.state();
        if !state.status.is_final() {
            state.status = status;
        }
    }

    pub fn mark_answered(&self) {
        let mut state = self.state();
        state.status = CallStatus::InProgress;
        state.answer_time = Some(Utc::now());
        state.answered_at = Some(Instant::now());
    }

    /// Records the end of the call once; returns false if it had already ended. `time_scale`
    /// turns the real time since the answer back into simulated seconds.
    pub fn end(&self, status: CallStatus, hangup: &HangupInfo, time_scale: f64) -> bool {
        {
            let mut state = self.state();
            if state.status.is_final() {
                return false;
            }
            state.status = status;
            state.hangup = Some(hangup.clone());
            state.end_time = Some(Utc::now());
            if let Some(at) = state.answered_at {
                state.duration_secs = (at.elapsed().as_secs_f64() / time_scale).round() as u64;
            }
        }
        self.control.send_replace(Control::Hangup(hangup.clone()));
        true
    }

    pub fn is_live(&self) -> bool {
        !self.status().is_final()
    }

    /// Asks the session to hang up; ignored once the call has ended or is already hanging up.
    pub fn request_hangup(&self, hangup: HangupInfo) -> bool {
        self.control.send_if_modified(|c| match c {
            Control::Hangup(_) => false,
            _ => {
                *c = Control::Hangup(hangup);
                true
            }
        })
    }

    /// Asks the session to abandon what it is doing and run `start` instead.
    pub fn request_transfer(&self, start: Start) -> bool {
        self.control.send_if_modified(|c| match c {
            Control::Hangup(_) => false,
            _ => {
                *c = Control::Transfer(start);
                true
            }
        })
    }

    /// Called by the session once it has acted on a transfer.
    pub fn resume(&self) {
        self.control.send_if_modified(|c| match c {
            Control::Transfer(_) => {
                *c = Control::Running;
                true
            }
            _ => false,
        });
    }

    /// Opens the call to live input (`POST /sim/calls/{uuid}/input`) until the receiver is dropped
    /// or the input arrives.
    pub fn await_input(&self) -> oneshot::Receiver<String> {
        let (tx, rx) = oneshot::channel();
        *self.live_input.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        rx
    }

    /// Hands `input` to the prompt waiting for it; false when none is waiting.
    pub fn give_input(&self, input: String) -> bool {
        let waiting = self
            .live_input
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        waiting.is_some_and(|tx| tx.send(input).is_ok())
    }

    /// Resolves when the call is asked to stop what it is doing.
    pub async fn stopped(&self) -> Stop {
        let mut rx = self.control.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                Control::Running => {}
                Control::Transfer(start) => return Stop::Transfer(start.clone()),
                Control::Hangup(h) => return Stop::Hangup(h.clone()),
            }
            if rx.changed().await.is_err() {
                // The sender lives as long as the call, which we hold: this cannot happen.
                std::future::pending::<()>().await;
            }
        }
    }

    /// The parameters Plivo sends with every request about this call.
    pub fn base_params(&self) -> Params {
        let info = &self.info;
        let status = self.status();
        let mut p: Params = vec![
            ("CallUUID".into(), info.uuid.clone()),
            ("From".into(), info.from.clone()),
            ("To".into(), info.to.clone()),
            ("Direction".into(), info.direction.as_str().into()),
            ("CallStatus".into(), status.as_str().into()),
        ];
        if let Some(name) = &info.caller_name {
            p.push(("CallerName".into(), name.clone()));
        }
        if info.direction == Direction::Outbound {
            let a_leg = info.parent_call_uuid.as_ref().unwrap_or(&info.uuid);
            p.push(("ALegUUID".into(), a_leg.clone()));
            if let Some(r) = &info.request_uuid {
                p.push(("RequestUUID".into(), r.clone()));
                p.push(("ALegRequestUUID".into(), r.clone()));
            }
        }
        p
    }

    /// The timing parameters of a hang-up report.
    pub fn hangup_params(&self) -> Params {
        let state = self.state();
        let duration = state.duration_secs;
        // Plivo bills per started minute on most routes.
        let bill = duration.div_ceil(60) * 60;
        let mut p: Params = vec![
            ("StartTime".into(), plivo_time(state.start_time)),
            (
                "AnswerTime".into(),
                state.answer_time.map(plivo_time).unwrap_or_default(),
            ),
            (
                "EndTime".into(),
                plivo_time(state.end_time.unwrap_or_else(Utc::now)),
            ),
            ("Duration".into(), duration.to_string()),
            ("BillDuration".into(), bill.to_string()),
            ("BillRate".into(), "0.00850".into()),
            (
                "TotalCost".into(),
                format!("{:.5}", bill as f64 / 60.0 * 0.0085),
            ),
        ];
        if let Some(h) = &state.hangup {
            p.push(("HangupCause".into(), h.cause.clone()));
            p.push(("HangupSource".into(), h.source.into()));
        }
        p
    }

    pub fn view(&self) -> CallView {
        let state = self.state();
        CallView {
            uuid: self.info.uuid.clone(),
            request_uuid: self.info.request_uuid.clone(),
            parent_call_uuid: self.info.parent_call_uuid.clone(),
            from: self.info.from.clone(),
            to: self.info.to.clone(),
            direction: self.info.direction,
            status: state.status,
            hangup_cause: state.hangup.as_ref().map(|h| h.cause.clone()),
            hangup_source: state.hangup.as_ref().map(|h| h.source.to_owned()),
            hangup_reason: state.hangup.as_ref().map(|h| h.reason.clone()),
            start_time: state.start_time,
            answer_time: state.answer_time,
            end_time: state.end_time,
            duration: state.duration_secs,
            events: state.events.iter().cloned().collect(),
        }
    }
}
