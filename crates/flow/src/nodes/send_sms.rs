//! Send SMS: one message per recipient. Each recipient continues as its own token so that `to`,
//! `message_uuid` and `status` are single values, as the seed's variables are.
//!
//! `failed` when the carrier reports failed, undelivered or rejected (or refuses the request), as the
//! seed says. Carriers report `sent` before they know the outcome (`undelivered` comes after `sent`), so
//! `sent` keeps waiting for `delivered` (→ `sent`) or a failure; with no final report before
//! `status_timeout`, the message counts as sent: the carrier took it and never said it failed.

use phlo_template::Template;
use serde_json::json;

use crate::effect::{Effect, SendSms};
use crate::engine::{Context, EngineError, Reaction, Wait, WaitOn, unexpected};
use crate::event::{Event, SmsReport, Vars};
use crate::model::Node;
use crate::nodes::{check_literal, region, render_recipients, vars};
use crate::options::{OptionReader, check_url};
use crate::phone;

pub const STATES: &[&str] = &["sent", "failed"];

#[derive(Debug, Clone)]
pub struct Options {
    pub from: Option<Template>,
    pub to: Vec<Template>,
    pub message: Option<Template>,
    pub media_urls: Vec<Template>,
    pub log_message: bool,
    pub status_timeout: u64,
}

pub(crate) fn parse(r: &mut OptionReader) -> Options {
    let from = r.required_template(
        "from",
        "the sender: a phone number or an alphanumeric sender ID",
    );
    let f = r.field("from");
    check_literal(r, &f, from.as_ref(), "invalid_phone", phone::check_sender);
    let to = r.checked_list(
        "to",
        Some("the recipients' phone numbers"),
        "invalid_phone",
        phone::check_phone,
    );
    super::check_recipient_count(r, "to", &to);
    let message = r.template("message");
    let media_urls = r.checked_list("media_urls", None, "invalid_url", check_url);
    if message.is_none() && media_urls.is_empty() && r.raw("message").is_none() {
        let f = r.field("message");
        r.error(
            &f,
            "missing_option",
            "a message needs text or media: set `message` or `media_urls`",
        );
    }
    let log_message = r.bool("log_message", true);
    let status_timeout = r.uint("status_timeout", 5..=86_400, 60);
    Options {
        from,
        to,
        message,
        media_urls,
        log_message,
        status_timeout,
    }
}

pub(crate) fn react(
    o: &Options,
    node: &Node,
    ctx: &Context,
    event: &Event,
) -> Result<Reaction, EngineError> {
    match event {
        Event::Enter => Ok(enter(o, ctx)),
        Event::Sms(report) => Ok(report_status(o, ctx, report)),
        Event::Timeout => Ok(Reaction::done("sent", ctx.parked.clone())),
        _ => Err(unexpected(node, event)),
    }
}

fn enter(o: &Options, ctx: &Context) -> Reaction {
    let rendered = (|| -> Result<_, String> {
        let from = match &o.from {
            Some(t) => ctx.render(t)?,
            None => String::new(),
        };
        phone::check_sender(&from)?;
        let to = render_recipients(ctx, &o.to, phone::check_phone)?;
        let text = match &o.message {
            Some(t) => ctx.render(t)?,
            None => String::new(),
        };
        let mut media = Vec::new();
        for t in &o.media_urls {
            for url in crate::options::split_list(&ctx.render(t)?) {
                check_url(&url)?;
                media.push(url);
            }
        }
        Ok((from, to, text, media))
    })();
    let (from, to, text, media) = match rendered {
        Ok(r) => r,
        Err(e) => return Reaction::failed("failed", Vars::new(), e),
    };
    let mut effects = Vec::new();
    let mut waits = Vec::new();
    for (recipient, number) in to.iter().enumerate() {
        effects.push(Effect::SendSms(SendSms {
            recipient,
            from: from.clone(),
            to: number.clone(),
            text: text.clone(),
            media_urls: media.clone(),
            log: o.log_message,
        }));
        let (to_iso2, to_country) = region(number);
        let (from_iso2, from_country) = region(&from);
        let variables = vars(json!({
            "message_uuid": null,
            "from": from,
            "to": number,
            "media_urls": media,
            "media_count": media.len(),
            "type": if media.is_empty() { "sms" } else { "mms" },
            "to.iso2": to_iso2,
            "from.iso2": from_iso2,
            "to_country": to_country,
            "from_country": from_country,
            "msg": text,
            "units": null,
            "total_rate": null,
            "total_amount": null,
            "direction": "outbound",
            "status": "queued",
            "error_code": null,
        }));
        waits.push(Wait {
            on: WaitOn::Sms { recipient },
            timeout_secs: o.status_timeout,
            variables,
        });
    }
    Reaction::Wait {
        waits,
        effects,
        callback_event: None,
    }
}

fn report_status(o: &Options, ctx: &Context, report: &SmsReport) -> Reaction {
    let mut variables = ctx.parked.clone();
    let status = report.status.trim().to_ascii_lowercase();
    variables.insert("status".into(), json!(status));
    if !report.message_uuid.is_empty() {
        variables.insert("message_uuid".into(), json!(report.message_uuid));
    }
    for (key, value) in [
        ("error_code", json!(report.error_code)),
        ("units", json!(report.units)),
        ("total_rate", json!(report.total_rate)),
        ("total_amount", json!(report.total_amount)),
    ] {
        if !value.is_null() {
            variables.insert(key.into(), value);
        }
    }
    match status.as_str() {
        "delivered" => Reaction::done("sent", variables),
        "failed" | "undelivered" | "rejected" => {
            let code = report
                .error_code
                .as_deref()
                .map(|c| format!(" (error code {c})"))
                .unwrap_or_default();
            Reaction::failed(
                "failed",
                variables,
                format!("the carrier reported the message {status}{code}"),
            )
        }
        // queued, sent, or a status we do not know: keep waiting for a final one.
        _ => Reaction::wait(
            WaitOn::Sms {
                recipient: report.recipient,
            },
            o.status_timeout,
            variables,
            Vec::new(),
        ),
    }
}
