//! One integration-test binary: the simulator in-process against a small recording application.

mod control;
mod dial;
mod ivr;
mod messages;
mod outbound;
mod record;
mod rooms;
mod signature;
mod support;
