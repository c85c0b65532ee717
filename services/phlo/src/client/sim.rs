//! The carrier simulator's control API (`/sim`: scripts, inbound calls and messages, what happened).
//! It has no authentication: it is for test and dev networks only.

use reqwest::Method;
use serde_json::Value;

use super::{Settings, base, http, root_cause};

pub struct Sim {
    http: reqwest::Client,
    base: String,
}

impl Sim {
    pub fn new(settings: &Settings) -> anyhow::Result<Sim> {
        Ok(Sim {
            http: http()?,
            base: base(settings.sim_url()),
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(Method::PUT, path, Some(body)).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        let unreachable = |e: reqwest::Error| {
            anyhow::anyhow!(
                "the carrier simulator at {} cannot be reached ({}): start it with `phlo carrier-sim`, \
                 or set --sim-url or PHLO_SIM_URL to its address",
                self.base,
                root_cause(&e)
            )
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(value);
        }
        let message = value
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| value.to_string());
        anyhow::bail!(
            "the carrier simulator answered {} to {path}: {message}",
            status.as_u16()
        )
    }
}
