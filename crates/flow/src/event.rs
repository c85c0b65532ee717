//! What the runtime feeds the engine: a token arriving at a node, the trigger of a run, or the outside
//! world's answer to what the node asked for. Carrier-neutral: the runtime maps carrier webhooks to these.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Variables, as JSON: what a node exposes to Liquid (`{{Node_Name.var}}`) and to callbacks.
pub type Vars = Map<String, Value>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// The token arrives at the node.
    Enter,
    /// The trigger that started the run; only the Start node takes it.
    Trigger(Trigger),
    /// Digits gathered by IVR Menu or Get Input; empty when the caller entered nothing.
    Digits {
        digits: String,
    },
    /// The prompts of a Play Audio node finished playing.
    PromptFinished,
    Recording(Recording),
    /// The result of Call Forward's dial.
    Dial(DialResult),
    /// The result of one outbound call placed by Initiate Call (`leg` indexes the node's `to` list).
    Call(CallResult),
    /// A delivery report (or the carrier API's refusal) for one Send SMS recipient.
    Sms(SmsReport),
    /// A member event of a conference or multiparty call the token's call is in.
    Conference(ConferenceEvent),
    /// The response (or transport error) of an HTTP Request node's request.
    Http(HttpResult),
    /// The value of the node's counter after the runtime incremented it.
    Counter {
        count: i64,
    },
    /// The wait's timer fired before the awaited event arrived.
    Timeout,
    /// The token's call ended while the node waited for it.
    Hangup {
        cause: String,
    },
}

impl Event {
    /// The event's name, as in its JSON `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Enter => "enter",
            Event::Trigger(_) => "trigger",
            Event::Digits { .. } => "digits",
            Event::PromptFinished => "prompt_finished",
            Event::Recording(_) => "recording",
            Event::Dial(_) => "dial",
            Event::Call(_) => "call",
            Event::Sms(_) => "sms",
            Event::Conference(_) => "conference",
            Event::Http(_) => "http",
            Event::Counter { .. } => "counter",
            Event::Timeout => "timeout",
            Event::Hangup { .. } => "hangup",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Trigger {
    /// `POST /v1/account/{auth_id}/phlo/{phlo_id}`; `params` is the request's payload.
    Api {
        request_uuid: String,
        params: Vars,
    },
    Call(CallDetails),
    Message(MessageDetails),
}

/// What a carrier reports of a call. Every field is optional because carriers fill them in as a call
/// progresses (no `end_time` at answer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallDetails {
    pub uuid: String,
    pub from: String,
    pub to: String,
    pub start_time: Option<String>,
    pub answer_time: Option<String>,
    pub end_time: Option<String>,
    pub hangup_cause: Option<String>,
    pub duration: Option<u64>,
    pub bill_duration: Option<u64>,
    pub bill_rate: Option<String>,
    pub bill_amount: Option<String>,
    pub ring_status: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageDetails {
    pub message_uuid: String,
    pub time: Option<String>,
    pub from: String,
    pub to: String,
    pub msg: String,
    pub units: Option<u32>,
    pub total_rate: Option<String>,
    pub total_amount: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Recording {
    pub url: String,
    pub recording_uuid: String,
    /// Milliseconds, as the seed specifies.
    pub duration_ms: u64,
    /// Unix timestamps.
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
}

/// How a dial or an outbound call ended, in carrier-neutral words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    Answered,
    /// Call Forward: the bridged call ended after being answered.
    Completed,
    NoAnswer,
    Busy,
    Failed,
    /// Answered by a machine (voicemail).
    Machine,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DialResult {
    pub outcome: CallOutcome,
    #[serde(default)]
    pub call: CallDetails,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallResult {
    pub leg: usize,
    pub outcome: CallOutcome,
    #[serde(default)]
    pub call: CallDetails,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SmsReport {
    pub recipient: usize,
    pub message_uuid: String,
    /// Carrier status: queued, sent, delivered, failed, undelivered, rejected.
    pub status: String,
    pub error_code: Option<String>,
    pub units: Option<u32>,
    pub total_rate: Option<String>,
    pub total_amount: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConferenceEvent {
    /// ConferenceEnter, ConferenceExit or Redirect.
    pub event: String,
    /// The token's call left, or the room has no callers left: the node is done.
    pub ended: bool,
    /// The carrier could not put the call in the room.
    pub error: Option<String>,
    pub from: String,
    pub to: String,
    pub direction: String,
    pub caller_name: Option<String>,
    pub bill_rate: Option<String>,
    pub call_uuid: String,
    pub conference_uuid: String,
    pub member_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum HttpResult {
    Response {
        status: u16,
        content_type: Option<String>,
        /// Header names lower-cased.
        #[serde(default)]
        headers: Vec<(String, String)>,
        body: String,
        /// The body was cut at the node's size cap.
        #[serde(default)]
        truncated: bool,
    },
    /// No response: refused by the SSRF guard, DNS, connect, timeout, size cap.
    Error { message: String },
}
