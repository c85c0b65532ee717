//! Attribute values in both directions, escaping, and the `element!` macro that declares an element's
//! attributes once for the renderer, the parser and the sanitiser.

use std::borrow::Cow;

use super::{HangupReason, Method, XmlError};

/// Whether XML 1.0 can carry `c` at all (as text or as a character reference). C0 controls other than
/// tab, newline and carriage return, and U+FFFE/U+FFFF, cannot; Rust strings hold no surrogates.
fn allowed(c: char) -> bool {
    !((c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{FFFE}' || c == '\u{FFFF}')
}

/// `s` without the characters XML 1.0 cannot carry. This is the only change rendering makes to text:
/// `Response::parse(&r.render())` equals `r.sanitized()`.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if s.chars().all(allowed) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().filter(|&c| allowed(c)).collect())
    }
}

/// Appends `s` escaped for a text node (`in_attr == false`) or a double-quoted attribute value. Tab,
/// newline and carriage return in attributes, and carriage return in text, become character references
/// so that the parser's whitespace normalisation cannot change them.
pub(crate) fn escape(out: &mut String, s: &str, in_attr: bool) {
    for c in s.chars().filter(|&c| allowed(c)) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' if in_attr => out.push_str("&#9;"),
            '\n' if in_attr => out.push_str("&#10;"),
            c => out.push(c),
        }
    }
}

/// One attribute's value type.
pub trait Scalar: Sized {
    fn to_attr(&self) -> Cow<'_, str>;
    fn from_attr(value: &str) -> Result<Self, String>;
    fn sanitize(&mut self) {}
}

impl Scalar for String {
    fn to_attr(&self) -> Cow<'_, str> {
        Cow::Borrowed(self)
    }
    fn from_attr(value: &str) -> Result<Self, String> {
        Ok(value.to_owned())
    }
    fn sanitize(&mut self) {
        if let Cow::Owned(clean) = sanitize(self) {
            *self = clean;
        }
    }
}

impl Scalar for u32 {
    fn to_attr(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_string())
    }
    fn from_attr(value: &str) -> Result<Self, String> {
        value
            .parse()
            .map_err(|_| "expected a whole number from 0 to 4294967295".to_owned())
    }
}

impl Scalar for bool {
    fn to_attr(&self) -> Cow<'_, str> {
        Cow::Borrowed(if *self { "true" } else { "false" })
    }
    fn from_attr(value: &str) -> Result<Self, String> {
        match value.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err("expected true or false".to_owned()),
        }
    }
}

impl Scalar for Method {
    fn to_attr(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.as_str())
    }
    fn from_attr(value: &str) -> Result<Self, String> {
        match value.to_ascii_uppercase().as_str() {
            "GET" => Ok(Method::Get),
            "POST" => Ok(Method::Post),
            _ => Err("expected GET or POST".to_owned()),
        }
    }
}

impl Scalar for HangupReason {
    fn to_attr(&self) -> Cow<'_, str> {
        Cow::Borrowed(match self {
            HangupReason::Rejected => "rejected",
            HangupReason::Busy => "busy",
        })
    }
    fn from_attr(value: &str) -> Result<Self, String> {
        match value {
            "rejected" => Ok(HangupReason::Rejected),
            "busy" => Ok(HangupReason::Busy),
            _ => Err("expected rejected or busy".to_owned()),
        }
    }
}

/// Why an attribute could not be read.
pub enum Bad {
    Missing,
    Invalid(String),
}

/// A struct field that is one attribute: `Option<T>` (rendered only when set) or a required `String`.
pub trait Attr: Sized {
    fn write(&self) -> Option<Cow<'_, str>>;
    fn read(value: Option<&str>) -> Result<Self, Bad>;
    fn sanitize(&mut self);
}

impl<T: Scalar> Attr for Option<T> {
    fn write(&self) -> Option<Cow<'_, str>> {
        self.as_ref().map(Scalar::to_attr)
    }
    fn read(value: Option<&str>) -> Result<Self, Bad> {
        value
            .map(|v| T::from_attr(v).map_err(Bad::Invalid))
            .transpose()
    }
    fn sanitize(&mut self) {
        if let Some(v) = self {
            v.sanitize();
        }
    }
}

impl Attr for String {
    fn write(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self))
    }
    fn read(value: Option<&str>) -> Result<Self, Bad> {
        value.map(str::to_owned).ok_or(Bad::Missing)
    }
    fn sanitize(&mut self) {
        Scalar::sanitize(self);
    }
}

/// An element's attributes, rendered in declaration order.
pub trait WriteAttrs {
    fn write_attrs(&self, w: &mut AttrWriter<'_>);
}

/// Writes ` name="value"` pairs after an element's name.
pub struct AttrWriter<'a>(pub &'a mut String);

impl AttrWriter<'_> {
    pub fn put<A: Attr>(&mut self, name: &str, value: &A) {
        if let Some(v) = value.write() {
            self.0.push(' ');
            self.0.push_str(name);
            self.0.push_str("=\"");
            escape(self.0, &v, true);
            self.0.push('"');
        }
    }
}

/// Hands out a parsed element's attributes by name and reports any left unread.
pub struct AttrReader<'a> {
    element: &'a str,
    attrs: Vec<(&'a str, &'a str, bool)>,
}

impl<'a> AttrReader<'a> {
    pub fn new(node: roxmltree::Node<'a, '_>) -> Self {
        Self {
            element: node.tag_name().name(),
            attrs: node
                .attributes()
                .map(|a| (a.name(), a.value(), false))
                .collect(),
        }
    }

    pub fn take<A: Attr>(&mut self, name: &str) -> Result<A, XmlError> {
        let found = self.attrs.iter_mut().find(|(n, _, _)| *n == name);
        let value = found.map(|(_, v, used)| {
            *used = true;
            *v
        });
        A::read(value).map_err(|bad| match bad {
            Bad::Missing => XmlError::MissingAttribute {
                element: self.element.to_owned(),
                attribute: name.to_owned(),
            },
            Bad::Invalid(reason) => XmlError::InvalidAttribute {
                element: self.element.to_owned(),
                attribute: name.to_owned(),
                value: value.unwrap_or_default().to_owned(),
                reason,
            },
        })
    }

    /// Fails on the first attribute no `take` asked for.
    pub fn finish(self) -> Result<(), XmlError> {
        match self.attrs.iter().find(|(_, _, used)| !used) {
            Some((name, _, _)) => Err(XmlError::UnknownAttribute {
                element: self.element.to_owned(),
                attribute: (*name).to_owned(),
            }),
            None => Ok(()),
        }
    }
}

/// Declares an element struct: its body fields in `[...]` (text, children), then its attributes as
/// `field: Type = "xmlName"`, rendered in that order.
macro_rules! element {
    (
        $(#[$meta:meta])*
        $name:ident <$tag:literal> [$($(#[$bmeta:meta])* $body:ident: $bty:ty),* $(,)?]
        { $($(#[$fmeta:meta])* $field:ident: $fty:ty = $attr:literal),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct $name {
            $($(#[$bmeta])* pub $body: $bty,)*
            $($(#[$fmeta])* pub $field: $fty,)*
        }

        impl $name {
            /// The element's XML tag.
            pub const TAG: &'static str = $tag;

            #[allow(clippy::needless_update)]
            pub(crate) fn read_attrs(
                _r: &mut $crate::xml::attr::AttrReader<'_>,
            ) -> Result<Self, $crate::xml::XmlError> {
                Ok(Self { $($field: _r.take($attr)?,)* ..Self::default() })
            }

            pub(crate) fn sanitize_attrs(&mut self) {
                $($crate::xml::attr::Attr::sanitize(&mut self.$field);)*
            }
        }

        impl $crate::xml::attr::WriteAttrs for $name {
            fn write_attrs(&self, _w: &mut $crate::xml::attr::AttrWriter<'_>) {
                $(_w.put($attr, &self.$field);)*
            }
        }
    };
}

pub(crate) use element;
