//! The NATS JetStream contract shared by the gateway and the workers.
//!
//! This crate owns everything that touches NATS: the one work stream and its durable pull
//! consumers ([`Queue`]), subject and consumer names, the versioned wire messages
//! ([`StepMessage`], [`HttpMessage`]), the acked and deduplicated [`Bus::publish`], and the one
//! consumer loop ([`Bus::consume`]) that maps a handler's [`Outcome`] to ack / nak(delay) / term
//! and keeps long handlers alive with progress acks.
//!
//! What it must not do: no SQL and no business logic. Postgres is the source of truth; the bus
//! only promises at-least-once delivery with publish dedup inside a two-minute window, so every
//! handler must be idempotent (the worker's inbox/sequence check) and must treat a redelivery,
//! or a message that never comes, as normal.
//!
//! The same contract has a second backend, the in-process queue ([`Bus::in_memory`], bus URL
//! `memory:`), for `phlo serve` without NATS: one process, nothing shared with other processes,
//! queued messages lost when the process ends (Postgres re-drives them, as when NATS loses one).
//!
//! Written for nats-server 2.9 (what the machines here run): no 2.10+ features are relied upon.
#![warn(clippy::unwrap_used, clippy::expect_used)]

mod bus;
mod config;
mod consume;
mod error;
mod memory;
mod messages;
pub mod trace;

pub use async_nats::HeaderMap;
pub use bus::{Bus, Published, Subscription};
pub use config::{BusConfig, MEMORY_URL, Queue};
pub use consume::{Delivery, Outcome};
pub use error::BusError;
pub use memory::allow_in_memory;
pub use messages::{
    CallbackMessage, CarrierCommand, CarrierMessage, DecodeError, HttpMessage, StepMessage,
    WIRE_VERSION,
};
