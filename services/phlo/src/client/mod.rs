//! HTTP clients of the command line: the gateway's API and the carrier simulator's `/sim` API, with
//! the connection settings (flags or environment) and errors that say what to do next.

mod gateway;
mod sim;

use std::time::Duration;

use clap::Args;

pub use gateway::{ApiError, Gateway, is_transient};
pub use sim::Sim;

/// Where the gateway and the simulator are, and whose account to use. Every flag can come from the
/// environment, so scripts set them once.
#[derive(Args, Clone, Debug)]
pub struct Settings {
    /// The gateway's base URL.
    #[arg(
        long,
        env = "PHLO_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// The account's auth id (`MA…`), as `POST /v1/accounts` returned it.
    #[arg(long, env = "PHLO_AUTH_ID", global = true)]
    pub auth_id: Option<String>,
    /// The account's auth token.
    #[arg(long, env = "PHLO_AUTH_TOKEN", hide_env_values = true, global = true)]
    pub auth_token: Option<String>,
    /// The carrier simulator's base URL (`phlo call`, `phlo sms`) [default: `phlo dev`'s, else
    /// http://127.0.0.1:8070]
    #[arg(long, env = "PHLO_SIM_URL", global = true)]
    pub sim_url: Option<String>,
}

impl Settings {
    /// What is not given, from the account a `phlo dev` on the same URL keeps (its data directory's
    /// `account.json`): against a local dev server the CLI needs no flags.
    pub fn with_dev_fallback(mut self) -> Settings {
        let dir = std::env::var_os("PHLO_DATA_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(crate::dev::default_data_dir);
        let dev = crate::dev::read_account(&dir).filter(|a| base(&a.url) == base(&self.url));
        if let Some(dev) = dev {
            if self.auth_id.is_none() && self.auth_token.is_none() {
                self.auth_id = Some(dev.auth_id);
                self.auth_token = Some(dev.auth_token);
            }
            self.sim_url.get_or_insert(dev.sim_url);
        }
        self
    }

    pub fn sim_url(&self) -> &str {
        self.sim_url.as_deref().unwrap_or("http://127.0.0.1:8070")
    }
}

/// How long one request may take. Following and tailing poll, so no request needs to be long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

fn http() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("phlo-cli/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// `base` without a trailing slash, so that paths can be appended as they are written in the docs.
fn base(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

/// The innermost cause of a transport error: `Connection refused (os error 111)` rather than
/// reqwest's `error sending request for url (…)`.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
