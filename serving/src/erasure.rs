//! Erasure that sticks (SPEC §10). Once a user is erased, interactions and
//! events of theirs that arrive later — a NATS redelivery, a stream replay,
//! an HTTP retry of an old request — are dropped and counted, until the user
//! registers again. What is kept to know this is a tombstone: a keyed hash of
//! the user id (HMAC-SHA-256 under a key of the service's, truncated to 128
//! bits), never the id itself, so the table of tombstones does not list who
//! was erased.
//!
//! The tombstones are held in memory as well (one per erased user, 16
//! bytes) and checked on every ingest path; a user whose live state is held
//! cannot be erased (erasure drops it), so only users not held are hashed.

use std::collections::HashSet;
use std::sync::RwLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::engine::Engine;

/// Name of the tombstone key among the store's secrets.
pub const TOMBSTONE_KEY: &str = "tombstone_key";

/// A user's tombstone: the keyed hash of their id, as hex.
pub type Tombstone = String;

/// The tombstones of erased users and the key they are made with.
#[derive(Debug)]
pub struct Tombstones {
    key: Vec<u8>,
    erased: RwLock<HashSet<[u8; 16]>>,
}

impl Tombstones {
    /// `key_hex`: the service's tombstone key (see [`new_key`]); `stored`:
    /// the tombstones the store holds.
    pub fn new(key_hex: &str, stored: impl IntoIterator<Item = Tombstone>) -> Tombstones {
        let key = hex::decode(key_hex.trim()).unwrap_or_else(|_| key_hex.as_bytes().to_vec());
        let erased = stored.into_iter().filter_map(|t| parse(&t)).collect();
        Tombstones {
            key,
            erased: RwLock::new(erased),
        }
    }

    fn digest(&self, user_id: &str) -> [u8; 16] {
        // HMAC takes a key of any length: `new_from_slice` cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        mac.update(user_id.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0; 16];
        out.copy_from_slice(&full[..16]);
        out
    }

    /// The tombstone a user gets when erased.
    pub fn of(&self, user_id: &str) -> Tombstone {
        hex::encode(self.digest(user_id))
    }

    /// Whether the user was erased (and has not registered since). Users
    /// whose live state `engine` holds were not: erasure drops the state,
    /// and nothing loads an erased user.
    pub fn is_erased(&self, user_id: &str, engine: &Engine) -> bool {
        if self.is_empty() || engine.is_loaded(user_id) {
            return false;
        }
        let digest = self.digest(user_id);
        self.read().contains(&digest)
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Records an erasure (after the store has).
    pub fn bury(&self, tombstone: &str) {
        if let Some(t) = parse(tombstone) {
            self.write().insert(t);
        }
    }

    /// Forgets an erasure: the user registered again (after the store has).
    pub fn lift(&self, tombstone: &str) {
        if let Some(t) = parse(tombstone) {
            self.write().remove(&t);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashSet<[u8; 16]>> {
        self.erased
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<[u8; 16]>> {
        self.erased
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn parse(tombstone: &str) -> Option<[u8; 16]> {
    hex::decode(tombstone).ok()?.try_into().ok()
}

/// A fresh tombstone key: 256 random bits, as hex.
pub fn new_key() -> String {
    use rand::RngCore;
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    hex::encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_are_keyed_hashes_not_ids() {
        let engine = Engine::new();
        let a = Tombstones::new(&new_key(), []);
        let b = Tombstones::new(&new_key(), []);
        let t = a.of("ann@example.com");
        assert_eq!(t.len(), 32, "128 bits as hex");
        assert!(!t.contains("ann"));
        assert_eq!(t, a.of("ann@example.com"), "the same under one key");
        assert_ne!(t, b.of("ann@example.com"), "another key, another hash");
        assert!(!a.is_erased("ann@example.com", &engine));
        a.bury(&t);
        assert!(a.is_erased("ann@example.com", &engine));
        assert!(!a.is_erased("bob", &engine));
        let reopened = Tombstones::new(&hex::encode(&a.key), [t.clone()]);
        assert!(reopened.is_erased("ann@example.com", &engine));
        a.lift(&t);
        assert!(!a.is_erased("ann@example.com", &engine));
    }

    #[test]
    fn a_user_held_in_memory_is_not_erased() {
        let engine = Engine::new();
        let tombstones = Tombstones::new(&new_key(), []);
        tombstones.bury(&tombstones.of("u1"));
        assert!(tombstones.is_erased("u1", &engine));
        engine.register("u1", crate::engine::Declared::default(), 1);
        assert!(!tombstones.is_erased("u1", &engine));
    }
}
