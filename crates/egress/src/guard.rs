//! The SSRF guard, in the three places a destination can slip in (reliability-and-crates.md A3.2,
//! A3.3): the URL's IP-literal host (hyper connects to literals without asking any resolver), every
//! name resolution (inside the connector, so DNS rebinding between a check and the connect cannot
//! bypass it), and every redirect hop.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;
use url::{Host, Url};

use crate::config::ALLOW_ENV;
use crate::error::EgressError;
use crate::ip::blocked_reason;

/// Redirect hops followed before giving up.
pub const MAX_REDIRECTS: usize = 5;

#[derive(Debug)]
pub(crate) struct Guard {
    pub allow: Vec<IpNet>,
    pub https_only: bool,
}

impl Guard {
    /// `Err(reason)` when `ip` is neither public nor allow-listed.
    fn permits(&self, ip: IpAddr) -> Result<(), &'static str> {
        let Some(reason) = blocked_reason(ip) else {
            return Ok(());
        };
        let canonical = ip.to_canonical();
        if self
            .allow
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&canonical))
        {
            Ok(())
        } else {
            Err(reason)
        }
    }

    /// Scheme, host, and for IP-literal hosts the address itself; names are checked when resolved.
    pub fn check_url(&self, url: &Url) -> Result<(), EgressError> {
        match url.scheme() {
            "https" => {}
            "http" if !self.https_only => {}
            "http" => {
                return Err(EgressError::Refused(
                    "only https URLs are allowed on this runner".into(),
                ));
            }
            other => {
                return Err(EgressError::Refused(format!(
                    "the URL scheme `{other}` is not supported; use http or https"
                )));
            }
        }
        let literal = match url.host() {
            None => return Err(EgressError::Invalid("the URL has no host".into())),
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            // The url crate already turns every IPv4 spelling (0x7f.1, 2130706433) into `Ipv4`; this
            // catches anything a later connector might still read as an address.
            Some(Host::Domain(name)) => name.parse().ok(),
        };
        match literal {
            Some(ip) => self.permits(ip).map_err(|reason| refused_ip(ip, reason)),
            None => Ok(()),
        }
    }
}

fn refused_ip(ip: IpAddr, reason: &str) -> EgressError {
    EgressError::Refused(format!(
        "{ip} is {reason}; allow-list it with {ALLOW_ENV} if intended"
    ))
}

/// Resolves with the system resolver, then keeps only addresses the guard permits.
pub(crate) struct GuardedResolver(pub Arc<Guard>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = Arc::clone(&self.0);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| EgressError::Connect(format!("cannot resolve {host}: {e}")))?
                .collect();
            if found.is_empty() {
                return Err(EgressError::Connect(format!("{host} has no addresses")).into());
            }
            let (kept, refused): (Vec<SocketAddr>, Vec<SocketAddr>) = found
                .into_iter()
                .partition(|addr| guard.permits(addr.ip()).is_ok());
            if kept.is_empty() {
                let mut ips: Vec<IpAddr> = refused.iter().map(SocketAddr::ip).collect();
                ips.sort_unstable();
                ips.dedup();
                let shown: Vec<String> = ips.iter().map(ToString::to_string).collect();
                return Err(EgressError::Refused(format!(
                    "{host} resolves only to private or loopback addresses ({}); \
                     allow-list it with {ALLOW_ENV} if intended",
                    shown.join(", ")
                ))
                .into());
            }
            if !refused.is_empty() {
                tracing::debug!(%host, ?refused, "egress dropped non-public addresses");
            }
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

/// Follows up to [`MAX_REDIRECTS`] hops, checking each target like the first URL. Names in a
/// `Location` go through [`GuardedResolver`] when connected to; literals would not, hence this.
pub(crate) fn redirect_policy(guard: Arc<Guard>) -> redirect::Policy {
    redirect::Policy::custom(move |attempt| {
        // `previous` starts with the original URL, so it holds one more entry than hops taken.
        if attempt.previous().len() > MAX_REDIRECTS {
            let err =
                EgressError::Request(format!("too many redirects (more than {MAX_REDIRECTS})"));
            return attempt.error(err);
        }
        match guard.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(EgressError::Refused(why)) => {
                attempt.error(EgressError::Refused(format!("redirect: {why}")))
            }
            Err(e) => attempt.error(e),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(allow: &str) -> Guard {
        Guard {
            allow: crate::EgressConfig::parse_allow(allow).unwrap(),
            https_only: false,
        }
    }

    fn check(g: &Guard, url: &str) -> Result<(), EgressError> {
        g.check_url(&Url::parse(url).unwrap())
    }

    #[test]
    fn refuses_literal_hosts_naming_the_reason() {
        let g = guard("");
        for (url, reason) in [
            ("http://127.0.0.1:8080/", "127.0.0.1 is a loopback address"),
            ("http://[::1]/", "::1 is a loopback address"),
            (
                "http://[::ffff:127.0.0.1]/",
                "::ffff:127.0.0.1 is a loopback address",
            ),
            ("http://0x7f.1/", "127.0.0.1 is a loopback address"),
            ("http://2130706433/", "127.0.0.1 is a loopback address"),
            (
                "http://169.254.169.254/latest/meta-data/",
                "169.254.169.254 is a link-local address",
            ),
            ("https://10.0.0.1/", "10.0.0.1 is a private address"),
            ("http://0.0.0.0/", "0.0.0.0 is a \"this network\" address"),
        ] {
            let err = check(&g, url).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("refused: {reason};")),
                "{url}: {err}"
            );
            assert!(err.contains("PHLO_EGRESS_ALLOW"), "{err}");
        }
    }

    #[test]
    fn allow_list_covers_mapped_spellings() {
        let g = guard("127.0.0.1/32");
        assert_eq!(check(&g, "http://127.0.0.1:1/"), Ok(()));
        assert_eq!(check(&g, "http://[::ffff:127.0.0.1]:1/"), Ok(()));
        assert!(check(&g, "http://127.0.0.2/").is_err());
        assert!(check(&g, "http://[::1]/").is_err());
    }

    #[test]
    fn schemes_and_hosts() {
        let mut g = guard("");
        assert_eq!(check(&g, "http://example.com/"), Ok(()));
        assert_eq!(check(&g, "https://93.184.215.14/"), Ok(()));
        assert!(matches!(
            check(&g, "ftp://example.com/"),
            Err(EgressError::Refused(_))
        ));
        assert!(matches!(
            check(&g, "file:///etc/passwd"),
            Err(EgressError::Refused(_))
        ));
        g.https_only = true;
        let err = check(&g, "http://example.com/").unwrap_err().to_string();
        assert!(err.contains("only https"), "{err}");
        assert_eq!(check(&g, "https://example.com/"), Ok(()));
    }
}
