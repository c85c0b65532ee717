//! Prometheus `/metrics` of the real processes: after one run, the gateway's and the worker's
//! counters say what happened (runs started and ended, steps applied, deliveries, HTTP latency by
//! route template), with bounded labels (no run ids).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::chaos::{JOURNAL, LOAD, load_phlo};
use crate::support::{Metrics, Stack, scrape};

/// Scrapes `url` until `ready` holds (counters are recorded just after the commit the API shows).
async fn scrape_until(
    http: &reqwest::Client,
    url: &str,
    what: &str,
    ready: impl Fn(&Metrics) -> bool,
) -> Metrics {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = scrape(http, url).await;
        if ready(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "{what}; {url} says:\n{}", m.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_of_one_run() {
    // Not under the load tests' CPU: the figures are exact anyway, but the run must finish in time.
    let _one_at_a_time = LOAD.lock().await;
    let mut stack = Stack::start(0).await;
    let (_, worker) = stack.spawn_worker_on_port().await;
    let acct = stack.account().await;
    let phlo_id = stack.create_phlo(&acct, load_phlo()).await;
    let run_id = stack.run(&acct, &phlo_id, json!({ "i": 1 })).await;
    let run = stack
        .wait_run(&acct, &run_id, Duration::from_secs(30))
        .await;
    assert_eq!(run["status"], "completed", "{run:#}");
    let steps = run["steps"].as_array().map_or(0, Vec::len);
    assert_eq!(steps, JOURNAL.len());
    let steps = steps as f64;

    let gateway = stack.gateway_metrics().await;
    assert_eq!(
        gateway.sum(
            "phlo_runs_started_total",
            &[("phlo_id", &phlo_id), ("trigger", "api")]
        ),
        1.0,
        "runs started, gateway:\n{}",
        gateway.text
    );
    let route = [
        ("route", "/v1/account/{auth_id}/phlo/{phlo_id}"),
        ("method", "POST"),
        ("status", "201"),
    ];
    assert_eq!(
        gateway.sum("phlo_http_request_duration_seconds_count", &route),
        1.0,
        "the run request's latency sample:\n{}",
        gateway.text
    );
    assert!(
        gateway.sum(
            "phlo_http_request_duration_seconds_bucket",
            &[
                ("route", "/v1/account/{auth_id}/phlo/{phlo_id}"),
                ("le", "+Inf")
            ]
        ) >= 1.0,
        "a histogram with buckets:\n{}",
        gateway.text
    );
    assert!(
        gateway.sum(
            "phlo_http_request_duration_seconds_count",
            &[
                ("route", "/v1/runs/{run_id}"),
                ("method", "GET"),
                ("status", "200")
            ]
        ) >= 1.0,
        "the run polls, by route template:\n{}",
        gateway.text
    );
    assert!(
        !gateway.text.contains(&run_id) && !gateway.text.contains(&acct.auth_id),
        "ids in labels:\n{}",
        gateway.text
    );

    let url = format!("{worker}/metrics");
    let m = scrape_until(&stack.http, &url, "the run's steps and end", |m| {
        m.sum("phlo_steps_total", &[("outcome", "applied")]) >= steps
            && m.sum("phlo_runs_ended_total", &[("status", "completed")]) >= 1.0
            // Sampled once per background pass, which may come after the run ended.
            && m.has("phlo_outbox_backlog")
    })
    .await;
    assert_eq!(
        m.sum("phlo_steps_total", &[("outcome", "applied")]),
        steps,
        "steps applied = the run's step rows:\n{}",
        m.text
    );
    assert_eq!(
        m.sum("phlo_runs_ended_total", &[("status", "completed")]),
        1.0
    );
    assert_eq!(m.sum("phlo_runs_ended_total", &[]), 1.0);
    assert_eq!(
        m.sum("phlo_step_duration_seconds_count", &[]),
        steps,
        "one latency sample per applied step"
    );
    for node_type in ["start", "branch", "counter"] {
        assert!(
            m.sum(
                "phlo_step_duration_seconds_count",
                &[("node_type", node_type)]
            ) >= 1.0,
            "latency of {node_type} steps:\n{}",
            m.text
        );
    }
    // Step messages were delivered here: at least one, and no more than one per step (consecutive
    // steps of a token share a message, PHLO_INLINE_STEPS).
    let deliveries = m.sum("phlo_deliveries_total", &[("queue", "step")]);
    assert!((1.0..=steps).contains(&deliveries), "{}", m.text);
    assert_eq!(m.sum("phlo_steps_in_flight", &[]), 0.0);
    assert!(
        m.has("phlo_outbox_backlog"),
        "the relay samples the backlog:\n{}",
        m.text
    );
    assert!(!m.text.contains(&run_id), "run ids in labels:\n{}", m.text);
    // The gateway applies no steps; the worker starts no runs.
    assert_eq!(gateway.sum("phlo_steps_total", &[]), 0.0);
    assert_eq!(m.sum("phlo_runs_started_total", &[]), 0.0);
    stack.cleanup().await;
}
