//! The engine's carrier-neutral [`VoiceAction`]s as Plivo XML.
//!
//! Every response ends where the runner can see it: an element's action URL, or a trailing `<Redirect>`
//! that catches the call when the element falls through (no input, nothing recorded, left the room).

use phlo_flow::effect::{ConferenceJoin, MultiPartyJoin, Prompt, Screening, Sound};
use phlo_flow::effect::{HangupReason as EngineHangup, VoiceAction};

mod dial;

pub use dial::{dial_attempt, next_dial};

use crate::xml::{
    Conference, Element, GetDigits, Hangup, HangupReason, Method, MultiPartyCall, Play, Record,
    Response, Speak,
};

/// The URLs the runner wants the carrier to call for one wait. Each should identify the wait (its id
/// in the path or query) so that a late callback for a wait that has moved on can be ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActionUrls {
    /// GetDigits `action` (with `Digits`), and the fall-through after it: no `Digits` means no input.
    pub digits: String,
    /// Where the call goes once Play's prompts have played.
    pub prompt_finished: String,
    /// Dial `action`: `DialStatus`, `DialBLegUUID`, ... once the dial attempt is over. Also the target
    /// of a `<Redirect>` (without `DialStatus`) when a Dial has nobody to call.
    pub dial: String,
    /// Record `action` (with `RecordUrl`), and the fall-through after it: no `RecordUrl` means nothing
    /// was recorded. For a Dial with `record`, Plivo posts the call recording here without redirecting
    /// the call (informational: the Dial's result still comes to `dial`).
    pub recording: String,
    /// Conference `callbackUrl` / MultiPartyCall `statusCallbackUrl` (member events). With
    /// `ended=true` added to its query, the fall-through once the call has left the room.
    pub conference: String,
    /// A URL answering [`screening_xml`]: Plivo fetches a Dial's `confirmSound` as XML. Without it a
    /// screened dial still requires the confirm key, but the callee hears no prompt.
    pub screening: Option<String>,
    /// A URL answering [`wait_music_xml`]: Plivo fetches a Conference's `waitSound` as XML. Without
    /// it the music URL itself is used.
    pub wait_music: Option<String>,
    /// Fall-through after a Dial, whose result comes to `dial`: reached only if the carrier continues
    /// past the Dial without requesting its action.
    pub redirect: String,
}

/// Plivo's range for MultiPartyCall `maxDuration`, in seconds.
pub const MPC_MAX_DURATION_SECS: std::ops::RangeInclusive<u32> = 300..=28_800;

/// The events a MultiPartyCall reports to `statusCallbackUrl`.
pub const MPC_STATUS_EVENTS: &str = "participant-state-changes,mpc-state-changes";

/// The XML that performs `action` on the token's call, calling back at `urls`.
///
/// Dial and [`DialMode`](phlo_flow::effect::DialMode): one Plivo `<Dial>` rings all its targets at
/// once, and a response cannot hold several Dial attempts (the first Dial's action ends the document).
/// So a `Parallel` dial is one Dial with every target, while a `Sequential` dial renders a Dial with
/// the **first** target of `to` only. When that Dial's action reports that nobody was connected, the
/// runner asks [`next_dial`] for the next attempt (the same action with `to` starting at the next
/// target) and answers the Dial action with `voice_xml` of it, until a target answers or none is left;
/// only then does it resume the engine with the dial's result (the engine's wait already allows one
/// ring timeout per target). The runner keeps the attempt number in the `dial` URL.
pub fn voice_xml(action: &VoiceAction, urls: &ActionUrls) -> Response {
    let elements = match action {
        VoiceAction::Play { prompts } => {
            let mut v: Vec<Element> = prompts.iter().map(prompt_element).collect();
            v.push(Element::redirect(&urls.prompt_finished));
            v
        }
        VoiceAction::Gather {
            prompts,
            valid_digits,
            max_digits,
            timeout_secs,
            digit_timeout_secs,
            finish_on_key,
            interrupt,
        } => {
            let prompts: Vec<Element> = prompts.iter().map(prompt_element).collect();
            // Prompts inside GetDigits stop at the first key; outside they always play to the end.
            let (mut v, children) = if *interrupt {
                (Vec::new(), prompts)
            } else {
                (prompts, Vec::new())
            };
            v.push(Element::GetDigits(GetDigits {
                children,
                action: Some(urls.digits.clone()),
                timeout: Some(*timeout_secs),
                digit_timeout: Some(*digit_timeout_secs),
                finish_on_key: Some(finish_on_key.clone().unwrap_or_else(|| "none".into())),
                num_digits: Some(*max_digits),
                redirect: Some(true),
                valid_digits: valid_digits.clone(),
                ..GetDigits::default()
            }));
            v.push(Element::redirect(&urls.digits));
            v
        }
        VoiceAction::Record {
            prompt,
            beep,
            max_length_secs,
            silence_timeout_secs,
            finish_on_key,
        } => {
            let mut v: Vec<Element> = prompt.iter().map(prompt_element).collect();
            v.push(Element::Record(Record {
                action: Some(urls.recording.clone()),
                file_format: Some("mp3".into()),
                redirect: Some(true),
                timeout: Some(*silence_timeout_secs),
                max_length: Some(*max_length_secs),
                play_beep: Some(*beep),
                finish_on_key: Some(finish_on_key.clone()),
                ..Record::default()
            }));
            v.push(Element::redirect(&urls.recording));
            v
        }
        VoiceAction::Dial { .. } => dial::elements(action, urls),
        VoiceAction::Hangup { reason } => vec![Element::Hangup(Hangup {
            reason: match reason {
                EngineHangup::Normal => None,
                EngineHangup::Rejected => Some(HangupReason::Rejected),
                EngineHangup::Busy => Some(HangupReason::Busy),
            },
            schedule: None,
        })],
        VoiceAction::JoinConference(join) => conference(join, urls),
        VoiceAction::JoinMultiParty(join) => multi_party(join, urls),
    };
    Response::new(elements)
}

fn conference(j: &ConferenceJoin, urls: &ActionUrls) -> Vec<Element> {
    let sound = |s: Sound| match s {
        Sound::None => String::new(),
        Sound::Beep => "beep:1".into(),
        Sound::DoubleBeep => "beep:2".into(),
    };
    let mut v: Vec<Element> = j.announcement.iter().map(prompt_element).collect();
    v.push(Element::Conference(Conference {
        name: j.name.clone(),
        muted: Some(j.start_muted),
        enter_sound: Some(sound(j.enter_sound)),
        exit_sound: Some(sound(j.exit_sound)),
        start_conference_on_enter: Some(j.start_on_enter),
        end_conference_on_exit: Some(j.end_on_exit),
        wait_sound: j
            .wait_music_url
            .as_ref()
            .map(|music| urls.wait_music.clone().unwrap_or_else(|| music.clone())),
        record: Some(j.record),
        time_limit: Some(j.max_duration_secs),
        callback_url: Some(urls.conference.clone()),
        callback_method: Some(Method::Post),
        ..Conference::default()
    }));
    v.push(Element::redirect(ended_url(&urls.conference)));
    v
}

fn multi_party(j: &MultiPartyJoin, urls: &ActionUrls) -> Vec<Element> {
    let sound = |s: Sound| match s {
        Sound::None => "none".to_owned(),
        Sound::Beep => "beep:1".into(),
        Sound::DoubleBeep => "beep:2".into(),
    };
    let mut v: Vec<Element> = j.prompt.iter().map(prompt_element).collect();
    v.push(Element::MultiPartyCall(MultiPartyCall {
        name: j.name.clone(),
        role: j.role.clone(),
        max_duration: Some(
            j.max_duration_secs
                .clamp(*MPC_MAX_DURATION_SECS.start(), *MPC_MAX_DURATION_SECS.end()),
        ),
        wait_music_url: j.wait_music_url.clone(),
        agent_hold_music_url: j.agent_hold_music_url.clone(),
        customer_hold_music_url: j.customer_hold_music_url.clone(),
        record: Some(j.record),
        status_callback_events: Some(MPC_STATUS_EVENTS.into()),
        status_callback_url: Some(urls.conference.clone()),
        status_callback_method: Some(Method::Post),
        mute: Some(j.start_muted),
        enter_sound: Some(sound(j.enter_sound)),
        exit_sound: Some(sound(j.exit_sound)),
        ..MultiPartyCall::default()
    }));
    v.push(Element::redirect(ended_url(&urls.conference)));
    v
}

/// `<Wait length="seconds"/><Redirect>redirect_url</Redirect>`: keeps a call alive while a step is
/// slow, then asks again.
pub fn keep_alive(redirect_url: &str, seconds: u32) -> Response {
    Response::new(vec![
        Element::wait(seconds),
        Element::redirect(redirect_url),
    ])
}

/// What a screened callee hears before pressing the confirm key (served at [`ActionUrls::screening`]).
pub fn screening_xml(screening: &Screening) -> Response {
    Response::new(vec![prompt_element(&screening.prompt)])
}

/// Music looped for a caller alone in a conference (served at [`ActionUrls::wait_music`]).
pub fn wait_music_xml(music_url: &str) -> Response {
    Response::new(vec![Element::Play(Play {
        url: music_url.to_owned(),
        loop_: Some(0),
    })])
}

/// A prompt as `<Speak voice language>` or `<Play>`; an empty voice or language is left to Plivo.
pub fn prompt_element(prompt: &Prompt) -> Element {
    match prompt {
        Prompt::Speak {
            text,
            language,
            voice,
        } => Element::Speak(Speak {
            text: text.clone(),
            voice: non_empty(voice),
            language: non_empty(language),
            loop_: None,
        }),
        Prompt::Play { url } => Element::play(url),
    }
}

/// `url` with `ended=true` added to its query (before any fragment).
fn ended_url(url: &str) -> String {
    let (base, fragment) = url
        .split_once('#')
        .map_or((url, None), |(b, f)| (b, Some(f)));
    let sep = if base.contains('?') { '&' } else { '?' };
    match fragment {
        Some(f) => format!("{base}{sep}ended=true#{f}"),
        None => format!("{base}{sep}ended=true"),
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}
