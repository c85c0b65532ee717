//! Call Forward's Dial: parallel and sequential targets, screening, extension, recording.

use phlo_carrier::voice::*;
use phlo_flow::effect::{DialMode, Screening, VoiceAction};

use crate::doc;
use crate::voice::{speak, urls, xml};

pub fn forward(mode: DialMode) -> VoiceAction {
    VoiceAction::Dial {
        from: "+14155550100".into(),
        to: vec!["+14155550101".into(), "SIP:agent@example.com".into()],
        mode,
        ring_timeout_secs: 20,
        record: false,
        screening: None,
        send_digits: None,
    }
}

#[test]
fn parallel_dial_rings_every_target_in_one_dial() {
    assert_eq!(
        xml(&forward(DialMode::Parallel), &urls()),
        doc(concat!(
            r#"<Dial action="https://r/cb/dial?w=1&amp;attempt=0" timeout="20" callerId="+14155550100" redirect="true">"#,
            r#"<Number>+14155550101</Number><User>SIP:agent@example.com</User></Dial>"#,
            r#"<Redirect>https://r/cb/next?w=1</Redirect>"#,
        ))
    );
}

#[test]
fn sequential_dial_rings_the_first_target_only() {
    assert_eq!(
        xml(&forward(DialMode::Sequential), &urls()),
        doc(concat!(
            r#"<Dial action="https://r/cb/dial?w=1&amp;attempt=0" timeout="20" callerId="+14155550100" redirect="true">"#,
            r#"<Number>+14155550101</Number></Dial><Redirect>https://r/cb/next?w=1</Redirect>"#,
        ))
    );
}

#[test]
fn sequential_dial_moves_on_only_when_nobody_was_connected() {
    let action = forward(DialMode::Sequential);
    let second = next_dial(&action, 0, "no-answer").unwrap();
    let VoiceAction::Dial { to, .. } = &second else {
        panic!("{second:?}")
    };
    assert_eq!(to, &vec!["SIP:agent@example.com".to_owned()]);
    let second_urls = ActionUrls {
        dial: "https://r/cb/dial?w=1&attempt=1".into(),
        ..urls()
    };
    assert_eq!(
        xml(&second, &second_urls),
        doc(concat!(
            r#"<Dial action="https://r/cb/dial?w=1&amp;attempt=1" timeout="20" callerId="+14155550100" redirect="true">"#,
            r#"<User>SIP:agent@example.com</User></Dial><Redirect>https://r/cb/next?w=1</Redirect>"#,
        ))
    );
    for status in ["busy", "failed", "timeout"] {
        assert_eq!(
            next_dial(&action, 0, status),
            Some(second.clone()),
            "{status}"
        );
    }
    assert_eq!(next_dial(&action, 1, "no-answer"), None, "no target left");
    assert_eq!(next_dial(&action, 0, "completed"), None, "connected");
    assert_eq!(next_dial(&action, 0, "cancel"), None, "the caller left");
    let parallel = forward(DialMode::Parallel);
    assert_eq!(next_dial(&parallel, 0, "no-answer"), None);
    assert_eq!(dial_attempt(&parallel, 0), Some(parallel.clone()));
    assert_eq!(dial_attempt(&parallel, 1), None);
    assert_eq!(dial_attempt(&action, 2), None);
    assert_eq!(
        dial_attempt(&VoiceAction::Play { prompts: vec![] }, 0),
        None
    );
}

#[test]
fn dial_with_screening_extension_and_recording() {
    let action = VoiceAction::Dial {
        from: "+14155550100".into(),
        to: vec!["+14155550101".into()],
        mode: DialMode::Sequential,
        ring_timeout_secs: 30,
        record: true,
        screening: Some(Screening {
            prompt: speak("Press 5 to accept"),
            confirm_key: "5".into(),
        }),
        send_digits: Some("12w3".into()),
    };
    let with_screening = ActionUrls {
        screening: Some("https://r/cb/screen?w=1".into()),
        ..urls()
    };
    assert_eq!(
        xml(&action, &with_screening),
        doc(concat!(
            r#"<Record action="https://r/cb/recording?w=1" fileFormat="mp3" redirect="false" maxLength="14400" startOnDialAnswer="true"/>"#,
            r#"<Dial action="https://r/cb/dial?w=1&amp;attempt=0" timeout="30" callerId="+14155550100" confirmSound="https://r/cb/screen?w=1" confirmKey="5" redirect="true">"#,
            r#"<Number sendDigits="12w3">+14155550101</Number></Dial><Redirect>https://r/cb/next?w=1</Redirect>"#,
        ))
    );
    // Without a screening URL the key is still required.
    assert!(
        xml(&action, &urls()).contains(r#"callerId="+14155550100" confirmKey="5" redirect="true""#)
    );
    let screening = Screening {
        prompt: speak("Press 5 to accept"),
        confirm_key: "5".into(),
    };
    assert_eq!(
        screening_xml(&screening).render(),
        doc(r#"<Speak voice="WOMAN" language="en-US">Press 5 to accept</Speak>"#)
    );
}

#[test]
fn dial_without_targets_goes_straight_to_the_dial_url() {
    let mut action = forward(DialMode::Parallel);
    if let VoiceAction::Dial { to, .. } = &mut action {
        to.clear();
    }
    assert_eq!(
        xml(&action, &urls()),
        doc("<Redirect>https://r/cb/dial?w=1&amp;attempt=0</Redirect>")
    );
}
