//! Start: where every run begins. Its state names the trigger; its variables describe it.

use serde_json::{Value, json};

use crate::engine::{ActiveCall, CallChange, EngineError, Reaction, unexpected};
use crate::event::{Event, Trigger, Vars};
use crate::model::Node;
use crate::nodes::{call_vars, region, vars};
use crate::options::OptionReader;

pub const STATES: &[&str] = &["incoming_call", "incoming_message", "api_request"];

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Default values of the API payload's keys; the request's own values win.
    pub payload: Vars,
}

pub(crate) fn parse(r: &mut OptionReader) -> Options {
    let payload = match r.raw("payload") {
        None => Vars::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => {
            let field = r.field("payload");
            r.error(
                &field,
                "wrong_type",
                "expected an object of key/value pairs, e.g. {\"otp\": \"779889\"}",
            );
            Vars::new()
        }
    };
    Options { payload }
}

pub(crate) fn react(o: &Options, node: &Node, event: &Event) -> Result<Reaction, EngineError> {
    let Event::Trigger(trigger) = event else {
        return Err(unexpected(node, event));
    };
    Ok(match trigger {
        Trigger::Api {
            request_uuid,
            params,
        } => {
            let mut merged = o.payload.clone();
            merged.extend(params.clone());
            Reaction::done(
                "api_request",
                vars(json!({
                    "request_type": "http",
                    "request": { "uuid": request_uuid, "params": merged },
                    // `Start.http.params.<key>` is how Plivo's PHLO editor names the payload.
                    "http": { "params": merged },
                })),
            )
        }
        Trigger::Call(call) => {
            let mut details = call_vars(call);
            let (to_iso2, to_country) = region(&call.to);
            let (from_iso2, from_country) = region(&call.from);
            details.extend(vars(json!({
                "direction": "inbound",
                "leg": "ALeg",
                "to_iso2": to_iso2,
                "from_iso2": from_iso2,
                "to_country": to_country,
                "from_country": from_country,
            })));
            let active = ActiveCall {
                uuid: call.uuid.clone(),
                from: call.from.clone(),
                to: call.to.clone(),
            };
            Reaction::done(
                "incoming_call",
                vars(json!({ "request_type": "call", "call": details })),
            )
            .with_call(CallChange::Bind(active))
        }
        Trigger::Message(m) => {
            let (to_iso2, to_country) = region(&m.to);
            let (from_iso2, from_country) = region(&m.from);
            let message = json!({
                "message_uuid": m.message_uuid,
                "time": m.time,
                "direction": "inbound",
                "status": "received",
                "to": m.to,
                "from": m.from,
                "to_iso2": to_iso2,
                "from_iso2": from_iso2,
                "to_country": to_country,
                "from_country": from_country,
                "msg": m.msg,
                // Plivo's own guides write `{{Start.message.text}}`; its reference says `msg`. Both work.
                "text": m.msg,
                "units": m.units,
                "total_rate": m.total_rate,
                "total_amount": m.total_amount,
            });
            Reaction::done(
                "incoming_message",
                vars(json!({ "request_type": "sms", "message": message })),
            )
        }
    })
}
