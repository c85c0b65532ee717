//! Branch: compare `lhs` with each condition's `rhs` in order; the first that holds names the state
//! (its alias). `no_match` when none does.

use phlo_template::Template;
use serde_json::{Value, json};

use crate::condition::{self, Operator};
use crate::engine::{Context, EngineError, Reaction, unexpected};
use crate::event::Event;
use crate::model::Node;
use crate::nodes::vars;
use crate::options::{OptionReader, kind};

pub const NO_MATCH: &str = "no_match";

#[derive(Debug, Clone)]
pub struct Options {
    pub lhs: Option<Template>,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone)]
pub struct Condition {
    pub alias: String,
    pub operation: Operator,
    pub rhs: Option<Template>,
}

pub(crate) fn parse(r: &mut OptionReader) -> Options {
    let lhs = r.required_template("lhs", "the value to compare, e.g. {{Get_Input_1.input}}");
    let field = r.field("conditions");
    let mut conditions: Vec<Condition> = Vec::new();
    match r.raw("conditions") {
        Some(Value::Array(items)) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("{field}[{i}]");
                let Value::Object(map) = item else {
                    r.error(&path, "wrong_type", format!("expected a condition object, found {}", kind(item)));
                    continue;
                };
                let mut c = r.nested(map, path);
                let condition = parse_condition(&mut c, &conditions);
                c.finish();
                conditions.extend(condition);
            }
        }
        Some(Value::Array(_)) | None => r.error(
            &field,
            "missing_option",
            "add at least one condition: {\"alias\": \"yes\", \"operation\": \"equals\", \"rhs\": \"1\"}",
        ),
        Some(other) => r.error(&field, "wrong_type", format!("expected a list of conditions, found {}", kind(other))),
    }
    Options { lhs, conditions }
}

fn parse_condition(c: &mut OptionReader, earlier: &[Condition]) -> Option<Condition> {
    let alias_field = c.field("alias");
    let alias = match c.raw("alias") {
        Some(Value::String(a)) if !a.trim().is_empty() && a.trim().len() <= 64 => {
            Some(a.trim().to_owned())
        }
        Some(other) => {
            c.error(
                &alias_field,
                "invalid_value",
                format!("{other} is not an alias: use a short name such as `vip`"),
            );
            None
        }
        None => {
            c.error(
                &alias_field,
                "missing_option",
                "`alias` is required: it names the state this condition leads to",
            );
            None
        }
    };
    if let Some(a) = &alias {
        if a == NO_MATCH {
            c.error(
                &alias_field,
                "invalid_value",
                "`no_match` is the state when no condition holds: choose another alias",
            );
        } else if earlier.iter().any(|e| &e.alias == a) {
            c.error(&alias_field, "invalid_value", format!("alias `{a}` is used by an earlier condition: aliases name states and must be unique"));
        }
    }
    let op_field = c.field("operation");
    let operation = match c.raw("operation").and_then(Value::as_str) {
        Some(word) => match Operator::parse(&crate::options::normalize_word(word)) {
            Some(op) => Some(op),
            None => {
                let all: Vec<&str> = Operator::ALL.iter().map(|o| o.as_str()).collect();
                c.error(
                    &op_field,
                    "invalid_value",
                    format!(
                        "`{word}` is not an operation: use one of {}",
                        all.join(", ")
                    ),
                );
                None
            }
        },
        None => {
            c.error(
                &op_field,
                "missing_option",
                "`operation` is required, e.g. equals",
            );
            None
        }
    };
    let rhs = c.template("rhs");
    if let Some(op) = operation {
        if op.needs_rhs() && c.raw("rhs").is_none() {
            let f = c.field("rhs");
            c.error(
                &f,
                "missing_option",
                format!("`{}` compares with `rhs`: set it", op.as_str()),
            );
        }
        if op == Operator::Matches
            && let Some(pattern) = rhs.as_ref().and_then(Template::as_literal)
            && let Err(msg) = condition::compile_regex(pattern)
        {
            let f = c.field("rhs");
            c.error(&f, "invalid_regex", msg);
        }
    }
    Some(Condition {
        alias: alias?,
        operation: operation?,
        rhs,
    })
}

pub(crate) fn states(o: &Options) -> Vec<String> {
    let mut states: Vec<String> = o.conditions.iter().map(|c| c.alias.clone()).collect();
    states.push(NO_MATCH.to_owned());
    states
}

pub(crate) fn react(
    o: &Options,
    node: &Node,
    ctx: &Context,
    event: &Event,
) -> Result<Reaction, EngineError> {
    if !matches!(event, Event::Enter) {
        return Err(unexpected(node, event));
    }
    let lhs = match o.lhs.as_ref().map(|t| ctx.render(t)).transpose() {
        Ok(v) => v.unwrap_or_default(),
        // The error names the field (`options.lhs: ...`).
        Err(e) => return Ok(Reaction::stop(e)),
    };
    for c in &o.conditions {
        let rhs = match c.rhs.as_ref().map(|t| ctx.render(t)).transpose() {
            Ok(v) => v.unwrap_or_default(),
            Err(e) => return Ok(Reaction::stop(e)),
        };
        match condition::evaluate(c.operation, &lhs, &rhs) {
            Ok(true) => {
                return Ok(Reaction::done(
                    c.alias.clone(),
                    vars(
                        json!({ "lhs": lhs, "operation": c.operation.as_str(), "rhs": rhs, "matched": c.alias }),
                    ),
                ));
            }
            Ok(false) => {}
            Err(e) => return Ok(Reaction::stop(format!("condition `{}`: {e}", c.alias))),
        }
    }
    Ok(Reaction::done(
        NO_MATCH,
        vars(json!({ "lhs": lhs, "matched": null })),
    ))
}
