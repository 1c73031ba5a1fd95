//! Stored events (everything but interactions, which the log keeps).

use async_trait::async_trait;
use features::Event;

use super::rows::EventRow;
use super::{unique_violation, Engine, SqlStore};
use crate::store::{EventFilter, EventRecord, Events, Result};

impl<D: Engine> SqlStore<D> {
    /// Stores an event, and queues it for the broker when the outbox is on,
    /// in the caller's transaction.
    pub(super) async fn insert_event_in(
        &self,
        tx: &mut sqlx::Transaction<'static, D>,
        record: &EventRecord,
    ) -> Result<()> {
        let e = &record.event;
        let insert = Self::stmt(
            "INSERT INTO events (id, type, user_id, payload, received_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .arg(e.id.as_str())
        .arg(e.kind.as_str())
        .arg(record.user_id.as_deref())
        .arg(e.payload.to_string())
        .arg(e.received_at.timestamp_micros());
        D::execute_in(tx, &insert)
            .await
            .map_err(|err| unique_violation(err, |_| format!("event {}", e.id)))?;
        if self.log.outbox_on() {
            Self::outbox_in(tx, record).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl<D: Engine> Events for SqlStore<D> {
    async fn insert_event(&self, event: &EventRecord) -> Result<()> {
        let _writing = self.log.other_write().await;
        let mut tx = self.pool.begin().await?;
        self.insert_event_in(&mut tx, event).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn event(&self, id: &str) -> Result<Option<EventRecord>> {
        let stmt =
            Self::stmt("SELECT id, type, user_id, payload, received_at FROM events WHERE id = ?")
                .arg(id);
        Self::read_one::<EventRow, _>(&self.pool, &stmt).await
    }

    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        let mut stmt =
            Self::stmt("SELECT id, type, user_id, payload, received_at FROM events WHERE 1 = 1");
        if let Some(kind) = &filter.kind {
            stmt.push(" AND type = ").bind(kind.as_str());
        }
        if let Some(user) = &filter.user_id {
            stmt.push(" AND user_id = ").bind(user.as_str());
        }
        Self::push_time(&mut stmt, filter);
        if let Some((at, id)) = &filter.after.events {
            stmt.push(" AND (received_at > ")
                .bind(*at)
                .push(" OR (received_at = ")
                .bind(*at)
                .push(" AND id > ")
                .bind(id.as_str())
                .push("))");
        }
        stmt.push(" ORDER BY received_at, id LIMIT ")
            .bind(filter.limit.max(1) as i64);
        let records: Vec<EventRecord> = Self::read_all::<EventRow, _>(&self.pool, &stmt).await?;
        Ok(records.into_iter().map(|r| r.event).collect())
    }

    async fn delete_event(&self, id: &str) -> Result<bool> {
        let _writing = self.log.other_write().await;
        let stmt = Self::stmt("DELETE FROM events WHERE id = ?").arg(id);
        Ok(D::execute(&self.pool, &stmt).await? > 0)
    }
}
