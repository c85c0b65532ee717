//! Call Forward's Dial: one attempt per response, so sequential forwarding is driven by the runner.

use phlo_flow::effect::{DialMode, VoiceAction};
use phlo_flow::nodes::call_forward::MAX_CALL_SECS;

use super::{ActionUrls, non_empty};
use crate::xml::{Dial, DialTarget, Element, Record};

/// The elements of one dial attempt: the call recording if asked, the Dial, and the fall-through.
pub(super) fn elements(action: &VoiceAction, urls: &ActionUrls) -> Vec<Element> {
    let VoiceAction::Dial {
        from,
        to,
        mode,
        ring_timeout_secs,
        record,
        screening,
        send_digits,
    } = action
    else {
        return Vec::new();
    };
    let targets: Vec<DialTarget> = match mode {
        DialMode::Sequential => &to[..to.len().min(1)],
        DialMode::Parallel => &to[..],
    }
    .iter()
    .map(|t| dial_target(t, send_digits.as_deref()))
    .collect();
    if targets.is_empty() {
        return vec![Element::redirect(&urls.dial)];
    }
    let mut v = Vec::new();
    if *record {
        // Records both legs once the callee answers, without holding up the Dial.
        v.push(Element::Record(Record {
            action: Some(urls.recording.clone()),
            file_format: Some("mp3".into()),
            redirect: Some(false),
            max_length: Some(u32::try_from(MAX_CALL_SECS).unwrap_or(u32::MAX)),
            start_on_dial_answer: Some(true),
            ..Record::default()
        }));
    }
    v.push(Element::Dial(Dial {
        targets,
        action: Some(urls.dial.clone()),
        timeout: Some(*ring_timeout_secs),
        caller_id: non_empty(from),
        confirm_sound: screening.as_ref().and(urls.screening.clone()),
        confirm_key: screening.as_ref().map(|s| s.confirm_key.clone()),
        redirect: Some(true),
        ..Dial::default()
    }));
    v.push(Element::redirect(&urls.redirect));
    v
}

/// The Dial of attempt `attempt` (0-based): `action` with `to` starting at target `attempt`, which
/// [`voice_xml`](super::voice_xml) rings (alone, when sequential). `None` when `action` is not a Dial, when no target is
/// left, or for attempts after the first of a parallel Dial.
pub fn dial_attempt(action: &VoiceAction, attempt: usize) -> Option<VoiceAction> {
    let VoiceAction::Dial { to, mode, .. } = action else {
        return None;
    };
    if attempt >= to.len() || (*mode == DialMode::Parallel && attempt > 0) {
        return None;
    }
    let mut next = action.clone();
    if let VoiceAction::Dial { to, .. } = &mut next {
        to.drain(..attempt);
    }
    Some(next)
}

/// After attempt `attempt` of a sequential Dial ended with Plivo's `DialStatus`, the next attempt
/// (see [`dial_attempt`]), if nobody was connected (`no-answer`, `busy`, `failed`, `timeout`) and a
/// target is left. `completed` (connected) and `cancel` (the caller left) end the dial.
pub fn next_dial(action: &VoiceAction, attempt: usize, dial_status: &str) -> Option<VoiceAction> {
    let moves_on = matches!(dial_status, "no-answer" | "busy" | "failed" | "timeout");
    let sequential = matches!(
        action,
        VoiceAction::Dial {
            mode: DialMode::Sequential,
            ..
        }
    );
    if moves_on && sequential {
        dial_attempt(action, attempt + 1)
    } else {
        None
    }
}

fn dial_target(to: &str, send_digits: Option<&str>) -> DialTarget {
    let send_digits = send_digits.map(str::to_owned);
    if to.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("sip:")) {
        DialTarget::User {
            uri: to.to_owned(),
            send_digits,
        }
    } else {
        DialTarget::Number {
            number: to.to_owned(),
            send_digits,
        }
    }
}
