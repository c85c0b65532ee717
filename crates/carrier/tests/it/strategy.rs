//! Proptest strategies: every element with every attribute, valid nesting, and strings biased towards
//! what breaks XML (markup characters, controls, `]]>`, non-BMP characters).

use phlo_carrier::xml::*;
use proptest::prelude::*;

fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        2 => prop::sample::select(vec![
            '&', '<', '>', '"', '\'', ']', '\t', '\n', '\r', ' ', '\0', '\u{1}', '\u{1F}', '\u{7F}',
            '\u{85}', '\u{FFFE}', '\u{FFFF}', '\u{FEFF}', '😀', '\u{10FFFF}', 'a', 'é',
        ]),
    ]
}

/// Any string, leaning on XML's special cases.
pub fn text() -> impl Strategy<Value = String> {
    let fragment = prop_oneof![
        4 => tricky_char().prop_map(String::from),
        1 => prop::sample::select(vec![
            "]]>", "<Hangup/>", "</Speak>", "<![CDATA[", "<!--", "&amp;", "&#0;", "&bogus;", "<?xml",
        ])
        .prop_map(String::from),
    ];
    prop::collection::vec(fragment, 0..12).prop_map(|parts| parts.concat())
}

fn os() -> impl Strategy<Value = Option<String>> {
    prop::option::of(text())
}

fn ou() -> impl Strategy<Value = Option<u32>> {
    prop::option::of(any::<u32>())
}

fn ob() -> impl Strategy<Value = Option<bool>> {
    prop::option::of(any::<bool>())
}

fn om() -> impl Strategy<Value = Option<Method>> {
    prop::option::of(prop_oneof![Just(Method::Get), Just(Method::Post)])
}

fn speak() -> impl Strategy<Value = Element> {
    (text(), os(), os(), ou()).prop_map(|(text, voice, language, loop_)| {
        Element::Speak(Speak {
            text,
            voice,
            language,
            loop_,
        })
    })
}

fn play() -> impl Strategy<Value = Element> {
    (text(), ou()).prop_map(|(url, loop_)| Element::Play(Play { url, loop_ }))
}

fn wait() -> impl Strategy<Value = Element> {
    (ou(), ob(), ou(), ob()).prop_map(|(length, silence, min_silence, beep)| {
        Element::Wait(Wait {
            length,
            silence,
            min_silence,
            beep,
        })
    })
}

fn prompts() -> impl Strategy<Value = Vec<Element>> {
    prop::collection::vec(prop_oneof![speak(), play(), wait()], 0..3)
}

fn get_digits() -> impl Strategy<Value = Element> {
    let a = (os(), om(), ou(), ou(), os(), ou());
    let b = (ou(), ob(), ob(), os(), os());
    (a, b, prompts()).prop_map(
        |((action, method, timeout, dt, fok, nd), (r, red, pb, vd, ids), c)| {
            Element::GetDigits(GetDigits {
                children: c,
                action,
                method,
                timeout,
                digit_timeout: dt,
                finish_on_key: fok,
                num_digits: nd,
                retries: r,
                redirect: red,
                play_beep: pb,
                valid_digits: vd,
                invalid_digits_sound: ids,
            })
        },
    )
}

fn get_input() -> impl Strategy<Value = Element> {
    let a = (text(), om(), os(), ou(), os(), os());
    let b = (os(), ou(), os(), os(), os(), ob());
    (a, b, prompts()).prop_map(
        |((action, method, it, et, det, set), (fok, nd, sm, h, l, r), c)| {
            Element::GetInput(GetInput {
                children: c,
                action,
                method,
                input_type: it,
                execution_timeout: et,
                digit_end_timeout: det,
                speech_end_timeout: set,
                finish_on_key: fok,
                num_digits: nd,
                speech_model: sm,
                hints: h,
                language: l,
                redirect: r,
            })
        },
    )
}

fn dial() -> impl Strategy<Value = Element> {
    let target = prop_oneof![
        (text(), os()).prop_map(|(number, send_digits)| DialTarget::Number {
            number,
            send_digits
        }),
        (text(), os()).prop_map(|(uri, send_digits)| DialTarget::User { uri, send_digits }),
    ];
    let a = (os(), om(), ob(), ou(), ou(), os(), os());
    let b = (os(), ou(), os(), os(), os(), om(), ob());
    let targets = prop::collection::vec(target, 1..3);
    (a, b, targets).prop_map(
        |((ac, m, hos, tl, to, cid, cn), (cs, ct, ck, dm, cu, cm, r), t)| {
            Element::Dial(Dial {
                targets: t,
                action: ac,
                method: m,
                hangup_on_star: hos,
                time_limit: tl,
                timeout: to,
                caller_id: cid,
                caller_name: cn,
                confirm_sound: cs,
                confirm_timeout: ct,
                confirm_key: ck,
                dial_music: dm,
                callback_url: cu,
                callback_method: cm,
                redirect: r,
            })
        },
    )
}

fn record() -> impl Strategy<Value = Element> {
    let a = (os(), om(), os(), ob(), ou(), ou());
    let b = (ob(), os(), ob(), ob(), os(), om());
    (a, b).prop_map(|((ac, m, ff, r, to, ml), (pb, fok, rs, sod, cu, cm))| {
        Element::Record(Record {
            action: ac,
            method: m,
            file_format: ff,
            redirect: r,
            timeout: to,
            max_length: ml,
            play_beep: pb,
            finish_on_key: fok,
            record_session: rs,
            start_on_dial_answer: sod,
            callback_url: cu,
            callback_method: cm,
        })
    })
}

fn conference() -> impl Strategy<Value = Element> {
    let a = (ob(), os(), os(), ob(), ob(), ob(), os(), ou());
    let b = (ob(), ou(), os(), om(), os(), om(), ob());
    (text(), a, b).prop_map(
        |(name, (mu, es, xs, s, e, sa, ws, mm), (rec, tl, ac, m, cu, cm, r))| {
            Element::Conference(Conference {
                name,
                muted: mu,
                enter_sound: es,
                exit_sound: xs,
                start_conference_on_enter: s,
                end_conference_on_exit: e,
                stay_alone: sa,
                wait_sound: ws,
                max_members: mm,
                record: rec,
                time_limit: tl,
                action: ac,
                method: m,
                callback_url: cu,
                callback_method: cm,
                redirect: r,
            })
        },
    )
}

fn multi_party_call() -> impl Strategy<Value = Element> {
    let a = (ou(), ou(), os(), os(), os(), ob(), os(), os(), om(), ob());
    let b = (ob(), ob(), ob(), ob(), os(), os(), os(), om());
    (text(), text(), a, b).prop_map(
        |(
            name,
            role,
            (md, mp, wm, ah, ch, rec, sce, scu, scm, sa),
            (mu, h, s, e, es, xs, oe, oem),
        )| {
            Element::MultiPartyCall(MultiPartyCall {
                name,
                role,
                max_duration: md,
                max_participants: mp,
                wait_music_url: wm,
                agent_hold_music_url: ah,
                customer_hold_music_url: ch,
                record: rec,
                status_callback_events: sce,
                status_callback_url: scu,
                status_callback_method: scm,
                stay_alone: sa,
                mute: mu,
                hold: h,
                start_mpc_on_enter: s,
                end_mpc_on_exit: e,
                enter_sound: es,
                exit_sound: xs,
                on_exit_action_url: oe,
                on_exit_action_method: oem,
            })
        },
    )
}

fn hangup() -> impl Strategy<Value = Element> {
    let reason = prop::option::of(prop_oneof![
        Just(HangupReason::Rejected),
        Just(HangupReason::Busy)
    ]);
    (reason, ou()).prop_map(|(reason, schedule)| Element::Hangup(Hangup { reason, schedule }))
}

fn redirect() -> impl Strategy<Value = Element> {
    (text(), om()).prop_map(|(url, method)| Element::Redirect(Redirect { url, method }))
}

fn message() -> impl Strategy<Value = Element> {
    (text(), os(), os(), os(), os(), om()).prop_map(|(text, src, dst, type_, cu, cm)| {
        Element::Message(Message {
            text,
            src,
            dst,
            type_,
            callback_url: cu,
            callback_method: cm,
        })
    })
}

fn pre_answer() -> impl Strategy<Value = Element> {
    let child = prop_oneof![speak(), play(), wait(), get_digits(), redirect(), message()];
    prop::collection::vec(child, 0..3)
        .prop_map(|children| Element::PreAnswer(PreAnswer { children }))
}

/// Any valid response (nesting respected, every Dial with a target).
pub fn response() -> impl Strategy<Value = Response> {
    let element = prop_oneof![
        speak(),
        play(),
        wait(),
        get_digits(),
        get_input(),
        dial(),
        record(),
        conference(),
        multi_party_call(),
        hangup(),
        redirect(),
        pre_answer(),
        message(),
    ];
    prop::collection::vec(element, 0..4).prop_map(Response::new)
}
