//! Ending a run early (cancel, guards, lifetime): every live token ends, timers go, live calls are hung up.

use phlo_store::{PgConnection, runs, timers, tokens};
use uuid::Uuid;

use crate::outbox::Outbox;
use crate::{Runtime, RuntimeError};

impl Runtime {
    pub(crate) async fn end_run(
        &self,
        conn: &mut PgConnection,
        outbox: &mut Outbox,
        run_id: Uuid,
        status: &str,
        reason: &str,
    ) -> Result<(), RuntimeError> {
        tokens::end_all(conn, run_id, reason).await?;
        timers::clear_run(conn, run_id).await?;
        self.hang_up_run(conn, outbox, run_id).await?;
        if runs::finish(conn, run_id, status, Some(reason)).await? {
            outbox.run_ended(status);
        }
        Ok(())
    }
}
