//! The call log: what each party heard, pressed, said and did, in order. This is what tests assert
//! on ("the callee heard X and pressed Y"), so every kind carries the detail a test would name.

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at: DateTime<Utc>,
    /// The number (or SIP URI) of the party the event happened to.
    pub party: String,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    Ringing,
    Answered {
        machine: bool,
    },
    Busy,
    NoAnswer,
    Failed,
    /// The call stopped ringing because the caller gave up or another leg answered first.
    Cancelled {
        reason: String,
    },
    /// Speech (`text`, with its voice and language) or audio (`url`) played to the party.
    Heard {
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        voice: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        language: Option<String>,
    },
    Waited {
        seconds: f64,
    },
    Pressed {
        digits: String,
    },
    Said {
        speech: String,
    },
    /// A prompt of a `live_input` party waits this many real seconds for `POST
    /// /sim/calls/{uuid}/input`.
    AwaitingInput {
        seconds: f64,
    },
    /// A prompt waited for input and the party gave none.
    Silent {
        seconds: f64,
    },
    Dialled {
        number: String,
        call_uuid: String,
    },
    Bridged {
        with: String,
        call_uuid: String,
    },
    /// Digits sent to this party when it answered (`sendDigits`).
    ReceivedDigits {
        digits: String,
    },
    /// Digits the call sent with a `DTMF` element.
    SentDigits {
        digits: String,
    },
    Recorded {
        recording_id: String,
        url: String,
        duration_secs: f64,
        beep: bool,
    },
    /// The whole call is being recorded (Plivo's Record API).
    RecordingStarted {
        recording_id: String,
        url: String,
    },
    Joined {
        room: String,
        room_kind: &'static str,
        member_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        role: Option<String>,
    },
    Left {
        room: String,
        member_id: String,
        reason: String,
    },
    Held {
        room: String,
    },
    Unheld {
        room: String,
    },
    Muted {
        room: String,
    },
    Unmuted {
        room: String,
    },
    Deafened {
        room: String,
    },
    Undeafened {
        room: String,
    },
    Transferred {
        url: String,
    },
    MachineDetected,
    MessageSent {
        to: String,
        text: String,
        message_uuid: String,
    },
    /// The application could not be reached or answered with something that is not valid XML.
    AppError {
        error: String,
    },
    /// An element the simulator does not act on (e.g. `Stream`): logged and skipped.
    Skipped {
        element: String,
    },
    HungUp {
        reason: String,
        cause: String,
    },
}
