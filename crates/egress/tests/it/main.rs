//! Integration tests of the guarded client against a local server that records what it receives.

mod server;

mod limits;
mod oauth2;
mod refusals;
mod requests;
mod tls;

use phlo_flow::effect::{HttpAuth, HttpRequest};
use phlo_flow::event::HttpResult;

/// A bodiless request without auth, 5 s timeout, 1 MiB cap.
pub fn request(method: &str, url: String) -> HttpRequest {
    HttpRequest {
        method: method.into(),
        url,
        headers: vec![],
        body: None,
        auth: HttpAuth::None,
        timeout_secs: 5,
        max_response_bytes: 1 << 20,
    }
}

/// The response of a result that must be one: (status, content type, headers, body, truncated).
pub fn response(result: HttpResult) -> (u16, Option<String>, Vec<(String, String)>, String, bool) {
    match result {
        HttpResult::Response {
            status,
            content_type,
            headers,
            body,
            truncated,
        } => (status, content_type, headers, body, truncated),
        HttpResult::Error { message } => panic!("expected a response, got error: {message}"),
    }
}

/// The message of a result that must be an error.
pub fn error(result: HttpResult) -> String {
    match result {
        HttpResult::Error { message } => message,
        other => panic!("expected an error, got {other:?}"),
    }
}
