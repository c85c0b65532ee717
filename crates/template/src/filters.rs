//! Filters under the render budget.
//!
//! Every filter is wrapped so that the value it returns is charged (and
//! refused past [`MAX_VALUE_BYTES`]). That bounds chains such as
//! `x | append: x` repeated in a loop, but only after the value exists, so
//! the two filters whose output can be quadratically larger than their
//! input, `replace` (an empty search inserts the replacement between every
//! character) and `join` (the separator between every item), are replaced
//! by versions that compute the size first and refuse before allocating.

use std::fmt;

use liquid_core::parser::{FilterArguments, FilterParametersReflection, ParameterReflection};
use liquid_core::{
    Error, Expression, Filter, FilterParameters, FilterReflection, ParseFilter, Result, Runtime,
    Value, ValueView,
};

use crate::budget::{self, MAX_VALUE_BYTES};

/// Any filter, with its output charged to the budget.
#[derive(Clone)]
pub(crate) struct Metered(Box<dyn ParseFilter>);

impl Metered {
    pub(crate) fn new(filter: impl Into<Box<dyn ParseFilter>>) -> Self {
        Metered(filter.into())
    }
}

impl ParseFilter for Metered {
    fn parse(&self, arguments: FilterArguments<'_>) -> Result<Box<dyn Filter>> {
        Ok(Box::new(MeteredFilter(self.0.parse(arguments)?)))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self.0.reflection()
    }
}

#[derive(Debug)]
struct MeteredFilter(Box<dyn Filter>);

impl fmt::Display for MeteredFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Filter for MeteredFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        let output = self.0.evaluate(input, runtime)?;
        budget::bytes(budget::size_of_value(&output))?;
        Ok(output)
    }
}

#[derive(Debug, FilterParameters)]
struct ReplaceArgs {
    #[parameter(description = "The text to search.", arg_type = "str")]
    search: Expression,
    #[parameter(
        description = "The text to replace search results with; nothing when not given.",
        arg_type = "str"
    )]
    replace: Option<Expression>,
}

/// `replace`, refusing before it builds an oversized string.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Replace;

impl FilterReflection for Replace {
    fn name(&self) -> &str {
        "replace"
    }
    fn description(&self) -> &str {
        "Replaces every occurrence of the first argument in a string with the second argument."
    }
    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        ReplaceArgs::positional_parameters()
    }
    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        ReplaceArgs::keyword_parameters()
    }
}

impl ParseFilter for Replace {
    fn parse(&self, arguments: FilterArguments<'_>) -> Result<Box<dyn Filter>> {
        Ok(Box::new(ReplaceFilter {
            args: ReplaceArgs::from_args(arguments)?,
        }))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

#[derive(Debug)]
struct ReplaceFilter {
    args: ReplaceArgs,
}

impl fmt::Display for ReplaceFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "replace: {}", self.args)
    }
}

impl Filter for ReplaceFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        let args = self.args.evaluate(runtime)?;
        let input = input.to_kstr();
        let search = args.search.as_str();
        let replace = args.replace.unwrap_or_else(|| "".into());
        // `str::replace` with an empty pattern matches before every char and at the end.
        let hits = if search.is_empty() {
            input.chars().count() + 1
        } else {
            input.matches(search).count()
        };
        let size = hits
            .saturating_mul(replace.len())
            .saturating_add(input.len() - hits.saturating_mul(search.len()).min(input.len()));
        budget::bytes(size)?;
        Ok(Value::scalar(input.replace(search, replace.as_str())))
    }
}

#[derive(Debug, FilterParameters)]
struct JoinArgs {
    #[parameter(
        description = "The separator between each element in the string.",
        arg_type = "str"
    )]
    separator: Option<Expression>,
}

/// `join`, refusing before it builds an oversized string.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Join;

impl FilterReflection for Join {
    fn name(&self) -> &str {
        "join"
    }
    fn description(&self) -> &str {
        "Combines the items in an array into a single string using the argument as a separator."
    }
    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        JoinArgs::positional_parameters()
    }
    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        JoinArgs::keyword_parameters()
    }
}

impl ParseFilter for Join {
    fn parse(&self, arguments: FilterArguments<'_>) -> Result<Box<dyn Filter>> {
        Ok(Box::new(JoinFilter {
            args: JoinArgs::from_args(arguments)?,
        }))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

#[derive(Debug)]
struct JoinFilter {
    args: JoinArgs,
}

impl fmt::Display for JoinFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "join: {}", self.args)
    }
}

impl Filter for JoinFilter {
    fn evaluate(&self, input: &dyn ValueView, runtime: &dyn Runtime) -> Result<Value> {
        let args = self.args.evaluate(runtime)?;
        let separator = args.separator.unwrap_or_else(|| " ".into());
        let array = input
            .as_array()
            .ok_or_else(|| Error::with_msg("Invalid input; Array of strings expected"))?;
        let count = usize::try_from(array.size()).unwrap_or(usize::MAX);
        let separators = count.saturating_sub(1).saturating_mul(separator.len());
        budget::bytes(separators)?;
        let mut out = String::new();
        for (i, item) in array.values().enumerate() {
            if i > 0 {
                out.push_str(separator.as_str());
            }
            let item = item.to_kstr();
            if out.len().saturating_add(item.len()) > MAX_VALUE_BYTES {
                budget::bytes(out.len().saturating_add(item.len()))?;
            }
            out.push_str(&item);
        }
        Ok(Value::scalar(out))
    }
}
