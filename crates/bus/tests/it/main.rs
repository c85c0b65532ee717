//! Integration tests against the real NATS at 127.0.0.1:4222 (override with `NATS_URL`), and the
//! shared ones also against the in-process queue (`<test>::nats`, `<test>::memory`); each
//! test uses its own prefix, hence its own stream, and deletes it when done.

mod consume;
mod messages;
mod publish;
mod restart;
mod seam;
mod support;
mod trace;
