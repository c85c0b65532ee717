//! Initiate Call: place one outbound call per number in `to`. Each call is its own token: an answered
//! call becomes that token's call for the voice nodes that follow; the others end in
//! `no_answer`, `busy`, `failed` or, when a machine answers, `voicemail`.

use phlo_template::Template;
use serde_json::json;

use crate::effect::{Effect, PlaceCall};
use crate::engine::{
    ActiveCall, CallChange, Context, EngineError, Reaction, Wait, WaitOn, unexpected,
};
use crate::event::{CallOutcome, CallResult, Event, Vars};
use crate::model::Node;
use crate::nodes::record::{self, RecordOption};
use crate::nodes::{CARRIER_GRACE_SECS, call_vars, check_literal, region, render_recipients, vars};
use crate::options::OptionReader;
use crate::phone;

pub const STATES: &[&str] = &["answered", "no_answer", "busy", "failed", "voicemail"];

#[derive(Debug, Clone)]
pub struct Options {
    pub from: Option<Template>,
    pub to: Vec<Template>,
    pub ring_timeout: u64,
    pub record: RecordOption,
    pub machine_detection: bool,
}

pub(crate) fn parse(r: &mut OptionReader) -> Options {
    let from = r.required_template("from", "the caller ID: a phone number you own");
    let f = r.field("from");
    check_literal(r, &f, from.as_ref(), "invalid_phone", phone::check_address);
    let to = r.checked_list(
        "to",
        Some("the phone numbers or SIP URIs to call"),
        "invalid_phone",
        phone::check_address,
    );
    super::check_recipient_count(r, "to", &to);
    let ring_timeout = r.uint("ring_timeout", 5..=300, 60);
    let record = record::parse(r, "record");
    let machine_detection = r.bool("machine_detection", true);
    Options {
        from,
        to,
        ring_timeout,
        record,
        machine_detection,
    }
}

pub(crate) fn react(
    o: &Options,
    node: &Node,
    ctx: &Context,
    event: &Event,
) -> Result<Reaction, EngineError> {
    Ok(match event {
        Event::Enter => enter(o, ctx),
        Event::Call(result) => finished(o, ctx, result),
        Event::Timeout => {
            let mut variables = ctx.parked.clone();
            variables.insert("ring_status".into(), json!(false));
            Reaction::failed(
                "no_answer",
                variables,
                "the carrier reported no result for the call in time",
            )
        }
        _ => return Err(unexpected(node, event)),
    })
}

fn enter(o: &Options, ctx: &Context) -> Reaction {
    let rendered = (|| -> Result<_, String> {
        let from = o
            .from
            .as_ref()
            .map(|t| ctx.render(t))
            .transpose()?
            .unwrap_or_default();
        phone::check_address(&from)?;
        let to = render_recipients(ctx, &o.to, phone::check_address)?;
        let record = record::resolve(ctx, &o.record)?;
        Ok((from, to, record))
    })();
    let (from, to, record) = match rendered {
        Ok(r) => r,
        Err(e) => return Reaction::failed("failed", Vars::new(), e),
    };
    let (from_iso2, from_country) = region(&from);
    let mut effects = Vec::new();
    let mut waits = Vec::new();
    for (leg, number) in to.into_iter().enumerate() {
        effects.push(Effect::PlaceCall(PlaceCall {
            leg,
            from: from.clone(),
            to: number.clone(),
            ring_timeout_secs: u32::try_from(o.ring_timeout).unwrap_or(300),
            record,
            machine_detection: o.machine_detection,
        }));
        let variables = vars(json!({
            "to": number,
            "from": from,
            "direction": "outbound",
            "from_iso2": from_iso2,
            "from_country": from_country,
            "leg": "ALeg",
        }));
        waits.push(Wait {
            on: WaitOn::Call { leg },
            timeout_secs: o.ring_timeout + CARRIER_GRACE_SECS,
            variables,
        });
    }
    Reaction::Wait {
        waits,
        effects,
        callback_event: None,
    }
}

fn finished(o: &Options, ctx: &Context, result: &CallResult) -> Reaction {
    let mut variables = ctx.parked.clone();
    let mut call = call_vars(&result.call);
    // What the node itself decided (to, from) stands when the carrier leaves a field empty; every other
    // seed variable is present, null when the carrier did not report it.
    call.retain(|k, v| !((v.is_null() || v.as_str() == Some("")) && variables.contains_key(k)));
    variables.extend(call);
    let answered = matches!(
        result.outcome,
        CallOutcome::Answered | CallOutcome::Completed | CallOutcome::Machine
    );
    // A call nobody answered within the ring timeout rang all along.
    let rang = answered || result.outcome == CallOutcome::NoAnswer;
    variables.insert(
        "ring_status".into(),
        json!(result.call.ring_status.unwrap_or(rang)),
    );
    variables.insert(
        "voicemail_detected".into(),
        json!(result.outcome == CallOutcome::Machine),
    );
    if answered {
        variables.insert("call_status".into(), json!("in-progress"));
    }
    let active = || {
        CallChange::Bind(ActiveCall {
            uuid: result.call.uuid.clone(),
            from: str_var(&variables, "from"),
            to: str_var(&variables, "to"),
        })
    };
    match result.outcome {
        CallOutcome::Answered | CallOutcome::Completed => {
            Reaction::done("answered", variables.clone())
                .with_call(active())
                .with_effects(recording(o, ctx, &result.call.uuid))
        }
        CallOutcome::Machine => Reaction::done("voicemail", variables.clone())
            .with_call(active())
            .with_effects(recording(o, ctx, &result.call.uuid)),
        CallOutcome::NoAnswer => Reaction::done("no_answer", variables),
        CallOutcome::Busy => Reaction::done("busy", variables),
        CallOutcome::Failed => {
            let cause = result
                .call
                .hangup_cause
                .clone()
                .unwrap_or_else(|| "unknown cause".to_owned());
            Reaction::failed("failed", variables, format!("the call failed: {cause}"))
        }
    }
}

fn str_var(vars: &Vars, key: &str) -> String {
    vars.get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The `record` option, judged when the call is answered: a recording of the whole call from then on.
/// It renders the same as when the call was placed (the token's context has not changed since).
fn recording(o: &Options, ctx: &Context, call_uuid: &str) -> Vec<Effect> {
    match record::resolve(ctx, &o.record) {
        Ok(true) if !call_uuid.is_empty() => vec![Effect::RecordCall {
            call_uuid: call_uuid.to_owned(),
        }],
        _ => Vec::new(),
    }
}
