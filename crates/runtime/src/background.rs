//! The loops that make a lost NATS message cost latency, never a run. Each runs on every worker replica;
//! `FOR UPDATE SKIP LOCKED` and the step fences make that safe.

use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use phlo_bus::{Queue, StepMessage};
use phlo_flow::Event;
use tokio_util::sync::CancellationToken;

use crate::outbox::Outbox;
use crate::{Runtime, RuntimeError};

const BATCH: i64 = 200;

impl Runtime {
    /// Re-publishes outbox rows whose writer did not (it crashed, or NATS was down). Returns how many.
    pub async fn relay_once(&self) -> Result<usize, RuntimeError> {
        let mut tx = self.pool().begin().await?;
        let rows = phlo_store::outbox::claim_stale(
            &mut tx,
            self.config().relay_after.as_secs_f64(),
            BATCH,
        )
        .await?;
        let mut published = Vec::new();
        for row in &rows {
            match self
                .bus()
                .publish(
                    &row.subject,
                    &row.msg_id,
                    Bytes::from(row.payload.clone()),
                    phlo_bus::trace::traceparent_headers(row.traceparent.as_deref()),
                )
                .await
            {
                Ok(_) => published.push(row.id),
                Err(e) => {
                    tracing::warn!(error = %e, "relay could not publish; will retry");
                    break;
                }
            }
        }
        phlo_store::outbox::delete(&mut tx, &published).await?;
        tx.commit().await?;
        metrics::counter!("phlo_outbox_relayed_total").increment(published.len() as u64);
        Ok(published.len())
    }

    /// Fires due timers: each becomes a `Timeout` event for its wait, enqueued in the transaction that
    /// deletes the timer. Returns how many fired.
    pub async fn fire_timers_once(&self) -> Result<usize, RuntimeError> {
        let mut tx = self.pool().begin().await?;
        let due = phlo_store::timers::take_due(&mut tx, Utc::now(), BATCH).await?;
        let mut outbox = Outbox::default();
        for t in &due {
            let msg = StepMessage::Resume {
                run_id: t.run_id,
                token: t.token,
                wait_id: t.wait_id,
                event: Event::Timeout,
            };
            outbox.step(self, &mut tx, &msg).await?;
        }
        tx.commit().await?;
        metrics::counter!("phlo_timers_fired_total").increment(due.len() as u64);
        self.flush(outbox).await;
        Ok(due.len())
    }

    /// Re-drives ready tokens whose step message seems lost, ends runs past the lifetime guard, and
    /// admits queued runs into free slots.
    pub async fn reconcile_once(&self) -> Result<usize, RuntimeError> {
        let cutoff = Utc::now()
            - chrono::Duration::from_std(self.config().redrive_after).unwrap_or_default();
        let mut conn = self.pool().acquire().await?;
        let stale = phlo_store::tokens::stale_ready(&mut conn, cutoff, BATCH).await?;
        let subject = self.bus().subject(Queue::Step);
        // A fresh message id per pass: JetStream would drop a republish with the original id as a
        // duplicate for two minutes, which is exactly when the original was lost.
        let pass = Utc::now().timestamp();
        for (run_id, token, seq) in &stale {
            let msg = StepMessage::Advance {
                run_id: *run_id,
                token: *token,
                seq: *seq,
            };
            let id = format!("{}:redrive:{pass}", msg.msg_id());
            self.bus()
                .publish(&subject, &id, msg.to_bytes(), None)
                .await?;
            phlo_store::tokens::touch(&mut conn, *run_id, *token).await?;
            metrics::counter!("phlo_steps_redriven_total").increment(1);
        }
        let lifetime =
            Utc::now() - chrono::Duration::from_std(self.config().max_lifetime).unwrap_or_default();
        let expired = phlo_store::runs::active_before(&mut conn, lifetime, BATCH).await?;
        drop(conn);
        for run_id in &expired {
            let mut tx = self.pool().begin().await?;
            let mut outbox = Outbox::default();
            if phlo_store::runs::lock(&mut tx, *run_id)
                .await?
                .is_some_and(|r| r.status == "active")
            {
                let reason = format!(
                    "lifetime: the run was active longer than {} s",
                    self.config().max_lifetime.as_secs()
                );
                self.end_run(&mut tx, &mut outbox, *run_id, "timed_out", &reason)
                    .await?;
            }
            tx.commit().await?;
            self.flush(outbox).await;
        }
        let admitted = self.admit_queued_once().await?;
        Ok(stale.len() + expired.len() + admitted)
    }

    /// Admits queued runs of accounts with free slots. Runs are admitted when a run of their account
    /// ends, in that transaction; this pass is the safety net for slots freed any other way (an
    /// operator raising an account's cap, a run ended by hand in the database). Returns how many.
    pub async fn admit_queued_once(&self) -> Result<usize, RuntimeError> {
        let accounts = {
            let mut conn = self.pool().acquire().await?;
            phlo_store::admission::accounts_with_queued(&mut conn, BATCH).await?
        };
        let mut admitted = 0;
        for account_id in accounts {
            let mut tx = self.pool().begin().await?;
            let mut outbox = Outbox::default();
            admitted += self.admit(&mut tx, &mut outbox, account_id).await?.len();
            tx.commit().await?;
            self.flush(outbox).await;
        }
        Ok(admitted)
    }

    /// Samples `phlo_outbox_backlog`: outbox rows not yet published (or not yet deleted after it).
    async fn sample_backlog(&self) -> Result<(), RuntimeError> {
        let mut conn = self.pool().acquire().await?;
        let n = phlo_store::outbox::backlog(&mut conn).await?;
        metrics::gauge!("phlo_outbox_backlog").set(n as f64);
        Ok(())
    }

    /// Runs the relay, the timers and the reconciler until `shutdown`. Metrics:
    /// `phlo_timers_fired_total`, `phlo_outbox_relayed_total`, `phlo_steps_redriven_total` and the
    /// `phlo_outbox_backlog` gauge, sampled every pass.
    pub async fn run_background(&self, shutdown: CancellationToken) {
        let every = self.config().poll_interval;
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            ticks += 1;
            if let Err(e) = self.fire_timers_once().await {
                tracing::warn!(error = %e, "firing timers failed");
            }
            if let Err(e) = self.relay_once().await {
                tracing::warn!(error = %e, "outbox relay failed");
            }
            if let Err(e) = self.sample_backlog().await {
                tracing::debug!(error = %e, "sampling the outbox backlog failed");
            }
            // The reconciler scans more; every tenth tick is plenty for a 60 s threshold.
            if ticks.is_multiple_of(10)
                && let Err(e) = self.reconcile_once().await
            {
                tracing::warn!(error = %e, "reconciler failed");
            }
        }
    }
}

/// How long to wait before retrying a message that failed for a transient reason.
pub fn retry_delay(delivered: i64) -> Duration {
    let exp = u32::try_from(delivered.clamp(1, 6)).unwrap_or(6);
    Duration::from_millis(250 * 2u64.pow(exp))
}
