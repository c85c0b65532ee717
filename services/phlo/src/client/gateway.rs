//! The gateway's JSON API, as an account holder.

use phlo_flow::Problem;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{Settings, base, http};

/// How many times one request is retried after a 429 (the account's rate limit), and the longest
/// `Retry-After` waited out; past either, the 429 is the answer.
const RATE_LIMIT_RETRIES: u32 = 5;
const MAX_RETRY_AFTER_SECS: u64 = 30;

/// A request the gateway answered with an error status: its `error` message, and the problems of a
/// rejected PHLO definition.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub problems: Vec<Problem>,
    hint: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the gateway answered {}: {}",
            self.status.as_u16(),
            self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

pub struct Gateway {
    http: reqwest::Client,
    base: String,
    credentials: Option<(String, String)>,
}

impl Gateway {
    pub fn new(settings: &Settings) -> anyhow::Result<Gateway> {
        let credentials = match (&settings.auth_id, &settings.auth_token) {
            (Some(id), Some(token)) if !id.is_empty() && !token.is_empty() => {
                Some((id.clone(), token.clone()))
            }
            _ => None,
        };
        Ok(Gateway {
            http: http()?,
            base: base(&settings.url),
            credentials,
        })
    }

    /// The base URL, e.g. for the simulator to post webhooks to.
    pub fn url(&self) -> &str {
        &self.base
    }

    pub fn has_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    fn credentials(&self) -> anyhow::Result<&(String, String)> {
        self.credentials.as_ref().ok_or_else(|| {
            anyhow::anyhow!(
                "no credentials: pass --auth-id and --auth-token, or set PHLO_AUTH_ID and \
                 PHLO_AUTH_TOKEN (an account is created with POST /v1/accounts; see docs/api.md)"
            )
        })
    }

    pub fn auth_id(&self) -> anyhow::Result<&str> {
        Ok(&self.credentials()?.0)
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        self.send(Method::GET, path, query, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(Method::POST, path, &[], Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(Method::PUT, path, &[], Some(body)).await
    }

    /// One request; a non-2xx answer becomes an [`ApiError`] (inside the `anyhow::Error`, so that
    /// callers that care, such as `apply`, can downcast it), a transport failure a plain error that
    /// names the URL. A 429 did nothing on the server, so it is retried after its `Retry-After`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let (id, token) = self.credentials()?;
        let mut refused = 0;
        loop {
            let mut request = self
                .http
                .request(method.clone(), format!("{}{path}", self.base))
                .basic_auth(id, Some(token))
                .query(query);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|e| unreachable(&self.base, e))?;
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS && refused < RATE_LIMIT_RETRIES {
                refused += 1;
                let wait = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(1)
                    .clamp(1, MAX_RETRY_AFTER_SECS);
                tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                continue;
            }
            let text = response
                .text()
                .await
                .map_err(|e| unreachable(&self.base, e))?;
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if status.is_success() {
                return Ok(value);
            }
            return Err(self.api_error(status, value).into());
        }
    }

    fn api_error(&self, status: StatusCode, body: Value) -> ApiError {
        let message = body
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| match &body {
                Value::String(s) if !s.is_empty() => s.clone(),
                _ => status
                    .canonical_reason()
                    .unwrap_or("unexpected answer")
                    .to_owned(),
            });
        let problems = body
            .get("problems")
            .and_then(|p| serde_json::from_value(p.clone()).ok())
            .unwrap_or_default();
        let hint = match status {
            StatusCode::UNAUTHORIZED => Some(format!(
                "the gateway at {} does not know these credentials: check --auth-id/--auth-token \
                 (or PHLO_AUTH_ID/PHLO_AUTH_TOKEN); a token is shown only once, when its account is created",
                self.base
            )),
            StatusCode::NOT_FOUND => Some(
                "check the id; resources of other accounts are not visible to this one".to_owned(),
            ),
            StatusCode::TOO_MANY_REQUESTS => Some(
                "the account is over its rate limit (see docs/limits.md); retry later".to_owned(),
            ),
            StatusCode::SERVICE_UNAVAILABLE => {
                Some("the gateway cannot reach Postgres or NATS; retry later".to_owned())
            }
            _ => None,
        };
        ApiError {
            status,
            message,
            problems,
            hint,
        }
    }
}

/// The gateway could not be asked at all: not listening, a wrong URL, or too slow.
#[derive(Debug)]
pub struct Unreachable {
    base: String,
    source: reqwest::Error,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.source.is_timeout() {
            "did not answer in time"
        } else {
            "cannot be reached"
        };
        write!(
            f,
            "the gateway at {} {what} ({}): is it running? Set --url or PHLO_URL to its address",
            self.base,
            super::root_cause(&self.source)
        )
    }
}

// The cause is in the message already (its innermost part: `Connection refused`), so that `{:#}`
// does not repeat reqwest's whole chain.
impl std::error::Error for Unreachable {}

fn unreachable(base: &str, source: reqwest::Error) -> Unreachable {
    Unreachable {
        base: base.to_owned(),
        source,
    }
}

/// Whether an error is worth retrying while following: the gateway restarting, or its database or
/// queue briefly away, the account over its rate limit. Anything else the gateway refused (4xx) is
/// not.
pub fn is_transient(e: &anyhow::Error) -> bool {
    match e.downcast_ref::<ApiError>() {
        Some(api) => api.status.is_server_error() || api.status == StatusCode::TOO_MANY_REQUESTS,
        None => e.downcast_ref::<Unreachable>().is_some(),
    }
}
