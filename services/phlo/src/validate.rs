//! `phlo validate FILE...`

use std::path::PathBuf;

use anyhow::Context;
use phlo_flow::{Problem, Severity};
use serde::Serialize;

#[derive(Serialize)]
struct FileReport {
    file: String,
    valid: bool,
    problems: Vec<Problem>,
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
        let valid = !problems.iter().any(|p| p.severity == Severity::Error);
        reports.push(FileReport {
            file: path.display().to_string(),
            valid,
            problems,
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        for r in &reports {
            let errors = r
                .problems
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .count();
            let warnings = r.problems.len() - errors;
            println!(
                "{}: {} ({errors} errors, {warnings} warnings)",
                r.file,
                if r.valid { "ok" } else { "invalid" }
            );
            for p in &r.problems {
                println!("  {p}");
            }
        }
    }
    Ok(reports.iter().all(|r| r.valid))
}
