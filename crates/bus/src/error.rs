use async_nats::jetstream::{context, stream};

use crate::messages::DecodeError;

/// What can go wrong talking to NATS. Every variant keeps the client's error as its source.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("invalid bus configuration: {0}")]
    Config(String),

    #[error("cannot connect to NATS at {url}")]
    Connect {
        url: String,
        #[source]
        source: async_nats::ConnectError,
    },

    #[error("cannot create or open JetStream stream {stream}; is JetStream enabled (`-js`)?")]
    Stream {
        stream: String,
        #[source]
        source: context::CreateStreamError,
    },

    #[error("cannot create or update consumer {consumer}")]
    Consumer {
        consumer: String,
        #[source]
        source: stream::ConsumerError,
    },

    /// Given up after retrying: the caller keeps the work (e.g. the outbox row stays unpublished
    /// for the relay), it is not lost.
    #[error("publish to {subject} (msg id {msg_id}) failed")]
    Publish {
        subject: String,
        msg_id: String,
        #[source]
        source: context::PublishError,
    },

    /// Only the in-process queue says so; NATS would refuse it as "no responders".
    #[error("no queue takes messages published on {subject}")]
    UnknownSubject { subject: String },

    /// The message can never be read by this build; consumers should answer `Outcome::Term`.
    #[error(transparent)]
    Decode(#[from] DecodeError),

    #[error("cannot drain the NATS connection")]
    Drain(#[source] async_nats::client::DrainError),
}
