//! Service settings: a value no service can run with stops it at start-up, with a message naming the
//! variable, instead of a panic, a silent clamp, a worker that never pulls, or a scheduler that spins.

use std::process::Command;

fn start(service: &str, env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_phlo"))
        .arg(service)
        .envs(env.iter().copied())
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("run phlo");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The services that read a setting, the settings, and what the message must say.
type Case = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[test]
fn impossible_settings_stop_the_service_with_a_message() {
    let cases: &[Case] = &[
        // sqlx panicked on a pool of no connections.
        (
            &["gateway", "worker", "callback"],
            &[("PHLO_DB_POOL", "0")],
            "PHLO_DB_POOL=0 is invalid: give 1 to 10000",
        ),
        // Was clamped to the maximum without a word.
        (
            &["gateway", "worker", "callback"],
            &[("PHLO_DB_POOL", "4"), ("PHLO_DB_POOL_MIN", "5")],
            "PHLO_DB_POOL_MIN=5 is more than PHLO_DB_POOL=4",
        ),
        // A worker that never pulls a message.
        (
            &["worker"],
            &[("PHLO_WORKER_CONCURRENCY", "0")],
            "PHLO_WORKER_CONCURRENCY=0 is invalid",
        ),
        (
            &["worker"],
            &[("PHLO_HTTP_CONCURRENCY", "0")],
            "PHLO_HTTP_CONCURRENCY=0 is invalid",
        ),
        (
            &["worker"],
            &[("PHLO_CARRIER_CONCURRENCY", "0")],
            "PHLO_CARRIER_CONCURRENCY=0 is invalid",
        ),
        // A gateway that refuses every API request.
        (
            &["gateway"],
            &[("PHLO_GATEWAY_MAX_IN_FLIGHT", "0")],
            "PHLO_GATEWAY_MAX_IN_FLIGHT=0 is invalid",
        ),
        (
            &["callback"],
            &[("PHLO_CALLBACK_CONCURRENCY", "0")],
            "PHLO_CALLBACK_CONCURRENCY=0 is invalid",
        ),
        // Past what they size or the clock arithmetic they feed: tokio's semaphore panicked, and so
        // did adding the callback timeout to now.
        (
            &["worker"],
            &[("PHLO_WORKER_CONCURRENCY", "18446744073709551615")],
            "PHLO_WORKER_CONCURRENCY=18446744073709551615 is invalid: give 1 to 100000",
        ),
        (
            &["callback"],
            &[("PHLO_CALLBACK_CONCURRENCY", "100001")],
            "PHLO_CALLBACK_CONCURRENCY=100001 is invalid: give 1 to 100000",
        ),
        (
            &["callback"],
            &[("PHLO_CALLBACK_TIMEOUT_SECS", "18446744073709551615")],
            "PHLO_CALLBACK_TIMEOUT_SECS=18446744073709551615 is invalid: at most 315360000 seconds",
        ),
        (
            &["gateway", "worker"],
            &[("PHLO_SHUTDOWN_GRACE_SECS", "315360001")],
            "PHLO_SHUTDOWN_GRACE_SECS=315360001 is invalid: at most 315360000 seconds",
        ),
        // Background loops polling without pause.
        (
            &["worker", "callback"],
            &[("PHLO_POLL_INTERVAL_MS", "0")],
            "PHLO_POLL_INTERVAL_MS=0 is invalid",
        ),
    ];
    for (services, env, expected) in cases {
        for service in *services {
            let (ok, stderr) = start(service, env);
            assert!(!ok, "{service} {env:?}: {stderr}");
            assert!(stderr.contains(expected), "{service} {env:?}: {stderr}");
            assert!(!stderr.contains("panicked"), "{service} {env:?}: {stderr}");
        }
    }
}
