//! [`Carrier`] against Plivo's REST API (`/v1/Account/{auth_id}/...`, Basic auth, JSON bodies, trailing
//! slashes), with the request bodies the official Python SDK sends. Any Plivo-compatible server works:
//! point `base_url` at it (the carrier simulator, a test server).

use futures::future::BoxFuture;
use reqwest::Method;
use serde_json::{Value, json};
use url::Url;

mod body;
mod config;

pub use config::{DEFAULT_BASE_URL, PlivoConfig};

use crate::carrier::{
    AddParticipant, CallRequest, Carrier, CarrierError, MemberAction, OutboundCall,
    OutboundMessage, ParticipantAdded,
};
use body::{call_body, message_body, participant_body};

/// Largest response body read; the rest is dropped.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct PlivoCarrier {
    http: reqwest::Client,
    /// `{base_url}/v1/Account/{auth_id}` without trailing slash.
    account: Url,
    config: PlivoConfig,
}

impl PlivoCarrier {
    pub fn new(config: PlivoConfig) -> Result<Self, CarrierError> {
        let bad = |m: String| CarrierError::Config(m);
        let mut account = Url::parse(&config.base_url)
            .map_err(|e| bad(format!("base_url {:?}: {e}", config.base_url)))?;
        if !matches!(account.scheme(), "http" | "https") || config.auth_id.is_empty() {
            return Err(bad("base_url must be http(s) and auth_id not empty".into()));
        }
        account
            .path_segments_mut()
            .map_err(|()| bad("base_url cannot have a path".into()))?
            .pop_if_empty()
            .extend(["v1", "Account", config.auth_id.as_str()]);
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("phlo-runner/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            account,
            config,
        })
    }

    /// `{account}/{segments...}/`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.account.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.extend(segments).push("");
        }
        url
    }

    /// Sends one request; a 2xx answers its JSON body (`Null` when empty).
    async fn call(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<Value>,
    ) -> Result<Value, CarrierError> {
        let url = self.url(segments);
        tracing::debug!(%method, path = url.path(), "carrier API request");
        let mut request = self
            .http
            .request(method, url)
            .basic_auth(&self.config.auth_id, Some(&self.config.auth_token));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let unavailable = |e: reqwest::Error| CarrierError::Unavailable {
            status: None,
            message: error_chain(&e),
        };
        let mut response = request.send().await.map_err(unavailable)?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
            let room = MAX_RESPONSE_BYTES - bytes.len();
            bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if bytes.len() == MAX_RESPONSE_BYTES {
                break;
            }
        }
        let parsed = (!bytes.iter().all(u8::is_ascii_whitespace))
            .then(|| serde_json::from_slice::<Value>(&bytes));
        if (200..300).contains(&status) {
            return match parsed {
                None => Ok(Value::Null),
                Some(Ok(v)) => Ok(v),
                Some(Err(e)) => Err(CarrierError::InvalidResponse(format!(
                    "status {status} with a body that is not JSON: {e}"
                ))),
            };
        }
        let message = match parsed {
            Some(Ok(v)) => match (&v["error"], &v["message"]) {
                (Value::String(e), _) | (Value::Null, Value::String(e)) => e.clone(),
                (Value::Null, _) => v.to_string(),
                (other, _) => other.to_string(),
            },
            _ if bytes.is_empty() => format!("HTTP {status}"),
            _ => String::from_utf8_lossy(&bytes).chars().take(300).collect(),
        };
        Err(match status {
            408 | 429 | 500.. => CarrierError::Unavailable {
                status: Some(status),
                message,
            },
            _ => CarrierError::Rejected { status, message },
        })
    }
}

fn string_field(v: &Value, key: &str) -> Option<String> {
    match &v[key] {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => items.first().and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

impl Carrier for PlivoCarrier {
    fn place_call(&self, call: OutboundCall) -> BoxFuture<'_, Result<CallRequest, CarrierError>> {
        Box::pin(async move {
            let v = self
                .call(Method::POST, &["Call"], Some(call_body(call)))
                .await?;
            let request_uuid = string_field(&v, "request_uuid")
                .ok_or_else(|| CarrierError::InvalidResponse(format!("no request_uuid in {v}")))?;
            Ok(CallRequest { request_uuid })
        })
    }

    fn send_message(
        &self,
        message: OutboundMessage,
    ) -> BoxFuture<'_, Result<Vec<String>, CarrierError>> {
        Box::pin(async move {
            let body = message_body(message);
            let v = self.call(Method::POST, &["Message"], Some(body)).await?;
            let uuids: Option<Vec<String>> = v["message_uuid"].as_array().map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            });
            match uuids {
                Some(uuids) if !uuids.is_empty() => Ok(uuids),
                _ => Err(CarrierError::InvalidResponse(format!(
                    "no message_uuid in {v}"
                ))),
            }
        })
    }

    fn hangup_call<'a>(&'a self, call_uuid: &'a str) -> BoxFuture<'a, Result<(), CarrierError>> {
        Box::pin(async move {
            self.call(Method::DELETE, &["Call", call_uuid], None)
                .await?;
            Ok(())
        })
    }

    fn transfer_call<'a>(
        &'a self,
        call_uuid: &'a str,
        aleg_url: &'a str,
    ) -> BoxFuture<'a, Result<(), CarrierError>> {
        Box::pin(async move {
            let body = json!({ "legs": "aleg", "aleg_url": aleg_url, "aleg_method": "POST" });
            self.call(Method::POST, &["Call", call_uuid], Some(body))
                .await?;
            Ok(())
        })
    }

    fn record_call<'a>(
        &'a self,
        call_uuid: &'a str,
        callback_url: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), CarrierError>> {
        Box::pin(async move {
            let mut body = json!({ "file_format": "mp3" });
            if let Some(url) = callback_url {
                body["callback_url"] = json!(url);
                body["callback_method"] = json!("POST");
            }
            self.call(Method::POST, &["Call", call_uuid, "Record"], Some(body))
                .await?;
            Ok(())
        })
    }

    fn mpc_add_participant<'a>(
        &'a self,
        mpc_name: &'a str,
        participant: AddParticipant,
    ) -> BoxFuture<'a, Result<ParticipantAdded, CarrierError>> {
        Box::pin(async move {
            let mpc = format!("name_{mpc_name}");
            let body = participant_body(participant);
            let path = ["MultiPartyCall", mpc.as_str(), "Participant"];
            let v = self.call(Method::POST, &path, Some(body)).await?;
            let calls = v["calls"].as_array().into_iter().flatten();
            Ok(ParticipantAdded {
                request_uuid: string_field(&v, "request_uuid"),
                calls: calls
                    .filter_map(|c| Some((string_field(c, "to")?, string_field(c, "call_uuid")?)))
                    .collect(),
            })
        })
    }

    fn mpc_member<'a>(
        &'a self,
        mpc_name: &'a str,
        member_id: &'a str,
        action: MemberAction,
    ) -> BoxFuture<'a, Result<(), CarrierError>> {
        Box::pin(async move {
            let mpc = format!("name_{mpc_name}");
            let path = ["MultiPartyCall", mpc.as_str(), "Participant", member_id];
            let (method, body) = match action {
                MemberAction::Hold => (Method::POST, Some(json!({ "hold": true }))),
                MemberAction::Unhold => (Method::POST, Some(json!({ "hold": false }))),
                MemberAction::Mute => (Method::POST, Some(json!({ "mute": true }))),
                MemberAction::Unmute => (Method::POST, Some(json!({ "mute": false }))),
                MemberAction::Kick => (Method::DELETE, None),
                other => {
                    return Err(CarrierError::Unsupported(format!(
                        "{other:?} on a multiparty call member"
                    )));
                }
            };
            self.call(method, &path, body).await?;
            Ok(())
        })
    }

    fn conference_member<'a>(
        &'a self,
        conference_name: &'a str,
        member_id: &'a str,
        action: MemberAction,
    ) -> BoxFuture<'a, Result<(), CarrierError>> {
        Box::pin(async move {
            let (method, leaf) = match action {
                MemberAction::Mute => (Method::POST, Some("Mute")),
                MemberAction::Unmute => (Method::DELETE, Some("Mute")),
                MemberAction::Deaf => (Method::POST, Some("Deaf")),
                MemberAction::Undeaf => (Method::DELETE, Some("Deaf")),
                MemberAction::Kick => (Method::POST, Some("Kick")),
                MemberAction::Hangup => (Method::DELETE, None),
                other => {
                    return Err(CarrierError::Unsupported(format!(
                        "{other:?} on a conference member"
                    )));
                }
            };
            let mut path = vec!["Conference", conference_name, "Member", member_id];
            path.extend(leaf);
            let body = (method == Method::POST).then(|| json!({}));
            self.call(method, &path, body).await?;
            Ok(())
        })
    }
}
