//! Authorization headers, and OAuth2 client-credentials tokens with their cache.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::Value;
use url::Url;

use crate::client::{Egress, Outbound};
use crate::error::EgressError;

/// A token endpoint's answer is small; anything bigger is not a token response.
const MAX_TOKEN_RESPONSE: u64 = 64 * 1024;
/// Refresh a token this long before it expires (at most a tenth of its lifetime), so a request
/// never leaves with a token that dies in flight.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// Tokens per (token URL, client id, scope). Fetches for the same key may race; both succeed and the
/// later one is kept, which costs one extra token request and avoids holding a lock across I/O.
pub(crate) type TokenCache = Mutex<HashMap<TokenKey, CachedToken>>;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey {
    pub token_url: String,
    pub client_id: String,
    pub scope: Option<String>,
}

pub(crate) struct CachedToken {
    token: String,
    refresh_at: Instant,
}

/// `Authorization: Basic base64(user:pass)`, marked sensitive so it is never logged.
pub(crate) fn basic_auth(user: &str, pass: &str) -> HeaderValue {
    let encoded = STANDARD.encode(format!("{user}:{pass}"));
    // Base64 is always a valid header value; the fallback is unreachable.
    sensitive(format!("Basic {encoded}")).unwrap_or_else(|_| HeaderValue::from_static("Basic"))
}

pub(crate) fn bearer(token: &str) -> Result<HeaderValue, EgressError> {
    sensitive(format!("Bearer {token}"))
        .map_err(|_| EgressError::Invalid("the bearer token contains invalid characters".into()))
}

fn sensitive(value: String) -> Result<HeaderValue, reqwest::header::InvalidHeaderValue> {
    let mut value = HeaderValue::try_from(value)?;
    value.set_sensitive(true);
    Ok(value)
}

/// Decodes `%XX` escapes (URL userinfo); invalid escapes are kept as written.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let escaped = match bytes.get(i + 1..i + 3) {
            Some(&[h, l]) if b == b'%' => hex(h).zip(hex(l)).map(|(h, l)| h << 4 | l),
            _ => None,
        };
        match escaped {
            Some(decoded) => {
                out.push(decoded);
                i += 3;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

impl Egress {
    /// A bearer token for `key`, from the cache or from the token endpoint (through the same guard as
    /// every other request).
    pub(crate) async fn oauth2_token(
        &self,
        key: &TokenKey,
        client_secret: &str,
        timeout: Duration,
    ) -> Result<String, EgressError> {
        if let Some(token) = self.cached_token(key) {
            return Ok(token);
        }
        let token_url = Url::parse(&key.token_url)
            .map_err(|e| EgressError::Token(format!("the token URL is not valid: {e}")))?;
        // Built in a block: the serializer is not `Send` and must not live across the await below.
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if let Some(scope) = &key.scope {
                form.append_pair("scope", scope);
            }
            form.finish()
        };
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, basic_auth(&key.client_id, client_secret));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let response = self
            .send(Outbound {
                method: Method::POST,
                url: token_url,
                headers,
                body: Some((
                    "application/x-www-form-urlencoded".into(),
                    Bytes::from(form),
                )),
                timeout,
                max_response_bytes: MAX_TOKEN_RESPONSE,
                // A redirecting token endpoint is misconfigured; following it would post the
                // client credentials somewhere the user did not name.
                follow_redirects: false,
            })
            .await
            .map_err(|e| EgressError::Token(e.to_string()))?;
        let json: Option<Value> = serde_json::from_slice(&response.body).ok();
        if !response.is_success() {
            let detail = json
                .as_ref()
                .and_then(|j| j.get("error_description").or_else(|| j.get("error")))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| snippet(&response.body));
            return Err(EgressError::Token(format!(
                "the token endpoint answered {}: {detail}",
                response.status
            )));
        }
        let json = json.unwrap_or(Value::Null);
        let token = json
            .get("access_token")
            .and_then(Value::as_str)
            .ok_or_else(|| EgressError::Token("the response has no `access_token`".into()))?;
        // Some servers send the lifetime as a string.
        let lifetime = json.get("expires_in").and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        });
        self.cache_token(key, token, lifetime.map(Duration::from_secs));
        Ok(token.to_owned())
    }

    fn cached_token(&self, key: &TokenKey) -> Option<String> {
        let cache = self
            .inner
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache
            .get(key)
            .filter(|t| Instant::now() < t.refresh_at)
            .map(|t| t.token.clone())
    }

    /// Without a lifetime the token is not cached: there is no way to know when it stops working.
    fn cache_token(&self, key: &TokenKey, token: &str, lifetime: Option<Duration>) {
        let Some(lifetime) = lifetime else { return };
        let margin = REFRESH_MARGIN.min(lifetime / 10);
        let now = Instant::now();
        let mut cache = self
            .inner
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Dropping expired entries here keeps the map as small as the set of live credentials.
        cache.retain(|_, t| t.refresh_at > now);
        if lifetime > margin {
            let refresh_at = now + (lifetime - margin);
            let token = token.to_owned();
            cache.insert(key.clone(), CachedToken { token, refresh_at });
        }
    }

    /// Forgets a token the API rejected (revoked early), so the next request fetches a new one.
    pub(crate) fn forget_token(&self, key: &TokenKey) {
        let mut cache = self
            .inner
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        cache.remove(key);
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None if text.is_empty() => "(empty body)".into(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%40b%3Ac"), "a@b:c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%+f"), "%+f");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
    }

    #[test]
    fn basic_header() {
        let v = basic_auth("Aladdin", "open sesame");
        assert_eq!(v.to_str().unwrap(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(v.is_sensitive());
    }
}
