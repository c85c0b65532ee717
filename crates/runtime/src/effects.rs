//! Sending a step's effects on their way, inside the step's transaction: HTTP requests and carrier
//! requests become outbox messages, voice actions become the call's next XML.

use phlo_bus::{CarrierCommand, CarrierMessage, HttpMessage, StepMessage};
use phlo_flow::Event;
use phlo_flow::effect::Effect;
use phlo_flow::event::{CallDetails, CallOutcome, CallResult, SmsReport};
use phlo_store::Conn;
use phlo_store::tokens::Token;
use uuid::Uuid;

use crate::outbox::Outbox;
use crate::voice::{leg_url, sms_status_url};
use crate::{Runtime, RuntimeError};

impl Runtime {
    /// `wait_id` is the wait the effect's answer resumes; `None` for a node that finished at once.
    pub(crate) async fn dispatch(
        &self,
        conn: &mut Conn,
        outbox: &mut Outbox,
        t: &Token,
        wait_id: Option<i32>,
        effect: Effect,
    ) -> Result<(), RuntimeError> {
        let (run_id, token) = (t.run_id, t.token);
        let wait = wait_id.unwrap_or(-1);
        let base = &self.config().public_url;
        match effect {
            Effect::Http(request) => {
                outbox
                    .http(
                        self,
                        conn,
                        &HttpMessage {
                            run_id,
                            token,
                            wait_id: wait,
                            request,
                        },
                    )
                    .await
            }
            Effect::Voice(action) => match &t.context.0.call {
                Some(call) => {
                    self.instruct(conn, outbox, &call.uuid, (run_id, token, wait_id), &action)
                        .await
                }
                // The engine refuses voice nodes without a call; there is nothing to act on.
                None => Ok(()),
            },
            Effect::SendSms(sms) if self.has_carrier() => {
                let status_url = sms_status_url(base, run_id, token, wait, sms.recipient);
                self.carrier_request(
                    conn,
                    outbox,
                    t,
                    wait,
                    CarrierCommand::SendSms { sms, status_url },
                )
                .await
            }
            Effect::PlaceCall(call) if self.has_carrier() => {
                let answer_url = leg_url(base, run_id, token, wait, call.leg, "answer");
                let hangup_url = leg_url(base, run_id, token, wait, call.leg, "hangup");
                let command = CarrierCommand::PlaceCall {
                    call,
                    answer_url,
                    hangup_url,
                };
                self.carrier_request(conn, outbox, t, wait, command).await
            }
            Effect::RecordCall { call_uuid } if self.has_carrier() => {
                self.carrier_request(
                    conn,
                    outbox,
                    t,
                    wait,
                    CarrierCommand::RecordCall { call_uuid },
                )
                .await
            }
            // Without a carrier there is no call to record (calls come from a carrier).
            Effect::RecordCall { .. } => Ok(()),
            Effect::SendSms(sms) => {
                let event = Event::Sms(no_carrier_sms(sms.recipient));
                outbox
                    .step(self, conn, &resume(run_id, token, wait, event))
                    .await
            }
            Effect::PlaceCall(call) => {
                let event = Event::Call(failed_call(
                    call.leg,
                    call.from,
                    call.to,
                    "no carrier configured",
                ));
                outbox
                    .step(self, conn, &resume(run_id, token, wait, event))
                    .await
            }
            // Counters run inline, in the step's transaction.
            Effect::Counter(_) => Ok(()),
            Effect::Callback(cb) => self.record_callback(conn, outbox, run_id, cb).await,
        }
    }
}

impl Runtime {
    /// Queues a request to the carrier's REST API, answered for the token's wait `wait_id`.
    async fn carrier_request(
        &self,
        conn: &mut Conn,
        outbox: &mut Outbox,
        t: &Token,
        wait_id: i32,
        command: CarrierCommand,
    ) -> Result<(), RuntimeError> {
        let msg = CarrierMessage {
            run_id: t.run_id,
            token: t.token,
            wait_id,
            command,
        };
        outbox.carrier(self, conn, &msg).await
    }
}

fn resume(run_id: Uuid, token: i32, wait_id: i32, event: Event) -> StepMessage {
    StepMessage::Resume {
        run_id,
        token,
        wait_id,
        event,
    }
}

fn no_carrier_sms(recipient: usize) -> SmsReport {
    SmsReport {
        recipient,
        status: "failed".into(),
        error_code: Some("no_carrier".into()),
        ..Default::default()
    }
}

/// The event for a leg the carrier refused to place (or could not be asked to).
pub(crate) fn failed_call(leg: usize, from: String, to: String, cause: &str) -> CallResult {
    CallResult {
        leg,
        outcome: CallOutcome::Failed,
        call: CallDetails {
            to,
            from,
            hangup_cause: Some(cause.to_owned()),
            ..Default::default()
        },
    }
}
