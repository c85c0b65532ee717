//! Reference loops on the same Postgres and NATS, written directly with async-nats and sqlx: what the
//! hardware gives for the same shape of work without the runner around it.
//!
//! 1. Durable step: consume a JetStream message → one transaction (update a state row, insert a step
//!    row, bump a counter) → publish the next message and await its PubAck → ack.
//! 2. Webhook: consume → POST to a local receiver → insert a delivery row → ack.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::sync::Semaphore;

#[derive(Default)]
struct Phase {
    total_ns: AtomicU64,
    count: AtomicU64,
}

impl Phase {
    fn add(&self, since: Instant) {
        self.total_ns
            .fetch_add(since.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }
    fn mean_ms(&self) -> f64 {
        let n = self.count.load(Ordering::Relaxed).max(1);
        self.total_ns.load(Ordering::Relaxed) as f64 / n as f64 / 1e6
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RefResult {
    pub name: String,
    pub concurrency: usize,
    pub window_s: f64,
    pub ops: u64,
    pub ops_per_s: f64,
    /// Mean milliseconds per phase of one iteration, in order.
    pub phases_ms: Vec<(String, f64)>,
    pub errors: u64,
    pub bench_cpu_s: f64,
    pub postgres_cpu_s: f64,
    pub nats_cpu_s: f64,
}

struct Setup {
    js: jetstream::Context,
    stream_name: String,
    subject: String,
    consumer: consumer::Consumer<consumer::pull::Config>,
}

async fn setup(nats_url: &str, name: &str) -> anyhow::Result<Setup> {
    let client = async_nats::connect(nats_url).await?;
    let js = jetstream::new(client);
    let prefix = format!(
        "benchref{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let stream_name = format!("{}_{name}", prefix.to_uppercase());
    let subject = format!("{prefix}.{name}");
    let s = js
        .get_or_create_stream(stream::Config {
            name: stream_name.clone(),
            subjects: vec![subject.clone()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            num_replicas: 1,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await?;
    let consumer = s
        .get_or_create_consumer(
            "ref",
            consumer::pull::Config {
                durable_name: Some("ref".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                max_ack_pending: 1024,
                ..Default::default()
            },
        )
        .await?;
    Ok(Setup {
        js,
        stream_name,
        subject,
        consumer,
    })
}

pub struct Env {
    pub db_url: String,
    pub nats_url: String,
    pub concurrency: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// Runs `handler` on every message with `concurrency` in flight, for warm-up + duration; returns
/// the number handled in the measured window, its length and the errors.
async fn consume_loop<H, Fut>(
    setup: &Setup,
    env: &Env,
    handler: H,
) -> anyhow::Result<(u64, f64, u64, CpuWindow)>
where
    H: Fn(jetstream::Message) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let slots = Arc::new(Semaphore::new(env.concurrency));
    let mut messages = setup
        .consumer
        .stream()
        .max_messages_per_batch(env.concurrency)
        .messages()
        .await?;
    let (d, e, s, sl) = (done.clone(), errors.clone(), stop.clone(), slots.clone());
    let pump = tokio::spawn(async move {
        while !s.load(Ordering::Relaxed) {
            let Ok(permit) = sl.clone().acquire_owned().await else {
                break;
            };
            let Some(next) = messages.next().await else {
                break;
            };
            let Ok(msg) = next else {
                e.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let (h, d, e) = (handler.clone(), d.clone(), e.clone());
            tokio::spawn(async move {
                match h(msg).await {
                    Ok(()) => d.fetch_add(1, Ordering::Relaxed),
                    Err(_) => e.fetch_add(1, Ordering::Relaxed),
                };
                drop(permit);
            });
        }
    });
    tokio::time::sleep(env.warmup).await;
    let cpu = CpuWindow::begin();
    let (n0, t0) = (done.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(env.duration).await;
    let n1 = done.load(Ordering::Relaxed);
    let window = t0.elapsed().as_secs_f64();
    let cpu = cpu.end();
    stop.store(true, Ordering::Relaxed);
    pump.abort();
    // In-flight handlers finish on their own; give them a moment before the stream goes.
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        slots.acquire_many(env.concurrency as u32),
    )
    .await;
    let _ = setup.js.delete_stream(&setup.stream_name).await;
    Ok((n1 - n0, window, errors.load(Ordering::Relaxed), cpu))
}

pub struct CpuWindow {
    me: f64,
    pg: std::collections::BTreeMap<u32, f64>,
    nats: std::collections::BTreeMap<u32, f64>,
    pub me_s: f64,
    pub pg_s: f64,
    pub nats_s: f64,
}

impl CpuWindow {
    pub fn begin() -> CpuWindow {
        CpuWindow {
            me: crate::stack::sample(std::process::id())
                .map(|s| s.cpu_s)
                .unwrap_or_default(),
            pg: crate::stack::cpu_of_comm("postgres"),
            nats: crate::stack::cpu_of_comm("nats-server"),
            me_s: 0.0,
            pg_s: 0.0,
            nats_s: 0.0,
        }
    }
    pub fn end(mut self) -> CpuWindow {
        self.me_s = crate::stack::sample(std::process::id())
            .map(|s| s.cpu_s)
            .unwrap_or_default()
            - self.me;
        self.pg_s = crate::stack::cpu_delta(&self.pg, &crate::stack::cpu_of_comm("postgres"));
        self.nats_s =
            crate::stack::cpu_delta(&self.nats, &crate::stack::cpu_of_comm("nats-server"));
        self
    }
}

async fn pool(url: &str, n: usize) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(n as u32)
        .connect(url)
        .await?)
}

/// Loop 1: the durable step. `chains` independent chains circulate, each message naming its chain
/// and sequence number.
pub async fn durable_step(env: &Env) -> anyhow::Result<RefResult> {
    let pool = pool(&env.db_url, env.concurrency.min(20)).await?;
    for ddl in [
        "CREATE TABLE ref_state (id bigint PRIMARY KEY, version bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())",
        "CREATE TABLE ref_steps (chain bigint NOT NULL, seq bigint NOT NULL, payload jsonb NOT NULL, finished_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (chain, seq))",
        "CREATE TABLE ref_counters (id bigint PRIMARY KEY, value bigint NOT NULL)",
    ] {
        sqlx::query(ddl).execute(&pool).await?;
    }
    let chains = (env.concurrency * 2) as i64;
    sqlx::query("INSERT INTO ref_state (id, version) SELECT g, 0 FROM generate_series(1, $1) g")
        .bind(chains)
        .execute(&pool)
        .await?;
    sqlx::query("INSERT INTO ref_counters (id, value) SELECT g, 0 FROM generate_series(1, $1) g")
        .bind(chains)
        .execute(&pool)
        .await?;
    let setup = setup(&env.nats_url, "STEP").await?;
    for chain in 1..=chains {
        setup
            .js
            .send_publish(
                setup.subject.clone(),
                jetstream::message::PublishMessage::build()
                    .payload(Bytes::from(format!("{chain}:0")))
                    .message_id(format!("{chain}:0")),
            )
            .await?
            .await?;
    }
    let phases: Arc<[Phase; 3]> = Arc::default();
    let (js, subject, p, pl) = (
        setup.js.clone(),
        setup.subject.clone(),
        phases.clone(),
        pool.clone(),
    );
    let handler = move |msg: jetstream::Message| {
        let (js, subject, p, pool) = (js.clone(), subject.clone(), p.clone(), pl.clone());
        async move {
            let text = std::str::from_utf8(&msg.payload)?.to_owned();
            let (chain, seq) = text
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("bad message"))?;
            let (chain, seq): (i64, i64) = (chain.parse()?, seq.parse()?);
            let t = Instant::now();
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE ref_state SET version = version + 1, updated_at = now() WHERE id = $1",
            )
            .bind(chain)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO ref_steps (chain, seq, payload) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(chain)
                .bind(seq)
                .bind(serde_json::json!({ "node": "Branch", "state": "next", "seq": seq }))
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE ref_counters SET value = value + 1 WHERE id = $1")
                .bind(chain)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            p[0].add(t);
            let t = Instant::now();
            let next = format!("{chain}:{}", seq + 1);
            js.send_publish(
                subject,
                jetstream::message::PublishMessage::build()
                    .payload(Bytes::from(next.clone()))
                    .message_id(next),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            p[1].add(t);
            let t = Instant::now();
            msg.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            p[2].add(t);
            Ok(())
        }
    };
    let (ops, window, errors, cpu) = consume_loop(&setup, env, handler).await?;
    pool.close().await;
    Ok(RefResult {
        name: "ref1 durable step".into(),
        concurrency: env.concurrency,
        window_s: window,
        ops,
        ops_per_s: ops as f64 / window,
        phases_ms: vec![
            ("transaction".into(), phases[0].mean_ms()),
            ("publish+PubAck".into(), phases[1].mean_ms()),
            ("ack".into(), phases[2].mean_ms()),
        ],
        errors,
        bench_cpu_s: cpu.me_s,
        postgres_cpu_s: cpu.pg_s,
        nats_cpu_s: cpu.nats_s,
    })
}

/// Loop 2: the webhook. A feeder keeps the stream topped up (its cost is in the same process).
pub async fn webhook(env: &Env) -> anyhow::Result<RefResult> {
    let pool = pool(&env.db_url, env.concurrency.min(20)).await?;
    sqlx::query(
        "CREATE TABLE ref_deliveries (id uuid PRIMARY KEY, url text NOT NULL, status int NOT NULL, payload json NOT NULL, delivered_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&pool)
    .await?;
    let hits = Arc::new(AtomicU64::new(0));
    let addr = crate::load::local_server(hits.clone()).await?;
    let url = format!("http://{addr}/hooks/ref");
    let setup = setup(&env.nats_url, "HOOK").await?;
    let feeding = Arc::new(AtomicBool::new(true));
    let published = Arc::new(AtomicU64::new(0));
    let handled = Arc::new(AtomicU64::new(0));
    let feeder = {
        let (js, subject, feeding, published, handled) = (
            setup.js.clone(),
            setup.subject.clone(),
            feeding.clone(),
            published.clone(),
            handled.clone(),
        );
        tokio::spawn(async move {
            let body = Bytes::from_static(br#"{"type":"phlo.node","data":{"node":"Branch_1","state":"next","order_id":"17"}}"#);
            while feeding.load(Ordering::Relaxed) {
                let backlog = published.load(Ordering::Relaxed) - handled.load(Ordering::Relaxed);
                if backlog > 4000 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                let mut acks = Vec::with_capacity(500);
                for _ in 0..500 {
                    if let Ok(ack) = js.publish(subject.clone(), body.clone()).await {
                        acks.push(ack);
                    }
                }
                for ack in acks {
                    if ack.await.is_ok() {
                        published.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })
    };
    let phases: Arc<[Phase; 3]> = Arc::default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let (p, pl, h) = (phases.clone(), pool.clone(), handled.clone());
    let handler = move |msg: jetstream::Message| {
        let (p, pool, http, url, h) = (p.clone(), pl.clone(), http.clone(), url.clone(), h.clone());
        async move {
            let t = Instant::now();
            let r = http
                .post(&url)
                .header("content-type", "application/json")
                .body(msg.payload.clone())
                .send()
                .await?;
            let status = r.status().as_u16() as i32;
            let _ = r.bytes().await?;
            p[0].add(t);
            let t = Instant::now();
            sqlx::query(
                "INSERT INTO ref_deliveries (id, url, status, payload) VALUES ($1, $2, $3, $4::json)",
            )
            .bind(uuid::Uuid::now_v7())
            .bind(&url)
            .bind(status)
            .bind(std::str::from_utf8(&msg.payload)?)
            .execute(&pool)
            .await?;
            p[1].add(t);
            let t = Instant::now();
            msg.ack().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            p[2].add(t);
            h.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    };
    let result = consume_loop(&setup, env, handler).await;
    feeding.store(false, Ordering::Relaxed);
    feeder.abort();
    let (ops, window, errors, cpu) = result?;
    pool.close().await;
    Ok(RefResult {
        name: "ref2 webhook".into(),
        concurrency: env.concurrency,
        window_s: window,
        ops,
        ops_per_s: ops as f64 / window,
        phases_ms: vec![
            ("POST".into(), phases[0].mean_ms()),
            ("insert".into(), phases[1].mean_ms()),
            ("ack".into(), phases[2].mean_ms()),
        ],
        errors,
        bench_cpu_s: cpu.me_s,
        postgres_cpu_s: cpu.pg_s,
        nats_cpu_s: cpu.nats_s,
    })
}
