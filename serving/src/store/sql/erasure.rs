//! Erasing a user: every row of theirs, across the log, its index tables,
//! events, the profile, the registration and the outbox, in one
//! transaction, the user's tombstone (see `crate::erasure`), and the mark
//! that makes a start finish an erasure a stop interrupted.

use features::Event;

use super::{Engine, SqlStore};
use crate::store::{Erasure, EventRecord, Result};

impl<D: Engine> SqlStore<D> {
    /// Removes every row of a user in one transaction, then the user's
    /// erasure mark; call with every write lock held (or before serving).
    /// `finishing`: an erasure a crash interrupted, whose files may have
    /// committed apart — the log is searched by its user column (a full
    /// scan) rather than through index entries that may be gone. `deleted`
    /// builds the event recorded with it, when anything was removed (none
    /// when finishing at start: nothing is announced then); `tombstone` is
    /// kept with it.
    pub(super) async fn erase_locked(
        &self,
        user_id: &str,
        tombstone: Option<&str>,
        finishing: bool,
        deleted: Option<&(dyn for<'e> Fn(&'e Erasure) -> Event + Sync)>,
    ) -> Result<(Erasure, Option<Event>)> {
        let tail = self.log.tail().user_seqs(user_id);
        let mut tx = self.pool.begin().await?;
        self.keep_high_water_mark(&mut tx).await?;
        // Ids first: they are found through the rows about to go.
        let ids = if finishing {
            Self::stmt(
                "DELETE FROM interaction_ids WHERE id IN \
                 (SELECT id FROM interactions WHERE user_id = ?) \
                 OR seq IN (SELECT seq FROM interaction_users WHERE user_id = ?)",
            )
            .arg(user_id)
            .arg(user_id)
        } else {
            Self::stmt(
                "DELETE FROM interaction_ids WHERE id IN (SELECT i.id FROM interactions i \
                 JOIN interaction_users u ON u.seq = i.seq WHERE u.user_id = ?)",
            )
            .arg(user_id)
        };
        D::execute_in(&mut tx, &ids).await?;
        let log = if finishing {
            Self::stmt("DELETE FROM interactions WHERE user_id = ?").arg(user_id)
        } else {
            let mut stmt = Self::stmt("DELETE FROM interactions WHERE ");
            Self::push_user_seqs(&mut stmt, user_id, &tail);
            stmt
        };
        let interactions = D::execute_in(&mut tx, &log).await?;
        let mut removed = [0u64; 4];
        for (table, n) in ["interaction_users", "events", "profiles", "users"]
            .into_iter()
            .zip(&mut removed)
        {
            let stmt = Self::stmt(&format!("DELETE FROM {table} WHERE user_id = ?")).arg(user_id);
            *n = D::execute_in(&mut tx, &stmt).await?;
        }
        let erased = Erasure {
            interactions,
            events: removed[1],
            profiles: removed[2],
            user: removed[3],
        };
        let event = deleted
            .filter(|_| !erased.is_empty())
            .map(|deleted| deleted(&erased));
        // Nothing about the user is published after their erasure, whether
        // or not a broker is configured now (rows queued while it was stay
        // until one is).
        let stmt = Self::stmt("DELETE FROM outbox WHERE user_id = ?").arg(user_id);
        D::execute_in(&mut tx, &stmt).await?;
        // An interrupted erasure is buried even when this pass found
        // little left: the first may have removed the rest.
        if let Some(tombstone) = tombstone.filter(|_| finishing || !erased.is_empty()) {
            let stmt = Self::stmt(
                "INSERT INTO erased_users (tombstone, erased_at) VALUES (?, ?) \
                 ON CONFLICT (tombstone) DO NOTHING",
            )
            .arg(tombstone)
            .arg(chrono::Utc::now().timestamp_micros());
            D::execute_in(&mut tx, &stmt).await?;
        }
        if self.log.outbox_on() {
            if let Some(event) = &event {
                let record = EventRecord {
                    event: event.clone(),
                    user_id: Some(user_id.to_owned()),
                };
                Self::outbox_in(&mut tx, &record).await?;
            }
        }
        tx.commit().await?;
        self.log.tail().remove_user(user_id);
        // Only once every file has committed (see `erasures`).
        let unmark = Self::stmt("DELETE FROM erasures WHERE user_id = ?").arg(user_id);
        D::execute(&self.pool, &unmark).await?;
        Ok((erased, event))
    }
}
