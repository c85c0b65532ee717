//! Call Forward: bridge one of `to` into the token's call, dialled one after another (`sequential`)
//! or all at once (`parallel`, first to answer wins). `completed` once the bridged call ends; `no_answer`,
//! `busy` or `failed` when nobody could be connected.

use phlo_template::Template;
use serde_json::{Value, json};

use crate::effect::{DialMode, Effect, Screening, VoiceAction};
use crate::engine::{Context, EngineError, Reaction, WaitOn, unexpected};
use crate::event::{CallOutcome, DialResult, Event, Vars};
use crate::model::Node;
use crate::nodes::prompt::{self, PromptOption};
use crate::nodes::record::{self, RecordOption};
use crate::nodes::{
    CARRIER_GRACE_SECS, call_vars, check_literal, no_call, region, render_recipients, vars,
};
use crate::options::OptionReader;
use crate::phone;

pub const STATES: &[&str] = &["completed", "no_answer", "busy", "failed"];

/// Longest a forwarded call may last; the wait's timer allows for it.
pub const MAX_CALL_SECS: u64 = 4 * 3600;

#[derive(Debug, Clone)]
pub struct Options {
    pub from: Option<Template>,
    pub to: Vec<Template>,
    pub ring_timeout: u64,
    pub mode: DialMode,
    pub screening: Option<(PromptOption, String)>,
    pub extension: Option<Template>,
    pub record: RecordOption,
}

pub(crate) fn parse(r: &mut OptionReader) -> Options {
    let from = r.required_template("from", "the caller ID shown to the recipient");
    let f = r.field("from");
    check_literal(r, &f, from.as_ref(), "invalid_phone", phone::check_address);
    let to = r.checked_list(
        "to",
        Some("the phone numbers or SIP URIs to forward to"),
        "invalid_phone",
        phone::check_address,
    );
    super::check_recipient_count(r, "to", &to);
    let ring_timeout = r.uint("ring_timeout", 5..=300, 30);
    let mode = match r.choice("forwarding", &["sequential", "parallel"], "sequential") {
        "parallel" => DialMode::Parallel,
        _ => DialMode::Sequential,
    };
    let screening = r.object("screening").and_then(|map| {
        let path = r.field("screening");
        let mut s = r.nested(map, path);
        let prompt = s.raw("prompt").and_then(|v| {
            let f = s.field("prompt");
            prompt::parse_one(&mut s, &f, v)
        });
        if prompt.is_none() && s.raw("prompt").is_none() {
            let f = s.field("prompt");
            s.error(
                &f,
                "missing_option",
                "call screening needs a `prompt` telling the recipient which key accepts the call",
            );
        }
        let key = match s.raw("confirm_key") {
            None => "1".to_owned(),
            Some(Value::String(k))
                if k.len() == 1 && super::ivr_menu::KEYS.contains(k.as_str()) =>
            {
                k.clone()
            }
            Some(other) => {
                let f = s.field("confirm_key");
                s.error(
                    &f,
                    "invalid_value",
                    format!("{other} is not a key: use one of 0-9, # or *"),
                );
                "1".to_owned()
            }
        };
        s.finish();
        prompt.map(|p| (p, key))
    });
    let extension = r.template("extension");
    if let Some(ext) = extension.as_ref().and_then(Template::as_literal)
        && (ext.is_empty()
            || !ext
                .chars()
                .all(|c| c.is_ascii_digit() || "*#wW".contains(c)))
    {
        let f = r.field("extension");
        r.error(
            &f,
            "invalid_value",
            format!(
                "`{ext}` is not an extension: use digits, * and #, and w for a half-second pause"
            ),
        );
    }
    let record = record::parse(r, "record");
    Options {
        from,
        to,
        ring_timeout,
        mode,
        screening,
        extension,
        record,
    }
}

pub(crate) fn react(
    o: &Options,
    node: &Node,
    ctx: &Context,
    event: &Event,
) -> Result<Reaction, EngineError> {
    Ok(match event {
        Event::Enter => enter(o, node, ctx),
        Event::Dial(result) => finished(ctx, result),
        Event::Timeout => {
            let mut variables = ctx.parked.clone();
            variables.insert("dial_status".into(), json!("failed"));
            Reaction::failed(
                "failed",
                variables,
                "the carrier reported no dial result in time",
            )
        }
        Event::Hangup { cause } => {
            // The caller left; whatever was bridged ended with them.
            let mut variables = ctx.parked.clone();
            variables.insert("dial_status".into(), json!("completed"));
            variables.insert("hangup_cause".into(), json!(cause));
            Reaction::done("completed", variables)
        }
        _ => return Err(unexpected(node, event)),
    })
}

fn enter(o: &Options, node: &Node, ctx: &Context) -> Reaction {
    let Some(call) = &ctx.call else {
        return Reaction::failed("failed", Vars::new(), no_call(node));
    };
    let rendered = (|| -> Result<_, String> {
        let from = o
            .from
            .as_ref()
            .map(|t| ctx.render(t))
            .transpose()?
            .unwrap_or_default();
        phone::check_address(&from)?;
        let to = render_recipients(ctx, &o.to, phone::check_address)?;
        let screening = match &o.screening {
            Some((p, key)) => Some(Screening {
                prompt: prompt::render(ctx, p)?,
                confirm_key: key.clone(),
            }),
            None => None,
        };
        let send_digits = o
            .extension
            .as_ref()
            .map(|t| ctx.render(t))
            .transpose()?
            .filter(|s| !s.is_empty());
        Ok((
            from,
            to,
            screening,
            send_digits,
            record::resolve(ctx, &o.record)?,
        ))
    })();
    let (from, to, screening, send_digits, record) = match rendered {
        Ok(r) => r,
        Err(e) => return Reaction::failed("failed", vars(json!({ "dial_status": "failed" })), e),
    };
    let (from_iso2, from_country) = region(&from);
    let variables = vars(json!({
        "to": to.join(","),
        "from": from,
        "direction": "outbound",
        "from_iso2": from_iso2,
        "from_country": from_country,
        "leg": "BLeg",
        "parent_call_uuid": call.uuid,
    }));
    let rounds = match o.mode {
        DialMode::Sequential => to.len() as u64,
        DialMode::Parallel => 1,
    };
    let dial = VoiceAction::Dial {
        from,
        to,
        mode: o.mode,
        ring_timeout_secs: u32::try_from(o.ring_timeout).unwrap_or(300),
        record,
        screening,
        send_digits,
    };
    let budget = o.ring_timeout * rounds + MAX_CALL_SECS + CARRIER_GRACE_SECS;
    Reaction::wait(WaitOn::Dial, budget, variables, vec![Effect::Voice(dial)])
}

fn finished(ctx: &Context, result: &DialResult) -> Reaction {
    let mut variables = ctx.parked.clone();
    let mut call = call_vars(&result.call);
    // What the node decided (to, from) stands when the carrier leaves a field empty; every other seed
    // variable is present, null when the carrier did not report it.
    call.retain(|k, v| !((v.is_null() || v.as_str() == Some("")) && variables.contains_key(k)));
    variables.extend(call);
    let (state, dial_status) = match result.outcome {
        CallOutcome::Answered | CallOutcome::Completed => ("completed", "completed"),
        CallOutcome::NoAnswer => ("no_answer", "no-answer"),
        CallOutcome::Busy => ("busy", "busy"),
        CallOutcome::Failed | CallOutcome::Machine => ("failed", "failed"),
    };
    let rang = result
        .call
        .ring_status
        .unwrap_or(matches!(state, "completed" | "no_answer"));
    variables.insert("ring_status".into(), json!(rang));
    variables.insert("dial_status".into(), json!(dial_status));
    if state == "failed" {
        let cause = result
            .call
            .hangup_cause
            .clone()
            .unwrap_or_else(|| "unknown cause".to_owned());
        Reaction::failed(
            state,
            variables,
            format!("the forwarded call failed: {cause}"),
        )
    } else {
        Reaction::done(state, variables)
    }
}
