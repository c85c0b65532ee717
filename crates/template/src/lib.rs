//! Liquid templating for PHLO node options.
//!
//! This crate owns turning an option's source text into a [`Template`] once
//! (when a PHLO is saved or validated) and rendering it against the JSON
//! variables of a run, with Shopify's rule that a missing variable renders
//! as empty instead of failing the call. It must stay pure: no I/O, no
//! clocks other than Liquid's own `now`, no knowledge of PHLO nodes. The
//! engine decides what the globals are; this crate only evaluates text.
//!
//! Templates come from tenants, so input is treated as hostile: sources and
//! outputs are size-capped, deep nesting cannot overflow the stack, a panic
//! inside `liquid` becomes an error, and every render runs within a budget
//! of loop iterations, bytes built and time (see the `budget` module; the
//! tags and filters that could spend without bound are replaced by metered
//! versions in `blocks` and `filters`).

#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod blocks;
mod budget;
mod date;
mod filters;
mod lax;
mod literals;
mod stack;
#[cfg(test)]
mod tests;

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::io;
use std::mem::ManuallyDrop;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, LazyLock};

use liquid_lib::stdlib;
use serde_json::{Map, Value as Json};

pub use budget::{
    Exceeded, MAX_LOOP_ITERATIONS, MAX_RENDER_TIME, MAX_RENDER_WORK_BYTES, MAX_VALUE_BYTES,
};

/// Largest accepted template source, in bytes. Real options are a few
/// hundred bytes; the cap bounds parse time and the size of cached ASTs.
pub const MAX_TEMPLATE_LEN: usize = 16 * 1024;

/// Largest rendered output, in bytes. Loops can multiply a small template
/// into a huge string; rendering stops as soon as the cap is crossed.
pub const MAX_OUTPUT_LEN: usize = 64 * 1024;

/// Why a template could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("template is {len} bytes; the limit is {limit}")]
    TooLong { len: usize, limit: usize },
    #[error("invalid template: {0}")]
    Liquid(String),
    #[error("template parser crashed: {0}")]
    Panicked(String),
}

/// Why a compiled template could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("rendered text exceeds the limit of {limit} bytes")]
    OutputTooLong { limit: usize },
    #[error("{0}")]
    Budget(Exceeded),
    #[error("template failed to render: {0}")]
    Liquid(String),
    #[error("template renderer crashed: {0}")]
    Panicked(String),
}

/// A parsed template, cheap to clone and share between threads.
#[derive(Clone)]
pub struct Template {
    inner: Arc<Inner>,
    /// Where the source came from (`options.message`), for error messages.
    field: Option<Arc<str>>,
}

struct Inner {
    source: String,
    /// `None` for literals, which never touch liquid.
    compiled: Option<liquid::Template>,
    /// Parse and render on a big stack; see the `stack` module.
    big_stack: bool,
}

/// One parser for the process: building the registry is the expensive
/// part of liquid, and `liquid::Parser` is `Send + Sync`. It is liquid's
/// standard library with the unbounded tags and blocks replaced, every
/// filter metered, and our `date`.
static PARSER: LazyLock<Result<liquid::Parser, String>> = LazyLock::new(|| {
    let filters: Vec<filters::Metered> = vec![
        filters::Metered::new(stdlib::Abs),
        filters::Metered::new(stdlib::Append),
        filters::Metered::new(stdlib::AtLeast),
        filters::Metered::new(stdlib::AtMost),
        filters::Metered::new(stdlib::Capitalize),
        filters::Metered::new(stdlib::Ceil),
        filters::Metered::new(stdlib::Compact),
        filters::Metered::new(stdlib::Concat),
        filters::Metered::new(date::DateFilterParser),
        filters::Metered::new(stdlib::Default),
        filters::Metered::new(stdlib::DividedBy),
        filters::Metered::new(stdlib::Downcase),
        filters::Metered::new(stdlib::Escape),
        filters::Metered::new(stdlib::EscapeOnce),
        filters::Metered::new(stdlib::First),
        filters::Metered::new(stdlib::Floor),
        filters::Metered::new(filters::Join),
        filters::Metered::new(stdlib::Last),
        filters::Metered::new(stdlib::Lstrip),
        filters::Metered::new(stdlib::Map),
        filters::Metered::new(stdlib::Minus),
        filters::Metered::new(stdlib::Modulo),
        filters::Metered::new(stdlib::NewlineToBr),
        filters::Metered::new(stdlib::Plus),
        filters::Metered::new(stdlib::Prepend),
        filters::Metered::new(stdlib::Remove),
        filters::Metered::new(stdlib::RemoveFirst),
        filters::Metered::new(filters::Replace),
        filters::Metered::new(stdlib::ReplaceFirst),
        filters::Metered::new(stdlib::Reverse),
        filters::Metered::new(stdlib::Round),
        filters::Metered::new(stdlib::Rstrip),
        filters::Metered::new(stdlib::Size),
        filters::Metered::new(stdlib::Slice),
        filters::Metered::new(stdlib::Sort),
        filters::Metered::new(stdlib::SortNatural),
        filters::Metered::new(stdlib::Split),
        filters::Metered::new(stdlib::Strip),
        filters::Metered::new(stdlib::StripHtml),
        filters::Metered::new(stdlib::StripNewlines),
        filters::Metered::new(stdlib::Times),
        filters::Metered::new(stdlib::Truncate),
        filters::Metered::new(stdlib::TruncateWords),
        filters::Metered::new(stdlib::Uniq),
        filters::Metered::new(stdlib::Upcase),
        filters::Metered::new(stdlib::UrlDecode),
        filters::Metered::new(stdlib::UrlEncode),
        filters::Metered::new(stdlib::Where),
    ];
    let builder = liquid::ParserBuilder::new()
        .tag(blocks::AssignTag)
        .tag(stdlib::BreakTag)
        .tag(stdlib::ContinueTag)
        .tag(stdlib::CycleTag)
        .tag(stdlib::IncludeTag)
        .tag(stdlib::IncrementTag)
        .tag(stdlib::DecrementTag)
        .tag(stdlib::RenderTag)
        .block(stdlib::RawBlock)
        .block(stdlib::IfBlock)
        .block(stdlib::UnlessBlock)
        .block(blocks::IfChangedBlock)
        .block(blocks::ForBlock)
        .block(blocks::TableRowBlock)
        .block(stdlib::CommentBlock)
        .block(blocks::CaptureBlock)
        .block(stdlib::CaseBlock);
    filters
        .into_iter()
        .fold(builder, |b, f| b.filter(f))
        .build()
        .map_err(|e| tidy(&e.to_string()))
});

/// The empty literal: what an option that failed validation holds, so option types need no `Option`.
impl Default for Template {
    fn default() -> Self {
        Template {
            inner: Arc::new(Inner {
                source: String::new(),
                compiled: None,
                big_stack: false,
            }),
            field: None,
        }
    }
}

impl Template {
    /// Compiles `source`. Everything liquid can reject up front (syntax,
    /// unknown tags and filters, bad literal date formats) is reported here.
    pub fn parse(source: &str) -> Result<Template, ParseError> {
        if source.len() > MAX_TEMPLATE_LEN {
            return Err(ParseError::TooLong {
                len: source.len(),
                limit: MAX_TEMPLATE_LEN,
            });
        }
        literals::check(source)?;
        let big_stack = stack::needs_big_stack(source);
        let compiled = if is_literal(source) {
            None
        } else {
            let parser = PARSER.as_ref().map_err(|e| ParseError::Liquid(e.clone()))?;
            let parse = || {
                catch_unwind(AssertUnwindSafe(|| parser.parse(source)))
                    .map_err(|p| ParseError::Panicked(panic_message(p.as_ref())))?
                    .map_err(|e| ParseError::Liquid(tidy(&e.to_string())))
            };
            Some(stack::run(big_stack, parse).map_err(ParseError::Panicked)??)
        };
        Ok(Template {
            inner: Arc::new(Inner {
                source: source.to_owned(),
                compiled,
                big_stack,
            }),
            field: None,
        })
    }

    /// Names where the source came from, so render errors can say which
    /// option failed; see [`Template::field`].
    pub fn with_field(mut self, field: &str) -> Template {
        self.field = Some(field.into());
        self
    }

    /// The field given to [`Template::with_field`].
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Some(text) when the source contains no Liquid markup ("{{" or "{%"),
    /// so callers can validate literals (phone numbers, URLs) at save time.
    pub fn as_literal(&self) -> Option<&str> {
        match self.inner.compiled {
            None => Some(&self.inner.source),
            Some(_) => None,
        }
    }

    /// Renders against the run's variables. Missing variables and indexes
    /// render as empty; see the `lax` module for the exact rules.
    pub fn render(&self, globals: &Map<String, Json>) -> Result<String, RenderError> {
        let Some(compiled) = &self.inner.compiled else {
            return Ok(self.inner.source.clone());
        };
        let render = || {
            let globals = lax::Globals::new(globals);
            let mut out = CappedWriter::default();
            let (result, exceeded) = budget::metered(MAX_RENDER_TIME, || {
                catch_unwind(AssertUnwindSafe(|| compiled.render_to(&mut out, &globals)))
            });
            let result = result.map_err(|p| RenderError::Panicked(panic_message(p.as_ref())))?;
            if let Some(exceeded) = exceeded {
                return Err(RenderError::Budget(exceeded));
            }
            if out.overflowed {
                return Err(RenderError::OutputTooLong {
                    limit: MAX_OUTPUT_LEN,
                });
            }
            result.map_err(|e| RenderError::Liquid(tidy(&e.to_string())))?;
            // liquid only writes UTF-8; a failure here would be a liquid bug.
            String::from_utf8(out.buf).map_err(|e| RenderError::Liquid(e.to_string()))
        };
        stack::run(self.inner.big_stack, render).map_err(RenderError::Panicked)?
    }
}

impl Drop for Inner {
    /// Dropping liquid's AST recurses as deeply as parsing it did, so a deep
    /// template must also be dropped on a big stack, whoever drops it last.
    fn drop(&mut self) {
        if let Some(compiled) = self.compiled.take().filter(|_| self.big_stack) {
            // If the thread cannot start, the closure is dropped without
            // running and the AST leaks, which beats aborting.
            let compiled = ManuallyDrop::new(compiled);
            let _ = stack::run(true, move || drop(ManuallyDrop::into_inner(compiled)));
        }
    }
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("source", &self.inner.source)
            .field("literal", &self.inner.compiled.is_none())
            .finish()
    }
}

/// liquid's lexer only treats `{{` and `{%` as markup, so anything without
/// them renders verbatim and can skip liquid entirely.
fn is_literal(source: &str) -> bool {
    !source.contains("{{") && !source.contains("{%")
}

/// Collects output and fails the write that would cross [`MAX_OUTPUT_LEN`],
/// which makes liquid abort the render instead of building a huge string.
#[derive(Default)]
struct CappedWriter {
    buf: Vec<u8>,
    overflowed: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > MAX_OUTPUT_LEN {
            self.overflowed = true;
            return Err(io::Error::other("template output limit exceeded"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// liquid's errors are multi-line reports (pest's with an ASCII-art source
/// excerpt); callers show them in one line next to a form field, so keep
/// the message, the context and the position, and drop the rest.
fn tidy(message: &str) -> String {
    let mut position = None;
    let mut parts: Vec<Cow<'_, str>> = Vec::new();
    for (i, line) in message.lines().enumerate() {
        let mut line = line.trim();
        if i == 0 {
            line = line.strip_prefix("liquid:").unwrap_or(line).trim();
        }
        if let Some(pos) = line.strip_prefix("-->") {
            position = pos.trim().split_once(':');
        } else if let Some(msg) = line.strip_prefix('=') {
            parts.push(msg.trim().into());
        } else if let Some(keys) = line.strip_prefix("available indexes=") {
            // liquid lists an object's keys in hash order, which changes from one render to the
            // next; sorted, the same failure always reads the same.
            let mut keys: Vec<&str> = keys.split(", ").collect();
            keys.sort_unstable();
            parts.push(format!("available indexes={}", keys.join(", ")).into());
        } else if !(line.is_empty() || line == "with:" || is_excerpt(line) || is_noise(line)) {
            parts.push(line.into());
        }
    }
    let mut tidy = parts.join("; ");
    if let Some((line, column)) = position {
        tidy.push_str(&format!(" (line {line}, column {column})"));
    }
    tidy
}

/// pest's `12 | source text` and `|    ^---` lines.
fn is_excerpt(line: &str) -> bool {
    line.starts_with('|')
        || line
            .split_once(" |")
            .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        || line
            .strip_suffix(" |")
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
}

/// The full list of tags or filters drowns the actual message.
fn is_noise(line: &str) -> bool {
    ["available filters=", "available tags=", "available blocks="]
        .iter()
        .any(|p| line.starts_with(p))
}

/// liquid's own `expect`s put the whole source (and a pest dump) in the
/// panic message, so only the start of its first line is kept.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    const MAX_CHARS: usize = 200;
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown panic");
    let first = message.lines().next().unwrap_or_default();
    match first.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}...", &first[..end]),
        None => first.to_owned(),
    }
}
