//! The carrier's REST side, as the runner uses it: place calls, send messages, control live calls.

use futures::future::BoxFuture;

/// An outbound call; the carrier fetches `answer_url` when it is answered and posts `hangup_url` when
/// it ends (also when it never connected).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundCall {
    pub from: String,
    /// A phone number or `sip:` URI.
    pub to: String,
    pub answer_url: String,
    pub hangup_url: String,
    pub ring_url: Option<String>,
    pub ring_timeout_secs: u32,
    /// Detect answering machines; the result goes to `machine_detection_url`.
    pub machine_detection: bool,
    pub machine_detection_url: Option<String>,
    pub time_limit_secs: Option<u32>,
    pub caller_name: Option<String>,
}

/// The carrier accepted the call; its progress arrives on the call's URLs with `RequestUUID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRequest {
    pub request_uuid: String,
}

/// An SMS, or an MMS when `media_urls` is not empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundMessage {
    pub src: String,
    pub dst: String,
    pub text: String,
    pub media_urls: Vec<String>,
    /// Where delivery reports go.
    pub status_url: Option<String>,
    /// Whether the carrier may log the text.
    pub log: bool,
}

/// A participant the carrier calls and puts into a multiparty call. URLs get POST callbacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddParticipant {
    /// `agent`, `customer` or `supervisor`.
    pub role: String,
    pub from: String,
    /// A phone number or `sip:` URI (agents: several joined with `<` ring at once).
    pub to: String,
    pub caller_name: Option<String>,
    /// The participant call's status (ringing, answered, hangup).
    pub call_status_callback_url: Option<String>,
    pub ring_timeout_secs: Option<u32>,
    /// MPC and participant events, as for `<MultiPartyCall statusCallbackUrl>`.
    pub status_callback_url: Option<String>,
    pub on_exit_action_url: Option<String>,
    pub wait_music_url: Option<String>,
    pub agent_hold_music_url: Option<String>,
    pub customer_hold_music_url: Option<String>,
    pub record: Option<bool>,
    pub max_duration_secs: Option<u32>,
    pub start_mpc_on_enter: Option<bool>,
    pub end_mpc_on_exit: Option<bool>,
    /// `beep:1`, `beep:2`, `none` or a URL.
    pub enter_sound: Option<String>,
    pub exit_sound: Option<String>,
    pub mute: Option<bool>,
    pub hold: Option<bool>,
    /// The callee must press this key to join; `confirm_key_sound_url` tells them so.
    pub confirm_key: Option<String>,
    pub confirm_key_sound_url: Option<String>,
}

/// The calls the carrier placed for an [`AddParticipant`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParticipantAdded {
    pub request_uuid: Option<String>,
    /// `(to, call_uuid)` of each call placed.
    pub calls: Vec<(String, String)>,
}

/// An action on a member of a multiparty call or a conference. Not every action exists for both:
/// the others are [`CarrierError::Unsupported`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberAction {
    /// Multiparty only: the member hears hold music and is not heard.
    Hold,
    Unhold,
    Mute,
    Unmute,
    /// Conference only: the member stops hearing the room.
    Deaf,
    Undeaf,
    /// Removes the member from the room; the member's call continues with the next XML element.
    Kick,
    /// Conference only: ends the member's call (for a multiparty member, hang up its call).
    Hangup,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CarrierError {
    /// The carrier refused the request (4xx other than 408 and 429); repeating it will not help.
    #[error("the carrier refused the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// No answer, a timeout, 408, 429 or 5xx: the request may succeed later. A non-idempotent request
    /// (placing a call, sending a message) may also have been carried out.
    #[error("the carrier is unavailable{}: {message}", status.map(|s| format!(" ({s})")).unwrap_or_default())]
    Unavailable {
        status: Option<u16>,
        message: String,
    },
    /// A success status with a body that does not say what was done.
    #[error("unexpected response from the carrier: {0}")]
    InvalidResponse(String),
    /// The action does not exist for this kind of room, or the carrier has no such operation.
    #[error("not supported by the carrier: {0}")]
    Unsupported(String),
    /// The adapter's configuration is unusable (base URL, credentials).
    #[error("carrier configuration: {0}")]
    Config(String),
}

impl CarrierError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CarrierError::Unavailable { .. })
    }

    /// Whether the carrier said the call, room or member does not exist (e.g. it already ended).
    pub fn is_not_found(&self) -> bool {
        matches!(self, CarrierError::Rejected { status: 404, .. })
    }
}

/// A carrier's REST API. Object-safe: the runtime holds an `Arc<dyn Carrier>` (Plivo, the simulator).
pub trait Carrier: Send + Sync {
    /// Places one outbound call.
    fn place_call(&self, call: OutboundCall) -> BoxFuture<'_, Result<CallRequest, CarrierError>>;

    /// Sends one message; returns the carrier's message uuids (several when split).
    fn send_message(
        &self,
        message: OutboundMessage,
    ) -> BoxFuture<'_, Result<Vec<String>, CarrierError>>;

    /// Hangs up a live call.
    fn hangup_call<'a>(&'a self, call_uuid: &'a str) -> BoxFuture<'a, Result<(), CarrierError>>;

    /// Continues a live call (its A leg) with the XML at `aleg_url`.
    fn transfer_call<'a>(
        &'a self,
        call_uuid: &'a str,
        aleg_url: &'a str,
    ) -> BoxFuture<'a, Result<(), CarrierError>>;

    /// Starts recording a live call (Plivo's Record API); the recording is reported to `callback_url`.
    fn record_call<'a>(
        &'a self,
        call_uuid: &'a str,
        callback_url: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), CarrierError>>;

    /// Calls a participant into the multiparty call `mpc_name`.
    fn mpc_add_participant<'a>(
        &'a self,
        mpc_name: &'a str,
        participant: AddParticipant,
    ) -> BoxFuture<'a, Result<ParticipantAdded, CarrierError>>;

    /// Holds, unholds, mutes, unmutes or kicks a member of a multiparty call.
    fn mpc_member<'a>(
        &'a self,
        mpc_name: &'a str,
        member_id: &'a str,
        action: MemberAction,
    ) -> BoxFuture<'a, Result<(), CarrierError>>;

    /// Mutes, unmutes, deafens, undeafens, kicks or hangs up a member of a conference.
    fn conference_member<'a>(
        &'a self,
        conference_name: &'a str,
        member_id: &'a str,
        action: MemberAction,
    ) -> BoxFuture<'a, Result<(), CarrierError>>;
}
