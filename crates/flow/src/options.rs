//! Reads a component's `options` object field by field, collecting every problem instead of stopping at the
//! first, and yields typed options. Each component's `parse` is a list of reader calls, so the accepted
//! options and their checks live in one place per component.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use phlo_template::Template;
use serde_json::{Map, Value};

use crate::problem::{Place, Problems};

type LiteralCheck = fn(&str) -> Result<(), String>;

pub(crate) struct OptionReader<'a, 'p> {
    map: &'a Map<String, Value>,
    path: String,
    place: &'p Place,
    problems: &'p mut Problems,
    seen: BTreeSet<&'a str>,
}

impl<'a, 'p> OptionReader<'a, 'p> {
    pub fn new(
        map: &'a Map<String, Value>,
        path: &str,
        place: &'p Place,
        problems: &'p mut Problems,
    ) -> Self {
        Self {
            map,
            path: path.to_owned(),
            place,
            problems,
            seen: BTreeSet::new(),
        }
    }

    /// A reader for a nested object (a prompt, an auth block) that reports into the same problem list.
    pub fn nested<'q>(
        &'q mut self,
        map: &'a Map<String, Value>,
        path: String,
    ) -> OptionReader<'a, 'q> {
        OptionReader {
            map,
            path,
            place: self.place,
            problems: self.problems,
            seen: BTreeSet::new(),
        }
    }

    pub fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    pub fn error(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.problems.error(self.place, field, code, message);
    }

    /// The raw value, marking the key as known. `null` counts as absent.
    pub fn raw(&mut self, key: &'a str) -> Option<&'a Value> {
        self.seen.insert(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn missing(&mut self, key: &str, what: &str) {
        let field = self.field(key);
        self.error(
            &field,
            "missing_option",
            format!("`{key}` is required: set it to {what}"),
        );
    }

    fn wrong_type(&mut self, field: &str, expected: &str, got: &Value) {
        self.error(
            field,
            "wrong_type",
            format!("expected {expected}, found {}", kind(got)),
        );
    }

    /// An optional Liquid template.
    pub fn template(&mut self, key: &'a str) -> Option<Template> {
        let value = self.raw(key)?;
        let field = self.field(key);
        self.template_at(&field, value)
    }

    /// A required Liquid template; `what` completes "set it to ...".
    pub fn required_template(&mut self, key: &'a str, what: &str) -> Option<Template> {
        if self.raw(key).is_none() {
            self.missing(key, what);
            return None;
        }
        self.template(key)
    }

    /// Parses one string as a template at `field`, reporting wrong types and syntax errors.
    pub fn template_at(&mut self, field: &str, value: &Value) -> Option<Template> {
        let text = match value {
            Value::String(s) => s.clone(),
            // Numbers and booleans are accepted where text is expected: authors write `"max": 5` or `"rhs": 10`.
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => {
                self.wrong_type(field, "a string", other);
                return None;
            }
        };
        parse_template(self.problems, self.place, field, &text)
    }

    /// A list of templates written as a JSON array of strings or as one comma-separated string.
    pub fn template_list(&mut self, key: &'a str, required: Option<&str>) -> Vec<Template> {
        self.list(key, required, None)
    }

    /// Like [`Self::template_list`], and each literal item must pass `check`; a failure is reported with
    /// `code` at the item's own index (`options.to[1]`).
    pub fn checked_list(
        &mut self,
        key: &'a str,
        required: Option<&str>,
        code: &str,
        check: fn(&str) -> Result<(), String>,
    ) -> Vec<Template> {
        self.list(key, required, Some((code, check)))
    }

    fn list(
        &mut self,
        key: &'a str,
        required: Option<&str>,
        check: Option<(&str, LiteralCheck)>,
    ) -> Vec<Template> {
        let Some(value) = self.raw(key) else {
            if let Some(what) = required {
                self.missing(key, what);
            }
            return Vec::new();
        };
        let field = self.field(key);
        let items: Vec<(String, Value)> = match value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("{field}[{i}]"), v.clone()))
                .collect(),
            Value::String(s) => split_list(s)
                .into_iter()
                .map(|s| (field.clone(), Value::String(s)))
                .collect(),
            other => {
                self.wrong_type(
                    &field,
                    "a list of strings or a comma-separated string",
                    other,
                );
                return Vec::new();
            }
        };
        if items.is_empty()
            && let Some(what) = required
        {
            self.error(
                &field,
                "missing_option",
                format!("`{key}` must not be empty: set it to {what}"),
            );
        }
        let mut out = Vec::new();
        for (f, v) in &items {
            let Some(t) = self.template_at(f, v) else {
                continue;
            };
            if let (Some((code, check)), Some(literal)) = (check, t.as_literal()) {
                for item in split_list(literal) {
                    if let Err(message) = check(&item) {
                        self.error(f, code, message);
                    }
                }
            }
            out.push(t);
        }
        out
    }

    pub fn bool(&mut self, key: &'a str, default: bool) -> bool {
        match self.raw(key) {
            None => default,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                let field = self.field(key);
                self.wrong_type(&field, "true or false", other);
                default
            }
        }
    }

    /// A whole number within `range`, e.g. a timeout in seconds.
    pub fn uint(&mut self, key: &'a str, range: RangeInclusive<u64>, default: u64) -> u64 {
        match self.raw(key) {
            None => default,
            Some(value) => {
                let field = self.field(key);
                self.uint_at(&field, value, range).unwrap_or(default)
            }
        }
    }

    pub fn required_uint(
        &mut self,
        key: &'a str,
        range: RangeInclusive<u64>,
        what: &str,
    ) -> Option<u64> {
        match self.raw(key) {
            None => {
                self.missing(key, what);
                None
            }
            Some(value) => {
                let field = self.field(key);
                self.uint_at(&field, value, range)
            }
        }
    }

    fn uint_at(&mut self, field: &str, value: &Value, range: RangeInclusive<u64>) -> Option<u64> {
        let number = match value {
            Value::Number(n) => n
                .as_i64()
                .map(i128::from)
                .or_else(|| n.as_u64().map(i128::from)),
            Value::String(s) => s.trim().parse::<i128>().ok(),
            _ => None,
        };
        let Some(number) = number else {
            self.wrong_type(field, "a whole number", value);
            return None;
        };
        if number < i128::from(*range.start()) || number > i128::from(*range.end()) {
            self.error(
                field,
                "out_of_range",
                format!(
                    "{number} is out of range: use a value from {} to {}",
                    range.start(),
                    range.end()
                ),
            );
            return None;
        }
        u64::try_from(number).ok()
    }

    /// One of a fixed set of words. Hyphens and case are forgiven (`No-Answer` reads as `no_answer`).
    pub fn choice(
        &mut self,
        key: &'a str,
        allowed: &[&'static str],
        default: &'static str,
    ) -> &'static str {
        let Some(value) = self.raw(key) else {
            return default;
        };
        let field = self.field(key);
        match value.as_str().map(normalize_word) {
            Some(word) => match allowed.iter().find(|a| **a == word) {
                Some(found) => found,
                None => {
                    self.error(
                        &field,
                        "invalid_value",
                        format!(
                            "`{word}` is not allowed here: use one of {}",
                            allowed.join(", ")
                        ),
                    );
                    default
                }
            },
            None => {
                self.wrong_type(&field, &format!("one of {}", allowed.join(", ")), value);
                default
            }
        }
    }

    /// A nested object, read with its own reader; `None` when absent or not an object.
    pub fn object(&mut self, key: &'a str) -> Option<&'a Map<String, Value>> {
        let value = self.raw(key)?;
        match value {
            Value::Object(map) => Some(map),
            other => {
                let field = self.field(key);
                self.wrong_type(&field, "an object", other);
                None
            }
        }
    }

    /// A nested object of string keys to templates (HTTP headers, params, form bodies).
    pub fn template_map(&mut self, key: &'a str) -> Vec<(String, Template)> {
        let Some(map) = self.object(key) else {
            return Vec::new();
        };
        let field = self.field(key);
        let mut out = Vec::new();
        for (k, v) in map {
            if let Some(t) = self.template_at(&format!("{field}.{k}"), v) {
                out.push((k.clone(), t));
            }
        }
        out
    }

    /// Reports every key that no reader call asked for: typos and options of other components.
    pub fn finish(self) {
        for key in self.map.keys() {
            if !self.seen.contains(key.as_str()) {
                let mut known: Vec<&str> = self.seen.iter().copied().collect();
                known.sort_unstable();
                self.problems.error(
                    self.place,
                    &format!("{}.{key}", self.path),
                    "unknown_option",
                    format!(
                        "`{key}` is not an option here; known options: {}",
                        known.join(", ")
                    ),
                );
            }
        }
    }
}

pub(crate) fn parse_template(
    problems: &mut Problems,
    place: &Place,
    field: &str,
    text: &str,
) -> Option<Template> {
    match Template::parse(text) {
        Ok(t) => Some(t.with_field(field)),
        Err(e) => {
            problems.error(
                place,
                field,
                "template_syntax",
                format!("Liquid does not parse: {e}"),
            );
            None
        }
    }
}

/// Checks a literal URL: absolute, http or https, with a host.
pub(crate) fn check_url(s: &str) -> Result<(), String> {
    match url::Url::parse(s) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            Ok(())
        }
        Ok(u) => Err(format!(
            "`{s}` is not usable here: the scheme must be http or https, found `{}`",
            u.scheme()
        )),
        Err(e) => Err(format!(
            "`{s}` is not a URL ({e}): write an absolute http(s) URL, e.g. https://example.com/hook"
        )),
    }
}

/// Splits a comma-separated list, trimming blanks. Used for `to` lists written as one string.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn normalize_word(s: &str) -> String {
    s.trim().to_ascii_lowercase().replace(['-', ' '], "_")
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
