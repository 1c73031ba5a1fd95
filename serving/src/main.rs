//! `micro-serve`: parse configuration, set up logs, build the application,
//! run it until SIGTERM.

use clap::Parser;
use serving::{Application, Config};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    if config.log_format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let app = Application::build(config).await?;
    tracing::info!(addr = %app.local_addr()?, "micro-serve listening");
    app.run().await?;
    Ok(())
}
