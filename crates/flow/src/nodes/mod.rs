//! One module per component: its options (parsed and checked once, at save), its states, and how it
//! reacts to events. Shared pieces: prompts, the record truth table, conference rooms, call variables.

pub mod branch;
pub mod call_forward;
pub mod conference_bridge;
pub mod counter;
pub mod get_input;
pub mod hangup;
pub mod http_request;
pub mod initiate_call;
pub mod ivr_menu;
pub mod multi_party_call;
pub mod play_audio;
pub mod prompt;
pub mod record;
pub mod record_audio;
mod room;
pub mod send_sms;
pub mod start;

use serde_json::{Value, json};

use crate::engine::{Context, EngineError, Reaction};
use crate::event::{CallDetails, Event, Vars};
use crate::model::{Kind, Node};
use crate::options::OptionReader;
use crate::phone;

/// Seconds a wait allows on top of the node's own timeouts (prompts playing, the carrier reporting back)
/// before its timer acts. The carrier normally answers first; the timer is the backstop that keeps a run
/// from waiting forever when a report is lost.
pub const CARRIER_GRACE_SECS: u64 = 120;

/// Most recipients one Send SMS or Initiate Call node may address in one step.
pub const MAX_RECIPIENTS: usize = 100;

#[derive(Debug, Clone)]
pub enum Component {
    Start(start::Options),
    SendSms(send_sms::Options),
    IvrMenu(ivr_menu::Options),
    GetInput(get_input::Options),
    InitiateCall(initiate_call::Options),
    CallForward(call_forward::Options),
    Hangup(hangup::Options),
    PlayAudio(play_audio::Options),
    RecordAudio(record_audio::Options),
    MultiPartyCall(multi_party_call::Options),
    ConferenceBridge(conference_bridge::Options),
    HttpRequest(http_request::Options),
    Counter(counter::Options),
    Branch(branch::Options),
}

impl Component {
    pub(crate) fn parse(kind: Kind, r: &mut OptionReader) -> Component {
        match kind {
            Kind::Start => Component::Start(start::parse(r)),
            Kind::SendSms => Component::SendSms(send_sms::parse(r)),
            Kind::IvrMenu => Component::IvrMenu(ivr_menu::parse(r)),
            Kind::GetInput => Component::GetInput(get_input::parse(r)),
            Kind::InitiateCall => Component::InitiateCall(initiate_call::parse(r)),
            Kind::CallForward => Component::CallForward(call_forward::parse(r)),
            Kind::Hangup => Component::Hangup(hangup::parse(r)),
            Kind::PlayAudio => Component::PlayAudio(play_audio::parse(r)),
            Kind::RecordAudio => Component::RecordAudio(record_audio::parse(r)),
            Kind::MultiPartyCall => Component::MultiPartyCall(multi_party_call::parse(r)),
            Kind::ConferenceBridge => Component::ConferenceBridge(conference_bridge::parse(r)),
            Kind::HttpRequest => Component::HttpRequest(http_request::parse(r)),
            Kind::Counter => Component::Counter(counter::parse(r)),
            Kind::Branch => Component::Branch(branch::parse(r)),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Component::Start(_) => Kind::Start,
            Component::SendSms(_) => Kind::SendSms,
            Component::IvrMenu(_) => Kind::IvrMenu,
            Component::GetInput(_) => Kind::GetInput,
            Component::InitiateCall(_) => Kind::InitiateCall,
            Component::CallForward(_) => Kind::CallForward,
            Component::Hangup(_) => Kind::Hangup,
            Component::PlayAudio(_) => Kind::PlayAudio,
            Component::RecordAudio(_) => Kind::RecordAudio,
            Component::MultiPartyCall(_) => Kind::MultiPartyCall,
            Component::ConferenceBridge(_) => Kind::ConferenceBridge,
            Component::HttpRequest(_) => Kind::HttpRequest,
            Component::Counter(_) => Kind::Counter,
            Component::Branch(_) => Kind::Branch,
        }
    }

    /// The states this node can end in; transitions may only name these.
    pub fn states(&self) -> Vec<String> {
        let fixed: &[&str] = match self {
            Component::IvrMenu(o) => return ivr_menu::states(o),
            Component::Branch(o) => return branch::states(o),
            Component::Start(_) => start::STATES,
            Component::SendSms(_) => send_sms::STATES,
            Component::GetInput(_) => get_input::STATES,
            Component::InitiateCall(_) => initiate_call::STATES,
            Component::CallForward(_) => call_forward::STATES,
            Component::Hangup(_) => hangup::STATES,
            Component::PlayAudio(_) => play_audio::STATES,
            Component::RecordAudio(_) => record_audio::STATES,
            Component::MultiPartyCall(_) | Component::ConferenceBridge(_) => room::STATES,
            Component::HttpRequest(_) => http_request::STATES,
            Component::Counter(_) => counter::STATES,
        };
        fixed.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Events a callback may subscribe to: the states, plus member events for conference rooms.
    pub fn callback_events(&self) -> Vec<String> {
        let mut events = self.states();
        if matches!(
            self,
            Component::MultiPartyCall(_) | Component::ConferenceBridge(_)
        ) {
            events.extend(room::MEMBER_EVENTS.iter().map(|e| (*e).to_owned()));
        }
        events
    }

    pub(crate) fn react(
        &self,
        node: &Node,
        ctx: &Context,
        event: &Event,
    ) -> Result<Reaction, EngineError> {
        match self {
            Component::Start(o) => start::react(o, node, event),
            Component::SendSms(o) => send_sms::react(o, node, ctx, event),
            Component::IvrMenu(o) => ivr_menu::react(o, node, ctx, event),
            Component::GetInput(o) => get_input::react(o, node, ctx, event),
            Component::InitiateCall(o) => initiate_call::react(o, node, ctx, event),
            Component::CallForward(o) => call_forward::react(o, node, ctx, event),
            Component::Hangup(o) => hangup::react(o, node, ctx, event),
            Component::PlayAudio(o) => play_audio::react(o, node, ctx, event),
            Component::RecordAudio(o) => record_audio::react(o, node, ctx, event),
            Component::MultiPartyCall(o) => multi_party_call::react(o, node, ctx, event),
            Component::ConferenceBridge(o) => conference_bridge::react(o, node, ctx, event),
            Component::HttpRequest(o) => http_request::react(o, node, ctx, event),
            Component::Counter(o) => counter::react(o, node, event),
            Component::Branch(o) => branch::react(o, node, ctx, event),
        }
    }
}

/// Turns a `json!({...})` object into variables.
pub(crate) fn vars(value: Value) -> Vars {
    match value {
        Value::Object(map) => map,
        _ => Vars::new(),
    }
}

/// The call variables the seed shares between Start (incoming call), Initiate Call and Call Forward.
pub(crate) fn call_vars(call: &CallDetails) -> Vars {
    vars(json!({
        // Empty until the carrier names the call (an unanswered dial has no B leg).
        "uuid": Some(&call.uuid).filter(|u| !u.is_empty()),
        "to": call.to,
        "from": call.from,
        "start_time": call.start_time,
        "answer_time": call.answer_time,
        "end_time": call.end_time,
        "hangup_cause": call.hangup_cause,
        "duration": call.duration,
        "bill_duration": call.bill_duration,
        "bill_rate": call.bill_rate,
        "bill_amount": call.bill_amount,
    }))
}

/// ISO2 and country of a number, as JSON (null for SIP addresses and unknown regions).
pub(crate) fn region(number: &str) -> (Value, Value) {
    (json!(phone::iso2(number)), json!(phone::country(number)))
}

/// The reason a voice node cannot run: the token is not on a call.
pub(crate) fn no_call(node: &Node) -> String {
    format!(
        "{} ({}) acts on a call, but this token has none: reach it from an incoming call or after Initiate Call's `answered` state",
        node.name,
        node.kind()
    )
}

/// Renders a list of recipient templates; each may render to a comma-separated list.
pub(crate) fn render_recipients(
    ctx: &Context,
    list: &[phlo_template::Template],
    check: fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for t in list {
        for item in crate::options::split_list(&ctx.render(t)?) {
            check(&item)?;
            out.push(item);
        }
    }
    if out.is_empty() {
        return Err("`to` rendered to no recipients".to_owned());
    }
    if out.len() > MAX_RECIPIENTS {
        return Err(format!(
            "`to` rendered to {} recipients; the limit is {MAX_RECIPIENTS}",
            out.len()
        ));
    }
    Ok(out)
}

/// Reports, at save time, a literal recipient list longer than a step may address.
pub(crate) fn check_recipient_count(
    r: &mut OptionReader,
    key: &str,
    list: &[phlo_template::Template],
) {
    let literal: usize = list
        .iter()
        .filter_map(|t| t.as_literal())
        .map(|l| crate::options::split_list(l).len())
        .sum();
    if literal > MAX_RECIPIENTS {
        let f = r.field(key);
        r.error(
            &f,
            "too_large",
            format!("{literal} recipients; the limit is {MAX_RECIPIENTS} per node: split them over several nodes"),
        );
    }
}

/// Reports a literal that can never be valid (a phone number, SIP address, URL) at save time.
pub(crate) fn check_literal(
    r: &mut OptionReader,
    field: &str,
    template: Option<&phlo_template::Template>,
    code: &str,
    check: fn(&str) -> Result<(), String>,
) {
    let Some(literal) = template.and_then(|t| t.as_literal()) else {
        return;
    };
    for item in crate::options::split_list(literal) {
        if let Err(message) = check(&item) {
            r.error(field, code, message);
        }
    }
}
