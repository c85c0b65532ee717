//! A carrier webhook as the gateway reads it: the form body and query parsed as
//! `application/x-www-form-urlencoded`, then the X-Plivo-Signature-V3 check over arbitrary URL, nonce
//! and signature header. Input: body NUL url NUL nonce NUL signature header NUL token.
//! Properties: the signature we compute verifies, also among other candidates; a header verifies only
//! if it lists that signature; nothing panics on any URL.

#![no_main]

use libfuzzer_sys::fuzz_target;
use phlo_carrier::signature::{signature_v3, verify_signature_v3};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0);
    let body = parts.next().unwrap_or_default();
    let Ok(url) = std::str::from_utf8(parts.next().unwrap_or_default()) else {
        return;
    };
    let Ok(nonce) = std::str::from_utf8(parts.next().unwrap_or_default()) else {
        return;
    };
    let Ok(header) = std::str::from_utf8(parts.next().unwrap_or_default()) else {
        return;
    };
    let token = String::from_utf8_lossy(parts.next().unwrap_or(b"token"));
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let _query: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    for is_post in [true, false] {
        let signed: &[(String, String)] = if is_post { &params } else { &[] };
        let good = signature_v3(&token, url, nonce, signed, is_post);
        assert!(verify_signature_v3(&token, url, nonce, &good, signed, is_post));
        assert!(verify_signature_v3(&token, url, nonce, &format!("{header},{good}"), signed, is_post));
        // Only a header listing our exact signature (HMAC-SHA256, canonical base64) can verify.
        let forged = verify_signature_v3(&token, url, nonce, header, signed, is_post);
        let listed = header.split(',').any(|c| c.trim() == good);
        assert!(!forged || listed, "a header without the signature verified: {header:?}");
    }
});
