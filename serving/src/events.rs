//! The events service (the seed's): stored events and the interaction log
//! seen as one stream. Interactions are events too (`interaction.recorded`),
//! but they live in the log, not the events table; this is where the two are
//! looked up together and merged into one listing by receipt time.

use features::Event;

use crate::store::{
    EventCursor, EventFilter, EventRecord, Events, LoggedInteraction, Result, Store, StoreError,
};

/// The event type interactions are listed under.
pub const INTERACTION_RECORDED: &str = "interaction.recorded";

/// A logged interaction as the event that recorded it.
pub fn interaction_event(logged: LoggedInteraction) -> Result<Event> {
    let received_at = chrono::DateTime::from_timestamp_micros(logged.received_at_micros)
        .ok_or_else(|| {
            StoreError::Corrupt(format!("receipt time {}", logged.received_at_micros))
        })?;
    Ok(Event {
        payload: serde_json::to_value(&logged.interaction).map_err(|e| {
            StoreError::Corrupt(format!("interaction {}: {e}", logged.interaction.id))
        })?,
        id: logged.interaction.id,
        kind: INTERACTION_RECORDED.to_owned(),
        received_at,
    })
}

/// An event by id: a stored one, or an interaction's.
pub async fn find(store: &dyn Store, id: &str) -> Result<Option<EventRecord>> {
    if let Some(record) = Events::event(store, id).await? {
        return Ok(Some(record));
    }
    match store.interaction(id).await? {
        Some(logged) => Ok(Some(EventRecord {
            user_id: Some(logged.interaction.actor.id.clone()),
            event: interaction_event(logged)?,
        })),
        None => Ok(None),
    }
}

/// One page of stored events merged with the interaction log, oldest first
/// (stored events first on equal receipt times), and where the next page
/// starts.
pub async fn list(store: &dyn Store, filter: &EventFilter) -> Result<(Vec<Event>, EventCursor)> {
    let limit = filter.limit.max(1);
    let kind = filter.kind.as_deref();
    let stored = if kind.is_none_or(|k| k != INTERACTION_RECORDED) {
        Events::list_events(store, filter).await?
    } else {
        Vec::new()
    };
    let logged = if kind.is_none_or(|k| k == INTERACTION_RECORDED) {
        store.list_interactions(filter).await?
    } else {
        Vec::new()
    };
    let mut cursor = filter.after.clone();
    let mut out = Vec::with_capacity(limit);
    let (mut a, mut b) = (stored.into_iter().peekable(), logged.into_iter().peekable());
    while out.len() < limit {
        let take_stored = match (a.peek(), b.peek()) {
            (Some(e), Some(l)) => e.received_at.timestamp_micros() <= l.received_at_micros,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if take_stored {
            if let Some(e) = a.next() {
                cursor.events = Some((e.received_at.timestamp_micros(), e.id.clone()));
                out.push(e);
            }
        } else if let Some(l) = b.next() {
            cursor.interactions = Some(l.seq);
            out.push(interaction_event(l)?);
        }
    }
    Ok((out, cursor))
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
