//! The PHLO model: the JSON definition format, its validation, and the pure step engine.
//!
//! This crate owns what a PHLO *means*: which options each component takes, which states it ends in,
//! which variables it exposes, and what it asks the runtime to do. It must stay pure: no async, no I/O,
//! no clock, no randomness. The runtime (workers, dev mode) performs the [`Effect`]s and feeds results
//! back as [`Event`]s, so every component is testable with plain function calls.
//!
//! ```
//! let definition = serde_json::json!({
//!   "name": "Hello",
//!   "nodes": [{ "node_id": "00000000-0000-4000-8000-000000000001", "name": "Start", "type": "start" }]
//! });
//! let (phlo, warnings) = phlo_flow::compile(&definition).expect("valid");
//! assert!(warnings.is_empty());
//! assert_eq!(phlo.node(phlo.start).unwrap().name, "Start");
//! ```

#![warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod compile;
pub mod condition;
pub mod effect;
pub mod engine;
pub mod event;
pub mod limits;
pub mod model;
pub mod nodes;
mod options;
pub mod phone;
mod problem;

pub use compile::{MAX_NAME_LEN, MAX_NODES, START_NAME, compile, compile_str, validate};
pub use effect::Effect;
pub use engine::{ActiveCall, CallChange, Context, EngineError, Outcome, Step, Wait, WaitOn, step};
pub use event::{Event, Trigger, Vars};
pub use model::{CallbackConfig, Kind, Node, NodeId, Phlo};
pub use problem::{Problem, Severity};
