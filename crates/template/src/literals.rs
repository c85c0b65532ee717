//! Whole-number literals liquid cannot hold.
//!
//! liquid's parser turns an integer literal into an `i64` with an `expect`, so `{{ 99999999999999999999 }}`
//! panics inside it. The panic is caught (see `Template::parse`), but a panic is still a crash on the way
//! and prints to stderr, so such literals are refused first, with a message that says which number.
//! The scan is deliberately simple and errs towards letting text through: it only looks inside `{{ }}`
//! and `{% %}`, outside quoted strings and `raw` blocks, at digit runs that are neither part of a name
//! (`Send_SMS_1`) nor of a decimal (`1.5`).

use crate::ParseError;

pub(crate) fn check(source: &str) -> Result<(), ParseError> {
    let bytes = source.as_bytes();
    let mut i = 0;
    while let Some(open) = find(bytes, i, b"{") {
        i = open + 1;
        let close: &[u8] = match bytes.get(i) {
            Some(b'{') => b"}}",
            Some(b'%') => b"%}",
            _ => continue,
        };
        i += 1;
        if close == b"%}" && starts_raw(&bytes[i..]) {
            // Everything up to `endraw` is text, whatever it looks like.
            i = find(bytes, i, b"endraw").map_or(bytes.len(), |e| e + 6);
            continue;
        }
        let end = markup_end(bytes, i, close);
        check_markup(source, i, end)?;
        i = end;
    }
    Ok(())
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn starts_raw(rest: &[u8]) -> bool {
    let rest = rest.strip_prefix(b"-").unwrap_or(rest);
    let start = rest
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(rest.len());
    let word = &rest[start..];
    word.starts_with(b"raw")
        && !word
            .get(3)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

/// Where the markup opened before `from` ends: its closing delimiter outside quotes, or the end.
fn markup_end(bytes: &[u8], from: usize, close: &[u8]) -> usize {
    let mut quote = None;
    let mut i = from;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if bytes[i..].starts_with(close) => return i,
            None => {}
        }
        i += 1;
    }
    bytes.len()
}

fn check_markup(source: &str, from: usize, to: usize) -> Result<(), ParseError> {
    let bytes = source.as_bytes();
    let mut quote = None;
    let mut i = from;
    while i < to {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        if b == b'\'' || b == b'"' {
            quote = Some(b);
            i += 1;
            continue;
        }
        if !b.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < to && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let before = start.checked_sub(1).map(|p| bytes[p]);
        let name_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        let part_of_name = match before {
            Some(c) if name_char(c) => true,
            // `a.5`, `1.5`; but `..5` ends a range.
            Some(b'.') => !(start >= 2 && bytes[start - 2] == b'.'),
            Some(b'-') => start >= 2 && name_char(bytes[start - 2]),
            _ => false,
        };
        let decimal =
            bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
        if part_of_name || decimal {
            continue;
        }
        let negative = before == Some(b'-');
        let digits = &source[start..i];
        let text = if negative {
            format!("-{digits}")
        } else {
            digits.to_owned()
        };
        if text.parse::<i64>().is_err() {
            return Err(ParseError::Liquid(format!(
                "the number {text} is out of range: whole numbers must lie between -9223372036854775808 and 9223372036854775807"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_that_fit_and_text_pass() {
        for ok in [
            "plain 99999999999999999999999 text",
            "{{ 9223372036854775807 }}{{ -9223372036854775808 }}",
            "{{ x | plus: 1.99999999999999999999999 }}",
            "{{ 'quoted 99999999999999999999' }}{{ \"99999999999999999999\" }}",
            "{{ Send_SMS_99999999999999999999.x }}{{ a-99999999999999999999 }}",
            "{% raw %}{{ 99999999999999999999 }}{% endraw %}",
            "{{ unclosed 5",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn numbers_that_overflow_are_refused() {
        for bad in [
            "{{ 9223372036854775808 }}",
            "{{ -9223372036854775809 }}",
            "{% assign x = text | split: 33333333333333333333333 %}",
            "{% for i in (1..99999999999999999999) %}{% endfor %}",
            "{{ 'a' }}{{ x | plus: 99999999999999999999 }}",
        ] {
            let e = check(bad).expect_err(bad);
            assert!(e.to_string().contains("is out of range"), "{e}");
        }
    }
}
