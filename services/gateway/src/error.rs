//! The one error type of the HTTP edge: Plivo's `{api_id, error}` body with the right status. Client
//! errors are not logged as errors; server errors are logged and never leak internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Extra fields for the body (e.g. the validation problems).
    pub details: Option<(&'static str, Value)>,
    /// Whole seconds for a `Retry-After` header (429s, the 503 of a full gateway). `u16` (18 hours
    /// at most) keeps the error small: it travels in every handler's `Result`.
    pub retry_after: Option<u16>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// 429: the caller may retry after `retry_after_secs` (at least 1).
    pub fn too_many_requests(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(u16::try_from(retry_after_secs.max(1)).unwrap_or(u16::MAX)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, message)
        }
    }

    /// 503 with `Retry-After`: this replica is busy, another (or this one shortly) may not be.
    pub fn busy(message: impl Into<String>, retry_after_secs: u16) -> Self {
        Self {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(what: &str, id: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("{what} {id} not found"))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn with(mut self, key: &'static str, value: Value) -> Self {
        self.details = Some((key, value));
        self
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; the request was not completed, retry later",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "api_id": Uuid::now_v7(), "error": self.message });
        if let (Some((key, value)), Some(map)) = (self.details, body.as_object_mut()) {
            map.insert(key.to_owned(), value);
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if self.status == StatusCode::UNAUTHORIZED
            && let Ok(v) = "Basic realm=\"phlo\"".parse()
        {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, v);
        }
        response
    }
}

impl From<phlo_store::StoreError> for ApiError {
    fn from(e: phlo_store::StoreError) -> Self {
        if e.is_transient() {
            tracing::warn!(error = %e, "database unavailable");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the database is unavailable; retry later",
            );
        }
        ApiError::internal(e)
    }
}

impl From<phlo_store::SqlxError> for ApiError {
    fn from(e: phlo_store::SqlxError) -> Self {
        phlo_store::StoreError::Db(e).into()
    }
}

impl From<phlo_runtime::RuntimeError> for ApiError {
    fn from(e: phlo_runtime::RuntimeError) -> Self {
        match e {
            phlo_runtime::RuntimeError::Store(s) => s.into(),
            other if other.is_transient() => {
                tracing::warn!(error = %other, "dependency unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the service is unavailable; retry later",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

/// 404 for any path the API does not have.
pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {}: see /v1/openapi.json", uri.path()),
    )
}

/// 405 for a known path with another method.
pub async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}
