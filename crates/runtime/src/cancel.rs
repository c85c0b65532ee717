//! Cancelling a run: every live token ends, timers go, the run ends `cancelled`.

use uuid::Uuid;

use crate::{Runtime, RuntimeError};

impl Runtime {
    /// Cancels an active run of this account. `None` when the run does not exist for this account;
    /// `Some(false)` when it had already ended.
    pub async fn cancel_run(
        &self,
        account_id: Uuid,
        run_id: Uuid,
    ) -> Result<Option<bool>, RuntimeError> {
        let mut tx = self.pool().begin().await?;
        if phlo_store::runs::get(&mut tx, account_id, run_id)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let Some(run) = phlo_store::runs::lock(&mut tx, run_id).await? else {
            return Ok(None);
        };
        // A queued run is cancelled before it ever ran; it held no slot, so nothing else changes.
        if run.status != "active" && run.status != "queued" {
            return Ok(Some(false));
        }
        let mut outbox = crate::outbox::Outbox::default();
        self.end_run(
            &mut tx,
            &mut outbox,
            run_id,
            "cancelled",
            "cancelled through the API",
        )
        .await?;
        tx.commit().await?;
        self.flush(outbox).await;
        Ok(Some(true))
    }
}
