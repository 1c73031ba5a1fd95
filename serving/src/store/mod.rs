//! Durable storage, by role: the interaction log, users, events, profiles,
//! the outbox and upkeep are traits of their own, so each consumer names
//! the part it uses (the outbox relay sees only [`Outbox`], the indexer only
//! [`Upkeep`]) and [`Store`] is all of them for the state that needs
//! everything. Two engines implement every role: SQLite (embedded, the
//! default) and PostgreSQL, with the SQL written once (see `sql/`); both run
//! the same integration suite.
//!
//! The store knows nothing of HTTP or models, and builds no domain events:
//! the service layer hands it the events to keep with a change, and the
//! store writes them in that change's transaction.

mod sql;
mod tail;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use features::{Event, Interaction, Profile, UserRegistration};
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

/// Identity conversions of rows read as they are (`(i64,)`, say).
impl From<std::convert::Infallible> for StoreError {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

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

/// The interaction log: appended in order, each id once; read by user, by
/// id and by time.
#[async_trait]
pub trait InteractionLog: Send + Sync {
    /// Appends interactions in one transaction. Each gets its sequence
    /// number, or `None` when its id is already stored or appeared earlier in
    /// the batch (first wins).
    async fn append_interactions(
        &self,
        batch: Arc<[Interaction]>,
        received_at_micros: i64,
    ) -> Result<Vec<Appended>>;
    /// A user's interactions with `seq < before` (all when `None`), in log order.
    async fn interactions_of(
        &self,
        user_id: &str,
        before: Option<i64>,
    ) -> Result<Vec<LoggedInteraction>>;
    async fn interaction(&self, id: &str) -> Result<Option<LoggedInteraction>>;
    /// Interactions matching the filter's user, receipt time and position
    /// (`after.interactions`), in log order; its `kind` is not looked at.
    async fn list_interactions(&self, filter: &EventFilter) -> Result<Vec<LoggedInteraction>>;
    /// Deletes one interaction; returns its user when it existed.
    async fn delete_interaction(&self, id: &str) -> Result<Option<String>>;
    /// Highest sequence number ever assigned (0 for an empty log).
    async fn max_seq(&self) -> Result<i64>;
    /// Users with interactions after `seq`.
    async fn users_after_seq(&self, seq: i64) -> Result<Vec<String>>;
}

/// Registered users.
#[async_trait]
pub trait Users: Send + Sync {
    /// Saves a registration and its `user.registered` event together, and
    /// lifts the user's `tombstone` if they were erased before.
    async fn insert_user(
        &self,
        user: &UserRecord,
        event: &EventRecord,
        tombstone: &str,
    ) -> Result<()>;
    /// Replaces a registration (its id and creation time stay) and saves the
    /// `user.updated` event with it; `false` when there is no such user.
    async fn update_user(&self, user: &UserRecord, event: &EventRecord) -> Result<bool>;
    async fn user(&self, user_id: &str) -> Result<Option<UserRecord>>;
    async fn list_users(&self, after: Option<&str>, limit: usize) -> Result<Vec<UserRecord>>;
    /// Removes every row of the user: registration, interactions, events,
    /// profile and events about them not yet published, in one
    /// transaction. When anything was removed, the user's `tombstone` is
    /// kept in the same transaction, and `deleted` builds the event
    /// recorded with the erasure, which is returned too. Freed space is
    /// scrubbed where the engine keeps deleted bytes.
    async fn erase_user(
        &self,
        user_id: &str,
        tombstone: &str,
        deleted: &(dyn for<'e> Fn(&'e Erasure) -> Event + Sync),
    ) -> Result<(Erasure, Option<Event>)>;
    /// The tombstones of erased users who have not registered again.
    async fn tombstones(&self) -> Result<Vec<String>>;
}

/// Stored events (SPEC §2.2), apart from interactions, which the log keeps.
#[async_trait]
pub trait Events: Send + Sync {
    async fn insert_event(&self, event: &EventRecord) -> Result<()>;
    async fn event(&self, id: &str) -> Result<Option<EventRecord>>;
    /// Events matching the filter's type, user, receipt time and position
    /// (`after.events`), oldest first.
    async fn list_events(&self, filter: &EventFilter) -> Result<Vec<Event>>;
    async fn delete_event(&self, id: &str) -> Result<bool>;
}

/// Profiles as last written back from the live states.
#[async_trait]
pub trait Profiles: Send + Sync {
    /// Upserts profiles and records that every profile is current up to
    /// interaction `seq`; `announced` (`profile.updated` events) go to the
    /// outbox in the same transaction when it is on.
    async fn save_profiles(
        &self,
        profiles: &[Profile],
        announced: &[EventRecord],
        seq: i64,
    ) -> Result<()>;
    async fn profile(&self, user_id: &str) -> Result<Option<Profile>>;
    async fn list_profiles(&self, filter: &ProfileFilter) -> Result<Vec<Profile>>;
    /// User ids of stored profiles after `after`, ascending (for re-scoring).
    async fn profile_ids(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>>;
    /// The seq saved with the last [`Profiles::save_profiles`].
    async fn profiles_seq(&self) -> Result<i64>;
}

/// Events waiting for the broker, written in the transaction of the change
/// that caused them.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// From now on, the events given with changes (registrations, stored
    /// events, erasures, profile write-backs) are also queued here.
    fn set_outbox(&self, on: bool);
    fn outbox_on(&self) -> bool;
    /// The oldest queued events, in publishing order.
    async fn outbox(&self, limit: usize) -> Result<Vec<OutboxEvent>>;
    /// Forgets queued events up to `upto` (the broker has them).
    async fn outbox_done(&self, upto: i64) -> Result<()>;
    /// Events queued and not yet published.
    async fn outbox_depth(&self) -> Result<i64>;
}

/// Keeping the database in shape behind the writers.
#[async_trait]
pub trait Upkeep: Send + Sync {
    /// The engine's name (`SQLite`, `PostgreSQL`).
    fn backend(&self) -> &'static str;
    /// Whether the database answers.
    async fn ping(&self) -> Result<()>;
    /// Interactions appended but not yet in the log's index tables.
    fn unindexed(&self) -> usize;
    /// Moves up to `max_rows` appended interactions into the log's index
    /// tables; returns how many it moved (0: nothing was waiting).
    async fn index_log(&self, max_rows: usize) -> Result<usize>;
    /// The secret of this name, stored as `fresh` when there is none yet.
    async fn secret(&self, name: &str, fresh: &str) -> Result<String>;
    /// Moves committed pages from the write-ahead log into the database
    /// without waiting for (or blocking) readers and writers, off the commit
    /// path. Engines that manage this themselves do nothing.
    async fn checkpoint(&self) -> Result<()>;
}

/// Every role: what the application state holds.
pub trait Store: InteractionLog + Users + Events + Profiles + Outbox + Upkeep + Debug {}

impl<T> Store for T where T: InteractionLog + Users + Events + Profiles + Outbox + Upkeep + Debug {}

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
