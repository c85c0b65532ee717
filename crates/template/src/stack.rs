//! Keeps hostile nesting from overflowing the caller's stack.
//!
//! liquid (and the pest grammar under it) recurse once per nested `[`
//! index, block tag, `elsif` and `and`/`or` operand. Within the 16 KiB
//! source cap that is thousands of levels, several MiB of stack in a debug
//! build; overflowing aborts the whole process and `catch_unwind` cannot
//! help. Rejecting deep templates precisely would mean re-implementing
//! liquid's lexer (strings may hide or fake brackets and end tags), so
//! instead [`hazards`] over-approximates the nesting cheaply and templates
//! that might be deep are parsed and rendered on a thread with a big stack.
//! Ordinary templates stay on the caller's thread.

use std::thread;

/// Above this many possible recursion levels, work moves to a big stack.
/// 64 levels cost well under 200 KiB even unoptimised.
const INLINE_BUDGET: usize = 64;

/// Enough for the deepest 16 KiB template (about 5 MiB measured in a debug
/// build); only reserved address space, pages are touched as needed.
const BIG_STACK: usize = 64 * 1024 * 1024;

/// An upper bound on liquid's recursion depth for `source`.
///
/// It counts, anywhere in the text and without regard to strings: every
/// `{%` (block nesting and `elsif` chains), every `[` that may start a
/// nested variable index (`[` then optional whitespace then an identifier
/// character), and every `and`/`or` word after the first `{%`. Each level of
/// real recursion consumes at least one of these, so the bound is sound; it
/// overestimates for prose, which only costs a thread spawn.
pub(crate) fn hazards(source: &str) -> usize {
    let bytes = source.as_bytes();
    let tags = source.matches("{%").count();
    let indexes = bytes
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'[' && opens_variable(&bytes[i + 1..]))
        .count();
    let operators = source
        .find("{%")
        .map_or(0, |start| count_operators(&source[start..]));
    tags + indexes + operators
}

fn opens_variable(rest: &[u8]) -> bool {
    rest.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_' || b == b'-')
}

fn count_operators(text: &str) -> usize {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        .filter(|word| *word == "and" || *word == "or")
        .count()
}

/// Whether `source` must be handled by [`run`] on a big stack.
pub(crate) fn needs_big_stack(source: &str) -> bool {
    hazards(source) > INLINE_BUDGET
}

/// Runs `work` inline, or on a scoped thread with [`BIG_STACK`] when `big`.
/// `work` is expected to catch its own panics; a panic that still escapes
/// (or a failure to spawn) is reported as `Err`.
pub(crate) fn run<T: Send>(big: bool, work: impl FnOnce() -> T + Send) -> Result<T, String> {
    if !big {
        return Ok(work());
    }
    thread::scope(|scope| {
        let handle = thread::Builder::new()
            .name("phlo-template".to_owned())
            .stack_size(BIG_STACK)
            .spawn_scoped(scope, work)
            .map_err(|e| format!("cannot start a template thread: {e}"))?;
        handle.join().map_err(|p| crate::panic_message(p.as_ref()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_templates_stay_inline() {
        assert!(!needs_big_stack(
            "Hi {{ Start.http.params.name }}, and or and"
        ));
        assert!(!needs_big_stack(
            r#"{% if a and b or c %}{{ x["k"] | default: y }}{% endif %}"#
        ));
        assert_eq!(hazards("prose with [links] and [more]"), 2);
        assert_eq!(hazards("{% if a and b %}[ x]{% endif %} or"), 5);
        assert_eq!(hazards(r#"{{ a["q"][0] }}"#), 0);
    }

    #[test]
    fn deep_templates_are_flagged() {
        assert!(needs_big_stack(&format!(
            "{{{{ {}0{} }}}}",
            "a[".repeat(66),
            "]".repeat(66)
        )));
        assert!(needs_big_stack(&"{%if 1%}".repeat(65)));
        assert!(needs_big_stack(&format!(
            "{{% if {}1 %}}",
            "1 or ".repeat(64)
        )));
    }
}
