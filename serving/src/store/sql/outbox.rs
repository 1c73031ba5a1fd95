//! The outbox: events queued for the broker in the transaction of the
//! change that caused them, read and cleared by the relay.

use async_trait::async_trait;

use super::rows::{corrupt, OutboxRow};
use super::{Engine, SqlStore};
use crate::store::{EventRecord, Outbox, OutboxEvent, Result};

impl<D: Engine> SqlStore<D> {
    /// Queues an event for the broker, in the caller's transaction.
    pub(super) async fn outbox_in(
        tx: &mut sqlx::Transaction<'static, D>,
        record: &EventRecord,
    ) -> Result<()> {
        let event = &record.event;
        let body = serde_json::to_string(event).map_err(|e| corrupt(e.to_string()))?;
        let stmt =
            Self::stmt("INSERT INTO outbox (event_id, type, user_id, body) VALUES (?, ?, ?, ?)")
                .arg(event.id.as_str())
                .arg(event.kind.as_str())
                .arg(record.user_id.as_deref())
                .arg(body);
        D::execute_in(tx, &stmt).await?;
        Ok(())
    }
}

#[async_trait]
impl<D: Engine> Outbox for SqlStore<D> {
    fn set_outbox(&self, on: bool) {
        self.log
            .outbox
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    fn outbox_on(&self) -> bool {
        self.log.outbox_on()
    }

    async fn outbox(&self, limit: usize) -> Result<Vec<OutboxEvent>> {
        let stmt = Self::stmt("SELECT seq, body, user_id FROM outbox ORDER BY seq LIMIT ?")
            .arg(limit as i64);
        Self::read_all::<OutboxRow, _>(&self.pool, &stmt).await
    }

    async fn outbox_done(&self, upto: i64) -> Result<()> {
        let _writing = self.log.other_write().await;
        let stmt = Self::stmt("DELETE FROM outbox WHERE seq <= ?").arg(upto);
        D::execute(&self.pool, &stmt).await?;
        Ok(())
    }

    async fn outbox_depth(&self) -> Result<i64> {
        let depth =
            Self::column::<i64>(&self.pool, &Self::stmt("SELECT COUNT(*) FROM outbox")).await?;
        Ok(depth.first().copied().unwrap_or(0))
    }
}
