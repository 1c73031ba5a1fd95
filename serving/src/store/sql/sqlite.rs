//! SQLite: an embedded file in WAL mode with two files beside it (the log's
//! index tables and the profiles, each with a writer of its own), appends on
//! a thread of their own (`sqlite_log.rs`), checkpoints in the background.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{ConnectOptions, Sqlite};

use super::sqlite_log::LogAppender;
use super::{Appending, Engine, SqlStore, SqliteStore, Writers};
use crate::store::Result;

/// Settings of every SQLite connection, sqlx's pooled ones and the log
/// writer's (`sqlite_log.rs`), besides WAL mode, which the file keeps.
pub(super) const SQLITE_PRAGMAS: [(&str, &str); 5] = [
    // A commit is on disk when it returns; group commit keeps it affordable.
    ("synchronous", "FULL"),
    // 64 MiB of page cache per connection (default 2 MiB): id probes and the
    // indexer's sorted inserts touch pages all over the index tables, and a
    // miss is a disk read.
    ("cache_size", "-65536"),
    ("temp_store", "memory"),
    // Checkpoints run in the background (`Upkeep::checkpoint`): one run by a
    // committing connection stalled that commit for up to 140 ms. Automatic
    // ones stay as a backstop for a huge WAL.
    ("wal_autocheckpoint", "65536"),
    // Deleted rows are overwritten, not left in free pages (erasure, SPEC
    // §10); `scrub` empties the write-ahead log after one.
    ("secure_delete", "ON"),
];
/// Set on each attached file (`idx`, `prof`) by every connection, as on the
/// main one: they are per connection and per file. (WAL mode is kept in the
/// file, and set once by the pool.)
pub(super) const SQLITE_ATTACHED_PRAGMAS: [(&str, &str); 3] = [
    ("synchronous", "FULL"),
    ("cache_size", "-65536"),
    ("secure_delete", "ON"),
];
pub(super) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The files kept beside a SQLite database: the log's index tables and the
/// profiles, each with a writer of its own (`micro.db` → `micro.db-index`,
/// `micro.db-profiles`). They belong with it as its `-wal` file does.
pub fn sqlite_sidecars(database: &Path) -> (PathBuf, PathBuf) {
    let with = |suffix: &str| {
        let mut name = database.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    (with("-index"), with("-profiles"))
}

#[async_trait]
impl Engine for Sqlite {
    const NUMBERED: bool = false;
    // One writer per file: writes take turns with appends.
    const SERIAL_WRITES: bool = true;
    type LogWriter = LogAppender;

    /// Hands the group to the log's writer thread, which probes the index
    /// tables and appends in one go (see `sqlite_log.rs`).
    async fn append(store: &SqlStore<Sqlite>, rows: Appending<'_>) -> Result<Vec<usize>> {
        let probe = store.log.tail().indexed_seq > 0;
        store
            .writers
            .log
            .append(
                rows.batch.clone(),
                rows.candidates,
                probe,
                rows.first_seq,
                rows.received_at_micros,
            )
            .await
    }

    async fn checkpoint(store: &SqlStore<Sqlite>) -> Result<()> {
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&store.pool)
            .await?;
        Ok(())
    }

    /// With `secure_delete` on, the files hold no deleted bytes; the
    /// write-ahead logs still hold the pages as they were before. A
    /// truncating checkpoint of every attached file moves what is committed
    /// into them and empties the logs. Readers holding an old snapshot keep
    /// a log from being reset; say so rather than wait for them.
    async fn scrub(store: &SqlStore<Sqlite>) -> Result<()> {
        for schema in ["main", "idx", "prof"] {
            let busy: i64 =
                sqlx::query_scalar(&format!("PRAGMA {schema}.wal_checkpoint(TRUNCATE)"))
                    .fetch_one(&store.pool)
                    .await?;
            if busy != 0 {
                tracing::warn!(schema, "after an erasure the write-ahead log could not be emptied: a reader was active; the next checkpoint will");
            }
        }
        Ok(())
    }
}

impl SqliteStore {
    /// Opens the file (creating it and its directory) and the files beside
    /// it, in WAL mode with `synchronous = FULL` (see [`SQLITE_PRAGMAS`]).
    pub async fn connect(url: &str) -> Result<SqliteStore> {
        let options = SQLITE_PRAGMAS.iter().fold(
            SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                // Large group commits are slow by design; say so at debug level only.
                .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1)),
            |options, (name, value)| options.pragma(*name, *value),
        );
        let path = options.get_filename();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        }
        let (index, profiles) = sqlite_sidecars(path);
        let pool_of = |size: u32| {
            let (index, profiles) = (index.clone(), profiles.clone());
            SqlitePoolOptions::new()
                .max_connections(size)
                .after_connect(move |conn, _| {
                    let (index, profiles) = (index.clone(), profiles.clone());
                    Box::pin(async move {
                        for (file, schema) in [(&index, "idx"), (&profiles, "prof")] {
                            sqlx::query(&format!("ATTACH DATABASE ? AS {schema}"))
                                .bind(file.to_string_lossy().into_owned())
                                .execute(&mut *conn)
                                .await?;
                            let journal = [("journal_mode", "WAL")];
                            for (name, value) in journal.into_iter().chain(SQLITE_ATTACHED_PRAGMAS)
                            {
                                sqlx::query(&format!("PRAGMA {schema}.{name} = {value}"))
                                    .execute(&mut *conn)
                                    .await?;
                            }
                        }
                        Ok(())
                    })
                })
                .connect_with(options.clone())
        };
        let pool = pool_of(8).await?;
        sqlx::raw_sql(include_str!("sqlite_derived.sql"))
            .execute(&pool)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let writers = Writers {
            log: LogAppender::start(path, &index)?,
            index: pool_of(1).await?,
            profiles: pool_of(1).await?,
        };
        SqliteStore::open(pool, writers).await
    }
}

#[cfg(test)]
mod tests {
    use crate::store::InteractionLog;

    fn interaction(n: usize) -> features::Interaction {
        features::Interaction::from_json(&serde_json::json!({
            "id": format!("i{n}"), "type": "VIEW", "timestamp": "2026-10-01T12:00:00Z",
            "origin": {"id": "web", "type": "site"},
            "actor": {"id": format!("u{}", n % 7), "type": "user"},
            "target": {"id": "sku-1", "type": "product"},
        }))
        .expect("valid")
    }

    /// SQLite's append runs on the log writer's own thread and connection
    /// (`sqlite_log.rs`): a row failing midway must leave nothing of the
    /// batch and no transaction open on that connection.
    #[tokio::test]
    async fn a_failed_sqlite_append_keeps_nothing_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("micro.db").display());
        let store = super::SqliteStore::connect(&url).await.unwrap();
        let first: Vec<_> = (0..10).map(interaction).collect();
        store.append_interactions(first.into(), 1).await.unwrap();
        // A row the store does not know of takes the seq the second thousand
        // of the next batch will be given.
        let rogue = 10 + 1_000 + 1;
        sqlx::query(
            "INSERT INTO interactions (seq, id, user_id, kind, ts, origin_id, \
                     origin_type, actor_type, target_id, target_type, received_at) \
                     VALUES (?, 'rogue', 'r', 0, 0, 'o', 'site', 'user', 't', 'product', 0)",
        )
        .bind(rogue)
        .execute(&store.pool)
        .await
        .unwrap();
        let batch: Vec<_> = (10..10 + 1_500).map(interaction).collect();
        let failed = store.append_interactions(batch.clone().into(), 2).await;
        assert!(failed.is_err(), "the seq conflict fails the append");
        let count = || async {
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM interactions")
                .fetch_one(&store.pool)
                .await
                .unwrap()
        };
        assert_eq!(
            count().await,
            11,
            "the rows before the conflict were rolled back"
        );
        sqlx::query("DELETE FROM interactions WHERE id = 'rogue'")
            .execute(&store.pool)
            .await
            .unwrap();
        let stored = store
            .append_interactions(batch.clone().into(), 3)
            .await
            .unwrap();
        assert!(stored.iter().all(Option::is_some), "all stored on retry");
        assert_eq!(count().await, 10 + batch.len() as i64);
    }
}
