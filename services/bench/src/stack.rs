//! The stack under test: a fresh database, a unique NATS prefix, and the `phlo` service processes
//! (gateway, workers, callback service, carrier simulator) as children; plus `/proc` readings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

pub const ADMIN_TOKEN: &str = "bench-admin-token";
const SECRET_KEY: &str = "bt4A3qQ3aslJxioF59rHkGwVqF1FOHhI0IsiZnlb6yw=";
pub const SIM_AUTH_ID: &str = "MASIMULATORACCOUNT01";
pub const SIM_AUTH_TOKEN: &str = "sim-token";

/// Where the `phlo` binary is: `--phlo-bin`, else next to this executable (target/<profile>/).
pub fn locate_phlo(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_owned());
    }
    let me = std::env::current_exe()?;
    let candidate = me.with_file_name("phlo");
    if candidate.exists() {
        return Ok(candidate);
    }
    bail!(
        "no phlo binary at {}: build it first (cargo build --release -p phlo) or pass --phlo-bin",
        candidate.display()
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Creates `phlo_bench_<secs>_<rand>` on the admin URL's server; returns its URL.
pub async fn create_database(admin_url: &str) -> anyhow::Result<(String, String)> {
    let mut conn = PgConnection::connect(admin_url)
        .await
        .context("connect to Postgres")?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let name = format!("phlo_bench_{secs}_{:08x}", rand::random::<u32>());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await?;
    Ok((name.clone(), database_url(admin_url, &name)))
}

/// `admin_url` naming database `name` instead, its query (`?sslmode=…`) kept.
fn database_url(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin_url, String::new()),
    };
    match base.rsplit_once('/') {
        Some((server, _)) if server.contains("://") && !server.ends_with('/') => {
            format!("{server}/{name}{query}")
        }
        _ => format!("{base}/{name}{query}"),
    }
}

pub async fn drop_database(admin_url: &str, name: &str) {
    if let Ok(mut conn) = PgConnection::connect(admin_url).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await;
    }
}

pub struct Proc {
    pub name: String,
    pub child: Child,
}

pub struct Stack {
    pub phlo: PathBuf,
    pub admin_url: String,
    pub db_name: String,
    pub db_url: String,
    pub nats_url: String,
    pub prefix: String,
    pub gateway_url: String,
    pub sim_url: Option<String>,
    pub http: reqwest::Client,
    pub procs: Vec<Proc>,
    pub keep: bool,
    pub env: Vec<(String, String)>,
}

impl Stack {
    pub async fn start(
        phlo: &Path,
        admin_url: &str,
        nats_url: &str,
        workers: usize,
        callback: bool,
        sim: bool,
        env: &[(String, String)],
    ) -> anyhow::Result<Stack> {
        let (db_name, db_url) = create_database(admin_url).await?;
        let mut stack = Stack {
            phlo: phlo.to_owned(),
            admin_url: admin_url.to_owned(),
            db_name,
            db_url,
            nats_url: nats_url.to_owned(),
            prefix: format!("bench{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            gateway_url: String::new(),
            sim_url: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(2048)
                .build()?,
            procs: Vec::new(),
            keep: false,
            env: env.to_vec(),
        };
        if sim {
            let port = free_port();
            let url = format!("http://127.0.0.1:{port}");
            let child = stack
                .command("carrier-sim")
                .env("SIM_ADDR", format!("127.0.0.1:{port}"))
                .env("SIM_TIME_SCALE", "0.02")
                .env("SIM_MAX_RECORDS", "200000")
                .env("SIM_AUTH_ID", SIM_AUTH_ID)
                .env("SIM_AUTH_TOKEN", SIM_AUTH_TOKEN)
                .spawn()
                .context("spawn carrier-sim")?;
            stack.procs.push(Proc {
                name: "carrier-sim".into(),
                child,
            });
            stack.wait_ready(&format!("{url}/sim/messages")).await?;
            stack.env.push(("PHLO_CARRIER_URL".into(), url.clone()));
            stack
                .env
                .push(("PHLO_CARRIER_AUTH_ID".into(), SIM_AUTH_ID.into()));
            stack
                .env
                .push(("PHLO_CARRIER_AUTH_TOKEN".into(), SIM_AUTH_TOKEN.into()));
            stack.sim_url = Some(url);
        }
        let port = free_port();
        stack.gateway_url = format!("http://127.0.0.1:{port}");
        let child = stack
            .command("gateway")
            .env("PHLO_GATEWAY_ADDR", format!("127.0.0.1:{port}"))
            .spawn()
            .context("spawn gateway")?;
        stack.procs.push(Proc {
            name: "gateway".into(),
            child,
        });
        stack
            .wait_ready(&format!("{}/readyz", stack.gateway_url))
            .await?;
        for i in 0..workers {
            let child = stack.command("worker").spawn().context("spawn worker")?;
            stack.procs.push(Proc {
                name: format!("worker-{}", i + 1),
                child,
            });
        }
        if callback {
            stack.start_callback()?;
        }
        Ok(stack)
    }

    /// Starts a callback service process; returns its pid.
    pub fn start_callback(&mut self) -> anyhow::Result<u32> {
        let child = self
            .command("callback")
            .env("PHLO_CALLBACK_ADDR", "127.0.0.1:0")
            .spawn()
            .context("spawn callback")?;
        let pid = child.id();
        self.procs.push(Proc {
            name: "callback".into(),
            child,
        });
        Ok(pid)
    }

    /// Kills the processes called `name`; they are not reported as having exited.
    pub fn kill(&mut self, name: &str) {
        for p in self.procs.iter_mut().filter(|p| p.name == name) {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        self.procs.retain(|p| p.name != name);
    }

    fn command(&self, sub: &str) -> Command {
        let mut cmd = Command::new(&self.phlo);
        cmd.arg(sub)
            .env("PHLO_PUBLIC_URL", &self.gateway_url)
            .env("DATABASE_URL", &self.db_url)
            .env("NATS_URL", &self.nats_url)
            .env("PHLO_NATS_PREFIX", &self.prefix)
            .env("PHLO_ADMIN_TOKEN", ADMIN_TOKEN)
            // Webhook secrets are sealed at rest with it; any key will do for a benchmark.
            .env("PHLO_SECRET_KEY", SECRET_KEY)
            .env("PHLO_WORKER_ADDR", "127.0.0.1:0")
            .env("PHLO_EGRESS_ALLOW", "127.0.0.1/32")
            // One account drives all the load: measure the runtime, not the fair-use limits
            // (`--env` can set them back).
            .env("PHLO_RATE_API_PER_SEC", "0")
            .env("PHLO_RATE_RUNS_PER_SEC", "0")
            .env("PHLO_MAX_ACTIVE_RUNS", "0")
            // d holds up to 10,000 triggers open at once.
            .env("PHLO_GATEWAY_MAX_IN_FLIGHT", "100000")
            .env(
                "RUST_LOG",
                std::env::var("PHLO_BENCH_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    async fn wait_ready(&self, url: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{url} never became ready")
    }

    /// Processes that exited on their own (a crash is an error of the run).
    pub fn exited(&mut self) -> Vec<String> {
        self.procs
            .iter_mut()
            .filter_map(|p| match p.child.try_wait() {
                Ok(Some(status)) => Some(format!("{} exited: {status}", p.name)),
                _ => None,
            })
            .collect()
    }

    pub fn pids(&self) -> Vec<(String, u32)> {
        self.procs
            .iter()
            .map(|p| (p.name.clone(), p.child.id()))
            .collect()
    }

    /// Creates an account; returns (auth_id, auth_token).
    pub async fn account(&self) -> anyhow::Result<(String, String)> {
        let r = self
            .http
            .post(format!("{}/v1/accounts", self.gateway_url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "name": "bench" }))
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await?;
        if status.as_u16() != 201 {
            bail!("account creation: {status} {body}");
        }
        Ok((
            body["auth_id"].as_str().unwrap_or_default().to_owned(),
            body["auth_token"].as_str().unwrap_or_default().to_owned(),
        ))
    }

    pub async fn create_phlo(
        &self,
        acct: &(String, String),
        def: &Value,
    ) -> anyhow::Result<String> {
        let r = self
            .http
            .post(format!("{}/v1/phlo", self.gateway_url))
            .basic_auth(&acct.0, Some(&acct.1))
            .json(def)
            .send()
            .await?;
        let status = r.status();
        let body: Value = r.json().await?;
        if status.as_u16() != 201 {
            bail!("create PHLO: {status} {body}");
        }
        Ok(body["phlo_id"].as_str().unwrap_or_default().to_owned())
    }

    /// Kills the children, deletes the stream and (unless kept) the database.
    pub async fn stop(mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        self.procs.clear();
        if let Ok(client) = async_nats::connect(&self.nats_url).await {
            let js = async_nats::jetstream::new(client);
            let _ = js
                .delete_stream(format!("{}_WORK", self.prefix.to_uppercase()))
                .await;
        }
        if !self.keep {
            drop_database(&self.admin_url, &self.db_name).await;
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

/// CPU seconds (user + system) and peak RSS of one process, from `/proc`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcSample {
    pub cpu_s: f64,
    pub peak_rss_mb: f64,
}

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ): 100 on Linux x86-64 and arm64.
const USER_HZ: f64 = 100.0;

pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at field 3.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm_kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Some(ProcSample {
        cpu_s: (utime + stime) / USER_HZ,
        peak_rss_mb: hwm_kb / 1024.0,
    })
}

/// Total CPU seconds of every process whose command is `comm` (e.g. all `postgres` backends, which
/// include other users of the same server), keyed by pid.
pub fn cpu_of_comm(comm: &str) -> BTreeMap<u32, f64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(c) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
            continue;
        };
        if c.trim() == comm
            && let Some(s) = sample(pid)
        {
            out.insert(pid, s.cpu_s);
        }
    }
    out
}

/// CPU used between two [`cpu_of_comm`] readings (processes that exited in between are not counted).
pub fn cpu_delta(before: &BTreeMap<u32, f64>, after: &BTreeMap<u32, f64>) -> f64 {
    after
        .iter()
        .map(|(pid, cpu)| cpu - before.get(pid).copied().unwrap_or(0.0))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn a_scenario_database_keeps_the_server_and_the_options() {
        assert_eq!(
            database_url(
                "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
                "b"
            ),
            "postgres://postgres@127.0.0.1:5432/b?sslmode=disable"
        );
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "b"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432", "b"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
    }
}
