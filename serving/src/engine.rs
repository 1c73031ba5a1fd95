//! The live side of profiles: each active user's incremental feature state
//! (folded from the log), what they declared at registration, and what the
//! active model last said of them. Profiles are read from here, so a GET sees
//! an interaction as soon as its POST returned.
//!
//! Only the ingestion pipeline mutates states (one writer, in commit order);
//! readers take a shard lock for the time of a copy. Changed profiles are
//! marked dirty and written to the store in the background (see
//! [`crate::pipeline`]): they are derived data, rebuilt from the log when a
//! crash loses a write.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use chrono::{DateTime, Utc};
use features::definition::CatalogIndex;
use features::{
    FeatureSpec, FoldInput, Interaction, LifeStage, Profile, ProfileAbout, ProfileConfidence,
    ProfileScorer, Scores, UserFeatureState, UserRegistration,
};
use foldhash::fast::RandomState;
use ndarray::Array2;

const SHARDS: usize = 64;

/// One shard of the live users, by user id. Entries are boxed: a hash table
/// keeps up to half its slots empty after growing, and an empty slot of a
/// pointer costs 8 bytes where an inline entry cost its whole size (1M
/// users, `state_memory` bench: 1,199 → 906 resident bytes per user).
/// Keys are hashed with foldhash (seeded per process, as std's SipHash is):
/// every interaction hashes its user's id several times on the way in.
type Shard = HashMap<Box<str>, Box<Entry>, RandomState>;

/// What a user declared, as profiles use it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Declared {
    pub gender: Option<Box<str>>,
    pub real_life_stage: Option<LifeStage>,
}

impl Declared {
    pub fn of(registration: &UserRegistration, now: DateTime<Utc>) -> Declared {
        use chrono::Datelike;
        Declared {
            gender: registration.gender.as_deref().map(Box::from),
            real_life_stage: registration.real_life_stage(now.year()),
        }
    }
}

/// What the model said, compactly (topic names are shared with the model).
#[derive(Clone, Debug, Default)]
struct Scored {
    spending_class: Option<u8>,
    life_stage: Option<LifeStage>,
    spending_confidence: Option<f32>,
    life_stage_confidence: Option<f32>,
    topics: Box<[Arc<str>]>,
    model_version: Option<Arc<str>>,
}

#[derive(Clone, Debug)]
struct Entry {
    state: UserFeatureState,
    declared: Option<Declared>,
    scored: Scored,
    updated_at_micros: i64,
    /// The state's interaction count when `scored` was computed; scores are
    /// stale when it differs (see [`Engine::fold`]). `u32::MAX`: never.
    scored_count: u32,
    /// Fingerprint of what the profile said when last announced
    /// (`profile.updated` on the broker); 0: never.
    announced: u64,
}

impl Entry {
    fn new(now: i64) -> Entry {
        Entry {
            state: UserFeatureState::new(),
            declared: None,
            scored: Scored::default(),
            updated_at_micros: now,
            scored_count: u32::MAX,
            announced: 0,
        }
    }

    fn count(&self) -> u32 {
        u32::try_from(self.state.interaction_count()).unwrap_or(u32::MAX - 1)
    }

    /// Whether the scores predate the state.
    fn is_stale(&self) -> bool {
        self.scored_count != self.count()
    }

    /// The time scores are taken as of when the profile is updated at `now`:
    /// `now`, or the latest interaction if that is later.
    fn scoring_time(&self, now: i64) -> i64 {
        now.max(self.state.last_timestamp_micros().unwrap_or(now))
    }

    /// Scores a stale entry on its own, as of its last fold (the batched
    /// path is [`Engine::rescore_with`]; this one runs under the shard lock,
    /// so no fold can slip in between).
    fn refresh(&mut self, model: Option<&ActiveModel>) {
        if !self.is_stale() {
            return;
        }
        self.scored = match model.filter(|_| self.state.interaction_count() > 0) {
            Some(m) => {
                let as_of = self.scoring_time(self.updated_at_micros);
                m.scored(m.scorer.score(&self.state, as_of))
            }
            None => Scored::default(),
        };
        self.scored_count = self.count();
    }

    fn profile(&self, user_id: &str) -> Profile {
        let declared = self.declared.as_ref();
        Profile {
            user_id: user_id.to_owned(),
            about: ProfileAbout {
                gender: declared.and_then(|d| d.gender.as_deref()).map(String::from),
                spending_class: self.scored.spending_class,
                real_life_stage: declared.and_then(|d| d.real_life_stage),
                acting_life_stage: self.scored.life_stage,
            },
            topics: self.scored.topics.iter().map(|t| t.to_string()).collect(),
            confidence: ProfileConfidence {
                spending_class: self.scored.spending_confidence.map(round_confidence),
                acting_life_stage: self.scored.life_stage_confidence.map(round_confidence),
            },
            interaction_count: self.state.interaction_count(),
            model_version: self.scored.model_version.as_deref().map(String::from),
            updated_at: DateTime::from_timestamp_micros(self.updated_at_micros).unwrap_or_default(),
        }
    }
}

/// A fingerprint of what a profile says that messaging acts on — segments,
/// declared fields, topics, the model that said it — and not counts or times:
/// `profile.updated` goes to the broker when this changes, not on every
/// interaction (a busy user would otherwise announce every few seconds).
pub fn material(p: &Profile) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    p.about.spending_class.hash(&mut h);
    p.about.acting_life_stage.map(|l| l.as_str()).hash(&mut h);
    p.about.real_life_stage.map(|l| l.as_str()).hash(&mut h);
    p.about.gender.hash(&mut h);
    p.topics.hash(&mut h);
    p.model_version.hash(&mut h);
    // 0 means "never announced".
    h.finish().max(1)
}

/// Confidences are stored as `f32`; three decimals is what they are worth.
fn round_confidence(c: f32) -> f64 {
    (f64::from(c) * 1000.0).round() / 1000.0
}

/// The model in use with the names its profiles share.
#[derive(Debug)]
pub struct ActiveModel {
    pub scorer: ProfileScorer,
    version: Arc<str>,
    topics: HashMap<String, Arc<str>>,
}

impl ActiveModel {
    pub fn new(scorer: ProfileScorer) -> ActiveModel {
        let topics = scorer
            .topics
            .as_ref()
            .map(|t| {
                t.topics
                    .iter()
                    .map(|name| (name.clone(), Arc::from(name.as_str())))
                    .collect()
            })
            .unwrap_or_default();
        ActiveModel {
            version: Arc::from(scorer.version.as_str()),
            scorer,
            topics,
        }
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// What this model said, compactly: topic names shared with the model.
    fn scored(&self, s: Scores) -> Scored {
        Scored {
            spending_class: s.spending_class,
            life_stage: s.life_stage,
            spending_confidence: s.spending_class_confidence.map(|c| c as f32),
            life_stage_confidence: s.life_stage_confidence.map(|c| c as f32),
            topics: s
                .topics
                .iter()
                .map(|t| {
                    self.topics
                        .get(t)
                        .cloned()
                        .unwrap_or_else(|| Arc::from(t.as_str()))
                })
                .collect(),
            model_version: Some(self.version.clone()),
        }
    }
}

/// Per-user live state and the active model.
#[derive(Debug)]
pub struct Engine {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    model: RwLock<Option<Arc<ActiveModel>>>,
    dirty: Mutex<HashSet<Box<str>, RandomState>>,
    /// Highest interaction seq folded; every profile it touched is marked dirty
    /// before this moves.
    folded_seq: AtomicI64,
    plain: PlainFeatures,
    /// True while memory holds every user the store knows (an empty store at
    /// start, nothing dropped since): users not held are then new, and the
    /// pipeline skips looking them up.
    complete: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Now, in µs since the epoch.
pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

impl Default for Engine {
    fn default() -> Self {
        Engine::new()
    }
}

impl Engine {
    pub fn new() -> Engine {
        Engine {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::default(),
            model: RwLock::new(None),
            dirty: Mutex::new(HashSet::default()),
            folded_seq: AtomicI64::new(0),
            plain: PlainFeatures::new(),
            complete: AtomicBool::new(false),
        }
    }

    fn shard(&self, user_id: &str) -> MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(user_id) as usize) % SHARDS;
        lock(&self.shards[i])
    }

    pub fn model(&self) -> Option<Arc<ActiveModel>> {
        self.model
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Swaps the model atomically: requests holding the old one finish with
    /// it. States folded under other features (another spec or catalog) are
    /// dropped, to be rebuilt from the log; returns whether that happened.
    pub fn set_model(&self, model: ActiveModel) -> bool {
        let mut slot = self
            .model
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let compatible = slot.as_ref().is_some_and(|old| {
            old.scorer.spec == model.scorer.spec
                && old.scorer.index.catalog() == model.scorer.index.catalog()
        });
        if !compatible {
            for shard in self.shards.iter() {
                lock(shard).clear();
            }
            self.complete.store(false, Ordering::SeqCst);
        }
        *slot = Some(Arc::new(model));
        !compatible
    }

    /// Says whether memory holds every user the store knows.
    pub fn set_complete(&self, complete: bool) {
        self.complete.store(complete, Ordering::SeqCst);
    }

    /// Whether a user not held in memory may have rows in the store.
    pub fn needs_lookup(&self, user_id: &str) -> bool {
        !self.complete.load(Ordering::SeqCst) && !self.is_loaded(user_id)
    }

    pub fn is_loaded(&self, user_id: &str) -> bool {
        self.shard(user_id).contains_key(user_id)
    }

    /// Number of users held in memory.
    pub fn users(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Bytes held for users' states, scores and keys (hash-table slack
    /// excluded): what `/metrics` reports and the memory bench checks.
    pub fn state_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                lock(s)
                    .iter()
                    .map(|(k, e)| {
                        k.len()
                            + std::mem::size_of::<(Box<str>, Box<Entry>)>()
                            + std::mem::size_of::<Entry>()
                            + e.state.heap_size()
                            - std::mem::size_of::<UserFeatureState>()
                            + e.scored.topics.len() * std::mem::size_of::<Arc<str>>()
                    })
                    .sum::<usize>()
            })
            .sum()
    }

    /// The live profile of a user held in memory, scored first when the
    /// scores predate their last interactions.
    pub fn profile(&self, user_id: &str) -> Option<Profile> {
        let model = self.model();
        let mut shard = self.shard(user_id);
        let entry = shard.get_mut(user_id)?;
        entry.refresh(model.as_deref());
        Some(entry.profile(user_id))
    }

    /// The features states are folded with: the model's, or without a model
    /// the default parameters and no catalog (profiles then still carry
    /// counts; states are rebuilt from the log when a model arrives).
    fn features_of<'a>(
        &'a self,
        model: Option<&'a ActiveModel>,
    ) -> (&'a FeatureSpec, &'a CatalogIndex) {
        match model {
            Some(m) => (&m.scorer.spec, &m.scorer.index),
            None => (&self.plain.0, &self.plain.1),
        }
    }

    /// Installs a user loaded from the store: their log so far and their
    /// registration. Replaces whatever was held.
    pub fn load(&self, user_id: &str, log: &[Interaction], declared: Option<Declared>, now: i64) {
        let mut entry = Entry::new(now);
        entry.declared = declared;
        let model = self.model();
        let (spec, index) = self.features_of(model.as_deref());
        for i in log {
            entry.state.fold(spec, &FoldInput::new(i, index));
        }
        self.shard(user_id)
            .insert(Box::from(user_id), Box::new(entry));
    }

    /// Records a registration: the profile exists from now on.
    pub fn register(&self, user_id: &str, declared: Declared, now: i64) {
        let mut shard = self.shard(user_id);
        let entry = shard
            .entry(Box::from(user_id))
            .or_insert_with(|| Box::new(Entry::new(now)));
        entry.declared = Some(declared);
        entry.updated_at_micros = now;
        drop(shard);
        self.mark_dirty([user_id]);
    }

    pub fn forget(&self, user_id: &str) {
        self.shard(user_id).remove(user_id);
        lock(&self.dirty).remove(user_id);
    }

    pub fn mark_dirty<'a>(&self, users: impl IntoIterator<Item = &'a str>) {
        let mut dirty = lock(&self.dirty);
        for u in users {
            if !dirty.contains(u) {
                dirty.insert(Box::from(u));
            }
        }
    }

    /// Folds newly stored interactions (each exactly once, `max_seq` the
    /// highest among them) and marks every user touched dirty. With
    /// `want_profiles` (someone listens for `profile.updated`) they are
    /// scored now and their profiles returned; otherwise scoring waits until
    /// a profile is read or written back: a user with several interactions
    /// between those is scored once, not for each (under batched load most
    /// users are), and with the same result — scores are taken as of the
    /// last fold's time either way.
    pub fn fold(
        &self,
        interactions: &[&Interaction],
        max_seq: i64,
        now: i64,
        want_profiles: bool,
    ) -> Vec<Profile> {
        let model = self.model();
        let (spec, index) = self.features_of(model.as_deref());
        let mut touched: Vec<&str> = Vec::new();
        for i in interactions {
            let user = i.user_id();
            let mut shard = self.shard(user);
            // Look up before inserting: a key is allocated only for a new user.
            if !shard.contains_key(user) {
                shard.insert(Box::from(user), Box::new(Entry::new(now)));
            }
            let Some(entry) = shard.get_mut(user) else {
                continue;
            };
            touched.push(user);
            entry.state.fold(spec, &FoldInput::new(i, index));
            entry.updated_at_micros = now;
        }
        touched.sort_unstable();
        touched.dedup();
        let profiles = if want_profiles {
            self.rescore_with(&touched, model.as_deref(), Some(now), true)
        } else {
            self.mark_dirty(touched.iter().copied());
            Vec::new()
        };
        self.folded_seq.fetch_max(max_seq, Ordering::SeqCst);
        profiles
    }

    /// Scores the given users with the active model as of `now` (batched: one
    /// matrix through each model) and marks them dirty; returns their
    /// profiles when `want_profiles`. Users not held are skipped.
    pub fn rescore(&self, users: &[&str], now: i64, want_profiles: bool) -> Vec<Profile> {
        let model = self.model();
        self.rescore_with(users, model.as_deref(), Some(now), want_profiles)
    }

    /// Scores users (one matrix through each model). With `now`: all of
    /// them, as of `now`, which becomes their update time, and they are
    /// marked dirty. Without: only those whose scores are stale, as of their
    /// last fold (what [`Engine::fold`] defers). Scores of a state that
    /// changed meanwhile are dropped (it stays stale, and whoever reads it
    /// next scores it: see [`Entry::refresh`]).
    fn rescore_with(
        &self,
        users: &[&str],
        model: Option<&ActiveModel>,
        now: Option<i64>,
        want_profiles: bool,
    ) -> Vec<Profile> {
        let mut present: Vec<(&str, u32)> = Vec::with_capacity(users.len());
        let mut scores = Vec::new();
        if let Some(m) = model {
            let width = m.scorer.spec.len();
            let mut x = Vec::with_capacity(users.len() * width);
            let mut row = Vec::with_capacity(width);
            let mut scored_rows = Vec::new();
            for &u in users {
                let shard = self.shard(u);
                let Some(entry) = shard.get(u) else { continue };
                if now.is_none() && !entry.is_stale() {
                    continue;
                }
                present.push((u, entry.count()));
                if entry.state.interaction_count() > 0 {
                    let as_of = entry.scoring_time(now.unwrap_or(entry.updated_at_micros));
                    row.clear();
                    entry.state.write_vector(&m.scorer.spec, as_of, &mut row);
                    x.extend_from_slice(&row);
                    scored_rows.push(present.len() - 1);
                }
            }
            let x = Array2::from_shape_vec((scored_rows.len(), width), x)
                .unwrap_or_else(|_| Array2::zeros((0, width)));
            let out = m.scorer.score_matrix(&x);
            scores = vec![None; present.len()];
            for (i, s) in scored_rows.into_iter().zip(out) {
                scores[i] = Some(s);
            }
        } else {
            for &u in users {
                let shard = self.shard(u);
                let Some(entry) = shard.get(u) else { continue };
                if now.is_some() || entry.is_stale() {
                    present.push((u, entry.count()));
                }
            }
        }
        let mut profiles = Vec::with_capacity(present.len());
        for (i, &(u, count)) in present.iter().enumerate() {
            let mut shard = self.shard(u);
            let Some(entry) = shard.get_mut(u) else {
                continue;
            };
            if entry.count() != count {
                continue;
            }
            // A user with no interactions has no scores, and no model version.
            entry.scored = match (model, scores.get_mut(i).and_then(Option::take)) {
                (Some(m), Some(s)) => m.scored(s),
                _ => Scored::default(),
            };
            entry.scored_count = count;
            if let Some(now) = now {
                entry.updated_at_micros = now;
            }
            if want_profiles {
                profiles.push(entry.profile(u));
            }
        }
        if now.is_some() {
            self.mark_dirty(present.iter().map(|(u, _)| *u));
        }
        profiles
    }

    /// Takes the users whose profiles changed, and the seq up to which their
    /// profiles will then be current; their profiles are built later, chunk
    /// by chunk, with [`Engine::profiles_to_write`] (a later state is as
    /// good: it is at least as new as the seq).
    pub fn take_dirty_users(&self) -> (Vec<Box<str>>, i64) {
        let seq = self.folded_seq.load(Ordering::SeqCst);
        let users: Vec<Box<str>> = lock(&self.dirty).drain().collect();
        (users, seq)
    }

    /// The current profiles of these users, each with whether what it says
    /// changed since it was last announced (see [`material`]); users no
    /// longer held are skipped.
    pub fn profiles_to_write(&self, users: &[Box<str>]) -> (Vec<Profile>, Vec<bool>) {
        let names: Vec<&str> = users.iter().map(|u| &**u).collect();
        let model = self.model();
        self.rescore_with(&names, model.as_deref(), None, false);
        let mut profiles = Vec::with_capacity(users.len());
        let mut announce = Vec::with_capacity(users.len());
        for u in users {
            let mut shard = self.shard(u);
            let Some(entry) = shard.get_mut(&**u) else {
                continue;
            };
            // Folded again since the batch above scored it.
            entry.refresh(model.as_deref());
            let profile = entry.profile(u);
            let said = material(&profile);
            announce.push(said != entry.announced);
            entry.announced = said;
            profiles.push(profile);
        }
        (profiles, announce)
    }

    /// Marks profiles whose write failed to be written (and announced) again.
    pub fn retry_profiles<'a>(&self, users: impl IntoIterator<Item = &'a str>) {
        let users: Vec<&str> = users.into_iter().collect();
        for u in &users {
            if let Some(entry) = self.shard(u).get_mut(*u) {
                entry.announced = 0;
            }
        }
        self.mark_dirty(users);
    }

    pub fn note_seq(&self, seq: i64) {
        self.folded_seq.fetch_max(seq, Ordering::SeqCst);
    }

    /// Scores a history without storing anything (`POST /v1/score`).
    pub fn score_history(&self, user_id: &str, history: &[Interaction], as_of: i64) -> Profile {
        let mut entry = Entry::new(as_of);
        let model = self.model();
        let (spec, index) = self.features_of(model.as_deref());
        // Each id once, first wins: as the store would have kept them.
        let mut seen = HashSet::new();
        for i in history.iter().filter(|i| seen.insert(i.id.as_str())) {
            entry.state.fold(spec, &FoldInput::new(i, index));
        }
        if let Some(m) = model
            .as_deref()
            .filter(|_| entry.state.interaction_count() > 0)
        {
            entry.scored = m.scored(m.scorer.score(&entry.state, as_of));
        }
        entry.profile(user_id)
    }
}

/// The feature spec and (empty) catalog index states are folded with while
/// no model is loaded.
#[derive(Debug)]
struct PlainFeatures(FeatureSpec, CatalogIndex);

impl PlainFeatures {
    fn new() -> PlainFeatures {
        let spec = FeatureSpec {
            params: features::FeatureParams::default(),
            tags: Vec::new(),
        };
        let index = spec.index_catalog(&features::Catalog::default());
        PlainFeatures(spec, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(user: &str, id: &str) -> Interaction {
        Interaction::from_json(&serde_json::json!({
            "id": id, "type": "VIEW", "timestamp": "2026-10-01T12:00:00Z",
            "origin": {"id": "web", "type": "site"},
            "actor": {"id": user, "type": "user"},
            "target": {"id": "sku-1", "type": "product"},
        }))
        .expect("valid")
    }

    /// Every changed profile and its announce flag, as the flusher takes them.
    fn take_dirty(engine: &Engine) -> (Vec<Profile>, Vec<bool>) {
        let (users, _) = engine.take_dirty_users();
        engine.profiles_to_write(&users)
    }

    /// The committed demo model, with a few of its catalog's targets.
    fn committed_model() -> (ActiveModel, Vec<String>) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        let artifact = features::registry::Registry::new(&root)
            .load_current("profile")
            .expect("a promoted model in models/");
        let scorer = ProfileScorer::from_artifact(&artifact).expect("model loads");
        let targets = scorer.index.catalog().items()[..20]
            .iter()
            .map(|i| i.target_id.clone())
            .collect();
        (ActiveModel::new(scorer), targets)
    }

    #[test]
    fn lazy_scores_equal_eager_scores() {
        let engines = [Engine::new(), Engine::new()];
        let mut targets = Vec::new();
        for engine in &engines {
            let (model, t) = committed_model();
            engine.set_model(model);
            targets = t;
        }
        let kinds = ["VIEW", "SAVE", "PURCHACE", "SHARE"];
        let mut n = 0;
        // Groups folded at different times; users touched in several.
        for group in 0..6i64 {
            let batch: Vec<Interaction> = (0..25)
                .map(|k: usize| {
                    n += 1;
                    let mut json = serde_json::json!({
                        "id": format!("i{n}"), "type": kinds[n % 4],
                        "timestamp": format!("2026-10-{:02}T12:00:00Z", 1 + group * 3 + (k % 3) as i64),
                        "origin": {"id": "web", "type": "site"},
                        "actor": {"id": format!("u{}", (k * 7 + group as usize) % 9), "type": "user"},
                        "target": {"id": targets[n % targets.len()], "type": "product"},
                    });
                    if kinds[n % 4] == "PURCHACE" {
                        json["value"] = serde_json::json!({"amount": 10 + n, "currency": "USD"});
                    }
                    Interaction::from_json(&json).expect("valid")
                })
                .collect();
            let refs: Vec<&Interaction> = batch.iter().collect();
            let now = 1_790_000_000_000_000 + group * 1_000_000;
            let eager = engines[0].fold(&refs, group, now, true);
            assert!(!eager.is_empty(), "eager folding returns the profiles");
            assert!(engines[1].fold(&refs, group, now, false).is_empty());
            // Read some users between groups (scores them), leave others.
            if group % 2 == 0 {
                for u in ["u0", "u3"] {
                    assert_eq!(engines[0].profile(u), engines[1].profile(u));
                }
            }
        }
        for k in 0..9 {
            let u = format!("u{k}");
            let eager = engines[0].profile(&u).expect("held");
            assert!(eager.model_version.is_some() && eager.interaction_count > 0);
            assert_eq!(Some(eager), engines[1].profile(&u), "{u}");
        }
        // The write-back sees the same profiles.
        let (mut eager, _) = take_dirty(&engines[0]);
        let (mut lazy, _) = take_dirty(&engines[1]);
        eager.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        lazy.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        assert_eq!(eager.len(), 9);
        assert_eq!(eager, lazy);
    }

    #[test]
    fn profiles_are_announced_when_what_they_say_changes() {
        let engine = Engine::new();
        let declared = |gender: &str| Declared {
            gender: Some(gender.into()),
            real_life_stage: None,
        };
        engine.register("u", declared("f"), 1);
        let (_, announce) = take_dirty(&engine);
        assert_eq!(announce, vec![true], "a new profile is news");
        // Only the count changes: written, not announced.
        let i = view("u", "a");
        engine.fold(&[&i], 1, 2, false);
        let (profiles, announce) = take_dirty(&engine);
        assert_eq!(profiles[0].interaction_count, 1);
        assert_eq!(announce, vec![false]);
        engine.register("u", declared("m"), 3);
        let (_, announce) = take_dirty(&engine);
        assert_eq!(announce, vec![true]);
        // A failed write is announced again when retried.
        engine.retry_profiles(["u"]);
        let (_, announce) = take_dirty(&engine);
        assert_eq!(announce, vec![true]);
    }
}
