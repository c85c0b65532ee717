//! `phlo apply FILE [--id ID]`: create or update a PHLO from its definition file.
//!
//! A definition has no id of its own (the format allows only `name`, `description` and `nodes`), so
//! the PHLO to update is the account's PHLO with the definition's `name`, or the one given with
//! `--id`. Applying an unchanged definition adds no revision, so `apply` can run on every deploy.

use std::path::Path;

use anyhow::Context;
use phlo_flow::Problem;
use serde_json::{Value, json};

use super::phlos;
use super::print::{json_document, str_of};
use crate::client::{ApiError, Gateway};
use crate::validate::FileReport;

enum Action {
    Created,
    Updated,
    Unchanged,
}

impl Action {
    fn as_str(&self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
        }
    }
}

pub async fn run(
    gateway: &Gateway,
    file: &Path,
    id: Option<&str>,
    json: bool,
) -> anyhow::Result<bool> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let definition: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JSON document", file.display()))?;
    let target = match id {
        Some(id) => Some(phlos::resolve(gateway, id).await?),
        None => match definition.get("name").and_then(Value::as_str) {
            // Without a name the definition is invalid: creating it reports every problem.
            None => None,
            Some(name) => {
                let found = phlos::named(gateway, name).await?;
                match found.as_slice() {
                    [] => None,
                    [one] => Some(str_of(one, "phlo_id").to_owned()),
                    many => anyhow::bail!(
                        "{} PHLOs are named {name:?}: choose one with --id ({})",
                        many.len(),
                        many.iter()
                            .map(|p| str_of(p, "phlo_id"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            }
        },
    };
    let result = match &target {
        None => gateway
            .post("/v1/phlo", &definition)
            .await
            .map(|b| (Action::Created, b)),
        Some(phlo_id) => {
            let current = gateway.get(&format!("/v1/phlo/{phlo_id}"), &[]).await?;
            if current["definition"] == definition {
                Ok((Action::Unchanged, current))
            } else {
                gateway
                    .put(&format!("/v1/phlo/{phlo_id}"), &definition)
                    .await
                    .map(|b| (Action::Updated, b))
            }
        }
    };
    let (action, body) = match result {
        Ok(found) => found,
        Err(e) => match e.downcast_ref::<ApiError>() {
            Some(api) if !api.problems.is_empty() => {
                return rejected(file, api.problems.clone(), json);
            }
            _ => return Err(e),
        },
    };
    let warnings: Vec<Problem> = body
        .get("warnings")
        .and_then(|w| serde_json::from_value(w.clone()).ok())
        .unwrap_or_default();
    if json {
        json_document(&json!({
            "action": action.as_str(),
            "phlo_id": body["phlo_id"],
            "name": body["name"],
            "revision": body["revision"],
            "latest_revision": body["latest_revision"],
            "warnings": warnings,
        }))?;
    } else {
        println!(
            "{} PHLO {} ({}) revision {}",
            action.as_str(),
            str_of(&body, "phlo_id"),
            str_of(&body, "name"),
            body["revision"]
        );
        for w in &warnings {
            println!("  {w}");
        }
    }
    Ok(true)
}

/// The gateway refused the definition: every problem, printed as `phlo validate` prints them.
fn rejected(file: &Path, problems: Vec<Problem>, json: bool) -> anyhow::Result<bool> {
    let report = FileReport::new(file.display().to_string(), problems);
    if json {
        json_document(&serde_json::to_value(&report)?)?;
    } else {
        report.print();
    }
    Ok(false)
}
