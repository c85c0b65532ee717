//! Send SMS: one effect and one wait per recipient, the seed's variables, delivery reports, failures.

use phlo_flow::effect::SendSms;
use phlo_flow::event::SmsReport;
use phlo_flow::{Effect, Event, Outcome, Phlo, Step, Vars, Wait, WaitOn};
use serde_json::{Value, json};

use crate::support::{
    done, error_of, expected_callback, params_ctx, phlo_with, phlo_with_callback, resumed, run,
};

const STATES: &[&str] = &["sent", "failed"];

fn sms_phlo(options: Value) -> Phlo {
    phlo_with("send_sms", "Send_SMS_1", options, STATES)
}

fn waits_of(step: &Step) -> Vec<Wait> {
    match &step.outcome {
        Outcome::Wait { waits } => waits.clone(),
        other => panic!("expected Wait, got {other:#?}"),
    }
}

/// The variables a recipient parks with, before any report.
fn queued(from: &str, to: &str, msg: &str, media: &[&str], regions: [Value; 4]) -> Vars {
    let [to_iso2, from_iso2, to_country, from_country] = regions;
    json!({
        "message_uuid": null, "from": from, "to": to, "media_urls": media, "media_count": media.len(),
        "type": if media.is_empty() { "sms" } else { "mms" },
        "to.iso2": to_iso2, "from.iso2": from_iso2, "to_country": to_country, "from_country": from_country,
        "msg": msg, "units": null, "total_rate": null, "total_amount": null,
        "direction": "outbound", "status": "queued", "error_code": null,
    })
    .as_object()
    .cloned()
    .unwrap()
}

fn us() -> [Value; 2] {
    [json!("US"), json!("United States")]
}

#[test]
fn several_recipients_fork_one_wait_and_one_effect_each() {
    let phlo = sms_phlo(json!({
        "from": "+14155550100",
        "to": ["+14155552671", "{{Start.http.params.to}}"],
        "message": "Hi {{Start.http.params.name}}, your code is {{Start.http.params.otp}}",
    }));
    let c =
        params_ctx(json!({ "to": "+33612345678, +442071838750", "name": "Ada", "otp": "779889" }));
    let step = run(&phlo, &c, Event::Enter);
    let text = "Hi Ada, your code is 779889";
    let recipients = [
        ("+14155552671", us()),
        ("+33612345678", [json!("FR"), json!("France")]),
        ("+442071838750", [json!("GB"), json!("United Kingdom")]),
    ];
    let expected_effects: Vec<Effect> = recipients
        .iter()
        .enumerate()
        .map(|(recipient, (to, _))| {
            Effect::SendSms(SendSms {
                recipient,
                from: "+14155550100".into(),
                to: (*to).into(),
                text: text.into(),
                media_urls: vec![],
                log: true,
            })
        })
        .collect();
    assert_eq!(step.effects, expected_effects);
    let waits = waits_of(&step);
    assert_eq!(waits.len(), 3);
    for (recipient, (wait, (to, [iso2, country]))) in waits.iter().zip(recipients).enumerate() {
        assert_eq!(wait.on, WaitOn::Sms { recipient });
        assert_eq!(wait.timeout_secs, 60, "default status_timeout");
        let [from_iso2, from_country] = us();
        let regions = [iso2, from_iso2, country, from_country];
        assert_eq!(
            wait.variables,
            queued("+14155550100", to, text, &[], regions),
            "{to}"
        );
    }
}

#[test]
fn mms_alphanumeric_sender_and_settings() {
    let phlo = sms_phlo(json!({
        "from": "PLIVO",
        "to": "+14155552671",
        "media_urls": ["https://cdn.example.com/a.png", "{{Start.http.params.img}}"],
        "log_message": false,
        "status_timeout": 300,
    }));
    let c = params_ctx(json!({ "img": "https://cdn.example.com/b.gif" }));
    let step = run(&phlo, &c, Event::Enter);
    let media = [
        "https://cdn.example.com/a.png",
        "https://cdn.example.com/b.gif",
    ];
    let expected = Effect::SendSms(SendSms {
        recipient: 0,
        from: "PLIVO".into(),
        to: "+14155552671".into(),
        text: String::new(),
        media_urls: media.iter().map(|m| (*m).to_owned()).collect(),
        log: false,
    });
    assert_eq!(step.effects, vec![expected]);
    let waits = waits_of(&step);
    assert_eq!(waits.len(), 1);
    assert_eq!(waits[0].timeout_secs, 300);
    let [iso2, country] = us();
    let regions = [iso2, Value::Null, country, Value::Null];
    assert_eq!(
        waits[0].variables,
        queued("PLIVO", "+14155552671", "", &media, regions)
    );
    assert_eq!(waits[0].variables["type"], json!("mms"));
    assert_eq!(waits[0].variables["media_count"], json!(2));
}

/// The one recipient's wait after entering a node that texts +14155552671.
fn parked(phlo: &Phlo) -> (phlo_flow::Context, Wait) {
    let c = params_ctx(json!({}));
    let mut waits = waits_of(&run(phlo, &c, Event::Enter));
    assert_eq!(waits.len(), 1);
    let wait = waits.remove(0);
    (resumed(&c, &wait), wait)
}

fn report(status: &str, error_code: Option<&str>) -> Event {
    Event::Sms(SmsReport {
        recipient: 0,
        message_uuid: "msg-uuid-7".into(),
        status: status.into(),
        error_code: error_code.map(str::to_owned),
        units: Some(2),
        total_rate: Some("0.0050".into()),
        total_amount: Some("0.0100".into()),
    })
}

#[test]
fn delivery_reports_decide_the_state() {
    let phlo =
        sms_phlo(json!({ "from": "+14155550100", "to": "+14155552671", "message": "hello" }));
    let (c, wait) = parked(&phlo);
    let cases = [
        // (carrier status, error code, state, status variable, error)
        ("delivered", None, "sent", "delivered", None),
        ("DELIVERED", None, "sent", "delivered", None),
        (
            "failed",
            Some("30003"),
            "failed",
            "failed",
            Some("the carrier reported the message failed (error code 30003)"),
        ),
        (
            "undelivered",
            Some("30005"),
            "failed",
            "undelivered",
            Some("the carrier reported the message undelivered (error code 30005)"),
        ),
        (
            "rejected",
            Some("20"),
            "failed",
            "rejected",
            Some("the carrier reported the message rejected (error code 20)"),
        ),
        (
            "rejected",
            None,
            "failed",
            "rejected",
            Some("the carrier reported the message rejected"),
        ),
    ];
    for (status, code, state, status_var, error) in cases {
        let step = run(&phlo, &c, report(status, code));
        let mut expected = wait.variables.clone();
        for (k, v) in [
            ("message_uuid", json!("msg-uuid-7")),
            ("status", json!(status_var)),
            ("error_code", json!(code)),
            ("units", json!(2)),
            ("total_rate", json!("0.0050")),
            ("total_amount", json!("0.0100")),
        ] {
            expected.insert(k.into(), v);
        }
        assert_eq!(done(&step, state), expected, "{status}");
        assert_eq!(error_of(&step).as_deref(), error, "{status}");
    }
}

#[test]
fn sent_is_not_final_an_undelivered_report_after_it_fails() {
    let phlo =
        sms_phlo(json!({ "from": "+14155550100", "to": "+14155552671", "message": "hello" }));
    let (c, _) = parked(&phlo);
    let step = run(&phlo, &c, report("sent", None));
    let waits = waits_of(&step);
    assert_eq!(waits.len(), 1, "sent keeps waiting for the outcome");
    assert_eq!(waits[0].variables["status"], json!("sent"));
    let mut after = c.clone();
    after.parked = waits[0].variables.clone();
    let step = run(&phlo, &after, report("undelivered", Some("30005")));
    assert_eq!(done(&step, "failed")["status"], json!("undelivered"));
    // With no final report, `sent` is where the message stays.
    let step = run(&phlo, &after, Event::Timeout);
    assert_eq!(done(&step, "sent")["status"], json!("sent"));
}

#[test]
fn queued_keeps_waiting_and_timeout_counts_as_sent() {
    let phlo =
        sms_phlo(json!({ "from": "+14155550100", "to": "+14155552671", "message": "hello" }));
    let (c, wait) = parked(&phlo);
    let step = run(&phlo, &c, report("queued", None));
    let waits = waits_of(&step);
    assert_eq!(waits.len(), 1);
    assert_eq!(waits[0].on, WaitOn::Sms { recipient: 0 });
    assert_eq!(waits[0].timeout_secs, 60);
    assert_eq!(waits[0].variables["status"], json!("queued"));
    assert_eq!(waits[0].variables["message_uuid"], json!("msg-uuid-7"));
    assert!(step.effects.is_empty());

    let step = run(&phlo, &c, Event::Timeout);
    assert_eq!(done(&step, "sent"), wait.variables);
    assert_eq!(error_of(&step), None);
}

#[test]
fn render_errors_and_bad_numbers_fail_with_a_reason() {
    let divide = "options.message: template failed to render: Invalid argument; argument=operand; cause=Can't divide by zero";
    #[rustfmt::skip]
    let cases = [
        // (from, to, message, error starts with)
        ("+14155550100", "+14155552671", "{{ 1 | divided_by: 0 }}", divide),
        ("+14155550100", "{{Start.http.params.to}}", "hi", "`not-a-number` is not a phone number"),
        ("+14155550100", "+14155552671, {{Start.http.params.to}}", "hi", "`not-a-number` is not a phone number"),
        ("+14155550100", "{{Start.http.params.missing}}", "hi", "`to` rendered to no recipients"),
        ("{{Start.http.params.from}}", "+14155552671", "hi", "`not a sender!` is not a sender"),
        ("{{Start.http.params.missing}}", "+14155552671", "hi", "`` is not a sender"),
    ];
    let c = params_ctx(json!({ "to": "not-a-number", "from": "not a sender!" }));
    for (from, to, message, reason) in cases {
        let phlo = sms_phlo(json!({ "from": from, "to": to, "message": message }));
        let step = run(&phlo, &c, Event::Enter);
        assert_eq!(
            done(&step, "failed"),
            Vars::new(),
            "{from} / {to} / {message}"
        );
        let error = error_of(&step).unwrap();
        assert!(
            error.starts_with(reason),
            "{from} / {to} / {message}: {error}"
        );
        assert!(
            step.effects.is_empty(),
            "nothing is sent when rendering fails"
        );
    }
}

#[test]
fn callbacks_post_the_final_state_only_for_wanted_events() {
    let url = "https://hooks.example.com/sms";
    for (events, on_sent, on_failed) in [
        (json!(null), true, true),
        (json!(["failed"]), false, true),
        (json!(["sent"]), true, false),
    ] {
        let options = json!({ "from": "+14155550100", "to": "+14155552671", "message": "hello" });
        let callback = json!({ "url": url, "events": events });
        let phlo = phlo_with_callback("send_sms", "Send_SMS_1", options, STATES, callback);
        let (c, _) = parked(&phlo);
        let entered = run(&phlo, &params_ctx(json!({})), Event::Enter);
        assert!(
            entered
                .effects
                .iter()
                .all(|e| matches!(e, Effect::SendSms(_))),
            "no callback while waiting"
        );
        for (status, state, wanted) in [
            ("delivered", "sent", on_sent),
            ("failed", "failed", on_failed),
        ] {
            let step = run(&phlo, &c, report(status, None));
            let variables = done(&step, state);
            let expected = wanted.then(|| {
                expected_callback(url, "POST", "send_sms", "Send_SMS_1", state, &variables)
            });
            assert_eq!(
                step.effects,
                Vec::from_iter(expected),
                "{events} / {status}"
            );
        }
    }
}
