//! `micro-serve --demo`: the seed's "dummy data" mode. A [`synthetic`] world
//! (the same generator, seed and catalog the committed demo model was
//! trained on) is registered and its recent history ingested through the
//! ordinary pipeline, then later days of the same world trickle in as live
//! interactions, stamped with the current time, so profiles and the
//! dashboard keep moving. Without `--demo` nothing here runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{Datelike, Utc};
use features::{Interaction, UserRegistration};
use synthetic::{build_catalog, day_rows, declared_users, make_people, Person, World, WorldParams};
use tokio::sync::watch;

use crate::pipeline::Pipeline;
use crate::store::{Store, UserRecord};
use crate::telemetry::Metrics;

/// Seed of the world the committed demo model (`models/profile`) was trained
/// on (`models/README.md`): its catalog is the model's catalog.
pub const DEMO_SEED: u64 = 42;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(
        "--demo needs an empty database or one an earlier --demo run filled; \
         {0} holds other users: point MICRO_DATABASE_URL at a new file"
    )]
    NotADemoDatabase(String),
    #[error("demo data: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
}

/// Size and pace of the demo.
#[derive(Clone, Debug)]
pub struct DemoParams {
    pub users: usize,
    /// Days of history loaded at start, ending today.
    pub days: u32,
    /// Live interactions per second after the history.
    pub per_second: f64,
}

impl Default for DemoParams {
    fn default() -> Self {
        Self {
            users: 1_000,
            days: 60,
            per_second: 5.0,
        }
    }
}

/// The generated world, its history ending today, and the pace of what follows.
#[derive(Debug)]
pub struct Demo {
    /// Live interactions per second.
    per_second: f64,
    world_params: WorldParams,
    world: World,
    people: Vec<Person>,
    status: Arc<DemoStatus>,
}

/// Where the demo is, for `/readyz` and the dashboard.
#[derive(Debug, Default)]
pub struct DemoStatus {
    /// The history is in (loaded now or by an earlier run); live
    /// interactions are being played.
    live: AtomicBool,
    /// Interactions this run has ingested (history and live).
    ingested: AtomicU64,
}

impl DemoStatus {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "state": if self.live.load(Ordering::Relaxed) { "live" } else { "loading" },
            "ingested": self.ingested.load(Ordering::Relaxed),
        })
    }
}

/// Interactions handed to the pipeline at once while loading the history.
const LOAD_BATCH: usize = 5_000;

impl Demo {
    pub fn new(params: DemoParams) -> Demo {
        let today = Utc::now().date_naive();
        let first = today - chrono::Days::new(u64::from(params.days));
        let world_params = WorldParams {
            users: params.users,
            days: params.days,
            seed: DEMO_SEED,
            start: first.and_time(chrono::NaiveTime::MIN).and_utc(),
            interactions_per_user_180d: 100.0,
        };
        Demo {
            world: build_catalog(&world_params),
            people: make_people(&world_params),
            world_params,
            per_second: params.per_second,
            status: Arc::default(),
        }
    }

    pub fn status(&self) -> Arc<DemoStatus> {
        self.status.clone()
    }

    /// Whether the history still has to be loaded: yes into an empty
    /// database, no into one an earlier demo run filled; a database with
    /// other users is refused, so demo data never mixes with real data.
    pub async fn needs_loading(
        &self,
        store: &Arc<dyn Store>,
        database: &str,
    ) -> Result<bool, DemoError> {
        if store.list_users(None, 1).await?.is_empty() {
            return Ok(true);
        }
        // Users registered beside the demo's (by hand, from the dashboard)
        // are fine; a database without the demo's people is someone's data.
        match self.people.first() {
            Some(p) if store.user(&p.id).await?.is_some() => Ok(false),
            _ => Err(DemoError::NotADemoDatabase(database.to_owned())),
        }
    }

    /// Registers the people and ingests their history. Returns the
    /// interactions ingested.
    pub async fn load(&self, pipeline: &Pipeline, metrics: &Metrics) -> Result<usize, DemoError> {
        let users = declared_users(&self.world_params, &self.people);
        let year = Utc::now().year();
        for user in &users {
            let registration = UserRegistration::from_json(&user.to_json(), year)
                .map_err(|e| DemoError::Invalid(e.to_string()))?;
            let record = UserRecord {
                registration,
                created_at: chrono::DateTime::from_timestamp_micros(user.registered_at)
                    .unwrap_or_default(),
            };
            pipeline.register(record).await?;
        }
        let mut ingested = 0;
        for day in 0..self.world_params.days {
            let rows = day_rows(&self.world_params, &self.world, &self.people, day);
            let batch = rows
                .iter()
                .map(|r| Interaction::from_json(&r.to_json(day, &self.world, &self.people)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| DemoError::Invalid(e.to_string()))?;
            for chunk in batch.chunks(LOAD_BATCH) {
                let appended = pipeline.ingest(chunk.to_vec()).await?;
                self.count(metrics, &appended);
            }
            ingested += batch.len();
        }
        tracing::info!(
            users = users.len(),
            interactions = ingested,
            days = self.world_params.days,
            "demo world loaded"
        );
        Ok(ingested)
    }

    /// Counts demo interactions as the HTTP and NATS paths count theirs.
    fn count(&self, metrics: &Metrics, outcomes: &[crate::pipeline::Ingested]) {
        metrics.count_ingested(outcomes);
        let (stored, _, _) = crate::pipeline::tally(outcomes);
        self.status
            .ingested
            .fetch_add(stored as u64, Ordering::Relaxed);
    }

    /// Plays the days after the history, one interaction at a time at
    /// `per_second`, stamped now, until `stop` turns true.
    pub async fn trickle(
        &self,
        pipeline: &Pipeline,
        metrics: &Metrics,
        mut stop: watch::Receiver<bool>,
    ) {
        let pause = Duration::from_secs_f64(1.0 / self.per_second.max(0.01));
        // Ids unique to this run: a restarted demo plays the same days again.
        let run = Utc::now().timestamp();
        let mut day = self.world_params.days;
        self.status.live.store(true, Ordering::Relaxed);
        loop {
            let rows = day_rows(&self.world_params, &self.world, &self.people, day);
            for row in &rows {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => return,
                }
                let mut json = row.to_json(day, &self.world, &self.people);
                json["id"] = format!("demo-{run}-{day}-{}", row.seq).into();
                json["timestamp"] = crate::bus::now()
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                    .into();
                match Interaction::from_json(&json) {
                    Ok(i) => match pipeline.ingest(vec![i]).await {
                        Ok(appended) => self.count(metrics, &appended),
                        Err(e) => tracing::warn!(error = %e, "demo interaction not ingested"),
                    },
                    Err(e) => tracing::warn!(error = %e, "demo interaction invalid"),
                }
            }
            day += 1;
        }
    }
}

/// Loads the demo world when asked to, then trickles live interactions
/// until stopped.
pub async fn run(
    demo: Demo,
    pipeline: Pipeline,
    metrics: Metrics,
    load: bool,
    stop: watch::Receiver<bool>,
) {
    if load {
        if let Err(e) = demo.load(&pipeline, &metrics).await {
            tracing::error!(error = %e, "loading the demo world failed");
            return;
        }
    } else {
        tracing::info!("demo world already loaded; going on with live interactions");
    }
    demo.trickle(&pipeline, &metrics, stop).await;
}
