//! `phlo dev`: the whole system in one process on one port, with nothing else installed. The gateway,
//! a worker, the callback service and the carrier simulator (as the carrier, under `/carrier`) run
//! against an embedded SQLite store and the in-process queue — the same store and bus seams the
//! distributed services use with Postgres and NATS. A local account is created (and kept with the
//! data), the sample PHLOs of docs/examples are loaded, and everything needed to use it is printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Where the database, the secret key and the local account's credentials are kept.
    #[arg(long, env = "PHLO_DATA_DIR", default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// Keep nothing: an in-memory database, and a new account on every start.
    #[arg(long)]
    pub memory: bool,
    /// Where to serve the API, the carrier simulator (`/carrier`) and the health endpoints. Port 0
    /// picks a free port (the banner prints it).
    #[arg(long, env = "PHLO_DEV_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Do not load the sample PHLOs.
    #[arg(long)]
    pub no_samples: bool,
}

/// `~/.phlo/dev`, or `.phlo/dev` when there is no home directory.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".phlo")
        .join("dev")
}

/// The local account, kept beside the data so that a restart prints the same credentials.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DevAccount {
    pub url: String,
    pub sim_url: String,
    pub auth_id: String,
    pub auth_token: String,
}

const ACCOUNT_FILE: &str = "account.json";

/// Reads the account a `phlo dev` with this data directory created, if any (the CLI's fallback when
/// no credentials are given).
pub fn read_account(data_dir: &Path) -> Option<DevAccount> {
    let text = std::fs::read_to_string(data_dir.join(ACCOUNT_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// The sample PHLOs: every example of docs/phlo-format.md, compiled in so that an installed binary
/// has them too. The ones started by incoming calls and SMS get a number.
const SAMPLES: &[(&str, &str, Option<&str>)] = &[
    (
        "api_request",
        include_str!("../../../docs/examples/api_request.json"),
        None,
    ),
    (
        "branch",
        include_str!("../../../docs/examples/branch.json"),
        None,
    ),
    (
        "call_forward",
        include_str!("../../../docs/examples/call_forward.json"),
        Some("+15550100003"),
    ),
    (
        "conference_bridge",
        include_str!("../../../docs/examples/conference_bridge.json"),
        Some("+15550100004"),
    ),
    (
        "counter",
        include_str!("../../../docs/examples/counter.json"),
        Some("+15550100010"),
    ),
    (
        "get_input",
        include_str!("../../../docs/examples/get_input.json"),
        Some("+15550100006"),
    ),
    (
        "hangup",
        include_str!("../../../docs/examples/hangup.json"),
        Some("+15550100007"),
    ),
    (
        "http_request",
        include_str!("../../../docs/examples/http_request.json"),
        None,
    ),
    (
        "incoming_call",
        include_str!("../../../docs/examples/incoming_call.json"),
        Some("+15550100001"),
    ),
    (
        "incoming_message",
        include_str!("../../../docs/examples/incoming_message.json"),
        Some("+15550100002"),
    ),
    (
        "initiate_call",
        include_str!("../../../docs/examples/initiate_call.json"),
        None,
    ),
    (
        "ivr_menu",
        include_str!("../../../docs/examples/ivr_menu.json"),
        Some("+15550100005"),
    ),
    (
        "multi_party_call",
        include_str!("../../../docs/examples/multi_party_call.json"),
        Some("+15550100011"),
    ),
    (
        "play_audio",
        include_str!("../../../docs/examples/play_audio.json"),
        Some("+15550100008"),
    ),
    (
        "record_audio",
        include_str!("../../../docs/examples/record_audio.json"),
        Some("+15550100009"),
    ),
    (
        "send_sms",
        include_str!("../../../docs/examples/send_sms.json"),
        None,
    ),
];

/// The simulator's credentials: the carrier account the runner uses in dev mode.
const SIM_AUTH_ID: &str = "MASIMULATORACCOUNT01";

/// Serves until SIGTERM or Ctrl-C. With `json`, the banner is one JSON line (the account and URLs),
/// for scripts and tests.
pub async fn run(args: Args, json: bool) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&args.addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (choose another with --addr)",
                args.addr
            )
        })?;
    let bound = listener.local_addr()?;
    let host = if bound.ip().is_unspecified() {
        format!("127.0.0.1:{}", bound.port())
    } else {
        bound.to_string()
    };
    let url = format!("http://{host}");
    let sim_url = format!("{url}/carrier");

    let database = if args.memory {
        // Named, so the gateway, worker and callback service of this process share it.
        format!("sqlite://phlo-dev-{}?mode=memory", std::process::id())
    } else {
        create_private_dir(&args.data_dir)?;
        format!("sqlite://{}", url_path(&args.data_dir.join("phlo.db")))
    };
    let sim_token = phlo_gateway::new_auth_token();
    let defaults: Vec<(&str, String)> = vec![
        ("DATABASE_URL", database.clone()),
        ("NATS_URL", "memory:".to_owned()),
        ("PHLO_GATEWAY_ADDR", host.clone()),
        ("PHLO_PUBLIC_URL", url.clone()),
        // Health is served on the one port.
        ("PHLO_WORKER_ADDR", String::new()),
        ("PHLO_CALLBACK_ADDR", String::new()),
        ("PHLO_CARRIER_URL", sim_url.clone()),
        ("PHLO_CARRIER_AUTH_ID", SIM_AUTH_ID.to_owned()),
        ("PHLO_CARRIER_AUTH_TOKEN", sim_token.clone()),
        ("SIM_AUTH_ID", SIM_AUTH_ID.to_owned()),
        ("SIM_AUTH_TOKEN", sim_token),
        ("SIM_PUBLIC_URL", sim_url.clone()),
        ("PHLO_ADMIN_TOKEN", phlo_gateway::new_auth_token()),
        // The queue dies with the process: after a restart, what was in it is re-driven from the
        // store within seconds rather than the minutes a NATS deployment allows.
        ("PHLO_REDRIVE_AFTER_SECS", "5".to_owned()),
        ("PHLO_RELAY_AFTER_SECS", "1".to_owned()),
        ("PHLO_CALLBACK_REDRIVE_AFTER_SECS", "10".to_owned()),
        // Local receivers (a webhook on localhost, a service in a local network) are what a
        // developer points HTTP Request nodes and callbacks at.
        (
            "PHLO_EGRESS_ALLOW",
            "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16".to_owned(),
        ),
    ];
    for (name, value) in &defaults {
        phlo_service::set_default(name, value);
    }
    if args.memory {
        phlo_service::set_default("PHLO_SECRET_KEY", &phlo_store::sealing::new_key());
    } else {
        let key = args.data_dir.join("secret-key");
        phlo_service::set_default("PHLO_SECRET_KEY_FILE", &key.to_string_lossy());
    }
    phlo_service::allow_in_process_queue();
    // The environment's, when it sets one.
    let admin_token = phlo_service::var("PHLO_ADMIN_TOKEN").unwrap_or_default();

    let gateway_config = phlo_gateway::Config::from_env().map_err(anyhow::Error::msg)?;
    let worker_config = phlo_worker::Config::from_env().map_err(anyhow::Error::msg)?;
    let callback_config = phlo_callback::Config::from_env().map_err(anyhow::Error::msg)?;
    let sim_config = phlo_carrier_sim::Config::from_env().map_err(anyhow::Error::msg)?;
    if !phlo_store::db::is_sqlite(&gateway_config.common.database_url)
        || gateway_config.common.nats_url != "memory:"
    {
        tracing::warn!(
            "DATABASE_URL or NATS_URL is set in the environment: phlo dev uses them instead of its \
             embedded store and queue"
        );
    }

    let pool = phlo_store::connect(&gateway_config.common.database_url, 1, 0).await?;
    phlo_store::migrate(&pool).await?;
    let sim = phlo_carrier_sim::Sim::new(sim_config)?;
    let carrier = axum::Router::new().nest("/carrier", phlo_carrier_sim::app(sim));

    let shutdown = phlo_service::shutdown_signal();
    let gateway = phlo_gateway::run_with(gateway_config, listener, carrier, shutdown.clone());
    let worker = phlo_worker::run(worker_config, shutdown.clone());
    let callback = phlo_callback::run(callback_config, shutdown.clone());
    let setup = async {
        let outcome = setup(&args, json, &url, &sim_url, &admin_token, &database).await;
        if let Err(e) = &outcome {
            tracing::error!(error = %format!("{e:#}"), "phlo dev could not set up its account and samples");
            shutdown.cancel();
        }
        outcome
    };
    let (services, set_up) = tokio::join!(
        // Boxed: the three services' futures are too large for the main thread's stack together.
        phlo_service::run_together(
            &shutdown,
            Box::pin(gateway),
            Box::pin(worker),
            Box::pin(callback)
        ),
        setup
    );
    services.and(set_up)
}

/// Once the gateway answers: the account (the kept one, or a new one) and the samples; then the
/// banner.
async fn setup(
    args: &Args,
    json: bool,
    url: &str,
    sim_url: &str,
    admin_token: &str,
    database: &str,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut ready = false;
    for _ in 0..300 {
        match http.get(format!("{url}/readyz")).send().await {
            Ok(r) if r.status().is_success() => {
                ready = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    anyhow::ensure!(ready, "the gateway did not become ready within 30 s");

    let kept = if args.memory {
        None
    } else {
        read_account(&args.data_dir)
    };
    let account = match kept {
        Some(a) if account_works(&http, url, &a).await? => DevAccount {
            url: url.to_owned(),
            sim_url: sim_url.to_owned(),
            ..a
        },
        _ => {
            let created: Value = http
                .post(format!("{url}/v1/accounts"))
                .bearer_auth(admin_token)
                .json(&json!({ "name": "local" }))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            DevAccount {
                url: url.to_owned(),
                sim_url: sim_url.to_owned(),
                auth_id: created["auth_id"].as_str().unwrap_or_default().to_owned(),
                auth_token: created["auth_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            }
        }
    };
    if !args.memory {
        write_private(
            &args.data_dir.join(ACCOUNT_FILE),
            &serde_json::to_string_pretty(&account)?,
        )?;
    }
    let samples = if args.no_samples {
        Vec::new()
    } else {
        load_samples(&http, &account).await?
    };
    if json {
        let samples: Vec<Value> = samples
            .iter()
            .map(|s| json!({ "name": s.name, "phlo_id": s.phlo_id, "number": s.number }))
            .collect();
        println!(
            "{}",
            json!({
                "url": account.url,
                "sim_url": account.sim_url,
                "auth_id": account.auth_id,
                "auth_token": account.auth_token,
                "admin_token": admin_token,
                "database": database,
                "samples": samples,
            })
        );
    } else {
        print_banner(args, &account, database, &samples);
    }
    Ok(())
}

async fn account_works(
    http: &reqwest::Client,
    url: &str,
    account: &DevAccount,
) -> anyhow::Result<bool> {
    let answer = http
        .get(format!("{url}/v1/phlo"))
        .basic_auth(&account.auth_id, Some(&account.auth_token))
        .send()
        .await?;
    // Only a refusal of the credentials means a new account: any other answer (a rate limit, a
    // failing database) must not replace the kept credentials, which would then be lost.
    match answer.status() {
        s if s.is_success() => Ok(true),
        reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => Ok(false),
        s => anyhow::bail!("the kept account (in {ACCOUNT_FILE}) could not be checked: HTTP {s}"),
    }
}

struct Sample {
    name: String,
    phlo_id: String,
    number: Option<&'static str>,
}

/// Creates the samples the account lacks (by name) and routes their numbers; a PHLO of the same name
/// is left as it is, so edits made since the last start are kept, and so is a number the account
/// routed elsewhere (the sample is then listed without it).
async fn load_samples(http: &reqwest::Client, account: &DevAccount) -> anyhow::Result<Vec<Sample>> {
    let auth =
        |r: reqwest::RequestBuilder| r.basic_auth(&account.auth_id, Some(&account.auth_token));
    // Every page: an account with more than a page of PHLOs still has its samples.
    let mut existing = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "100".to_owned())];
        query.extend(cursor.take().map(|c| ("cursor", c)));
        let page: Value = auth(http.get(format!("{}/v1/phlo", account.url)))
            .query(&query)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        existing.extend(page["objects"].as_array().cloned().unwrap_or_default());
        match page["meta"]["next"].as_str() {
            Some(next) if page["objects"].as_array().is_some_and(|o| !o.is_empty()) => {
                cursor = Some(next.to_owned());
            }
            _ => break,
        }
    }
    // Numbers the account has routed already stay as they are: the developer may have pointed a
    // sample's number at a PHLO of their own.
    let numbers: Value = auth(http.get(format!("{}/v1/numbers", account.url)))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let routed: Vec<(String, String)> = numbers["objects"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| {
            Some((
                n["number"].as_str()?.to_owned(),
                n["phlo_id"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let mut loaded = Vec::new();
    for (file, text, number) in SAMPLES {
        let definition: Value =
            serde_json::from_str(text).with_context(|| format!("docs/examples/{file}.json"))?;
        let name = definition["name"].as_str().unwrap_or(file).to_owned();
        let phlo_id = match existing.iter().find(|p| p["name"] == name.as_str()) {
            Some(p) => p["phlo_id"].as_str().unwrap_or_default().to_owned(),
            None => {
                let answer = auth(http.post(format!("{}/v1/phlo", account.url)))
                    .json(&definition)
                    .send()
                    .await?;
                let status = answer.status();
                let body: Value = answer.json().await.unwrap_or(Value::Null);
                anyhow::ensure!(
                    status.is_success(),
                    "the sample docs/examples/{file}.json was refused ({status}): {body}"
                );
                body["phlo_id"].as_str().unwrap_or_default().to_owned()
            }
        };
        let number = match number {
            Some(number) if routed.iter().any(|(n, _)| n == number) => routed
                .iter()
                .any(|(n, p)| n == number && *p == phlo_id)
                .then_some(*number),
            Some(number) => {
                let answer = auth(http.put(format!("{}/v1/numbers/{number}", account.url)))
                    .json(&json!({ "phlo_id": phlo_id }))
                    .send()
                    .await?;
                if answer.status() == reqwest::StatusCode::CONFLICT {
                    // An earlier local account of this database has it: the one of an account file
                    // that was lost or could not be read. Starting matters more than the number.
                    tracing::warn!(
                        number,
                        sample = %name,
                        "the sample's number belongs to another account of this database (an earlier \
                         local account): the sample has no number"
                    );
                    None
                } else {
                    answer
                        .error_for_status()
                        .with_context(|| format!("routing {number} to {name}"))?;
                    Some(*number)
                }
            }
            None => None,
        };
        loaded.push(Sample {
            name,
            phlo_id,
            number,
        });
    }
    Ok(loaded)
}

fn print_banner(args: &Args, account: &DevAccount, database: &str, samples: &[Sample]) {
    let data = if args.memory {
        "in memory (gone when this process ends)".to_owned()
    } else {
        format!("{} ({database})", args.data_dir.display())
    };
    let mut out = format!(
        "\nphlo dev is running on {url}\n\
         \n  API (Plivo PHLO API and /v1)   {url}\n  carrier simulator              {sim}\n  \
         data                           {data}\n\
         \nLocal account (also in the CLI's environment below):\n  auth id     {id}\n  auth token  {token}\n\
         \nIn another terminal:\n  export PHLO_URL={url} PHLO_AUTH_ID={id} PHLO_AUTH_TOKEN={token} PHLO_SIM_URL={sim}\n",
        url = account.url,
        sim = account.sim_url,
        id = account.auth_id,
        token = account.auth_token,
    );
    if !samples.is_empty() {
        out.push_str("\nSample PHLOs (docs/examples):\n");
        for s in samples {
            let how = match s.number {
                Some(n) => format!("incoming calls and SMS to {n}"),
                None => "API runs".to_owned(),
            };
            out.push_str(&format!("  {:<40} {}  {how}\n", s.name, s.phlo_id));
        }
        let call = samples
            .iter()
            .find(|s| s.number == Some("+15550100005"))
            .map(|s| s.number.unwrap_or_default());
        if let Some(n) = call {
            out.push_str(&format!(
                "\nTry it:\n  phlo call +14155550100 {n}    # the IVR menu: answer its prompts\n  \
                 phlo runs                                # every run, newest first\n"
            ));
        }
    }
    // The banner is the product of this command: stdout, whatever the log level.
    println!("{out}");
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    use std::io::Write;
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    // The mode above applies only to a file it creates: one that was there keeps its own.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", path.display()))?;
    }
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// A path as the path part of a `sqlite://` URL (which is percent-decoded).
fn url_path(path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    absolute
        .to_string_lossy()
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23")
}
