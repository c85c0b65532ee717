//! [`Egress`]: the guarded client and its generic [`Egress::send`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, redirect};
use url::Url;

use crate::auth::{TokenCache, basic_auth, percent_decode};
use crate::config::EgressConfig;
use crate::error::EgressError;
use crate::guard::{Guard, GuardedResolver, redirect_policy};

/// The guarded client. Cheap to clone: clones share connection pools and the OAuth2 token cache.
#[derive(Clone)]
pub struct Egress {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    guard: Arc<Guard>,
    /// Follows redirects, re-checking every hop (the HTTP Request node).
    follow: reqwest::Client,
    /// Returns 3xx as responses (webhooks, where a redirect is a failed delivery).
    no_follow: reqwest::Client,
    connect_timeout: Duration,
    pub(crate) tokens: TokenCache,
}

impl std::fmt::Debug for Egress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Egress")
            .field("guard", &self.inner.guard)
            .finish_non_exhaustive()
    }
}

/// One outbound request for [`Egress::send`].
#[derive(Debug, Clone)]
pub struct Outbound {
    pub method: Method,
    /// Credentials in the URL (`https://user:pass@host/`) are removed from it and sent as
    /// `Authorization: Basic` unless `headers` already has an `Authorization`.
    pub url: Url,
    pub headers: HeaderMap,
    /// Content type and bytes. The content type is used unless `headers` sets one.
    pub body: Option<(String, Bytes)>,
    /// Total time for connecting, sending, following redirects and reading the body.
    pub timeout: Duration,
    /// Body bytes kept; the rest is not read and the response is marked `truncated`.
    pub max_response_bytes: u64,
    /// Follow up to 5 redirects (each re-checked), or return the 3xx as the response.
    pub follow_redirects: bool,
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The body was cut at `max_response_bytes`.
    pub truncated: bool,
    pub elapsed: Duration,
}

impl Response {
    /// A header's value, if present and readable as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl Egress {
    /// Builds the clients. Uses the process's default rustls provider when a binary installed one,
    /// otherwise reqwest's explicit aws-lc-rs provider, so it never relies on rustls picking one
    /// from crate features (which panics when both ring and aws-lc-rs are compiled in).
    pub fn new(config: EgressConfig) -> Result<Self, EgressError> {
        let guard = Arc::new(Guard {
            allow: config.allow.clone(),
            https_only: config.https_only,
        });
        let build = |policy: redirect::Policy| {
            reqwest::Client::builder()
                .dns_resolver(Arc::new(GuardedResolver(Arc::clone(&guard))))
                // Proxies (including HTTP_PROXY from the environment) would resolve names where our
                // resolver cannot see them.
                .no_proxy()
                .connect_timeout(config.connect_timeout)
                .user_agent(config.user_agent.as_str())
                .https_only(config.https_only)
                .redirect(policy)
                // A Referer would hand the previous URL, query tokens included, to the next host.
                .referer(false)
                .build()
                .map_err(|e| EgressError::Build(e.to_string()))
        };
        let follow = build(redirect_policy(Arc::clone(&guard)))?;
        let no_follow = build(redirect::Policy::none())?;
        Ok(Self {
            inner: Arc::new(Inner {
                guard,
                follow,
                no_follow,
                connect_timeout: config.connect_timeout,
                tokens: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Whether `url` may be requested at all: http(s) (https only if configured), a host, and an
    /// IP-literal host that is public or allow-listed. Host names are checked when resolved.
    pub fn check_url(&self, url: &Url) -> Result<(), EgressError> {
        self.inner.guard.check_url(url)
    }

    /// Sends one request. Any status is a `Response`; `Err` means no response (refused, invalid,
    /// connect failure, timeout).
    pub async fn send(&self, out: Outbound) -> Result<Response, EgressError> {
        let started = Instant::now();
        let Outbound {
            method,
            mut url,
            mut headers,
            body,
            timeout,
            max_response_bytes,
            follow_redirects,
        } = out;
        self.check_url(&url)?;
        move_credentials(&mut url, &mut headers);
        let authority = authority(&url);
        let client = if follow_redirects {
            &self.inner.follow
        } else {
            &self.inner.no_follow
        };
        if let Some((content_type, _)) = &body
            && !headers.contains_key(CONTENT_TYPE)
        {
            let value = HeaderValue::from_str(content_type)
                .map_err(|_| EgressError::Invalid(format!("bad content type `{content_type}`")))?;
            headers.insert(CONTENT_TYPE, value);
        }
        let mut request = client.request(method, url).headers(headers);
        if let Some((_, bytes)) = body {
            request = request.body(bytes);
        }
        let connect_timeout = self.inner.connect_timeout;
        let exchange = async {
            let map =
                |e: reqwest::Error| EgressError::from_reqwest(&e, &authority, connect_timeout);
            let mut response = request.send().await.map_err(map)?;
            let status = response.status().as_u16();
            let headers = std::mem::take(response.headers_mut());
            let (body, truncated) = read_capped(&mut response, max_response_bytes)
                .await
                .map_err(map)?;
            Ok(Response {
                status,
                headers,
                body,
                truncated,
                elapsed: started.elapsed(),
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(EgressError::Timeout(timeout)),
        }
    }
}

/// Reads at most `max` bytes, chunk by chunk, so a huge or endless body costs no more memory than
/// the cap. The rest is left unread; dropping the response closes the connection.
async fn read_capped(
    response: &mut reqwest::Response,
    max: u64,
) -> Result<(Bytes, bool), reqwest::Error> {
    let cap = usize::try_from(max).unwrap_or(usize::MAX);
    let expected = response
        .content_length()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let mut body = BytesMut::with_capacity(expected.min(cap).min(1 << 20));
    while let Some(chunk) = response.chunk().await? {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body.freeze(), true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body.freeze(), false))
}

/// Moves `user:pass@` out of the URL so it never reaches logs or error messages, and sends it the
/// way browsers do, unless the caller chose its own Authorization.
fn move_credentials(url: &mut Url, headers: &mut HeaderMap) {
    if url.username().is_empty() && url.password().is_none() {
        return;
    }
    let user = percent_decode(url.username());
    let pass = percent_decode(url.password().unwrap_or(""));
    // Cannot fail: a URL with credentials has an authority.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    if !headers.contains_key(AUTHORIZATION) {
        headers.insert(AUTHORIZATION, basic_auth(&user, &pass));
    }
}

/// `host:port`, for messages: the path and query may hold secrets.
fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}
