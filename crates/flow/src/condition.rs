//! Branch operators. Comparisons are numeric when both sides parse as finite numbers (so `10` is greater
//! than `9` and `1.0` equals `1`), textual otherwise. Each negated operator is the exact complement of its
//! positive one, which the property tests hold us to.

use regex::RegexBuilder;
use serde::{Deserialize, Serialize};

/// Longest accepted `matches` pattern, in bytes. Real patterns are a few dozen bytes; the cap keeps
/// compile time small, since a pattern may be rendered from variables on every run.
pub const MAX_REGEX_PATTERN_LEN: usize = 1024;
/// Compiled regexes, and the lazy DFA built while matching, may not exceed this. The `regex` crate never
/// backtracks (matching is linear in the text), so memory is the only cost left to bound; a counted
/// repetition such as `(a{1000}){1000}` is what reaches it.
pub const MAX_REGEX_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    Equals,
    NotEquals,
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    GreaterThan,
    LessThan,
    GreaterOrEqual,
    LessOrEqual,
    IsEmpty,
    IsNotEmpty,
    Matches,
    In,
}

impl Operator {
    pub const ALL: [Operator; 14] = [
        Operator::Equals,
        Operator::NotEquals,
        Operator::Contains,
        Operator::NotContains,
        Operator::StartsWith,
        Operator::EndsWith,
        Operator::GreaterThan,
        Operator::LessThan,
        Operator::GreaterOrEqual,
        Operator::LessOrEqual,
        Operator::IsEmpty,
        Operator::IsNotEmpty,
        Operator::Matches,
        Operator::In,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Equals => "equals",
            Operator::NotEquals => "not_equals",
            Operator::Contains => "contains",
            Operator::NotContains => "not_contains",
            Operator::StartsWith => "starts_with",
            Operator::EndsWith => "ends_with",
            Operator::GreaterThan => "greater_than",
            Operator::LessThan => "less_than",
            Operator::GreaterOrEqual => "greater_or_equal",
            Operator::LessOrEqual => "less_or_equal",
            Operator::IsEmpty => "is_empty",
            Operator::IsNotEmpty => "is_not_empty",
            Operator::Matches => "matches",
            Operator::In => "in",
        }
    }

    pub fn parse(s: &str) -> Option<Operator> {
        Operator::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// `is_empty` and `is_not_empty` look at the left-hand side only.
    pub fn needs_rhs(self) -> bool {
        !matches!(self, Operator::IsEmpty | Operator::IsNotEmpty)
    }
}

/// Evaluates `lhs <op> rhs`. Only `matches` can fail: when `rhs` is not a valid regex.
pub fn evaluate(op: Operator, lhs: &str, rhs: &str) -> Result<bool, String> {
    Ok(match op {
        Operator::Equals => equals(lhs, rhs),
        Operator::NotEquals => !equals(lhs, rhs),
        Operator::Contains => lhs.contains(rhs),
        Operator::NotContains => !lhs.contains(rhs),
        Operator::StartsWith => lhs.starts_with(rhs),
        Operator::EndsWith => lhs.ends_with(rhs),
        Operator::GreaterThan => compare(lhs, rhs).is_gt(),
        Operator::LessThan => compare(lhs, rhs).is_lt(),
        Operator::GreaterOrEqual => !compare(lhs, rhs).is_lt(),
        Operator::LessOrEqual => !compare(lhs, rhs).is_gt(),
        Operator::IsEmpty => lhs.trim().is_empty(),
        Operator::IsNotEmpty => !lhs.trim().is_empty(),
        Operator::Matches => compile_regex(rhs)?.is_match(lhs),
        Operator::In => rhs.split(',').any(|item| equals(lhs, item.trim())),
    })
}

pub fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    if pattern.len() > MAX_REGEX_PATTERN_LEN {
        return Err(format!(
            "the regular expression is {} bytes; the limit is {MAX_REGEX_PATTERN_LEN}",
            pattern.len()
        ));
    }
    RegexBuilder::new(pattern)
        .size_limit(MAX_REGEX_BYTES)
        .dfa_size_limit(MAX_REGEX_BYTES)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => format!(
                "`{pattern}` compiles to more than {limit} bytes: simplify the pattern (large counted repetitions such as {{1000}} are the usual cause)"
            ),
            e => format!("`{pattern}` is not a valid regular expression: {e}"),
        })
}

fn number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|f| f.is_finite())
}

/// Orders two numbers, or `None` when one side is not a number. Integers compare exactly: an `f64` keeps
/// only 53 bits, so long ids such as `12345678901234567` and `12345678901234568` would otherwise be equal.
fn numeric(lhs: &str, rhs: &str) -> Option<std::cmp::Ordering> {
    if let (Ok(a), Ok(b)) = (lhs.trim().parse::<i128>(), rhs.trim().parse::<i128>()) {
        return Some(a.cmp(&b));
    }
    // Both finite, so partial_cmp is total here.
    number(lhs)?.partial_cmp(&number(rhs)?)
}

fn equals(lhs: &str, rhs: &str) -> bool {
    match numeric(lhs, rhs) {
        Some(order) => order.is_eq(),
        None => lhs.trim() == rhs.trim(),
    }
}

fn compare(lhs: &str, rhs: &str) -> std::cmp::Ordering {
    numeric(lhs, rhs).unwrap_or_else(|| lhs.trim().cmp(rhs.trim()))
}
