//! Request parts in the API's terms: ids that are not UUIDs are simply unknown (404), bodies that are
//! not JSON get a 400 that says where the syntax broke, oversized bodies a 413, bodies nested too deeply
//! a 400 and oversized headers a 431, all as `{api_id, error}`. The limits are in docs/limits.md.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use phlo_flow::limits::{MAX_JSON_DEPTH, too_deep};
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiError;

/// A request body parsed as JSON; `None` when empty (SDKs send no body, `{}` or `""` for "nothing").
pub struct JsonBody(pub Option<Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            let status = r.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    status,
                    "the request body is larger than the limit (PHLO_MAX_BODY_BYTES)",
                )
            } else {
                ApiError::new(status, r.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(None));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
        })?;
        if let Some(path) = too_deep(&value) {
            return Err(ApiError::bad_request(format!(
                "the request body nests deeper than {MAX_JSON_DEPTH} levels (at {path}): flatten it"
            )));
        }
        if has_nul(&value) {
            return Err(ApiError::bad_request(
                "the request body contains a NUL character (\\u0000), which cannot be stored: remove it",
            ));
        }
        Ok(JsonBody(Some(value)))
    }
}

/// Largest total size of a request's headers, names and values. Real requests send well under 4 KiB;
/// hyper's own bound (about 400 KiB of buffered head) is far looser.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Middleware: 431 when the headers together exceed [`MAX_HEADER_BYTES`].
pub async fn limit_headers(req: Request, next: Next) -> Response {
    let size: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the request headers are {size} bytes; the limit is {MAX_HEADER_BYTES}"),
        )
        .into_response();
    }
    next.run(req).await
}

/// Postgres text and jsonb cannot hold U+0000, so a value with one could never be stored.
fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

impl JsonBody {
    /// The body as an object: `None`, `{}` and `""` all count as empty.
    pub fn object(self, what: &str) -> Result<serde_json::Map<String, Value>, ApiError> {
        match self.0 {
            None | Some(Value::Null) => Ok(Default::default()),
            Some(Value::String(s)) if s.is_empty() => Ok(Default::default()),
            Some(Value::Object(map)) => Ok(map),
            Some(other) => Err(ApiError::bad_request(format!(
                "{what} must be a JSON object, found {}",
                match other {
                    Value::Array(_) => "a list",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    _ => "something else",
                }
            ))),
        }
    }

    /// The body, required to be present.
    pub fn required(self, what: &str) -> Result<Value, ApiError> {
        self.0
            .ok_or_else(|| ApiError::bad_request(format!("the request body is empty: send {what}")))
    }
}

/// `axum::extract::Query` whose rejection (e.g. `limit=abc`) is a `{api_id, error}` 400 like every other
/// error, not axum's plain-text one.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(|q| q.contains("%00")) {
            return Err(ApiError::bad_request(
                "a query parameter contains a NUL character (%00), which cannot be stored: remove it",
            ));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|r| ApiError::new(r.status(), r.body_text()))
    }
}

/// `axum::extract::Path` whose rejection is a `{api_id, error}` body too. A segment that is not UTF-8
/// once percent-decoded cannot name anything, so it is a 404 like any other unknown id.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|r| match r.status() {
                StatusCode::BAD_REQUEST => ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("not found: {}", r.body_text()),
                ),
                status => ApiError::new(status, r.body_text()),
            })
    }
}

/// Parses a path id; anything that is not a UUID cannot exist, so it is a 404 like any unknown id.
pub fn id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(what, raw))
}

/// Plivo's timestamp format: `2018-11-14 04:41:31.827796+00:00`.
pub fn plivo_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f%:z").to_string()
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    async fn body_status(body: String) -> (StatusCode, String) {
        let req = Request::builder().body(Body::from(body)).unwrap();
        match JsonBody::from_request(req, &()).await {
            Ok(_) => (StatusCode::OK, String::new()),
            Err(e) => (e.status, e.message),
        }
    }

    #[tokio::test]
    async fn bodies_nested_too_deeply_are_400_with_the_place() {
        let nested = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
        assert_eq!(body_status(nested(MAX_JSON_DEPTH)).await.0, StatusCode::OK);
        let (status, message) =
            body_status(format!(r#"{{"a": {}}}"#, nested(MAX_JSON_DEPTH))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            message,
            format!(
                "the request body nests deeper than {MAX_JSON_DEPTH} levels (at $.a{}): flatten it",
                "[0]".repeat(MAX_JSON_DEPTH - 1)
            )
        );
        // Past serde_json's own recursion limit, the parser refuses first; still a 400.
        let (status, message) = body_status(nested(10_000)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(message.contains("recursion limit"), "{message}");
    }

    #[tokio::test]
    async fn oversized_headers_are_431() {
        let app = Router::new()
            .route("/", post(|| async { "ok" }))
            .layer(axum::middleware::from_fn(limit_headers));
        let request = |value: String| {
            Request::post("/")
                .header("x-filler", value)
                .body(Body::empty())
                .unwrap()
        };
        let ok = app
            .clone()
            .oneshot(request("v".repeat(1024)))
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        let big = app
            .oneshot(request("v".repeat(MAX_HEADER_BYTES)))
            .await
            .unwrap();
        assert_eq!(big.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let body = axum::body::to_bytes(big.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("the limit is 32768"),
            "{body}"
        );
    }
}
