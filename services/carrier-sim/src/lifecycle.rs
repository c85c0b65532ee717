//! A call's lifecycle: its direction and statuses, why it ends, and the instructions (transfer,
//! hang up) that the REST API, the parties' scripts and the rooms send to the call's session.

use serde::Serialize;

use crate::webhooks::Fetch;
use crate::xml::Node;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    Queued,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    Failed,
    Cancel,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Ringing => "ringing",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Busy => "busy",
            Self::NoAnswer => "no-answer",
            Self::Failed => "failed",
            Self::Cancel => "cancel",
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Ringing | Self::InProgress)
    }
}

/// Why a call ended: Plivo's `HangupCause` and `HangupSource`, and a readable reason for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HangupInfo {
    pub cause: String,
    pub source: &'static str,
    pub reason: String,
}

impl HangupInfo {
    pub fn new(cause: &str, source: &'static str, reason: impl Into<String>) -> Self {
        Self {
            cause: cause.to_owned(),
            source,
            reason: reason.into(),
        }
    }

    /// The application failed to give the call XML; the cause is spelled as the simulator's
    /// contract promises so tests can match it.
    pub fn app_error(reason: impl Into<String>) -> Self {
        Self::new("application error", "Error", reason)
    }
}

/// What a call runs next: a document fetched from a URL, or one already in hand (the simulator's
/// own, e.g. for a participant dialled into a multiparty call).
#[derive(Debug, Clone)]
pub enum Start {
    Fetch(Fetch),
    Doc(Vec<Node>),
}

/// The latest instruction for a call's session.
#[derive(Debug, Clone)]
pub enum Control {
    Running,
    Transfer(Start),
    Hangup(HangupInfo),
}

/// Why a call's current activity was interrupted.
#[derive(Debug, Clone)]
pub enum Stop {
    Hangup(HangupInfo),
    Transfer(Start),
}
