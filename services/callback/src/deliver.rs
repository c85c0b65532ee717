//! One attempt of one delivery: claim it in Postgres, send it outside any transaction, record the
//! result and decide what comes next.

use std::time::{Duration, Instant};

use tracing::Instrument;

use bytes::Bytes;
use chrono::Utc;
use phlo_bus::Outcome;
use phlo_egress::{Egress, EgressError, HeaderMap, HeaderName, HeaderValue, Method, Outbound};
use phlo_runtime::callbacks::{new_secret, signature_header};
use phlo_store::Pool;
use phlo_store::callbacks::{self, Claim, Claimed, Delivery, Finish, Secrets};
use serde_json::Value;
use url::Url;
use uuid::Uuid;

use crate::batch::{Batcher, Failure};
use crate::schedule::{Schedule, Verdict, jitter, retry_after, verdict};

/// A message arriving this much before its attempt is due still counts as due (clock differences
/// between NATS and Postgres).
pub const DUE_SLACK_SECS: f64 = 1.0;
/// A message for an attempt due within this long is NAK'd until then rather than dropped: it may be the
/// one that brings the attempt. Further off, another message (or the scheduler) will.
const EARLY_WAIT: Duration = Duration::from_secs(5);
/// The lease of an attempt outlives its request timeout by this much.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// How much of the response body the log keeps.
const EXCERPT_CHARS: usize = 1024;

/// What the delivery needs to know; shared by every handler of the process.
#[derive(Debug, Clone)]
pub struct Settings {
    pub schedule: Schedule,
    /// ± this fraction of each delay (0.2 = ±20 %).
    pub jitter: f64,
    /// Total time of one attempt (connect, send, read).
    pub timeout: Duration,
    pub max_response_bytes: u64,
    /// Retry delays up to this long are a NAK with that delay; longer ones park the delivery in Postgres.
    pub nak_max: Duration,
    /// `Retry-After` is honoured up to this long.
    pub max_retry_after: Duration,
}

impl Settings {
    /// How long a claimed attempt is ours: its request's timeout and a margin.
    pub fn lease(&self) -> Duration {
        self.timeout + LEASE_MARGIN
    }
}

/// The delivery machinery of one process: one pool, one guarded HTTP client, one [`Batcher`].
#[derive(Clone)]
pub struct Deliverer {
    pub pool: Pool,
    /// Claims and records with the other attempts in flight; started with [`Settings::lease`] and
    /// [`DUE_SLACK_SECS`].
    pub batcher: Batcher,
    pub egress: Egress,
    /// Opens the accounts' sealed signing secrets.
    pub secret_keys: phlo_store::sealing::Keyring,
    pub settings: std::sync::Arc<Settings>,
}

/// How an attempt went, before it is judged.
struct Sent {
    status: Option<u16>,
    retry_after: Option<Duration>,
    error: Option<String>,
    /// No response and none will ever come for this URL (refused by the guard, invalid).
    permanent: bool,
    response: Option<String>,
    latency: Duration,
}

impl Deliverer {
    /// Handles one message for `delivery_id`: what to tell NATS. `Err` only for database trouble.
    pub async fn handle(&self, delivery_id: Uuid) -> Result<Outcome, Failure> {
        let keys = &self.secret_keys;
        // No transaction is held across the request.
        let claim = match self.batcher.claim(delivery_id).await? {
            Some(claim) => claim,
            None => {
                callbacks::explain_claim(
                    &self.pool,
                    keys,
                    delivery_id,
                    self.settings.lease().as_secs_f64(),
                    DUE_SLACK_SECS,
                )
                .await?
            }
        };
        let Claimed { delivery, secrets } = match claim {
            Claim::Claimed(c) => *c,
            Claim::Missing => {
                tracing::warn!(%delivery_id, "callback message for an unknown delivery; dropped");
                return Ok(Outcome::Ack);
            }
            Claim::Finished | Claim::Disabled(_) => return Ok(Outcome::Ack),
            // A duplicate message while an attempt runs: look again when its lease ends (by then it has
            // finished, or its process died and this message takes over).
            Claim::Leased(left) => return Ok(Outcome::Retry(left + Duration::from_secs(1))),
            Claim::NotDue(left) if left <= EARLY_WAIT => return Ok(Outcome::Retry(left)),
            // Another message (or the scheduler) brings the attempt when it is due.
            Claim::NotDue(_) => return Ok(Outcome::Ack),
        };
        let secrets = match secrets {
            Secrets { current: None, .. } => {
                // Not held during the request: the pool's connections are for the claims and results
                // of every attempt in flight.
                let mut conn = self.pool.acquire().await?;
                callbacks::ensure_secret(&mut conn, keys, delivery.account_id, &new_secret())
                    .await?
            }
            found => Some(found),
        };
        let secrets: Vec<String> = secrets
            .map(|s| s.current.into_iter().chain(s.previous).collect())
            .unwrap_or_default();

        let span = attempt_span(&delivery);
        let sent = self
            .send(&delivery, &secrets)
            .instrument(span.clone())
            .await;
        let (finish, outcome) = self.judge(&delivery, sent);
        span.record("outcome", finish.outcome);
        if let Some(code) = finish.status_code {
            span.record("http.status_code", code);
        }
        log(&delivery, &finish);
        // `phlo_callback_attempts_total{outcome}`: delivered, retry, failed, dead or disabled.
        metrics::counter!("phlo_callback_attempts_total", "outcome" => finish.outcome).increment(1);
        // The result must be recorded; a short database hiccup should not cost a duplicate attempt.
        let mut tries = 0;
        loop {
            // With the results of the other attempts ending now: one statement, one commit.
            match self
                .batcher
                .finish(delivery.id, delivery.attempts, finish.clone())
                .await
            {
                Ok(_) => return Ok(outcome),
                Err(e) if tries < 3 && e.is_transient() => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                }
                // The lease lapses, and the scheduler re-drives the delivery (a duplicate attempt with
                // the same webhook-id; this one shows as interrupted).
                Err(e) => return Err(e),
            }
        }
    }

    async fn send(&self, d: &Delivery, secrets: &[String]) -> Sent {
        let started = Instant::now();
        match self.try_send(d, secrets).await {
            Ok(response) => {
                let excerpt = excerpt(&response.body);
                Sent {
                    status: Some(response.status),
                    retry_after: response
                        .header("retry-after")
                        .and_then(|v| retry_after(v, Utc::now())),
                    error: None,
                    permanent: false,
                    response: (!excerpt.is_empty()).then_some(excerpt),
                    latency: response.elapsed,
                }
            }
            Err(e) => Sent {
                status: None,
                retry_after: None,
                permanent: matches!(e, EgressError::Refused(_) | EgressError::Invalid(_)),
                error: Some(e.to_string()),
                response: None,
                latency: started.elapsed(),
            },
        }
    }

    async fn try_send(
        &self,
        d: &Delivery,
        secrets: &[String],
    ) -> Result<phlo_egress::Response, EgressError> {
        let mut url = Url::parse(&d.url)
            .map_err(|e| EgressError::Invalid(format!("the URL is not valid: {e}")))?;
        // Refuse before anything else, so the log shows the guard's reason.
        self.egress.check_url(&url)?;
        let timestamp = Utc::now().timestamp();
        let (method, body, signed) = if d.method == "GET" {
            let payload: Value = serde_json::from_str(&d.payload).unwrap_or(Value::Null);
            let mut pairs = Vec::new();
            flatten("", &payload["data"], &mut pairs);
            url.query_pairs_mut().extend_pairs(&pairs);
            let query = url.query().unwrap_or_default().as_bytes().to_vec();
            (Method::GET, None, query)
        } else {
            let bytes = Bytes::from(d.payload.clone());
            (
                Method::POST,
                Some(("application/json".to_owned(), bytes.clone())),
                bytes.to_vec(),
            )
        };
        let id = d.id.to_string();
        let secret_refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let signature = signature_header(&secret_refs, &id, timestamp, &signed);
        let mut headers = HeaderMap::new();
        let mut put = |name: &'static str, value: &str| -> Result<(), EgressError> {
            let value = HeaderValue::from_str(value)
                .map_err(|_| EgressError::Invalid(format!("bad {name} header")))?;
            headers.insert(HeaderName::from_static(name), value);
            Ok(())
        };
        put("webhook-id", &id)?;
        put("webhook-timestamp", &timestamp.to_string())?;
        put("webhook-signature", &signature)?;
        // The run's trace continues in the receiver (W3C trace context): the attempt's span.
        if let Some(traceparent) = phlo_bus::trace::current_traceparent() {
            put("traceparent", &traceparent)?;
        }
        self.egress
            .send(Outbound {
                method,
                url,
                headers,
                body,
                timeout: self.settings.timeout,
                max_response_bytes: self.settings.max_response_bytes,
                // A redirect is a failed delivery (Standard Webhooks): never followed.
                follow_redirects: false,
            })
            .await
    }

    /// The log entry and the delivery's next state, and what to tell NATS.
    fn judge(&self, d: &Delivery, sent: Sent) -> (Finish, Outcome) {
        let s = &self.settings;
        let latency_ms = i32::try_from(sent.latency.as_millis()).unwrap_or(i32::MAX);
        let verdict = match sent.status {
            Some(code) => verdict(code),
            None if sent.permanent => Verdict::Fail,
            None => Verdict::Retry,
        };
        let error = match (sent.status, sent.error) {
            (_, Some(e)) => Some(e),
            (Some(code), None) => describe(code),
            (None, None) => None,
        };
        let mut finish = Finish {
            outcome: "delivered",
            status: "delivered",
            status_code: sent.status.map(i32::from),
            latency_ms: Some(latency_ms),
            error,
            response: sent.response,
            retry_in_secs: 0.0,
            queued: false,
        };
        let mut outcome = Outcome::Ack;
        match verdict {
            Verdict::Delivered => {}
            Verdict::Fail => (finish.outcome, finish.status) = ("failed", "failed"),
            Verdict::Disable => (finish.outcome, finish.status) = ("disabled", "failed"),
            Verdict::Retry => {
                let n = usize::try_from(d.attempts - d.round_start).unwrap_or(1);
                match s.schedule.after(n) {
                    None => (finish.outcome, finish.status) = ("dead", "dead"),
                    Some(delay) => {
                        let mut delay = jitter(delay, s.jitter);
                        if let Some(asked) = sent.retry_after {
                            delay = delay.max(asked.min(s.max_retry_after));
                        }
                        (finish.outcome, finish.status) = ("retry", "pending");
                        finish.retry_in_secs = delay.as_secs_f64();
                        finish.queued = delay <= s.nak_max;
                        if finish.queued {
                            outcome = Outcome::Retry(delay);
                        }
                    }
                }
            }
        }
        (finish, outcome)
    }
}

/// The span of one attempt, in the trace of the step that recorded the delivery. The message that
/// brought the attempt normally carries that step's context already (the first attempt, NAK'd retries,
/// what the scheduler publishes); a redelivery through the API brings the API request's instead, and
/// the attempt still joins the run's trace.
fn attempt_span(d: &Delivery) -> tracing::Span {
    let span = tracing::info_span!(
        "phlo.callback.attempt",
        delivery_id = %d.id,
        run_id = %d.run_id,
        attempt = d.attempts,
        node_name = %d.node_name,
        event = %d.event,
        outcome = tracing::field::Empty,
        http.status_code = tracing::field::Empty,
    );
    let current = phlo_bus::trace::current_traceparent();
    if let Some(stored) = d.traceparent.as_deref()
        && trace_id(current.as_deref()) != trace_id(Some(stored))
    {
        phlo_bus::trace::set_remote_parent(&span, Some(stored));
    }
    span
}

/// The trace id of a `traceparent` (`00-<trace id>-<span id>-<flags>`).
fn trace_id(traceparent: Option<&str>) -> Option<&str> {
    traceparent?.split('-').nth(1)
}

/// What a non-2xx status means, for the log.
fn describe(code: u16) -> Option<String> {
    match code {
        200..=299 => None,
        300..=399 => Some(format!(
            "HTTP {code}: a redirect, which is not followed; answer 2xx at this URL"
        )),
        410 => Some(
            "HTTP 410 Gone: callbacks of this PHLO to this URL are disabled; redeliver through the API \
             to enable it again"
                .to_owned(),
        ),
        408 | 429 => Some(format!("HTTP {code}: will retry")),
        400..=499 => Some(format!(
            "HTTP {code}: the receiver rejected the callback; not retried"
        )),
        _ => Some(format!("HTTP {code}")),
    }
}

fn log(d: &Delivery, f: &Finish) {
    match f.outcome {
        "delivered" => {
            tracing::debug!(delivery_id = %d.id, attempt = d.attempts, "callback delivered")
        }
        _ => tracing::info!(
            delivery_id = %d.id,
            attempt = d.attempts,
            outcome = f.outcome,
            status_code = f.status_code,
            error = f.error.as_deref().unwrap_or_default(),
            retry_in_secs = f.retry_in_secs,
            "callback not delivered"
        ),
    }
}

/// The start of a response body as text, for the log. NUL becomes U+FFFD: Postgres text cannot hold it.
fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| {
            if c == '\0' {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A GET callback's query: the `data` object flattened, nested keys joined with `.` and list items by
/// index (`call.from`, `items.0.sku`); `null`, empty lists and empty objects become empty values.
pub fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                flatten(&key(k), v, out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                flatten(&key(&i.to_string()), v, out);
            }
        }
        _ if prefix.is_empty() => {}
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        Value::Null | Value::Object(_) | Value::Array(_) => {
            out.push((prefix.to_owned(), String::new()))
        }
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattens_nested_data_for_get() {
        let mut pairs = Vec::new();
        flatten(
            "",
            &json!({ "run_id": "r", "count": 3, "ok": true, "call": { "from": "+1", "leg": null },
                     "items": [{ "sku": "a" }, 2], "empty": {} }),
            &mut pairs,
        );
        let shown: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            shown,
            [
                "run_id=r",
                "count=3",
                "ok=true",
                "call.from=+1",
                "call.leg=",
                "items.0.sku=a",
                "items.1=2",
                "empty="
            ]
        );
    }

    #[test]
    fn describes_statuses() {
        assert_eq!(describe(204), None);
        assert!(describe(302).unwrap().contains("not followed"));
        assert!(describe(404).unwrap().contains("not retried"));
        assert!(describe(410).unwrap().contains("disabled"));
        assert_eq!(describe(503).unwrap(), "HTTP 503");
    }
}
