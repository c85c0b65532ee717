//! `phlo-bench`: drives the real stack (gateway, workers, callback service, carrier simulator as child
//! processes of the `phlo` binary) through the HTTP API and measures it from Postgres; runs reference
//! loops on the same Postgres and NATS and prints our figures as ratios to them. See
//! docs/benchmarks.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;
use serde_json::{Value, json};

mod load;
mod reference;
mod stack;

use load::{Measured, Mode, Target};
use reference::RefResult;
use stack::{ProcSample, Stack};

#[derive(Parser)]
#[command(
    name = "phlo-bench",
    about = "Load tool for the PHLO runner, with reference loops"
)]
struct Args {
    /// Every scenario on a tiny load (seconds): for CI.
    #[arg(long)]
    tiny: bool,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Which to run, comma-separated: a,b,c,d,e,t,ref1,ref2 (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The `phlo` binary (default: next to this executable).
    #[arg(long)]
    phlo_bin: Option<PathBuf>,
    /// Admin URL of the Postgres to create the bench databases on; its options (`?sslmode=…`) apply to
    /// every connection of the services and the reference loops. Without TLS by default: on one host it
    /// only costs CPU, and the runner pays it per round trip, the reference loops less often.
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
    )]
    database_url: String,
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Seconds of measured load per scenario (default 20; 2 with --tiny).
    #[arg(long)]
    duration: Option<f64>,
    /// Runs in flight for a, b, c, e (closed loop).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Runs per second for scenario t (trigger → first step latency).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Worker processes for a, b, c, d.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Runs in flight for scenario d.
    #[arg(long, value_delimiter = ',', default_value = "10,100,1000,10000")]
    in_flight: Vec<usize>,
    /// Handlers in flight in the reference loops (the worker's default step concurrency is 32).
    #[arg(long, default_value_t = 32)]
    ref_concurrency: usize,
    /// Keep the bench databases (default: dropped after each scenario).
    #[arg(long)]
    keep: bool,
    /// Extra environment for every service process, KEY=VALUE (repeatable).
    #[arg(long = "env")]
    env: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ProcReport {
    name: String,
    /// CPU seconds used during the measured window.
    cpu_window_s: f64,
    cpu_total_s: f64,
    peak_rss_mb: f64,
}

#[derive(Debug, Serialize)]
struct ScenarioReport {
    name: String,
    description: String,
    workers: usize,
    mode: Mode,
    #[serde(flatten)]
    measured: Measured,
    processes: Vec<ProcReport>,
    postgres_cpu_window_s: f64,
    nats_cpu_window_s: f64,
    bench_cpu_window_s: f64,
    /// All CPU (services + Postgres + NATS) per step finished in the window, ms.
    cpu_ms_per_step: f64,
    /// Write-ahead log written during the window.
    wal: load::WalReport,
    /// Scenario c only: the callback service draining a standing backlog, as ref2 does.
    #[serde(skip_serializing_if = "Option::is_none")]
    drain: Option<DrainReport>,
    errors: BTreeMap<String, u64>,
}

/// The callback service alone with a backlog: the same load ran while it was stopped, then it started
/// on the deliveries waiting (their messages queued in NATS), as ref2's feeder keeps messages queued.
#[derive(Debug, Serialize)]
struct DrainReport {
    /// Deliveries pending when the callback service started.
    backlog: i64,
    delivered: i64,
    /// The middle 80 % of the backlog's `delivered_at` (see `load::delivery_rate`).
    callbacks_per_s: f64,
    /// From the start of the callback process until nothing was pending.
    drain_s: f64,
    /// Transactions committed in the bench database during the drain, per callback: the claim's and
    /// the result's when each delivery commits its own (2), less with group commit. Includes the
    /// bench's polling (about 20/s) and the scheduler's passes.
    commits_per_callback: f64,
    callback_cpu_s: f64,
    postgres_cpu_s: f64,
    nats_cpu_s: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: Value,
    scenarios: Vec<ScenarioReport>,
    references: Vec<RefResult>,
    ratios: BTreeMap<String, f64>,
}

struct Scenario {
    name: String,
    description: String,
    definition: Value,
    payload: Value,
    workers: usize,
    callback: bool,
    sim: bool,
    mode: Mode,
}

const START: &str = "b0000000-0000-4000-8000-000000000000";

fn node_id(i: usize) -> String {
    format!("b0000000-0000-4000-8000-{i:012}")
}

/// Start → `n` nodes alternating Branch and Counter (none waits); with a callback on every node
/// when `callback_url` is given.
fn chain(n: usize, callback_url: Option<&str>) -> Value {
    let mut nodes = vec![json!({
        "node_id": START, "name": "Start", "type": "start",
        "options": { "payload": { "kind": "order" } },
        "transitions": { "api_request": node_id(1) },
    })];
    for i in 1..=n {
        let next = if i < n {
            json!(node_id(i + 1))
        } else {
            Value::Null
        };
        nodes.push(if i % 2 == 1 {
            json!({
                "node_id": node_id(i), "name": format!("Branch_{i}"), "type": "branch",
                "options": { "lhs": "{{Start.http.params.kind}}",
                             "conditions": [{ "alias": "next", "operation": "equals", "rhs": "order" }] },
                "transitions": { "next": next },
            })
        } else {
            json!({
                "node_id": node_id(i), "name": format!("Counter_{i}"), "type": "counter",
                "options": { "max_count": 1_000_000_000 },
                "transitions": { "count_not_reached": next },
            })
        });
    }
    if let Some(url) = callback_url {
        for node in &mut nodes {
            node["callback"] = json!({ "url": url });
        }
    }
    json!({ "name": format!("bench chain {n}"), "nodes": nodes })
}

/// Start → HTTP Request (local server) → Branch on the response → Send SMS (carrier simulator).
fn http_sms(port: u16) -> Value {
    json!({ "name": "bench http sms", "nodes": [
        { "node_id": START, "name": "Start", "type": "start",
          "transitions": { "api_request": node_id(1) } },
        { "node_id": node_id(1), "name": "HTTP_Request_1", "type": "http_request",
          "options": { "method": "POST", "url": format!("http://127.0.0.1:{port}/orders/{{{{Start.http.params.order_id}}}}"),
                       "body": { "type": "json", "content": { "n": 1 } },
                       "timeout": 5,
                       "response": { "content_type": "application/json" } },
          "transitions": { "success": node_id(2) } },
        { "node_id": node_id(2), "name": "Branch_1", "type": "branch",
          "options": { "lhs": "{{HTTP_Request_1.response.body.order.status}}",
                       "conditions": [{ "alias": "shipped", "operation": "equals", "rhs": "shipped" }] },
          "transitions": { "shipped": node_id(3) } },
        { "node_id": node_id(3), "name": "Send_SMS_1", "type": "send_sms",
          "options": { "from": "+14155550100", "to": "+14155550101",
                       "message": "Order {{Start.http.params.order_id}} shipped." } },
    ]})
}

async fn run_scenario(
    args: &Args,
    phlo: &std::path::Path,
    env: &[(String, String)],
    sc: &Scenario,
    duration: Duration,
) -> anyhow::Result<ScenarioReport> {
    let mut stack = Stack::start(
        phlo,
        &args.database_url,
        &args.nats_url,
        sc.workers,
        sc.callback,
        sc.sim,
        env,
    )
    .await?;
    stack.keep = args.keep;
    let result = run_on(args, &mut stack, sc, duration).await;
    stack.stop().await;
    result
}

async fn run_on(
    args: &Args,
    stack: &mut Stack,
    sc: &Scenario,
    duration: Duration,
) -> anyhow::Result<ScenarioReport> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&stack.db_url)
        .await?;
    let acct = stack.account().await?;
    let phlo_id = stack.create_phlo(&acct, &sc.definition).await?;
    let target = Target {
        url: format!("{}/v1/account/{}/phlo/{phlo_id}", stack.gateway_url, acct.0),
        auth_id: acct.0.clone(),
        token: acct.1.clone(),
        payload: sc.payload.clone(),
    };
    // Warm-up at the measured load, not measured: workers connected, caches filled, and each
    // process's connection pool grown to the size this load needs. Warmed at a lower load, the pools
    // grew inside the window instead: at 1,000 runs/s about 20 connections opened within 100 ms, and
    // every run of the next 300 ms waited (p99 45-60 ms instead of 4-6, docs/benchmarks.md run 7).
    let warm = (duration / 4).max(Duration::from_millis(500));
    let (_, _, _) = load::drive(stack, &pool, &target, sc.mode, warm).await?;
    load::drain(&pool, Duration::from_secs(60)).await?;
    if sc.callback {
        load::drain_callbacks(&pool, Duration::from_secs(60)).await?;
    }
    let pids = stack.pids();
    let before: Vec<Option<ProcSample>> = pids.iter().map(|(_, p)| stack::sample(*p)).collect();
    let wal_before = load::wal_mark(&pool).await?;
    let cpu = reference::CpuWindow::begin();
    let (fired, start, end) = load::drive(stack, &pool, &target, sc.mode, duration).await?;
    let cpu = cpu.end();
    let wal_after = load::wal_mark(&pool).await?;
    let after: Vec<Option<ProcSample>> = pids.iter().map(|(_, p)| stack::sample(*p)).collect();
    let drain_for = Duration::from_secs(if args.tiny { 30 } else { 120 });
    let mut errors: BTreeMap<String, u64> = fired.errors.clone().into_iter().collect();
    if !load::drain(&pool, drain_for).await? {
        *errors
            .entry("runs still active after drain".into())
            .or_default() += 1;
    }
    if sc.callback && !load::drain_callbacks(&pool, drain_for).await? {
        *errors
            .entry("callbacks still pending after drain".into())
            .or_default() += 1;
    }
    let measured = load::measure(&pool, &phlo_id, &fired, start, end).await?;
    for e in stack.exited() {
        *errors.entry(e).or_default() += 1;
    }
    if measured.runs_not_completed > 0 {
        errors.insert(
            "runs not completed".into(),
            measured.runs_not_completed as u64,
        );
    }
    if measured.steps_with_error > 0 {
        errors.insert(
            "steps with an error".into(),
            measured.steps_with_error as u64,
        );
    }
    if measured.callbacks_not_delivered > 0 {
        errors.insert(
            "callbacks not delivered".into(),
            measured.callbacks_not_delivered as u64,
        );
    }
    let processes: Vec<ProcReport> = pids
        .iter()
        .zip(before.iter().zip(after.iter()))
        .map(|((name, pid), (b, a))| {
            let last = stack::sample(*pid).or(*a).unwrap_or_default();
            ProcReport {
                name: name.clone(),
                cpu_window_s: a.unwrap_or_default().cpu_s - b.unwrap_or_default().cpu_s,
                cpu_total_s: last.cpu_s,
                peak_rss_mb: last.peak_rss_mb,
            }
        })
        .collect();
    let drain = if sc.callback {
        match drain_backlog(stack, &pool, &target, sc.mode, duration, drain_for).await {
            Ok(d) => {
                if d.delivered < d.backlog {
                    *errors
                        .entry("drain: callbacks still pending".into())
                        .or_default() += 1;
                }
                Some(d)
            }
            Err(e) => {
                *errors.entry(format!("drain failed: {e:#}")).or_default() += 1;
                None
            }
        }
    } else {
        None
    };
    pool.close().await;
    let services_cpu: f64 = processes.iter().map(|p| p.cpu_window_s).sum();
    let steps_in_window = measured.steps_per_s * measured.window_s;
    Ok(ScenarioReport {
        name: sc.name.clone(),
        description: sc.description.clone(),
        workers: sc.workers,
        mode: sc.mode,
        cpu_ms_per_step: if steps_in_window > 0.0 {
            (services_cpu + cpu.pg_s + cpu.nats_s) * 1000.0 / steps_in_window
        } else {
            0.0
        },
        measured,
        processes,
        postgres_cpu_window_s: cpu.pg_s,
        nats_cpu_window_s: cpu.nats_s,
        bench_cpu_window_s: cpu.me_s,
        wal: wal_after.since(wal_before, steps_in_window),
        drain,
        errors,
    })
}

/// Runs the load for `duration` with the callback service stopped, waits for the runs to end, then
/// starts it on the backlog and waits until it is delivered.
async fn drain_backlog(
    stack: &mut Stack,
    pool: &sqlx::PgPool,
    target: &Target,
    mode: Mode,
    duration: Duration,
    timeout: Duration,
) -> anyhow::Result<DrainReport> {
    stack.kill("callback");
    let since = load::server_now(pool).await?;
    load::drive(stack, pool, target, mode, duration).await?;
    if !load::drain(pool, timeout).await? {
        anyhow::bail!("runs still active before the drain");
    }
    let backlog = load::pending_callbacks(pool).await?;
    // Idle backends report their counts to the statistics up to 10 s late.
    tokio::time::sleep(load::STATS_LAG).await;
    let commits = load::commits(pool).await?;
    let cpu = reference::CpuWindow::begin();
    let started = std::time::Instant::now();
    let pid = stack.start_callback()?;
    load::drain_callbacks(pool, timeout).await?;
    let drain_s = started.elapsed().as_secs_f64();
    let callback_cpu_s = stack::sample(pid).unwrap_or_default().cpu_s;
    let cpu = cpu.end();
    tokio::time::sleep(load::STATS_LAG).await;
    let commits = load::commits(pool).await? - commits;
    let (delivered, callbacks_per_s) = load::delivery_rate(pool, since).await?;
    Ok(DrainReport {
        backlog,
        delivered,
        callbacks_per_s,
        drain_s,
        commits_per_callback: commits as f64 / delivered.max(1) as f64,
        callback_cpu_s,
        postgres_cpu_s: cpu.pg_s,
        nats_cpu_s: cpu.nats_s,
    })
}

fn machine() -> Value {
    let cmd = |c: &str, a: &[&str]| {
        std::process::Command::new(c)
            .args(a)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|s| s.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    json!({ "nproc": cmd("nproc", &[]), "cpu": model, "free": cmd("free", &["-h"]) })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    if args.tiny {
        args.concurrency = args.concurrency.min(8);
        args.rate = args.rate.min(50.0);
        if args.in_flight == [10, 100, 1000, 10000] {
            args.in_flight = vec![4, 32];
        }
    }
    let duration =
        Duration::from_secs_f64(args.duration.unwrap_or(if args.tiny { 2.0 } else { 20.0 }));
    let want = |s: &str| args.only.is_empty() || args.only.iter().any(|o| o == s);
    let phlo = stack::locate_phlo(args.phlo_bin.as_deref())?;
    let env: Vec<(String, String)> = args
        .env
        .iter()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let hits = Arc::new(AtomicU64::new(0));
    let local = load::local_server(hits.clone()).await?;
    let hook_url = format!("http://{local}/hooks/node");
    let chain_payload = json!({ "order_id": "17" });
    let mut scenarios = Vec::new();
    let conc = Mode::Concurrency(args.concurrency);
    let base = |name: &str, description: &str, definition: Value| Scenario {
        name: name.into(),
        description: description.into(),
        definition,
        payload: chain_payload.clone(),
        workers: args.workers,
        callback: false,
        sim: false,
        mode: conc,
    };
    if want("a") {
        scenarios.push(base(
            "a",
            "10-node chain (Branch, Counter)",
            chain(10, None),
        ));
    }
    if want("t") {
        scenarios.push(Scenario {
            mode: Mode::Rate(args.rate),
            ..base(
                "t",
                "trigger latency at a fixed rate: Start → Branch",
                chain(1, None),
            )
        });
    }
    if want("b") {
        scenarios.push(Scenario {
            sim: true,
            ..base(
                "b",
                "HTTP Request (local) → Branch → Send SMS (carrier sim)",
                http_sms(local.port()),
            )
        });
    }
    if want("c") {
        scenarios.push(Scenario {
            callback: true,
            ..base(
                "c",
                "10-node chain, a callback on every node (local receiver)",
                chain(10, Some(&hook_url)),
            )
        });
    }
    if want("d") {
        for n in &args.in_flight {
            scenarios.push(Scenario {
                mode: Mode::Concurrency(*n),
                ..base(
                    &format!("d{n}"),
                    &format!("10-node chain, {n} runs in flight"),
                    chain(10, None),
                )
            });
        }
    }
    if want("e") {
        for w in [1, 2] {
            scenarios.push(Scenario {
                workers: w,
                ..base(
                    &format!("e{w}"),
                    &format!("10-node chain, {w} worker process(es)"),
                    chain(10, None),
                )
            });
        }
    }
    let mut report = Report {
        machine: machine(),
        scenarios: Vec::new(),
        references: Vec::new(),
        ratios: BTreeMap::new(),
    };
    let mut failed = false;
    for sc in &scenarios {
        eprintln!("phlo-bench: scenario {}: {}", sc.name, sc.description);
        match run_scenario(&args, &phlo, &env, sc, duration).await {
            Ok(r) => report.scenarios.push(r),
            Err(e) => {
                failed = true;
                eprintln!("phlo-bench: scenario {} failed: {e:#}", sc.name);
            }
        }
    }
    for (name, which) in [("ref1", 1), ("ref2", 2)] {
        if !want(name) {
            continue;
        }
        eprintln!("phlo-bench: reference loop {name}");
        let (db_name, db_url) = stack::create_database(&args.database_url).await?;
        let renv = reference::Env {
            db_url,
            nats_url: args.nats_url.clone(),
            concurrency: args.ref_concurrency,
            warmup: (duration / 4).max(Duration::from_millis(500)),
            duration,
        };
        let r = if which == 1 {
            reference::durable_step(&renv).await
        } else {
            reference::webhook(&renv).await
        };
        if !args.keep {
            stack::drop_database(&args.database_url, &db_name).await;
        }
        match r {
            Ok(r) => report.references.push(r),
            Err(e) => {
                failed = true;
                eprintln!("phlo-bench: reference {name} failed: {e:#}");
            }
        }
    }
    let reference_rate = |prefix: &str| {
        report
            .references
            .iter()
            .find(|r| r.name.starts_with(prefix))
            .map(|r| r.ops_per_s)
    };
    if let Some(ref1) = reference_rate("ref1") {
        for s in &report.scenarios {
            if s.name != "b" && s.name != "t" {
                report.ratios.insert(
                    format!("{} steps/s ÷ ref1", s.name),
                    s.measured.steps_per_s / ref1,
                );
            }
        }
    }
    if let Some(ref2) = reference_rate("ref2")
        && let Some(c) = report.scenarios.iter().find(|s| s.name == "c")
    {
        report.ratios.insert(
            "c callbacks/s ÷ ref2".into(),
            c.measured.callbacks_per_s / ref2,
        );
        if let Some(drain) = &c.drain {
            report.ratios.insert(
                "c drain callbacks/s ÷ ref2".into(),
                drain.callbacks_per_s / ref2,
            );
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    if failed {
        anyhow::bail!("some scenarios failed (see above)");
    }
    // A run lost or stuck is a defect, not a figure: fail, so that CI's tiny run catches it (it once
    // printed "runs not completed: 2" and passed, while step messages were being dropped).
    let with_errors: Vec<String> = report
        .scenarios
        .iter()
        .filter(|s| !s.errors.is_empty())
        .map(|s| format!("{}: {:?}", s.name, s.errors))
        .collect();
    if !with_errors.is_empty() {
        anyhow::bail!("scenarios with errors: {}", with_errors.join("; "));
    }
    Ok(())
}

fn pct(p: &load::Percentiles) -> String {
    format!("{:.1}/{:.1}/{:.1}/{:.1}", p.p50, p.p90, p.p99, p.max)
}

fn print_table(r: &Report) {
    println!(
        "machine: {} cores, {}",
        r.machine["nproc"].as_str().unwrap_or("?"),
        r.machine["cpu"].as_str().unwrap_or("?")
    );
    println!(
        "\n{:<5} {:>2} {:>9} {:>6} {:>8} {:>9} {:>27} {:>27} {:>8} {:>7} {:>6} {:>6} errors",
        "scen",
        "w",
        "mode",
        "runs",
        "runs/s",
        "steps/s",
        "trigger→1st step p50/90/99/max",
        "trigger→done p50/90/99/max",
        "cb/s",
        "cpu/st",
        "exec",
        "gap"
    );
    for s in &r.scenarios {
        let m = &s.measured;
        let mode = match s.mode {
            Mode::Rate(x) => format!("{x:.0}/s"),
            Mode::Concurrency(n) => format!("c{n}"),
        };
        let errors = if s.errors.is_empty() {
            "-".to_owned()
        } else {
            s.errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        println!(
            "{:<5} {:>2} {:>9} {:>6} {:>8.1} {:>9.1} {:>27} {:>27} {:>8.1} {:>7.3} {:>6.2} {:>6.2} {}",
            s.name,
            s.workers,
            mode,
            m.runs_fired,
            m.runs_per_s,
            m.steps_per_s,
            pct(&m.first_step_ms),
            pct(&m.complete_ms),
            m.callbacks_per_s,
            s.cpu_ms_per_step,
            m.step_exec_ms,
            m.step_gap_ms,
            errors
        );
    }
    for s in &r.scenarios {
        let w = &s.wal;
        let added = match w.segments_added {
            Some(0) => "no WAL segment created".to_owned(),
            Some(n) => format!(
                "{n} WAL segment(s) created: every commit waited while Postgres wrote each \
                 (a cold cluster; see docs/benchmarks.md, run 7)"
            ),
            None => "WAL segments not counted (pg_ls_waldir needs pg_monitor)".to_owned(),
        };
        println!(
            "{:<5} wal: {:.1} MB in the window, {:.0} bytes per step, {added}",
            s.name, w.mb, w.bytes_per_step
        );
    }
    for s in &r.scenarios {
        if let Some(d) = &s.drain {
            println!(
                "{:<5} drain: {} callbacks waiting, {:.1} callbacks/s (middle 80 % of delivered_at), \
                 all delivered after {:.1} s, {:.2} commits per callback; CPU s: callback {:.2}, \
                 postgres {:.2}, nats {:.2}",
                s.name,
                d.backlog,
                d.callbacks_per_s,
                d.drain_s,
                d.commits_per_callback,
                d.callback_cpu_s,
                d.postgres_cpu_s,
                d.nats_cpu_s
            );
        }
    }
    println!(
        "\n(latencies in ms, server-side: steps.finished_at / runs.ended_at − runs.created_at; cpu/st = CPU ms \
         of services + Postgres + NATS per step; exec = step finished_at − started_at; gap = step start − previous step finish)"
    );
    println!(
        "\n{:<5} {:<12} {:>9} {:>9} {:>9}   1st step from send p50/p99   trigger HTTP p50/p99",
        "scen", "process", "cpu win s", "cpu tot s", "peak MB"
    );
    for s in &r.scenarios {
        for (i, p) in s.processes.iter().enumerate() {
            let extra = if i == 0 {
                format!(
                    "   {:.1}/{:.1}                    {:.1}/{:.1}",
                    s.measured.first_step_from_send_ms.p50,
                    s.measured.first_step_from_send_ms.p99,
                    s.measured.trigger_response_ms.p50,
                    s.measured.trigger_response_ms.p99
                )
            } else {
                String::new()
            };
            println!(
                "{:<5} {:<12} {:>9.2} {:>9.2} {:>9.1}{extra}",
                s.name, p.name, p.cpu_window_s, p.cpu_total_s, p.peak_rss_mb
            );
        }
        println!(
            "{:<5} {:<12} {:>9.2}\n{:<5} {:<12} {:>9.2}\n{:<5} {:<12} {:>9.2}",
            s.name,
            "postgres",
            s.postgres_cpu_window_s,
            s.name,
            "nats-server",
            s.nats_cpu_window_s,
            s.name,
            "bench",
            s.bench_cpu_window_s
        );
    }
    if !r.references.is_empty() {
        println!(
            "\n{:<18} {:>4} {:>8} {:>9} {:>7} {:>7} {:>7}  phases (mean ms)",
            "reference", "conc", "ops", "ops/s", "pg cpu", "nats", "bench"
        );
        for x in &r.references {
            let phases = x
                .phases_ms
                .iter()
                .map(|(k, v)| format!("{k} {v:.2}"))
                .collect::<Vec<_>>()
                .join(", ");
            println!(
                "{:<18} {:>4} {:>8} {:>9.1} {:>7.2} {:>7.2} {:>7.2}  {phases}{}",
                x.name,
                x.concurrency,
                x.ops,
                x.ops_per_s,
                x.postgres_cpu_s,
                x.nats_cpu_s,
                x.bench_cpu_s,
                if x.errors > 0 {
                    format!("  errors: {}", x.errors)
                } else {
                    String::new()
                }
            );
        }
    }
    for (k, v) in &r.ratios {
        println!("ratio {k}: {v:.2}");
    }
}
