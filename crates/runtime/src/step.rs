//! Applying one step message: the durability algorithm of DESIGN §3 in one Postgres transaction.
//!
//! 1. Lock the run row: two events of one run never interleave.
//! 2. Fence: an `Advance` must name the token's current `seq` while it is ready; a `Resume` must name
//!    the wait the token is parked on. Anything else was applied already or has moved on: drop it.
//! 3. Run the pure engine; a Counter's increment happens here, in this transaction.
//! 4. Write the step row (its primary key makes the step exactly-once), the tokens, the timers and
//!    the next messages (outbox). Commit, then publish.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::Utc;
use phlo_bus::StepMessage;
use phlo_flow::effect::{CounterScope, Effect};
use phlo_flow::{CallChange, Event, Outcome, Phlo, Step, Wait, WaitOn};
use phlo_store::tokens::Token;
use phlo_store::{Conn, Json, counters, runs, steps, timers, tokens};
use serde_json::Value;
use tracing::Instrument;
use uuid::Uuid;

use crate::outbox::Outbox;
use crate::{Runtime, RuntimeError};

/// What became of a step message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The step ran and was committed.
    Done,
    /// A duplicate, or an event for a wait that has moved on, or a run that already ended.
    Ignored(&'static str),
}

impl Runtime {
    /// Applies one step message. The choke point of the step metrics: `phlo_steps_total{outcome}`
    /// (`applied`: a step row was written; `ended`: a guard or an unloadable revision ended the run
    /// instead; `ignored`: a duplicate or stale message the fences dropped; `error`),
    /// `phlo_step_duration_seconds{node_type}` (per applied step: its share from the lock to the
    /// commit; the commit is counted in the last step of the message) and the `phlo_steps_in_flight`
    /// gauge.
    pub async fn apply(&self, msg: &StepMessage) -> Result<Applied, RuntimeError> {
        metrics::gauge!("phlo_steps_in_flight").increment(1.0);
        // Decremented however this ends, a dropped future (released at shutdown) included.
        let _in_flight = StepInFlight;
        let result = self.apply_step(msg).await;
        let (outcome, count) = match &result {
            Ok((Applied::Done, taken)) if !taken.is_empty() => {
                for (node_type, took) in taken {
                    metrics::histogram!("phlo_step_duration_seconds", "node_type" => *node_type)
                        .record(took.as_secs_f64());
                }
                ("applied", taken.len() as u64)
            }
            Ok((Applied::Done, _)) => ("ended", 1),
            Ok((Applied::Ignored(_), _)) => ("ignored", 1),
            Err(_) => ("error", 1),
        };
        metrics::counter!("phlo_steps_total", "outcome" => outcome).increment(count);
        result.map(|(applied, _)| applied)
    }

    /// [`Runtime::apply`]'s work; also says which kinds of node ran, and how long each took, when step
    /// rows were written.
    async fn apply_step(&self, msg: &StepMessage) -> Result<(Applied, Vec<Taken>), RuntimeError> {
        let mut mark = Instant::now();
        let (run_id, token_no) = match msg {
            StepMessage::Advance { run_id, token, .. }
            | StepMessage::Resume { run_id, token, .. } => (*run_id, *token),
        };
        let mut tx = self.pool().begin().await?;
        let Some((mut run, token)) = runs::lock_with_token(&mut tx, run_id, token_no).await? else {
            return Ok((Applied::Ignored("unknown run"), Vec::new()));
        };
        if run.status != "active" {
            return Ok((Applied::Ignored("run ended"), Vec::new()));
        }
        let Some(mut token) = token else {
            return Ok((Applied::Ignored("unknown token"), Vec::new()));
        };
        let phlo = match self.phlo_in(&mut tx, run.phlo_id, run.revision).await {
            Ok(Some(phlo)) => phlo,
            // The revision no longer compiles (or vanished): the run cannot go on, so it fails with the
            // reason instead of staying active until the lifetime guard.
            Ok(None) | Err(RuntimeError::Definition { .. }) => {
                let reason = format!("PHLO revision {} cannot be loaded", run.revision);
                let mut outbox = Outbox::default();
                self.end_run(&mut tx, &mut outbox, run_id, "failed", &reason)
                    .await?;
                tx.commit().await?;
                self.flush(outbox).await;
                return Ok((Applied::Done, Vec::new()));
            }
            Err(e) => return Err(e),
        };
        let mut event = match msg {
            StepMessage::Advance { seq, .. } => {
                if token.status != "ready" || token.seq != *seq {
                    return Ok((Applied::Ignored("duplicate step"), Vec::new()));
                }
                if token.seq == 0 && token.node_id == phlo.start.0 {
                    Event::Trigger(run.trigger.0.clone())
                } else {
                    Event::Enter
                }
            }
            StepMessage::Resume { wait_id, event, .. } => {
                if token.status != "waiting" || token.wait_id != Some(*wait_id) {
                    return Ok((Applied::Ignored("stale event"), Vec::new()));
                }
                timers::clear(&mut tx, run_id, token_no, *wait_id).await?;
                event.clone()
            }
        };

        let mut resumed = match msg {
            StepMessage::Resume { wait_id, .. } => Some(*wait_id),
            StepMessage::Advance { .. } => None,
        };
        let mut outbox = Outbox::default();
        let mut taken: Vec<Taken> = Vec::new();
        // A token that moved on (to the next node, or to its end) is written once, when this message's
        // steps are done (only this transaction reads it meanwhile): a chain of ten nodes writes it once,
        // not ten times, and in the statement that ends the message (`runs::settle`).
        let mut unsaved = false;
        // The step rows, written in one statement when the transaction is about to commit.
        let mut journal = Vec::new();
        // Consecutive steps of this token run in this one transaction until the token waits or ends (or
        // the inline budget is spent): the step rows, counters and outbox are exactly what one message per
        // step would have written, minus a commit and a round trip through the queue per step.
        loop {
            if let Some(reason) = self.guard(&run, &token) {
                let status = if reason.starts_with("lifetime") {
                    "timed_out"
                } else {
                    "failed"
                };
                if unsaved {
                    tokens::save(&mut tx, &token).await?;
                }
                steps::insert(&mut tx, &journal).await?;
                runs::record_steps(&mut tx, run_id, steps(&taken)).await?;
                self.end_run(&mut tx, &mut outbox, run_id, status, &reason)
                    .await?;
                tx.commit().await?;
                add_commit(&mut taken, mark);
                self.flush(outbox).await;
                return Ok((Applied::Done, taken));
            }
            let span = tracing::info_span!("phlo.step", %run_id, token = token_no, seq = token.seq);
            let moved = self
                .take_step(
                    &mut tx,
                    &mut outbox,
                    &mut journal,
                    &phlo,
                    &run,
                    &mut token,
                    &event,
                    resumed.take(),
                )
                .instrument(span)
                .await?;
            let Some(moved) = moved else {
                if taken.is_empty() {
                    return Ok((Applied::Ignored("event not taken by the node"), Vec::new()));
                }
                // A later node refused to be entered: hand it to a message of its own, as before inlining.
                self.advance(&mut tx, &mut outbox, &token).await?;
                break;
            };
            taken.push((moved, mark.elapsed()));
            mark = Instant::now();
            run.steps += 1;
            // A parked token was written with its timer; any other is written at the end.
            unsaved = token.status != "waiting";
            if token.status != "ready" {
                break;
            }
            if steps(&taken) >= self.config().inline_steps {
                self.advance(&mut tx, &mut outbox, &token).await?;
                break;
            }
            event = Event::Enter;
        }
        let unsaved = unsaved.then_some(&token);
        if let Some(ended) = runs::settle(&mut tx, run_id, &journal, unsaved).await? {
            outbox.run_ended(&ended.status);
            if ended.has_queued {
                self.admit(&mut tx, &mut outbox, ended.account_id).await?;
            }
        }
        tx.commit().await?;
        add_commit(&mut taken, mark);
        self.flush(outbox).await;
        Ok((Applied::Done, taken))
    }

    /// Queues the step message that moves a ready token on.
    async fn advance(
        &self,
        conn: &mut Conn,
        outbox: &mut Outbox,
        token: &Token,
    ) -> Result<(), RuntimeError> {
        let msg = StepMessage::Advance {
            run_id: token.run_id,
            token: token.token,
            seq: token.seq,
        };
        outbox.step(self, conn, &msg).await
    }

    /// Runs the token's node on `event` and writes what follows: the counter, the effects and a parked
    /// token with its timer. The step row goes to `journal`, and a token that moved on or ended is the
    /// caller's to write (see [`runs::settle`]). `None` when the node does not take the event.
    /// `resumed` is the wait the event answers, if it answers one.
    #[allow(clippy::too_many_arguments)]
    async fn take_step(
        &self,
        conn: &mut Conn,
        outbox: &mut Outbox,
        journal: &mut Vec<steps::Step>,
        phlo: &Phlo,
        run: &runs::Run,
        token: &mut Token,
        event: &Event,
        resumed: Option<i32>,
    ) -> Result<Option<&'static str>, RuntimeError> {
        let run_id = token.run_id;
        let token_no = token.token;
        let started_at = Utc::now();
        let mut ctx = token.context.0.clone();
        ctx.parked = token
            .wait
            .as_ref()
            .map(|w| w.0.variables.clone())
            .unwrap_or_default();
        let node_id = phlo_flow::NodeId(token.node_id);
        let mut step = match phlo_flow::step(phlo, node_id, &ctx, event) {
            Ok(step) => step,
            // An event the node does not take: nothing to apply (logged, the message is dropped).
            Err(e) => {
                tracing::warn!(%run_id, token = token_no, error = %e, "event ignored");
                return Ok(None);
            }
        };
        if let Some(count) = self.count(conn, run, &step).await? {
            step =
                phlo_flow::step(phlo, node_id, &ctx, &Event::Counter { count }).map_err(|e| {
                    RuntimeError::Definition {
                        phlo_id: run.phlo_id,
                        revision: run.revision,
                        problems: e.to_string(),
                    }
                })?;
        }

        let seq = token.seq;
        journal.push(step_row(phlo, token, event, &step, started_at));
        token.seq += 1;
        let node = phlo
            .node(node_id)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let node_type = phlo.node(node_id).map_or("unknown", |n| n.kind().as_str());
        match step.outcome {
            Outcome::Done {
                next, variables, ..
            } => {
                if node_id == phlo.start && node != phlo_flow::START_NAME {
                    let start = Value::Object(variables.clone());
                    ctx.vars.insert(phlo_flow::START_NAME.to_owned(), start);
                }
                ctx.vars.insert(node, Value::Object(variables));
                ctx.parked.clear();
                // A finished node's effects (Hangup's XML, ...) act on the call it had.
                for effect in step.effects {
                    self.dispatch(conn, outbox, token, None, effect).await?;
                }
                apply_call_change(&mut ctx, step.call);
                token.wait = None;
                token.wait_id = None;
                match next {
                    Some(next) => {
                        token.repeats = if next.0 == token.node_id {
                            token.repeats + 1
                        } else {
                            0
                        };
                        token.node_id = next.0;
                        token.status = "ready".into();
                    }
                    None => {
                        token.status = "ended".into();
                        if let Some(call) = &ctx.call {
                            self.release_call(conn, outbox, &call.uuid, run_id, token_no)
                                .await?;
                        }
                    }
                }
                // Written by the caller once its inline steps are done.
                token.context = Json(ctx);
            }
            Outcome::Wait { waits } => {
                // A node that keeps waiting for the same thing after a non-final event (a room's member
                // events, an SMS reported `queued`) keeps its wait id: the carrier's URLs name it.
                let same_wait = match (resumed, token.wait.as_ref(), waits.as_slice()) {
                    (Some(wait_id), Some(prev), [only]) if prev.0.on == only.on => Some(wait_id),
                    _ => None,
                };
                let wait_id = same_wait.unwrap_or(seq);
                self.park(conn, outbox, token, ctx, waits, step.effects, wait_id)
                    .await?;
            }
            Outcome::Stop { reason, .. } => {
                token.status = "ended".into();
                token.wait = None;
                token.wait_id = None;
                token.ended_reason = Some(reason.clone());
                if let Some(call) = &ctx.call {
                    self.release_call(conn, outbox, &call.uuid, run_id, token_no)
                        .await?;
                }
                runs::set_error(conn, run_id, &format!("{node}: {reason}")).await?;
            }
        }
        Ok(Some(node_type))
    }

    /// Why the run must stop now, if a guard says so.
    fn guard(&self, run: &runs::Run, token: &Token) -> Option<String> {
        let c = self.config();
        if run.steps >= c.max_steps {
            return Some(format!(
                "guard: the run reached the maximum of {} steps",
                c.max_steps
            ));
        }
        if token.repeats >= c.max_repeats {
            return Some(format!(
                "guard: a node ran {} times in a row",
                c.max_repeats
            ));
        }
        let age = Utc::now()
            .signed_duration_since(run.created_at)
            .to_std()
            .unwrap_or_default();
        if age > c.max_lifetime {
            return Some(format!(
                "lifetime: the run was active longer than {} s",
                c.max_lifetime.as_secs()
            ));
        }
        None
    }

    /// Performs a Counter's increment inside the step's transaction.
    async fn count(
        &self,
        conn: &mut Conn,
        run: &runs::Run,
        step: &Step,
    ) -> Result<Option<i64>, RuntimeError> {
        let Outcome::Wait { waits } = &step.outcome else {
            return Ok(None);
        };
        if waits.first().map(|w| w.on) != Some(WaitOn::Counter) {
            return Ok(None);
        }
        let Some(Effect::Counter(c)) = step
            .effects
            .iter()
            .find(|e| matches!(e, Effect::Counter(_)))
        else {
            return Ok(None);
        };
        let node_id = Uuid::parse_str(&c.node_id).unwrap_or_default();
        let (owner, scope) = match c.scope {
            CounterScope::Run => (run.id, "run"),
            CounterScope::Phlo => (run.phlo_id, "phlo"),
        };
        Ok(Some(
            counters::increment(conn, owner, node_id, scope).await?,
        ))
    }

    /// Parks the token on the first wait and forks one new token per further wait (bulk calls, SMS
    /// recipients). Each gets a durable timer and the effects that belong to it.
    #[allow(clippy::too_many_arguments)]
    async fn park(
        &self,
        conn: &mut Conn,
        outbox: &mut Outbox,
        token: &mut Token,
        ctx: phlo_flow::Context,
        waits: Vec<Wait>,
        effects: Vec<Effect>,
        wait_id: i32,
    ) -> Result<(), RuntimeError> {
        let run_id = token.run_id;
        let first_new = if waits.len() > 1 {
            runs::allocate_tokens(
                conn,
                run_id,
                i32::try_from(waits.len() - 1).unwrap_or(i32::MAX),
            )
            .await?
        } else {
            0
        };
        let mut by_index: BTreeMap<usize, Vec<Effect>> = BTreeMap::new();
        for effect in effects {
            let index = match &effect {
                Effect::SendSms(s) => s.recipient,
                Effect::PlaceCall(c) => c.leg,
                _ => 0,
            };
            by_index.entry(index).or_default().push(effect);
        }
        let mut ctx = ctx;
        ctx.parked.clear();
        for (i, wait) in waits.into_iter().enumerate() {
            let mut t = token.clone();
            if i > 0 {
                t.token = first_new + i32::try_from(i - 1).unwrap_or(0);
                t.repeats = 0;
            }
            t.status = "waiting".into();
            t.wait_id = Some(wait_id);
            t.context = Json(ctx.clone());
            let timeout =
                std::time::Duration::from_secs(wait.timeout_secs).min(self.config().max_wait);
            let fire_at = Utc::now()
                + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::days(1));
            timers::set(
                conn,
                &timers::Timer {
                    run_id,
                    token: t.token,
                    wait_id,
                    fire_at,
                },
            )
            .await?;
            for effect in by_index.remove(&i).unwrap_or_default() {
                self.dispatch(conn, outbox, &t, Some(wait_id), effect)
                    .await?;
            }
            t.wait = Some(Json(wait));
            tokens::save(conn, &t).await?;
            if i == 0 {
                *token = t;
            }
        }
        Ok(())
    }
}

/// A step applied: the kind of its node and its share of the message's time.
type Taken = (&'static str, Duration);

fn steps(taken: &[Taken]) -> u32 {
    u32::try_from(taken.len()).unwrap_or(u32::MAX)
}

/// The commit serves every step of the message; its time is counted in the last one.
fn add_commit(taken: &mut [Taken], since: Instant) {
    if let Some((_, took)) = taken.last_mut() {
        *took += since.elapsed();
    }
}

/// Keeps `phlo_steps_in_flight` right when an apply ends or is dropped.
struct StepInFlight;

impl Drop for StepInFlight {
    fn drop(&mut self) {
        metrics::gauge!("phlo_steps_in_flight").decrement(1.0);
    }
}

fn apply_call_change(ctx: &mut phlo_flow::Context, change: CallChange) {
    match change {
        CallChange::Keep => {}
        CallChange::Bind(call) => ctx.call = Some(call),
        CallChange::Release => ctx.call = None,
    }
}

fn step_row(
    phlo: &Phlo,
    token: &Token,
    event: &Event,
    step: &Step,
    started_at: chrono::DateTime<Utc>,
) -> steps::Step {
    let node = phlo.node(phlo_flow::NodeId(token.node_id));
    let (outcome, state, variables, error) = match &step.outcome {
        Outcome::Done {
            state,
            variables,
            error,
            ..
        } => (
            "done",
            Some(state.clone()),
            Value::Object(variables.clone()),
            error.clone(),
        ),
        Outcome::Wait { waits } => {
            let vars = waits
                .first()
                .map(|w| Value::Object(w.variables.clone()))
                .unwrap_or(Value::Null);
            ("wait", None, vars, None)
        }
        Outcome::Stop { reason, variables } => (
            "stop",
            None,
            Value::Object(variables.clone()),
            Some(reason.clone()),
        ),
    };
    steps::Step {
        run_id: token.run_id,
        token: token.token,
        seq: token.seq,
        node_id: token.node_id,
        node_name: node.map(|n| n.name.clone()).unwrap_or_default(),
        node_type: node
            .map(|n| n.kind().as_str().to_owned())
            .unwrap_or_default(),
        event: event.kind().to_owned(),
        outcome: outcome.to_owned(),
        state,
        variables: Json(variables),
        effects: Json(serde_json::to_value(&step.effects).unwrap_or(Value::Null)),
        error,
        started_at,
        finished_at: Utc::now(),
    }
}
