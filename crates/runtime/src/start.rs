//! Starting a run: the run row, its first token at Start and the first step message, in one transaction.

use phlo_bus::StepMessage;
use phlo_flow::{Context, Trigger};
use phlo_store::Json;
use phlo_store::{runs, tokens};
use uuid::Uuid;

use crate::outbox::Outbox;
use crate::{Runtime, RuntimeError};

pub struct StartRequest {
    pub account_id: Uuid,
    pub phlo_id: Uuid,
    /// For an API trigger, `request_uuid` is replaced by the run id.
    pub trigger: Trigger,
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
        let mut tx = self.pool().begin().await.map_err(RuntimeError::from)?;
        let row = phlo_store::phlos::get(&mut tx, req.account_id, req.phlo_id).await?;
        let Some(row) = row else {
            return Err(StartError::PhloNotFound(req.phlo_id));
        };
        let Some(phlo) = self.phlo_in(&mut tx, row.id, row.revision).await? else {
            return Err(StartError::PhloNotFound(req.phlo_id));
        };
        runs::create(
            &mut tx,
            &runs::NewRun {
                id: run_id,
                account_id: req.account_id,
                phlo_id: row.id,
                revision: row.revision,
                trigger_type: kind,
                trigger: &trigger,
                from_number: from.as_deref(),
                to_number: to.as_deref(),
            },
        )
        .await?;
        let context = Context {
            phlo_id: row.id.to_string(),
            run_id: run_id.to_string(),
            vars: Default::default(),
            call: None,
            parked: Default::default(),
        };
        tokens::save(
            &mut tx,
            &tokens::Token {
                run_id,
                token: 0,
                node_id: phlo.start.0,
                status: "ready".into(),
                seq: 0,
                wait_id: None,
                wait: None,
                context: Json(context),
                repeats: 0,
                ended_reason: None,
                updated_at: chrono::Utc::now(),
            },
        )
        .await?;
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
        let mut outbox = Outbox::default();
        outbox
            .step(
                self,
                &mut tx,
                &StepMessage::Advance {
                    run_id,
                    token: 0,
                    seq: 0,
                },
            )
            .await?;
        tx.commit().await.map_err(RuntimeError::from)?;
        metrics::counter!(
            "phlo_runs_started_total",
            "phlo_id" => row.id.to_string(),
            "trigger" => kind,
        )
        .increment(1);
        // The run is committed: answer now and publish in the background. If NATS is down the
        // caller does not wait for the publish retries; the relay sends the message later.
        let rt = self.clone();
        tokio::spawn(async move { rt.flush(outbox).await });
        Ok(run_id)
    }
}
