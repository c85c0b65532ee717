//! `phlo callbacks tail`: callback delivery attempts as they happen.
//!
//! The gateway keeps a delivery log per run (`GET /v1/runs/{id}/callbacks`), so tailing polls the
//! runs that can still produce attempts: those active when tailing started, those started since
//! (or since `--since`), and any run with a delivery still pending. A run leaves the watch list once
//! it has ended and none of its deliveries is pending. A redelivery of a run no longer watched is not
//! seen; `--run` watches that run.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::print::{clock, json_line, str_of};
use super::{phlos, when};
use crate::client::{Gateway, is_transient};

const POLL: Duration = Duration::from_secs(1);
const PATIENCE: Duration = Duration::from_secs(60);
/// How far back the window of new runs reaches before the newest run seen: a run is created with
/// the time of its gateway, and may become visible a little after a later one.
const LAG: chrono::Duration = chrono::Duration::seconds(10);

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print delivery attempts as they happen (status, attempt, URL, node), until interrupted.
    Tail(TailArgs),
}

#[derive(clap::Args)]
pub struct TailArgs {
    /// Deliveries of runs of this PHLO (its id or name).
    #[arg(long, conflicts_with = "run")]
    phlo: Option<String>,
    /// Deliveries of this run only; stops once the run has ended and none is pending.
    #[arg(long)]
    run: Option<String>,
    /// Also print what happened since this time (runs created since): RFC 3339 or an age such as
    /// 15m. Without it, only what happens from now on is printed (with --run: the run's whole log).
    #[arg(long)]
    since: Option<String>,
    /// Print what is there and exit, rather than waiting for more: the runs of --since (default:
    /// the last hour), or the run of --run.
    #[arg(long)]
    once: bool,
    /// Exit after printing this many attempts.
    #[arg(long)]
    limit: Option<usize>,
}

pub async fn run(gateway: &Gateway, command: Command, json: bool) -> anyhow::Result<bool> {
    let Command::Tail(args) = command;
    let phlo_id = match &args.phlo {
        Some(p) => Some(phlos::resolve(gateway, p).await?),
        None => None,
    };
    let mut tail = Tail {
        json,
        phlo_id,
        single_run: args.run.clone(),
        window: match (&args.since, args.once) {
            (Some(since), _) => Some(when::parse(since)?),
            (None, true) => Some(when::parse("1h")?),
            (None, false) => None,
        },
        watched: BTreeMap::new(),
        printed: HashMap::new(),
        lines: 0,
        limit: args.limit,
    };
    if let Some(run) = &args.run {
        // Unknown runs are a 404 here rather than an empty tail.
        gateway.get(&format!("/v1/runs/{run}"), &[]).await?;
        tail.watched.insert(run.clone(), true);
    }
    // Without --since, what already happened is marked as printed without printing it.
    let mut quiet = args.since.is_none() && !args.once && args.run.is_none();
    if quiet {
        tail.window = newest_run(gateway, tail.phlo_id.as_deref()).await?;
    }
    // As with `follow`: errors are retried only after a first successful poll.
    let mut failing_since: Option<Instant> = None;
    let mut polled = false;
    loop {
        match tail.poll(gateway, !quiet).await {
            Ok(Flow::Stop) => return Ok(true),
            Ok(Flow::Continue) => {
                polled = true;
                if failing_since.take().is_some() {
                    eprintln!("the gateway answers again");
                }
            }
            Err(e) if polled && is_transient(&e) => {
                let since = match failing_since {
                    Some(since) => since,
                    None => {
                        eprintln!("warning: {e:#}; retrying");
                        *failing_since.insert(Instant::now())
                    }
                };
                if since.elapsed() > PATIENCE {
                    return Err(e.context("gave up tailing callbacks"));
                }
            }
            Err(e) => return Err(e),
        }
        if args.once {
            return Ok(true);
        }
        if quiet {
            // Also how a script (or a test) knows that what happens from now on will be printed.
            eprintln!("watching callback deliveries from now on (Ctrl-C to stop)");
        }
        quiet = false;
        tokio::time::sleep(POLL).await;
    }
}

enum Flow {
    Continue,
    Stop,
}

struct Tail {
    json: bool,
    phlo_id: Option<String>,
    /// `--run`: watch this run only, no discovery.
    single_run: Option<String>,
    /// Runs created at or after this are watched.
    window: Option<DateTime<Utc>>,
    /// Run id → whether it was active when last listed.
    watched: BTreeMap<String, bool>,
    /// Delivery id → the highest attempt printed (0: a delivery that ended without any attempt).
    printed: HashMap<String, i64>,
    lines: usize,
    limit: Option<usize>,
}

impl Tail {
    async fn poll(&mut self, gateway: &Gateway, print: bool) -> anyhow::Result<Flow> {
        if self.single_run.is_none() {
            self.discover(gateway).await?;
        }
        let mut done = Vec::new();
        let mut fresh = Vec::new();
        let runs: Vec<(String, bool)> = self
            .watched
            .iter()
            .map(|(id, active)| (id.clone(), *active))
            .collect();
        for (run_id, active) in runs {
            let log = gateway
                .get(&format!("/v1/runs/{run_id}/callbacks"), &[])
                .await?;
            let deliveries = log["objects"].as_array().cloned().unwrap_or_default();
            for d in &deliveries {
                fresh.extend(self.unprinted(d));
            }
            let pending = deliveries.iter().any(|d| d["status"] == "pending");
            let active = match &self.single_run {
                Some(_) => {
                    let run = gateway.get(&format!("/v1/runs/{run_id}"), &[]).await?;
                    run["status"] == "active"
                }
                None => active,
            };
            if !active && !pending {
                done.push(run_id);
            }
        }
        for run_id in done {
            self.watched.remove(&run_id);
        }
        if print {
            // In the order they happened, across runs and deliveries.
            fresh.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, d, attempt) in &fresh {
                if self.line(d, attempt.as_ref()) {
                    return Ok(Flow::Stop);
                }
            }
        }
        if self.single_run.is_some() && self.watched.is_empty() {
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }

    /// Adds the active runs and the runs of the window to the watch list, and moves the window on.
    async fn discover(&mut self, gateway: &Gateway) -> anyhow::Result<()> {
        let mut base: Vec<(&str, String)> = Vec::new();
        if let Some(p) = &self.phlo_id {
            base.push(("phlo_id", p.clone()));
        }
        // Every watched run is marked inactive unless a listing shows it active.
        for active in self.watched.values_mut() {
            *active = false;
        }
        let mut active = base.clone();
        active.push(("status", "active".to_owned()));
        for run in all_runs(gateway, &active).await? {
            self.watched.insert(str_of(&run, "run_id").to_owned(), true);
        }
        let mut recent = base;
        if let Some(from) = self.window {
            recent.push(("from", when::rfc3339(from)));
        }
        let mut newest = self.window;
        for run in all_runs(gateway, &recent).await? {
            let is_active = run["status"] == "active";
            self.watched
                .entry(str_of(&run, "run_id").to_owned())
                .and_modify(|a| *a |= is_active)
                .or_insert(is_active);
            if let Some(t) = gateway_time(str_of(&run, "created_on")) {
                newest = newest.max(Some(t - LAG));
            }
        }
        self.window = newest;
        Ok(())
    }

    /// The delivery's attempts not printed yet (or the delivery itself when it ended without any),
    /// with the time each happened, marked as printed.
    fn unprinted(&mut self, d: &Value) -> Vec<(String, Value, Option<Value>)> {
        let id = str_of(d, "delivery_id").to_owned();
        let printed = self.printed.get(&id).copied();
        let attempts = d["attempts"].as_array().cloned().unwrap_or_default();
        if attempts.is_empty() {
            if printed.is_none() && matches!(str_of(d, "status"), "failed" | "dead") {
                self.printed.insert(id, 0);
                return vec![(str_of(d, "created_on").to_owned(), d.clone(), None)];
            }
            return Vec::new();
        }
        let mut lines = Vec::new();
        for a in attempts {
            let n = a["attempt"].as_i64().unwrap_or_default();
            if a["outcome"] == "in_progress" || printed.is_some_and(|p| n <= p) {
                continue;
            }
            self.printed.insert(id.clone(), n);
            lines.push((str_of(&a, "attempted_on").to_owned(), d.clone(), Some(a)));
        }
        lines
    }

    /// Prints one attempt (or a delivery that ended without one); returns whether the limit is reached.
    fn line(&mut self, d: &Value, attempt: Option<&Value>) -> bool {
        if self.json {
            let mut line = json!({
                "type": if attempt.is_some() { "attempt" } else { "delivery" },
                "delivery_id": d["delivery_id"],
                "run_id": d["run_id"],
                "phlo_id": d["phlo_id"],
                "node_id": d["node_id"],
                "node_name": d["node_name"],
                "event": d["event"],
                "method": d["method"],
                "url": d["url"],
                "status": d["status"],
                "attempt_count": d["attempt_count"],
            });
            match attempt {
                Some(a) => {
                    line["attempt"] = a["attempt"].clone();
                    line["outcome"] = a["outcome"].clone();
                    line["status_code"] = a["status_code"].clone();
                    line["latency_ms"] = a["latency_ms"].clone();
                    line["error"] = a["error"].clone();
                    line["attempted_on"] = a["attempted_on"].clone();
                }
                None => line["error"] = d["last_error"].clone(),
            }
            json_line(&line);
        } else {
            let (time, what, code, error) = match attempt {
                Some(a) => (
                    clock(str_of(a, "attempted_on")).to_owned(),
                    format!("{} attempt {}", str_of(a, "outcome"), a["attempt"]),
                    a["status_code"]
                        .as_i64()
                        .map_or("-".to_owned(), |c| format!("HTTP {c}")),
                    str_of(a, "error"),
                ),
                None => (
                    clock(str_of(d, "created_on")).to_owned(),
                    format!("{} without an attempt", str_of(d, "status")),
                    "-".to_owned(),
                    str_of(d, "last_error"),
                ),
            };
            let mut text = format!(
                "{time}  {what}  {code}  {} {}  {} {}  delivery {} ({})  run {}",
                str_of(d, "method"),
                str_of(d, "url"),
                str_of(d, "node_name"),
                str_of(d, "event"),
                str_of(d, "delivery_id"),
                str_of(d, "status"),
                str_of(d, "run_id"),
            );
            if !error.is_empty() {
                text.push_str(&format!("\n      error: {error}"));
            }
            println!("{text}");
        }
        self.lines += 1;
        self.limit.is_some_and(|l| self.lines >= l)
    }
}

/// Every run matching `filters`, following the pages.
async fn all_runs(gateway: &Gateway, filters: &[(&str, String)]) -> anyhow::Result<Vec<Value>> {
    let mut runs = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = filters.to_vec();
        query.push(("limit", "100".to_owned()));
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let page = gateway.get("/v1/runs", &query).await?;
        runs.extend(page["objects"].as_array().cloned().unwrap_or_default());
        match page["meta"]["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(runs),
        }
    }
}

/// When the newest run was created, by the gateway's clock (not this machine's): the start of the
/// window of new runs.
async fn newest_run(
    gateway: &Gateway,
    phlo_id: Option<&str>,
) -> anyhow::Result<Option<DateTime<Utc>>> {
    let mut query = vec![("limit", "1".to_owned())];
    if let Some(p) = phlo_id {
        query.push(("phlo_id", p.to_owned()));
    }
    let page = gateway.get("/v1/runs", &query).await?;
    Ok(page["objects"]
        .get(0)
        .and_then(|r| gateway_time(str_of(r, "created_on")))
        .map(|t| t - LAG))
}

/// A time in the gateway's format (`2026-11-20 22:54:12.306994+00:00`).
fn gateway_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z")
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_times_parse() {
        let t = gateway_time("2026-11-20 22:54:12.306994+00:00").unwrap();
        assert_eq!(when::rfc3339(t), "2026-11-20T22:54:12.306994Z");
        assert!(gateway_time("2026-11-20T22:54:12Z").is_none());
    }
}
