//! Registrations: one row per user, the declared fields as JSON beside the
//! id, e-mail (unique) and creation time.

use async_trait::async_trait;
use features::Event;

use super::rows::UserRow;
use super::{unique_violation, Engine, SqlStore};
use crate::store::{Erasure, EventRecord, Result, StoreError, UserRecord, Users};

/// A registration's JSON body and the conflict a unique key reports.
fn body_of(user: &UserRecord) -> Result<String> {
    serde_json::to_string(&user.registration).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Which unique key a registration broke: its e-mail or its id.
fn taken(user: &UserRecord) -> impl FnOnce(&str) -> String + '_ {
    move |detail| {
        if detail.contains("email") {
            format!("a user with email {}", user.registration.email)
        } else {
            format!("user {}", user.user_id())
        }
    }
}

#[async_trait]
impl<D: Engine> Users for SqlStore<D> {
    async fn insert_user(
        &self,
        user: &UserRecord,
        event: &EventRecord,
        tombstone: &str,
    ) -> Result<()> {
        let _writing = self.log.other_write().await;
        let body = body_of(user)?;
        let mut tx = self.pool.begin().await?;
        let insert =
            Self::stmt("INSERT INTO users (user_id, email, body, created_at) VALUES (?, ?, ?, ?)")
                .arg(user.user_id())
                .arg(user.registration.email.as_str())
                .arg(body)
                .arg(user.created_at.timestamp_micros());
        D::execute_in(&mut tx, &insert)
            .await
            .map_err(|e| unique_violation(e, taken(user)))?;
        self.insert_event_in(&mut tx, event).await?;
        // Registering again lifts an erasure.
        let lift = Self::stmt("DELETE FROM erased_users WHERE tombstone = ?").arg(tombstone);
        D::execute_in(&mut tx, &lift).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update_user(&self, user: &UserRecord, event: &EventRecord) -> Result<bool> {
        let _writing = self.log.other_write().await;
        let body = body_of(user)?;
        let mut tx = self.pool.begin().await?;
        let update = Self::stmt("UPDATE users SET email = ?, body = ? WHERE user_id = ?")
            .arg(user.registration.email.as_str())
            .arg(body)
            .arg(user.user_id());
        let updated = D::execute_in(&mut tx, &update)
            .await
            .map_err(|e| unique_violation(e, taken(user)))?;
        if updated == 0 {
            return Ok(false);
        }
        self.insert_event_in(&mut tx, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn user(&self, user_id: &str) -> Result<Option<UserRecord>> {
        let stmt = Self::stmt("SELECT user_id, body, created_at FROM users WHERE user_id = ?")
            .arg(user_id);
        Self::read_one::<UserRow, _>(&self.pool, &stmt).await
    }

    async fn list_users(&self, after: Option<&str>, limit: usize) -> Result<Vec<UserRecord>> {
        let stmt = Self::stmt(
            "SELECT user_id, body, created_at FROM users WHERE user_id > ? \
             ORDER BY user_id LIMIT ?",
        )
        .arg(after.unwrap_or(""))
        .arg(limit as i64);
        Self::read_all::<UserRow, _>(&self.pool, &stmt).await
    }

    async fn erase_user(
        &self,
        user_id: &str,
        tombstone: &str,
        deleted: &(dyn for<'e> Fn(&'e Erasure) -> Event + Sync),
    ) -> Result<(Erasure, Option<Event>)> {
        let erased = {
            let _locks = self.log.all_writes().await;
            // The mark first: should a stop come between the files'
            // commits, the next start finishes the erasure (see
            // `erase_locked`).
            let mark = Self::stmt(
                "INSERT INTO erasures (user_id, tombstone) VALUES (?, ?) \
                 ON CONFLICT (user_id) DO UPDATE SET tombstone = excluded.tombstone",
            )
            .arg(user_id)
            .arg(tombstone);
            D::execute(&self.pool, &mark).await?;
            self.erase_locked(user_id, Some(tombstone), false, Some(deleted))
                .await?
        };
        if !erased.0.is_empty() {
            D::scrub(self).await?;
        }
        Ok(erased)
    }

    async fn tombstones(&self) -> Result<Vec<String>> {
        Self::column::<String>(
            &self.pool,
            &Self::stmt("SELECT tombstone FROM erased_users"),
        )
        .await
    }
}
