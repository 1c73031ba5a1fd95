//! The SQL behind every role of [`crate::store`], one module per role, each
//! written once for SQLite and PostgreSQL against the [`Dialect`] bound (see
//! `dialect.rs`). What truly differs per engine — connecting, how the log is
//! appended, checkpoints — is [`Engine`], in `sqlite.rs` and `postgres.rs`.
//!
//! The interaction log is appended in `seq` order only; its id and user
//! lookups are split between index tables filled behind the writer and the
//! in-memory [`LogTail`] (see `tail.rs` for why).

mod dialect;
mod erasure;
mod events;
mod log;
mod outbox;
mod postgres;
mod profiles;
mod rows;
mod sqlite;
mod sqlite_log;
mod upkeep;
mod users;

use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use features::Interaction;
use sqlx::{Pool, Transaction};

use self::dialect::{Dialect, RowOf, Stmt};
use self::rows::{ErasureMark, TailRow};
use super::tail::LogTail;
use super::{Result, StoreError};

pub use sqlite::sqlite_sidecars;

/// The store on SQLite: an embedded file and two beside it.
pub type SqliteStore = SqlStore<sqlx::Sqlite>;
/// The store on PostgreSQL.
pub type PostgresStore = SqlStore<sqlx::Postgres>;

/// Unindexed interactions above which an append first indexes the tail
/// itself: the indexer is behind, and the tail must not grow without bound.
pub const MAX_TAIL: usize = 500_000;
/// Rows per multi-row `INSERT` (up to 14 values each: well under both
/// engines' parameter limits).
const INSERT_CHUNK: usize = 1_000;

/// What differs between the engines beyond their SQL dialect.
#[async_trait]
pub trait Engine: Dialect {
    /// Placeholders are `$1, $2, …` rather than `?`.
    const NUMBERED: bool;
    /// Writes that do not touch the log take turns with appends (see
    /// [`LogState::other_write`]).
    const SERIAL_WRITES: bool;
    /// What appends to the log go through.
    type LogWriter: Send + Sync + std::fmt::Debug;

    /// Appends the rows the log does not hold yet (none is in the tail; the
    /// index tables may hold some) in one transaction; returns the indexes
    /// appended. Called with the log's `writing` lock held.
    async fn append(store: &SqlStore<Self>, rows: Appending<'_>) -> Result<Vec<usize>>;

    /// See [`crate::store::Upkeep::checkpoint`].
    async fn checkpoint(store: &SqlStore<Self>) -> Result<()>;

    /// After an erasure: removes what the engine keeps of deleted rows
    /// beyond the tables (SQLite: old pages in the write-ahead log).
    async fn scrub(store: &SqlStore<Self>) -> Result<()>;
}

/// Rows to append: `batch[candidates]`, numbered from `first_seq` in
/// order, received at one instant.
#[derive(Debug)]
pub struct Appending<'a> {
    batch: &'a Arc<[Interaction]>,
    candidates: Vec<usize>,
    first_seq: i64,
    received_at_micros: i64,
}

/// Where the hot writes go. On SQLite each is a connection of its own, always
/// the same one: a connection's page cache is dropped whenever another
/// connection has written the file since, so a writer that took whichever
/// pooled connection was free re-read the pages it had just written (the
/// right edge of the log, the index tables' pages) on every transaction. On
/// PostgreSQL the indexer and the profile writes share the pool.
#[derive(Debug)]
struct Writers<D: Engine> {
    /// Appends to the log: on SQLite a thread of its own with its own
    /// connection (`sqlite_log.rs`).
    log: D::LogWriter,
    /// The indexer.
    index: Pool<D>,
    /// Profile write-back.
    profiles: Pool<D>,
}

/// A store on one engine; every role is implemented for it in the module of
/// that role.
#[derive(Debug)]
pub struct SqlStore<D: Engine> {
    /// Reads, and the writes without a writer of their own.
    pool: Pool<D>,
    writers: Writers<D>,
    log: Arc<LogState>,
}

/// What the store keeps about its log besides the database.
#[derive(Debug, Default)]
struct LogState {
    tail: Mutex<LogTail>,
    /// Held by whatever writes the log (appends, deletions, erasures) — and,
    /// on SQLite, by every other write to the main file too (see
    /// [`LogState::other_write`]).
    writing: tokio::sync::Mutex<()>,
    /// Held by whatever writes the log's index tables (the indexer, and
    /// deletions, which take `writing` first). On SQLite they live in a file
    /// of their own, so the indexer never holds appends up.
    indexing: tokio::sync::Mutex<()>,
    /// Held on SQLite by profile writes (a file of their own, see
    /// `sqlite_derived.sql`), taken after `writing` and `indexing`.
    profiles: tokio::sync::Mutex<()>,
    /// Whether writes that do not touch the log take `writing` as well.
    serial_writes: bool,
    /// Whether events are also written to the outbox (a broker is configured).
    outbox: std::sync::atomic::AtomicBool,
}

impl LogState {
    /// The lock for a write that does not touch the log. SQLite has one
    /// writer at a time and makes the others wait in its busy handler, which
    /// sleeps in steps of up to 100 ms: an append queued behind another
    /// write stalled for far longer than that write took. Taking turns here
    /// instead (a fair queue) makes each wait exactly as long as the write
    /// before it. PostgreSQL writers run side by side.
    async fn other_write(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if self.serial_writes {
            Some(self.writing.lock().await)
        } else {
            None
        }
    }

    /// The lock for a profile write; with the outbox on, the main file's
    /// too (the `profile.updated` events go to the outbox there).
    async fn profile_write(
        &self,
    ) -> Option<(
        Option<tokio::sync::MutexGuard<'_, ()>>,
        tokio::sync::MutexGuard<'_, ()>,
    )> {
        if !self.serial_writes {
            return None;
        }
        let main = if self.outbox_on() {
            Some(self.writing.lock().await)
        } else {
            None
        };
        Some((main, self.profiles.lock().await))
    }

    /// Every lock, in the one order all writers take them.
    async fn all_writes(&self) -> [tokio::sync::MutexGuard<'_, ()>; 3] {
        let writing = self.writing.lock().await;
        let indexing = self.indexing.lock().await;
        [writing, indexing, self.profiles.lock().await]
    }

    fn tail(&self) -> MutexGuard<'_, LogTail> {
        // A panic while holding the lock leaves the tail consistent (every
        // method finishes its change before returning): keep using it.
        self.tail.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn outbox_on(&self) -> bool {
        self.outbox.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The table a log position is kept in: beside the rows it describes, so it
/// is written in their transaction (on SQLite the index tables and the
/// profiles are in files of their own).
fn meta_table(key: &str) -> &'static str {
    match key {
        "indexed_seq" => "index_meta",
        "profiles_seq" => "profile_meta",
        _ => "meta",
    }
}

/// A unique-key violation as the conflict it reports (`what` names the
/// thing, given the violated constraint); other errors as they are.
fn unique_violation(e: StoreError, what: impl FnOnce(&str) -> String) -> StoreError {
    match &e {
        StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            let detail = format!("{} {}", db.message(), db.constraint().unwrap_or_default());
            StoreError::Conflict(what(&detail))
        }
        _ => e,
    }
}

impl<D: Engine> SqlStore<D> {
    /// Wraps a migrated pool: reads the log positions, rebuilds the tail
    /// from the rows the index tables do not cover, and finishes erasures a
    /// stop interrupted.
    async fn open(pool: Pool<D>, writers: Writers<D>) -> Result<SqlStore<D>> {
        // `meta.log_seq` is written only when rows are deleted (so a deleted
        // top seq is not reused); otherwise the log's own maximum is the
        // high-water mark.
        let max =
            Self::column::<Option<i64>>(&pool, &Self::stmt("SELECT MAX(seq) FROM interactions"))
                .await?;
        let max = max.first().copied().flatten();
        let last = Self::meta(&pool, "log_seq").await?.max(max.unwrap_or(0));
        let indexed = Self::meta(&pool, "indexed_seq").await?;
        let mut tail = LogTail::new(last, indexed);
        let unindexed =
            Self::stmt("SELECT seq, id, user_id FROM interactions WHERE seq > ? ORDER BY seq")
                .arg(indexed);
        for row in Self::read_all::<TailRow, TailRow>(&pool, &unindexed).await? {
            tail.push(row.seq, &row.id, &row.user_id);
        }
        let store = SqlStore {
            pool,
            writers,
            log: Arc::new(LogState {
                tail: Mutex::new(tail),
                serial_writes: D::SERIAL_WRITES,
                ..LogState::default()
            }),
        };
        let pending = Self::read_all::<ErasureMark, ErasureMark>(
            &store.pool,
            &Self::stmt("SELECT user_id, tombstone FROM erasures"),
        )
        .await?;
        for mark in pending {
            tracing::warn!("finishing an erasure a stop interrupted");
            // The outbox is not on yet: nothing is announced.
            store
                .erase_locked(&mark.user_id, mark.tombstone.as_deref(), true, None)
                .await?;
        }
        Ok(store)
    }

    /// A statement in this engine's placeholders.
    fn stmt<'a>(sql: &str) -> Stmt<'a> {
        Stmt::new(D::NUMBERED, sql)
    }

    /// Runs a query and converts each row (`R`, as read) into `T`.
    async fn read_all<R, T>(pool: &Pool<D>, stmt: &Stmt<'_>) -> Result<Vec<T>>
    where
        D: RowOf<R>,
        T: TryFrom<R>,
        StoreError: From<T::Error>,
    {
        let rows = D::fetch(pool, stmt).await?;
        rows.iter()
            .map(|row| Ok(T::try_from(<D as RowOf<R>>::read(row)?)?))
            .collect()
    }

    /// The first row of a query, converted, if there is one.
    async fn read_one<R, T>(pool: &Pool<D>, stmt: &Stmt<'_>) -> Result<Option<T>>
    where
        D: RowOf<R>,
        T: TryFrom<R>,
        StoreError: From<T::Error>,
    {
        Ok(Self::read_all(pool, stmt).await?.into_iter().next())
    }

    /// The first column of every row of a query.
    async fn column<T>(pool: &Pool<D>, stmt: &Stmt<'_>) -> Result<Vec<T>>
    where
        D: RowOf<(T,)>,
    {
        let rows = D::fetch(pool, stmt).await?;
        rows.iter()
            .map(|row| Ok(<D as RowOf<(T,)>>::read(row)?.0))
            .collect()
    }

    async fn meta(pool: &Pool<D>, key: &str) -> Result<i64> {
        let sql = format!("SELECT value FROM {} WHERE key = ?", meta_table(key));
        let value = Self::column::<i64>(pool, &Self::stmt(&sql).arg(key)).await?;
        Ok(value.first().copied().unwrap_or(0))
    }

    async fn set_meta(tx: &mut Transaction<'static, D>, key: &str, value: i64) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (key, value) VALUES (?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            meta_table(key)
        );
        D::execute_in(tx, &Self::stmt(&sql).arg(key).arg(value)).await?;
        Ok(())
    }

    /// Records the highest seq assigned before rows are deleted, so a
    /// restart never hands out a deleted seq again.
    async fn keep_high_water_mark(&self, tx: &mut Transaction<'static, D>) -> Result<()> {
        let last = self.log.tail().last_seq;
        Self::set_meta(tx, "log_seq", last).await
    }
}
