//! `Dial`: call screening (accepted and refused) and parallel dialling where one callee answers.

use serde_json::{Value, json};

use crate::support::{App, Sim, events};

const CALLER: &str = "+14155550200";
const NUMBER: &str = "+14155550299";

/// The legs the call with `uuid` dialled, by number.
async fn legs(sim: &Sim, uuid: &str) -> Vec<Value> {
    let all = sim.get("/sim/calls").await;
    all.as_array()
        .unwrap()
        .iter()
        .filter(|c| c["parent_call_uuid"] == uuid)
        .cloned()
        .collect()
}

fn screened_dial(app: &App, callee: &str) -> String {
    format!(
        r#"<Dial action="{}" timeout="20" callerId="{NUMBER}" confirmSound="{}" confirmKey="1">
             <Number sendDigits="ww12">{callee}</Number>
           </Dial>"#,
        app.url("/dial"),
        app.url("/confirm")
    )
}

#[tokio::test]
async fn screened_callee_who_presses_the_key_is_bridged() {
    let (sim, app) = (Sim::start().await, App::start().await);
    let callee = "+14155550201";
    sim.script(callee, json!({ "confirm_key": "1", "talk_secs": 3 }))
        .await;
    app.xml("/answer", &screened_dial(&app, callee));
    app.xml("/confirm", "<Speak>Press 1 to take this call</Speak>");
    app.xml("/dial", "<Speak>The call has ended</Speak>");

    let uuid = sim.inbound(CALLER, NUMBER, &app).await;
    let dial = app.wait("/dial", 1).await;
    assert_eq!(dial.p("DialStatus"), "completed");
    assert_eq!(dial.p("DialRingStatus"), "true");
    assert_eq!(dial.p("DialALegUUID"), uuid);
    let confirm = app.wait("/confirm", 1).await;
    assert_eq!((confirm.p("To"), confirm.p("From")), (callee, NUMBER));

    let call = sim.finished(&uuid).await;
    assert_eq!(events(&call, "dialled", None)[0]["number"], callee);
    assert_eq!(events(&call, "bridged", Some(CALLER))[0]["with"], callee);
    assert_eq!(
        events(&call, "heard", Some(CALLER))[0]["text"],
        "The call has ended"
    );

    let leg = &legs(&sim, &uuid).await[0];
    assert_eq!(leg["uuid"], dial.p("DialBLegUUID"));
    assert_eq!(leg["status"], "completed");
    assert_eq!(leg["hangup_source"], "Callee");
    assert_eq!(
        events(leg, "heard", Some(callee))[0]["text"],
        "Press 1 to take this call"
    );
    assert_eq!(events(leg, "pressed", Some(callee))[0]["digits"], "1");
    assert_eq!(
        events(leg, "received_digits", Some(callee))[0]["digits"],
        "ww12"
    );
    assert_eq!(events(leg, "bridged", Some(callee)).len(), 1);
}

#[tokio::test]
async fn screened_callee_who_presses_another_key_is_refused() {
    let (sim, app) = (Sim::start().await, App::start().await);
    let callee = "+14155550202";
    sim.script(callee, json!({ "confirm_key": "9" })).await;
    app.xml("/answer", &screened_dial(&app, callee));
    app.xml("/confirm", "<Speak>Press 1 to take this call</Speak>");
    app.xml("/dial", "<Hangup/>");

    let uuid = sim.inbound(CALLER, NUMBER, &app).await;
    let dial = app.wait("/dial", 1).await;
    assert_eq!(dial.p("DialStatus"), "no-answer");
    assert_eq!(dial.p("DialBLegUUID"), "");
    sim.finished(&uuid).await;
    let leg = &legs(&sim, &uuid).await[0];
    assert_eq!(leg["hangup_reason"], "did not press the confirm key");
    assert_eq!(events(leg, "pressed", Some(callee))[0]["digits"], "9");
    assert!(events(leg, "bridged", None).is_empty());
}

#[tokio::test]
async fn parallel_dial_bridges_the_first_to_answer_and_cancels_the_rest() {
    let (sim, app) = (Sim::start().await, App::start().await);
    let (slow, fast, busy) = ("+14155550203", "+14155550204", "+14155550205");
    sim.script(slow, json!({ "answer_after_secs": 8 })).await;
    sim.script(fast, json!({ "answer_after_secs": 2, "talk_secs": 2 }))
        .await;
    sim.script(busy, json!({ "answer": "busy" })).await;
    app.xml(
        "/answer",
        &format!(
            r#"<Dial action="{}" timeout="20"><Number>{slow}</Number><Number>{fast}</Number><Number>{busy}</Number></Dial>"#,
            app.url("/dial")
        ),
    );
    app.xml("/dial", "<Hangup/>");

    let uuid = sim.inbound(CALLER, NUMBER, &app).await;
    let dial = app.wait("/dial", 1).await;
    assert_eq!(dial.p("DialStatus"), "completed");
    sim.finished(&uuid).await;
    let legs = legs(&sim, &uuid).await;
    let by = |n: &str| legs.iter().find(|l| l["to"] == n).unwrap().clone();
    assert_eq!(by(fast)["uuid"], dial.p("DialBLegUUID"));
    assert_eq!(by(fast)["status"], "completed");
    assert_eq!(by(slow)["status"], "cancel");
    assert_eq!(by(slow)["hangup_cause"], "ORIGINATOR_CANCEL");
    assert_eq!(by(busy)["status"], "busy");
}

#[tokio::test]
async fn nobody_answering_reports_no_answer() {
    let (sim, app) = (Sim::start().await, App::start().await);
    let callee = "+14155550206";
    sim.script(callee, json!({ "answer": "no_answer" })).await;
    app.xml(
        "/answer",
        &format!(
            r#"<Dial action="{}" timeout="5"><Number>{callee}</Number></Dial>"#,
            app.url("/dial")
        ),
    );
    let uuid = sim.inbound(CALLER, NUMBER, &app).await;
    let dial = app.wait("/dial", 1).await;
    assert_eq!(
        (
            dial.p("DialStatus"),
            dial.p("DialHangupCause"),
            dial.p("DialRingStatus")
        ),
        ("no-answer", "NO_ANSWER", "true")
    );
    sim.finished(&uuid).await;
}
