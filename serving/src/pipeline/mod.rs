//! The ingestion pipeline: one writer task through which every change to the
//! log and to live states passes, in order.
//!
//! Ingest requests queue here; the writer takes as many as are waiting (up to
//! a group size) and appends them in one transaction (group commit), then
//! hands the group to the folder task, which folds the new interactions into
//! their users' states, re-scores those users and answers every request of
//! the group — while the writer already appends the next group. A POST
//! therefore returns only after its interactions are durable *and* visible in
//! profiles. Registrations,
//! deletions and re-scoring go through the same queue and wait for the folder
//! to finish what was committed before them, so a user's state never sees two
//! writers and every change applies in the order it was asked for.
//!
//! The queue is bounded twice: by jobs (channel capacity) and by queued
//! interactions (a semaphore); a request that does not fit is refused at once
//! (`Overloaded`, HTTP 503 with `Retry-After`) instead of growing memory.
//!
//! Changed profiles are written to the store by a flusher every
//! [`Limits::flush_interval`] and at shutdown; `meta.profiles_seq` records how
//! far they are current, and start-up re-folds users with later interactions.
//! An indexer moves appended interactions into the log's index tables behind
//! the writer ([`Store::index_log`]).

mod changes;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use features::{Interaction, Profile};
use tokio::sync::{mpsc, oneshot, watch, Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use self::changes::announcements;
pub use self::changes::{user_event, UserUpdate};
use self::writer::Writer;
use crate::bus::Bus;
use crate::engine::Engine;
use crate::erasure::Tombstones;
use crate::store::{Erasure, Store, StoreError, Upkeep, UserRecord};

/// Profiles written per transaction by the flusher. Chosen while profiles
/// shared SQLite's main file (one writer per file) and an append could wait
/// for one such transaction: open-loop single POSTs at 6,000/s, p99: 57–182
/// ms with 500 (≈ 14 ms a transaction), 35–61 ms with 100 (≈ 4 ms); batched
/// ingest was no slower (docs/benchmarks.md). Profiles now have a file of
/// their own; appends still wait for one when a broker is configured (the
/// `profile.updated` rows go to the outbox, in the main file).
const FLUSH_CHUNK: usize = 100;
/// Most interactions committed in one transaction.
pub const MAX_GROUP: usize = 20_000;
/// A group smaller than this waits for the runtime's other runnable tasks
/// once before it commits (a yield, no timer: with nothing else to run it
/// goes on at once). Each commit costs an `fsync`, and on this machine's
/// virtual disk that was two thirds of the log writer's CPU under single
/// POSTs, where a third of the groups held one to three interactions.
const GATHER_BELOW: usize = 64;
/// Interactions the indexer moves per transaction. Appends do not wait for
/// it (on SQLite the index tables have a file and a writer of their own), so
/// it is as large as keeps the tail small: ids arrive in random order, and a
/// larger batch writes each touched index page for more of them.
const INDEX_BATCH: usize = 50_000;
/// How long the indexer rests when less than a batch is waiting. An index
/// transaction rewrites a page for each distinct key page it touches, and a
/// checkpoint copies each page changed since the last one: fewer, larger
/// runs write each page fewer times (100 ms and 1 s before; the background
/// threads' CPU fell by 8–12 % under batched and single-POST load).
const INDEX_IDLE: Duration = Duration::from_secs(1);
/// How often the write-ahead log is checkpointed in the background.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("ingestion queue is full ({queued} interactions waiting); retry shortly")]
    Overloaded { queued: usize },
    #[error("batch of {size} interactions exceeds the queue ({capacity}); split it")]
    TooLarge { size: usize, capacity: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A change that breaks the input rules once applied (a user edit).
    #[error("invalid input: {0}")]
    Invalid(features::ValidationErrors),
    #[error("the service is shutting down")]
    Closed,
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

type Reply<T> = oneshot::Sender<Result<T>>;

enum Job {
    Ingest {
        batch: Vec<Interaction>,
        reply: Reply<Vec<Ingested>>,
        _permit: OwnedSemaphorePermit,
    },
    /// Anything else: run alone, after every group committed before it is
    /// folded.
    Control(Control),
}

enum Control {
    Register {
        record: Box<UserRecord>,
        reply: Reply<Profile>,
    },
    UpdateUser {
        user_id: String,
        patch: serde_json::Map<String, serde_json::Value>,
        reply: Reply<Option<UserUpdate>>,
    },
    DeleteInteraction {
        id: String,
        reply: Reply<Option<String>>,
    },
    Erase {
        user_id: String,
        reply: Reply<Erasure>,
    },
    Rescore {
        users: Vec<String>,
        reply: Reply<usize>,
    },
    Barrier {
        reply: Reply<()>,
    },
}

impl Pipeline {
    async fn control<T>(&self, job: impl FnOnce(Reply<T>) -> Control) -> Result<T> {
        self.submit(|reply| Job::Control(job(reply))).await
    }
}

/// What became of one interaction handed to [`Pipeline::ingest`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ingested {
    /// Stored now, at this log position.
    Stored(i64),
    /// Its id was stored before: not stored again.
    Duplicate,
    /// Its user was erased (and has not registered since): dropped.
    Erased,
}

impl Ingested {
    pub fn is_stored(self) -> bool {
        matches!(self, Ingested::Stored(_))
    }
}

/// How many of `outcomes` were stored, duplicates and dropped as erased.
pub fn tally(outcomes: &[Ingested]) -> (usize, usize, usize) {
    outcomes.iter().fold((0, 0, 0), |(s, d, e), o| match o {
        Ingested::Stored(_) => (s + 1, d, e),
        Ingested::Duplicate => (s, d + 1, e),
        Ingested::Erased => (s, d, e + 1),
    })
}

/// Capacities of the pipeline.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Interactions that may wait for the writer.
    pub queued_interactions: usize,
    /// Requests that may wait for the writer.
    pub queued_jobs: usize,
    /// How often changed profiles are written to the store.
    pub flush_interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            queued_interactions: 200_000,
            queued_jobs: 4_096,
            flush_interval: Duration::from_secs(5),
        }
    }
}

/// Handle to the pipeline; cheap to clone.
#[derive(Clone, Debug)]
pub struct Pipeline {
    tx: mpsc::Sender<Job>,
    permits: Arc<Semaphore>,
    limits: Limits,
    flush_lock: Arc<Mutex<i64>>,
    store: Arc<dyn Store>,
    engine: Arc<Engine>,
    tombstones: Arc<Tombstones>,
}

/// The pipeline's background tasks, to be awaited at shutdown.
#[derive(Debug)]
pub struct Tasks {
    writer: JoinHandle<()>,
    /// The flusher and the indexer, stopped through `stop`.
    background: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    /// Feeders from outside HTTP (the NATS consumer and relay), stopped
    /// first at shutdown so nothing new is queued behind the last barrier.
    feeders: Vec<JoinHandle<()>>,
    stop_feeders: watch::Sender<bool>,
}

impl Pipeline {
    /// Starts the writer and the flusher.
    pub fn start(
        store: Arc<dyn Store>,
        engine: Arc<Engine>,
        bus: Arc<dyn Bus>,
        tombstones: Arc<Tombstones>,
        limits: Limits,
    ) -> (Pipeline, Tasks) {
        let (tx, rx) = mpsc::channel(limits.queued_jobs.max(1));
        let flush_lock = Arc::new(Mutex::new(0));
        let pipeline = Pipeline {
            tx,
            permits: Arc::new(Semaphore::new(limits.queued_interactions.max(1))),
            limits,
            flush_lock: flush_lock.clone(),
            store: store.clone(),
            engine: engine.clone(),
            tombstones: tombstones.clone(),
        };
        let writer = Writer {
            store,
            engine,
            bus,
            tombstones,
            flush_lock,
        };
        let writer = writer.spawn(rx);
        let (stop, stopped) = watch::channel(false);
        let flushing = pipeline.clone();
        let mut flusher_stop = stopped.clone();
        let flusher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(limits.flush_interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = flusher_stop.changed() => break,
                }
                if let Err(e) = flushing.flush().await {
                    tracing::warn!(error = %e, "writing profiles failed; will retry");
                }
            }
        });
        let indexer = tokio::spawn(index_loop(pipeline.store.clone(), stopped));
        (
            pipeline,
            Tasks {
                writer,
                background: vec![flusher, indexer],
                stop,
                feeders: Vec::new(),
                stop_feeders: watch::channel(false).0,
            },
        )
    }

    /// Whether a user was erased and has not registered since: what they
    /// send is dropped (SPEC §10).
    pub fn is_erased(&self, user_id: &str) -> bool {
        self.tombstones.is_erased(user_id, &self.engine)
    }

    /// Interactions waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.limits
            .queued_interactions
            .saturating_sub(self.permits.available_permits())
    }

    async fn submit<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        match self.tx.try_send(job(reply)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(PipelineError::Overloaded {
                    queued: self.queue_depth(),
                })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(PipelineError::Closed),
        }
        answer.await.map_err(|_| PipelineError::Closed)?
    }

    /// Appends validated interactions durably and folds them; returns each
    /// one's sequence number, `None` for duplicates.
    pub async fn ingest(&self, batch: Vec<Interaction>) -> Result<Vec<Ingested>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let size = batch.len();
        let permits = u32::try_from(size)
            .ok()
            .filter(|_| size <= self.limits.queued_interactions)
            .ok_or(PipelineError::TooLarge {
                size,
                capacity: self.limits.queued_interactions,
            })?;
        let permit = self
            .permits
            .clone()
            .try_acquire_many_owned(permits)
            .map_err(|_| PipelineError::Overloaded {
                queued: self.queue_depth(),
            })?;
        self.submit(|reply| Job::Ingest {
            batch,
            reply,
            _permit: permit,
        })
        .await
    }

    /// Saves a registration with its `user.registered` event; the profile
    /// exists from then on.
    pub async fn register(&self, record: UserRecord) -> Result<Profile> {
        self.control(|reply| Control::Register {
            record: Box::new(record),
            reply,
        })
        .await
    }

    /// Applies a merge patch to a user's declared fields (see
    /// [`UserRegistration::patched`]) and emits `user.updated`; the
    /// profile's declared fields follow at once. `None`: no such user.
    pub async fn update_user(
        &self,
        user_id: String,
        patch: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<UserUpdate>> {
        self.control(|reply| Control::UpdateUser {
            user_id,
            patch,
            reply,
        })
        .await
    }

    /// Deletes an interaction and recomputes its user's state from the rest
    /// of the log; returns the user when the interaction existed.
    pub async fn delete_interaction(&self, id: String) -> Result<Option<String>> {
        self.control(|reply| Control::DeleteInteraction { id, reply })
            .await
    }

    pub async fn erase(&self, user_id: String) -> Result<Erasure> {
        self.control(|reply| Control::Erase { user_id, reply })
            .await
    }

    /// Re-scores users with the active model (loading them when not held).
    pub async fn rescore(&self, users: Vec<String>) -> Result<usize> {
        self.control(|reply| Control::Rescore { users, reply })
            .await
    }

    /// Writes changed profiles to the store now.
    pub async fn flush(&self) -> Result<()> {
        let mut saved_seq = self.flush_lock.lock().await;
        let (mut users, seq) = self.engine.take_dirty_users();
        // In key order, so each chunk's transaction touches neighbouring
        // pages of the profile tables rather than pages all over them (each
        // commit writes every page it touched to the WAL again).
        users.sort_unstable();
        if users.is_empty() && seq <= *saved_seq {
            return Ok(());
        }
        // Chunks, each its own transaction: the writer's commits interleave
        // instead of waiting for one long profile write. The seq is recorded
        // with the last chunk only (a crash before it re-folds them all).
        // With nothing to write, one empty chunk still records the seq.
        // Profiles are built chunk by chunk (each save is an await point):
        // building tens of thousands at once held a runtime thread for tens
        // of milliseconds.
        let chunks: Vec<&[Box<str>]> = if users.is_empty() {
            vec![&[]]
        } else {
            users.chunks(FLUSH_CHUNK).collect()
        };
        for (i, chunk) in chunks.iter().enumerate() {
            let (profiles, announce) = self.engine.profiles_to_write(chunk);
            let recorded = if i + 1 == chunks.len() {
                seq
            } else {
                *saved_seq
            };
            let announced = if self.store.outbox_on() {
                announcements(&profiles, &announce)?
            } else {
                Vec::new()
            };
            if let Err(e) = self
                .store
                .save_profiles(&profiles, &announced, recorded)
                .await
            {
                let unsaved = chunks[i..].iter().flat_map(|c| c.iter());
                self.engine.retry_profiles(unsaved.map(|u| &**u));
                return Err(e.into());
            }
        }
        *saved_seq = seq;
        Ok(())
    }

    /// Re-folds users whose interactions are newer than the saved profiles
    /// (a crash lost the last flush), then records the log position. Run at
    /// start, before serving.
    pub async fn recover(&self) -> Result<usize> {
        let saved = self.store.profiles_seq().await?;
        let max = self.store.max_seq().await?;
        let stale = if max > saved {
            self.store.users_after_seq(saved).await?
        } else {
            Vec::new()
        };
        let n = stale.len();
        for chunk in stale.chunks(1_000) {
            self.rescore(chunk.to_vec()).await?;
        }
        self.engine.note_seq(max);
        self.flush().await?;
        Ok(n)
    }

    /// Re-scores every stored profile with the active model, page by page
    /// through the queue (so it interleaves with ingestion). Returns the count.
    pub async fn rescore_all(&self) -> Result<usize> {
        self.flush().await?;
        let mut after: Option<String> = None;
        let mut total = 0;
        loop {
            let ids = self.store.profile_ids(after.as_deref(), 1_000).await?;
            let Some(last) = ids.last().cloned() else {
                break;
            };
            total += ids.len();
            self.rescore(ids).await?;
            after = Some(last);
        }
        self.flush().await?;
        Ok(total)
    }
}

impl Tasks {
    /// A stop signal for a feeder task, which [`Tasks::add_feeders`] then owns.
    pub fn feeder_stop(&self) -> watch::Receiver<bool> {
        self.stop_feeders.subscribe()
    }

    pub fn add_feeders(&mut self, feeders: Vec<JoinHandle<()>>) {
        self.feeders.extend(feeders);
    }

    /// Finishes every job queued so far, then writes the last profiles. Call
    /// once the server has stopped taking requests.
    pub async fn shutdown(self, pipeline: &Pipeline) {
        let Tasks {
            writer,
            background,
            stop,
            feeders,
            stop_feeders,
        } = self;
        let _ = stop_feeders.send(true);
        for task in feeders {
            let _ = task.await;
        }
        let (reply, done) = oneshot::channel();
        // Jobs run in order: when the barrier answers, all before it are done.
        let barrier = Job::Control(Control::Barrier { reply });
        if pipeline.tx.send(barrier).await.is_ok() {
            let _ = done.await;
        }
        let _ = stop.send(true);
        for task in background {
            let _ = task.await;
        }
        if let Err(e) = pipeline.flush().await {
            tracing::error!(error = %e, "final profile flush failed; profiles will be rebuilt at start");
        }
        writer.abort();
    }
}

/// Keeps the log's index tables close behind the writer: a batch at once
/// when one is waiting, otherwise whatever is there every [`INDEX_IDLE`];
/// and checkpoints the store's write-ahead log every [`CHECKPOINT_EVERY`].
async fn index_loop(store: Arc<dyn Upkeep>, mut stop: watch::Receiver<bool>) {
    let mut checkpointed = std::time::Instant::now();
    loop {
        if checkpointed.elapsed() >= CHECKPOINT_EVERY {
            if let Err(e) = store.checkpoint().await {
                tracing::warn!(error = %e, "checkpoint failed; will retry");
            }
            checkpointed = std::time::Instant::now();
        }
        if store.unindexed() < INDEX_BATCH {
            tokio::select! {
                _ = tokio::time::sleep(INDEX_IDLE) => {}
                _ = stop.changed() => break,
            }
        }
        if *stop.borrow() {
            break;
        }
        if store.unindexed() == 0 {
            continue;
        }
        let started = std::time::Instant::now();
        match store.index_log(INDEX_BATCH).await {
            Ok(n) => tracing::debug!(
                interactions = n,
                index_ms = started.elapsed().as_secs_f64() * 1e3,
                "log indexed"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "indexing the interaction log failed; will retry");
                tokio::time::sleep(INDEX_IDLE).await;
            }
        }
    }
}
