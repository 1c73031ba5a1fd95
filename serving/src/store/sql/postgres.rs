//! PostgreSQL: one pool for everything; appends probe the index tables,
//! then insert in multi-row statements; the server checkpoints on its own.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Postgres};

use super::dialect::{Dialect, Param};
use super::rows::LOG_COLUMNS;
use super::{Appending, Engine, PostgresStore, SqlStore, Writers, INSERT_CHUNK};
use crate::store::Result;

/// Ids per `IN (…)` probe of `interaction_ids`.
const LOOKUP_CHUNK: usize = 1_000;
/// How long micro-serve waits at start for a PostgreSQL server that is not
/// up yet.
const POSTGRES_STARTUP_WAIT: Duration = Duration::from_secs(60);

#[async_trait]
impl Engine for Postgres {
    const NUMBERED: bool = true;
    // Writers run side by side.
    const SERIAL_WRITES: bool = false;
    // Appends share the pool.
    type LogWriter = ();

    /// Probes the index tables for `candidates`, then inserts those not
    /// found in one transaction, numbered from `first_seq`; returns them.
    async fn append(store: &SqlStore<Postgres>, rows: Appending<'_>) -> Result<Vec<usize>> {
        let Appending {
            batch,
            candidates,
            first_seq,
            received_at_micros,
        } = rows;
        let ids: Vec<&str> = candidates.iter().map(|&i| batch[i].id.as_str()).collect();
        let stored = store.indexed_ids(&ids).await?;
        let fresh: Vec<usize> = candidates
            .into_iter()
            .filter(|&i| !stored.contains(batch[i].id.as_str()))
            .collect();
        if fresh.is_empty() {
            return Ok(fresh);
        }
        let mut tx = store.pool.begin().await?;
        for (c, chunk) in fresh.chunks(INSERT_CHUNK).enumerate() {
            let chunk_seq = first_seq + (c * INSERT_CHUNK) as i64;
            let mut stmt =
                PostgresStore::stmt(&format!("INSERT INTO interactions ({LOG_COLUMNS}) VALUES "));
            stmt.values(chunk.iter().enumerate(), |row, (k, &i)| {
                let x = &batch[i];
                row.extend([
                    Param::from(chunk_seq + k as i64),
                    x.id.as_str().into(),
                    x.actor.id.as_str().into(),
                    (x.kind.index() as i64).into(),
                    x.timestamp_micros().into(),
                    x.origin.id.as_str().into(),
                    x.origin.kind.as_str().into(),
                    x.actor.kind.as_str().into(),
                    x.target.id.as_str().into(),
                    x.target.kind.as_str().into(),
                    x.value.as_ref().map(|v| v.amount).into(),
                    x.value.as_ref().map(|v| v.currency.as_str()).into(),
                    x.quantity.into(),
                    received_at_micros.into(),
                ]);
            });
            Postgres::execute_in(&mut tx, &stmt).await?;
        }
        tx.commit().await?;
        Ok(fresh)
    }

    /// PostgreSQL checkpoints on its own schedule.
    async fn checkpoint(_store: &SqlStore<Postgres>) -> Result<()> {
        Ok(())
    }

    /// Dead row versions are PostgreSQL's to reclaim (autovacuum); what
    /// it keeps of them until then is not readable through the database.
    async fn scrub(_store: &SqlStore<Postgres>) -> Result<()> {
        Ok(())
    }
}

impl PostgresStore {
    /// Ids of `ids` already in the log, found through its index tables.
    /// Joined with the log: an entry can outlive its row (see
    /// `delete_interaction`).
    async fn indexed_ids(&self, ids: &[&str]) -> Result<HashSet<String>> {
        let mut found = HashSet::new();
        if self.log.tail().indexed_seq == 0 {
            return Ok(found);
        }
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut stmt = Self::stmt(
                "SELECT x.id FROM interaction_ids x JOIN interactions i ON i.seq = x.seq \
                 WHERE x.id IN ",
            );
            stmt.list(chunk.iter().copied());
            found.extend(Self::column::<String>(&self.pool, &stmt).await?);
        }
        Ok(found)
    }

    pub async fn connect(url: &str) -> Result<PostgresStore> {
        PostgresStore::connect_waiting(url, POSTGRES_STARTUP_WAIT).await
    }

    /// Connects, waiting up to `wait` for a server that is not up yet:
    /// containers start together (compose, a Kubernetes pod restarted beside
    /// its database), and a server still starting refuses connections or
    /// answers "the database system is starting up". Other errors (a wrong
    /// password, an unknown database) are not retried.
    pub async fn connect_waiting(url: &str, wait: Duration) -> Result<PostgresStore> {
        let options = PgConnectOptions::from_str(url)?
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let deadline = std::time::Instant::now() + wait;
        let pool = loop {
            let attempt = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options.clone())
                .await;
            match attempt {
                Ok(pool) => break pool,
                Err(e) if postgres_not_up_yet(&e) && std::time::Instant::now() < deadline => {
                    // The error names no credentials: sqlx's I/O and
                    // server errors carry neither the URL nor the password.
                    tracing::warn!(error = %e, "PostgreSQL is not reachable yet; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let writers = Writers {
            log: (),
            index: pool.clone(),
            profiles: pool.clone(),
        };
        PostgresStore::open(pool, writers).await
    }
}

/// Whether a connection error is one a starting server gives: nothing
/// listening yet, its name not resolvable yet (a container network), a pool
/// timeout, or SQLSTATE 57P03 (cannot connect now).
fn postgres_not_up_yet(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(e) => e.code().as_deref() == Some("57P03"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::Duration;

    /// micro-serve started before its database (compose, a pod restarted
    /// beside PostgreSQL) waits for it instead of exiting: the server's port
    /// here refuses connections for the first 1.5 s, then forwards to the
    /// real PostgreSQL.
    #[tokio::test]
    async fn a_postgres_that_comes_up_late_is_waited_for() {
        use sqlx::Connection;
        let admin_url = std::env::var("MICRO_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let admin_options = sqlx::postgres::PgConnectOptions::from_str(&admin_url).unwrap();
        let upstream = format!("{}:{}", admin_options.get_host(), admin_options.get_port());
        let name = format!("micro_test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let late_url = format!(
            "postgres://{}@127.0.0.1:{port}/{name}",
            admin_options.get_username()
        );

        let refused = super::PostgresStore::connect_waiting(&late_url, Duration::ZERO).await;
        assert!(
            refused.is_err(),
            "nothing listens yet and no wait is allowed"
        );

        let forwarder = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        let store = super::PostgresStore::connect_waiting(&late_url, Duration::from_secs(30))
            .await
            .expect("connects once the server is up");
        let migrated: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM interactions")
            .fetch_one(&store.pool)
            .await
            .unwrap();
        assert_eq!(migrated, 0, "connected and migrated");
        store.pool.close().await;
        let wrong_database = late_url.replace(&name, "micro_test_no_such_database");
        let started = std::time::Instant::now();
        let refused =
            super::PostgresStore::connect_waiting(&wrong_database, Duration::from_secs(30)).await;
        assert!(refused.is_err());
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "an unknown database is an error at once, not waited for"
        );
        forwarder.abort();
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
}
