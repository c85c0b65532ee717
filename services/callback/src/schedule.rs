//! When to try again: the retry schedule with jitter, `Retry-After`, and which answers are worth
//! another attempt (Standard Webhooks' guidance, reliability-and-crates.md A3.1).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Delays between attempts, in order: attempt 1 is immediate, attempt n + 1 comes `delays[n - 1]`
/// (± jitter) after attempt n failed. After the last one the delivery is dead. The default is Svix's:
/// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (8 attempts over about 27.6 h).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub delays: Vec<Duration>,
}

pub const DEFAULT_SCHEDULE: &str = "5,300,1800,7200,18000,36000,36000";

impl Default for Schedule {
    fn default() -> Self {
        // The literal parses.
        Schedule::parse(DEFAULT_SCHEDULE).unwrap_or(Schedule { delays: Vec::new() })
    }
}

impl Schedule {
    /// Comma-separated seconds, fractions allowed: `5,300,1800` or `0.5,1`. Empty means one attempt only.
    pub fn parse(value: &str) -> Result<Schedule, String> {
        let delays = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<f64>()
                    .ok()
                    .filter(|d| d.is_finite() && *d >= 0.0 && *d <= 30.0 * 24.0 * 3600.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        format!("`{s}` is not a number of seconds between 0 and 30 days")
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Schedule { delays })
    }

    /// Attempts in one round (the first plus one per delay).
    pub fn attempts(&self) -> usize {
        self.delays.len() + 1
    }

    /// The delay after the `n`-th attempt of a round failed (1-based), or `None` when it was the last.
    pub fn after(&self, n: usize) -> Option<Duration> {
        n.checked_sub(1).and_then(|i| self.delays.get(i)).copied()
    }
}

/// `delay` ± `fraction` (e.g. 0.2 for ±20 %), uniformly.
pub fn jitter(delay: Duration, fraction: f64) -> Duration {
    if fraction <= 0.0 || delay.is_zero() {
        return delay;
    }
    let factor = 1.0 + rand::random_range(-fraction..=fraction);
    Duration::from_secs_f64((delay.as_secs_f64() * factor).max(0.0))
}

/// A `Retry-After` value: whole seconds, or an HTTP date (then relative to `now`; a past date is 0).
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) is RFC 2822 with `GMT` as the zone.
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or_default())
}

/// What an answer (or the lack of one) means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again per the schedule.
    Retry,
    /// Do not try again: the receiver rejected it for good, or the URL can never be requested.
    Fail,
    /// 410 Gone: stop, and disable the URL for the PHLO.
    Disable,
}

/// 2xx delivered; 410 disables; 408 and 429 are retried like 5xx; other 4xx fail for good; 3xx (never
/// followed) and anything else are retried.
pub fn verdict(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        410 => Verdict::Disable,
        408 | 429 => Verdict::Retry,
        400..=499 => Verdict::Fail,
        _ => Verdict::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_schedules() {
        let s = Schedule::default();
        assert_eq!(s.attempts(), 8);
        assert_eq!(s.after(1), Some(Duration::from_secs(5)));
        assert_eq!(s.after(7), Some(Duration::from_secs(36000)));
        assert_eq!(s.after(8), None);
        assert_eq!(s.after(0), None);
        let short = Schedule::parse(" 0.5, 1 ,").unwrap();
        assert_eq!(
            short.delays,
            [Duration::from_millis(500), Duration::from_secs(1)]
        );
        assert_eq!(Schedule::parse("").unwrap().attempts(), 1);
        assert!(Schedule::parse("5,soon").unwrap_err().contains("`soon`"));
        assert!(Schedule::parse("-1").is_err());
    }

    #[test]
    fn jitter_stays_within_the_fraction() {
        let d = Duration::from_secs(10);
        for _ in 0..1000 {
            let j = jitter(d, 0.2);
            assert!(
                j >= Duration::from_secs(8) && j <= Duration::from_secs(12),
                "{j:?}"
            );
        }
        assert_eq!(jitter(d, 0.0), d);
    }

    #[test]
    fn reads_retry_after_in_both_forms() {
        let now = DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Sun, 01 Mar 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after("Sun, 01 Mar 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-3", now), None);
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict(200), Verdict::Delivered);
        assert_eq!(verdict(204), Verdict::Delivered);
        assert_eq!(verdict(301), Verdict::Retry);
        assert_eq!(verdict(400), Verdict::Fail);
        assert_eq!(verdict(404), Verdict::Fail);
        assert_eq!(verdict(408), Verdict::Retry);
        assert_eq!(verdict(410), Verdict::Disable);
        assert_eq!(verdict(429), Verdict::Retry);
        assert_eq!(verdict(500), Verdict::Retry);
        assert_eq!(verdict(503), Verdict::Retry);
    }
}
