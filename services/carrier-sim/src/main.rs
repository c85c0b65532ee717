//! `phlo-carrier-sim`: the carrier simulator. Configuration comes from the environment (see
//! `Config`); `SIM_TIME_SCALE` below 1 makes every simulated call run faster.

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = phlo_service::init_logging();
    let config = phlo_carrier_sim::Config::from_env().map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind(&config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    tracing::info!(addr = %config.addr, time_scale = config.time_scale, "carrier simulator listening");
    let shutdown = phlo_service::shutdown_signal();
    phlo_carrier_sim::run(config, listener, shutdown).await
}
