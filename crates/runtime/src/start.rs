//! Starting a run: the run row, its first token at Start and the first step message, written together
//! (one statement in the common case, a transaction otherwise); or, when the account has as many runs
//! active as it may (see [`crate::admission`]), the run row alone, `queued`, to be admitted when one of
//! its runs ends.

use phlo_flow::Trigger;
use phlo_store::{admission, runs};
use uuid::Uuid;

use crate::admission::{first_message, first_token};
use crate::outbox::Outbox;
use crate::{Runtime, RuntimeError};

pub struct StartRequest {
    pub account_id: Uuid,
    pub phlo_id: Uuid,
    /// For an API trigger, `request_uuid` is replaced by the run id.
    pub trigger: Trigger,
}

/// A run the API accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    pub run_id: Uuid,
    /// Whether it waits for a free slot of its account (`queued`) rather than running already.
    pub queued: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("PHLO {0} not found")]
    PhloNotFound(Uuid),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl From<phlo_store::StoreError> for StartError {
    fn from(e: phlo_store::StoreError) -> Self {
        StartError::Runtime(e.into())
    }
}

impl Runtime {
    /// Starts a run of the PHLO's current revision and returns its id.
    pub async fn start_run(&self, req: StartRequest) -> Result<Uuid, StartError> {
        self.start(req).await.map(|s| s.run_id)
    }

    /// Starts a run of the PHLO's current revision, or queues it behind the account's active runs.
    /// A run of an incoming call is never queued: the caller is on the line, waiting for its answer XML.
    pub async fn start(&self, req: StartRequest) -> Result<Started, StartError> {
        let run_id = Uuid::now_v7();
        let mut trigger = req.trigger;
        let (kind, from, to) = match &mut trigger {
            Trigger::Api { request_uuid, .. } => {
                *request_uuid = run_id.to_string();
                ("api", None, None)
            }
            Trigger::Call(c) => ("call", Some(c.from.clone()), Some(c.to.clone())),
            Trigger::Message(m) => ("sms", Some(m.from.clone()), Some(m.to.clone())),
        };
        let live_call = matches!(trigger, Trigger::Call(_));
        let new_run = |phlo_id, revision, status| runs::NewRun {
            id: run_id,
            account_id: req.account_id,
            phlo_id,
            revision,
            trigger_type: kind,
            trigger: &trigger,
            from_number: from.as_deref(),
            to_number: to.as_deref(),
            status,
        };
        let mut outbox = Outbox::default();
        // The common case: nobody of the account ahead and a slot free, so the run starts at once in one
        // statement, which checks that itself; for a PHLO this process has started before, with the
        // revision it had then, that is the only round trip. The check is not a lock, so concurrent starts
        // may share the last free slot (see `phlo_store::admission`), as they did in a transaction.
        if !live_call {
            let mut conn = self.pool().begin_atomic().await?;
            let cap = self.config().max_active_runs;
            let mut revision = self.inner.phlos.current(req.phlo_id);
            if revision.is_none() {
                let Some(check) =
                    admission::check_start(&mut conn, req.account_id, req.phlo_id, cap).await?
                else {
                    return Err(StartError::PhloNotFound(req.phlo_id));
                };
                self.inner.phlos.set_current(req.phlo_id, check.revision);
                revision = check.at_once.then_some(check.revision);
            }
            let mut started = None;
            if let Some(revision) = revision
                && let Some(phlo) = self.phlo_in(&mut conn, req.phlo_id, revision).await?
            {
                let token = first_token(run_id, req.phlo_id, phlo.start.0);
                let message = Outbox::unwritten_step(self, &first_message(run_id));
                let run = new_run(req.phlo_id, revision, "active");
                started = runs::start(&mut conn, &run, &token, &message.as_new(), cap)
                    .await?
                    .map(|id| (id, message));
            }
            // Released before the transaction below: on SQLite this is the process's only connection.
            conn.commit().await?;
            if let Some((id, message)) = started {
                outbox.written(id, message);
                return Ok(self.started(outbox, run_id, req.phlo_id, kind, false));
            }
            // Not started: a new revision, a full account or an unknown PHLO. The transaction below
            // tells which, and starts or queues the run.
        }

        let mut tx = self.pool().begin().await.map_err(RuntimeError::from)?;
        // A live call starts at once whatever the account's cap (the caller waits for its answer XML);
        // any other run joins the back of the account's queue, and admission picks the oldest for the
        // free slots.
        let direct = live_call
            || (!admission::has_queued(&mut tx, req.account_id).await?
                && admission::free_slots(&mut tx, req.account_id, self.config().max_active_runs)
                    .await?
                    > 0);
        let row = phlo_store::phlos::get(&mut tx, req.account_id, req.phlo_id).await?;
        let Some(row) = row else {
            return Err(StartError::PhloNotFound(req.phlo_id));
        };
        self.inner.phlos.set_current(row.id, row.revision);
        let Some(phlo) = self.phlo_in(&mut tx, row.id, row.revision).await? else {
            return Err(StartError::PhloNotFound(req.phlo_id));
        };
        let status = if direct { "active" } else { "queued" };
        runs::create(&mut tx, &new_run(row.id, row.revision, status)).await?;
        // A queued run is admitted at once if a slot is free after all: admission stays oldest first
        // even while the reconciler is catching up.
        let queued = if direct {
            self.first_step(&mut tx, &mut outbox, run_id, row.id, phlo.start.0)
                .await?;
            false
        } else {
            !self
                .admit(&mut tx, &mut outbox, req.account_id)
                .await?
                .contains(&run_id)
        };
        if let Trigger::Call(call) = &trigger {
            phlo_store::calls::upsert(
                &mut tx,
                &phlo_store::calls::NewCall {
                    call_uuid: &call.uuid,
                    run_id,
                    token: 0,
                    direction: "inbound",
                    from_number: &call.from,
                    to_number: &call.to,
                },
            )
            .await?;
        }
        tx.commit().await.map_err(RuntimeError::from)?;
        Ok(self.started(outbox, run_id, row.id, kind, queued))
    }

    /// Counts a committed start and publishes its message in the background: if NATS is down the
    /// caller does not wait for the publish retries; the relay sends the message later.
    fn started(
        &self,
        outbox: Outbox,
        run_id: Uuid,
        phlo_id: Uuid,
        kind: &'static str,
        queued: bool,
    ) -> Started {
        metrics::counter!(
            "phlo_runs_started_total",
            "phlo_id" => phlo_id.to_string(),
            "trigger" => kind,
        )
        .increment(1);
        if queued {
            metrics::counter!("phlo_runs_queued_total").increment(1);
        }
        let rt = self.clone();
        tokio::spawn(async move { rt.flush(outbox).await });
        Started { run_id, queued }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use phlo_bus::{Bus, BusConfig};
    use phlo_egress::{Egress, EgressConfig};
    use phlo_flow::Trigger;
    use serde_json::json;

    use super::*;
    use crate::RuntimeConfig;

    /// SQLite gives the process one connection: a start that falls back from the one-statement path to
    /// the transaction (here the account is full) releases it first, and queues the run.
    #[tokio::test]
    async fn a_run_queued_on_sqlite_does_not_wait_for_its_own_connection() {
        let pool = phlo_store::testing::fresh_sqlite().await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let (account, phlo) = phlo_store::testing::account_and_phlo(&mut conn)
            .await
            .unwrap();
        let definition = json!({ "name": "p", "nodes": [
            { "node_id": "11111111-0000-4000-8000-000000000000", "name": "Start", "type": "start" } ] });
        phlo_store::on!(&mut conn, |db, dialect| sqlx::query(dialect.sql(
            "INSERT INTO phlo_revisions (phlo_id, revision, definition) VALUES ($1, 1, $2)"
        ))
        .bind(phlo)
        .bind(phlo_store::Json(&definition))
        .execute(&mut *db)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
        let trigger = Trigger::Api {
            request_uuid: String::new(),
            params: Default::default(),
        };
        let active = runs::NewRun {
            id: Uuid::now_v7(),
            account_id: account,
            phlo_id: phlo,
            revision: 1,
            trigger_type: "api",
            trigger: &trigger,
            from_number: None,
            to_number: None,
            status: "active",
        };
        runs::create(&mut conn, &active).await.unwrap();
        drop(conn);

        let bus = Bus::in_memory(BusConfig {
            url: phlo_bus::MEMORY_URL.into(),
            prefix: format!("t{}", Uuid::new_v4().simple()),
            ..BusConfig::default()
        })
        .unwrap();
        let rt = Runtime::new(
            pool,
            bus,
            Egress::new(EgressConfig::default()).unwrap(),
            RuntimeConfig {
                max_active_runs: 1,
                ..RuntimeConfig::default()
            },
            None,
        );
        let request = StartRequest {
            account_id: account,
            phlo_id: phlo,
            trigger,
        };
        let started = tokio::time::timeout(Duration::from_secs(10), rt.start(request))
            .await
            .expect("the start waited for its own connection")
            .unwrap();
        assert!(started.queued, "the account is full: the run waits");
    }
}
