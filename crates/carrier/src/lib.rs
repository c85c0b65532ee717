//! The carrier contract: everything the runner says to and hears from a Plivo-compatible carrier.
//!
//! - [`xml`]: a typed model of Plivo XML responses, rendered always well-formed and parsed back.
//! - [`voice`]: the engine's carrier-neutral [`phlo_flow::effect::VoiceAction`]s as XML documents, with
//!   the callback URLs the runner chooses ([`voice::ActionUrls`]), keep-alive and sequential dialling.
//! - [`signature`]: `X-Plivo-Signature-V3` webhook signatures, as the official SDK computes them.
//! - [`Carrier`]: the REST side (place calls, send messages, control live calls and room members),
//!   with [`PlivoCarrier`] speaking Plivo's API at a configurable base URL.
//!
//! This crate holds no state and makes no decisions about runs: no SQL, no NATS, no engine calls. It
//! translates between the runner's vocabulary and the carrier's wire formats, and reports carrier
//! failures as [`CarrierError`]s that say whether a retry can help.

#![warn(clippy::unwrap_used, clippy::expect_used)]

mod carrier;
mod plivo;
pub mod signature;
pub mod voice;
pub mod xml;

pub use carrier::{
    AddParticipant, CallRequest, Carrier, CarrierError, MemberAction, OutboundCall,
    OutboundMessage, ParticipantAdded,
};
pub use plivo::{DEFAULT_BASE_URL, PlivoCarrier, PlivoConfig};
pub use signature::{signature_v3, verify_signature_v3};
pub use voice::{ActionUrls, keep_alive, voice_xml};
