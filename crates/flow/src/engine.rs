//! The pure step engine: given a node, the token's context and an event, decide the node's state,
//! variables and effects, and whether the token moves on or waits. No I/O, no clock, no randomness:
//! the same input always gives the same step, which is what makes redelivered steps safe to replay.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::effect::{Callback, Effect};
use crate::event::{Event, Vars};
use crate::model::{Node, NodeId, Phlo};

/// What a token sees while it runs: every earlier node's variables and the call it is on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub phlo_id: String,
    pub run_id: String,
    /// Liquid globals: node name → that node's latest variables (`Start` → the trigger's).
    pub vars: Vars,
    /// The call this token is on: the incoming call, or an answered Initiate Call leg.
    pub call: Option<ActiveCall>,
    /// Variables the current node recorded when it parked; empty on `Event::Enter`.
    #[serde(default)]
    pub parked: Vars,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveCall {
    pub uuid: String,
    pub from: String,
    pub to: String,
}

impl Context {
    /// Renders an option; the error names the option's field (`options.message: ...`).
    pub fn render(&self, template: &phlo_template::Template) -> Result<String, String> {
        template
            .render(&self.vars)
            .map_err(|e| match template.field() {
                Some(field) => format!("{field}: {e}"),
                None => e.to_string(),
            })
    }
}

/// The engine's answer for one event at one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub outcome: Outcome,
    pub effects: Vec<Effect>,
    /// How the token's call changes (an answered outbound call becomes the token's call).
    pub call: CallChange,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The node ended in `state`; the token moves to `next` or, without a transition, ends.
    Done {
        state: String,
        next: Option<NodeId>,
        variables: Vars,
        /// Why the node ended in a failure state (a render error, a carrier refusal, ...).
        error: Option<String>,
    },
    /// The token parks. Several waits fork the token: one token per wait (bulk calls, SMS recipients).
    Wait { waits: Vec<Wait> },
    /// The token ends without a state: its call is gone, or a template failed where the component has no
    /// failure state. `reason` is recorded on the step.
    Stop { reason: String, variables: Vars },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wait {
    pub on: WaitOn,
    /// After this long the runtime feeds `Event::Timeout`.
    pub timeout_secs: u64,
    /// Variables known so far; handed back in `Context::parked` when the token resumes.
    pub variables: Vars,
}

/// What a parked token waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "on", rename_all = "snake_case")]
pub enum WaitOn {
    Digits,
    PromptFinished,
    Recording,
    Dial,
    Call {
        leg: usize,
    },
    Sms {
        recipient: usize,
    },
    Conference,
    Http,
    /// Performed by the runtime inside the step's own transaction; never a real wait.
    Counter,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum CallChange {
    #[default]
    Keep,
    Bind(ActiveCall),
    Release,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EngineError {
    #[error("node {0} is not in this PHLO")]
    UnknownNode(NodeId),
    #[error("node {node} ({kind}) does not take a `{event}` event")]
    UnexpectedEvent {
        node: String,
        kind: &'static str,
        event: &'static str,
    },
}

/// What a component decides; the engine adds the transition and the callback.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reaction {
    Done {
        state: String,
        variables: Vars,
        error: Option<String>,
        effects: Vec<Effect>,
        call: CallChange,
    },
    Wait {
        waits: Vec<Wait>,
        effects: Vec<Effect>,
        callback_event: Option<(String, Vars)>,
    },
    Stop {
        reason: String,
        variables: Vars,
    },
}

impl Reaction {
    pub fn done(state: impl Into<String>, variables: Vars) -> Self {
        Reaction::Done {
            state: state.into(),
            variables,
            error: None,
            effects: Vec::new(),
            call: CallChange::Keep,
        }
    }

    pub fn failed(state: impl Into<String>, variables: Vars, error: impl Into<String>) -> Self {
        Reaction::Done {
            state: state.into(),
            variables,
            error: Some(error.into()),
            effects: Vec::new(),
            call: CallChange::Keep,
        }
    }

    pub fn wait(on: WaitOn, timeout_secs: u64, variables: Vars, effects: Vec<Effect>) -> Self {
        Reaction::Wait {
            waits: vec![Wait {
                on,
                timeout_secs,
                variables,
            }],
            effects,
            callback_event: None,
        }
    }

    pub fn stop(reason: impl Into<String>) -> Self {
        Reaction::Stop {
            reason: reason.into(),
            variables: Vars::new(),
        }
    }

    pub fn with_effects(mut self, extra: Vec<Effect>) -> Self {
        if let Reaction::Done { effects, .. } | Reaction::Wait { effects, .. } = &mut self {
            effects.extend(extra);
        }
        self
    }

    pub fn with_call(mut self, change: CallChange) -> Self {
        if let Reaction::Done { call, .. } = &mut self {
            *call = change;
        }
        self
    }
}

/// Runs one event through one node.
pub fn step(
    phlo: &Phlo,
    node_id: NodeId,
    ctx: &Context,
    event: &Event,
) -> Result<Step, EngineError> {
    let node = phlo
        .node(node_id)
        .ok_or(EngineError::UnknownNode(node_id))?;
    let reaction = node.component.react(node, ctx, event)?;
    Ok(finish(node, ctx, reaction))
}

fn finish(node: &Node, ctx: &Context, reaction: Reaction) -> Step {
    match reaction {
        Reaction::Done {
            state,
            variables,
            error,
            mut effects,
            call,
        } => {
            effects.extend(callback(node, ctx, &state, Some(&state), &variables));
            let next = node.transitions.get(&state).copied();
            Step {
                outcome: Outcome::Done {
                    state,
                    next,
                    variables,
                    error,
                },
                effects,
                call,
            }
        }
        Reaction::Wait {
            waits,
            mut effects,
            callback_event,
        } => {
            if let Some((event, variables)) = callback_event {
                effects.extend(callback(node, ctx, &event, None, &variables));
            }
            Step {
                outcome: Outcome::Wait { waits },
                effects,
                call: CallChange::Keep,
            }
        }
        Reaction::Stop { reason, variables } => Step {
            outcome: Outcome::Stop { reason, variables },
            effects: Vec::new(),
            call: CallChange::Keep,
        },
    }
}

fn callback(
    node: &Node,
    ctx: &Context,
    event: &str,
    state: Option<&String>,
    variables: &Vars,
) -> Option<Effect> {
    let config = node.callback.as_ref().filter(|c| c.wants(event))?;
    Some(Effect::Callback(Callback {
        url: config.url.clone(),
        method: config.method.clone(),
        event: event.to_owned(),
        phlo_id: ctx.phlo_id.clone(),
        run_id: ctx.run_id.clone(),
        node_id: node.id.to_string(),
        node_name: node.name.clone(),
        node_type: node.kind().as_str().to_owned(),
        state: state.cloned(),
        variables: variables.clone(),
    }))
}

pub(crate) fn unexpected(node: &Node, event: &Event) -> EngineError {
    EngineError::UnexpectedEvent {
        node: node.name.clone(),
        kind: node.kind().as_str(),
        event: event.kind(),
    }
}
