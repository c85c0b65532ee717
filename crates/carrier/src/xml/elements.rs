//! The elements of a Plivo XML response. Each attribute field renders as the camelCase name beside it,
//! in the order the official Python SDK renders them; `None` renders nothing (Plivo's default applies).

use super::Element;
use super::attr::element;

/// HTTP method of a callback or redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// `<Hangup reason>`: why an unanswered call is refused. No reason is a normal hang-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupReason {
    Rejected,
    Busy,
}

element! {
    /// Text to speech. The text is always plain text (escaped), never SSML markup.
    Speak <"Speak"> [text: String] {
        voice: Option<String> = "voice",
        language: Option<String> = "language",
        loop_: Option<u32> = "loop",
    }
}

element! {
    /// Plays an audio file; `loop_ = Some(0)` repeats it forever.
    Play <"Play"> [url: String] {
        loop_: Option<u32> = "loop",
    }
}

element! {
    /// Pauses for `length` seconds.
    Wait <"Wait"> [] {
        length: Option<u32> = "length",
        silence: Option<bool> = "silence",
        min_silence: Option<u32> = "minSilence",
        beep: Option<bool> = "beep",
    }
}

element! {
    /// Collects DTMF digits; `children` (Speak, Play, Wait) play while it waits for the first digit.
    GetDigits <"GetDigits"> [children: Vec<Element>] {
        action: Option<String> = "action",
        method: Option<Method> = "method",
        timeout: Option<u32> = "timeout",
        digit_timeout: Option<u32> = "digitTimeout",
        finish_on_key: Option<String> = "finishOnKey",
        num_digits: Option<u32> = "numDigits",
        retries: Option<u32> = "retries",
        redirect: Option<bool> = "redirect",
        play_beep: Option<bool> = "playBeep",
        valid_digits: Option<String> = "validDigits",
        invalid_digits_sound: Option<String> = "invalidDigitsSound",
    }
}

element! {
    /// Collects DTMF or speech; `children` (Speak, Play, Wait) are the prompt.
    GetInput <"GetInput"> [children: Vec<Element>] {
        action: String = "action",
        method: Option<Method> = "method",
        input_type: Option<String> = "inputType",
        execution_timeout: Option<u32> = "executionTimeout",
        digit_end_timeout: Option<String> = "digitEndTimeout",
        speech_end_timeout: Option<String> = "speechEndTimeout",
        finish_on_key: Option<String> = "finishOnKey",
        num_digits: Option<u32> = "numDigits",
        speech_model: Option<String> = "speechModel",
        hints: Option<String> = "hints",
        language: Option<String> = "language",
        redirect: Option<bool> = "redirect",
    }
}

/// One party a `<Dial>` rings. Several targets in one Dial ring at the same time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// `<Number sendDigits>` with a phone number body.
    Number {
        number: String,
        send_digits: Option<String>,
    },
    /// `<User sendDigits>` with a `sip:` URI body.
    User {
        uri: String,
        send_digits: Option<String>,
    },
}

element! {
    /// Bridges another party into the call. Needs at least one target.
    Dial <"Dial"> [targets: Vec<DialTarget>] {
        action: Option<String> = "action",
        method: Option<Method> = "method",
        hangup_on_star: Option<bool> = "hangupOnStar",
        time_limit: Option<u32> = "timeLimit",
        timeout: Option<u32> = "timeout",
        caller_id: Option<String> = "callerId",
        caller_name: Option<String> = "callerName",
        confirm_sound: Option<String> = "confirmSound",
        confirm_timeout: Option<u32> = "confirmTimeout",
        confirm_key: Option<String> = "confirmKey",
        dial_music: Option<String> = "dialMusic",
        callback_url: Option<String> = "callbackUrl",
        callback_method: Option<Method> = "callbackMethod",
        redirect: Option<bool> = "redirect",
    }
}

element! {
    /// Records the caller (or, with `record_session`/`start_on_dial_answer`, the whole call).
    Record <"Record"> [] {
        action: Option<String> = "action",
        method: Option<Method> = "method",
        file_format: Option<String> = "fileFormat",
        redirect: Option<bool> = "redirect",
        timeout: Option<u32> = "timeout",
        max_length: Option<u32> = "maxLength",
        play_beep: Option<bool> = "playBeep",
        finish_on_key: Option<String> = "finishOnKey",
        record_session: Option<bool> = "recordSession",
        start_on_dial_answer: Option<bool> = "startOnDialAnswer",
        callback_url: Option<String> = "callbackUrl",
        callback_method: Option<Method> = "callbackMethod",
    }
}

element! {
    /// Puts the call in the conference room `name`.
    Conference <"Conference"> [name: String] {
        muted: Option<bool> = "muted",
        enter_sound: Option<String> = "enterSound",
        exit_sound: Option<String> = "exitSound",
        start_conference_on_enter: Option<bool> = "startConferenceOnEnter",
        end_conference_on_exit: Option<bool> = "endConferenceOnExit",
        stay_alone: Option<bool> = "stayAlone",
        wait_sound: Option<String> = "waitSound",
        max_members: Option<u32> = "maxMembers",
        record: Option<bool> = "record",
        time_limit: Option<u32> = "timeLimit",
        action: Option<String> = "action",
        method: Option<Method> = "method",
        callback_url: Option<String> = "callbackUrl",
        callback_method: Option<Method> = "callbackMethod",
        redirect: Option<bool> = "redirect",
    }
}

element! {
    /// Puts the call in the multiparty call `name` with a role (agent, customer, supervisor).
    MultiPartyCall <"MultiPartyCall"> [name: String] {
        role: String = "role",
        max_duration: Option<u32> = "maxDuration",
        max_participants: Option<u32> = "maxParticipants",
        wait_music_url: Option<String> = "waitMusicUrl",
        agent_hold_music_url: Option<String> = "agentHoldMusicUrl",
        customer_hold_music_url: Option<String> = "customerHoldMusicUrl",
        record: Option<bool> = "record",
        status_callback_events: Option<String> = "statusCallbackEvents",
        status_callback_url: Option<String> = "statusCallbackUrl",
        status_callback_method: Option<Method> = "statusCallbackMethod",
        stay_alone: Option<bool> = "stayAlone",
        mute: Option<bool> = "mute",
        hold: Option<bool> = "hold",
        start_mpc_on_enter: Option<bool> = "startMpcOnEnter",
        end_mpc_on_exit: Option<bool> = "endMpcOnExit",
        enter_sound: Option<String> = "enterSound",
        exit_sound: Option<String> = "exitSound",
        on_exit_action_url: Option<String> = "onExitActionUrl",
        on_exit_action_method: Option<Method> = "onExitActionMethod",
    }
}

element! {
    /// Ends the call, optionally after `schedule` seconds.
    Hangup <"Hangup"> [] {
        reason: Option<HangupReason> = "reason",
        schedule: Option<u32> = "schedule",
    }
}

element! {
    /// Continues the call with the XML at `url`.
    Redirect <"Redirect"> [url: String] {
        method: Option<Method> = "method",
    }
}

element! {
    /// Early media before the call is answered: Speak, Play, Wait, GetDigits, Redirect, Message.
    PreAnswer <"PreAnswer"> [children: Vec<Element>] {}
}

element! {
    /// Sends an SMS (the reply to an incoming message, or during a call).
    Message <"Message"> [text: String] {
        src: Option<String> = "src",
        dst: Option<String> = "dst",
        type_: Option<String> = "type",
        callback_url: Option<String> = "callbackUrl",
        callback_method: Option<Method> = "callbackMethod",
    }
}
