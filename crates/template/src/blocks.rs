//! Our versions of the tags and blocks that can spend without bound in
//! liquid-lib: `for` (which builds its whole range before the first
//! iteration, so `(1..100000000)` allocates gigabytes), `capture` and
//! `ifchanged` (which buffer their body outside the output cap) and
//! `assign` (which copies values). They follow liquid-lib's behaviour and
//! error messages, and charge the render budget. `tablerow` is refused: it
//! builds HTML tables, which no SMS or call wants, and would need the same
//! treatment as `for`.

use std::collections::HashMap;
use std::io::{self, Write};

use liquid_core::error::ResultLiquidExt;
use liquid_core::model::{
    KString, KStringRef, ObjectView as _, Scalar, Value, ValueCow, ValueView,
};
use liquid_core::parser::{BlockElement, FilterChain, TryMatchToken};
use liquid_core::runtime::{Interrupt, InterruptRegister, StackFrame};
use liquid_core::{
    BlockReflection, Error, Expression, Language, ParseBlock, ParseTag, Renderable, Result,
    Runtime, TagBlock, TagReflection, TagTokenIter, Template,
};

use crate::budget::{self, MAX_VALUE_BYTES};

#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct ForBlock;

impl BlockReflection for ForBlock {
    fn start_tag(&self) -> &str {
        "for"
    }
    fn end_tag(&self) -> &str {
        "endfor"
    }
    fn description(&self) -> &str {
        "Loops over an array or a range, within the render budget."
    }
}

impl ParseBlock for ForBlock {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        mut tokens: TagBlock<'_, '_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let var_name = arguments
            .expect_next("Identifier expected.")?
            .expect_identifier()
            .into_result()?;
        arguments
            .expect_next("\"in\" expected.")?
            .expect_str("in")
            .into_result_custom_msg("\"in\" expected.")?;
        let range = arguments.expect_next("Array or range expected.")?;
        let range = match range.expect_value() {
            TryMatchToken::Matches(array) => RangeExpression::Array(array),
            TryMatchToken::Fails(range) => match range.expect_range() {
                TryMatchToken::Matches((start, stop)) => RangeExpression::Counted(start, stop),
                TryMatchToken::Fails(range) => return range.raise_error().into_err(),
            },
        };
        let mut limit = None;
        let mut offset = None;
        let mut reversed = false;
        while let Some(token) = arguments.next() {
            match token.as_str() {
                "limit" => limit = Some(parse_attr(&mut arguments)?),
                "offset" => offset = Some(parse_attr(&mut arguments)?),
                "reversed" => reversed = true,
                _ => {
                    return token
                        .raise_custom_error("\"limit\", \"offset\" or \"reversed\" expected.")
                        .into_err();
                }
            }
        }
        arguments.expect_nothing()?;

        let mut item_template = Vec::new();
        let mut else_template = None;
        while let Some(element) = tokens.next()? {
            match element {
                BlockElement::Tag(mut tag) if tag.name() == "else" => {
                    tag.tokens().expect_nothing()?;
                    else_template = Some(Template::new(tokens.parse_all(options)?));
                    break;
                }
                BlockElement::Tag(tag) => item_template.push(tag.parse(&mut tokens, options)?),
                element => item_template.push(element.parse(&mut tokens, options)?),
            }
        }
        tokens.assert_empty();
        Ok(Box::new(For {
            var_name: KString::from_ref(var_name),
            range,
            item_template: Template::new(item_template),
            else_template,
            limit,
            offset,
            reversed,
        }))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Debug)]
enum RangeExpression {
    Array(Expression),
    Counted(Expression, Expression),
}

#[derive(Debug)]
struct For {
    var_name: KString,
    range: RangeExpression,
    item_template: Template,
    else_template: Option<Template>,
    limit: Option<Expression>,
    offset: Option<Expression>,
    reversed: bool,
}

impl For {
    fn trace(&self) -> String {
        let range = match &self.range {
            RangeExpression::Array(a) => a.to_string(),
            RangeExpression::Counted(a, b) => format!("({a}..{b})"),
        };
        format!("{{% for {} in {range} %}}", self.var_name)
    }
}

/// The items a loop visits, after `offset` and `limit`. A counted range is
/// never materialised: its items are computed as the loop reaches them.
enum Items<'r> {
    Listed(Vec<ValueCow<'r>>),
    Counted { first: i64, len: usize },
}

impl Items<'_> {
    fn len(&self) -> usize {
        match self {
            Items::Listed(v) => v.len(),
            Items::Counted { len, .. } => *len,
        }
    }
}

impl Renderable for For {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        let offset = evaluate_attr(&self.offset, runtime)?.unwrap_or(0);
        let limit = evaluate_attr(&self.limit, runtime)?;
        let listed;
        let items = match &self.range {
            RangeExpression::Array(expression) => {
                listed = expression
                    .evaluate(runtime)
                    .trace_with(|| self.trace().into())?;
                let limit = limit.unwrap_or(usize::MAX);
                Items::Listed(array_items(listed.as_view(), offset, limit)?)
            }
            RangeExpression::Counted(start, stop) => {
                let start = int_argument(start, runtime, "start")?;
                let stop = int_argument(stop, runtime, "end")?;
                let total = if stop < start {
                    0
                } else {
                    // At most 2^64, which saturates harmlessly.
                    usize::try_from(i128::from(stop) - i128::from(start) + 1).unwrap_or(usize::MAX)
                };
                let skipped = offset.min(total);
                let first = start.saturating_add(i64::try_from(skipped).unwrap_or(i64::MAX));
                let len = (total - skipped).min(limit.unwrap_or(usize::MAX));
                Items::Counted { first, len }
            }
        };
        let len = items.len();
        if len == 0 {
            if let Some(t) = &self.else_template {
                t.render_to(writer, runtime)
                    .trace("{% else %}")
                    .trace_with(|| self.trace().into())?;
            }
            return Ok(());
        }
        let parentloop = runtime.try_get(&[Scalar::new("forloop")]);
        let parentloop = parentloop.as_ref().map(|v| v.as_view());
        for i in 0..len {
            budget::iteration().trace_with(|| self.trace().into())?;
            let position = if self.reversed { len - 1 - i } else { i };
            let counted;
            let item: &dyn ValueView = match &items {
                Items::Listed(all) => all[position].as_view(),
                Items::Counted { first, .. } => {
                    let offset = i64::try_from(position).unwrap_or(i64::MAX);
                    counted = Value::scalar(first.saturating_add(offset));
                    &counted
                }
            };
            let forloop = ForloopObject::new(i, len, parentloop);
            let mut root = HashMap::<KStringRef<'_>, &dyn ValueView>::new();
            root.insert("forloop".into(), &forloop);
            root.insert(self.var_name.as_ref(), item);
            let scope = StackFrame::new(runtime, &root);
            self.item_template
                .render_to(writer, &scope)
                .trace_with(|| self.trace().into())
                .context_key("index")
                .value_with(|| format!("{}", i + 1).into())?;
            // `continue` needs nothing more at the end of the body; `break` ends the loop.
            let interrupt = scope.registers().get_mut::<InterruptRegister>().reset();
            if let Some(Interrupt::Break) = interrupt {
                break;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, liquid::ValueView, liquid::ObjectView)]
struct ForloopObject<'p> {
    length: i64,
    parentloop: Option<&'p dyn ValueView>,
    index0: i64,
    index: i64,
    rindex0: i64,
    rindex: i64,
    first: bool,
    last: bool,
}

impl<'p> ForloopObject<'p> {
    fn new(i: usize, len: usize, parentloop: Option<&'p dyn ValueView>) -> Self {
        let i = i64::try_from(i).unwrap_or(i64::MAX);
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        Self {
            length: len,
            parentloop,
            index0: i,
            index: i + 1,
            rindex0: len - i - 1,
            rindex: len - i,
            first: i == 0,
            last: i == len - 1,
        }
    }
}

fn parse_attr(arguments: &mut TagTokenIter<'_>) -> Result<Expression> {
    arguments
        .expect_next("\":\" expected.")?
        .expect_str(":")
        .into_result_custom_msg("\":\" expected.")?;
    arguments
        .expect_next("Value expected.")?
        .expect_value()
        .into_result()
}

/// `limit:`/`offset:`; negative counts as zero (liquid-lib wrapped them to
/// huge numbers).
fn evaluate_attr(attr: &Option<Expression>, runtime: &dyn Runtime) -> Result<Option<usize>> {
    let Some(attr) = attr else {
        return Ok(None);
    };
    let value = attr.evaluate(runtime)?;
    let n = value
        .as_scalar()
        .and_then(|s| s.to_integer())
        .ok_or_else(|| unexpected_value("whole number", value.type_name()))?;
    Ok(Some(usize::try_from(n).unwrap_or(0)))
}

fn int_argument(arg: &Expression, runtime: &dyn Runtime, name: &str) -> Result<i64> {
    let value = arg.evaluate(runtime)?;
    value
        .as_scalar()
        .and_then(|v| v.to_integer())
        .ok_or_else(|| unexpected_value("whole number", value.type_name()))
        .context_key_with(|| name.to_owned().into())
        .value_with(|| value.to_kstr().into_owned())
}

/// The items of an array (or the `[key, value]` pairs of an object) a loop visits, after `offset` and
/// `limit`; only those are collected.
fn array_items(value: &dyn ValueView, offset: usize, limit: usize) -> Result<Vec<ValueCow<'_>>> {
    if let Some(array) = value.as_array() {
        Ok(array
            .values()
            .skip(offset)
            .take(limit)
            .map(ValueCow::Borrowed)
            .collect())
    } else if let Some(object) = value.as_object() {
        budget::bytes(budget::size_of(value))?;
        Ok(object
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(k, v)| Value::Array(vec![Value::scalar(k.into_owned()), v.to_value()]).into())
            .collect())
    } else if value.is_state() || value.is_nil() {
        Ok(Vec::new())
    } else {
        Err(unexpected_value("array", value.type_name()))
    }
}

fn unexpected_value(expected: &str, actual: &str) -> Error {
    Error::with_msg(format!("Expected {expected}, found `{actual}`"))
}

#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct TableRowBlock;

impl BlockReflection for TableRowBlock {
    fn start_tag(&self) -> &str {
        "tablerow"
    }
    fn end_tag(&self) -> &str {
        "endtablerow"
    }
    fn description(&self) -> &str {
        "Not supported: it builds HTML tables."
    }
}

impl ParseBlock for TableRowBlock {
    fn parse(
        &self,
        _arguments: TagTokenIter<'_>,
        _tokens: TagBlock<'_, '_>,
        _options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        Err(Error::with_msg(
            "`tablerow` is not supported (it builds HTML tables): use `for`",
        ))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

/// A writer that refuses to hold more than [`MAX_VALUE_BYTES`], for blocks
/// that buffer their body.
#[derive(Default)]
struct Buffer(Vec<u8>);

impl Write for Buffer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let size = self.0.len().saturating_add(data.len());
        if size > MAX_VALUE_BYTES {
            // Records the reason; the render then fails with it.
            let _ = budget::bytes(size);
            return Err(io::Error::other("template value limit exceeded"));
        }
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    /// Renders `template` into a string, charging its size to the budget.
    fn render(template: &Template, runtime: &dyn Runtime) -> Result<String> {
        let mut buffer = Buffer::default();
        template.render_to(&mut buffer, runtime)?;
        budget::bytes(buffer.0.len())?;
        String::from_utf8(buffer.0).map_err(|e| Error::with_msg(e.to_string()))
    }
}

#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct CaptureBlock;

impl BlockReflection for CaptureBlock {
    fn start_tag(&self) -> &str {
        "capture"
    }
    fn end_tag(&self) -> &str {
        "endcapture"
    }
    fn description(&self) -> &str {
        "Renders its body into a variable, within the render budget."
    }
}

impl ParseBlock for CaptureBlock {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        mut tokens: TagBlock<'_, '_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let id: KString = arguments
            .expect_next("Identifier expected")?
            .expect_identifier()
            .into_result()?
            .to_owned()
            .into();
        arguments.expect_nothing()?;
        let template = Template::new(
            tokens
                .parse_all(options)
                .trace_with(|| format!("{{% capture {id} %}}").into())?,
        );
        tokens.assert_empty();
        Ok(Box::new(Capture { id, template }))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Debug)]
struct Capture {
    id: KString,
    template: Template,
}

impl Renderable for Capture {
    fn render_to(&self, _writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        let output = Buffer::render(&self.template, runtime)
            .trace_with(|| format!("{{% capture {} %}}", self.id).into())?;
        runtime.set_global(self.id.clone(), Value::scalar(output));
        Ok(())
    }
}

#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct IfChangedBlock;

impl BlockReflection for IfChangedBlock {
    fn start_tag(&self) -> &str {
        "ifchanged"
    }
    fn end_tag(&self) -> &str {
        "endifchanged"
    }
    fn description(&self) -> &str {
        "Renders its body only when it differs from the last time."
    }
}

impl ParseBlock for IfChangedBlock {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        mut tokens: TagBlock<'_, '_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        arguments.expect_nothing()?;
        let body = Template::new(tokens.parse_all(options)?);
        tokens.assert_empty();
        Ok(Box::new(IfChanged { body }))
    }

    fn reflection(&self) -> &dyn BlockReflection {
        self
    }
}

#[derive(Debug)]
struct IfChanged {
    body: Template,
}

/// The last body an `ifchanged` rendered, per render.
#[derive(Debug, Default)]
struct LastChanged(Option<String>);

impl Renderable for IfChanged {
    fn render_to(&self, writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        let rendered = Buffer::render(&self.body, runtime).trace("{% ifchanged %}")?;
        let mut last = runtime.registers().get_mut::<LastChanged>();
        if last.0.as_deref() != Some(rendered.as_str()) {
            writer
                .write_all(rendered.as_bytes())
                .map_err(|e| Error::with_msg(e.to_string()))?;
            last.0 = Some(rendered);
        }
        Ok(())
    }
}

#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct AssignTag;

impl TagReflection for AssignTag {
    fn tag(&self) -> &'static str {
        "assign"
    }
    fn description(&self) -> &'static str {
        "Sets a variable, within the render budget."
    }
}

impl ParseTag for AssignTag {
    fn parse(
        &self,
        mut arguments: TagTokenIter<'_>,
        options: &Language,
    ) -> Result<Box<dyn Renderable>> {
        let dst: KString = arguments
            .expect_next("Identifier expected.")?
            .expect_identifier()
            .into_result()?
            .to_owned()
            .into();
        arguments
            .expect_next("Assignment operator \"=\" expected.")?
            .expect_str("=")
            .into_result_custom_msg("Assignment operator \"=\" expected.")?;
        let src = arguments
            .expect_next("FilterChain expected.")?
            .expect_filter_chain(options)
            .into_result()?;
        arguments.expect_nothing()?;
        Ok(Box::new(Assign { dst, src }))
    }

    fn reflection(&self) -> &dyn TagReflection {
        self
    }
}

#[derive(Debug)]
struct Assign {
    dst: KString,
    src: FilterChain,
}

impl Renderable for Assign {
    fn render_to(&self, _writer: &mut dyn Write, runtime: &dyn Runtime) -> Result<()> {
        let trace = || format!("{{% assign {} = {}%}}", self.dst, self.src).into();
        let value = self.src.evaluate(runtime).trace_with(trace)?;
        // Filters charged what they built; a plain copy is charged here.
        budget::bytes(budget::size_of(value.as_view())).trace_with(trace)?;
        runtime.set_global(self.dst.clone(), value.into_owned());
        Ok(())
    }
}
