//! The Call API: outbound calls whose callee is busy, does not answer, answers, or is a machine;
//! bulk calls; live transfer and hang-up; authentication.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{App, Sim, events};

const FROM: &str = "+14155550100";

async fn call(sim: &Sim, app: &App, to: &str, extra: Value) -> Value {
    let mut body = json!({
        "from": FROM, "to": to,
        "answer_url": app.url("/answer"), "answer_method": "POST",
        "hangup_url": app.url("/hangup"), "ring_url": app.url("/ring"),
        "ring_timeout": 10,
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let r = sim
        .api(Method::POST, "/Call/")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

#[tokio::test]
async fn busy_and_unanswered_callees_report_their_status_to_the_hangup_url() {
    let (sim, app) = (Sim::start().await, App::start().await);
    sim.script("+14155550101", json!({ "answer": "busy" }))
        .await;
    sim.script("+14155550102", json!({ "answer": "no_answer" }))
        .await;

    let busy = call(&sim, &app, "+14155550101", json!({})).await;
    assert_eq!(busy["message"], "call fired");
    let hangup = app.wait("/hangup", 1).await;
    assert_eq!(
        hangup.p("RequestUUID"),
        busy["request_uuid"].as_str().unwrap()
    );
    assert_eq!(
        (hangup.p("CallStatus"), hangup.p("HangupCause")),
        ("busy", "USER_BUSY")
    );
    assert_eq!(app.wait("/ring", 1).await.p("Event"), "Ring");

    call(&sim, &app, "+14155550102", json!({ "ring_timeout": 5 })).await;
    let hangup = app.wait("/hangup", 2).await;
    assert_eq!(
        (hangup.p("CallStatus"), hangup.p("HangupCause")),
        ("no-answer", "NO_ANSWER")
    );
    assert_eq!(hangup.p("Duration"), "0");
    assert!(app.hits("/answer").is_empty());
}

#[tokio::test]
async fn answered_call_runs_the_answer_xml_and_bulk_calls_fire_one_request_each() {
    let (sim, app) = (Sim::start().await, App::start().await);
    app.xml("/answer", r#"<Speak>Your order shipped</Speak>"#);
    let fired = call(&sim, &app, "+14155550103<+14155550104", json!({})).await;
    assert_eq!(fired["message"], "calls fired");
    let request_uuids = fired["request_uuid"].as_array().unwrap();
    assert_eq!(request_uuids.len(), 2);

    let answer = app.wait("/answer", 1).await;
    assert_eq!(answer.p("Direction"), "outbound");
    assert_eq!(answer.p("CallStatus"), "in-progress");
    assert_eq!(answer.p("Event"), "StartApp");
    assert_eq!(answer.p("ALegUUID"), answer.p("CallUUID"));
    assert!(!answer.params.contains_key("Machine"));
    assert!(request_uuids.iter().any(|r| r == answer.p("RequestUUID")));

    let done = sim.finished(answer.p("CallUUID")).await;
    assert_eq!(done["status"], "completed");
    let callee = done["to"].as_str().unwrap();
    assert_eq!(
        events(&done, "heard", Some(callee))[0]["text"],
        "Your order shipped"
    );
    let hangup = app.wait("/hangup", 1).await;
    assert_eq!(
        (hangup.p("Event"), hangup.p("CallStatus")),
        ("Hangup", "completed")
    );
}

#[tokio::test]
async fn voicemail_is_reported_as_a_machine_when_detection_is_asked() {
    let (sim, app) = (Sim::start().await, App::start().await);
    sim.script("+14155550105", json!({ "answer": "voicemail" }))
        .await;
    app.xml("/answer", r#"<Speak>Sorry we missed you</Speak><Hangup/>"#);
    call(
        &sim,
        &app,
        "+14155550105",
        json!({ "machine_detection": "true", "machine_detection_url": app.url("/machine") }),
    )
    .await;
    let answer = app.wait("/answer", 1).await;
    assert_eq!(answer.p("Machine"), "true");
    let machine = app.wait("/machine", 1).await;
    assert_eq!(
        (machine.p("Machine"), machine.p("Event")),
        ("true", "MachineDetection")
    );
    let done = sim.finished(answer.p("CallUUID")).await;
    assert_eq!(events(&done, "machine_detected", None).len(), 1);
    assert_eq!(
        events(&done, "heard", None)[0]["text"],
        "Sorry we missed you"
    );
}

#[tokio::test]
async fn live_calls_can_be_transferred_and_hung_up() {
    let (sim, app) = (Sim::start().await, App::start().await);
    app.xml("/answer", r#"<Wait length="600"/>"#);
    app.xml(
        "/moved",
        r#"<Speak>You were transferred</Speak><Wait length="600"/>"#,
    );
    call(&sim, &app, "+14155550106", json!({})).await;
    let uuid = app.wait("/answer", 1).await.p("CallUUID").to_owned();

    let r = sim
        .api(Method::POST, &format!("/Call/{uuid}/"))
        .json(&json!({ "legs": "aleg", "aleg_url": app.url("/moved"), "aleg_method": "POST" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(app.wait("/moved", 1).await.p("Event"), "Transfer");

    // Wait for the transferred call to be speaking before hanging it up.
    for _ in 0..100 {
        if !events(&sim.call(&uuid).await, "heard", None).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let r = sim
        .api(Method::DELETE, &format!("/Call/{uuid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let done = sim.finished(&uuid).await;
    assert_eq!(done["hangup_source"], "API Request");
    assert_eq!(events(&done, "transferred", None).len(), 1);
    assert_eq!(
        events(&done, "heard", None)[0]["text"],
        "You were transferred"
    );
    assert_eq!(
        app.wait("/hangup", 1).await.p("HangupSource"),
        "API Request"
    );

    let again = sim
        .api(Method::DELETE, &format!("/Call/{uuid}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn the_api_requires_the_account_credentials() {
    let sim = Sim::start().await;
    let wrong = sim
        .http
        .post(format!(
            "{}/v1/Account/{}/Call/",
            sim.base,
            crate::support::AUTH_ID
        ))
        .basic_auth(crate::support::AUTH_ID, Some("wrong"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert!(body["api_id"].is_string() && body["error"].is_string());

    let missing = sim
        .api(Method::POST, "/Call")
        .json(&json!({ "from": FROM }))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"], "to parameter is missing");
}
