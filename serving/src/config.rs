//! Configuration from `MICRO_*` environment variables (SPEC §9), each with a
//! documented default, also settable as flags (`micro-serve --help`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::wire::BusFormat;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "micro-serve",
    version,
    about = "Micro's serving process: HTTP API and live profiles"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "MICRO_BIND", default_value = "0.0.0.0:8080")]
    pub bind: SocketAddr,
    /// Database URL: sqlite://… (embedded) or postgres://…. With --demo and
    /// no URL given, the demo keeps its own file (`data/micro-demo.db`).
    #[arg(long, env = "MICRO_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// NATS server; unset means the in-process bus.
    #[arg(long, env = "MICRO_NATS_URL")]
    pub nats_url: Option<String>,
    /// Encoding of the events published on NATS (`micro.events.<type>`):
    /// `json` (SPEC §2.2) or `protobuf` (`micro.v1.Event`). Each message
    /// says which in its `Content-Type` header. Interactions are read in
    /// either format whatever this says.
    #[arg(long, env = "MICRO_BUS_FORMAT", value_enum, default_value_t = BusFormat::Json)]
    pub bus_format: BusFormat,
    /// How long Micro's NATS streams keep messages (`7d`, `12h`, `30m`):
    /// events, interactions and dead letters older than this are dropped
    /// by JetStream, so what an erased user sent does not stay on the bus
    /// for ever. Applied to existing streams at start.
    #[arg(long, env = "MICRO_BUS_RETENTION", default_value = "7d", value_parser = retention)]
    pub bus_retention: std::time::Duration,
    /// SMTP server for welcome e-mails (`smtp://host[:port]`); when set,
    /// every `user.registered` heard on the in-process bus gets one (with
    /// NATS, run `micro-welcome` instead).
    #[arg(long, env = "MICRO_WELCOME_SMTP_URL")]
    pub welcome_smtp_url: Option<String>,
    /// Sender of welcome e-mails.
    #[arg(
        long,
        env = "MICRO_WELCOME_FROM",
        default_value = "Micro <welcome@localhost>"
    )]
    pub welcome_from: String,
    /// Model registry directory.
    #[arg(long, env = "MICRO_MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// Origins allowed to call the API from a browser (comma-separated); unset: same origin only.
    #[arg(long, env = "MICRO_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "MICRO_LOG", default_value = "info")]
    pub log: String,
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, env = "MICRO_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// Largest request body accepted (bytes); larger ones get 413.
    #[arg(long, env = "MICRO_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Interactions that may wait for the writer; beyond it requests get 503
    /// with Retry-After.
    #[arg(long, env = "MICRO_INGEST_QUEUE", default_value_t = 200_000)]
    pub ingest_queue: usize,
    /// Milliseconds between writes of changed profiles to the store (they
    /// are also written before profile lists and at shutdown). Longer means
    /// fewer writes of busy users' profiles and more to re-fold after a crash.
    #[arg(long, env = "MICRO_PROFILE_FLUSH_MS", default_value_t = 5000)]
    pub profile_flush_ms: u64,
    /// Demo mode: load a generated world (1,000 users, 60 days, the world the
    /// committed demo model was trained on) into an empty database, then keep
    /// interactions trickling in so the dashboard moves.
    #[arg(long, env = "MICRO_DEMO")]
    pub demo: bool,
    /// Live interactions per second in demo mode.
    #[arg(long, env = "MICRO_DEMO_RATE", default_value_t = 5.0)]
    pub demo_rate: f64,
    /// Without a command, serve.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `micro-serve` does instead of serving.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Ask the server on this machine (at MICRO_BIND's port) whether it is
    /// alive: `GET /healthz`, exit status 0 on 200. For container health
    /// checks in images that have no shell or curl.
    Healthcheck {
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
}

/// A retention of at least a minute, written as people write durations.
fn retention(text: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))?;
    if d < std::time::Duration::from_secs(60) {
        return Err(format!("{text:?}: at least a minute"));
    }
    Ok(d)
}

/// Where data lives when nothing is configured.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/micro.db";
/// Where `--demo` keeps its world when no database is configured, apart
/// from real data.
pub const DEMO_DATABASE_URL: &str = "sqlite://data/micro-demo.db";

impl Config {
    /// The database to open: the configured one, or the demo's own file.
    pub fn effective_database_url(&self) -> &str {
        if self.demo && self.database_url == DEFAULT_DATABASE_URL {
            DEMO_DATABASE_URL
        } else {
            &self.database_url
        }
    }

    /// `http://<address>/healthz` of this configuration's server as seen from
    /// the same machine: a wildcard bind address is reached on loopback.
    pub fn local_healthz_url(&self) -> String {
        let mut addr = self.bind;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        format!("http://{addr}/healthz")
    }

    /// The defaults, as if started with no flags and no environment.
    pub fn defaults() -> Config {
        Config::parse_from(["micro-serve"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_keeps_its_world_apart_unless_told_otherwise() {
        let plain = Config::defaults();
        assert_eq!(plain.effective_database_url(), DEFAULT_DATABASE_URL);
        let demo = Config::parse_from(["micro-serve", "--demo"]);
        assert_eq!(demo.effective_database_url(), DEMO_DATABASE_URL);
        let chosen =
            Config::parse_from(["micro-serve", "--demo", "--database-url", "sqlite://x.db"]);
        assert_eq!(chosen.effective_database_url(), "sqlite://x.db");
    }

    #[test]
    fn events_are_json_on_the_bus_unless_told_otherwise() {
        assert_eq!(Config::defaults().bus_format, BusFormat::Json);
        let protobuf = Config::parse_from(["micro-serve", "--bus-format", "protobuf"]);
        assert_eq!(protobuf.bus_format, BusFormat::Protobuf);
        assert!(Config::try_parse_from(["micro-serve", "--bus-format", "xml"]).is_err());
    }

    #[test]
    fn bus_retention_is_a_week_unless_told_otherwise() {
        let week = std::time::Duration::from_secs(7 * 24 * 3600);
        assert_eq!(Config::defaults().bus_retention, week);
        let hours = Config::parse_from(["micro-serve", "--bus-retention", "36h"]);
        assert_eq!(hours.bus_retention.as_secs(), 36 * 3600);
        for bad in ["forever", "10s", ""] {
            assert!(
                Config::try_parse_from(["micro-serve", "--bus-retention", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_health_check_asks_the_local_server_on_its_port() {
        let wildcard = Config::parse_from(["micro-serve", "--bind", "0.0.0.0:9000", "healthcheck"]);
        assert_eq!(
            wildcard.local_healthz_url(),
            "http://127.0.0.1:9000/healthz"
        );
        assert!(matches!(
            wildcard.command,
            Some(Command::Healthcheck { timeout: 3 })
        ));
        let v6 = Config::parse_from(["micro-serve", "--bind", "[::]:80"]);
        assert_eq!(v6.local_healthz_url(), "http://[::1]:80/healthz");
        let chosen = Config::parse_from(["micro-serve", "--bind", "10.1.2.3:8080"]);
        assert_eq!(chosen.local_healthz_url(), "http://10.1.2.3:8080/healthz");
        assert!(chosen.command.is_none());
    }
}
