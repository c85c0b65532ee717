//! Who is calling: an account (HTTP Basic `auth_id:auth_token`, as Plivo's SDKs send it) or the operator
//! (`Authorization: Bearer $PHLO_ADMIN_TOKEN`). Secrets are compared in constant time.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;

/// An authenticated account.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: Uuid,
    pub auth_id: String,
}

const BAD_CREDENTIALS: &str = "authentication failed: check your auth_id and auth_token";

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Authenticated already by the rate limit (`crate::limits::limit_api`).
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(|| {
            ApiError::unauthorized("authentication required: send HTTP Basic auth with your auth_id and auth_token")
        })?;
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))
            .ok_or_else(|| {
                ApiError::unauthorized("use HTTP Basic auth with your auth_id and auth_token")
            })?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| ApiError::unauthorized("the Basic auth header is not valid base64"))?;
        let (auth_id, token) = decoded
            .split_once(':')
            .ok_or_else(|| ApiError::unauthorized(BAD_CREDENTIALS))?;
        // No auth id holds a NUL, and Postgres text cannot even be compared with one.
        if auth_id.contains('\0') {
            return Err(ApiError::unauthorized(BAD_CREDENTIALS));
        }
        let mut conn = state.pool.acquire().await?;
        let account = phlo_store::accounts::find_by_auth_id(&mut conn, auth_id).await?;
        // Hash even for unknown ids so both failures take the same time.
        let presented = hash_token(token);
        match account {
            Some(a) if constant_time_eq(&a.token_hash, &presented) => Ok(Caller {
                account_id: a.id,
                auth_id: a.auth_id,
            }),
            _ => Err(ApiError::unauthorized(BAD_CREDENTIALS)),
        }
    }
}

/// The operator, for account administration.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(expected) = state.config.admin_token.as_ref().map(|t| t.expose()) else {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "account administration is disabled: set PHLO_ADMIN_TOKEN on the gateway",
            ));
        };
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default();
        if constant_time_eq(&hash_token(presented), &hash_token(expected)) {
            Ok(Admin)
        } else {
            Err(ApiError::unauthorized(
                "the operator token is missing or wrong: send Authorization: Bearer <PHLO_ADMIN_TOKEN>",
            ))
        }
    }
}

pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `MA` + 18 upper-case letters and digits: the shape Plivo's SDKs insist on.
pub fn new_auth_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let tail: String = (0..18)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("MA{tail}")
}

/// 256 random bits, URL-safe base64.
pub fn new_auth_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
