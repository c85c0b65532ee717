//! Carrier requests (place a call, send an SMS, hang up), made outside any transaction and at most once:
//! the request is claimed in Postgres first, so a redelivered message never calls or texts twice. A
//! claim whose request was lost to a crash is resolved by the wait's timer. Refusals come back as events.

use phlo_bus::{CarrierCommand, CarrierMessage, Queue, StepMessage};
use phlo_carrier::{CarrierError, OutboundCall, OutboundMessage};
use phlo_flow::Event;
use phlo_flow::event::SmsReport;

use crate::effects::failed_call;
use crate::{Runtime, RuntimeError};

impl Runtime {
    pub async fn perform_carrier(&self, msg: &CarrierMessage) -> Result<(), RuntimeError> {
        let Some(carrier) = self.carrier().cloned() else {
            tracing::warn!(msg_id = %msg.msg_id(), "carrier message but no carrier configured; dropped");
            return Ok(());
        };
        {
            let mut conn = self.pool().acquire().await?;
            if !phlo_store::calls::claim_request(&mut conn, &msg.msg_id()).await? {
                return Ok(());
            }
        }
        // No connection is held during the request: the carrier may call our webhooks before it
        // answers, and those need the pool (an embedded store has a single connection).
        let event = match self.request(carrier.as_ref(), msg).await {
            Ok(event) => event,
            // The carrier answered that it failed (5xx, 429): it did not take the request, so giving
            // the claim back and retrying cannot duplicate it. A timeout is ambiguous and is not retried.
            Err(e)
                if matches!(
                    e,
                    CarrierError::Unavailable {
                        status: Some(_),
                        ..
                    }
                ) =>
            {
                let mut conn = self.pool().acquire().await?;
                phlo_store::calls::release_request(&mut conn, &msg.msg_id()).await?;
                return Err(RuntimeError::Carrier(e.to_string()));
            }
            Err(e) => Some(self.refused(msg, &e)),
        };
        if let Some(event) = event {
            let resume = StepMessage::Resume {
                run_id: msg.run_id,
                token: msg.token,
                wait_id: msg.wait_id,
                event,
            };
            let subject = self.bus().subject(Queue::Step);
            self.bus()
                .publish(
                    &subject,
                    &resume.msg_id(),
                    resume.to_bytes(),
                    phlo_bus::trace::current_headers(),
                )
                .await?;
        }
        Ok(())
    }

    /// Makes the request; `Ok(Some(event))` when its answer resumes the wait at once (a queued SMS).
    async fn request(
        &self,
        carrier: &dyn phlo_carrier::Carrier,
        msg: &CarrierMessage,
    ) -> Result<Option<Event>, CarrierError> {
        Ok(match &msg.command {
            CarrierCommand::PlaceCall {
                call,
                answer_url,
                hangup_url,
            } => {
                let request = OutboundCall {
                    from: call.from.clone(),
                    to: call.to.clone(),
                    answer_url: answer_url.clone(),
                    hangup_url: hangup_url.clone(),
                    ring_timeout_secs: call.ring_timeout_secs,
                    machine_detection: call.machine_detection,
                    ..OutboundCall::default()
                };
                carrier.place_call(request).await?;
                None
            }
            CarrierCommand::SendSms { sms, status_url } => {
                let message = OutboundMessage {
                    src: sms.from.clone(),
                    dst: sms.to.clone(),
                    text: sms.text.clone(),
                    media_urls: sms.media_urls.clone(),
                    status_url: Some(status_url.clone()),
                    log: sms.log,
                };
                let uuids = carrier.send_message(message).await?;
                // Queued: the uuid is known now; the delivery report settles the state.
                Some(Event::Sms(SmsReport {
                    recipient: sms.recipient,
                    message_uuid: uuids.first().cloned().unwrap_or_default(),
                    status: "queued".into(),
                    ..Default::default()
                }))
            }
            CarrierCommand::RecordCall { call_uuid } => {
                if let Err(e) = carrier.record_call(call_uuid, None).await {
                    tracing::warn!(call_uuid, error = %e, "recording a call failed");
                }
                None
            }
            CarrierCommand::Hangup { call_uuid } => {
                if let Err(e) = carrier.hangup_call(call_uuid).await
                    && !e.is_not_found()
                {
                    tracing::warn!(call_uuid, error = %e, "hanging up a call failed");
                }
                None
            }
        })
    }

    /// The event for a request the carrier refused: the node takes its failure state.
    fn refused(&self, msg: &CarrierMessage, e: &CarrierError) -> Event {
        let cause = format!("carrier refused: {e}");
        match &msg.command {
            CarrierCommand::PlaceCall { call, .. } => Event::Call(failed_call(
                call.leg,
                call.from.clone(),
                call.to.clone(),
                &cause,
            )),
            CarrierCommand::SendSms { sms, .. } => Event::Sms(SmsReport {
                recipient: sms.recipient,
                status: "failed".into(),
                error_code: Some(cause),
                ..Default::default()
            }),
            // Never refused: their errors are logged where they are made.
            CarrierCommand::Hangup { .. } | CarrierCommand::RecordCall { .. } => {
                Event::Hangup { cause }
            }
        }
    }
}
