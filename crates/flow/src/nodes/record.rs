//! The Record Audio option of Initiate Call, Call Forward and the conference components, with the seed's
//! truth table. True: any non-zero integer, `true` in any case, a non-empty object or string.
//! False: 0, `false` in any case, empty, null. Strings may be Liquid; they are judged after rendering.

use phlo_template::Template;
use serde_json::Value;

use crate::engine::Context;
use crate::options::OptionReader;

#[derive(Debug, Clone)]
pub enum RecordOption {
    Fixed(bool),
    Dynamic(Template),
}

pub(crate) fn parse(r: &mut OptionReader, key: &'static str) -> RecordOption {
    match r.raw(key) {
        None => RecordOption::Fixed(false),
        Some(Value::String(s)) => {
            let field = r.field(key);
            match r.template_at(&field, &Value::String(s.clone())) {
                Some(t) => match t.as_literal() {
                    Some(text) => RecordOption::Fixed(text_is_true(text)),
                    None => RecordOption::Dynamic(t),
                },
                None => RecordOption::Fixed(false),
            }
        }
        Some(other) => RecordOption::Fixed(value_is_true(other)),
    }
}

pub(crate) fn resolve(ctx: &Context, option: &RecordOption) -> Result<bool, String> {
    match option {
        RecordOption::Fixed(b) => Ok(*b),
        RecordOption::Dynamic(t) => ctx.render(t).map(|s| text_is_true(&s)),
    }
}

pub fn value_is_true(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => text_is_true(s),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

pub fn text_is_true(s: &str) -> bool {
    let s = s.trim();
    if s.is_empty() || s.eq_ignore_ascii_case("false") {
        return false;
    }
    if s.eq_ignore_ascii_case("true") {
        return true;
    }
    match s.parse::<i64>() {
        Ok(n) => n != 0,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seed_truth_table() {
        for v in [
            json!(1),
            json!(-7),
            json!(true),
            json!("TRUE"),
            json!("True"),
            json!("yes"),
            json!({"a": 1}),
            json!("5"),
        ] {
            assert!(value_is_true(&v), "{v} should record");
        }
        for v in [
            json!(0),
            json!(false),
            json!("false"),
            json!("FALSE"),
            json!(""),
            json!("  "),
            json!(null),
            json!({}),
            json!("0"),
        ] {
            assert!(!value_is_true(&v), "{v} should not record");
        }
    }
}
