//! `phlo callbacks tail`: callback delivery attempts as they happen.
//!
//! The gateway lists the account's deliveries in the order they last changed (`GET /v1/callbacks`),
//! with a position to resume from (`meta.after`) that nothing committed later can land behind. So a
//! poll is one request whatever the number of runs (more only when over a page of changes piled up),
//! and a delivery of any run, however old, shows up again when it changes (a redelivery).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::print::{clock, json_line, str_of};
use super::{phlos, when};
use crate::client::{Gateway, is_transient};

const POLL: Duration = Duration::from_secs(1);
const PATIENCE: Duration = Duration::from_secs(60);
/// The gateway's largest page: a poll asks again at once while pages come back full.
const PAGE: usize = 100;
/// Without `--since`, attempts older than the newest change when tailing started, less this, are not
/// printed when their delivery changes again: an attempt's time is when its transaction started, which
/// can be a little before a change that committed first.
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
    /// Also print the deliveries that changed since this time, with their attempts: RFC 3339 or an
    /// age such as 15m. Without it, only what happens from now on is printed (with --run: the run's
    /// whole log).
    #[arg(long)]
    since: Option<String>,
    /// Print what is there and exit, rather than waiting for more: the deliveries changed since
    /// --since (default: the last hour), or the run of --run.
    #[arg(long)]
    once: bool,
    /// Exit after printing this many attempts.
    #[arg(long)]
    limit: Option<usize>,
}

pub async fn run(gateway: &Gateway, command: Command, json: bool) -> anyhow::Result<bool> {
    let Command::Tail(args) = command;
    let mut filters: Vec<(&'static str, String)> = Vec::new();
    if let Some(p) = &args.phlo {
        filters.push(("phlo_id", phlos::resolve(gateway, p).await?));
    }
    if let Some(run) = &args.run {
        // Unknown runs are a 404 here rather than an empty tail.
        gateway.get(&format!("/v1/runs/{run}"), &[]).await?;
        filters.push(("run_id", run.clone()));
    }
    let since = match (&args.since, args.once && args.run.is_none()) {
        (Some(since), _) => Some(since.as_str()),
        (None, true) => Some("1h"),
        (None, false) => None,
    };
    if let Some(since) = since {
        filters.push(("since", when::rfc3339(when::parse(since)?)));
    }
    let mut tail = Tail {
        json,
        filters,
        position: "0".to_owned(),
        cutoff: None,
        single_run: args.run.clone(),
        pending: HashSet::new(),
        printed: HashMap::new(),
        lines: 0,
        limit: args.limit,
    };
    // Without --since, what already happened is skipped: the tail starts where the newest listing
    // ends.
    if since.is_none() && args.run.is_none() {
        let mut query = tail.filters.clone();
        query.push(("limit", "1".to_owned()));
        let page = gateway.get("/v1/callbacks", &query).await?;
        tail.position = str_of(&page["meta"], "after").to_owned();
        // By the gateway's clock (not this machine's), like the attempts' times.
        tail.cutoff = page["objects"]
            .get(0)
            .and_then(|d| gateway_time(str_of(d, "updated_on")))
            .map(|t| t - LAG);
        // Also how a script (or a test) knows that what happens from now on will be printed.
        eprintln!("watching callback deliveries from now on (Ctrl-C to stop)");
    }
    // As with `follow`: errors are retried only after a first successful poll.
    let mut failing_since: Option<Instant> = None;
    let mut polled = false;
    loop {
        match tail.poll(gateway).await {
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
        tokio::time::sleep(POLL).await;
    }
}

enum Flow {
    Continue,
    Stop,
}

struct Tail {
    json: bool,
    /// `phlo_id`, `run_id`, `since`: the same on every request, as a position is only good with the
    /// filters of the listing that returned it.
    filters: Vec<(&'static str, String)>,
    /// `meta.after` of the last listing (`0`: from the start).
    position: String,
    /// Attempts before this happened before tailing started: not printed.
    cutoff: Option<DateTime<Utc>>,
    /// `--run`: stop once this run has ended with nothing pending.
    single_run: Option<String>,
    /// Deliveries last seen pending.
    pending: HashSet<String>,
    /// Delivery id → the highest attempt printed (0: a delivery that ended without any attempt).
    printed: HashMap<String, i64>,
    lines: usize,
    limit: Option<usize>,
}

impl Tail {
    async fn poll(&mut self, gateway: &Gateway) -> anyhow::Result<Flow> {
        let mut fresh = Vec::new();
        loop {
            let mut query = self.filters.clone();
            query.push(("after", self.position.clone()));
            query.push(("limit", PAGE.to_string()));
            let page = gateway.get("/v1/callbacks", &query).await?;
            let deliveries = page["objects"].as_array().cloned().unwrap_or_default();
            for d in &deliveries {
                fresh.extend(self.seen(d));
            }
            self.position = str_of(&page["meta"], "after").to_owned();
            if deliveries.len() < PAGE {
                break;
            }
        }
        if let Some(run_id) = self.single_run.clone()
            && self.pending.is_empty()
            && self.run_ended(gateway, &run_id).await?
        {
            // The listing shows a change only once every older transaction has ended; the run's
            // own log does not wait, so the last attempts of a run that just ended are not missed.
            let log = gateway
                .get(&format!("/v1/runs/{run_id}/callbacks"), &[])
                .await?;
            for d in log["objects"].as_array().into_iter().flatten() {
                fresh.extend(self.seen(d));
            }
            if self.print(fresh) {
                return Ok(Flow::Stop);
            }
            return Ok(if self.pending.is_empty() {
                Flow::Stop
            } else {
                Flow::Continue
            });
        }
        Ok(if self.print(fresh) {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }

    /// Whether the run has ended (its deliveries may still be pending).
    async fn run_ended(&self, gateway: &Gateway, run_id: &str) -> anyhow::Result<bool> {
        let run = gateway.get(&format!("/v1/runs/{run_id}"), &[]).await?;
        Ok(!matches!(str_of(&run, "status"), "queued" | "active"))
    }

    /// Notes whether the delivery is pending, and returns its attempts not printed yet.
    fn seen(&mut self, d: &Value) -> Vec<(String, Value, Option<Value>)> {
        let id = str_of(d, "delivery_id").to_owned();
        if d["status"] == "pending" {
            self.pending.insert(id);
        } else {
            self.pending.remove(&id);
        }
        self.unprinted(d)
    }

    /// Prints the lines in the order they happened, across runs and deliveries; returns whether the
    /// limit is reached.
    fn print(&mut self, mut fresh: Vec<(String, Value, Option<Value>)>) -> bool {
        fresh.sort_by(|a, b| a.0.cmp(&b.0));
        fresh
            .iter()
            .any(|(_, d, attempt)| self.line(d, attempt.as_ref()))
    }

    /// The delivery's attempts not printed yet (or the delivery itself when it ended without any),
    /// with the time each happened, marked as printed.
    fn unprinted(&mut self, d: &Value) -> Vec<(String, Value, Option<Value>)> {
        let id = str_of(d, "delivery_id").to_owned();
        let printed = self.printed.get(&id).copied();
        let attempts = d["attempts"].as_array().cloned().unwrap_or_default();
        let cutoff = self.cutoff;
        let before_tail =
            |time: &str| cutoff.is_some_and(|c| gateway_time(time).is_some_and(|t| t < c));
        if attempts.is_empty() {
            if printed.is_none() && matches!(str_of(d, "status"), "failed" | "dead") {
                self.printed.insert(id, 0);
                if before_tail(str_of(d, "created_on")) {
                    return Vec::new();
                }
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
            if !before_tail(str_of(&a, "attempted_on")) {
                lines.push((str_of(&a, "attempted_on").to_owned(), d.clone(), Some(a)));
            }
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
