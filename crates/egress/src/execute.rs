//! The HTTP Request node's effect: [`HttpRequest`] in, [`HttpResult`] out, on top of
//! [`Egress::send`].

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::TryStreamExt as _;
use phlo_flow::effect::{HttpAuth, HttpBody, HttpRequest};
use phlo_flow::event::HttpResult;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use url::Url;

use crate::auth::{TokenKey, basic_auth, bearer};
use crate::client::{Egress, Outbound, Response};
use crate::error::EgressError;

/// Sent with every request so an API that supports it can drop the duplicate when the runtime
/// retries a step (at-least-once delivery); the key is stable per step.
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

impl Egress {
    /// Performs the node's request. Never fails: a request that gets no response (refused, invalid,
    /// unreachable, timed out) becomes `HttpResult::Error` with a message for the run's history.
    ///
    /// The user's headers are sent as given, except that `auth` replaces any `Authorization` header
    /// and multipart bodies set their own `Content-Type` (the boundary must match). For other bodies
    /// a user `Content-Type` wins over the default (e.g. `application/vnd.api+json`).
    pub async fn execute(&self, req: &HttpRequest, idempotency_key: &str) -> HttpResult {
        match self.try_execute(req, idempotency_key).await {
            Ok(response) => into_result(response),
            Err(e) => {
                tracing::info!(error = %e, "http request got no response");
                HttpResult::Error {
                    message: e.to_string(),
                }
            }
        }
    }

    async fn try_execute(
        &self,
        req: &HttpRequest,
        idempotency_key: &str,
    ) -> Result<Response, EgressError> {
        let method = match req.method.to_ascii_uppercase().as_str() {
            "GET" => Method::GET,
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "DELETE" => Method::DELETE,
            other => {
                return Err(EgressError::Invalid(format!(
                    "unsupported method `{other}`; use GET, POST, PUT or DELETE"
                )));
            }
        };
        let url = Url::parse(&req.url)
            .map_err(|e| EgressError::Invalid(format!("the URL is not valid: {e}")))?;
        // Refuse before any token request, so a refused URL never costs a call to the token endpoint.
        self.check_url(&url)?;
        let timeout = Duration::from_secs(u64::from(req.timeout_secs.max(1)));

        let mut headers = user_headers(&req.headers)?;
        if !headers.contains_key(IDEMPOTENCY_KEY) {
            let key = HeaderValue::from_str(idempotency_key).map_err(|_| {
                EgressError::Invalid("the idempotency key is not a header value".into())
            })?;
            headers.insert(IDEMPOTENCY_KEY, key);
        }
        let mut token_key = None;
        match &req.auth {
            HttpAuth::None => {}
            HttpAuth::Basic { username, password } => {
                headers.insert(AUTHORIZATION, basic_auth(username, password));
            }
            HttpAuth::Bearer { token } => {
                headers.insert(AUTHORIZATION, bearer(token)?);
            }
            HttpAuth::Oauth2 {
                token_url,
                client_id,
                client_secret,
                scope,
            } => {
                let key = TokenKey {
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    scope: scope.clone(),
                };
                // The token request gets its own timeout; the engine waits twice the node's timeout
                // for OAuth2 requests for this reason.
                let token = self.oauth2_token(&key, client_secret, timeout).await?;
                headers.insert(AUTHORIZATION, bearer(&token)?);
                token_key = Some(key);
            }
        }
        let body = match &req.body {
            None => None,
            Some(body) => Some(encode_body(body, &mut headers).await?),
        };
        let response = self
            .send(Outbound {
                method,
                url,
                headers,
                body,
                timeout,
                max_response_bytes: req.max_response_bytes,
                follow_redirects: true,
            })
            .await?;
        if response.status == 401
            && let Some(key) = token_key
        {
            self.forget_token(&key);
        }
        Ok(response)
    }
}

fn user_headers(pairs: &[(String, String)]) -> Result<HeaderMap, EgressError> {
    let mut headers = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| EgressError::Invalid(format!("`{name}` is not a valid header name")))?;
        let value = HeaderValue::from_str(value).map_err(|_| {
            EgressError::Invalid(format!("the value of header `{name}` is not valid"))
        })?;
        // `append` keeps repeated headers, as the user listed them.
        headers.append(name, value);
    }
    Ok(headers)
}

async fn encode_body(
    body: &HttpBody,
    headers: &mut HeaderMap,
) -> Result<(String, Bytes), EgressError> {
    Ok(match body {
        HttpBody::Json { value } => {
            let bytes = serde_json::to_vec(value)
                .map_err(|e| EgressError::Invalid(format!("cannot encode the JSON body: {e}")))?;
            ("application/json".into(), bytes.into())
        }
        HttpBody::FormUrlencoded { fields } => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.extend_pairs(fields);
            (
                "application/x-www-form-urlencoded".into(),
                form.finish().into(),
            )
        }
        HttpBody::FormData { fields } => {
            let form = fields
                .iter()
                .fold(reqwest::multipart::Form::new(), |form, (name, value)| {
                    form.text(name.clone(), value.clone())
                });
            let content_type = format!("multipart/form-data; boundary={}", form.boundary());
            // Encoding text parts is in-memory; collecting gives a body with a known length.
            let bytes = form
                .into_stream()
                .try_fold(BytesMut::new(), |mut all, part| async move {
                    all.extend_from_slice(&part);
                    Ok(all)
                })
                .await
                .map_err(|e| EgressError::Invalid(format!("cannot encode the form: {e}")))?;
            headers.remove(CONTENT_TYPE);
            (content_type, bytes.freeze())
        }
        HttpBody::Text { content_type, text } => {
            let content_type = if content_type.trim().is_empty() {
                "text/plain; charset=utf-8".to_owned()
            } else {
                content_type.clone()
            };
            (content_type, Bytes::from(text.clone()))
        }
    })
}

fn into_result(response: Response) -> HttpResult {
    let content_type = response.header(CONTENT_TYPE.as_str()).map(str::to_owned);
    let headers = response
        .headers
        .iter()
        .map(|(name, value)| {
            // Header names are lower case in `http`; values may be any bytes.
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    HttpResult::Response {
        status: response.status,
        content_type,
        headers,
        body: text(&response.body, response.truncated),
        truncated: response.truncated,
    }
}

/// The body as text. A cut body may end inside a multi-byte character; that partial character is
/// dropped rather than shown as U+FFFD.
fn text(body: &[u8], truncated: bool) -> String {
    let body = match std::str::from_utf8(body) {
        Err(e) if truncated && e.error_len().is_none() => &body[..e.valid_up_to()],
        _ => body,
    };
    String::from_utf8_lossy(body).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_character_is_dropped_only_when_truncated() {
        let cut = &"café".as_bytes()[..4];
        assert_eq!(text(cut, true), "caf");
        assert_eq!(text(cut, false), "caf\u{fffd}");
        assert_eq!(text(b"\xffok", true), "\u{fffd}ok");
    }
}
