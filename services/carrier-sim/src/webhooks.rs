//! Webhook delivery: every request the simulated carrier makes to the application (answer and
//! action URLs, status callbacks), form-encoded and signed like Plivo's, each with a timeout, each
//! kept in a bounded log so a test or a developer can see what was sent and what came back.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::signature;

/// Parameters of a webhook, in the order they were added (the signature sorts them anyway).
pub type Params = Vec<(String, String)>;

/// The largest response body read from an application: Plivo takes XML up to 100 KB, and anything
/// beyond this is not XML anyone meant to send.
const BODY_LIMIT: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
}

impl Method {
    /// Plivo's `method` attributes default to POST; anything but GET means POST.
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some(m) if m.trim().eq_ignore_ascii_case("GET") => Self::Get,
            _ => Self::Post,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// A URL to request, its method and its parameters.
#[derive(Debug, Clone)]
pub struct Fetch {
    pub url: String,
    pub method: Method,
    pub params: Params,
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("not an http(s) URL: {0:?}")]
    BadUrl(String),
    #[error("request failed: {0}")]
    Transport(String),
    #[error("response body larger than {BODY_LIMIT} bytes")]
    TooLarge,
}

/// One request the simulator made, for `GET /sim/webhooks`.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookRecord {
    pub at: DateTime<Utc>,
    pub method: Method,
    pub url: String,
    pub params: Params,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub signature_v3: String,
    pub nonce: String,
}

#[derive(Debug)]
pub struct Webhooks {
    client: reqwest::Client,
    auth_token: String,
    log: Mutex<VecDeque<WebhookRecord>>,
    cap: usize,
}

impl Webhooks {
    pub fn new(auth_token: &str, timeout: Duration, cap: usize) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent("PlivoHTTP/1.0 (phlo-carrier-sim)")
            .build()?;
        Ok(Self {
            client,
            auth_token: auth_token.to_owned(),
            log: Mutex::new(VecDeque::new()),
            cap,
        })
    }

    /// Sends one signed webhook and returns the application's reply, whatever its status; only a
    /// failure to get any reply is an error. Both outcomes are logged.
    pub async fn send(&self, fetch: &Fetch) -> Result<Reply, WebhookError> {
        let nonce = new_nonce();
        let mut record = WebhookRecord {
            at: Utc::now(),
            method: fetch.method,
            url: fetch.url.clone(),
            params: fetch.params.clone(),
            status: None,
            error: None,
            signature_v3: String::new(),
            nonce: nonce.clone(),
        };
        let result = self.request(fetch, &nonce, &mut record).await;
        match &result {
            Ok(reply) => record.status = Some(reply.status),
            Err(e) => record.error = Some(e.to_string()),
        }
        if let Err(e) = &result {
            tracing::warn!(url = %fetch.url, error = %e, "webhook failed");
        }
        self.remember(record);
        result
    }

    async fn request(
        &self,
        fetch: &Fetch,
        nonce: &str,
        record: &mut WebhookRecord,
    ) -> Result<Reply, WebhookError> {
        // Plivo signs the URL as the application configured it, so the signature covers the
        // original string (plus the query we add for a GET), not the parser's normalised form.
        let signed_url = match fetch.method {
            Method::Get if !fetch.params.is_empty() => {
                let query = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&fetch.params)
                    .finish();
                let sep = if fetch.url.contains('?') { '&' } else { '?' };
                format!("{}{sep}{query}", fetch.url)
            }
            _ => fetch.url.clone(),
        };
        let url = url::Url::parse(&signed_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| WebhookError::BadUrl(fetch.url.clone()))?;
        let body_params: &[(String, String)] = match fetch.method {
            Method::Get => &[],
            Method::Post => &fetch.params,
        };
        let signature = signature::sign_v3(
            &self.auth_token,
            fetch.method.as_str(),
            &signed_url,
            body_params,
            nonce,
        );
        record.signature_v3.clone_from(&signature);
        let builder = match fetch.method {
            Method::Get => self.client.get(url),
            Method::Post => self.client.post(url).form(&fetch.params),
        };
        let v2 = signature::sign_v2(&self.auth_token, &signed_url, nonce);
        let mut response = builder
            .header("X-Plivo-Signature-V3", signature)
            .header("X-Plivo-Signature-V3-Nonce", nonce)
            .header("X-Plivo-Signature-V2", v2)
            .header("X-Plivo-Signature-V2-Nonce", nonce)
            .send()
            .await
            .map_err(|e| WebhookError::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| WebhookError::Transport(e.to_string()))?
        {
            if body.len() + chunk.len() > BODY_LIMIT {
                return Err(WebhookError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    fn remember(&self, record: WebhookRecord) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= self.cap {
            log.pop_front();
        }
        log.push_back(record);
    }

    pub fn records(&self) -> Vec<WebhookRecord> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.iter().cloned().collect()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Plivo's nonces are long decimal strings; 20 random digits.
fn new_nonce() -> String {
    (0..20)
        .map(|_| char::from(b'0' + rand::random_range(0..10u8)))
        .collect()
}
