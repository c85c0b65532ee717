//! Text as it is written: [`Stored`] binds JSON, and [`text`] a string, with every U+0000 replaced
//! by U+FFFD.
//!
//! Postgres refuses `\u0000` in `jsonb` ("unsupported Unicode escape sequence") and SQLite keeps it.
//! The API refuses it in requests (400), but it also arrives where nobody can be asked to remove it:
//! an HTTP Request node's response, an inbound SMS, a carrier's webhook. Refusing the write there would
//! fail the step or the webhook for good, on one backend only; the replacement character keeps the run
//! going, the same on both, and marks where the character was.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::value::RawValue;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo};
use sqlx::types::Json;
use sqlx::{Encode, Postgres, Sqlite, Type};

/// Binds `&T` as JSON (`jsonb` on Postgres, text on SQLite) without U+0000.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a, T: ?Sized>(pub &'a T);

impl<T: Serialize + ?Sized> Stored<'_, T> {
    /// Every stored JSON passes here (a token's context at each step), so the usual case, no NUL, is
    /// one serialization and one scan: `to_raw_value` keeps the text without parsing it again.
    fn scrubbed(&self) -> Result<Json<Box<RawValue>>, serde_json::Error> {
        let raw = serde_json::value::to_raw_value(self.0)?;
        if !raw.get().contains("\\u0000") {
            return Ok(Json(raw));
        }
        let text = scrub_nul_escapes(raw.get().to_owned());
        Ok(Json(RawValue::from_string(text)?))
    }
}

/// `s` without NUL, for a text column fed from outside (an error a carrier or a server sent back).
pub fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

/// Replaces each `\u0000` escape of serialized JSON with `\ufffd`: same length, so in place. A
/// backslash that is itself escaped (`\\u0000`, the six characters of the text `\u0000`) is skipped.
fn scrub_nul_escapes(text: String) -> String {
    let mut bytes = text.into_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        if bytes[i + 1..].starts_with(b"u0000") {
            bytes[i + 2..i + 6].copy_from_slice(b"fffd");
        }
        // Skip the escaped character, so that `\\` never starts an escape.
        i += 2;
    }
    // Only ASCII bytes were replaced by ASCII bytes.
    String::from_utf8(bytes).unwrap_or_default()
}

impl<T: ?Sized> Type<Postgres> for Stored<'_, T> {
    fn type_info() -> PgTypeInfo {
        <Json<()> as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <Json<()> as Type<Postgres>>::compatible(ty)
    }
}

impl<T: Serialize + ?Sized> Encode<'_, Postgres> for Stored<'_, T> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Json<Box<RawValue>> as Encode<'_, Postgres>>::encode(self.scrubbed()?, buf)
    }
}

impl<T: ?Sized> Type<Sqlite> for Stored<'_, T> {
    fn type_info() -> SqliteTypeInfo {
        <Json<()> as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <Json<()> as Type<Sqlite>>::compatible(ty)
    }
}

impl<T: Serialize + ?Sized> Encode<'_, Sqlite> for Stored<'_, T> {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <Json<Box<RawValue>> as Encode<'_, Sqlite>>::encode(self.scrubbed()?, buf)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn stored(v: &Value) -> Value {
        let Json(raw) = Stored(v).scrubbed().unwrap();
        serde_json::from_str(raw.get()).unwrap()
    }

    #[test]
    fn nul_becomes_the_replacement_character_in_keys_and_values() {
        let v = json!({ "a\u{0}": ["x\u{0}y", { "n": "\u{0}\u{0}" }], "plain": 1 });
        assert_eq!(
            stored(&v),
            json!({ "a\u{FFFD}": ["x\u{FFFD}y", { "n": "\u{FFFD}\u{FFFD}" }], "plain": 1 })
        );
    }

    #[test]
    fn an_escaped_backslash_before_u0000_is_text_and_stays() {
        // The text `\u0000` (a backslash, then `u0000`) serializes as `\\u0000`: not a NUL.
        let v = json!({ "path": "C:\\u0000\\\u{0}", "tab": "\t\\" });
        assert_eq!(
            stored(&v),
            json!({ "path": "C:\\u0000\\\u{FFFD}", "tab": "\t\\" })
        );
    }

    #[test]
    fn text_without_nul_is_borrowed() {
        assert!(matches!(text("plain"), Cow::Borrowed("plain")));
        assert_eq!(text("a\u{0}\u{0}b"), "a\u{FFFD}\u{FFFD}b");
    }

    #[test]
    fn json_without_nul_is_written_as_serialized() {
        let v = json!({ "é": "ü ✓", "n": 1.5 });
        let Json(raw) = Stored(&v).scrubbed().unwrap();
        assert_eq!(raw.get(), serde_json::to_string(&v).unwrap());
    }
}
