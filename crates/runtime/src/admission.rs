//! Fair scheduling across accounts. The step queue is one FIFO work queue, so an account that starts
//! 10,000 runs at once would put 10,000 messages ahead of everyone else's next step. Instead each account
//! has at most `max_active_runs` runs active; the rest wait as `queued` rows (no token, no message) and
//! are admitted, oldest first, in the transaction that ends one of the account's runs. One account's
//! share of the queue is then bounded by its cap, and other accounts' steps interleave with its flood.
//!
//! Durable like every other transition: admission commits with the run ending that freed the slot,
//! together with the admitted run's first token and step message (outbox), so a crash loses nothing.
//! The reconciler also admits queued runs of accounts with free slots, should a slot ever be freed
//! without an admission (e.g. an operator raising an account's cap).

use phlo_bus::StepMessage;
use phlo_flow::Context;
use phlo_store::{Conn, Json, admission, runs, tokens};
use uuid::Uuid;

use crate::outbox::Outbox;
use crate::{Runtime, RuntimeError};

impl Runtime {
    /// Admits as many of the account's queued runs as it has free slots, oldest first: each becomes
    /// active with its first token and step message, written in the caller's transaction. Returns the
    /// admitted runs' ids. (How exact the cap is under concurrency: see [`phlo_store::admission`].)
    pub(crate) async fn admit(
        &self,
        conn: &mut Conn,
        outbox: &mut Outbox,
        account_id: Uuid,
    ) -> Result<Vec<Uuid>, RuntimeError> {
        let mut admitted_ids = Vec::new();
        loop {
            let free =
                admission::free_slots(conn, account_id, self.config().max_active_runs).await?;
            let admitted = admission::admit_oldest(conn, account_id, free).await?;
            if admitted.is_empty() {
                break;
            }
            // A run whose revision no longer loads fails at once and frees its slot again.
            let mut refilled = false;
            for run in admitted {
                match self.phlo_in(conn, run.phlo_id, run.revision).await {
                    Ok(Some(phlo)) => {
                        self.first_step(conn, outbox, run.id, run.phlo_id, phlo.start.0)
                            .await?;
                        admitted_ids.push(run.id);
                    }
                    Ok(None) | Err(RuntimeError::Definition { .. }) => {
                        let reason = format!("PHLO revision {} cannot be loaded", run.revision);
                        if runs::finish(conn, run.id, "failed", Some(&reason))
                            .await?
                            .is_some()
                        {
                            outbox.run_ended("failed");
                        }
                        refilled = true;
                    }
                    Err(e) => return Err(e),
                }
            }
            if !refilled {
                break;
            }
        }
        metrics::counter!("phlo_runs_admitted_total").increment(admitted_ids.len() as u64);
        Ok(admitted_ids)
    }

    /// The run's first token, ready at Start, and the step message that moves it.
    pub(crate) async fn first_step(
        &self,
        conn: &mut Conn,
        outbox: &mut Outbox,
        run_id: Uuid,
        phlo_id: Uuid,
        start: Uuid,
    ) -> Result<(), RuntimeError> {
        tokens::save(conn, &first_token(run_id, phlo_id, start)).await?;
        outbox.step(self, conn, &first_message(run_id)).await
    }
}

/// A run's first token: ready at Start, nothing seen yet.
pub(crate) fn first_token(run_id: Uuid, phlo_id: Uuid, start: Uuid) -> tokens::Token {
    tokens::Token {
        run_id,
        token: 0,
        node_id: start,
        status: "ready".into(),
        seq: 0,
        wait_id: None,
        wait: None,
        context: Json(Context {
            phlo_id: phlo_id.to_string(),
            run_id: run_id.to_string(),
            vars: Default::default(),
            call: None,
            parked: Default::default(),
        }),
        repeats: 0,
        ended_reason: None,
        updated_at: chrono::Utc::now(),
    }
}

/// The step message that moves a run's first token.
pub(crate) fn first_message(run_id: Uuid) -> StepMessage {
    StepMessage::Advance {
        run_id,
        token: 0,
        seq: 0,
    }
}
