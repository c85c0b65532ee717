//! Who is calling: an account (HTTP Basic `auth_id:auth_token`, as Plivo's SDKs send it) or the operator
//! (`Authorization: Bearer $PHLO_ADMIN_TOKEN`). Secrets are compared in constant time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
        // Hash even for unknown ids so both failures take the same time.
        let presented = hash_token(token);
        if let Some(caller) = state.auth.get(auth_id, &presented) {
            return Ok(caller);
        }
        let mut conn = state.pool.acquire().await?;
        let account = phlo_store::accounts::find_by_auth_id(&mut conn, auth_id).await?;
        match account {
            Some(a) if constant_time_eq(&a.token_hash, &presented) => {
                let caller = Caller {
                    account_id: a.id,
                    auth_id: a.auth_id,
                };
                state.auth.put(&caller, a.token_hash);
                Ok(caller)
            }
            _ => Err(ApiError::unauthorized(BAD_CREDENTIALS)),
        }
    }
}

/// Credentials this replica checked against Postgres recently, so that a busy account's requests do
/// not each read its row (a round trip per API call, a third of a run's start). Only successes are
/// kept, and only for `ttl`: accounts and their tokens never change through the API, so the bound
/// matters only for an operator's direct edit of the `accounts` table.
pub struct AuthCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, Checked>>,
}

struct Checked {
    caller: Caller,
    token_hash: Vec<u8>,
    at: Instant,
}

/// Past this many entries the cache starts afresh: a bound on memory, not an eviction policy.
const AUTH_CACHE_MAX: usize = 10_000;

impl AuthCache {
    /// `ttl` zero keeps nothing.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
        }
    }

    fn get(&self, auth_id: &str, presented: &[u8]) -> Option<Caller> {
        let entries = self.lock();
        let checked = entries.get(auth_id)?;
        (checked.at.elapsed() < self.ttl && constant_time_eq(&checked.token_hash, presented))
            .then(|| checked.caller.clone())
    }

    fn put(&self, caller: &Caller, token_hash: Vec<u8>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= AUTH_CACHE_MAX {
            entries.clear();
        }
        entries.insert(
            caller.auth_id.clone(),
            Checked {
                caller: caller.clone(),
                token_hash,
                at: Instant::now(),
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Checked>> {
        // Plain data: a panic while holding the lock leaves nothing half-done worth refusing.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller {
        Caller {
            account_id: Uuid::now_v7(),
            auth_id: "MAAAAAAAAAAAAAAAAAAA".into(),
        }
    }

    #[test]
    fn the_cache_answers_only_for_the_token_it_checked_and_only_for_its_ttl() {
        let cache = AuthCache::new(Duration::from_millis(200));
        let c = caller();
        cache.put(&c, hash_token("right"));
        let hit = cache.get(&c.auth_id, &hash_token("right")).unwrap();
        assert_eq!(
            (hit.account_id, hit.auth_id.as_str()),
            (c.account_id, c.auth_id.as_str())
        );
        // A wrong token is not answered from the cache: the caller goes on to Postgres (and a 401).
        assert!(cache.get(&c.auth_id, &hash_token("wrong")).is_none());
        assert!(
            cache
                .get("MABBBBBBBBBBBBBBBBBB", &hash_token("right"))
                .is_none()
        );
        std::thread::sleep(Duration::from_millis(250));
        assert!(
            cache.get(&c.auth_id, &hash_token("right")).is_none(),
            "expired"
        );
    }

    #[test]
    fn a_zero_ttl_keeps_nothing_and_a_full_cache_starts_afresh() {
        let off = AuthCache::new(Duration::ZERO);
        let c = caller();
        off.put(&c, hash_token("t"));
        assert!(off.get(&c.auth_id, &hash_token("t")).is_none());

        let cache = AuthCache::new(Duration::from_secs(60));
        for i in 0..AUTH_CACHE_MAX {
            let mut other = caller();
            other.auth_id = format!("MA{i:018}");
            cache.put(&other, hash_token("t"));
        }
        assert_eq!(cache.lock().len(), AUTH_CACHE_MAX);
        cache.put(&c, hash_token("t"));
        assert_eq!(cache.lock().len(), 1);
        assert!(cache.get(&c.auth_id, &hash_token("t")).is_some());
    }
}
