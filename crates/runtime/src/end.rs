//! Ending a run early (cancel, guards, lifetime): every live token ends, timers go, live calls are hung up.
//! Every ending hands the freed slot to the account's oldest queued run in the same transaction: these
//! through [`Runtime::finish_run`], a run whose last token ended through the step's `runs::settle`.

use phlo_store::{Conn, runs, timers, tokens};
use uuid::Uuid;

use crate::outbox::Outbox;
use crate::{Runtime, RuntimeError};

impl Runtime {
    /// Ends an active run `failed` with `reason`, in its own transaction: for a step that can never
    /// be applied, so that the run ends visibly instead of waiting for the lifetime guard. Returns
    /// whether it ended now (false: it had ended already, or does not exist).
    pub async fn fail_run(&self, run_id: Uuid, reason: &str) -> Result<bool, RuntimeError> {
        let mut tx = self.pool().begin().await?;
        let active = runs::lock(&mut tx, run_id)
            .await?
            .is_some_and(|run| run.status == "active");
        if !active {
            return Ok(false);
        }
        let mut outbox = Outbox::default();
        self.end_run(&mut tx, &mut outbox, run_id, "failed", reason)
            .await?;
        tx.commit().await?;
        self.flush(outbox).await;
        Ok(true)
    }

    pub(crate) async fn end_run(
        &self,
        conn: &mut Conn,
        outbox: &mut Outbox,
        run_id: Uuid,
        status: &str,
        reason: &str,
    ) -> Result<(), RuntimeError> {
        tokens::end_all(conn, run_id, reason).await?;
        timers::clear_run(conn, run_id).await?;
        self.hang_up_run(conn, outbox, run_id).await?;
        self.finish_run(conn, outbox, run_id, status, Some(reason))
            .await?;
        Ok(())
    }

    /// Ends the run (active or queued) with `status`, unless it has ended already, and admits the
    /// account's oldest queued runs into the slots that are free now. Returns whether it ended now.
    pub(crate) async fn finish_run(
        &self,
        conn: &mut Conn,
        outbox: &mut Outbox,
        run_id: Uuid,
        status: &str,
        error: Option<&str>,
    ) -> Result<bool, RuntimeError> {
        let Some(account_id) = runs::finish(conn, run_id, status, error).await? else {
            return Ok(false);
        };
        outbox.run_ended(status);
        // Most ends free a slot nobody waits for: one index probe instead of counting the active runs.
        if phlo_store::admission::has_queued(conn, account_id).await? {
            self.admit(conn, outbox, account_id).await?;
        }
        Ok(true)
    }
}
