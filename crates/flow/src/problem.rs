//! Validation problems: every one names the node and the field it concerns and says how to fix it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The definition cannot be saved or run.
    Error,
    /// Saved and runnable, but probably not what the author meant (e.g. an unreachable node).
    Warning,
}

/// One thing wrong with a PHLO definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub severity: Severity,
    /// Machine-readable kind, e.g. `missing_option`, `unknown_state`, `invalid_phone`.
    pub code: String,
    /// The node's `node_id` as written in the definition, when the problem belongs to a node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The node's `name`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Path of the field inside the node (`options.to[1]`) or the definition (`nodes`).
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity}")?;
        match (&self.node_name, &self.node_id) {
            (Some(name), Some(id)) => write!(f, " in node {name} ({id})")?,
            (None, Some(id)) => write!(f, " in node {id}")?,
            (Some(name), None) => write!(f, " in node {name}")?,
            (None, None) => {}
        }
        write!(f, " at {}: {} [{}]", self.field, self.message, self.code)
    }
}

/// Where a problem was found: a node (id and name, as far as they are known) or the definition itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct Place {
    pub node_id: Option<String>,
    pub node_name: Option<String>,
}

/// Collects problems so validation can report all of them at once instead of stopping at the first.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    list: Vec<Problem>,
}

impl Problems {
    pub fn error(&mut self, place: &Place, field: &str, code: &str, message: impl Into<String>) {
        self.push(Severity::Error, place, field, code, message.into());
    }

    pub fn warning(&mut self, place: &Place, field: &str, code: &str, message: impl Into<String>) {
        self.push(Severity::Warning, place, field, code, message.into());
    }

    fn push(
        &mut self,
        severity: Severity,
        place: &Place,
        field: &str,
        code: &str,
        message: String,
    ) {
        self.list.push(Problem {
            severity,
            code: code.to_owned(),
            node_id: place.node_id.clone(),
            node_name: place.node_name.clone(),
            field: field.to_owned(),
            message,
        });
    }

    pub fn has_errors(&self) -> bool {
        self.list.iter().any(|p| p.severity == Severity::Error)
    }

    pub fn into_vec(self) -> Vec<Problem> {
        self.list
    }
}
