//! The wire messages shared by gateway and workers: JSON in a versioned envelope
//! `{"v":1,"msg":{…}}`, each with a deterministic dedup id.
//!
//! Messages carry ids and small inputs only; everything else is read from Postgres.

use bytes::Bytes;
use phlo_flow::Event;
use phlo_flow::effect::{HttpRequest, PlaceCall, SendSms};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

/// The envelope version this build writes and reads. Bump it (and keep reading the old one
/// during a rolling deploy) for changes old readers would misread.
pub const WIRE_VERSION: u32 = 1;

/// Work for the step queue.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
#[expect(
    clippy::large_enum_variant,
    reason = "decoded once per delivery and dropped; a plain `Event` keeps construction simple"
)]
pub enum StepMessage {
    /// The token should run its current node (seq = the token's expected step sequence).
    Advance { run_id: Uuid, token: i32, seq: i32 },
    /// An event for a parked token; applied only if the token still waits on `wait_id`.
    Resume {
        run_id: Uuid,
        token: i32,
        wait_id: i32,
        event: Event,
    },
}

/// An HTTP Request node's request, performed outside any transaction; the response comes back
/// as a `Resume` with `Event::Http` for the same wait.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct HttpMessage {
    pub run_id: Uuid,
    pub token: i32,
    pub wait_id: i32,
    pub request: HttpRequest,
}

/// A request to the carrier's REST API, performed outside any transaction. Failures the carrier
/// reports come back as events for the same wait (`Sms` failed, `Call` failed).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CarrierMessage {
    pub run_id: Uuid,
    pub token: i32,
    pub wait_id: i32,
    pub command: CarrierCommand,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum CarrierCommand {
    /// Initiate Call: one outbound leg; the carrier calls `answer_url` / `hangup_url` back.
    PlaceCall {
        call: PlaceCall,
        answer_url: String,
        hangup_url: String,
    },
    /// Send SMS: one message; delivery reports go to `status_url`.
    SendSms { sms: SendSms, status_url: String },
    /// End a live call (its run ended or was cancelled).
    Hangup { call_uuid: String },
    /// Record a whole live call (Initiate Call's `record`).
    RecordCall { call_uuid: String },
}

impl CarrierMessage {
    pub fn msg_id(&self) -> String {
        let what = match &self.command {
            CarrierCommand::PlaceCall { call, .. } => format!("call{}", call.leg),
            CarrierCommand::SendSms { sms, .. } => format!("sms{}", sms.recipient),
            CarrierCommand::Hangup { call_uuid } => format!("hangup:{call_uuid}"),
            CarrierCommand::RecordCall { call_uuid } => format!("record:{call_uuid}"),
        };
        format!(
            "carrier:{}:{}:{}:{what}",
            self.run_id, self.token, self.wait_id
        )
    }

    pub fn to_bytes(&self) -> Bytes {
        encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode(bytes, "carrier message")
    }
}

/// An event callback to deliver (or to attempt again): everything else is in its Postgres row. The
/// delivery id is also the `webhook-id` the receiver sees.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallbackMessage {
    pub delivery_id: Uuid,
}

impl CallbackMessage {
    /// `cb:{delivery_id}` for the first publish. Re-publishes (the scheduler, a redelivery) add a
    /// suffix: NATS would drop the same id as a duplicate for two minutes.
    pub fn msg_id(&self) -> String {
        format!("cb:{}", self.delivery_id)
    }

    pub fn to_bytes(&self) -> Bytes {
        encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode(bytes, "callback message")
    }
}

/// The payload is not a message this build understands. Permanent: redelivering it cannot
/// help, so consumers answer [`crate::Outcome::Term`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "message has wire version {found}, this build reads version {WIRE_VERSION} \
         (a newer publisher during a rolling deploy?)"
    )]
    UnknownVersion { found: u64 },
    #[error("message is not a valid v{WIRE_VERSION} {kind}")]
    Invalid {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl StepMessage {
    pub fn run_id(&self) -> Uuid {
        match self {
            StepMessage::Advance { run_id, .. } | StepMessage::Resume { run_id, .. } => *run_id,
        }
    }

    /// Deterministic, so that a re-publish (retry, outbox relay) of the same step is dropped by
    /// NATS inside the dedup window.
    pub fn msg_id(&self) -> String {
        match self {
            StepMessage::Advance { run_id, token, seq } => format!("adv:{run_id}:{token}:{seq}"),
            StepMessage::Resume {
                run_id,
                token,
                wait_id,
                event,
            } => {
                // The kind keeps a timer and a real event for one wait apart; the digest keeps
                // apart several real events for one wait (SMS "queued" then "sent").
                let (kind, digest) = event_identity(event);
                format!("res:{run_id}:{token}:{wait_id}:{kind}:{digest:016x}")
            }
        }
    }

    pub fn to_bytes(&self) -> Bytes {
        encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode(bytes, "step message")
    }
}

impl HttpMessage {
    /// One request per wait: a repeat is a re-publish of the same request.
    pub fn msg_id(&self) -> String {
        format!("http:{}:{}:{}", self.run_id, self.token, self.wait_id)
    }

    pub fn to_bytes(&self) -> Bytes {
        encode(self)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode(bytes, "http message")
    }
}

#[derive(Serialize)]
struct EnvelopeOut<'a, T> {
    v: u32,
    msg: &'a T,
}

#[derive(Deserialize)]
struct EnvelopeIn<T> {
    msg: T,
}

/// Read first, alone, so an unknown version is reported as such rather than as a shape error.
#[derive(Deserialize)]
struct VersionOnly {
    v: u64,
}

fn encode<T: Serialize>(msg: &T) -> Bytes {
    let envelope = EnvelopeOut {
        v: WIRE_VERSION,
        msg,
    };
    #[expect(
        clippy::expect_used,
        reason = "plain structs with string-keyed maps always serialize"
    )]
    let json = serde_json::to_vec(&envelope).expect("message serializes");
    Bytes::from(json)
}

fn decode<T: DeserializeOwned>(bytes: &[u8], kind: &'static str) -> Result<T, DecodeError> {
    let invalid = |source| DecodeError::Invalid { kind, source };
    let VersionOnly { v } = serde_json::from_slice(bytes).map_err(invalid)?;
    if v != u64::from(WIRE_VERSION) {
        return Err(DecodeError::UnknownVersion { found: v });
    }
    let EnvelopeIn { msg } = serde_json::from_slice(bytes).map_err(invalid)?;
    Ok(msg)
}

/// The event's serde tag (`kind`) and a stable FNV-1a digest of its JSON. Hand-rolled rather
/// than `DefaultHasher`, whose output may change between Rust releases: gateway and worker
/// builds must agree.
fn event_identity(event: &Event) -> (String, u64) {
    let json = serde_json::to_value(event).unwrap_or_default();
    let kind = json
        .get("kind")
        .and_then(|kind| kind.as_str())
        .unwrap_or("event")
        .to_owned();
    let digest = json
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    (kind, digest)
}
