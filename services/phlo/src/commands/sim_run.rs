//! What `phlo call` and `phlo sms` share: attaching the called number to a PHLO, the URLs the
//! simulator posts to, and finding the run a call or message started.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::phlos;
use super::print::str_of;
use crate::client::Gateway;

/// How long a run may take to appear after its call or message reached the gateway.
const RUN_PATIENCE: Duration = Duration::from_secs(15);

/// Flags of both commands.
#[derive(clap::Args)]
pub struct Routing {
    /// First attach the called number to this PHLO (its id or name), so that the call or message
    /// starts it.
    #[arg(long)]
    pub phlo: Option<String>,
    /// The gateway's URL as the simulator reaches it, when it differs from --url (containers).
    #[arg(long)]
    pub app_url: Option<String>,
}

impl Routing {
    /// Attaches `number` when `--phlo` asks for it; returns the base URL the simulator posts to.
    pub async fn prepare(&self, gateway: &Gateway, number: &str) -> anyhow::Result<String> {
        if let Some(phlo) = &self.phlo {
            let phlo_id = phlos::resolve(gateway, phlo).await?;
            gateway
                .put(
                    &format!("/v1/numbers/{number}"),
                    &json!({ "phlo_id": phlo_id }),
                )
                .await?;
        }
        Ok(self
            .app_url
            .as_deref()
            .unwrap_or(gateway.url())
            .trim_end_matches('/')
            .to_owned())
    }
}

/// The run whose trigger names `uuid` (a call or message uuid), once it exists.
pub async fn run_of(
    gateway: &Gateway,
    trigger: &str,
    uuid: &str,
) -> anyhow::Result<Option<String>> {
    let deadline = Instant::now() + RUN_PATIENCE;
    loop {
        let query = [
            ("trigger", trigger.to_owned()),
            ("q", uuid.to_owned()),
            ("limit", "1".to_owned()),
        ];
        let page = gateway.get("/v1/runs", &query).await?;
        if let Some(run) = page["objects"].get(0) {
            return Ok(Some(str_of(run, "run_id").to_owned()));
        }
        if Instant::now() > deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The run once it has ended (or as it is after `patience`).
pub async fn ended_run(
    gateway: &Gateway,
    run_id: &str,
    patience: Duration,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + patience;
    loop {
        let run = gateway.get(&format!("/v1/runs/{run_id}"), &[]).await?;
        if run["status"] != "active" || Instant::now() > deadline {
            return Ok(run);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Numbers compare without a leading `+`, as the simulator reports them either way.
pub fn same_number(a: &str, b: &str) -> bool {
    a.trim().trim_start_matches('+') == b.trim().trim_start_matches('+')
}
