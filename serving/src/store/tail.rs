//! The log tail: interactions appended after the last indexer run, held in
//! memory so that appends need no random-order index writes.
//!
//! The log table is appended in `seq` order only. Its lookups by id (for
//! idempotency) and by user (for history) come from `interaction_ids` and
//! `interaction_users`, which the indexer fills behind the writer in sorted
//! bulk, and — for every seq above `indexed_seq` — from this tail. Together
//! they always cover the whole log; the tail is trimmed only after the
//! indexer's transaction has committed, so there is no gap between them. At
//! start the tail is rebuilt from the log rows above `meta.indexed_seq`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use foldhash::fast::RandomState;

#[derive(Debug, Default)]
pub(super) struct LogTail {
    /// The highest seq ever assigned (committed).
    pub last_seq: i64,
    /// Every seq up to this one is in the index tables.
    pub indexed_seq: i64,
    /// Tail entries in seq order (ascending).
    order: VecDeque<(i64, Arc<str>, Arc<str>)>,
    // foldhash, seeded per process: each append hashes every id and user
    // id here, and SipHash was a visible share of batched ingest.
    ids: HashMap<Arc<str>, i64, RandomState>,
    users: HashMap<Arc<str>, VecDeque<i64>, RandomState>,
}

impl LogTail {
    pub fn new(last_seq: i64, indexed_seq: i64) -> LogTail {
        LogTail {
            last_seq,
            indexed_seq,
            ..LogTail::default()
        }
    }

    /// Interactions not yet covered by the index tables.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn seq_of(&self, id: &str) -> Option<i64> {
        self.ids.get(id).copied()
    }

    /// The user's seqs in the tail, ascending.
    pub fn user_seqs(&self, user: &str) -> Vec<i64> {
        self.users
            .get(user)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Records a committed interaction (seqs arrive in ascending order).
    pub fn push(&mut self, seq: i64, id: &str, user: &str) {
        let id: Arc<str> = Arc::from(id);
        let user = match self.users.get_key_value(user) {
            Some((key, _)) => key.clone(),
            None => Arc::from(user),
        };
        self.ids.insert(id.clone(), seq);
        self.users.entry(user.clone()).or_default().push_back(seq);
        self.order.push_back((seq, id, user));
        self.last_seq = self.last_seq.max(seq);
    }

    /// The index tables now cover every seq up to `upto`: drop those entries.
    pub fn trim(&mut self, upto: i64) {
        while let Some((seq, _, _)) = self.order.front() {
            if *seq > upto {
                break;
            }
            if let Some((seq, id, user)) = self.order.pop_front() {
                self.unlink(seq, &id, &user);
            }
        }
        self.indexed_seq = self.indexed_seq.max(upto);
    }

    /// Forgets one tail entry (the interaction was deleted).
    pub fn remove(&mut self, seq: i64) {
        if let Ok(i) = self.order.binary_search_by_key(&seq, |(s, _, _)| *s) {
            if let Some((seq, id, user)) = self.order.remove(i) {
                self.unlink(seq, &id, &user);
            }
        }
    }

    /// Forgets every tail entry of a user (the user was erased).
    pub fn remove_user(&mut self, user: &str) {
        for seq in self.user_seqs(user) {
            self.remove(seq);
        }
    }

    fn unlink(&mut self, seq: i64, id: &str, user: &str) {
        if self.ids.get(id) == Some(&seq) {
            self.ids.remove(id);
        }
        if let Some(seqs) = self.users.get_mut(user) {
            // Trimming takes each user's oldest seq: no scan then.
            if seqs.front() == Some(&seq) {
                seqs.pop_front();
            } else {
                seqs.retain(|s| *s != seq);
            }
            if seqs.is_empty() {
                self.users.remove(user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LogTail;

    #[test]
    fn trimming_keeps_only_what_the_index_does_not_cover() {
        let mut tail = LogTail::new(10, 10);
        tail.push(11, "a", "u1");
        tail.push(12, "b", "u2");
        tail.push(13, "c", "u1");
        assert_eq!((tail.len(), tail.last_seq), (3, 13));
        assert_eq!(tail.user_seqs("u1"), vec![11, 13]);
        tail.trim(12);
        assert_eq!(tail.indexed_seq, 12);
        assert_eq!(tail.seq_of("a"), None);
        assert_eq!(tail.seq_of("c"), Some(13));
        assert_eq!(tail.user_seqs("u1"), vec![13]);
        assert!(tail.user_seqs("u2").is_empty());
        assert_eq!(tail.len(), 1);
    }

    #[test]
    fn removing_entries_forgets_their_ids_and_users() {
        let mut tail = LogTail::new(0, 0);
        tail.push(1, "a", "u1");
        tail.push(2, "b", "u1");
        tail.push(3, "c", "u2");
        tail.remove(2);
        assert_eq!(tail.seq_of("b"), None);
        assert_eq!(tail.user_seqs("u1"), vec![1]);
        tail.remove_user("u1");
        assert_eq!((tail.seq_of("a"), tail.user_seqs("u1")), (None, vec![]));
        assert_eq!(tail.seq_of("c"), Some(3));
        // Trimming past removed entries is harmless; last_seq never goes back.
        tail.trim(3);
        assert_eq!((tail.len(), tail.last_seq, tail.indexed_seq), (0, 3, 3));
    }
}
