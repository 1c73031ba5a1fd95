//! Upkeep behind the writers: liveness, the log's indexer, checkpoints.

use async_trait::async_trait;

use super::{Engine, SqlStore};
use crate::store::{Result, StoreError, Upkeep};

#[async_trait]
impl<D: Engine> Upkeep for SqlStore<D> {
    fn backend(&self) -> &'static str {
        <D as sqlx::Database>::NAME
    }

    async fn ping(&self) -> Result<()> {
        D::execute(&self.pool, &Self::stmt("SELECT 1")).await?;
        Ok(())
    }

    fn unindexed(&self) -> usize {
        self.log.tail().len()
    }

    async fn index_log(&self, max_rows: usize) -> Result<usize> {
        // Not `writing`: rows up to `last_seq` are committed, and an append
        // finds an id either in the tail or, once trimmed from it, in the
        // committed index tables.
        let _indexing = self.log.indexing.lock().await;
        self.index_locked(max_rows).await
    }

    async fn secret(&self, name: &str, fresh: &str) -> Result<String> {
        let keep = Self::stmt(
            "INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .arg(name)
        .arg(fresh);
        D::execute(&self.pool, &keep).await?;
        let stored = Self::stmt("SELECT value FROM secrets WHERE name = ?").arg(name);
        let value = Self::column::<String>(&self.pool, &stored).await?;
        value
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt(format!("secret {name} was not kept")))
    }

    async fn checkpoint(&self) -> Result<()> {
        D::checkpoint(self).await
    }
}
