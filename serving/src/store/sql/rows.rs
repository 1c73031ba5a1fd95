//! The tables' rows as sqlx reads them (`FromRow`, by column name), and
//! their conversion into the domain types the roles hand out. A row that
//! does not convert is `Corrupt`: the store wrote it, so it cannot be the
//! client's fault.

use chrono::{DateTime, Utc};
use features::{Entity, Event, Interaction, InteractionType, Money, Profile, UserRegistration};

use crate::store::{EventRecord, LoggedInteraction, OutboxEvent, Result, StoreError, UserRecord};

pub(super) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::Corrupt(what.into())
}

pub(super) fn time(micros: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(micros).ok_or_else(|| corrupt(format!("time {micros}")))
}

/// The columns of `interactions`, in the order [`LOG_COLUMNS`] lists them.
#[derive(Debug, sqlx::FromRow)]
pub struct LogRow {
    seq: i64,
    id: String,
    user_id: String,
    kind: i64,
    ts: i64,
    origin_id: String,
    origin_type: String,
    actor_type: String,
    target_id: String,
    target_type: String,
    amount: Option<f64>,
    currency: Option<String>,
    quantity: Option<f64>,
    received_at: i64,
}

/// Every column of the log, for `SELECT` and `INSERT`.
pub(super) const LOG_COLUMNS: &str = "seq, id, user_id, kind, ts, origin_id, origin_type, \
     actor_type, target_id, target_type, amount, currency, quantity, received_at";

impl TryFrom<LogRow> for LoggedInteraction {
    type Error = StoreError;

    fn try_from(row: LogRow) -> Result<LoggedInteraction> {
        let kind = usize::try_from(row.kind)
            .ok()
            .and_then(InteractionType::from_index)
            .ok_or_else(|| corrupt(format!("interaction kind {}", row.kind)))?;
        Ok(LoggedInteraction {
            seq: row.seq,
            received_at_micros: row.received_at,
            interaction: Interaction {
                id: row.id,
                kind,
                timestamp: time(row.ts)?,
                origin: Entity {
                    id: row.origin_id,
                    kind: row.origin_type,
                },
                actor: Entity {
                    id: row.user_id,
                    kind: row.actor_type,
                },
                target: Entity {
                    id: row.target_id,
                    kind: row.target_type,
                },
                value: row.amount.map(|amount| Money {
                    amount,
                    currency: row.currency.unwrap_or_default(),
                }),
                quantity: row.quantity,
            },
        })
    }
}

/// A registration: its id and creation time in columns, the rest as JSON.
#[derive(Debug, sqlx::FromRow)]
pub struct UserRow {
    user_id: String,
    body: String,
    created_at: i64,
}

impl TryFrom<UserRow> for UserRecord {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<UserRecord> {
        let mut registration: UserRegistration = serde_json::from_str(&row.body)
            .map_err(|e| corrupt(format!("user {}: {e}", row.user_id)))?;
        registration.user_id = Some(row.user_id);
        Ok(UserRecord {
            registration,
            created_at: time(row.created_at)?,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct EventRow {
    id: String,
    #[sqlx(rename = "type")]
    kind: String,
    user_id: Option<String>,
    payload: String,
    received_at: i64,
}

impl TryFrom<EventRow> for EventRecord {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<EventRecord> {
        Ok(EventRecord {
            event: Event {
                payload: serde_json::from_str(&row.payload)
                    .map_err(|e| corrupt(format!("event {}: {e}", row.id)))?,
                id: row.id,
                kind: row.kind,
                received_at: time(row.received_at)?,
            },
            user_id: row.user_id,
        })
    }
}

/// A profile, stored whole as JSON beside its filter columns.
#[derive(Debug, sqlx::FromRow)]
pub struct BodyRow {
    body: String,
}

impl TryFrom<BodyRow> for Profile {
    type Error = StoreError;

    fn try_from(row: BodyRow) -> Result<Profile> {
        serde_json::from_str(&row.body).map_err(|e| corrupt(format!("profile: {e}")))
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct OutboxRow {
    seq: i64,
    body: String,
    user_id: Option<String>,
}

impl TryFrom<OutboxRow> for OutboxEvent {
    type Error = StoreError;

    fn try_from(row: OutboxRow) -> Result<OutboxEvent> {
        Ok(OutboxEvent {
            seq: row.seq,
            event: serde_json::from_str(&row.body)
                .map_err(|e| corrupt(format!("outbox {}: {e}", row.seq)))?,
            user_id: row.user_id,
        })
    }
}

/// What the tail is rebuilt from at open.
#[derive(Debug, sqlx::FromRow)]
pub struct TailRow {
    pub seq: i64,
    pub id: String,
    pub user_id: String,
}

/// An erasure begun and not known to be finished.
#[derive(Debug, sqlx::FromRow)]
pub struct ErasureMark {
    pub user_id: String,
    pub tombstone: Option<String>,
}
