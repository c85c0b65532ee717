//! `phlo run PHLO [--payload JSON | --payload-file FILE] [--follow]`

use std::path::PathBuf;

use anyhow::Context;
use serde_json::{Value, json};

use super::follow::Follower;
use super::phlos;
use super::print::{json_document, json_line, str_of};
use crate::client::Gateway;

#[derive(clap::Args)]
pub struct Args {
    /// The PHLO: its id, or its name.
    phlo: String,
    /// The run's payload, a JSON object: `{{Start.http.params.<key>}}` in the PHLO.
    #[arg(long, conflicts_with = "payload_file")]
    payload: Option<String>,
    /// Read the payload from this file (`-` for standard input).
    #[arg(long)]
    payload_file: Option<PathBuf>,
    /// Follow the run until it ends (as `phlo follow`); exit 1 unless it completed.
    #[arg(long)]
    follow: bool,
}

pub async fn run(gateway: &Gateway, args: Args, json: bool) -> anyhow::Result<bool> {
    let payload = payload(&args)?;
    let phlo_id = phlos::resolve(gateway, &args.phlo).await?;
    let auth_id = gateway.auth_id()?;
    let started = gateway
        .post(&format!("/v1/account/{auth_id}/phlo/{phlo_id}"), &payload)
        .await?;
    let run_id = str_of(&started, "phlo_run_id").to_owned();
    let summary = json!({ "run_id": run_id, "phlo_id": phlo_id });
    if !args.follow {
        if json {
            json_document(&summary)?;
        } else {
            println!("{run_id}");
        }
        return Ok(true);
    }
    if json {
        let mut line = json!({ "type": "started" });
        if let (Some(line), Some(summary)) = (line.as_object_mut(), summary.as_object()) {
            line.extend(summary.clone());
        }
        json_line(&line);
    }
    Follower::new(&run_id, json).follow(gateway).await
}

fn payload(args: &Args) -> anyhow::Result<Value> {
    let (text, source) = match (&args.payload, &args.payload_file) {
        (Some(text), _) => (text.clone(), "--payload".to_owned()),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let text = std::io::read_to_string(std::io::stdin()).context("reading the payload")?;
            (text, "the payload on standard input".to_owned())
        }
        (None, Some(path)) => (
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
            path.display().to_string(),
        ),
        (None, None) => return Ok(json!({})),
    };
    let value: Value =
        serde_json::from_str(&text).with_context(|| format!("{source} is not JSON"))?;
    anyhow::ensure!(
        value.is_object(),
        "{source} must be a JSON object such as {{\"item\": \"pizza\"}}: its keys are the run's params"
    );
    Ok(value)
}
