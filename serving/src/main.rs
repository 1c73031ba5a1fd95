//! `micro-serve`: parse configuration, set up logs, build the application,
//! run it until SIGTERM.

use clap::Parser;
use serving::config::Command;
use serving::{Application, Config};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    if let Some(Command::Healthcheck { timeout }) = config.command {
        return healthcheck(&config.local_healthz_url(), timeout).await;
    }
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

/// `micro-serve healthcheck`: one GET, a line on stdout, the exit status.
async fn healthcheck(url: &str, timeout_secs: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(timeout_secs))
        .build()?;
    let status = client.get(url).send().await?.status();
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    println!("{url}: {status}");
    Ok(())
}
