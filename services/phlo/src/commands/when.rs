//! Times given on the command line: RFC 3339, or an age such as `30m`.

use chrono::{DateTime, Duration, SecondsFormat, Utc};

/// `2026-01-02T03:04:05Z` (any RFC 3339 offset), or an age before now: `90s`, `15m`, `2h`, `7d`.
pub fn parse(text: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let split = text.char_indices().last().map_or(0, |(i, _)| i);
    let (number, unit) = text.split_at(split);
    let amount: i64 = number
        .parse()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| invalid(text))?;
    let age = match unit {
        "s" => Duration::try_seconds(amount),
        "m" => Duration::try_minutes(amount),
        "h" => Duration::try_hours(amount),
        "d" => Duration::try_days(amount),
        _ => None,
    }
    .ok_or_else(|| invalid(text))?;
    Utc::now()
        .checked_sub_signed(age)
        .ok_or_else(|| invalid(text))
}

fn invalid(text: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{text:?} is not a time: use RFC 3339 (2026-01-02T03:04:05Z) or an age such as 90s, 15m, 2h or 7d"
    )
}

/// The form the gateway's filters take.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_rfc3339() {
        let t = parse("2026-01-02T03:04:05+01:00").unwrap();
        assert_eq!(rfc3339(t), "2026-01-02T02:04:05.000000Z");
        let before = Utc::now() - Duration::minutes(15);
        let t = parse("15m").unwrap();
        assert!((t - before).num_seconds().abs() <= 1);
        for bad in ["", "m", "15", "15w", "-5m", "15é", "yesterday"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
