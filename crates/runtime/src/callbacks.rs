//! Event callbacks (DESIGN §7), the parts the worker, the gateway and the callback service share:
//!
//! - in the step's transaction, an [`Effect::Callback`](phlo_flow::effect::Effect::Callback) becomes a
//!   delivery row and an outbox message on the callback queue ([`Runtime::record_callback`]);
//! - the body every delivery carries ([`payload`]), in the Standard Webhooks shape
//!   `{type, timestamp, data}`;
//! - the accounts' signing secrets ([`new_secret`]) and the Standard Webhooks signature ([`sign`],
//!   [`signature_header`], [`verify`]);
//! - redelivery of a dead or failed delivery through the API ([`Runtime::redeliver_callback`]).
//!
//! The attempts themselves (HTTP, retries, the delivery log) are the callback service's
//! (`services/callback`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use phlo_bus::CallbackMessage;
use phlo_flow::effect::Callback;
use phlo_store::Conn;
use phlo_store::callbacks::{self, NewDelivery, Redeliver};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use uuid::Uuid;

use crate::outbox::Outbox;
use crate::{Runtime, RuntimeError};

/// How secrets are shown: `whsec_` + base64 of the key bytes (Standard Webhooks).
pub const SECRET_PREFIX: &str = "whsec_";

/// The fields every callback's `data` carries besides the node's variables. They win over a variable of
/// the same name (only room nodes have one, `event`, with the same value).
pub const METADATA_FIELDS: [&str; 8] = [
    "phlo_id",
    "run_id",
    "node_id",
    "node_name",
    "node_type",
    "event",
    "state",
    "timestamp",
];

/// A fresh signing secret: 32 random bytes (256 bits; the spec asks for 24 to 64), shown as
/// `whsec_<base64>`.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The HMAC key of a secret: the base64 after `whsec_`, decoded, as the spec says. A secret that is
/// not in that form (none that this runner generates) is used as its UTF-8 bytes.
pub fn secret_key(secret: &str) -> Vec<u8> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .unwrap_or_else(|_| secret.as_bytes().to_vec())
}

/// The Standard Webhooks v1 signature of one attempt: `v1,` + base64 of
/// HMAC-SHA256(key, `"{webhook_id}.{timestamp}.{body}"`), over the exact bytes sent (for a GET, the
/// query string).
pub fn sign(secret: &str, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = secret_key(secret);
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(&key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => return String::new(),
    };
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per secret, space-separated (the current secret first,
/// then the one before a rotation while it still signs).
pub fn signature_header(secrets: &[&str], webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| sign(s, webhook_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a receiver does: true when any `v1` signature of `header` matches `secret` (compared in constant
/// time). Checking the timestamp's age is the receiver's business too.
pub fn verify(secret: &str, webhook_id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let expected = sign(secret, webhook_id, timestamp, body);
    header.split(' ').any(|candidate| {
        candidate.len() == expected.len()
            && candidate
                .bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    })
}

/// The body of a callback: `{"type": "phlo.node.<event>", "timestamp": "<RFC 3339>", "data": {…}}`, where
/// `data` holds the [`METADATA_FIELDS`] and then the node's variables.
pub fn payload(cb: &Callback, at: DateTime<Utc>) -> Value {
    let timestamp = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut data = Map::new();
    data.insert("phlo_id".into(), json!(cb.phlo_id));
    data.insert("run_id".into(), json!(cb.run_id));
    data.insert("node_id".into(), json!(cb.node_id));
    data.insert("node_name".into(), json!(cb.node_name));
    data.insert("node_type".into(), json!(cb.node_type));
    data.insert("event".into(), json!(cb.event));
    data.insert("state".into(), json!(cb.state));
    data.insert("timestamp".into(), json!(timestamp));
    for (key, value) in &cb.variables {
        if !METADATA_FIELDS.contains(&key.as_str()) {
            data.insert(key.clone(), value.clone());
        }
    }
    json!({
        "type": format!("phlo.node.{}", cb.event),
        "timestamp": timestamp,
        "data": Value::Object(data),
    })
}

/// `POST` unless the node asked for `GET` (validation allows only those two, in any case).
fn method(cb: &Callback) -> &'static str {
    if cb.method.eq_ignore_ascii_case("GET") {
        "GET"
    } else {
        "POST"
    }
}

impl Runtime {
    /// In the step's transaction: records the delivery and queues its message. A URL a 410 disabled for
    /// the PHLO is not attempted: the delivery is recorded `failed` with the reason.
    pub(crate) async fn record_callback(
        &self,
        conn: &mut Conn,
        outbox: &mut Outbox,
        run_id: Uuid,
        cb: Callback,
    ) -> Result<(), RuntimeError> {
        // Steps are exactly-once (the step row's key), so a random id cannot be recorded twice.
        let id = Uuid::now_v7();
        let body = payload(&cb, Utc::now()).to_string();
        // Every attempt, however late, continues the trace of this step.
        let traceparent = phlo_bus::trace::current_traceparent();
        let skipped = callbacks::insert(
            conn,
            &NewDelivery {
                id,
                run_id,
                node_id: Uuid::parse_str(&cb.node_id).unwrap_or_default(),
                node_name: &cb.node_name,
                node_type: &cb.node_type,
                event: &cb.event,
                url: &cb.url,
                method: method(&cb),
                payload: &body,
                traceparent: traceparent.as_deref(),
            },
        )
        .await?;
        match skipped {
            Some(reason) => {
                // Not the URL: its query or userinfo may hold the receiver's credentials.
                tracing::info!(%run_id, delivery_id = %id, %reason, "callback not attempted");
                Ok(())
            }
            None => {
                let msg = CallbackMessage { delivery_id: id };
                outbox.callback(self, conn, &msg, msg.msg_id()).await
            }
        }
    }

    /// Puts a dead or failed delivery of the account back to pending (same id, so the same
    /// `webhook-id`) with a fresh retry schedule, and publishes it. A URL disabled by a 410 is enabled
    /// again for the PHLO: asking for the redelivery says the endpoint is back.
    pub async fn redeliver_callback(
        &self,
        account_id: Uuid,
        delivery_id: Uuid,
    ) -> Result<Redeliver, RuntimeError> {
        let mut tx = self.pool().begin().await?;
        let result = callbacks::redeliver(&mut tx, account_id, delivery_id).await?;
        let mut outbox = Outbox::default();
        if let Redeliver::Queued { redeliveries } = &result {
            let msg = CallbackMessage { delivery_id };
            let msg_id = format!("{}:redeliver:{redeliveries}", msg.msg_id());
            outbox.callback(self, &mut tx, &msg, msg_id).await?;
        }
        tx.commit().await?;
        self.flush(outbox).await;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callback() -> Callback {
        let mut variables = Map::new();
        variables.insert("count".into(), json!(3));
        variables.insert("event".into(), json!("spoofed"));
        variables.insert("nested".into(), json!({ "a": [1, 2] }));
        Callback {
            url: "https://example.com/hook".into(),
            method: "post".into(),
            event: "count_reached".into(),
            phlo_id: "p".into(),
            run_id: "r".into(),
            node_id: "n".into(),
            node_name: "Counter_1".into(),
            node_type: "counter".into(),
            state: Some("count_reached".into()),
            variables,
        }
    }

    #[test]
    fn the_payload_is_standard_webhooks_shaped_with_metadata_first() {
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z")
            .unwrap()
            .with_timezone(&Utc);
        let body = payload(&callback(), at);
        assert_eq!(
            body.to_string(),
            r#"{"type":"phlo.node.count_reached","timestamp":"2026-01-02T03:04:05.678Z","data":{"phlo_id":"p","run_id":"r","node_id":"n","node_name":"Counter_1","node_type":"counter","event":"count_reached","state":"count_reached","timestamp":"2026-01-02T03:04:05.678Z","count":3,"nested":{"a":[1,2]}}}"#
        );
        assert_eq!(method(&callback()), "POST");
    }

    /// The example of the Standard Webhooks specification (and of its reference libraries).
    #[test]
    fn signs_the_specification_example() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let signature = sign(secret, id, 1_614_265_330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(verify(secret, id, 1_614_265_330, body, &signature));
    }

    #[test]
    fn secrets_are_whsec_base64_of_32_bytes_and_verify_round_trips() {
        let a = new_secret();
        let b = new_secret();
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(secret_key(&a).len(), 32);
        let header = signature_header(&[&a, &b], "id1", 42, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&a, "id1", 42, b"{}", &header));
        assert!(verify(&b, "id1", 42, b"{}", &header));
        // Any change fails: body, id, timestamp, secret.
        assert!(!verify(&a, "id1", 42, b"{ }", &header));
        assert!(!verify(&a, "id2", 42, b"{}", &header));
        assert!(!verify(&a, "id1", 43, b"{}", &header));
        assert!(!verify(&new_secret(), "id1", 42, b"{}", &header));
    }
}
