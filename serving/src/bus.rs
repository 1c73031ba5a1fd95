//! The event bus seam. In-process by default (a broadcast channel: listeners
//! in this process hear every event published after they subscribed); the
//! NATS JetStream bus plugs in behind the same trait.

use std::fmt::Debug;

use chrono::Utc;
use features::Event;
use tokio::sync::broadcast;

/// Publishes events to whoever listens.
pub trait Bus: Send + Sync + Debug {
    /// Publishes an event (`micro.events.<type>` on a broker).
    fn publish(&self, event: Event);
    /// Whether anyone would hear a publish now (lets publishers skip building
    /// events nobody reads).
    fn has_listeners(&self) -> bool;
    /// Listens to events published from now on.
    fn subscribe(&self) -> broadcast::Receiver<Event>;
}

/// Builds an event with a fresh time-ordered id.
pub fn new_event(kind: &str, payload: serde_json::Value) -> Event {
    Event {
        id: format!("ev_{}", uuid::Uuid::now_v7().simple()),
        kind: kind.to_owned(),
        payload,
        received_at: now(),
    }
}

/// Now, at the microsecond precision stores keep (so an event or record
/// reads back exactly as it was first answered).
pub fn now() -> chrono::DateTime<Utc> {
    let now = Utc::now();
    chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// The in-process bus.
#[derive(Debug)]
pub struct InProcessBus {
    tx: broadcast::Sender<Event>,
}

impl InProcessBus {
    /// `capacity` events are buffered per listener; a listener that falls
    /// further behind skips ahead (and is told how many it missed).
    pub fn new(capacity: usize) -> InProcessBus {
        let (tx, _) = broadcast::channel(capacity.max(1));
        InProcessBus { tx }
    }
}

impl Bus for InProcessBus {
    fn publish(&self, event: Event) {
        // No listener is not an error: the bus is fire-and-forget in process.
        let _ = self.tx.send(event);
    }

    fn has_listeners(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
