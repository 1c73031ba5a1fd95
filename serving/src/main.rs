//! `micro-serve`: parse configuration, build the application, run it.

use clap::Parser;
use serving::{Application, Config};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let app = Application::build(config).await?;
    tracing::info!(addr = %app.local_addr()?, "micro-serve listening");
    app.run().await?;
    Ok(())
}
