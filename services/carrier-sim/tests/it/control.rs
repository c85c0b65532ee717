//! The control API itself: health, scripts, the webhook log and reset.

use serde_json::json;

use crate::support::{App, Sim};

#[tokio::test]
async fn scripts_webhook_log_and_reset() {
    let (sim, app) = (Sim::start().await, App::start().await);
    assert_eq!(sim.get("/healthz").await["status"], "ok");

    // A literal `+` in the path and the same number without it name the same party.
    sim.script(
        "+14155550700",
        json!({ "answer": "busy", "talk_secs": null }),
    )
    .await;
    let script = sim.get("/sim/numbers/14155550700").await;
    assert_eq!(script["script"]["answer"], "busy");
    assert_eq!(script["script"]["talk_secs"], serde_json::Value::Null);
    assert_eq!(script["script"]["record_secs"], 3.0);
    let bad = sim
        .http
        .put(format!("{}/sim/numbers/+1", sim.base))
        .json(&json!({ "answer": "maybe" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    app.xml("/answer", "<Speak>Hello</Speak>");
    let uuid = sim.inbound("+14155550701", "+14155550799", &app).await;
    sim.finished(&uuid).await;
    app.wait("/hangup", 1).await;
    let log = sim.get("/sim/webhooks").await;
    let urls: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls, [app.url("/answer"), app.url("/hangup")]);
    assert_eq!(log[0]["status"], 200);
    assert_eq!(log[0]["method"], "POST");
    assert!(
        log[0]["params"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p[0] == "CallUUID" && p[1] == uuid.as_str())
    );

    let r = sim
        .http
        .post(format!("{}/sim/reset", sim.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(sim.get("/sim/calls").await, json!([]));
    assert_eq!(sim.get("/sim/webhooks").await, json!([]));
    assert_eq!(sim.get("/sim/numbers").await, json!({}));
}
