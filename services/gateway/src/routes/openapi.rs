//! `GET /v1/openapi.json`: the document describing this whole API (kept in `openapi.json` at the root of
//! this crate; `tests/openapi.rs` checks that every route is in it).

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

pub const DOCUMENT: &str = include_str!("../../openapi.json");

pub async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT)
}
