//! The wrappers for JSON objects, arrays and scalars; see the parent module
//! for the rules they implement.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::fmt;

use liquid_core::model::{
    ArrayView, DisplayCow, KStringCow, ObjectView, ScalarCow, State, Value, ValueView,
};
use serde_json::{Map, Value as Json};

use super::{Lax, NIL, object_to_liquid, to_liquid};

/// Renders containers through their owned form: they are rarely rendered
/// straight from the globals, so simplicity beats speed here.
struct OwnedRender(Value);

impl fmt::Display for OwnedRender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.render().fmt(f)
    }
}

struct OwnedSource(Value);

impl fmt::Display for OwnedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.source().fmt(f)
    }
}

/// Implements the `ValueView` methods that only depend on the owned form.
macro_rules! owned_value_view {
    () => {
        fn as_debug(&self) -> &dyn fmt::Debug {
            self
        }
        fn render(&self) -> DisplayCow<'_> {
            DisplayCow::Owned(Box::new(OwnedRender(self.to_value())))
        }
        fn source(&self) -> DisplayCow<'_> {
            DisplayCow::Owned(Box::new(OwnedSource(self.to_value())))
        }
        fn to_kstr(&self) -> KStringCow<'_> {
            KStringCow::from(self.to_value().to_kstr().into_owned())
        }
    };
}

/// A scalar that also answers property lookups (`{{ name.first }}` on a
/// string is nil in Shopify; liquid would error). `size` is left to liquid's
/// fallback so `{{ name.size }}` still counts bytes as liquid does.
#[derive(Debug)]
pub(super) struct LaxScalar<'a>(pub(super) ScalarCow<'a>);

impl ValueView for LaxScalar<'_> {
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
    fn as_scalar(&self) -> Option<ScalarCow<'_>> {
        Some(self.0.as_ref())
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        Some(self)
    }
}

impl ObjectView for LaxScalar<'_> {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        i64::try_from(self.0.to_kstr().len()).unwrap_or(i64::MAX)
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
    fn contains_key(&self, index: &str) -> bool {
        index != "size"
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        (index != "size").then_some(NIL as &dyn ValueView)
    }
}

#[derive(Debug)]
pub(super) struct LaxArray<'a> {
    json: &'a [Json],
    items: OnceCell<Vec<Lax<'a>>>,
}

impl<'a> LaxArray<'a> {
    pub(super) fn new(json: &'a [Json]) -> Self {
        Self {
            json,
            items: OnceCell::new(),
        }
    }

    fn items(&self) -> &[Lax<'a>] {
        self.items
            .get_or_init(|| self.json.iter().map(Lax::new).collect())
    }
}

impl ValueView for LaxArray<'_> {
    owned_value_view!();
    fn type_name(&self) -> &'static str {
        "array"
    }
    fn query_state(&self, state: State) -> bool {
        match state {
            State::Truthy => true,
            State::DefaultValue | State::Empty | State::Blank => self.json.is_empty(),
        }
    }
    fn to_value(&self) -> Value {
        Value::Array(self.json.iter().map(to_liquid).collect())
    }
    fn as_array(&self) -> Option<&dyn ArrayView> {
        Some(self)
    }
}

impl ArrayView for LaxArray<'_> {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        i64::try_from(self.json.len()).unwrap_or(i64::MAX)
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(self.items().iter().map(Lax::as_view))
    }
    fn contains_key(&self, index: i64) -> bool {
        self.position(index).is_some()
    }
    /// Out-of-range indexes are nil rather than an "Unknown index" error.
    fn get(&self, index: i64) -> Option<&dyn ValueView> {
        let item = self.position(index).and_then(|i| self.items().get(i));
        Some(item.map_or(NIL as &dyn ValueView, Lax::as_view))
    }
}

impl LaxArray<'_> {
    /// Negative indexes count from the end, as in liquid.
    fn position(&self, index: i64) -> Option<usize> {
        let index = if index < 0 {
            index.checked_add(self.size())?
        } else {
            index
        };
        usize::try_from(index).ok().filter(|i| *i < self.json.len())
    }
}

#[derive(Debug)]
pub(super) struct LaxObject<'a> {
    json: &'a Map<String, Json>,
    children: OnceCell<HashMap<&'a str, Lax<'a>>>,
}

impl<'a> LaxObject<'a> {
    pub(super) fn new(json: &'a Map<String, Json>) -> Self {
        Self {
            json,
            children: OnceCell::new(),
        }
    }

    pub(super) fn child(&self, key: &str) -> Option<&dyn ValueView> {
        let children = self.children.get_or_init(|| {
            self.json
                .iter()
                .map(|(k, v)| (k.as_str(), Lax::new(v)))
                .collect()
        });
        children.get(key).map(Lax::as_view)
    }
}

impl ValueView for LaxObject<'_> {
    owned_value_view!();
    fn type_name(&self) -> &'static str {
        "object"
    }
    fn query_state(&self, state: State) -> bool {
        match state {
            State::Truthy => true,
            State::DefaultValue | State::Empty | State::Blank => self.json.is_empty(),
        }
    }
    fn to_value(&self) -> Value {
        Value::Object(object_to_liquid(self.json))
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        Some(self)
    }
}

impl ObjectView for LaxObject<'_> {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        i64::try_from(self.json.len()).unwrap_or(i64::MAX)
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        Box::new(self.json.keys().map(|k| KStringCow::from_ref(k)))
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(self.json.keys().map(|k| self.child(k).unwrap_or(NIL)))
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        Box::new(
            self.json
                .keys()
                .map(|k| (KStringCow::from_ref(k), self.child(k).unwrap_or(NIL))),
        )
    }
    fn contains_key(&self, index: &str) -> bool {
        self.get(index).is_some()
    }
    /// `size` is left to liquid's fallback (the key count) unless the object
    /// really has such a key; every other miss is nil.
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        match self.child(index) {
            Some(v) => Some(v),
            None if index == "size" => None,
            None => Some(NIL),
        }
    }
}
