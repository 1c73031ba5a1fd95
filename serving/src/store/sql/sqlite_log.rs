//! SQLite's log appends, on a thread of their own that owns a connection of
//! its own (rusqlite, over the same `libsqlite3` sqlx links).
//!
//! sqlx runs each SQLite connection on a worker thread as well, and hands
//! every statement and every result across to it. Under single-interaction
//! load the append writer spent its time there: a group of ~7 interactions
//! cost a probe of the index tables (a pooled connection, one hand-off each
//! way), then a `BEGIN; INSERT …; COMMIT` built and parsed anew for each
//! group size (results streamed back statement by statement). Here a group is
//! one hand-off: the probe, the inserts (one prepared statement, stepped per
//! row) and the commit run back to back on the thread, and the caller is
//! woken once.
//!
//! Everything else on SQLite stays with sqlx; both libraries open the same
//! files through the same SQLite library, so its file locks and WAL index
//! coordinate them as they would two sqlx connections.

use std::path::Path;
use std::sync::{mpsc, Arc};

use features::Interaction;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::sqlite::{SQLITE_ATTACHED_PRAGMAS, SQLITE_BUSY_TIMEOUT, SQLITE_PRAGMAS};
use crate::store::{Result, StoreError};

/// Finds an id in the log through its index table, joined with the log: an
/// entry can outlive its row (see `delete_interaction`).
const PROBE: &str = "SELECT 1 FROM idx.interaction_ids x JOIN interactions i ON i.seq = x.seq \
                     WHERE x.id = ?1";
const INSERT: &str = "INSERT INTO interactions (seq, id, user_id, kind, ts, origin_id, \
                      origin_type, actor_type, target_id, target_type, amount, currency, \
                      quantity, received_at) \
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

/// One group to append.
struct Append {
    batch: Arc<[Interaction]>,
    /// Indexes into `batch` not yet in the log as far as the caller knows
    /// (not in the tail, first of their id in the batch).
    candidates: Vec<usize>,
    /// Whether the index tables may hold some of them (anything indexed yet).
    probe: bool,
    /// The seq of the first row appended; the others follow one by one.
    first_seq: i64,
    received_at_micros: i64,
    reply: oneshot::Sender<rusqlite::Result<Vec<usize>>>,
}

/// Handle to the log's writer thread; cheap to clone. The thread ends, and
/// closes its connection, when the last handle is dropped.
#[derive(Clone, Debug)]
pub struct LogAppender {
    jobs: mpsc::Sender<Append>,
}

impl LogAppender {
    /// Opens the writer's connection (so a failure shows at start) and
    /// starts its thread. The database and the index file must exist,
    /// migrated.
    pub(super) fn start(database: &Path, index: &Path) -> Result<LogAppender> {
        let (database, index) = (database.to_owned(), index.to_owned());
        let conn = connect(&database, &index)?;
        let (jobs, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("micro-log-writer".into())
            .spawn(move || run(conn, &database, &index, rx))
            .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        Ok(LogAppender { jobs })
    }

    /// Appends `batch[candidates]` that the log does not hold yet, numbered
    /// from `first_seq` in one transaction; returns the indexes appended. The
    /// caller holds the log's `writing` lock, so one group is in flight at a
    /// time.
    pub(super) async fn append(
        &self,
        batch: Arc<[Interaction]>,
        candidates: Vec<usize>,
        probe: bool,
        first_seq: i64,
        received_at_micros: i64,
    ) -> Result<Vec<usize>> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Append {
                batch,
                candidates,
                probe,
                first_seq,
                received_at_micros,
                reply,
            })
            .map_err(|_| StoreError::WriterStopped)?;
        Ok(answer.await.map_err(|_| StoreError::WriterStopped)??)
    }
}

/// A connection with the settings sqlx gives the pool's (see
/// `SqliteStore::connect`), with the index file attached as `idx`.
fn connect(database: &Path, index: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(SQLITE_BUSY_TIMEOUT)?;
    for (name, value) in SQLITE_PRAGMAS {
        conn.pragma_update(None, name, value)?;
    }
    conn.execute(
        "ATTACH DATABASE ?1 AS idx",
        [index.to_string_lossy().as_ref()],
    )?;
    // WAL mode is the file's own, set when the pool attached it.
    for (name, value) in SQLITE_ATTACHED_PRAGMAS {
        conn.pragma_update(Some(rusqlite::DatabaseName::Attached("idx")), name, value)?;
    }
    Ok(conn)
}

fn run(mut conn: Connection, database: &Path, index: &Path, jobs: mpsc::Receiver<Append>) {
    while let Ok(job) = jobs.recv() {
        let result = append(&mut conn, &job);
        if result.is_err() && !conn.is_autocommit() {
            // The failed transaction's rollback failed as well: never let a
            // later commit carry its rows. Try once more, else start afresh.
            let _ = conn.execute_batch("ROLLBACK");
            if !conn.is_autocommit() {
                match connect(database, index) {
                    Ok(fresh) => conn = fresh,
                    Err(e) => tracing::error!(error = %e, "reopening the log writer failed"),
                }
            }
        }
        let _ = job.reply.send(result);
    }
}

fn append(conn: &mut Connection, job: &Append) -> rusqlite::Result<Vec<usize>> {
    let batch = &job.batch;
    // One transaction for the probe and the inserts. Deferred: the probe
    // reads both files under one snapshot, and only the main file is locked
    // for writing, at the first insert (the indexer keeps writing the index
    // file meanwhile). Probing outside it made every probed id a read
    // transaction of its own, each taking and dropping SQLite's file locks
    // (four `fcntl` calls): that was 40 % of this thread's time under
    // batched ingest. Every other writer of the main file holds the log's
    // `writing` lock, as the caller does, so the snapshot is still the
    // newest when the write lock is taken. Rolled back when dropped.
    let tx = conn.transaction()?;
    let fresh = if job.probe {
        let mut known = tx.prepare_cached(PROBE)?;
        let mut fresh = Vec::with_capacity(job.candidates.len());
        for &i in &job.candidates {
            if !known.exists([batch[i].id.as_str()])? {
                fresh.push(i);
            }
        }
        fresh
    } else {
        job.candidates.clone()
    };
    if fresh.is_empty() {
        return Ok(fresh);
    }
    {
        let mut insert = tx.prepare_cached(INSERT)?;
        for (k, &i) in fresh.iter().enumerate() {
            let x = &batch[i];
            insert.execute(rusqlite::params![
                job.first_seq + k as i64,
                x.id,
                x.actor.id,
                x.kind.index() as i64,
                x.timestamp_micros(),
                x.origin.id,
                x.origin.kind,
                x.actor.kind,
                x.target.id,
                x.target.kind,
                x.value.as_ref().map(|v| v.amount),
                x.value.as_ref().map(|v| v.currency.as_str()),
                x.quantity,
                job.received_at_micros,
            ])?;
        }
    }
    tx.commit()?;
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    /// The writer's connection runs with the settings sqlx's pool gets: a
    /// commit that is not `synchronous = FULL` would not be durable.
    #[test]
    fn the_writer_connection_has_the_pool_settings() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (database, index) = (
            dir.path().join("micro.db"),
            dir.path().join("micro.db-index"),
        );
        for file in [&database, &index] {
            rusqlite::Connection::open(file).expect("creates the file");
        }
        let conn = super::connect(&database, &index).expect("connects");
        let read = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).expect(sql) };
        assert_eq!(read("PRAGMA synchronous"), 2, "FULL");
        assert_eq!(
            read("PRAGMA idx.synchronous"),
            2,
            "FULL on the index file too"
        );
        assert_eq!(read("PRAGMA cache_size"), -65536);
        assert_eq!(read("PRAGMA idx.cache_size"), -65536);
        assert_eq!(read("PRAGMA temp_store"), 2, "memory");
        assert_eq!(read("PRAGMA wal_autocheckpoint"), 65536);
        assert_eq!(read("PRAGMA busy_timeout"), 10_000);
    }
}
