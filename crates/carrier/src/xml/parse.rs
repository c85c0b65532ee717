//! Parsing with roxmltree (no DTDs, so no entity expansion) into the typed model.

use roxmltree::Node;

use super::attr::AttrReader;
use super::{
    Conference, Dial, DialTarget, Element, GetDigits, GetInput, Hangup, Message, MultiPartyCall,
    Play, PreAnswer, Record, Redirect, Response, Speak, Wait, XmlError, nests,
};

/// Every element tag of the model.
const TAGS: &[&str] = &[
    "Speak",
    "Play",
    "Wait",
    "GetDigits",
    "GetInput",
    "Dial",
    "Record",
    "Conference",
    "MultiPartyCall",
    "Hangup",
    "Redirect",
    "PreAnswer",
    "Message",
];

pub(super) fn document(xml: &str) -> Result<Response, XmlError> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| XmlError::Malformed(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "Response" || root.tag_name().namespace().is_some() {
        return Err(XmlError::NotAResponse(root.tag_name().name().to_owned()));
    }
    AttrReader::new(root).finish()?;
    Ok(Response {
        elements: children(root)?,
    })
}

fn tag<'a>(node: Node<'a, '_>) -> &'a str {
    node.tag_name().name()
}

/// The element children of a container, each checked against the container before it is parsed (so
/// nesting depth stays bounded). Whitespace between them is ignored.
fn children(node: Node<'_, '_>) -> Result<Vec<Element>, XmlError> {
    let parent = tag(node);
    let mut out = Vec::new();
    for child in node.children() {
        if child.is_element() {
            let name = tag(child);
            if !TAGS.contains(&name) || child.tag_name().namespace().is_some() {
                return Err(XmlError::UnknownElement {
                    name: name.to_owned(),
                    parent: parent.to_owned(),
                });
            }
            if !nests(parent, name) {
                return Err(XmlError::NotAllowed {
                    child: name.to_owned(),
                    parent: parent.to_owned(),
                });
            }
            out.push(element(child)?);
        } else {
            no_text(parent, child)?;
        }
    }
    Ok(out)
}

fn no_text(parent: &str, child: Node<'_, '_>) -> Result<(), XmlError> {
    match child.text() {
        Some(t) if child.is_text() && !t.trim().is_empty() => Err(XmlError::UnexpectedText {
            element: parent.to_owned(),
            text: t.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// The text body of an element that holds only text (CDATA included); comments are skipped.
fn text(node: Node<'_, '_>) -> Result<String, XmlError> {
    let mut out = String::new();
    for child in node.children() {
        if child.is_element() {
            return Err(XmlError::UnknownElement {
                name: tag(child).to_owned(),
                parent: tag(node).to_owned(),
            });
        }
        if child.is_text() {
            out.push_str(child.text().unwrap_or_default());
        }
    }
    Ok(out)
}

/// An element that must not have content.
fn empty(node: Node<'_, '_>) -> Result<(), XmlError> {
    for child in node.children() {
        if child.is_element() {
            return Err(XmlError::NotAllowed {
                child: tag(child).to_owned(),
                parent: tag(node).to_owned(),
            });
        }
        no_text(tag(node), child)?;
    }
    Ok(())
}

fn element(node: Node<'_, '_>) -> Result<Element, XmlError> {
    let mut reader = AttrReader::new(node);
    let r = &mut reader;
    let e = match tag(node) {
        "Speak" => Element::Speak(Speak {
            text: text(node)?,
            ..Speak::read_attrs(r)?
        }),
        "Play" => Element::Play(Play {
            url: text(node)?,
            ..Play::read_attrs(r)?
        }),
        "Wait" => empty(node).and_then(|()| Wait::read_attrs(r).map(Element::Wait))?,
        "GetDigits" => Element::GetDigits(GetDigits {
            children: children(node)?,
            ..GetDigits::read_attrs(r)?
        }),
        "GetInput" => Element::GetInput(GetInput {
            children: children(node)?,
            ..GetInput::read_attrs(r)?
        }),
        "Dial" => Element::Dial(Dial {
            targets: targets(node)?,
            ..Dial::read_attrs(r)?
        }),
        "Record" => empty(node).and_then(|()| Record::read_attrs(r).map(Element::Record))?,
        "Conference" => Element::Conference(Conference {
            name: text(node)?,
            ..Conference::read_attrs(r)?
        }),
        "MultiPartyCall" => Element::MultiPartyCall(MultiPartyCall {
            name: text(node)?,
            ..MultiPartyCall::read_attrs(r)?
        }),
        "Hangup" => empty(node).and_then(|()| Hangup::read_attrs(r).map(Element::Hangup))?,
        "Redirect" => Element::Redirect(Redirect {
            url: text(node)?,
            ..Redirect::read_attrs(r)?
        }),
        "PreAnswer" => {
            let mut e = PreAnswer::read_attrs(r)?;
            e.children = children(node)?;
            Element::PreAnswer(e)
        }
        "Message" => Element::Message(Message {
            text: text(node)?,
            ..Message::read_attrs(r)?
        }),
        other => {
            return Err(XmlError::UnknownElement {
                name: other.to_owned(),
                parent: node
                    .parent_element()
                    .map(tag)
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
    };
    reader.finish()?;
    Ok(e)
}

/// The `<Number>` and `<User>` children of a `<Dial>`.
fn targets(node: Node<'_, '_>) -> Result<Vec<DialTarget>, XmlError> {
    let mut out = Vec::new();
    for child in node.children() {
        if !child.is_element() {
            no_text("Dial", child)?;
            continue;
        }
        let number = match tag(child) {
            "Number" => true,
            "User" => false,
            other => {
                return Err(XmlError::NotAllowed {
                    child: other.to_owned(),
                    parent: "Dial".to_owned(),
                });
            }
        };
        let mut r = AttrReader::new(child);
        let send_digits = r.take("sendDigits")?;
        r.finish()?;
        let body = text(child)?;
        out.push(if number {
            DialTarget::Number {
                number: body,
                send_digits,
            }
        } else {
            DialTarget::User {
                uri: body,
                send_digits,
            }
        });
    }
    Ok(out)
}
