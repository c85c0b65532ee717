//! Request bodies, as the official Python SDK sends them (snake_case JSON, methods spelled out, only
//! the parameters that are set).

use serde_json::{Map, Value, json};

use crate::carrier::{AddParticipant, OutboundCall, OutboundMessage};

/// A JSON object of the `Some` entries.
fn object(entries: Vec<(&str, Option<Value>)>) -> Value {
    let map: Map<String, Value> = entries
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect();
    Value::Object(map)
}

fn some(v: impl Into<Value>) -> Option<Value> {
    Some(v.into())
}

fn opt<T: Into<Value>>(v: Option<T>) -> Option<Value> {
    v.map(Into::into)
}

/// `POST` when the URL is set.
fn post_if<T>(url: &Option<T>) -> Option<Value> {
    url.as_ref().map(|_| json!("POST"))
}

pub(super) fn call_body(c: OutboundCall) -> Value {
    let detect = c.machine_detection;
    object(vec![
        ("from", some(c.from)),
        ("to", some(c.to)),
        ("answer_url", some(c.answer_url)),
        ("answer_method", some("POST")),
        ("hangup_url", some(c.hangup_url)),
        ("hangup_method", some("POST")),
        ("ring_method", post_if(&c.ring_url)),
        ("ring_url", opt(c.ring_url)),
        ("ring_timeout", some(c.ring_timeout_secs)),
        ("machine_detection", detect.then(|| json!("true"))),
        (
            "machine_detection_method",
            post_if(&c.machine_detection_url).filter(|_| detect),
        ),
        (
            "machine_detection_url",
            opt(c.machine_detection_url).filter(|_| detect),
        ),
        ("time_limit", opt(c.time_limit_secs)),
        ("caller_name", opt(c.caller_name)),
    ])
}

pub(super) fn message_body(m: OutboundMessage) -> Value {
    let kind = if m.media_urls.is_empty() {
        "sms"
    } else {
        "mms"
    };
    object(vec![
        ("src", some(m.src)),
        ("dst", some(m.dst)),
        ("text", some(m.text)),
        ("type", some(kind)),
        ("method", post_if(&m.status_url)),
        ("url", opt(m.status_url)),
        ("log", some(if m.log { "true" } else { "false" })),
        (
            "media_urls",
            (!m.media_urls.is_empty()).then(|| json!(m.media_urls)),
        ),
    ])
}

pub(super) fn participant_body(p: AddParticipant) -> Value {
    object(vec![
        ("role", some(p.role)),
        ("from", some(p.from)),
        ("to", some(p.to)),
        ("caller_name", opt(p.caller_name)),
        (
            "call_status_callback_method",
            post_if(&p.call_status_callback_url),
        ),
        ("call_status_callback_url", opt(p.call_status_callback_url)),
        ("ring_timeout", opt(p.ring_timeout_secs)),
        ("status_callback_method", post_if(&p.status_callback_url)),
        (
            "status_callback_events",
            post_if(&p.status_callback_url).map(|_| json!(crate::voice::MPC_STATUS_EVENTS)),
        ),
        ("status_callback_url", opt(p.status_callback_url)),
        ("on_exit_action_method", post_if(&p.on_exit_action_url)),
        ("on_exit_action_url", opt(p.on_exit_action_url)),
        ("wait_music_url", opt(p.wait_music_url)),
        ("agent_hold_music_url", opt(p.agent_hold_music_url)),
        ("customer_hold_music_url", opt(p.customer_hold_music_url)),
        ("record", opt(p.record)),
        ("max_duration", opt(p.max_duration_secs)),
        ("start_mpc_on_enter", opt(p.start_mpc_on_enter)),
        ("end_mpc_on_exit", opt(p.end_mpc_on_exit)),
        ("enter_sound", opt(p.enter_sound)),
        ("exit_sound", opt(p.exit_sound)),
        ("mute", opt(p.mute)),
        ("hold", opt(p.hold)),
        ("confirm_key", opt(p.confirm_key)),
        ("confirm_key_sound_url", opt(p.confirm_key_sound_url)),
    ])
}
