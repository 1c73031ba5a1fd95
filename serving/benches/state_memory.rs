//! Memory of live state per active user, and the fold + score rate behind it.
//!
//! `cargo bench -p serving --bench state_memory -- [USERS] [PER_USER]`
//! (defaults 1,000,000 users × 8 interactions). Loads the promoted model from
//! `models/`, folds a synthetic stream through the engine exactly as the
//! ingestion pipeline does (batches of 10,000, each touched user scored per
//! batch, as a profile write-back after each would) and reports resident
//! memory growth and the engine's own count per user.

use std::path::Path;
use std::time::Instant;

use chrono::DateTime;
use features::registry::Registry;
use features::{Entity, Interaction, InteractionType, Money, ProfileScorer};
use serving::engine::{ActiveModel, Engine};

// The allocator micro-serve runs with: resident memory depends on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rss_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A small deterministic generator (xorshift): no RNG crate needed here.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let users = args.first().copied().unwrap_or(1_000_000);
    let per_user = args.get(1).copied().unwrap_or(8);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let artifact = Registry::new(&root)
        .load_current("profile")
        .expect("a promoted model in models/");
    let scorer = ProfileScorer::from_artifact(&artifact).expect("model loads");
    let targets: Vec<String> = scorer
        .index
        .catalog()
        .items()
        .iter()
        .map(|i| i.target_id.clone())
        .collect();
    let engine = Engine::new();
    engine.set_model(ActiveModel::new(scorer));
    engine.set_complete(true);

    let start_ts = DateTime::parse_from_rfc3339("2026-06-01T00:00:00Z")
        .expect("valid")
        .timestamp_micros();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let before = rss_bytes();
    let started = Instant::now();
    let total = users * per_user;
    let batch_size = 10_000;
    let mut batch = Vec::with_capacity(batch_size);
    let mut folded = 0usize;
    let mut seq = 0i64;
    for round in 0..per_user {
        for u in 0..users {
            let r = rng.next();
            let kind = InteractionType::ALL[(r % 5) as usize];
            let ts = start_ts + (round as i64) * 86_400_000_000 + (r % 86_400_000_000) as i64;
            batch.push(Interaction {
                id: format!("m-{round}-{u}"),
                kind,
                timestamp: DateTime::from_timestamp_micros(ts).expect("valid"),
                origin: Entity {
                    id: "shop".into(),
                    kind: "shop".into(),
                },
                actor: Entity {
                    id: format!("user-{u:07}"),
                    kind: "user".into(),
                },
                target: Entity {
                    id: targets[(r >> 20) as usize % targets.len()].clone(),
                    kind: "product".into(),
                },
                value: (kind == InteractionType::Purchase).then(|| Money {
                    amount: ((r >> 40) % 20_000) as f64 / 100.0,
                    currency: "USD".into(),
                }),
                quantity: None,
            });
            if batch.len() == batch_size {
                seq += batch.len() as i64;
                let refs: Vec<&Interaction> = batch.iter().collect();
                engine.fold(&refs, seq, ts, false);
                folded += batch.len();
                batch.clear();
                // The pipeline's flusher drains these; here nothing persists.
                let (users, _) = engine.take_dirty_users();
                let _ = engine.profiles_to_write(&users);
            }
        }
    }
    if !batch.is_empty() {
        let refs: Vec<&Interaction> = batch.iter().collect();
        engine.fold(&refs, seq + batch.len() as i64, start_ts, false);
        folded += batch.len();
        let (users, _) = engine.take_dirty_users();
        let _ = engine.profiles_to_write(&users);
    }
    let secs = started.elapsed().as_secs_f64();
    let grown = rss_bytes().saturating_sub(before);
    let held = engine.users();
    println!("users held:                 {held}");
    println!(
        "interactions folded:        {folded} of {total} in {secs:.1} s ({:.0}/s incl. scoring)",
        folded as f64 / secs
    );
    println!(
        "resident memory growth:     {:.1} MiB",
        grown as f64 / (1 << 20) as f64
    );
    println!(
        "  per user (RSS):           {:.0} bytes",
        grown as f64 / held.max(1) as f64
    );
    println!(
        "  per user (engine count):  {:.0} bytes",
        engine.state_bytes() as f64 / held.max(1) as f64
    );
}
