//! A typed model of Plivo XML responses, with a renderer that always produces well-formed XML and a
//! parser that reads the same model back (and refuses anything outside it, naming what it refused).
//!
//! ```
//! use phlo_carrier::xml::{Element, Response};
//!
//! let r = Response::new(vec![Element::speak("1 < 2 & <Hangup/>"), Element::redirect("https://r/next")]);
//! let xml = r.render();
//! assert_eq!(
//!     xml,
//!     r#"<?xml version="1.0" encoding="UTF-8"?><Response><Speak>1 &lt; 2 &amp; &lt;Hangup/&gt;</Speak><Redirect>https://r/next</Redirect></Response>"#
//! );
//! assert_eq!(Response::parse(&xml).unwrap(), r);
//! ```

pub(crate) mod attr;
mod elements;
mod parse;
mod render;

pub use attr::sanitize;
pub use elements::{
    Conference, Dial, DialTarget, GetDigits, GetInput, Hangup, HangupReason, Message, Method,
    MultiPartyCall, Play, PreAnswer, Record, Redirect, Speak, Wait,
};

/// Plivo's limit on an XML document (100 KB).
pub const MAX_XML_BYTES: usize = 100 * 1024;

/// The declaration every rendered document starts with.
pub const XML_DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// A `<Response>` document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub elements: Vec<Element>,
}

/// One verb of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element {
    Speak(Speak),
    Play(Play),
    Wait(Wait),
    GetDigits(GetDigits),
    GetInput(GetInput),
    Dial(Dial),
    Record(Record),
    Conference(Conference),
    MultiPartyCall(MultiPartyCall),
    Hangup(Hangup),
    Redirect(Redirect),
    PreAnswer(PreAnswer),
    Message(Message),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML: {0}")]
    Malformed(String),
    #[error("the root element is <{0}>; a Plivo document is a <Response>")]
    NotAResponse(String),
    #[error("unknown element <{name}> in <{parent}>")]
    UnknownElement { name: String, parent: String },
    #[error("<{child}> is not allowed inside <{parent}>")]
    NotAllowed { child: String, parent: String },
    #[error("unknown attribute `{attribute}` on <{element}>")]
    UnknownAttribute { element: String, attribute: String },
    #[error("<{element}> needs the attribute `{attribute}`")]
    MissingAttribute { element: String, attribute: String },
    #[error("invalid {attribute}={value:?} on <{element}>: {reason}")]
    InvalidAttribute {
        element: String,
        attribute: String,
        value: String,
        reason: String,
    },
    #[error("unexpected text {text:?} inside <{element}>")]
    UnexpectedText { element: String, text: String },
    #[error("<Dial> needs at least one <Number> or <User>")]
    EmptyDial,
    #[error("the document is {size} bytes, over Plivo's limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

impl Response {
    pub fn new(elements: Vec<Element>) -> Self {
        Self { elements }
    }

    /// The XML document, declaration included. Infallible: text and attribute values are escaped and
    /// characters XML cannot carry are dropped (see [`sanitize`]). Does not check nesting or size; see
    /// [`Response::render_checked`].
    pub fn render(&self) -> String {
        render::document(self)
    }

    /// [`Response::render`] after [`Response::validate`], refusing documents over [`MAX_XML_BYTES`].
    pub fn render_checked(&self) -> Result<String, XmlError> {
        self.validate()?;
        let xml = self.render();
        if xml.len() > MAX_XML_BYTES {
            return Err(XmlError::TooLarge {
                size: xml.len(),
                limit: MAX_XML_BYTES,
            });
        }
        Ok(xml)
    }

    /// Reads a document. Whitespace between elements, comments and the declaration are ignored;
    /// unknown elements or attributes, misplaced elements and stray text are errors.
    pub fn parse(xml: &str) -> Result<Self, XmlError> {
        parse::document(xml)
    }

    /// Checks what the type cannot: nesting (GetDigits/GetInput hold Speak, Play, Wait; PreAnswer holds
    /// Speak, Play, Wait, GetDigits, Redirect, Message) and that every Dial has a target.
    pub fn validate(&self) -> Result<(), XmlError> {
        validate_children("Response", &self.elements)
    }

    /// The response as it reads back after rendering: every string without the characters XML 1.0
    /// cannot carry (C0 controls other than tab, newline, carriage return; U+FFFE, U+FFFF).
    pub fn sanitized(&self) -> Self {
        let mut r = self.clone();
        r.elements.iter_mut().for_each(Element::sanitize);
        r
    }
}

impl From<Vec<Element>> for Response {
    fn from(elements: Vec<Element>) -> Self {
        Self { elements }
    }
}

impl Element {
    /// The element's XML tag.
    pub fn tag(&self) -> &'static str {
        match self {
            Element::Speak(_) => Speak::TAG,
            Element::Play(_) => Play::TAG,
            Element::Wait(_) => Wait::TAG,
            Element::GetDigits(_) => GetDigits::TAG,
            Element::GetInput(_) => GetInput::TAG,
            Element::Dial(_) => Dial::TAG,
            Element::Record(_) => Record::TAG,
            Element::Conference(_) => Conference::TAG,
            Element::MultiPartyCall(_) => MultiPartyCall::TAG,
            Element::Hangup(_) => Hangup::TAG,
            Element::Redirect(_) => Redirect::TAG,
            Element::PreAnswer(_) => PreAnswer::TAG,
            Element::Message(_) => Message::TAG,
        }
    }

    /// `<Speak>text</Speak>` with Plivo's default voice and language.
    pub fn speak(text: impl Into<String>) -> Self {
        Element::Speak(Speak {
            text: text.into(),
            ..Speak::default()
        })
    }

    /// `<Play>url</Play>`.
    pub fn play(url: impl Into<String>) -> Self {
        Element::Play(Play {
            url: url.into(),
            ..Play::default()
        })
    }

    /// `<Redirect>url</Redirect>` (POST, Plivo's default).
    pub fn redirect(url: impl Into<String>) -> Self {
        Element::Redirect(Redirect {
            url: url.into(),
            method: None,
        })
    }

    /// `<Wait length="seconds"/>`.
    pub fn wait(seconds: u32) -> Self {
        Element::Wait(Wait {
            length: Some(seconds),
            ..Wait::default()
        })
    }

    /// Whether this element may appear directly inside `parent`.
    pub fn allowed_in(&self, parent: &str) -> bool {
        nests(parent, self.tag())
    }

    fn sanitize(&mut self) {
        let clean = |s: &mut String| attr::Scalar::sanitize(s);
        match self {
            Element::Speak(e) => {
                e.sanitize_attrs();
                clean(&mut e.text);
            }
            Element::Play(e) => {
                e.sanitize_attrs();
                clean(&mut e.url);
            }
            Element::Wait(e) => e.sanitize_attrs(),
            Element::GetDigits(e) => {
                e.sanitize_attrs();
                e.children.iter_mut().for_each(Element::sanitize);
            }
            Element::GetInput(e) => {
                e.sanitize_attrs();
                e.children.iter_mut().for_each(Element::sanitize);
            }
            Element::Dial(e) => {
                e.sanitize_attrs();
                for t in &mut e.targets {
                    let (DialTarget::Number {
                        number: body,
                        send_digits,
                    }
                    | DialTarget::User {
                        uri: body,
                        send_digits,
                    }) = t;
                    clean(body);
                    attr::Attr::sanitize(send_digits);
                }
            }
            Element::Record(e) => e.sanitize_attrs(),
            Element::Conference(e) => {
                e.sanitize_attrs();
                clean(&mut e.name);
            }
            Element::MultiPartyCall(e) => {
                e.sanitize_attrs();
                clean(&mut e.name);
            }
            Element::Hangup(e) => e.sanitize_attrs(),
            Element::Redirect(e) => {
                e.sanitize_attrs();
                clean(&mut e.url);
            }
            Element::PreAnswer(e) => {
                e.sanitize_attrs();
                e.children.iter_mut().for_each(Element::sanitize);
            }
            Element::Message(e) => {
                e.sanitize_attrs();
                clean(&mut e.text);
            }
        }
    }
}

/// Whether an element `tag` may appear directly inside `parent`.
pub(crate) fn nests(parent: &str, tag: &str) -> bool {
    match parent {
        "Response" => true,
        "GetDigits" | "GetInput" => matches!(tag, "Speak" | "Play" | "Wait"),
        "PreAnswer" => matches!(
            tag,
            "Speak" | "Play" | "Wait" | "GetDigits" | "Redirect" | "Message"
        ),
        _ => false,
    }
}

fn validate_children(parent: &str, children: &[Element]) -> Result<(), XmlError> {
    for child in children {
        if !child.allowed_in(parent) {
            return Err(XmlError::NotAllowed {
                child: child.tag().to_owned(),
                parent: parent.to_owned(),
            });
        }
        match child {
            Element::GetDigits(GetDigits { children, .. })
            | Element::GetInput(GetInput { children, .. })
            | Element::PreAnswer(PreAnswer { children, .. }) => {
                validate_children(child.tag(), children)?
            }
            Element::Dial(d) if d.targets.is_empty() => return Err(XmlError::EmptyDial),
            _ => {}
        }
    }
    Ok(())
}
