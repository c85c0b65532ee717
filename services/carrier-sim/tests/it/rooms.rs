//! Conferences and multiparty calls: members, endConferenceOnExit, hold/unhold and adding a
//! participant through the API, kicks.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{App, Sim, events};

const NUMBER: &str = "+14155550599";

/// Waits until the room has `n` members present.
async fn members_present(sim: &Sim, room: &str, n: usize) -> Value {
    for _ in 0..500 {
        let r = sim
            .http
            .get(format!("{}/sim/rooms/{room}", sim.base))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            let v: Value = r.json().await.unwrap();
            let present = v["members"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["state"] != "left")
                .count();
            if present == n {
                return v;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("room {room} never had {n} members");
}

#[tokio::test]
async fn conference_ends_for_everyone_when_the_moderator_leaves() {
    let (sim, app) = (Sim::start().await, App::start().await);
    let (host, guest) = ("+14155550501", "+14155550502");
    sim.script(host, json!({ "hangup_after_secs": 20 })).await;
    app.xml(
        "/answer",
        &format!(
            r#"<Conference callbackUrl="{}" endConferenceOnExit="true" startConferenceOnEnter="true">standup</Conference>
               <Redirect>{}</Redirect>"#,
            app.url("/conf"),
            app.url("/after")
        ),
    );
    let guest_app = App::start().await;
    guest_app.xml(
        "/answer",
        &format!(
            r#"<Conference callbackUrl="{}" muted="true">standup</Conference><Redirect>{}</Redirect>"#,
            guest_app.url("/conf"),
            guest_app.url("/after")
        ),
    );
    guest_app.xml("/after", "<Speak>The conference has ended</Speak>");

    let host_call = sim.inbound(host, NUMBER, &app).await;
    let enter = app.wait("/conf", 1).await;
    assert_eq!(
        (enter.p("ConferenceAction"), enter.p("ConferenceName")),
        ("enter", "standup")
    );
    assert_eq!(enter.p("ConferenceMemberID"), "1");
    let guest_call = sim.inbound(guest, NUMBER, &guest_app).await;
    let room = members_present(&sim, "standup", 2).await;
    assert_eq!(room["kind"], "conference");
    assert_eq!(room["members"][1]["state"], "muted");

    let host_done = sim.finished(&host_call).await;
    assert_eq!(host_done["hangup_source"], "Caller");
    let exit = app.wait("/conf", 2).await;
    assert_eq!(exit.p("ConferenceAction"), "exit");
    assert_eq!(exit.p("ConferenceUUID"), enter.p("ConferenceUUID"));
    assert!(
        app.hits("/after").is_empty(),
        "the host hung up: no Redirect"
    );

    let guest_exit = guest_app.wait("/conf", 2).await;
    assert_eq!(
        (
            guest_exit.p("ConferenceAction"),
            guest_exit.p("ConferenceMemberID")
        ),
        ("exit", "2")
    );
    let guest_done = sim.finished(&guest_call).await;
    assert_eq!(
        events(&guest_done, "left", None)[0]["reason"],
        "the room ended"
    );
    assert_eq!(
        events(&guest_done, "heard", None)[0]["text"],
        "The conference has ended"
    );
    let room = sim.get("/sim/rooms/standup").await;
    assert_eq!(room["ended"], true);
    assert!(
        room["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "left")
    );
}

#[tokio::test]
async fn mpc_members_are_held_added_and_kicked_through_the_api() {
    let (sim, app) = (Sim::start().await, App::start().await);
    let (customer, agent) = ("+14155550510", "+14155550511");
    sim.script(agent, json!({ "talk_secs": null })).await;
    app.xml(
        "/answer",
        &format!(
            r#"<MultiPartyCall role="customer" statusCallbackUrl="{}" statusCallbackMethod="POST"
                 customerHoldMusicUrl="https://cdn.example/hold.mp3">support-42</MultiPartyCall>"#,
            app.url("/mpc")
        ),
    );
    let customer_call = sim.inbound(customer, NUMBER, &app).await;
    members_present(&sim, "support-42", 1).await;

    let r = sim
        .api(Method::POST, "/MultiPartyCall/name_support-42/Participant/")
        .json(&json!({
            "role": "Agent", "from": NUMBER, "to": agent,
            "status_callback_url": app.url("/mpc-agent"), "status_callback_method": "POST",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let added: Value = r.json().await.unwrap();
    assert_eq!(added["message"], "add participant action initiated");
    let agent_call = added["calls"][0]["call_uuid"].as_str().unwrap().to_owned();
    let room = members_present(&sim, "support-42", 2).await;
    assert_eq!(room["members"][1]["role"], "agent");
    assert_eq!(room["members"][1]["call_uuid"], agent_call);

    let member = |id: &str| format!("/MultiPartyCall/name_support-42/Member/{id}/");
    let r = sim
        .api(Method::POST, &member("1"))
        .json(&json!({ "hold": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        sim.get("/sim/rooms/support-42").await["members"][0]["state"],
        "on_hold"
    );
    sim.api(Method::POST, &member("1"))
        .json(&json!({ "hold": false }))
        .send()
        .await
        .unwrap();
    let r = sim.api(Method::DELETE, &member("2")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    sim.finished(&agent_call).await;

    let r = sim
        .api(Method::DELETE, &format!("/Call/{customer_call}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let done = sim.finished(&customer_call).await;
    assert_eq!(events(&done, "held", None).len(), 1);
    assert_eq!(events(&done, "unheld", None).len(), 1);
    assert_eq!(
        events(&done, "heard", None)[0]["url"],
        "https://cdn.example/hold.mp3"
    );

    app.wait("/mpc", 6).await;
    let names = |path: &str| -> Vec<String> {
        app.hits(path)
            .iter()
            .map(|h| h.p("EventName").to_owned())
            .collect()
    };
    assert_eq!(
        names("/mpc"),
        [
            "MPCStart",
            "ParticipantJoin",
            "ParticipantHold",
            "ParticipantUnhold",
            "ParticipantExit",
            "MPCEnd"
        ]
    );
    assert_eq!(names("/mpc-agent"), ["ParticipantJoin", "ParticipantExit"]);
    let hold = &app.hits("/mpc")[2];
    assert_eq!(
        (
            hold.p("MPCName"),
            hold.p("MemberID"),
            hold.p("ParticipantRole")
        ),
        ("support-42", "1", "customer")
    );
    assert_eq!(hold.p("ParticipantCallUUID"), customer_call);
    let agent_done = sim.call(&agent_call).await;
    assert_eq!(
        events(&agent_done, "left", None)[0]["reason"],
        "kicked through the API"
    );
}
