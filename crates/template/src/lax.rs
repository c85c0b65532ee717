//! Shopify-style lax variable lookup on top of `liquid`.
//!
//! `liquid` 0.26 errors on `{{ missing }}`, `{{ a.b }}` when `a` lacks `b`,
//! and even `{{ missing | default: 'x' }}`, because its stack frames only
//! fall through to "Unknown variable" errors. PHLO templates reference
//! outputs of nodes that may not have run, so a miss must read as `nil`.
//!
//! The trick: the globals claim to contain every key, and every miss yields
//! [`LaxNil`], a nil that is itself an object answering `nil` to any key, so
//! arbitrarily deep paths resolve. JSON is wrapped lazily (a node's children
//! are built the first time it is indexed) so a render only pays for the part
//! of the globals it actually touches, not for every previous node's output.
//!
//! Limits of the approach (liquid converts a looked-up value to an owned
//! `liquid::model::Value` before filters, `assign` and `for` see it, and a
//! plain `Value` is strict again):
//! - a miss on a `for` loop item or an `assign`ed copy still errors;
//! - a non-numeric key on an array (`{{ list.nope }}`) still errors, because
//!   liquid consults `as_array` before `as_object`;
//! - a missing *index* (`{{ a[missing] }}`) errors: liquid wants a scalar key;
//! - liquid's owned objects are `HashMap`s, so rendering an object or looping
//!   over one has no stable key order.

mod nodes;

use std::fmt;

use liquid_core::model::{
    DisplayCow, KStringCow, Object, ObjectView, ScalarCow, State, Value, ValueView,
};
use serde_json::{Map, Value as Json};

use nodes::{LaxArray, LaxObject, LaxScalar};

/// The value of every missing variable and index.
#[derive(Debug, Clone, Copy)]
struct LaxNil;

/// Shared so that `get` can hand out a reference that outlives the call.
const NIL: &LaxNil = &LaxNil;

/// Top-level globals. Unlike nested objects it answers `nil` even for
/// `size`, so a global called `size` that is absent does not render the
/// number of globals.
#[derive(Debug)]
pub(crate) struct Globals<'a>(LaxObject<'a>);

impl<'a> Globals<'a> {
    pub(crate) fn new(map: &'a Map<String, Json>) -> Self {
        Self(LaxObject::new(map))
    }
}

/// A lazily wrapped JSON value.
#[derive(Debug)]
enum Lax<'a> {
    Nil,
    Scalar(LaxScalar<'a>),
    Array(LaxArray<'a>),
    Object(LaxObject<'a>),
}

impl<'a> Lax<'a> {
    fn new(json: &'a Json) -> Self {
        match json {
            Json::Null => Lax::Nil,
            Json::Bool(b) => Lax::Scalar(LaxScalar(ScalarCow::new(*b))),
            Json::Number(n) => Lax::Scalar(LaxScalar(number_scalar(n))),
            Json::String(s) => Lax::Scalar(LaxScalar(ScalarCow::new(s.as_str()))),
            Json::Array(items) => Lax::Array(LaxArray::new(items)),
            Json::Object(map) => Lax::Object(LaxObject::new(map)),
        }
    }

    fn as_view(&self) -> &dyn ValueView {
        match self {
            Lax::Nil => NIL,
            Lax::Scalar(s) => s,
            Lax::Array(a) => a,
            Lax::Object(o) => o,
        }
    }
}

/// Integers stay integers so they render without a trailing `.0`; only
/// values that do not fit an `i64` fall back to floating point.
fn number_scalar(n: &serde_json::Number) -> ScalarCow<'static> {
    match n.as_i64() {
        Some(i) => ScalarCow::new(i),
        None => ScalarCow::new(n.as_f64().unwrap_or(f64::NAN)),
    }
}

/// Owned conversion; liquid calls this for every value it looks up.
fn to_liquid(json: &Json) -> Value {
    match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::scalar(*b),
        Json::Number(n) => Value::Scalar(number_scalar(n)),
        Json::String(s) => Value::scalar(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(to_liquid).collect()),
        Json::Object(map) => Value::Object(object_to_liquid(map)),
    }
}

fn object_to_liquid(map: &Map<String, Json>) -> Object {
    map.iter()
        .map(|(k, v)| (k.clone().into(), to_liquid(v)))
        .collect()
}

impl ValueView for LaxNil {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        DisplayCow::Borrowed(&"")
    }
    fn source(&self) -> DisplayCow<'_> {
        DisplayCow::Borrowed(&"nil")
    }
    fn type_name(&self) -> &'static str {
        "nil"
    }
    fn query_state(&self, state: State) -> bool {
        Value::Nil.query_state(state)
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        KStringCow::from_static("")
    }
    fn to_value(&self) -> Value {
        Value::Nil
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        Some(self)
    }
    fn is_nil(&self) -> bool {
        true
    }
}

impl ObjectView for LaxNil {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        0
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        Box::new(std::iter::empty())
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(std::iter::empty())
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        Box::new(std::iter::empty())
    }
    fn contains_key(&self, _index: &str) -> bool {
        true
    }
    fn get<'s>(&'s self, _index: &str) -> Option<&'s dyn ValueView> {
        Some(NIL)
    }
}

impl ValueView for Globals<'_> {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        self.0.render()
    }
    fn source(&self) -> DisplayCow<'_> {
        self.0.source()
    }
    fn type_name(&self) -> &'static str {
        self.0.type_name()
    }
    fn query_state(&self, state: State) -> bool {
        self.0.query_state(state)
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        self.0.to_kstr()
    }
    fn to_value(&self) -> Value {
        self.0.to_value()
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        Some(self)
    }
}

impl ObjectView for Globals<'_> {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        self.0.size()
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        self.0.keys()
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        self.0.values()
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        self.0.iter()
    }
    /// Always true: liquid asks this before looking a root variable up, and
    /// `false` sends the lookup to the parent frame, which errors.
    fn contains_key(&self, _index: &str) -> bool {
        true
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        Some(self.0.child(index).unwrap_or(NIL))
    }
}
