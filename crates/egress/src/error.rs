//! Errors of outbound requests. Their `Display` is what users see in a run's history (the HTTP
//! Request node's failure reason, a callback attempt's log), so each says what happened in plain
//! words and never includes the URL's query or credentials.

use std::error::Error as _;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// The SSRF guard or the scheme policy refused the destination; nothing was sent.
    #[error("refused: {0}")]
    Refused(String),
    /// The request cannot be built (bad URL, method, header); nothing was sent.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The total time allowed for the request (connect, send, read) ran out.
    #[error("timed out after {}", show(.0))]
    Timeout(Duration),
    #[error("connect failed: {0}")]
    Connect(String),
    /// Any other transport failure, including too many redirects.
    #[error("request failed: {0}")]
    Request(String),
    /// The OAuth2 token could not be obtained; the API itself was not called.
    #[error("oauth2 token request failed: {0}")]
    Token(String),
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// "10 s" for whole seconds (what users configure), otherwise e.g. "250ms".
pub(crate) fn show(d: &Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{d:?}")
    }
}

impl EgressError {
    /// Turns a reqwest error into ours. `authority` (host:port) names the destination without the
    /// path or query, which may hold secrets.
    pub(crate) fn from_reqwest(
        err: &reqwest::Error,
        authority: &str,
        connect_timeout: Duration,
    ) -> Self {
        // Refusals by our resolver or redirect policy travel inside reqwest's error chain.
        let mut source = err.source();
        while let Some(s) = source {
            if let Some(ours) = s.downcast_ref::<EgressError>() {
                return ours.clone();
            }
            source = s.source();
        }
        if err.is_connect() {
            if err.is_timeout() {
                return Self::Connect(format!(
                    "{authority}: timed out after {}",
                    show(&connect_timeout)
                ));
            }
            return Self::Connect(format!("{authority}: {}", root_cause(err)));
        }
        Self::Request(format!("{authority}: {}", root_cause(err)))
    }
}

/// The innermost error: reqwest's own message repeats the whole URL, hyper's says "client error".
fn root_cause(err: &reqwest::Error) -> String {
    let mut last: &dyn std::error::Error = err;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_well() {
        assert_eq!(
            EgressError::Timeout(Duration::from_secs(10)).to_string(),
            "timed out after 10 s"
        );
        assert_eq!(
            EgressError::Timeout(Duration::from_millis(250)).to_string(),
            "timed out after 250ms"
        );
        assert_eq!(
            EgressError::Refused("127.0.0.1 is a loopback address".into()).to_string(),
            "refused: 127.0.0.1 is a loopback address"
        );
    }
}
