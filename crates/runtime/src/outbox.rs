//! Messages written in a step's transaction and published right after it commits.

use bytes::Bytes;
use phlo_bus::{CallbackMessage, CarrierMessage, HttpMessage, Queue, StepMessage};
use phlo_store::PgConnection;

use crate::{Runtime, RuntimeError};

struct Row {
    id: i64,
    subject: String,
    msg_id: String,
    payload: Vec<u8>,
}

/// The outbox rows of one transaction, to publish once it commits.
#[derive(Default)]
pub(crate) struct Outbox {
    rows: Vec<Row>,
    /// Calls with a new instruction, announced after commit to the webhook waiting for it.
    notify: Vec<String>,
    /// Statuses of the runs this transaction ended, counted once it committed.
    ended: Vec<&'static str>,
}

impl Outbox {
    pub async fn step(
        &mut self,
        rt: &Runtime,
        conn: &mut PgConnection,
        msg: &StepMessage,
    ) -> Result<(), RuntimeError> {
        let subject = rt.bus().subject(Queue::Step);
        self.push(conn, subject, msg.msg_id(), msg.to_bytes().to_vec())
            .await
    }

    pub async fn http(
        &mut self,
        rt: &Runtime,
        conn: &mut PgConnection,
        msg: &HttpMessage,
    ) -> Result<(), RuntimeError> {
        let subject = rt.bus().subject(Queue::Http);
        self.push(conn, subject, msg.msg_id(), msg.to_bytes().to_vec())
            .await
    }

    pub async fn carrier(
        &mut self,
        rt: &Runtime,
        conn: &mut PgConnection,
        msg: &CarrierMessage,
    ) -> Result<(), RuntimeError> {
        let subject = rt.bus().subject(Queue::Carrier);
        self.push(conn, subject, msg.msg_id(), msg.to_bytes().to_vec())
            .await
    }

    /// `msg_id` is the message's own id for a first publish, a suffixed one for a re-publish.
    pub async fn callback(
        &mut self,
        rt: &Runtime,
        conn: &mut PgConnection,
        msg: &CallbackMessage,
        msg_id: String,
    ) -> Result<(), RuntimeError> {
        let subject = rt.bus().subject(Queue::Callback);
        self.push(conn, subject, msg_id, msg.to_bytes().to_vec())
            .await
    }

    /// Counts a run this transaction ends in `phlo_runs_ended_total{status}` (when it commits).
    pub fn run_ended(&mut self, status: &str) {
        self.ended.push(match status {
            "completed" => "completed",
            "failed" => "failed",
            "timed_out" => "timed_out",
            "cancelled" => "cancelled",
            _ => "other",
        });
    }

    pub fn notify(&mut self, call_uuid: &str) {
        self.notify.push(call_uuid.to_owned());
    }

    async fn push(
        &mut self,
        conn: &mut PgConnection,
        subject: String,
        msg_id: String,
        payload: Vec<u8>,
    ) -> Result<(), RuntimeError> {
        let id = phlo_store::outbox::insert(conn, &subject, &msg_id, &payload).await?;
        self.rows.push(Row {
            id,
            subject,
            msg_id,
            payload,
        });
        Ok(())
    }
}

impl Runtime {
    /// Publishes committed outbox rows and deletes the ones JetStream acknowledged. A failure leaves the
    /// rows for the relay: the state change is committed, so the message will go out, only later.
    pub(crate) async fn flush(&self, outbox: Outbox) {
        for status in &outbox.ended {
            metrics::counter!("phlo_runs_ended_total", "status" => *status).increment(1);
        }
        for call_uuid in &outbox.notify {
            self.bus().notify(&self.bus().call_subject(call_uuid)).await;
        }
        let mut published = Vec::with_capacity(outbox.rows.len());
        for row in outbox.rows {
            match self
                .bus()
                .publish(&row.subject, &row.msg_id, Bytes::from(row.payload), None)
                .await
            {
                Ok(_) => published.push(row.id),
                Err(e) => {
                    tracing::warn!(error = %e, msg_id = %row.msg_id, "publish failed; the outbox relay will retry");
                    break;
                }
            }
        }
        if published.is_empty() {
            return;
        }
        let deleted = async {
            let mut conn = self.pool().acquire().await?;
            phlo_store::outbox::delete(&mut conn, &published).await
        };
        if let Err(e) = deleted.await {
            // Harmless: the relay will publish them again and the consumers drop the duplicates.
            tracing::warn!(error = %e, "could not delete published outbox rows");
        }
    }
}
