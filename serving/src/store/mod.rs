//! Durable storage behind one interface with two engines: SQLite (embedded,
//! the default) and PostgreSQL. Both run the same integration suite; the SQL
//! is written once (see [`sql`]) and only placeholders and column types differ.
//!
//! The store knows nothing of HTTP or models: it keeps the interaction log,
//! registrations, events and the persisted profiles, and erases a user's rows
//! in one transaction.

mod sql;
mod sqlite_log;
mod tail;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use features::{Interaction, Profile, UserRegistration};
use serde::{Deserialize, Serialize};

pub use sql::{sqlite_sidecars, PostgresStore, SqliteStore, MAX_TAIL};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the log writer has stopped")]
    WriterStopped,
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    #[error("unsupported database URL {0:?}: use sqlite://… or postgres://…")]
    UnsupportedUrl(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The event type interactions are listed under (they live in the log, not
/// the events table).
pub const INTERACTION_RECORDED: &str = "interaction.recorded";

/// One interaction as appended: the assigned sequence number, or `None` when
/// its id was already stored (a duplicate).
pub type Appended = Option<i64>;

/// A registered user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    /// `registration.user_id` is always set (given or assigned).
    #[serde(flatten)]
    pub registration: UserRegistration,
    #[serde(with = "features::interaction::rfc3339_micros")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

impl UserRecord {
    pub fn user_id(&self) -> &str {
        self.registration.user_id.as_deref().unwrap_or_default()
    }
}

/// A stored event (SPEC §2.2) and the user it concerns, when it names one.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    pub event: features::Event,
    pub user_id: Option<String>,
}

/// Where a list continues: the sort key of the last item returned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCursor {
    /// Last `(received_at µs, id)` taken from the events table.
    pub events: Option<(i64, String)>,
    /// Last interaction `seq` taken from the log.
    pub interactions: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub kind: Option<String>,
    pub user_id: Option<String>,
    pub from_micros: Option<i64>,
    pub to_micros: Option<i64>,
    pub after: EventCursor,
    pub limit: usize,
}

#[derive(Clone, Debug, Default)]
pub struct ProfileFilter {
    pub spending_class: Option<u8>,
    pub life_stage: Option<String>,
    pub real_life_stage: Option<String>,
    pub topic: Option<String>,
    /// Last `userId` of the previous page.
    pub after: Option<String>,
    pub limit: usize,
}

/// What erasing a user removed, by kind of row.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Erasure {
    pub user: u64,
    pub interactions: u64,
    pub events: u64,
    pub profiles: u64,
}

impl Erasure {
    pub fn is_empty(&self) -> bool {
        self.user + self.interactions + self.events + self.profiles == 0
    }
}

/// An event waiting in the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxEvent {
    pub seq: i64,
    pub event: features::Event,
    pub user_id: Option<String>,
}

/// A stored interaction with its log position.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedInteraction {
    pub seq: i64,
    pub received_at_micros: i64,
    pub interaction: Interaction,
}

#[async_trait]
pub trait Store: Send + Sync + Debug {
    /// The engine's name (`SQLite`, `PostgreSQL`).
    fn backend(&self) -> &'static str;
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;

    /// Appends interactions in one transaction. Each gets its sequence
    /// number, or `None` when its id is already stored or appeared earlier in
    /// the batch (first wins).
    async fn append_interactions(
        &self,
        batch: Arc<[Interaction]>,
        received_at_micros: i64,
    ) -> Result<Vec<Appended>>;
    /// Interactions appended but not yet in the log's index tables.
    fn unindexed(&self) -> usize;
    /// Moves up to `max_rows` appended interactions into the log's index
    /// tables; returns how many it moved (0: nothing was waiting).
    async fn index_log(&self, max_rows: usize) -> Result<usize>;
    /// Moves committed pages from the write-ahead log into the database
    /// without waiting for (or blocking) readers and writers, off the commit
    /// path. Engines that manage this themselves do nothing.
    async fn checkpoint(&self) -> Result<()> {
        Ok(())
    }

    /// From now on, events are also queued in the outbox for the broker, in
    /// the transaction of the change that caused them: registrations, stored
    /// events, erasures and every profile write-back (`profile.updated`).
    fn set_outbox(&self, on: bool);
    /// The oldest queued events, in publishing order.
    async fn outbox(&self, limit: usize) -> Result<Vec<OutboxEvent>>;
    /// Forgets queued events up to `upto` (the broker has them).
    async fn outbox_done(&self, upto: i64) -> Result<()>;
    /// Events queued and not yet published.
    async fn outbox_depth(&self) -> Result<i64>;
    /// A user's interactions with `seq < before` (all when `None`), in log order.
    async fn interactions_of(
        &self,
        user_id: &str,
        before: Option<i64>,
    ) -> Result<Vec<LoggedInteraction>>;
    async fn interaction(&self, id: &str) -> Result<Option<LoggedInteraction>>;
    /// Deletes one interaction; returns its user when it existed.
    async fn delete_interaction(&self, id: &str) -> Result<Option<String>>;
    /// Highest sequence number ever assigned (0 for an empty log).
    async fn max_seq(&self) -> Result<i64>;
    /// Users with interactions after `seq`.
    async fn users_after_seq(&self, seq: i64) -> Result<Vec<String>>;

    /// Saves a registration and its `user.registered` event together.
    async fn insert_user(&self, user: &UserRecord, event: &EventRecord) -> Result<()>;
    async fn user(&self, user_id: &str) -> Result<Option<UserRecord>>;
    async fn list_users(&self, after: Option<&str>, limit: usize) -> Result<Vec<UserRecord>>;
    /// Removes every row of the user: registration, interactions, events,
    /// profile (and events about them not yet published). Returns what was
    /// removed and, when anything was, the `user.deleted` event recorded.
    async fn erase_user(&self, user_id: &str) -> Result<(Erasure, Option<features::Event>)>;

    async fn insert_event(&self, event: &EventRecord) -> Result<()>;
    async fn event(&self, id: &str) -> Result<Option<EventRecord>>;
    /// Stored events merged with the interaction log (as
    /// `interaction.recorded`), oldest first.
    async fn list_events(
        &self,
        filter: &EventFilter,
    ) -> Result<(Vec<features::Event>, EventCursor)>;
    async fn delete_event(&self, id: &str) -> Result<bool>;

    /// Upserts profiles and records that every profile is current up to
    /// interaction `seq`.
    /// With the outbox on, a `profile.updated` event is queued for each
    /// profile whose `announce` flag is set (same transaction).
    async fn save_profiles(&self, profiles: &[Profile], announce: &[bool], seq: i64) -> Result<()>;
    async fn profile(&self, user_id: &str) -> Result<Option<Profile>>;
    async fn list_profiles(&self, filter: &ProfileFilter) -> Result<Vec<Profile>>;
    /// User ids of stored profiles after `after`, ascending (for re-scoring).
    async fn profile_ids(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>>;
    /// The seq saved with the last [`Store::save_profiles`].
    async fn profiles_seq(&self) -> Result<i64>;
}

/// Opens (creating when needed) and migrates the database a URL names.
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(PostgresStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}

/// The user an event concerns: `payload.userId`, `payload.user_id` or the
/// actor of an interaction payload.
pub fn event_user(payload: &serde_json::Value) -> Option<String> {
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    text(&payload["userId"])
        .or_else(|| text(&payload["user_id"]))
        .or_else(|| text(&payload["actor"]["id"]))
}
