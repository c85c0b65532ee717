//! Operator settings for outbound requests.

use std::time::Duration;

use ipnet::IpNet;

/// The environment variable services read the allow-list from; named in refusal messages so a user
/// who hits the guard knows what the operator would have to change.
pub const ALLOW_ENV: &str = "PHLO_EGRESS_ALLOW";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressConfig {
    /// Networks that are refused by default (private, loopback, ...) but that the operator lets user
    /// URLs reach, e.g. an on-premises API in 10.0.0.0/8. Empty by default.
    pub allow: Vec<IpNet>,
    /// Time allowed to open a connection, separate from each request's total timeout.
    pub connect_timeout: Duration,
    pub user_agent: String,
    /// Refuse plain `http` URLs (recommended in production).
    pub https_only: bool,
}

impl Default for EgressConfig {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            user_agent: concat!("phlo-runner/", env!("CARGO_PKG_VERSION")).to_owned(),
            https_only: false,
        }
    }
}

impl EgressConfig {
    /// Parses a comma-separated list of networks such as `127.0.0.1/32, 10.0.0.0/8`. A bare address
    /// means that address only. Empty items are ignored so `""` is an empty list. The error names the
    /// bad item; callers add which setting it came from.
    pub fn parse_allow(value: &str) -> Result<Vec<IpNet>, String> {
        value
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse::<IpNet>()
                    .or_else(|_| item.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        format!("`{item}` is not a network (expected e.g. 10.0.0.0/8 or 127.0.0.1)")
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_networks_and_bare_addresses() {
        let nets = EgressConfig::parse_allow(" 127.0.0.1/32,10.0.0.0/8, ::1 ,").unwrap();
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]);
        assert_eq!(EgressConfig::parse_allow(""), Ok(vec![]));
    }

    #[test]
    fn rejects_garbage_naming_the_item() {
        let err = EgressConfig::parse_allow("10.0.0.0/8,intranet").unwrap_err();
        assert!(err.contains("`intranet`"), "{err}");
        assert!(EgressConfig::parse_allow("10.0.0.0/33").is_err());
    }

    #[test]
    fn defaults() {
        let c = EgressConfig::default();
        assert!(c.allow.is_empty() && !c.https_only);
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert!(c.user_agent.starts_with("phlo-runner/"));
    }
}
