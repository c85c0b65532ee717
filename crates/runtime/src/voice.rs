//! Voice: the runner is the carrier's application server. A voice effect becomes the XML the token's
//! call runs next (a row in `call_instructions`, announced on NATS), and the carrier's callbacks come
//! back to URLs that name the run, token and wait they belong to.

use phlo_bus::{CarrierCommand, CarrierMessage};
use phlo_carrier::voice::{ActionUrls, voice_xml};
use phlo_carrier::xml::{Element, Hangup, Response};
use phlo_flow::effect::VoiceAction;
use phlo_store::{Conn, calls};
use uuid::Uuid;

use crate::outbox::Outbox;
use crate::{Runtime, RuntimeError};

/// Where the carrier calls back for one wait of one token.
pub fn wait_url(base: &str, run_id: Uuid, token: i32, wait_id: i32, kind: &str) -> String {
    format!(
        "{}/v1/carrier/voice/{run_id}/{token}/{wait_id}/{kind}",
        base.trim_end_matches('/')
    )
}

/// The callback URLs of one voice wait; the dial URL carries the attempt of a sequential dial.
pub fn action_urls(
    base: &str,
    run_id: Uuid,
    token: i32,
    wait_id: i32,
    dial_attempt: usize,
) -> ActionUrls {
    let u = |kind: &str| wait_url(base, run_id, token, wait_id, kind);
    ActionUrls {
        digits: u("digits"),
        prompt_finished: u("prompt"),
        dial: format!("{}?attempt={dial_attempt}", u("dial")),
        recording: u("recording"),
        conference: u("conference"),
        screening: Some(u("screening")),
        wait_music: Some(u("wait_music")),
        redirect: u("dial"),
    }
}

/// An Initiate Call leg's answer and hangup URLs.
pub fn leg_url(
    base: &str,
    run_id: Uuid,
    token: i32,
    wait_id: i32,
    leg: usize,
    what: &str,
) -> String {
    format!(
        "{}/legs/{leg}/{what}",
        wait_url(base, run_id, token, wait_id, "call")
    )
}

/// A Send SMS recipient's delivery report URL.
pub fn sms_status_url(
    base: &str,
    run_id: Uuid,
    token: i32,
    wait_id: i32,
    recipient: usize,
) -> String {
    format!(
        "{}/v1/carrier/sms/{run_id}/{token}/{wait_id}/{recipient}/status",
        base.trim_end_matches('/')
    )
}

/// The XML that ends a call: what a call gets when its token has nothing more for it.
pub fn hangup_xml() -> String {
    Response::new(vec![Element::Hangup(Hangup::default())]).render()
}

impl Runtime {
    /// Sets the XML `call_uuid` runs next for a voice action of a parked token (or, with no wait, of a
    /// node that finished at once, e.g. Hangup).
    pub(crate) async fn instruct(
        &self,
        conn: &mut Conn,
        outbox: &mut Outbox,
        call_uuid: &str,
        (run_id, token, wait_id): (Uuid, i32, Option<i32>),
        action: &VoiceAction,
    ) -> Result<(), RuntimeError> {
        // The call may have ended while the token ran other nodes: nobody will fetch this XML, so the
        // wait learns it at once instead of at its timeout.
        if let Some(c) = calls::get(conn, call_uuid)
            .await?
            .filter(|c| c.status == "completed")
        {
            if let Some(wait_id) = wait_id {
                let cause = c.hangup_cause.unwrap_or_else(|| "NORMAL_CLEARING".into());
                let event = phlo_flow::Event::Hangup { cause };
                let msg = phlo_bus::StepMessage::Resume {
                    run_id,
                    token,
                    wait_id,
                    event,
                };
                outbox.step(self, conn, &msg).await?;
            }
            return Ok(());
        }
        let urls = action_urls(
            &self.config().public_url,
            run_id,
            token,
            wait_id.unwrap_or(0),
            0,
        );
        let xml = voice_xml(action, &urls).render();
        let action = serde_json::to_value(action).ok();
        calls::instruct(
            conn,
            &calls::NewInstruction {
                call_uuid,
                run_id,
                token,
                wait_id,
                action: action.as_ref(),
                xml: &xml,
            },
        )
        .await?;
        outbox.notify(call_uuid);
        Ok(())
    }

    /// The token is done with its call: whoever waits for the call's next XML gets a hang-up.
    pub(crate) async fn release_call(
        &self,
        conn: &mut Conn,
        outbox: &mut Outbox,
        call_uuid: &str,
        run_id: Uuid,
        token: i32,
    ) -> Result<(), RuntimeError> {
        let live = calls::get(conn, call_uuid)
            .await?
            .is_some_and(|c| c.status != "completed");
        if live {
            calls::instruct(
                conn,
                &calls::NewInstruction {
                    call_uuid,
                    run_id,
                    token,
                    wait_id: None,
                    action: None,
                    xml: &hangup_xml(),
                },
            )
            .await?;
            outbox.notify(call_uuid);
        }
        Ok(())
    }

    /// Hangs up every live call of a run that ended early (cancelled, timed out, failed by a guard):
    /// the calls may sit in a conference, where no XML reaches them.
    pub(crate) async fn hang_up_run(
        &self,
        conn: &mut Conn,
        outbox: &mut Outbox,
        run_id: Uuid,
    ) -> Result<(), RuntimeError> {
        for call_uuid in calls::live_of_run(conn, run_id).await? {
            self.release_call(conn, outbox, &call_uuid, run_id, -1)
                .await?;
            if self.has_carrier() {
                let msg = CarrierMessage {
                    run_id,
                    token: -1,
                    wait_id: -1,
                    command: CarrierCommand::Hangup { call_uuid },
                };
                outbox.carrier(self, conn, &msg).await?;
            }
        }
        Ok(())
    }
}
