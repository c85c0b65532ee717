//! `Record`: the recording's parameters, and delivery when the caller hangs up mid-message.

use serde_json::json;

use crate::support::{App, Sim, events};

const NUMBER: &str = "+14155550399";

fn record_xml(app: &App) -> String {
    format!(
        r#"<Speak>Leave a message after the beep</Speak>
           <Record action="{}" maxLength="60" fileFormat="mp3" playBeep="true" callbackUrl="{}"/>"#,
        app.url("/recorded"),
        app.url("/recording-callback")
    )
}

#[tokio::test]
async fn record_posts_the_recording_and_runs_the_action_xml() {
    let (sim, app) = (Sim::start().await, App::start().await);
    let caller = "+14155550300";
    sim.script(caller, json!({ "record_secs": 4 })).await;
    app.xml("/answer", &record_xml(&app));
    app.xml("/recorded", "<Speak>Thanks, goodbye</Speak>");

    let uuid = sim.inbound(caller, NUMBER, &app).await;
    let rec = app.wait("/recorded", 1).await;
    let id = rec.p("RecordingID");
    assert_eq!(
        rec.p("RecordUrl"),
        format!("http://sim.local/recordings/{id}.mp3")
    );
    assert_eq!(rec.p("RecordingDuration"), "4");
    assert_eq!(rec.p("RecordingDurationMs"), "4000");
    let start: i64 = rec.p("RecordingStartMs").parse().unwrap();
    let end: i64 = rec.p("RecordingEndMs").parse().unwrap();
    assert_eq!(end - start, 4000);
    assert!(start > 1_600_000_000_000, "epoch milliseconds");
    assert_eq!(
        app.wait("/recording-callback", 1).await.p("RecordingID"),
        id
    );

    let call = sim.finished(&uuid).await;
    let recorded = &events(&call, "recorded", Some(caller))[0];
    assert_eq!(recorded["recording_id"], id);
    assert_eq!(recorded["beep"], true);
    assert_eq!(events(&call, "heard", None)[1]["text"], "Thanks, goodbye");
}

#[tokio::test]
async fn hanging_up_while_recording_still_delivers_the_recording() {
    let (sim, app) = (Sim::start().await, App::start().await);
    let caller = "+14155550301";
    sim.script(caller, json!({ "record_secs": 30, "hangup_after_secs": 6 }))
        .await;
    app.xml("/answer", &record_xml(&app));
    app.xml("/recorded", "<Speak>Never heard</Speak>");

    let uuid = sim.inbound(caller, NUMBER, &app).await;
    let rec = app.wait("/recorded", 1).await;
    let secs: i64 = rec.p("RecordingDuration").parse().unwrap();
    assert!(
        (1..30).contains(&secs),
        "recorded {secs} s of a 30 s message"
    );
    let call = sim.finished(&uuid).await;
    assert_eq!(call["hangup_source"], "Caller");
    assert_eq!(
        events(&call, "heard", None).len(),
        1,
        "the action XML is not played"
    );
}
