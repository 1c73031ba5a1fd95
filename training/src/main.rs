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
        #[arg(long, conflicts_with = "first_n")]
        as_of: Option<DateTime<Utc>>,
        /// Each user with only their first N interactions, as of the N-th
        /// (what serving showed a new user then): for cold-start comparisons.
        #[arg(long)]
        first_n: Option<usize>,
        /// Output Parquet file; a `.schema.json` describing the columns is written beside it.
        #[arg(long)]
        out: PathBuf,
    },
    /// Train the profile models, evaluate them on held-out users and write a new registry version.
    Train {
        #[command(flatten)]
        data: LabelledData,
        /// Model registry directory (the one micro-serve reads).
        #[arg(long, env = "MICRO_MODELS_DIR", default_value = "models")]
        registry: PathBuf,
        /// Seed of the train/validation/test split by user.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Model families that compete for the classifiers (default: all).
        #[arg(long, value_delimiter = ',', value_enum)]
        families: Vec<training::select::Family>,
        /// Promote the new version (as `models promote` would: refused when
        /// it is below its baseline). A running micro-serve keeps its model
        /// until it restarts or is told through `POST /v1/models/{version}/promote`.
        #[arg(long)]
        promote: bool,
    },
    /// Score an existing artifact on labelled data it may never have seen.
    Evaluate {
        /// Version directory, e.g. models/profile/profile-2026-11-24T17-00-00Z.
        #[arg(long)]
        model: PathBuf,
        #[command(flatten)]
        data: LabelledData,
        /// Also write the metrics as JSON.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Manage the model registry.
    Models {
        /// Model registry directory (the one micro-serve reads).
        #[arg(
            long,
            env = "MICRO_MODELS_DIR",
            default_value = "models",
            global = true
        )]
        registry: PathBuf,
        #[command(subcommand)]
        command: ModelsCommand,
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
    /// Stream a history file into a running micro-serve through the ingest API, resumably.
    Backfill {
        /// Interaction history (.parquet, .csv or .ndjson).
        #[arg(long)]
        interactions: PathBuf,
        /// Users to register first (columns as `generate` writes users.parquet).
        #[arg(long)]
        users: Option<PathBuf>,
        /// Base address of micro-serve, e.g. http://127.0.0.1:8080.
        #[arg(long, env = "MICRO_API_URL")]
        api: String,
        /// API key, sent as a bearer token.
        #[arg(long, env = "MICRO_API_KEY", hide_env_values = true)]
        key: String,
        /// Interactions per request (NDJSON lines).
        #[arg(long, default_value_t = training::backfill::DEFAULT_BATCH)]
        batch: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = training::backfill::DEFAULT_IN_FLIGHT)]
        in_flight: usize,
        /// Failed attempts (connection errors, 5xx) per request before giving up.
        #[arg(long, default_value_t = training::backfill::DEFAULT_RETRIES)]
        retries: u32,
        /// State file recording how far the backfill got [default: <interactions>.backfill.json].
        #[arg(long)]
        state: Option<PathBuf>,
        /// Ignore the state file and send the whole file again.
        #[arg(long)]
        restart: bool,
    },
}

/// A labelled history: what training and evaluation read.
#[derive(clap::Args, Debug)]
struct LabelledData {
    /// Interaction log (.parquet, .csv or .ndjson).
    #[arg(long)]
    interactions: PathBuf,
    /// Catalog (.parquet, .csv or .ndjson).
    #[arg(long)]
    catalog: PathBuf,
    /// Labels: user_id plus any of spending_class, life_stage, topics.
    #[arg(long)]
    labels: PathBuf,
}

#[derive(Subcommand, Debug)]
enum ModelsCommand {
    /// List versions, marking the promoted one.
    List,
    /// Show a version's manifest.
    Show { version: String },
    /// Promote a version (serving picks it up); refuses one below its baseline unless --force.
    Promote {
        version: String,
        #[arg(long)]
        force: bool,
    },
}

fn models(registry: PathBuf, command: ModelsCommand) -> Result<()> {
    use features::registry::Registry;
    use training::train::MODEL_NAME;
    let registry = Registry::new(registry);
    match command {
        ModelsCommand::List => {
            let current = registry.current(MODEL_NAME)?;
            let versions = registry.list(MODEL_NAME)?;
            if versions.is_empty() {
                println!(
                    "no versions in {}",
                    registry.root().join(MODEL_NAME).display()
                );
            }
            for m in versions {
                let mark = if current.as_deref() == Some(m.version.as_str()) {
                    "*"
                } else {
                    " "
                };
                let below = m.below_baseline();
                let trained: Vec<String> = m
                    .models
                    .iter()
                    .filter_map(|e| e.family.as_ref().map(|f| format!("{}={f}", e.target)))
                    .collect();
                println!(
                    "{mark} {}  {}  {}{}",
                    m.version,
                    m.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
                    trained.join(" "),
                    if below.is_empty() {
                        String::new()
                    } else {
                        format!("  BELOW BASELINE: {}", below.join(", "))
                    }
                );
            }
        }
        ModelsCommand::Show { version } => {
            let artifact = registry.load(MODEL_NAME, &version)?;
            println!("{}", serde_json::to_string_pretty(&artifact.manifest)?);
        }
        ModelsCommand::Promote { version, force } => {
            registry.promote(MODEL_NAME, &version, force)?;
            println!("promoted {version}");
        }
    }
    Ok(())
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
            first_n,
            out,
        } => feature_table::run(&FeatureTableArgs {
            interactions,
            catalog,
            as_of_micros: as_of.map(|t| t.timestamp_micros()),
            first_n,
            out,
        })?,
        Command::Train {
            data,
            registry,
            seed,
            families,
            promote,
        } => {
            let outcome = training::train::train(&training::train::TrainArgs {
                interactions: data.interactions,
                catalog: data.catalog,
                labels: data.labels,
                registry: registry.clone(),
                seed,
                families,
                progress: true,
            })?;
            if promote {
                let version = &outcome.manifest.version;
                features::registry::Registry::new(registry).promote(
                    training::train::MODEL_NAME,
                    version,
                    false,
                )?;
                println!("promoted {version}");
            }
        }
        Command::Evaluate { model, data, out } => {
            let metrics = training::train::evaluate(
                &model,
                &data.interactions,
                &data.catalog,
                &data.labels,
                true,
            )?;
            if let Some(out) = out {
                std::fs::write(&out, serde_json::to_string_pretty(&metrics)?)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
        }
        Command::Models { registry, command } => models(registry, command)?,
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
        Command::Backfill {
            interactions,
            users,
            api,
            key,
            batch,
            in_flight,
            retries,
            state,
            restart,
        } => {
            training::backfill::run(&training::backfill::BackfillArgs {
                interactions,
                users,
                api,
                key,
                batch,
                in_flight,
                retries,
                state,
                restart,
                progress: true,
            })?;
        }
    }
    Ok(())
}
