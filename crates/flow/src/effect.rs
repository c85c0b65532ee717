//! What the engine asks the runtime to do. Voice actions are carrier-neutral; the carrier adapter turns
//! them into Plivo XML or API calls. Everything here is already rendered: no templates left.

use serde::{Deserialize, Serialize};

use crate::event::Vars;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// Act on the token's current call.
    Voice(VoiceAction),
    /// Place one outbound call; its result comes back as `Event::Call` with the same `leg`.
    PlaceCall(PlaceCall),
    /// Send one SMS/MMS; its delivery report comes back as `Event::Sms` with the same `recipient`.
    SendSms(SendSms),
    /// Perform an HTTP request outside any transaction; the result comes back as `Event::Http`.
    Http(HttpRequest),
    /// Record the whole of a live call (Initiate Call's `record`), through the carrier's Record API.
    RecordCall { call_uuid: String },
    /// Increment a counter in the step's transaction; the new value comes back as `Event::Counter`.
    Counter(CounterIncrement),
    /// Post the node's variables to the configured webhook.
    Callback(Callback),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Prompt {
    Speak {
        text: String,
        language: String,
        voice: String,
    },
    Play {
        url: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum VoiceAction {
    Play {
        prompts: Vec<Prompt>,
    },
    /// Play prompts and collect digits.
    Gather {
        prompts: Vec<Prompt>,
        /// Digits accepted (IVR Menu: its allowed inputs); `None` accepts any.
        valid_digits: Option<String>,
        max_digits: u32,
        timeout_secs: u32,
        /// Seconds allowed between digits.
        digit_timeout_secs: u32,
        finish_on_key: Option<String>,
        /// Stop the prompt when the caller starts typing.
        interrupt: bool,
    },
    Record {
        prompt: Option<Prompt>,
        beep: bool,
        max_length_secs: u32,
        /// Seconds of silence that end the recording.
        silence_timeout_secs: u32,
        finish_on_key: String,
    },
    /// Bridge another party into the call (Call Forward).
    Dial {
        from: String,
        to: Vec<String>,
        mode: DialMode,
        ring_timeout_secs: u32,
        record: bool,
        /// Call screening: the callee hears `prompt` and must press `confirm_key` to accept.
        screening: Option<Screening>,
        /// Digits sent once the callee answers (an extension).
        send_digits: Option<String>,
    },
    Hangup {
        reason: HangupReason,
    },
    JoinConference(ConferenceJoin),
    JoinMultiParty(MultiPartyJoin),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DialMode {
    /// One recipient at a time; the next after the ring timeout.
    Sequential,
    /// All at once; the first to answer wins.
    Parallel,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Screening {
    pub prompt: Prompt,
    pub confirm_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupReason {
    /// A normal hang-up of an answered call.
    Normal,
    Rejected,
    Busy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sound {
    None,
    Beep,
    DoubleBeep,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConferenceJoin {
    pub name: String,
    pub announcement: Option<Prompt>,
    pub wait_music_url: Option<String>,
    pub enter_sound: Sound,
    pub exit_sound: Sound,
    pub start_muted: bool,
    pub start_on_enter: bool,
    pub end_on_exit: bool,
    pub record: bool,
    pub max_duration_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MultiPartyJoin {
    pub name: String,
    /// agent, customer or supervisor.
    pub role: String,
    pub prompt: Option<Prompt>,
    pub wait_music_url: Option<String>,
    pub agent_hold_music_url: Option<String>,
    pub customer_hold_music_url: Option<String>,
    pub enter_sound: Sound,
    pub exit_sound: Sound,
    pub start_muted: bool,
    pub record: bool,
    pub max_duration_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaceCall {
    pub leg: usize,
    pub from: String,
    pub to: String,
    pub ring_timeout_secs: u32,
    pub record: bool,
    pub machine_detection: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendSms {
    pub recipient: usize,
    pub from: String,
    pub to: String,
    pub text: String,
    pub media_urls: Vec<String>,
    /// Whether the carrier may log the text (the seed's "log message content").
    pub log: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpRequest {
    pub method: String,
    /// Query parameters already appended.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<HttpBody>,
    pub auth: HttpAuth,
    pub timeout_secs: u32,
    pub max_response_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HttpBody {
    Json { value: serde_json::Value },
    FormUrlencoded { fields: Vec<(String, String)> },
    FormData { fields: Vec<(String, String)> },
    Text { content_type: String, text: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HttpAuth {
    None,
    Basic {
        username: String,
        password: String,
    },
    Bearer {
        token: String,
    },
    /// OAuth2 client credentials: the runtime fetches a token from `token_url`, then sends it as a bearer.
    Oauth2 {
        token_url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterScope {
    /// One count per run: loop guards ("three wrong inputs then hang up").
    Run,
    /// One count shared by every run of the PHLO.
    Phlo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CounterIncrement {
    pub scope: CounterScope,
    /// The counter node; with the scope and the run or PHLO id it names the counter.
    pub node_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Callback {
    pub url: String,
    pub method: String,
    /// The state the node ended in (or the conference event that happened).
    pub event: String,
    pub phlo_id: String,
    pub run_id: String,
    pub node_id: String,
    pub node_name: String,
    pub node_type: String,
    pub state: Option<String>,
    pub variables: Vars,
}
