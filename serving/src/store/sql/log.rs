//! The interaction log's SQL: appends (through the engine's log writer),
//! reads by user, id and time, deletion, and the indexer that moves the tail
//! into the index tables.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use features::Interaction;

use super::dialect::Stmt;
use super::rows::{LogRow, LOG_COLUMNS};
use super::{Appending, Engine, SqlStore, MAX_TAIL};
use crate::store::{Appended, EventFilter, InteractionLog, LoggedInteraction, Result};

/// `SELECT <every log column> FROM interactions ` and the rest.
fn select_log(rest: &str) -> String {
    format!("SELECT {LOG_COLUMNS} FROM interactions {rest}")
}

impl<D: Engine> SqlStore<D> {
    /// `(seq IN <user's indexed seqs> OR seq IN <their tail seqs>)`.
    pub(super) fn push_user_seqs<'a>(stmt: &mut Stmt<'a>, user: &'a str, tail: &[i64]) {
        stmt.push("(seq IN (SELECT seq FROM interaction_users WHERE user_id = ")
            .bind(user)
            .push(")");
        if !tail.is_empty() {
            stmt.push(" OR seq IN ").list(tail.iter().copied());
        }
        stmt.push(")");
    }

    /// Moves up to `max_rows` of the tail into the index tables, in one
    /// transaction, sorted by key so each index page is written once. Call
    /// with `log.indexing` held.
    pub(super) async fn index_locked(&self, max_rows: usize) -> Result<usize> {
        let (from, to) = {
            let tail = self.log.tail();
            let to = tail
                .last_seq
                .min(tail.indexed_seq.saturating_add(max_rows as i64));
            (tail.indexed_seq, to)
        };
        if to <= from {
            return Ok(0);
        }
        let mut tx = self.writers.index.begin().await?;
        let ids = Self::stmt(
            "INSERT INTO interaction_ids (id, seq) SELECT id, seq FROM interactions \
             WHERE seq > ? AND seq <= ? ORDER BY id ON CONFLICT DO NOTHING",
        )
        .arg(from)
        .arg(to);
        let moved = D::execute_in(&mut tx, &ids).await?;
        let users = Self::stmt(
            "INSERT INTO interaction_users (user_id, seq) SELECT user_id, seq \
             FROM interactions WHERE seq > ? AND seq <= ? ORDER BY user_id, seq \
             ON CONFLICT DO NOTHING",
        )
        .arg(from)
        .arg(to);
        D::execute_in(&mut tx, &users).await?;
        Self::set_meta(&mut tx, "indexed_seq", to).await?;
        tx.commit().await?;
        self.log.tail().trim(to);
        Ok(moved as usize)
    }

    /// The receipt-time clauses of a listing.
    pub(super) fn push_time(stmt: &mut Stmt<'_>, filter: &EventFilter) {
        if let Some(from) = filter.from_micros {
            stmt.push(" AND received_at >= ").bind(from);
        }
        if let Some(to) = filter.to_micros {
            stmt.push(" AND received_at < ").bind(to);
        }
    }
}

#[async_trait]
impl<D: Engine> InteractionLog for SqlStore<D> {
    async fn append_interactions(
        &self,
        batch: Arc<[Interaction]>,
        received_at_micros: i64,
    ) -> Result<Vec<Appended>> {
        let _writing = self.log.writing.lock().await;
        if self.log.tail().len() >= MAX_TAIL {
            let _indexing = self.log.indexing.lock().await;
            self.index_locked(MAX_TAIL).await?;
        }
        let mut out: Vec<Appended> = vec![None; batch.len()];
        // First occurrence of each id within the batch, not in the tail.
        let mut first =
            HashMap::with_capacity_and_hasher(batch.len(), foldhash::fast::RandomState::default());
        let candidates: Vec<usize> = {
            let tail = self.log.tail();
            (0..batch.len())
                .filter(|&i| {
                    let id = batch[i].id.as_str();
                    tail.seq_of(id).is_none() && first.insert(id, i).is_none()
                })
                .collect()
        };
        let base = self.log.tail().last_seq;
        let rows = Appending {
            batch: &batch,
            candidates,
            first_seq: base + 1,
            received_at_micros,
        };
        let fresh = D::append(self, rows).await?;
        let mut tail = self.log.tail();
        for (k, &i) in fresh.iter().enumerate() {
            let seq = base + 1 + k as i64;
            tail.push(seq, &batch[i].id, batch[i].user_id());
            out[i] = Some(seq);
        }
        Ok(out)
    }

    async fn interactions_of(
        &self,
        user_id: &str,
        before: Option<i64>,
    ) -> Result<Vec<LoggedInteraction>> {
        let tail = self.log.tail().user_seqs(user_id);
        let mut stmt = Self::stmt(&select_log("WHERE "));
        Self::push_user_seqs(&mut stmt, user_id, &tail);
        stmt.push(" AND seq < ")
            .bind(before.unwrap_or(i64::MAX))
            .push(" ORDER BY seq");
        Self::read_all::<LogRow, _>(&self.pool, &stmt).await
    }

    async fn interaction(&self, id: &str) -> Result<Option<LoggedInteraction>> {
        let in_tail = self.log.tail().seq_of(id);
        let stmt = match in_tail {
            Some(seq) => Self::stmt(&select_log("WHERE seq = ?")).arg(seq),
            None => Self::stmt(&select_log(
                "WHERE seq = (SELECT seq FROM interaction_ids WHERE id = ?)",
            ))
            .arg(id),
        };
        Self::read_one::<LogRow, _>(&self.pool, &stmt).await
    }

    async fn list_interactions(&self, filter: &EventFilter) -> Result<Vec<LoggedInteraction>> {
        let tail = match &filter.user_id {
            Some(user) => self.log.tail().user_seqs(user),
            None => Vec::new(),
        };
        let mut stmt = Self::stmt(&select_log("WHERE 1 = 1"));
        if let Some(user) = &filter.user_id {
            stmt.push(" AND ");
            Self::push_user_seqs(&mut stmt, user, &tail);
        }
        Self::push_time(&mut stmt, filter);
        if let Some(seq) = filter.after.interactions {
            stmt.push(" AND seq > ").bind(seq);
        }
        stmt.push(" ORDER BY seq LIMIT ")
            .bind(filter.limit.max(1) as i64);
        Self::read_all::<LogRow, _>(&self.pool, &stmt).await
    }

    async fn delete_interaction(&self, id: &str) -> Result<Option<String>> {
        // One transaction over the log and its index tables (on SQLite two
        // files, committed main first: a crash between leaves an index entry
        // pointing at no row, which lookups join away).
        let _writing = self.log.writing.lock().await;
        let _indexing = self.log.indexing.lock().await;
        let Some(logged) = self.interaction(id).await? else {
            return Ok(None);
        };
        let user = logged.interaction.actor.id.as_str();
        let mut tx = self.pool.begin().await?;
        self.keep_high_water_mark(&mut tx).await?;
        for stmt in [
            Self::stmt("DELETE FROM interactions WHERE seq = ? AND id = ? AND user_id = ?")
                .arg(logged.seq)
                .arg(id)
                .arg(user),
            Self::stmt("DELETE FROM interaction_ids WHERE seq = ? AND id = ?")
                .arg(logged.seq)
                .arg(id),
            Self::stmt("DELETE FROM interaction_users WHERE seq = ? AND user_id = ?")
                .arg(logged.seq)
                .arg(user),
        ] {
            D::execute_in(&mut tx, &stmt).await?;
        }
        tx.commit().await?;
        self.log.tail().remove(logged.seq);
        Ok(Some(logged.interaction.actor.id))
    }

    async fn max_seq(&self) -> Result<i64> {
        Ok(self.log.tail().last_seq)
    }

    async fn users_after_seq(&self, seq: i64) -> Result<Vec<String>> {
        let stmt = Self::stmt("SELECT DISTINCT user_id FROM interactions WHERE seq > ?").arg(seq);
        Self::column::<String>(&self.pool, &stmt).await
    }
}
