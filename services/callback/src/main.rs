//! `phlo-callback`: delivers event callbacks to customer webhooks; any number of replicas.
//! Configuration comes from the environment (see `Config`).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = phlo_service::init_logging();
    let config = phlo_callback::Config::from_env().map_err(anyhow::Error::msg)?;
    let shutdown = phlo_service::shutdown_signal();
    phlo_callback::run(config, shutdown).await
}
