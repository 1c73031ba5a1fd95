//! The control jobs that change users (registration, edits, erasure), a
//! deleted interaction, and re-scoring: each runs alone on the writer, after
//! every group committed before it is folded, and builds the events it
//! emits; the store keeps them with the change.

use features::{Event, Profile};

use super::writer::Writer;
use super::{PipelineError, Result};
use crate::bus::new_event;
use crate::engine::{now_micros, Declared};
use crate::store::{Erasure, EventRecord, StoreError, UserRecord};

impl Writer {
    pub(super) async fn register(&self, record: UserRecord) -> Result<Profile> {
        // No personal data on the bus (SPEC §10): consumers read the user
        // from the API.
        let payload = serde_json::json!({
            "userId": record.user_id(),
            "createdAt": features::interaction::format_rfc3339(&record.created_at),
        });
        let event = user_event(new_event("user.registered", payload), record.user_id());
        let tombstone = self.tombstones.of(record.user_id());
        self.store.insert_user(&record, &event, &tombstone).await?;
        // Registering again lifts an erasure.
        self.tombstones.lift(&tombstone);
        let profile = self.declare(&record).await?;
        self.bus.publish(event.event);
        self.publish_profiles(vec![profile.clone()]);
        Ok(profile)
    }

    /// Gives the live profile what a user declared, scored at once.
    async fn declare(&self, record: &UserRecord) -> Result<Profile> {
        let user_id = record.user_id();
        let now = now_micros();
        let declared = Declared::of(&record.registration, chrono::Utc::now());
        if self.engine.needs_lookup(user_id) {
            self.load_user(user_id, None, now).await?;
        }
        self.engine.register(user_id, declared, now);
        self.engine
            .rescore(&[user_id], now, true)
            .pop()
            .or_else(|| self.engine.profile(user_id))
            .ok_or(PipelineError::Closed)
    }

    pub(super) async fn update_user(
        &self,
        user_id: &str,
        patch: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<UserUpdate>> {
        let Some(mut record) = self.store.user(user_id).await? else {
            return Ok(None);
        };
        let year = chrono::Datelike::year(&chrono::Utc::now());
        let (registration, changed) = record
            .registration
            .patched(patch, year)
            .map_err(PipelineError::Invalid)?;
        if changed.is_empty() {
            let profile = match self.engine.profile(user_id) {
                Some(p) => p,
                None => self.declare(&record).await?,
            };
            return Ok(Some(UserUpdate {
                user: record,
                profile,
                changed,
            }));
        }
        record.registration = registration;
        // Which fields changed, not their values (SPEC §10).
        let payload = serde_json::json!({"userId": user_id, "changed": changed});
        let event = user_event(new_event("user.updated", payload), user_id);
        if !self.store.update_user(&record, &event).await? {
            // Erased meanwhile: only the writer erases, so not possible;
            // answered as the user being gone all the same.
            return Ok(None);
        }
        let profile = self.declare(&record).await?;
        self.bus.publish(event.event);
        self.publish_profiles(vec![profile.clone()]);
        Ok(Some(UserUpdate {
            user: record,
            profile,
            changed,
        }))
    }

    pub(super) async fn delete_interaction(&self, id: &str) -> Result<Option<String>> {
        let Some(user) = self.store.delete_interaction(id).await? else {
            return Ok(None);
        };
        let now = now_micros();
        self.load_user(&user, None, now).await?;
        let profiles = self
            .engine
            .rescore(&[user.as_str()], now, self.bus.has_listeners());
        self.publish_profiles(profiles);
        Ok(Some(user))
    }

    pub(super) async fn erase(&self, user_id: &str) -> Result<Erasure> {
        // Hold the flusher off so it cannot write the profile back.
        let _flush = self.flush_lock.lock().await;
        let deleted = |erased: &Erasure| {
            new_event(
                "user.deleted",
                serde_json::json!({"userId": user_id, "removed": erased}),
            )
        };
        let tombstone = self.tombstones.of(user_id);
        let (erased, event) = self.store.erase_user(user_id, &tombstone, &deleted).await?;
        self.engine.forget(user_id);
        if !erased.is_empty() {
            // From now on what arrives for the user is dropped.
            self.tombstones.bury(&tombstone);
        }
        if let Some(event) = event {
            self.bus.publish(event);
        }
        Ok(erased)
    }

    pub(super) async fn rescore(&self, users: &[String]) -> Result<usize> {
        let now = now_micros();
        for u in users {
            if self.engine.needs_lookup(u) {
                self.load_user(u, None, now).await?;
            }
        }
        let refs: Vec<&str> = users.iter().map(String::as_str).collect();
        let profiles = self.engine.rescore(&refs, now, self.bus.has_listeners());
        self.publish_profiles(profiles);
        Ok(refs.len())
    }
}

/// The `profile.updated` events of the profiles whose `announce` flag is
/// set (what they say changed since they were last announced).
pub(super) fn announcements(profiles: &[Profile], announce: &[bool]) -> Result<Vec<EventRecord>> {
    profiles
        .iter()
        .zip(announce)
        .filter(|(_, a)| **a)
        .map(|(p, _)| {
            let payload =
                serde_json::to_value(p).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            Ok(user_event(
                new_event("profile.updated", payload),
                &p.user_id,
            ))
        })
        .collect()
}

/// A user's edit as applied: the user and profile now, and the fields
/// whose values changed (none: nothing was stored or emitted).
#[derive(Clone, Debug, PartialEq)]
pub struct UserUpdate {
    pub user: UserRecord,
    pub profile: Profile,
    pub changed: Vec<String>,
}

/// An event record for an event about a user.
pub fn user_event(event: Event, user_id: &str) -> EventRecord {
    EventRecord {
        event,
        user_id: Some(user_id.to_owned()),
    }
}
