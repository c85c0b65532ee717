//! Branch condition evaluation: the operator from the first byte, then `lhs` NUL `rhs`. Evaluation
//! never panics, only `matches` can fail, and each negated operator is the exact complement of its
//! positive one.

#![no_main]

use libfuzzer_sys::fuzz_target;
use phlo_flow::condition::{Operator, evaluate};

fn negation(op: Operator) -> Option<Operator> {
    Some(match op {
        Operator::Equals => Operator::NotEquals,
        Operator::Contains => Operator::NotContains,
        Operator::IsEmpty => Operator::IsNotEmpty,
        Operator::GreaterThan => Operator::LessOrEqual,
        Operator::LessThan => Operator::GreaterOrEqual,
        _ => return None,
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let op = Operator::ALL[usize::from(first) % Operator::ALL.len()];
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (lhs, rhs) = text.split_once('\0').unwrap_or((text, ""));
    let result = evaluate(op, lhs, rhs);
    if op != Operator::Matches {
        assert!(result.is_ok(), "{op:?} failed: {result:?}");
    }
    if let (Ok(holds), Some(not)) = (result, negation(op)) {
        assert_eq!(evaluate(not, lhs, rhs), Ok(!holds), "{op:?} vs {not:?} on {lhs:?} / {rhs:?}");
    }
});
