//! The one outbound HTTP client for user-supplied URLs: the HTTP Request node's requests, their OAuth2
//! token requests, and (later) webhook callbacks. It owns the SSRF guard (DESIGN.md §7): private,
//! loopback, link-local and other non-public addresses are refused, whether the URL names them
//! literally, a host name resolves to them, or a redirect points at them, unless the operator
//! allow-lists the network ([`EgressConfig::allow`], env `PHLO_EGRESS_ALLOW`).
//!
//! Never use it for internal calls (carrier API, other services, Postgres/NATS side-cars): those
//! live on private addresses by design and need their own client. Conversely, never send a
//! user-supplied URL through any other client.
//!
//! ```no_run
//! # async fn demo() -> Result<(), phlo_egress::EgressError> {
//! use phlo_egress::{Egress, EgressConfig};
//!
//! let egress = Egress::new(EgressConfig::default())?;
//! let url = url::Url::parse("http://169.254.169.254/latest/meta-data/").unwrap();
//! assert!(egress.check_url(&url).is_err());
//! # Ok(()) }
//! ```

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod client;
mod config;
mod error;
mod execute;
mod guard;
mod ip;

pub use client::{Egress, Outbound, Response};
pub use config::{ALLOW_ENV, EgressConfig};
pub use error::EgressError;
pub use guard::MAX_REDIRECTS;
pub use ip::{blocked_reason, is_public};
// Callers of `send` build these; re-exported so they need no direct reqwest dependency.
pub use reqwest::Method;
pub use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
