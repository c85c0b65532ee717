//! Firing runs through the gateway's HTTP API (fixed rate or fixed concurrency) and measuring them
//! from Postgres afterwards, with server-side timestamps.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::Mutex;

use crate::stack::Stack;

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Runs per second, open loop.
    Rate(f64),
    /// Runs in flight (active in Postgres plus triggers not yet answered), closed loop.
    Concurrency(usize),
}

/// A local HTTP server in the bench process that answers every request with 200 and a small JSON
/// body, and counts what it received.
pub async fn local_server(hits: Arc<AtomicU64>) -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new().fallback(move || {
        let hits = hits.clone();
        async move {
            hits.fetch_add(1, Ordering::Relaxed);
            (
                [("content-type", "application/json")],
                r#"{"order":{"id":"A-17","status":"shipped"}}"#,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

pub async fn server_now(pool: &PgPool) -> anyhow::Result<f64> {
    let (t,): (f64,) = sqlx::query_as("SELECT extract(epoch FROM clock_timestamp())::float8")
        .fetch_one(pool)
        .await?;
    Ok(t)
}

/// Where Postgres' write-ahead log ends, and how many segment files `pg_wal` holds.
#[derive(Debug, Clone, Copy)]
pub struct WalMark {
    bytes: f64,
    /// `None` when the bench's role may not list `pg_wal` (superuser or `pg_monitor` may).
    files: Option<i64>,
}

/// The write-ahead log written between two marks (cluster-wide: a quiet machine is assumed).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct WalReport {
    pub mb: f64,
    pub bytes_per_step: f64,
    /// Segment files added to `pg_wal`. Postgres reuses the segments a checkpoint freed; when there are
    /// none it creates and zero-fills a new 16 MB file, and every commit waits meanwhile (the ~100 ms
    /// stalls behind a cold cluster's p99, docs/benchmarks.md run 7).
    pub segments_added: Option<i64>,
}

pub async fn wal_mark(pool: &PgPool) -> anyhow::Result<WalMark> {
    let (bytes,): (f64,) =
        sqlx::query_as("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::float8")
            .fetch_one(pool)
            .await?;
    let files = sqlx::query_as::<_, (i64,)>("SELECT count(*) FROM pg_ls_waldir()")
        .fetch_one(pool)
        .await
        .ok()
        .map(|(n,)| n);
    Ok(WalMark { bytes, files })
}

impl WalMark {
    pub fn since(self, before: WalMark, steps: f64) -> WalReport {
        let bytes = self.bytes - before.bytes;
        WalReport {
            mb: bytes / 1e6,
            bytes_per_step: if steps > 0.0 { bytes / steps } else { 0.0 },
            segments_added: self.files.zip(before.files).map(|(a, b)| (a - b).max(0)),
        }
    }
}

async fn active_runs(pool: &PgPool) -> anyhow::Result<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM runs WHERE status = 'active'")
        .fetch_one(pool)
        .await?;
    Ok(n)
}

#[derive(Default)]
pub struct Fired {
    /// run id → the bench's clock (unix seconds) when the request was sent.
    pub sent: HashMap<String, f64>,
    /// Milliseconds from send to the gateway's 201.
    pub response_ms: Vec<f64>,
    pub errors: HashMap<String, u64>,
}

#[derive(Clone)]
pub struct Target {
    pub url: String,
    pub auth_id: String,
    pub token: String,
    pub payload: Value,
}

async fn fire(http: &reqwest::Client, target: &Target, fired: &Mutex<Fired>) {
    let sent = unix_now();
    let t = Instant::now();
    let r = http
        .post(&target.url)
        .basic_auth(&target.auth_id, Some(&target.token))
        .json(&target.payload)
        .send()
        .await;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut f = fired.lock().await;
    match r {
        Ok(r) if r.status().as_u16() == 201 => {
            let body: Value = r.json().await.unwrap_or_default();
            match body["phlo_run_id"].as_str() {
                Some(id) => {
                    f.sent.insert(id.to_owned(), sent);
                    f.response_ms.push(ms);
                }
                None => *f.errors.entry("trigger: no run id".into()).or_default() += 1,
            }
        }
        Ok(r) => {
            *f.errors
                .entry(format!("trigger: HTTP {}", r.status()))
                .or_default() += 1
        }
        Err(e) => {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "request"
            };
            *f.errors.entry(format!("trigger: {kind}")).or_default() += 1
        }
    }
}

/// Fires runs for `duration`; returns what was fired and the server-side window (start, end).
pub async fn drive(
    stack: &Stack,
    pool: &PgPool,
    target: &Target,
    mode: Mode,
    duration: Duration,
) -> anyhow::Result<(Fired, f64, f64)> {
    let fired = Arc::new(Mutex::new(Fired::default()));
    let pending = Arc::new(AtomicUsize::new(0));
    let start = server_now(pool).await?;
    let deadline = Instant::now() + duration;
    match mode {
        Mode::Rate(rate) => {
            let tick = Duration::from_millis(5);
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let began = Instant::now();
            let mut sent = 0u64;
            while Instant::now() < deadline {
                interval.tick().await;
                let due = (began.elapsed().as_secs_f64() * rate) as u64;
                while sent < due {
                    sent += 1;
                    spawn_fire(stack, target, &fired, &pending);
                }
            }
        }
        Mode::Concurrency(n) => {
            // Poll less often with many runs in flight: the count reads that many index entries.
            let poll = Duration::from_millis(match n {
                0..=100 => 5,
                101..=1000 => 20,
                _ => 100,
            });
            while Instant::now() < deadline {
                let active = active_runs(pool).await? as usize;
                let in_flight = active + pending.load(Ordering::Relaxed);
                for _ in in_flight..n {
                    spawn_fire(stack, target, &fired, &pending);
                }
                tokio::time::sleep(poll).await;
            }
        }
    }
    let end = server_now(pool).await?;
    // Let answered triggers land.
    let wait = Instant::now() + Duration::from_secs(30);
    while pending.load(Ordering::Relaxed) > 0 && Instant::now() < wait {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fired = std::mem::take(&mut *fired.lock().await);
    Ok((fired, start, end))
}

fn spawn_fire(
    stack: &Stack,
    target: &Target,
    fired: &Arc<Mutex<Fired>>,
    pending: &Arc<AtomicUsize>,
) {
    pending.fetch_add(1, Ordering::Relaxed);
    let (http, target, fired, pending) = (
        stack.http.clone(),
        target.clone(),
        fired.clone(),
        pending.clone(),
    );
    tokio::spawn(async move {
        fire(&http, &target, &fired).await;
        pending.fetch_sub(1, Ordering::Relaxed);
    });
}

/// Waits until no run is active (or `timeout`); returns whether they all ended.
pub async fn drain(pool: &PgPool, timeout: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if active_runs(pool).await? == 0 {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until no callback delivery is pending (or `timeout`).
pub async fn drain_callbacks(pool: &PgPool, timeout: Duration) -> anyhow::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if pending_callbacks(pool).await? == 0 {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    pub n: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

pub fn percentiles(mut v: Vec<f64>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[(((v.len() as f64) * q).ceil() as usize).clamp(1, v.len()) - 1];
    Percentiles {
        n: v.len(),
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: v[v.len() - 1],
        mean: v.iter().sum::<f64>() / v.len() as f64,
    }
}

/// What Postgres says about the runs of one measured window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Measured {
    pub window_s: f64,
    pub runs_fired: usize,
    pub runs_completed: i64,
    pub runs_not_completed: i64,
    pub steps_total: i64,
    /// Runs and steps that finished inside the load window, per second of it.
    pub runs_per_s: f64,
    pub steps_per_s: f64,
    pub steps_per_run: f64,
    /// ms: first step's `finished_at` − `runs.created_at` (both Postgres `now()` values).
    pub first_step_ms: Percentiles,
    /// ms: first step's `finished_at` − the bench's send time (same machine clock).
    pub first_step_from_send_ms: Percentiles,
    /// ms: `runs.ended_at` − `runs.created_at`.
    pub complete_ms: Percentiles,
    /// ms: the trigger's HTTP round trip as the bench saw it.
    pub trigger_response_ms: Percentiles,
    /// ms: mean `finished_at` − `started_at` of a step (inside the worker) and mean gap between a
    /// step's start and the previous step's finish in the same run (queueing + NATS hop).
    pub step_exec_ms: f64,
    pub step_gap_ms: f64,
    pub steps_with_error: i64,
    pub callbacks_delivered: i64,
    pub callbacks_not_delivered: i64,
    pub callbacks_per_s: f64,
}

/// id, status, created_at, ended_at, first step's finished_at (unix seconds).
type RunRow = (String, String, f64, Option<f64>, Option<f64>);

pub async fn measure(
    pool: &PgPool,
    phlo_id: &str,
    fired: &Fired,
    start: f64,
    end: f64,
) -> anyhow::Result<Measured> {
    let phlo: uuid::Uuid = phlo_id.parse()?;
    let rows: Vec<RunRow> = sqlx::query_as(
        "SELECT r.id::text, r.status, extract(epoch FROM r.created_at)::float8,
                extract(epoch FROM r.ended_at)::float8,
                (SELECT extract(epoch FROM min(s.finished_at))::float8 FROM steps s WHERE s.run_id = r.id)
         FROM runs r WHERE r.phlo_id = $1 AND r.created_at >= to_timestamp($2)",
    )
    .bind(phlo)
    .bind(start)
    .fetch_all(pool)
    .await?;
    let window = (end - start).max(1e-3);
    let mut m = Measured {
        window_s: window,
        runs_fired: fired.sent.len(),
        ..Measured::default()
    };
    let (mut first, mut from_send, mut complete) = (Vec::new(), Vec::new(), Vec::new());
    let mut ended_in_window = 0usize;
    for (id, status, created, ended, first_step) in &rows {
        if status == "completed" {
            m.runs_completed += 1;
        } else {
            m.runs_not_completed += 1;
        }
        if let Some(f) = first_step {
            first.push((f - created) * 1000.0);
            if let Some(sent) = fired.sent.get(id) {
                from_send.push((f - sent) * 1000.0);
            }
        }
        if let Some(e) = ended {
            complete.push((e - created) * 1000.0);
            if *e <= end {
                ended_in_window += 1;
            }
        }
    }
    m.first_step_ms = percentiles(first);
    m.first_step_from_send_ms = percentiles(from_send);
    m.complete_ms = percentiles(complete);
    m.trigger_response_ms = percentiles(fired.response_ms.clone());
    m.runs_per_s = ended_in_window as f64 / window;
    let (total, in_window, with_error, exec_ms): (i64, i64, i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.finished_at <= to_timestamp($3)),
                count(*) FILTER (WHERE s.error IS NOT NULL),
                (avg(extract(epoch FROM s.finished_at - s.started_at)) * 1000)::float8
         FROM steps s JOIN runs r ON r.id = s.run_id
         WHERE r.phlo_id = $1 AND r.created_at >= to_timestamp($2)",
    )
    .bind(phlo)
    .bind(start)
    .bind(end)
    .fetch_one(pool)
    .await?;
    m.steps_total = total;
    m.steps_per_s = in_window as f64 / window;
    m.steps_with_error = with_error;
    m.steps_per_run = if rows.is_empty() {
        0.0
    } else {
        total as f64 / rows.len() as f64
    };
    m.step_exec_ms = exec_ms.unwrap_or_default();
    let (gap,): (Option<f64>,) = sqlx::query_as(
        "SELECT (avg(gap) * 1000)::float8 FROM (
           SELECT extract(epoch FROM s.started_at - lag(s.finished_at) OVER
                  (PARTITION BY s.run_id ORDER BY s.finished_at)) AS gap
           FROM steps s JOIN runs r ON r.id = s.run_id
           WHERE r.phlo_id = $1 AND r.created_at >= to_timestamp($2)) g",
    )
    .bind(phlo)
    .bind(start)
    .fetch_one(pool)
    .await?;
    m.step_gap_ms = gap.unwrap_or_default();
    let (delivered, in_window, not_delivered): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'delivered'),
                count(*) FILTER (WHERE status = 'delivered' AND delivered_at <= to_timestamp($3)),
                count(*) FILTER (WHERE status <> 'delivered')
         FROM callback_deliveries WHERE phlo_id = $1 AND created_at >= to_timestamp($2)",
    )
    .bind(phlo)
    .bind(start)
    .bind(end)
    .fetch_one(pool)
    .await?;
    m.callbacks_delivered = delivered;
    m.callbacks_not_delivered = not_delivered;
    m.callbacks_per_s = in_window as f64 / window;
    Ok(m)
}

/// The deliveries recorded since `since` (unix seconds, server time) that are delivered: how many, and
/// how fast the middle 80 % of them went (between the 10th and 90th percentile of `delivered_at`),
/// which leaves out the ramp-up of a fresh callback process and the tail where the backlog ran out.
pub async fn delivery_rate(pool: &PgPool, since: f64) -> anyhow::Result<(i64, f64)> {
    let (n, p10, p90): (i64, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT count(*),
                extract(epoch FROM percentile_disc(0.1) WITHIN GROUP (ORDER BY delivered_at))::float8,
                extract(epoch FROM percentile_disc(0.9) WITHIN GROUP (ORDER BY delivered_at))::float8
         FROM callback_deliveries WHERE created_at >= to_timestamp($1) AND delivered_at IS NOT NULL",
    )
    .bind(since)
    .fetch_one(pool)
    .await?;
    let rate = match (p10, p90) {
        (Some(a), Some(b)) if b > a => 0.8 * n as f64 / (b - a),
        _ => 0.0,
    };
    Ok((n, rate))
}

pub async fn pending_callbacks(pool: &PgPool) -> anyhow::Result<i64> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM callback_deliveries WHERE status = 'pending'")
            .fetch_one(pool)
            .await?;
    Ok(n)
}

/// How late Postgres's cumulative statistics may be: a backend going idle reports what it counted
/// within 10 s (`PGSTAT_IDLE_INTERVAL`).
pub const STATS_LAG: Duration = Duration::from_secs(11);

/// Transactions committed in this database so far, per its statistics: read it [`STATS_LAG`] after
/// the work.
pub async fn commits(pool: &PgPool) -> anyhow::Result<i64> {
    // A fresh snapshot, not the one cached for this transaction.
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(pool)
        .await?;
    let (n,): (i64,) = sqlx::query_as(
        "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?;
    Ok(n)
}
