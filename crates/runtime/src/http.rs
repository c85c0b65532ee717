//! The HTTP Request node's request, performed outside any transaction. At-least-once: if a worker dies
//! after the request but before its result is published, the message is redelivered and the request
//! repeats with the same `Idempotency-Key`; the token's wait id makes sure only one result is applied.

use phlo_bus::{HttpMessage, Queue, StepMessage};
use phlo_flow::Event;
use phlo_flow::effect::HttpRequest;

use crate::{Runtime, RuntimeError};

impl Runtime {
    pub async fn perform_http(&self, msg: &HttpMessage) -> Result<(), RuntimeError> {
        let key = msg.msg_id();
        let result = match with_traceparent(&msg.request) {
            Some(request) => self.inner.egress.execute(&request, &key).await,
            None => self.inner.egress.execute(&msg.request, &key).await,
        };
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

/// The request with the current span's trace context as `traceparent`, so that the server can join the
/// run's trace; `None` outside a trace or when the node sets `traceparent` itself (its value wins).
fn with_traceparent(request: &HttpRequest) -> Option<HttpRequest> {
    let set = |name: &str| name.eq_ignore_ascii_case(phlo_bus::trace::TRACEPARENT);
    if request.headers.iter().any(|(name, _)| set(name)) {
        return None;
    }
    let traceparent = phlo_bus::trace::current_traceparent()?;
    let mut request = request.clone();
    request
        .headers
        .push((phlo_bus::trace::TRACEPARENT.to_owned(), traceparent));
    Some(request)
}
