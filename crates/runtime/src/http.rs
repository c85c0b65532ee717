//! The HTTP Request node's request, performed outside any transaction. At-least-once: if a worker dies
//! after the request but before its result is published, the message is redelivered and the request
//! repeats with the same `Idempotency-Key`; the token's wait id makes sure only one result is applied.

use phlo_bus::{HttpMessage, Queue, StepMessage};
use phlo_flow::Event;

use crate::{Runtime, RuntimeError};

impl Runtime {
    pub async fn perform_http(&self, msg: &HttpMessage) -> Result<(), RuntimeError> {
        let key = msg.msg_id();
        let result = self.inner.egress.execute(&msg.request, &key).await;
        // It travels back as one NATS message, which has a size limit.
        let result =
            phlo_flow::limits::fit_http_result(result, phlo_flow::limits::MAX_HTTP_RESULT_BYTES);
        let resume = StepMessage::Resume {
            run_id: msg.run_id,
            token: msg.token,
            wait_id: msg.wait_id,
            event: Event::Http(result),
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
        Ok(())
    }
}
