//! The Message API's status callbacks and inbound SMS.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{App, Sim};

#[tokio::test]
async fn messages_report_delivery_or_failure_per_recipient_script() {
    let (sim, app) = (Sim::start().await, App::start().await);
    let (ok, bad) = ("+14155550401", "+14155550402");
    sim.script(bad, json!({ "sms": "fail" })).await;
    let r = sim
        .api(Method::POST, "/Message/")
        .json(&json!({
            "src": "+14155550400", "dst": format!("{ok}<{bad}"), "text": "Your code is 1234",
            "type": "sms", "url": app.url("/status"), "method": "POST", "log": "true",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "message(s) queued");
    let uuids: Vec<String> = body["message_uuid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(uuids.len(), 2);

    // queued + sent + delivered, and queued + failed.
    app.wait("/status", 5).await;
    let statuses = |to: &str| -> Vec<(String, String)> {
        app.hits("/status")
            .iter()
            .filter(|h| h.p("To") == to)
            .map(|h| (h.p("Status").to_owned(), h.p("ErrorCode").to_owned()))
            .collect()
    };
    let s = |v: &str, c: &str| (v.to_owned(), c.to_owned());
    assert_eq!(
        statuses(ok),
        [s("queued", ""), s("sent", ""), s("delivered", "")]
    );
    assert_eq!(statuses(bad), [s("queued", ""), s("failed", "20")]);
    let first = &app.hits("/status")[0];
    for key in [
        "MessageUUID",
        "Units",
        "TotalRate",
        "TotalAmount",
        "Type",
        "From",
    ] {
        assert!(!first.p(key).is_empty(), "{key} missing");
    }
    assert!(uuids.contains(&first.p("MessageUUID").to_owned()));

    let all = sim.get("/sim/messages").await;
    let final_of = |to: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|m| m["to"] == to)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(final_of(ok), "delivered");
    assert_eq!(final_of(bad), "failed");
}

#[tokio::test]
async fn inbound_sms_reaches_the_message_url_and_its_reply_is_sent() {
    let (sim, app) = (Sim::start().await, App::start().await);
    app.xml(
        "/sms",
        r#"<Message src="+14155550499" dst="+14155550410">Thanks for writing</Message>"#,
    );
    let v = sim
        .post(
            "/sim/messages",
            json!({ "from": "+14155550410", "to": "+14155550499", "text": "HELP", "message_url": app.url("/sms") }),
        )
        .await;
    let hit = app.wait("/sms", 1).await;
    assert_eq!(hit.p("MessageUUID"), v["message_uuid"].as_str().unwrap());
    assert_eq!(
        (hit.p("Text"), hit.p("Type"), hit.p("Units")),
        ("HELP", "sms", "1")
    );
    for _ in 0..100 {
        let all = sim.get("/sim/messages").await;
        if let Some(reply) = all
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["direction"] == "outbound")
        {
            assert_eq!(reply["text"], "Thanks for writing");
            assert_eq!(reply["to"], "+14155550410");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the reply was not sent");
}
