//! `phlo validate FILE...`

use std::path::PathBuf;

use anyhow::Context;
use phlo_flow::{Problem, Severity};
use serde::Serialize;

#[derive(Serialize)]
pub struct FileReport {
    pub file: String,
    pub valid: bool,
    pub problems: Vec<Problem>,
}

impl FileReport {
    pub fn new(file: String, problems: Vec<Problem>) -> FileReport {
        let valid = !problems.iter().any(|p| p.severity == Severity::Error);
        FileReport {
            file,
            valid,
            problems,
        }
    }

    /// `file: ok|invalid (N errors, M warnings)`, then every problem with its node and field. `phlo
    /// apply` prints the gateway's verdict the same way.
    pub fn print(&self) {
        let errors = self
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count();
        let warnings = self.problems.len() - errors;
        println!(
            "{}: {} ({errors} errors, {warnings} warnings)",
            self.file,
            if self.valid { "ok" } else { "invalid" }
        );
        for p in &self.problems {
            println!("  {p}");
        }
    }
}

/// Returns whether every file is free of errors.
pub fn run(files: &[PathBuf], json: bool) -> anyhow::Result<bool> {
    let mut reports = Vec::new();
    for path in files {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let problems = match phlo_flow::compile_str(&text) {
            Ok((_, warnings)) => warnings,
            Err(problems) => problems,
        };
        reports.push(FileReport::new(path.display().to_string(), problems));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            r.print();
        }
    }
    Ok(reports.iter().all(|r| r.valid))
}
