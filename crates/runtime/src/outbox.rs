//! Messages written in a step's transaction and published right after it commits.

use bytes::Bytes;
use phlo_bus::{CallbackMessage, CarrierMessage, HttpMessage, Queue, StepMessage};
use phlo_store::{Conn, Pool};
use tokio::sync::mpsc;

use crate::{Runtime, RuntimeError};

/// An outbox message; `id` is its row's once written.
pub(crate) struct Row {
    id: i64,
    subject: String,
    msg_id: String,
    payload: Vec<u8>,
    traceparent: Option<String>,
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
        conn: &mut Conn,
        msg: &StepMessage,
    ) -> Result<(), RuntimeError> {
        let subject = rt.bus().subject(Queue::Step);
        self.push(conn, subject, msg.msg_id(), msg.to_bytes().to_vec())
            .await
    }

    pub async fn http(
        &mut self,
        rt: &Runtime,
        conn: &mut Conn,
        msg: &HttpMessage,
    ) -> Result<(), RuntimeError> {
        let subject = rt.bus().subject(Queue::Http);
        self.push(conn, subject, msg.msg_id(), msg.to_bytes().to_vec())
            .await
    }

    pub async fn carrier(
        &mut self,
        rt: &Runtime,
        conn: &mut Conn,
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
        conn: &mut Conn,
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
        conn: &mut Conn,
        subject: String,
        msg_id: String,
        payload: Vec<u8>,
    ) -> Result<(), RuntimeError> {
        let mut row = Row::new(subject, msg_id, payload);
        row.id = phlo_store::outbox::insert(
            conn,
            &row.subject,
            &row.msg_id,
            &row.payload,
            row.traceparent.as_deref(),
        )
        .await?;
        self.rows.push(row);
        Ok(())
    }

    /// A step message for a statement that writes it beside other rows; [`Self::written`] once it has.
    pub fn unwritten_step(rt: &Runtime, msg: &StepMessage) -> Row {
        Row::new(
            rt.bus().subject(Queue::Step),
            msg.msg_id(),
            msg.to_bytes().to_vec(),
        )
    }

    /// Records a row the caller wrote, as outbox row `id`.
    pub fn written(&mut self, id: i64, mut row: Row) {
        row.id = id;
        self.rows.push(row);
    }
}

impl Row {
    fn new(subject: String, msg_id: String, payload: Vec<u8>) -> Self {
        Row {
            id: 0,
            subject,
            msg_id,
            payload,
            // The step's trace continues in whoever consumes this message.
            traceparent: phlo_bus::trace::current_traceparent(),
        }
    }

    pub fn as_new(&self) -> phlo_store::outbox::NewMessage<'_> {
        phlo_store::outbox::NewMessage {
            subject: &self.subject,
            msg_id: &self.msg_id,
            payload: &self.payload,
            traceparent: self.traceparent.as_deref(),
        }
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
                .publish(
                    &row.subject,
                    &row.msg_id,
                    Bytes::from(row.payload),
                    phlo_bus::trace::traceparent_headers(row.traceparent.as_deref()),
                )
                .await
            {
                Ok(_) => published.push(row.id),
                Err(e) => {
                    tracing::warn!(error = %e, msg_id = %row.msg_id, "publish failed; the outbox relay will retry");
                    break;
                }
            }
        }
        for id in published {
            // Only fails when the sweeper is gone (shutdown): the relay republishes, consumers dedupe.
            let _ = self.inner.swept.send(id);
        }
    }
}

/// Deletes published outbox rows in batches, off the step's path: a step's transaction is its only
/// commit, and one DELETE serves every step that published meanwhile. A row not yet deleted when the
/// process dies is published again by the relay, and the consumers drop the duplicate (the step fence,
/// `Nats-Msg-Id`), so losing the sweeper's queue costs a repeat, never a loss.
pub(crate) fn sweeper(pool: Pool) -> mpsc::UnboundedSender<i64> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut ids = Vec::with_capacity(SWEEP_BATCH);
        while rx.recv_many(&mut ids, SWEEP_BATCH).await > 0 {
            let deleted = async {
                let mut conn = pool.acquire().await?;
                phlo_store::outbox::delete(&mut conn, &ids).await
            };
            if let Err(e) = deleted.await {
                tracing::warn!(error = %e, rows = ids.len(), "could not delete published outbox rows; the relay will publish them again");
            }
            ids.clear();
        }
    });
    tx
}

const SWEEP_BATCH: usize = 1024;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use opentelemetry::trace::{TraceContextExt, TracerProvider};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use phlo_bus::{Bus, BusConfig, Delivery, Outcome};
    use phlo_egress::{Egress, EgressConfig};
    use tokio_util::sync::CancellationToken;
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    use tracing_subscriber::layer::SubscriberExt;
    use uuid::Uuid;

    use super::*;
    use crate::RuntimeConfig;

    fn nats_url() -> String {
        std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
    }

    /// A step writes two messages inside a traced span: the outbox rows keep the span's
    /// `traceparent`, and both the writer's publish and the relay's re-publish send it as a header.
    #[tokio::test(flavor = "current_thread")]
    async fn outbox_rows_keep_and_republish_the_traceparent() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let _guard = tracing::subscriber::set_default(subscriber);

        let pool = phlo_store::testing::fresh_pool().await.unwrap();
        let bus = Bus::connect(BusConfig {
            url: nats_url(),
            prefix: format!("t{}", Uuid::new_v4().simple()),
            ..BusConfig::default()
        })
        .await
        .unwrap();
        let rt = Runtime::new(
            pool.clone(),
            bus.clone(),
            Egress::new(EgressConfig::default()).unwrap(),
            RuntimeConfig {
                relay_after: Duration::ZERO,
                ..RuntimeConfig::default()
            },
            None,
        );

        let step = tracing::info_span!("step");
        let cx = step.context();
        let sc = cx.span().span_context().clone();
        let expected = format!("00-{}-{}-01", sc.trace_id(), sc.span_id());
        let advance = |seq| StepMessage::Advance {
            run_id: Uuid::new_v4(),
            token: 0,
            seq,
        };
        let (flushed, relayed) = (advance(1), advance(2));
        async {
            // Published by its writer right after commit.
            let mut tx = rt.pool().begin().await.unwrap();
            let mut outbox = Outbox::default();
            outbox.step(&rt, &mut tx, &flushed).await.unwrap();
            tx.commit().await.unwrap();
            rt.flush(outbox).await;
            // Left behind (as by a crashed writer): the relay publishes it.
            let mut tx = rt.pool().begin().await.unwrap();
            let mut outbox = Outbox::default();
            outbox.step(&rt, &mut tx, &relayed).await.unwrap();
            tx.commit().await.unwrap();
        }
        .instrument(step.clone())
        .await;
        drop(step);

        // The published row is swept away shortly after; the left-behind one stays for the relay.
        let want = vec![(relayed.msg_id(), Some(expected.clone()))];
        let mut stored = Vec::new();
        for _ in 0..100 {
            stored = sqlx_rows(&pool, "SELECT msg_id, traceparent FROM outbox").await;
            if stored == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(stored, want);
        assert_eq!(rt.relay_once().await.unwrap(), 1);

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Delivery>();
        let shutdown = CancellationToken::new();
        let consuming = tokio::spawn({
            let (bus, shutdown) = (bus.clone(), shutdown.clone());
            async move {
                bus.consume(Queue::Step, 2, shutdown, move |d| {
                    let tx = tx.clone();
                    async move {
                        tx.send(d).unwrap();
                        Outcome::Ack
                    }
                })
                .await
            }
        });
        let mut seen = Vec::new();
        for _ in 0..2 {
            let d = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .unwrap()
                .unwrap();
            let headers = d.headers.unwrap();
            let msg_id = headers.get("Nats-Msg-Id").unwrap().as_str().to_owned();
            let traceparent = headers.get("traceparent").map(|v| v.as_str().to_owned());
            seen.push((msg_id, traceparent));
        }
        shutdown.cancel();
        consuming.await.unwrap().unwrap();
        seen.sort();
        let mut want = vec![
            (flushed.msg_id(), Some(expected.clone())),
            (relayed.msg_id(), Some(expected)),
        ];
        want.sort();
        assert_eq!(seen, want);

        if let Ok(client) = async_nats::connect(nats_url()).await {
            let _ = async_nats::jetstream::new(client)
                .delete_stream(bus.stream_name())
                .await;
        }
        provider.shutdown().unwrap();
    }

    async fn sqlx_rows(
        pool: &phlo_store::Pool,
        sql: &'static str,
    ) -> Vec<(String, Option<String>)> {
        sqlx::query_as(sql)
            .fetch_all(pool.postgres().expect("postgres"))
            .await
            .unwrap()
    }
}
