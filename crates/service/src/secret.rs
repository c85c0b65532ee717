//! A credential from the configuration (an operator token, a carrier token): usable, but never printed.

use std::fmt;

/// A secret string whose `Debug` and `Display` show `<redacted>`, so a config struct printed with `{:?}`
/// or a span field recorded by mistake never carries it. [`Secret::expose`] is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that uses it (a comparison, a signature).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The variable's value as a secret, `None` when unset or empty.
    pub fn from_env(name: &str) -> Option<Secret> {
        crate::var(name).filter(|v| !v.is_empty()).map(Secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `scheme://user:***@host/...`: a connection URL with its password (or a bare token, as NATS takes
/// one) replaced, for printing.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => format!("{}***{}", &url[..scheme + 3], &url[at..]),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redact_url("postgres://phlo:s3cret@db:5432/phlo"),
            "postgres://phlo:***@db:5432/phlo"
        );
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(
            redact_url("nats://s3cret@nats:4222"),
            "nats://***@nats:4222"
        );
    }

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2");
        assert_eq!(s.expose(), "hunter2");
        assert!(!format!("{s:?} {s} {:?}", Some(&s)).contains("hunter2"));
    }
}
