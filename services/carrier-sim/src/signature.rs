//! Webhook signatures, computed exactly as Plivo's Python SDK (4.63.0, `plivo/utils/signature_v3.py`
//! and `validate_signature` in `plivo/utils/__init__.py`) checks them, so an application verifying
//! with any official SDK accepts what the simulator sends.
//!
//! V3 signs `<url with its query sorted>` then, for a POST with a body, the sorted parameters
//! concatenated as `keyvalue` (after a `?` when the URL has no query, after `.` when it has one),
//! then `.` and the nonce. Those separators are the SDK's, quirks included: they are what must match.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// `scheme://netloc/path` and the raw query of a URL, split the way Python's `urlparse` splits it
/// (the fragment and any `;params` of the last path segment are dropped).
fn split_url(uri: &str) -> (String, &str) {
    let without_fragment = uri.split_once('#').map_or(uri, |(u, _)| u);
    let (base, query) = without_fragment
        .split_once('?')
        .unwrap_or((without_fragment, ""));
    let (scheme, rest) = match base.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => (String::new(), base),
    };
    let (netloc, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    let last_slash = path.rfind('/').unwrap_or(0);
    let path = match path[last_slash..].find(';') {
        Some(i) => &path[..last_slash + i],
        None => path,
    };
    let base = if scheme.is_empty() {
        format!("{netloc}{path}")
    } else {
        format!("{scheme}://{netloc}{path}")
    };
    (base, query)
}

/// Groups parameters by name with each name's values sorted, as the SDK sees a multi-dict.
fn grouped<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in pairs {
        map.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    for values in map.values_mut() {
        values.sort();
    }
    map
}

/// The SDK's `construct_get_url`: the URL with its (decoded) query re-sorted; with
/// `body_follows`, a `?` always and a `.` after a non-empty query.
fn url_part(uri: &str, body_follows: bool) -> String {
    let (mut base, query) = split_url(uri);
    let decoded: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let sorted = grouped(decoded.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let query: Vec<String> = sorted
        .iter()
        .flat_map(|(k, vs)| vs.iter().map(move |v| format!("{k}={v}")))
        .collect();
    let query = query.join("&");
    if !query.is_empty() || body_follows {
        base.push('?');
        base.push_str(&query);
    }
    if !query.is_empty() && body_follows {
        base.push('.');
    }
    base
}

/// The string the V3 signature covers, before `.nonce`. `params` are the form body of a POST; for a
/// GET the parameters are already in `uri`'s query.
pub fn v3_base(method: &str, uri: &str, params: &[(String, String)]) -> String {
    if method.eq_ignore_ascii_case("GET") || params.is_empty() {
        return url_part(uri, false);
    }
    let mut base = url_part(uri, true);
    for (k, vs) in grouped(params.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        for v in vs {
            base.push_str(&k);
            base.push_str(&v);
        }
    }
    base
}

fn hmac_b64(auth_token: &str, message: &str) -> String {
    // HMAC accepts keys of any length, so this never fails; an empty MAC would only fail to verify.
    match HmacSha256::new_from_slice(auth_token.as_bytes()) {
        Ok(mut mac) => {
            mac.update(message.as_bytes());
            STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

/// `X-Plivo-Signature-V3` for a request.
pub fn sign_v3(
    auth_token: &str,
    method: &str,
    uri: &str,
    params: &[(String, String)],
    nonce: &str,
) -> String {
    hmac_b64(
        auth_token,
        &format!("{}.{nonce}", v3_base(method, uri, params)),
    )
}

/// Checks a received V3 header, which may carry several comma-separated signatures (one per token
/// during a rotation); the comparison is in constant time.
pub fn verify_v3(
    auth_token: &str,
    method: &str,
    uri: &str,
    params: &[(String, String)],
    nonce: &str,
    header: &str,
) -> bool {
    let expected = sign_v3(auth_token, method, uri, params, nonce);
    header
        .split(',')
        .any(|candidate| constant_time_eq(candidate.trim().as_bytes(), expected.as_bytes()))
}

/// `X-Plivo-Signature-V2`: the URL without its query, then the nonce.
pub fn sign_v2(auth_token: &str, uri: &str, nonce: &str) -> String {
    let (base, _) = split_url(uri);
    hmac_b64(auth_token, &format!("{base}{nonce}"))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn base_strings_follow_the_sdk_separators() {
        let params = p(&[("To", "+1"), ("CallUUID", "c")]);
        assert_eq!(
            v3_base("POST", "https://h/x", &params),
            "https://h/x?CallUUIDcTo+1"
        );
        assert_eq!(
            v3_base("POST", "https://h/x?b=2&a=x%20y#frag", &params),
            "https://h/x?a=x y&b=2.CallUUIDcTo+1"
        );
        assert_eq!(v3_base("POST", "https://h/x", &[]), "https://h/x");
        assert_eq!(
            v3_base("GET", "HTTPS://h/x;p?b=1&a=", &[]),
            "https://h/x?a=&b=1"
        );
    }

    #[test]
    fn verify_accepts_any_listed_signature() {
        let params = p(&[("A", "1")]);
        let sig = sign_v3("t", "POST", "http://h/", &params, "n");
        assert!(verify_v3(
            "t",
            "POST",
            "http://h/",
            &params,
            "n",
            &format!("bogus,{sig}")
        ));
        assert!(!verify_v3("u", "POST", "http://h/", &params, "n", &sig));
    }
}
