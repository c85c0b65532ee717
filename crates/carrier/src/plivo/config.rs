//! Where and as whom the adapter calls Plivo.

use std::fmt;
use std::time::Duration;

/// Plivo's API host.
pub const DEFAULT_BASE_URL: &str = "https://api.plivo.com";

#[derive(Clone)]
pub struct PlivoConfig {
    /// Scheme, host and optional path prefix; `/v1/Account/{auth_id}/` is appended.
    pub base_url: String,
    pub auth_id: String,
    pub auth_token: String,
    /// Per request, connecting included.
    pub timeout: Duration,
}

impl PlivoConfig {
    /// Plivo's host with a 15 s timeout.
    pub fn new(auth_id: impl Into<String>, auth_token: impl Into<String>) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            auth_id: auth_id.into(),
            auth_token: auth_token.into(),
            timeout: Duration::from_secs(15),
        }
    }
}

impl fmt::Debug for PlivoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlivoConfig")
            .field("base_url", &self.base_url)
            .field("auth_id", &self.auth_id)
            .field("auth_token", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}
