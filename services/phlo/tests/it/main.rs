//! System tests: the real binaries (`phlo gateway`, `phlo worker`) as separate processes, against the
//! Postgres and NATS of this machine, driven through the HTTP API.

mod support;
mod voice_support;

mod api;
mod callbacks;
mod chaos;
mod cli;
mod dev_mode;
mod e2e;
mod fairness;
mod guards;
mod memory_queue;
mod metrics;
mod pool;
mod sdk;
mod secrets;
mod settings;
mod shutdown;
mod traces;
mod voice;
mod voice_calls;
mod voice_ivr;
mod voice_mpc;
mod voice_rooms;
mod voice_sms;
