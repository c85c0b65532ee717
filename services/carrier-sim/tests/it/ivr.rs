//! Inbound calls through IVR-style XML: prompts, digits, silence, redirects and application errors.

use serde_json::json;

use crate::support::{App, Sim, events};

const CALLER: &str = "+14155550100";
const NUMBER: &str = "+14155550199";

#[tokio::test]
async fn caller_presses_a_digit_and_the_action_hangs_up() {
    let (sim, app) = (Sim::start().await, App::start().await);
    sim.script(CALLER, json!({ "digits": ["2"] })).await;
    app.xml(
        "/answer",
        &format!(
            r#"<GetDigits action="{}" method="POST" numDigits="1" timeout="5" retries="1">
                 <Speak voice="MAN" language="en-GB">Press 2 for support</Speak>
               </GetDigits>
               <Speak>Nothing pressed</Speak>"#,
            app.url("/ivr")
        ),
    );
    app.xml("/ivr", "<Speak>Goodbye</Speak><Hangup/>");

    let uuid = sim.inbound(CALLER, NUMBER, &app).await;
    let answer = app.wait("/answer", 1).await;
    assert_eq!(answer.p("CallUUID"), uuid);
    assert_eq!(answer.p("Direction"), "inbound");
    assert_eq!(answer.p("CallStatus"), "ringing");
    assert_eq!((answer.p("From"), answer.p("To")), (CALLER, NUMBER));

    let ivr = app.wait("/ivr", 1).await;
    assert_eq!(ivr.p("Digits"), "2");
    assert_eq!(ivr.p("CallStatus"), "in-progress");

    let call = sim.finished(&uuid).await;
    assert_eq!(call["status"], "completed");
    assert_eq!(call["hangup_cause"], "NORMAL_CLEARING");
    let heard: Vec<&str> = events(&call, "heard", Some(CALLER))
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(heard, ["Press 2 for support", "Goodbye"]);
    assert_eq!(events(&call, "heard", None)[0]["voice"], "MAN");
    assert_eq!(events(&call, "pressed", Some(CALLER))[0]["digits"], "2");
    let hung_up = events(&call, "hung_up", None);
    assert_eq!(hung_up[0]["reason"], "Hangup element");

    let hangup = app.wait("/hangup", 1).await;
    assert_eq!(hangup.p("Event"), "Hangup");
    assert_eq!(hangup.p("CallStatus"), "completed");
    assert_eq!(hangup.p("HangupCause"), "NORMAL_CLEARING");
    assert_eq!(hangup.p("HangupSource"), "Answer XML");
    for key in [
        "StartTime",
        "AnswerTime",
        "EndTime",
        "Duration",
        "BillDuration",
    ] {
        assert!(!hangup.p(key).is_empty(), "{key} missing");
    }
}

#[tokio::test]
async fn silent_caller_falls_through_to_the_redirect() {
    let (sim, app) = (Sim::start().await, App::start().await);
    app.xml(
        "/answer",
        &format!(
            r#"<GetDigits action="{}" timeout="5"><Play>https://cdn.example/menu.mp3</Play></GetDigits>
               <Redirect>{}</Redirect>"#,
            app.url("/ivr"),
            app.url("/no-input")
        ),
    );
    app.xml("/no-input", "<Speak>We did not get that</Speak>");

    let uuid = sim.inbound(CALLER, NUMBER, &app).await;
    let redirect = app.wait("/no-input", 1).await;
    assert_eq!(redirect.p("Event"), "Redirect");
    let call = sim.finished(&uuid).await;
    assert!(
        app.hits("/ivr").is_empty(),
        "silence must not post the action"
    );
    assert_eq!(events(&call, "silent", Some(CALLER)).len(), 1);
    assert_eq!(
        events(&call, "heard", None)[0]["url"],
        "https://cdn.example/menu.mp3"
    );
    assert_eq!(
        events(&call, "heard", None)[1]["text"],
        "We did not get that"
    );
    assert_eq!(call["hangup_reason"], "end of XML instructions");
}

#[tokio::test]
async fn caller_hanging_up_abandons_a_pending_prompt() {
    let (sim, app) = (Sim::start().await, App::start().await);
    sim.script(CALLER, json!({ "hangup_after_secs": 2 })).await;
    app.xml(
        "/answer",
        &format!(
            r#"<GetDigits action="{}" timeout="30"><Speak>Press a key</Speak></GetDigits><Redirect>{}</Redirect>"#,
            app.url("/ivr"),
            app.url("/never")
        ),
    );
    let uuid = sim.inbound(CALLER, NUMBER, &app).await;
    let call = sim.finished(&uuid).await;
    assert_eq!(call["hangup_source"], "Caller");
    let hangup = app.wait("/hangup", 1).await;
    assert_eq!(hangup.p("HangupCause"), "NORMAL_CLEARING");
    assert!(app.hits("/ivr").is_empty() && app.hits("/never").is_empty());
}

#[tokio::test]
async fn application_failures_hang_up_with_an_application_error() {
    let (sim, app) = (Sim::start().await, App::start().await);
    app.respond("/answer", 500, "oops");
    let failing = sim.inbound(CALLER, NUMBER, &app).await;

    let bad_xml = App::start().await;
    bad_xml.xml("/answer", "<Say>Hello</Say>");
    let invalid = sim.inbound(CALLER, NUMBER, &bad_xml).await;

    for (uuid, app, needle) in [
        (failing, &app, "HTTP 500"),
        (invalid, &bad_xml, "unknown element <Say>"),
    ] {
        let call = sim.finished(&uuid).await;
        assert_eq!(call["hangup_cause"], "application error");
        let error = events(&call, "app_error", None)[0]["error"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(error.contains(needle), "{error}");
        assert_eq!(
            app.wait("/hangup", 1).await.p("HangupCause"),
            "application error"
        );
    }
}
