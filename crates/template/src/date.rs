//! Our `date` filter, registered in place of liquid's.
//!
//! liquid 0.26's `date` only knows a handful of Ruby-ish layouts and hands
//! RFC 3339 strings (what every JSON API and our own engine emit) back
//! unformatted, silently. This filter tries RFC 3339 and friends first and
//! then falls back to liquid's own parser, so nothing that worked before
//! stops working. Like Shopify, input that is not a date is returned as is.

use std::fmt::{self, Write as _};

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use liquid_core::parser::{FilterArguments, FilterParametersReflection, ParameterReflection};
use liquid_core::{
    Error, Expression, Filter, FilterParameters, FilterReflection, ParseFilter, Result, Runtime,
    Value, ValueView,
};

#[derive(Debug, FilterParameters)]
struct DateArgs {
    #[parameter(
        description = "The strftime format to render the date with.",
        arg_type = "str"
    )]
    format: Expression,
}

/// The parser-side plugin; see the module docs for why it replaces liquid's.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DateFilterParser;

impl FilterReflection for DateFilterParser {
    fn name(&self) -> &str {
        "date"
    }
    fn description(&self) -> &str {
        "Formats a date (RFC 3339, liquid's layouts, unix seconds, `now`) with strftime."
    }
    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        DateArgs::positional_parameters()
    }
    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        DateArgs::keyword_parameters()
    }
}

impl ParseFilter for DateFilterParser {
    /// A literal format is checked here so a typo fails when the PHLO is
    /// saved instead of when a call is already in flight.
    fn parse(&self, arguments: FilterArguments<'_>) -> Result<Box<dyn Filter>> {
        let args = DateArgs::from_args(arguments)?;
        if let Expression::Literal(format) = &args.format {
            compile_format(&format.to_kstr())?;
        }
        Ok(Box::new(DateFilter { args }))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

#[derive(Debug)]
struct DateFilter {
    args: DateArgs,
}

impl fmt::Display for DateFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "date: {}", self.args)
    }
}

impl Filter for DateFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        let args = self.args.evaluate(runtime)?;
        // liquid returns the input for an empty format; keep that.
        if args.format.is_empty() {
            return Ok(input.to_value());
        }
        let Some(date) = to_datetime(input) else {
            return Ok(input.to_value());
        };
        let items = compile_format(&args.format)?;
        let mut out = String::new();
        write!(out, "{}", date.format_with_items(items.iter()))
            .map_err(|_| invalid_format(&args.format))?;
        Ok(Value::scalar(out))
    }
}

/// Parses a strftime format up front: chrono's `Display` would panic on a
/// bad specifier. Ruby's `%L` (milliseconds) and `%N` (nanoseconds), common
/// in Shopify templates, are mapped to chrono's spelling.
fn compile_format(format: &str) -> Result<Vec<Item<'static>>> {
    let mut translated = String::with_capacity(format.len());
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            translated.push(c);
            continue;
        }
        match chars.next() {
            Some('L') => translated.push_str("%3f"),
            Some('N') => translated.push_str("%9f"),
            Some(next) => {
                translated.push('%');
                translated.push(next);
            }
            None => translated.push('%'),
        }
    }
    StrftimeItems::new(&translated)
        .parse_to_owned()
        .map_err(|_| invalid_format(format))
}

fn invalid_format(format: &str) -> Error {
    Error::with_msg(format!("invalid date format {format:?}"))
}

/// Interprets a filter input as an instant. Numbers are unix seconds (UTC);
/// strings keep their own offset so `%H` shows the wall-clock time written.
fn to_datetime(input: &dyn ValueView) -> Option<DateTime<FixedOffset>> {
    let scalar = input.as_scalar()?;
    // `type_name` is the only public way to tell a numeric scalar from a
    // string that happens to look like one.
    match scalar.type_name() {
        "whole number" => scalar.to_integer().and_then(from_unix_seconds),
        "fractional number" => scalar.to_float().and_then(from_fractional_seconds),
        "string" => parse_str(&scalar.to_kstr()),
        "date" => {
            let date = scalar.to_date()?;
            let naive =
                NaiveDate::from_ymd_opt(date.year(), date.month().into(), date.day().into())?;
            Some(naive.and_hms_opt(0, 0, 0)?.and_utc().fixed_offset())
        }
        _ => scalar.to_date_time().and_then(from_liquid),
    }
}

fn from_unix_seconds(seconds: i64) -> Option<DateTime<FixedOffset>> {
    DateTime::<Utc>::from_timestamp(seconds, 0).map(|d| d.fixed_offset())
}

fn from_fractional_seconds(seconds: f64) -> Option<DateTime<FixedOffset>> {
    if !seconds.is_finite() || seconds.abs() > 1e15 {
        return None;
    }
    let whole = seconds.floor();
    // Both casts are in range: |whole| <= 1e15 and the fraction is in [0, 1).
    let (secs, nanos) = (whole as i64, ((seconds - whole) * 1e9) as u32);
    DateTime::<Utc>::from_timestamp(secs, nanos.min(999_999_999)).map(|d| d.fixed_offset())
}

fn parse_str(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d);
    }
    for layout in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f %z"] {
        if let Ok(d) = DateTime::parse_from_str(s, layout) {
            return Some(d);
        }
    }
    // No offset given: read as UTC, which is what liquid does too.
    for layout in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, layout) {
            return Some(d.and_utc().fixed_offset());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc().fixed_offset());
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        return Some(d);
    }
    // liquid's layouts, unix seconds as digits, `now` and `today`.
    liquid_core::model::DateTime::from_str(s).and_then(from_liquid)
}

/// Converts through the `time` value liquid derefs to, keeping the offset.
fn from_liquid(d: liquid_core::model::DateTime) -> Option<DateTime<FixedOffset>> {
    let offset = FixedOffset::east_opt(d.offset().whole_seconds())?;
    let utc = DateTime::<Utc>::from_timestamp(d.unix_timestamp(), d.nanosecond())?;
    Some(utc.with_timezone(&offset))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{RenderError, Template};

    fn vars() -> serde_json::Map<String, serde_json::Value> {
        let vars = json!({ "created": "2024-01-02T03:04:05Z", "yes": true, "bad_format": "%Q" });
        vars.as_object().cloned().unwrap()
    }

    fn render(source: &str) -> String {
        Template::parse(source).unwrap().render(&vars()).unwrap()
    }

    #[test]
    fn date_formats_rfc3339() {
        assert_eq!(
            render(r#"{{ "2024-01-02T03:04:05Z" | date: "%Y-%m-%d %H:%M" }}"#),
            "2024-01-02 03:04"
        );
        assert_eq!(
            render(r#"{{ "2024-01-02T03:04:05.123+05:30" | date: "%H:%M:%S.%L %z" }}"#),
            "03:04:05.123 +0530"
        );
        assert_eq!(render(r#"{{ created | date: "%d/%m/%Y" }}"#), "02/01/2024");
    }

    #[test]
    fn date_keeps_liquid_inputs() {
        assert_eq!(
            render(r#"{{ "2024-01-02 03:04:05 +0000" | date: "%Y-%m-%d" }}"#),
            "2024-01-02"
        );
        assert_eq!(
            render(r#"{{ "13 Jun 2016 02:30:00 +0300" | date: "%Y-%m-%d %H" }}"#),
            "2016-06-13 02"
        );
        assert_eq!(render(r#"{{ "1700000000" | date: "%Y" }}"#), "2023");
        assert_eq!(render(r#"{{ 1700000000 | date: "%Y" }}"#), "2023");
        assert_eq!(render(r#"{{ 1700000000.5 | date: "%Y %3f" }}"#), "2023 500");
        assert_eq!(render(r#"{{ "2024-01-02" | date: "%A" }}"#), "Tuesday");
        assert_eq!(render(r#"{{ "2024-01-02 03:04:05" | date: "%H" }}"#), "03");
        let year = chrono::Utc::now().format("%Y").to_string();
        assert_eq!(render(r#"{{ "now" | date: "%Y" }}"#), year);
        assert_eq!(render(r#"{{ "today" | date: "%Y" }}"#), year);
    }

    #[test]
    fn date_returns_non_dates_unchanged() {
        assert_eq!(render(r#"{{ "not a date" | date: "%Y" }}"#), "not a date");
        assert_eq!(render(r#"[{{ missing | date: "%Y" }}]"#), "[]");
        assert_eq!(render(r#"{{ yes | date: "%Y" }}"#), "true");
        assert_eq!(
            render(r#"{{ "2024-01-02T03:04:05Z" | date: "" }}"#),
            "2024-01-02T03:04:05Z"
        );
    }

    #[test]
    fn bad_date_format_is_rejected() {
        let e = Template::parse(r#"{{ "now" | date: "%Q" }}"#).unwrap_err();
        assert!(e.to_string().contains(r#"invalid date format "%Q""#), "{e}");
        let template = Template::parse(r#"{{ "now" | date: bad_format }}"#).unwrap();
        assert!(matches!(
            template.render(&vars()),
            Err(RenderError::Liquid(_))
        ));
    }
}
