//! `phlo`: the command line for people and scripts, and every service in one binary.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod client;
mod commands;
mod dev;
mod validate;

#[derive(Parser)]
#[command(
    name = "phlo",
    version,
    about = "Validate, apply and run PHLOs, follow runs, tail callbacks, place simulated calls; run the services"
)]
struct Cli {
    /// How to print results.
    #[arg(long, value_enum, default_value_t = Output::Text, global = true)]
    output: Output,
    #[command(flatten)]
    settings: client::Settings,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check PHLO definition files and print every problem with its node and field.
    /// Exits 1 when any file has an error (warnings alone pass).
    Validate {
        /// PHLO definition files (JSON).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
    /// Try it: the gateway, a worker, the callback service and the carrier simulator in one process
    /// on one port, with an embedded SQLite store and an in-process queue (no Postgres, no NATS).
    /// Creates a local account, loads the sample PHLOs and prints how to use them.
    Dev(dev::Args),
    /// Run the gateway, a worker and the callback service in one process, against the Postgres and
    /// NATS of DATABASE_URL and NATS_URL (defaults: 127.0.0.1). Creates the database if it does not exist.
    /// NATS_URL=memory: uses an in-process queue instead of NATS (see docs/operations.md).
    Serve,
    /// Run the gateway (the HTTP API); configured by environment variables, see docs/operations.md.
    Gateway,
    /// Run a worker; configured by environment variables, see docs/operations.md.
    Worker,
    /// Run the callback service (delivers event callbacks); configured by environment variables, see
    /// docs/operations.md.
    Callback,
    /// Apply database migrations to DATABASE_URL and exit.
    Migrate,
    /// Run the carrier simulator (a fake Plivo: Call, Message and live-call APIs, webhooks, scriptable
    /// callers and callees); configured by SIM_* variables, see services/carrier-sim/README.md.
    CarrierSim,
    #[command(flatten)]
    Client(commands::ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { files } => validate::run(&files, matches!(cli.output, Output::Json)),
        Command::Dev(args) => serve(dev::run(args, matches!(cli.output, Output::Json))),
        Command::Serve => serve(all_in_one()),
        Command::Gateway => serve(gateway()),
        Command::Worker => serve(worker()),
        Command::Callback => serve(callback()),
        Command::Migrate => serve(migrate()),
        Command::CarrierSim => serve(carrier_sim()),
        Command::Client(command) => commands::dispatch(
            command,
            &cli.settings.clone().with_dev_fallback(),
            matches!(cli.output, Output::Json),
        ),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn serve(task: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<bool> {
    let _telemetry = phlo_service::init_logging();
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(task);
    // The service drained within its grace; a task still blocked in the pool (a DNS lookup) must not
    // hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result?;
    Ok(true)
}

async fn all_in_one() -> anyhow::Result<()> {
    let gateway_config = phlo_gateway::Config::from_env().map_err(anyhow::Error::msg)?;
    let worker_config = phlo_worker::Config::from_env().map_err(anyhow::Error::msg)?;
    let callback_config = phlo_callback::Config::from_env().map_err(anyhow::Error::msg)?;
    // Every service that uses the bus runs in this process, so they can share an in-process queue.
    phlo_service::allow_in_process_queue();
    phlo_store::ensure_database(&gateway_config.common.database_url).await?;
    let listener = tokio::net::TcpListener::bind(&gateway_config.addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "gateway listening");
    if gateway_config.admin_token.is_none() {
        tracing::warn!(
            "PHLO_ADMIN_TOKEN is not set: POST /v1/accounts is disabled, so no account can be created"
        );
    }
    let shutdown = phlo_service::shutdown_signal();
    // The gateway migrates first; the worker and the callback service start once the schema is there.
    let gateway = phlo_gateway::run(gateway_config, listener, shutdown.clone());
    let worker = async {
        let pool = phlo_store::connect(&worker_config.common.database_url, 2, 0).await?;
        phlo_store::migrate(&pool).await?;
        pool.close().await;
        phlo_worker::run(worker_config, shutdown.clone()).await
    };
    let callback = async {
        let pool = phlo_store::connect(&callback_config.common.database_url, 2, 0).await?;
        phlo_store::migrate(&pool).await?;
        pool.close().await;
        phlo_callback::run(callback_config, shutdown.clone()).await
    };
    // Boxed: the three services' futures are too large for the main thread's stack together.
    phlo_service::run_together(
        &shutdown,
        Box::pin(gateway),
        Box::pin(worker),
        Box::pin(callback),
    )
    .await
}

async fn gateway() -> anyhow::Result<()> {
    let config = phlo_gateway::Config::from_env().map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(&config.addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "gateway listening");
    phlo_gateway::run(config, listener, phlo_service::shutdown_signal()).await
}

async fn worker() -> anyhow::Result<()> {
    let config = phlo_worker::Config::from_env().map_err(anyhow::Error::msg)?;
    phlo_worker::run(config, phlo_service::shutdown_signal()).await
}

async fn callback() -> anyhow::Result<()> {
    let config = phlo_callback::Config::from_env().map_err(anyhow::Error::msg)?;
    phlo_callback::run(config, phlo_service::shutdown_signal()).await
}

async fn carrier_sim() -> anyhow::Result<()> {
    let config = phlo_carrier_sim::Config::from_env().map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(&config.addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "carrier simulator listening");
    phlo_carrier_sim::run(config, listener, phlo_service::shutdown_signal()).await
}

async fn migrate() -> anyhow::Result<()> {
    let config = phlo_service::CommonConfig::from_env().map_err(anyhow::Error::msg)?;
    phlo_store::ensure_database(&config.database_url).await?;
    let pool = phlo_store::connect(&config.database_url, 2, 0).await?;
    phlo_store::migrate(&pool).await?;
    println!("migrations applied to {}", redact(&config.database_url));
    Ok(())
}

/// The URL without its password, for printing.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}
