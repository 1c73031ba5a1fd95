//! `micro-train`: generate worlds, compute feature tables, benchmark the fold.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use clap::{Parser, Subcommand};
use training::feature_table::{self, FeatureTableArgs};
use training::generate::{generate, WorldParams};

#[derive(Parser, Debug)]
#[command(
    name = "micro-train",
    version,
    about = "Micro's training job: synthetic worlds, feature tables, models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate a synthetic world: interactions, catalog, users and labels (Parquet).
    Generate {
        /// Number of users.
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        /// Days of history.
        #[arg(long, default_value_t = 180)]
        days: u32,
        /// Random seed: the same seed gives byte-identical files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// First day of the history (UTC).
        #[arg(long, default_value = "2026-01-01")]
        start: NaiveDate,
        /// Mean interactions per fully active user over 180 days.
        #[arg(long, default_value_t = 100.0)]
        interactions_per_user: f64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Compute the per-user feature table (batch evaluator) and write it to Parquet.
    Features {
        /// Interaction log (.parquet, .csv or .ndjson).
        #[arg(long)]
        interactions: PathBuf,
        /// Catalog (.parquet, .csv or .ndjson).
        #[arg(long)]
        catalog: PathBuf,
        /// Reference time (RFC 3339); default: the latest interaction in the log.
        #[arg(long)]
        as_of: Option<DateTime<Utc>>,
        /// Output Parquet file; a `.schema.json` describing the columns is written beside it.
        #[arg(long)]
        out: PathBuf,
    },
    /// Benchmark the incremental fold on one core over a log.
    BenchFold {
        #[arg(long)]
        interactions: PathBuf,
        #[arg(long)]
        catalog: PathBuf,
        /// Times to fold the whole log; the best run is reported.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Generate {
            users,
            days,
            seed,
            start,
            interactions_per_user,
            out,
        } => {
            let start = start.and_hms_opt(0, 0, 0).context("start date")?.and_utc();
            let params = WorldParams {
                users,
                days,
                seed,
                start,
                interactions_per_user_180d: interactions_per_user,
            };
            let started = std::time::Instant::now();
            let summary = generate(&params, &out, true)?;
            eprintln!(
                "wrote {} users, {} catalog items, {} interactions to {} in {:.1}s",
                summary.users,
                summary.items,
                summary.interactions,
                out.display(),
                started.elapsed().as_secs_f64()
            );
        }
        Command::Features {
            interactions,
            catalog,
            as_of,
            out,
        } => feature_table::run(&FeatureTableArgs {
            interactions,
            catalog,
            as_of_micros: as_of.map(|t| t.timestamp_micros()),
            out,
        })?,
        Command::BenchFold {
            interactions,
            catalog,
            repeat,
        } => {
            let r = training::bench::run(&interactions, &catalog, repeat)?;
            println!(
                "folded {} interactions of {} users: best {:.3}s = {:.2}M interactions/s on one core (runs: {}); state {:.0} bytes/user",
                r.interactions,
                r.users,
                r.best_secs,
                r.interactions as f64 / r.best_secs / 1e6,
                r.rates
                    .iter()
                    .map(|x| format!("{:.2}M/s", x / 1e6))
                    .collect::<Vec<_>>()
                    .join(", "),
                r.state_bytes_per_user
            );
        }
    }
    Ok(())
}
