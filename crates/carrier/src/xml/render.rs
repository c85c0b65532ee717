//! Rendering: compact XML (no indentation), attributes in declaration order, everything escaped.

use super::attr::{AttrWriter, WriteAttrs, escape};
use super::{DialTarget, Element, Response, XML_DECLARATION};

pub(super) fn document(r: &Response) -> String {
    let mut out = String::with_capacity(256);
    out.push_str(XML_DECLARATION);
    out.push_str("<Response>");
    for e in &r.elements {
        element(&mut out, e);
    }
    out.push_str("</Response>");
    out
}

/// What goes between an element's tags.
enum Body<'a> {
    Empty,
    Text(&'a str),
    Children(&'a [Element]),
    Targets(&'a [DialTarget]),
}

fn element(out: &mut String, e: &Element) {
    let tag = e.tag();
    out.push('<');
    out.push_str(tag);
    let (attrs, body): (&dyn WriteAttrs, Body) = match e {
        Element::Speak(x) => (x, Body::Text(&x.text)),
        Element::Play(x) => (x, Body::Text(&x.url)),
        Element::Wait(x) => (x, Body::Empty),
        Element::GetDigits(x) => (x, Body::Children(&x.children)),
        Element::GetInput(x) => (x, Body::Children(&x.children)),
        Element::Dial(x) => (x, Body::Targets(&x.targets)),
        Element::Record(x) => (x, Body::Empty),
        Element::Conference(x) => (x, Body::Text(&x.name)),
        Element::MultiPartyCall(x) => (x, Body::Text(&x.name)),
        Element::Hangup(x) => (x, Body::Empty),
        Element::Redirect(x) => (x, Body::Text(&x.url)),
        Element::PreAnswer(x) => (x, Body::Children(&x.children)),
        Element::Message(x) => (x, Body::Text(&x.text)),
    };
    attrs.write_attrs(&mut AttrWriter(out));
    match body {
        Body::Empty => out.push_str("/>"),
        Body::Text(text) => {
            out.push('>');
            escape(out, text, false);
            close(out, tag);
        }
        Body::Children(children) => {
            out.push('>');
            children.iter().for_each(|c| element(out, c));
            close(out, tag);
        }
        Body::Targets(targets) => {
            out.push('>');
            targets.iter().for_each(|t| target(out, t));
            close(out, tag);
        }
    }
}

fn target(out: &mut String, t: &DialTarget) {
    let (tag, body, send_digits) = match t {
        DialTarget::Number {
            number,
            send_digits,
        } => ("Number", number, send_digits),
        DialTarget::User { uri, send_digits } => ("User", uri, send_digits),
    };
    out.push('<');
    out.push_str(tag);
    AttrWriter(out).put("sendDigits", send_digits);
    out.push('>');
    escape(out, body, false);
    close(out, tag);
}

fn close(out: &mut String, tag: &str) {
    out.push_str("</");
    out.push_str(tag);
    out.push('>');
}
