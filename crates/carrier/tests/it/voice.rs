//! Each voice action's XML, exactly, and sequential dialling.

use phlo_carrier::voice::*;
use phlo_carrier::xml::Response;
use phlo_flow::effect::{
    ConferenceJoin, DialMode, HangupReason, MultiPartyJoin, Prompt, Sound, VoiceAction,
};

use crate::doc;
use crate::voice_dial::forward;

pub fn urls() -> ActionUrls {
    ActionUrls {
        digits: "https://r/cb/digits?w=1".into(),
        prompt_finished: "https://r/cb/played?w=1".into(),
        dial: "https://r/cb/dial?w=1&attempt=0".into(),
        recording: "https://r/cb/recording?w=1".into(),
        conference: "https://r/cb/room?w=1".into(),
        screening: None,
        wait_music: None,
        redirect: "https://r/cb/next?w=1".into(),
    }
}

pub fn speak(text: &str) -> Prompt {
    Prompt::Speak {
        text: text.into(),
        language: "en-US".into(),
        voice: "WOMAN".into(),
    }
}

pub fn play(url: &str) -> Prompt {
    Prompt::Play { url: url.into() }
}

/// Renders `action` (checked: valid nesting, under the size limit).
pub fn xml(action: &VoiceAction, urls: &ActionUrls) -> String {
    voice_xml(action, urls).render_checked().unwrap()
}

fn gather(interrupt: bool, finish_on_key: Option<&str>, valid: Option<&str>) -> VoiceAction {
    VoiceAction::Gather {
        prompts: vec![speak("Press 1 & 2"), play("https://a/menu.mp3")],
        valid_digits: valid.map(Into::into),
        max_digits: 1,
        timeout_secs: 7,
        digit_timeout_secs: 3,
        finish_on_key: finish_on_key.map(Into::into),
        interrupt,
    }
}

#[test]
fn gather_nests_interruptible_prompts_and_falls_through_to_the_digits_url() {
    assert_eq!(
        xml(&gather(true, None, Some("123")), &urls()),
        doc(concat!(
            r#"<GetDigits action="https://r/cb/digits?w=1" timeout="7" digitTimeout="3" finishOnKey="none" numDigits="1" redirect="true" validDigits="123">"#,
            r#"<Speak voice="WOMAN" language="en-US">Press 1 &amp; 2</Speak><Play>https://a/menu.mp3</Play></GetDigits>"#,
            r#"<Redirect>https://r/cb/digits?w=1</Redirect>"#,
        ))
    );
}

#[test]
fn gather_plays_uninterruptible_prompts_before_collecting() {
    assert_eq!(
        xml(&gather(false, Some("#"), None), &urls()),
        doc(concat!(
            r#"<Speak voice="WOMAN" language="en-US">Press 1 &amp; 2</Speak><Play>https://a/menu.mp3</Play>"#,
            r##"<GetDigits action="https://r/cb/digits?w=1" timeout="7" digitTimeout="3" finishOnKey="#" numDigits="1" redirect="true"></GetDigits>"##,
            r#"<Redirect>https://r/cb/digits?w=1</Redirect>"#,
        ))
    );
}

#[test]
fn play_redirects_to_prompt_finished() {
    let action = VoiceAction::Play {
        prompts: vec![
            play("https://a/1.mp3"),
            Prompt::Speak {
                text: "Bye".into(),
                language: String::new(),
                voice: String::new(),
            },
        ],
    };
    assert_eq!(
        xml(&action, &urls()),
        doc(
            "<Play>https://a/1.mp3</Play><Speak>Bye</Speak><Redirect>https://r/cb/played?w=1</Redirect>"
        )
    );
}

#[test]
fn record_prompts_records_and_falls_through_to_the_recording_url() {
    let action = VoiceAction::Record {
        prompt: Some(speak("After the beep")),
        beep: true,
        max_length_secs: 120,
        silence_timeout_secs: 5,
        finish_on_key: "*#".into(),
    };
    assert_eq!(
        xml(&action, &urls()),
        doc(concat!(
            r#"<Speak voice="WOMAN" language="en-US">After the beep</Speak>"#,
            r#"<Record action="https://r/cb/recording?w=1" fileFormat="mp3" redirect="true" timeout="5" maxLength="120" playBeep="true" finishOnKey="*#"/>"#,
            r#"<Redirect>https://r/cb/recording?w=1</Redirect>"#,
        ))
    );
    let silent = VoiceAction::Record {
        prompt: None,
        beep: false,
        max_length_secs: 60,
        silence_timeout_secs: 15,
        finish_on_key: "#".into(),
    };
    assert_eq!(
        xml(&silent, &urls()),
        doc(concat!(
            r##"<Record action="https://r/cb/recording?w=1" fileFormat="mp3" redirect="true" timeout="15" maxLength="60" playBeep="false" finishOnKey="#"/>"##,
            r#"<Redirect>https://r/cb/recording?w=1</Redirect>"#,
        ))
    );
}

#[test]
fn hangup_reasons() {
    let hangup = |reason| xml(&VoiceAction::Hangup { reason }, &urls());
    assert_eq!(hangup(HangupReason::Normal), doc("<Hangup/>"));
    assert_eq!(
        hangup(HangupReason::Rejected),
        doc(r#"<Hangup reason="rejected"/>"#)
    );
    assert_eq!(
        hangup(HangupReason::Busy),
        doc(r#"<Hangup reason="busy"/>"#)
    );
}

fn room() -> ConferenceJoin {
    ConferenceJoin {
        name: "Sales <1>".into(),
        announcement: Some(play("https://a/welcome.mp3")),
        wait_music_url: Some("https://a/music.mp3".into()),
        enter_sound: Sound::Beep,
        exit_sound: Sound::None,
        start_muted: false,
        start_on_enter: true,
        end_on_exit: false,
        record: true,
        max_duration_secs: 3600,
    }
}

#[test]
fn conference_announces_joins_and_falls_through_with_ended() {
    assert_eq!(
        xml(&VoiceAction::JoinConference(room()), &urls()),
        doc(concat!(
            r#"<Play>https://a/welcome.mp3</Play>"#,
            r#"<Conference muted="false" enterSound="beep:1" exitSound="" startConferenceOnEnter="true" endConferenceOnExit="false" waitSound="https://a/music.mp3" record="true" timeLimit="3600" callbackUrl="https://r/cb/room?w=1" callbackMethod="POST">Sales &lt;1&gt;</Conference>"#,
            r#"<Redirect>https://r/cb/room?w=1&amp;ended=true</Redirect>"#,
        ))
    );
    let served = ActionUrls {
        wait_music: Some("https://r/cb/music?w=1".into()),
        conference: "https://r/cb/room".into(),
        ..urls()
    };
    let quiet = ConferenceJoin {
        announcement: None,
        exit_sound: Sound::DoubleBeep,
        ..room()
    };
    let rendered = xml(&VoiceAction::JoinConference(quiet), &served);
    assert!(rendered.contains(r#"exitSound="beep:2""#), "{rendered}");
    assert!(
        rendered.contains(r#"waitSound="https://r/cb/music?w=1""#),
        "{rendered}"
    );
    assert!(rendered.ends_with("<Redirect>https://r/cb/room?ended=true</Redirect></Response>"));
    assert_eq!(
        wait_music_xml("https://a/music.mp3").render(),
        doc(r#"<Play loop="0">https://a/music.mp3</Play>"#)
    );
}

fn mpc(max_duration_secs: u32) -> MultiPartyJoin {
    MultiPartyJoin {
        name: "Support".into(),
        role: "agent".into(),
        prompt: Some(speak("Connecting")),
        wait_music_url: Some("https://a/wait.mp3".into()),
        agent_hold_music_url: Some("https://a/agent.mp3".into()),
        customer_hold_music_url: None,
        enter_sound: Sound::None,
        exit_sound: Sound::DoubleBeep,
        start_muted: true,
        record: false,
        max_duration_secs,
    }
}

#[test]
fn multiparty_call_reports_to_the_conference_url_and_falls_through_with_ended() {
    assert_eq!(
        xml(&VoiceAction::JoinMultiParty(mpc(7200)), &urls()),
        doc(concat!(
            r#"<Speak voice="WOMAN" language="en-US">Connecting</Speak>"#,
            r#"<MultiPartyCall role="agent" maxDuration="7200" waitMusicUrl="https://a/wait.mp3" agentHoldMusicUrl="https://a/agent.mp3" record="false" "#,
            r#"statusCallbackEvents="participant-state-changes,mpc-state-changes" statusCallbackUrl="https://r/cb/room?w=1" statusCallbackMethod="POST" "#,
            r#"mute="true" enterSound="none" exitSound="beep:2">Support</MultiPartyCall>"#,
            r#"<Redirect>https://r/cb/room?w=1&amp;ended=true</Redirect>"#,
        ))
    );
    let long = xml(&VoiceAction::JoinMultiParty(mpc(86_400)), &urls());
    assert!(
        long.contains(r#"maxDuration="28800""#),
        "clamped to Plivo's range: {long}"
    );
    let short = xml(&VoiceAction::JoinMultiParty(mpc(60)), &urls());
    assert!(short.contains(r#"maxDuration="300""#), "{short}");
}

#[test]
fn keep_alive_waits_then_asks_again() {
    assert_eq!(
        keep_alive("https://r/cb/resume?w=1&n=2", 3).render(),
        doc(r#"<Wait length="3"/><Redirect>https://r/cb/resume?w=1&amp;n=2</Redirect>"#)
    );
}

#[test]
fn every_mapping_reads_back() {
    let actions = [
        gather(true, Some("#"), Some("12")),
        forward(DialMode::Parallel),
        VoiceAction::JoinConference(room()),
        VoiceAction::JoinMultiParty(mpc(600)),
    ];
    for action in actions {
        let r = voice_xml(&action, &urls());
        assert_eq!(Response::parse(&r.render()).unwrap(), r, "{action:?}");
    }
}
