//! `phlo-worker`: consumes step and HTTP messages; any number of replicas. Configuration comes from the
//! environment (see `Config`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = phlo_service::init_logging();
    let config = phlo_worker::Config::from_env().map_err(anyhow::Error::msg)?;
    let shutdown = phlo_service::shutdown_signal();
    phlo_worker::run(config, shutdown).await
}
