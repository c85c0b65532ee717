//! The Plivo XML builder with user text in every text and attribute slot: the document is always
//! well-formed (roxmltree parses it), user text never becomes markup (exactly the elements we built
//! are there, each text and attribute reads back as the sanitised input), and our own parser reads
//! back what was rendered. Input: up to eight NUL-separated strings.

#![no_main]

use libfuzzer_sys::fuzz_target;
use phlo_carrier::xml::{
    Conference, Dial, DialTarget, Element, Message, Response, Speak, sanitize,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0').map(str::to_owned);
    let mut next = || parts.next().unwrap_or_default();
    let (speech, voice, number, caller, room, sound, sms, dst) =
        (next(), next(), next(), next(), next(), next(), next(), next());
    let response = Response::new(vec![
        Element::Speak(Speak {
            text: speech.clone(),
            voice: Some(voice.clone()),
            ..Speak::default()
        }),
        Element::Dial(Dial {
            targets: vec![DialTarget::Number {
                number: number.clone(),
                send_digits: Some(caller.clone()),
            }],
            caller_id: Some(caller.clone()),
            ..Dial::default()
        }),
        Element::Conference(Conference {
            name: room.clone(),
            wait_sound: Some(sound.clone()),
            ..Conference::default()
        }),
        Element::Message(Message {
            text: sms.clone(),
            dst: Some(dst.clone()),
            ..Message::default()
        }),
        Element::redirect(sound.clone()),
    ]);
    let xml = response.render();
    let doc = match roxmltree::Document::parse(&xml) {
        Ok(doc) => doc,
        Err(e) => panic!("rendered XML does not parse ({e}): {xml}"),
    };
    let elements: Vec<&str> = doc
        .descendants()
        .filter(|n| n.is_element())
        .map(|n| n.tag_name().name())
        .collect();
    assert_eq!(
        elements,
        ["Response", "Speak", "Dial", "Number", "Conference", "Message", "Redirect"],
        "{xml}"
    );
    let element = |tag: &str| {
        doc.descendants()
            .find(|n| n.has_tag_name(tag))
            .unwrap_or_else(|| panic!("no <{tag}> in {xml}"))
    };
    let body = |tag: &str| -> String {
        element(tag).children().filter_map(|n| n.text()).collect()
    };
    assert_eq!(body("Speak"), sanitize(&speech));
    assert_eq!(element("Speak").attribute("voice"), Some(sanitize(&voice).as_ref()));
    assert_eq!(body("Number"), sanitize(&number));
    assert_eq!(element("Number").attribute("sendDigits"), Some(sanitize(&caller).as_ref()));
    assert_eq!(element("Dial").attribute("callerId"), Some(sanitize(&caller).as_ref()));
    assert_eq!(body("Conference"), sanitize(&room));
    assert_eq!(element("Conference").attribute("waitSound"), Some(sanitize(&sound).as_ref()));
    assert_eq!(body("Message"), sanitize(&sms));
    assert_eq!(element("Message").attribute("dst"), Some(sanitize(&dst).as_ref()));
    assert_eq!(body("Redirect"), sanitize(&sound));
    assert_eq!(Response::parse(&xml), Ok(response.sanitized()), "{xml}");
});
