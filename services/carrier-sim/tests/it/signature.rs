//! Webhook signatures. The vectors below were produced by the real Plivo Python SDK (4.63.0,
//! `plivo.utils.signature_v3`, installed with `pip install plivo==4.63.0` in a virtualenv) by running
//! `signature_vectors.py` (next to this file); the script also asserts that the SDK's own
//! `validate_v3_signature` accepts each one.

use phlo_carrier_sim::signature::{sign_v3, v3_base, verify_v3};
use serde_json::json;

use crate::support::{App, Sim, TOKEN};

const NONCE: &str = "12345678901234567890";

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn matches_the_python_sdk_byte_for_byte() {
    let cases = [
        (
            "POST",
            "http://127.0.0.1:8080/answer?b=2&a=x%20y",
            pairs(&[
                ("CallUUID", "c-1"),
                ("From", "+14155550100"),
                ("To", "+14155550101"),
                ("Digits", "12#"),
                ("Text", "héllo wörld"),
            ]),
            "http://127.0.0.1:8080/answer?a=x y&b=2.CallUUIDc-1Digits12#From+14155550100Texthéllo wörldTo+14155550101",
            "0t+maz7467IXWXEvnxF8vNU/VmHkPs6Q2Yl9Q1H4ImA=",
        ),
        (
            "POST",
            "https://app.example.com/cb/dial",
            pairs(&[("DialStatus", "completed"), ("CallUUID", "c-2")]),
            "https://app.example.com/cb/dial?CallUUIDc-2DialStatuscompleted",
            "O6rnL27Lulf6gq3dmXAFM9r8REDmFjAEZ/8RfIIrshc=",
        ),
        (
            "POST",
            "https://app.example.com/empty",
            vec![],
            "https://app.example.com/empty",
            "hAc9Fr0IBIx35Qdnxg2vOi8O3L4qSSf7F9oZVKHnr3k=",
        ),
        (
            "GET",
            "https://app.example.com/status?Status=delivered&MessageUUID=m-1&To=%2B14155550101",
            vec![],
            "https://app.example.com/status?MessageUUID=m-1&Status=delivered&To=+14155550101",
            "Kxl5ah+sgpFHcOfE5nsigQq3Xa5h03dVZSMUrcHzULg=",
        ),
    ];
    for (method, uri, params, base, signature) in cases {
        assert_eq!(v3_base(method, uri, &params), base);
        assert_eq!(sign_v3(TOKEN, method, uri, &params, NONCE), signature);
        assert!(verify_v3(TOKEN, method, uri, &params, NONCE, signature));
        assert!(!verify_v3(
            "other-token",
            method,
            uri,
            &params,
            NONCE,
            signature
        ));
    }
}

#[tokio::test]
async fn every_webhook_carries_a_verifiable_signature() {
    let (sim, app) = (Sim::start().await, App::start().await);
    app.xml("/answer", "<Speak>Hi</Speak>");
    let uuid = sim.inbound("+14155550600", "+14155550699", &app).await;
    sim.finished(&uuid).await;
    // A GET callback too: the message status URL with a query of its own.
    let status_url = format!("{}?tenant=a%20b", app.url("/status"));
    sim.api(reqwest::Method::POST, "/Message/")
        .json(&json!({ "src": "+1415", "dst": "+14155550601", "text": "x", "url": status_url, "method": "GET" }))
        .send()
        .await
        .unwrap();
    app.wait("/status", 3).await;

    for path in ["/answer", "/hangup", "/status"] {
        for hit in app.hits(path) {
            let sig = hit.headers["x-plivo-signature-v3"].to_str().unwrap();
            let nonce = hit.headers["x-plivo-signature-v3-nonce"].to_str().unwrap();
            assert_eq!(nonce.len(), 20);
            let body = if hit.method == "GET" {
                vec![]
            } else {
                hit.pairs.clone()
            };
            assert!(
                verify_v3(TOKEN, &hit.method, &hit.url, &body, nonce, sig),
                "{} {} does not verify",
                hit.method,
                hit.url
            );
        }
    }
    assert_eq!(app.hits("/status")[0].method, "GET");
    assert_eq!(app.hits("/status")[0].p("tenant"), "a b");
}
