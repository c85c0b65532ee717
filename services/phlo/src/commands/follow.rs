//! `phlo follow RUN`: a run step by step, as it happens, until it ends.
//!
//! It polls the run (`GET /v1/runs/{id}`, whose steps are every step so far) and prints the steps it
//! has not printed yet, keyed by (token, seq), which a step never changes. Steps of concurrent tokens
//! may become visible out of order; each is printed when it does.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::print::{clock, json_line, str_of};
use crate::client::{Gateway, is_transient};

const POLL: Duration = Duration::from_millis(250);
/// How long the gateway may be away (restarting, its database briefly unavailable) before
/// following gives up.
const PATIENCE: Duration = Duration::from_secs(60);

pub async fn run(gateway: &Gateway, run_id: &str, json: bool) -> anyhow::Result<bool> {
    Follower::new(run_id, json).follow(gateway).await
}

/// Prints a run's steps once each.
pub struct Follower {
    run_id: String,
    json: bool,
    seen: HashSet<(i64, i64)>,
    /// Per token, the node and variables of its last step printed: a node's next step on the same
    /// token (a wait answered, a status update) prints only the variables that changed.
    last: HashMap<i64, (Value, serde_json::Map<String, Value>)>,
    headed: bool,
}

impl Follower {
    pub fn new(run_id: &str, json: bool) -> Follower {
        Follower {
            run_id: run_id.to_owned(),
            json,
            seen: HashSet::new(),
            last: HashMap::new(),
            headed: false,
        }
    }

    /// Follows until the run ends; returns whether it completed.
    pub async fn follow(mut self, gateway: &Gateway) -> anyhow::Result<bool> {
        let path = format!("/v1/runs/{}", self.run_id);
        // Errors are retried only once the run has been seen: a wrong URL, id or credentials fail
        // at once, a gateway restarting mid-run does not end the following.
        let mut failing_since: Option<Instant> = None;
        loop {
            let run = match gateway.get(&path, &[]).await {
                Ok(run) => {
                    if failing_since.take().is_some() {
                        eprintln!("the gateway answers again");
                    }
                    run
                }
                Err(e) if self.headed && is_transient(&e) => {
                    let since = match failing_since {
                        Some(since) => since,
                        None => {
                            eprintln!("warning: {e:#}; retrying");
                            *failing_since.insert(Instant::now())
                        }
                    };
                    if since.elapsed() > PATIENCE {
                        return Err(e.context(format!(
                            "gave up following run {} after {}s of errors",
                            self.run_id,
                            PATIENCE.as_secs()
                        )));
                    }
                    tokio::time::sleep(POLL * 4).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.print_new(&run);
            let status = str_of(&run, "status");
            if status != "active" {
                self.print_end(&run);
                return Ok(status == "completed");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn print_new(&mut self, run: &Value) {
        if !self.headed && !self.json {
            println!(
                "run {}  PHLO {} revision {}  trigger {}",
                self.run_id,
                str_of(run, "phlo_id"),
                run["revision"],
                str_of(run, "trigger")
            );
        }
        self.headed = true;
        for step in run["steps"].as_array().into_iter().flatten() {
            let key = (
                step["token"].as_i64().unwrap_or_default(),
                step["seq"].as_i64().unwrap_or_default(),
            );
            if self.seen.insert(key) {
                self.print_step(step);
            }
        }
    }

    fn print_step(&mut self, step: &Value) {
        if self.json {
            let mut line = json!({ "type": "step", "run_id": self.run_id });
            if let (Some(line), Some(step)) = (line.as_object_mut(), step.as_object()) {
                line.extend(step.clone());
            }
            json_line(&line);
            return;
        }
        let result = match str_of(step, "outcome") {
            "done" => str_of(step, "state").to_owned(),
            "wait" => "waiting".to_owned(),
            "stop" => "stopped".to_owned(),
            other => other.to_owned(),
        };
        println!(
            "  {} [{}.{}] {} ({}) {} -> {}",
            clock(str_of(step, "finished_on")),
            step["token"],
            step["seq"],
            str_of(step, "node_name"),
            str_of(step, "node_type"),
            str_of(step, "event"),
            result
        );
        let vars = step["variables"].as_object().cloned().unwrap_or_default();
        let token = step["token"].as_i64().unwrap_or_default();
        let before = self
            .last
            .get(&token)
            .filter(|(node, _)| *node == step["node_id"])
            .map(|(_, vars)| vars);
        let mut unchanged = 0;
        for (name, value) in &vars {
            if before.is_some_and(|b| b.get(name) == Some(value)) {
                unchanged += 1;
            } else {
                println!("      {name} = {value}");
            }
        }
        if unchanged > 0 {
            println!("      ({unchanged} unchanged)");
        }
        self.last.insert(token, (step["node_id"].clone(), vars));
        if let Some(error) = step["error"].as_str() {
            println!("      error: {error}");
        }
    }

    fn print_end(&self, run: &Value) {
        if self.json {
            json_line(&json!({
                "type": "end",
                "run_id": self.run_id,
                "status": run["status"],
                "error": run["error"],
                "step_count": run["step_count"],
                "ended_on": run["ended_on"],
            }));
            return;
        }
        let mut line = format!(
            "run {} {} after {} steps",
            self.run_id,
            str_of(run, "status"),
            run["step_count"]
        );
        if let Some(error) = run["error"].as_str() {
            line.push_str(&format!(": {error}"));
        }
        println!("{line}");
    }
}
