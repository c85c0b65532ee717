//! `phlo-gateway`: the HTTP API. Configuration comes from the environment (see `Config`).

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = phlo_service::init_logging();
    let config = phlo_gateway::Config::from_env().map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(&config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    tracing::info!(addr = %config.addr, "gateway listening");
    let shutdown = phlo_service::shutdown_signal();
    phlo_gateway::run(config, listener, shutdown).await
}
