//! Small helpers shared by the commands' text and JSON output.

use serde_json::Value;

/// One JSON document on one line (the JSON-lines form of `follow` and `tail`).
pub fn json_line(value: &Value) {
    println!("{value}");
}

/// One JSON document, indented, for the commands that print a single result.
pub fn json_document(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `HH:MM:SS.mmm` of a time in the gateway's format (`2026-11-20 22:54:12.306994+00:00`); the time
/// as given when it has another shape.
pub fn clock(time: &str) -> &str {
    time.get(11..23).unwrap_or(time)
}

/// `YYYY-MM-DD HH:MM:SS` of a time in the gateway's format.
pub fn seconds(time: &str) -> &str {
    time.get(..19).unwrap_or(time)
}

pub fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}
