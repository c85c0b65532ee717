//! Exact renders: attribute names and order, escaping, sanitising, and the checks of `render_checked`.

use phlo_carrier::xml::*;

use crate::doc;

#[test]
fn renders_the_sdk_sample_compactly() {
    let r = Response::new(vec![
        Element::GetDigits(GetDigits {
            children: vec![Element::Speak(Speak {
                text: "Press 1 for sales".into(),
                voice: Some("WOMAN".into()),
                language: Some("en-US".into()),
                loop_: None,
            })],
            action: Some("http://127.0.0.1:8080/cb/ivr".into()),
            method: Some(Method::Post),
            timeout: Some(5),
            num_digits: Some(1),
            retries: Some(1),
            redirect: Some(true),
            ..GetDigits::default()
        }),
        Element::Dial(Dial {
            targets: vec![DialTarget::Number {
                number: "+14155550101".into(),
                send_digits: None,
            }],
            action: Some("http://127.0.0.1:8080/cb/dial".into()),
            timeout: Some(30),
            caller_id: Some("+14155550100".into()),
            ..Dial::default()
        }),
        Element::Record(Record {
            action: Some("http://127.0.0.1:8080/cb/rec".into()),
            file_format: Some("mp3".into()),
            max_length: Some(60),
            ..Record::default()
        }),
        Element::wait(2),
        Element::Hangup(Hangup::default()),
    ]);
    assert_eq!(
        r.render(),
        doc(concat!(
            r#"<GetDigits action="http://127.0.0.1:8080/cb/ivr" method="POST" timeout="5" numDigits="1" retries="1" redirect="true">"#,
            r#"<Speak voice="WOMAN" language="en-US">Press 1 for sales</Speak></GetDigits>"#,
            r#"<Dial action="http://127.0.0.1:8080/cb/dial" timeout="30" callerId="+14155550100"><Number>+14155550101</Number></Dial>"#,
            r#"<Record action="http://127.0.0.1:8080/cb/rec" fileFormat="mp3" maxLength="60"/>"#,
            r#"<Wait length="2"/><Hangup/>"#,
        ))
    );
}

#[test]
fn every_attribute_has_its_plivo_name() {
    let r = Response::new(vec![
        Element::Wait(Wait {
            length: Some(1),
            silence: Some(true),
            min_silence: Some(200),
            beep: Some(false),
        }),
        Element::Conference(Conference {
            name: "Room 1".into(),
            muted: Some(true),
            enter_sound: Some("beep:1".into()),
            exit_sound: Some(String::new()),
            start_conference_on_enter: Some(false),
            end_conference_on_exit: Some(true),
            stay_alone: Some(true),
            wait_sound: Some("https://w".into()),
            max_members: Some(10),
            record: Some(false),
            time_limit: Some(600),
            action: Some("https://a".into()),
            method: Some(Method::Get),
            callback_url: Some("https://c".into()),
            callback_method: Some(Method::Post),
            redirect: Some(false),
        }),
        Element::Hangup(Hangup {
            reason: Some(HangupReason::Busy),
            schedule: Some(30),
        }),
        Element::Message(Message {
            text: "hi".into(),
            src: Some("+1".into()),
            dst: Some("+2".into()),
            type_: Some("sms".into()),
            callback_url: Some("https://s".into()),
            callback_method: Some(Method::Post),
        }),
        Element::PreAnswer(PreAnswer {
            children: vec![Element::play("https://p.mp3")],
        }),
    ]);
    assert_eq!(
        r.render(),
        doc(concat!(
            r#"<Wait length="1" silence="true" minSilence="200" beep="false"/>"#,
            r#"<Conference muted="true" enterSound="beep:1" exitSound="" startConferenceOnEnter="false" endConferenceOnExit="true" stayAlone="true" waitSound="https://w" maxMembers="10" record="false" timeLimit="600" action="https://a" method="GET" callbackUrl="https://c" callbackMethod="POST" redirect="false">Room 1</Conference>"#,
            r#"<Hangup reason="busy" schedule="30"/>"#,
            r#"<Message src="+1" dst="+2" type="sms" callbackUrl="https://s" callbackMethod="POST">hi</Message>"#,
            r#"<PreAnswer><Play>https://p.mp3</Play></PreAnswer>"#,
        ))
    );
}

#[test]
fn text_and_attributes_are_escaped() {
    let r = Response::new(vec![
        Element::Speak(Speak {
            text: "a&b <c> \"d\" 'e' ]]> \r\n\tf".into(),
            voice: Some("x\"y'z<&>\t\n\r".into()),
            ..Speak::default()
        }),
        Element::speak("<Hangup/>"),
    ]);
    assert_eq!(
        r.render(),
        doc(concat!(
            r#"<Speak voice="x&quot;y&apos;z&lt;&amp;&gt;&#9;&#10;&#13;">a&amp;b &lt;c&gt; &quot;d&quot; &apos;e&apos; ]]&gt; &#13;"#,
            "\n\tf</Speak>",
            "<Speak>&lt;Hangup/&gt;</Speak>",
        ))
    );
    assert_eq!(Response::parse(&r.render()).unwrap(), r, "read back as-is");
}

#[test]
fn characters_xml_cannot_carry_are_dropped_and_the_rest_kept() {
    let text = "a\u{0}b\u{1}\u{1F}c\u{7F}\u{FFFE}\u{FFFF}d😀\u{10FFFF}";
    let r = Response::new(vec![Element::speak(text)]);
    assert_eq!(r.render(), doc("<Speak>abc\u{7F}d😀\u{10FFFF}</Speak>"));
    assert_eq!(sanitize(text), "abc\u{7F}d😀\u{10FFFF}");
    assert_eq!(Response::parse(&r.render()).unwrap(), r.sanitized());
}

#[test]
fn text_bodies_render_open_and_close_tags_even_when_empty() {
    let r = Response::new(vec![Element::speak(""), Element::redirect("")]);
    assert_eq!(r.render(), doc("<Speak></Speak><Redirect></Redirect>"));
    assert_eq!(Response::parse(&r.render()).unwrap(), r);
}

#[test]
fn dial_targets_render_numbers_and_users_with_send_digits() {
    let r = Response::new(vec![Element::Dial(Dial {
        targets: vec![
            DialTarget::Number {
                number: "+14155550101".into(),
                send_digits: Some("wW12#".into()),
            },
            DialTarget::User {
                uri: "sip:a@b.example".into(),
                send_digits: None,
            },
        ],
        ..Dial::default()
    })]);
    assert_eq!(
        r.render(),
        doc(
            r#"<Dial><Number sendDigits="wW12#">+14155550101</Number><User>sip:a@b.example</User></Dial>"#
        )
    );
}

#[test]
fn render_checked_enforces_plivos_size_limit() {
    // Declaration + <Response></Response> + <Speak></Speak> leave this much for the text.
    let overhead = doc("<Speak></Speak>").len();
    let fits = Response::new(vec![Element::speak("x".repeat(MAX_XML_BYTES - overhead))]);
    assert_eq!(fits.render_checked().unwrap().len(), MAX_XML_BYTES);
    let over = Response::new(vec![Element::speak(
        "x".repeat(MAX_XML_BYTES - overhead + 1),
    )]);
    assert_eq!(
        over.render_checked(),
        Err(XmlError::TooLarge {
            size: MAX_XML_BYTES + 1,
            limit: MAX_XML_BYTES
        })
    );
    // Escaping counts: one `&` is five bytes.
    let escaped = Response::new(vec![Element::speak("&".repeat(MAX_XML_BYTES / 5))]);
    assert!(matches!(
        escaped.render_checked(),
        Err(XmlError::TooLarge { .. })
    ));
}

#[test]
fn render_checked_refuses_misplaced_elements_and_empty_dials() {
    let misplaced = Response::new(vec![Element::GetDigits(GetDigits {
        children: vec![Element::Hangup(Hangup::default())],
        ..GetDigits::default()
    })]);
    let err = misplaced.render_checked().unwrap_err();
    assert_eq!(
        err.to_string(),
        "<Hangup> is not allowed inside <GetDigits>"
    );
    let nested = Response::new(vec![Element::PreAnswer(PreAnswer {
        children: vec![Element::PreAnswer(PreAnswer::default())],
    })]);
    assert!(matches!(
        nested.render_checked(),
        Err(XmlError::NotAllowed { .. })
    ));
    let empty = Response::new(vec![Element::Dial(Dial::default())]);
    assert_eq!(empty.render_checked(), Err(XmlError::EmptyDial));
    // `render` itself never fails.
    assert_eq!(empty.render(), doc("<Dial></Dial>"));
}
