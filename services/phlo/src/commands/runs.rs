//! `phlo runs [--phlo P] [--status S] [--trigger T] [--since T] [--until T] [--phone N] [--search Q]
//! [--limit N]`: the account's runs, newest first.

use serde_json::{Value, json};

use super::print::{json_document, seconds, str_of};
use super::{phlos, when};
use crate::client::Gateway;

/// The gateway's largest page.
const PAGE: usize = 100;

#[derive(clap::Args)]
pub struct Args {
    /// Runs of this PHLO (its id or name).
    #[arg(long)]
    phlo: Option<String>,
    /// active, completed, failed, cancelled or timed_out.
    #[arg(long)]
    status: Option<String>,
    /// api, call or sms.
    #[arg(long)]
    trigger: Option<String>,
    /// Runs created at or after this time: RFC 3339, or an age such as 15m, 2h, 7d.
    #[arg(long)]
    since: Option<String>,
    /// Runs created before this time (same forms as --since).
    #[arg(long)]
    until: Option<String>,
    /// Runs whose caller, sender, called number or recipient is this number.
    #[arg(long)]
    phone: Option<String>,
    /// Text searched in the trigger (payload, caller...) and in every step's variables.
    #[arg(long)]
    search: Option<String>,
    /// At most this many runs.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    limit: u32,
}

pub async fn run(gateway: &Gateway, args: Args, json: bool) -> anyhow::Result<bool> {
    let mut filters: Vec<(&str, String)> = Vec::new();
    if let Some(phlo) = &args.phlo {
        filters.push(("phlo_id", phlos::resolve(gateway, phlo).await?));
    }
    for (name, value) in [
        ("status", &args.status),
        ("trigger", &args.trigger),
        ("phone_number", &args.phone),
        ("q", &args.search),
    ] {
        if let Some(v) = value {
            filters.push((name, v.clone()));
        }
    }
    for (name, value) in [("from", &args.since), ("to", &args.until)] {
        if let Some(v) = value {
            filters.push((name, when::rfc3339(when::parse(v)?)));
        }
    }
    let wanted = args.limit as usize;
    let mut runs: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    while runs.len() < wanted {
        let mut query = filters.clone();
        query.push(("limit", (wanted - runs.len()).min(PAGE).to_string()));
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let page = gateway.get("/v1/runs", &query).await?;
        runs.extend(page["objects"].as_array().cloned().unwrap_or_default());
        match page["meta"]["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    if json {
        json_document(&json!({ "runs": runs }))?;
        return Ok(true);
    }
    if runs.is_empty() {
        println!("no runs");
        return Ok(true);
    }
    println!(
        "{:<36}  {:<9}  {:<7}  {:>5}  {:<19}  {:<36}  ERROR",
        "RUN", "STATUS", "TRIGGER", "STEPS", "CREATED (UTC)", "PHLO"
    );
    for r in &runs {
        println!(
            "{:<36}  {:<9}  {:<7}  {:>5}  {:<19}  {:<36}  {}",
            str_of(r, "run_id"),
            str_of(r, "status"),
            str_of(r, "trigger"),
            r["step_count"].to_string(),
            seconds(str_of(r, "created_on")),
            str_of(r, "phlo_id"),
            str_of(r, "error"),
        );
    }
    Ok(true)
}
