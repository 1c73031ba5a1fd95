//! `micro-train bench-fold`: how fast the incremental evaluator folds a real
//! log on one core, the way serving does it (look up the user's state and the
//! target's catalog entry by id, fold), and how much state it keeps per user.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use features::incremental::{FoldInput, UserFeatureState};
use features::InteractionType;
use features_batch::io::cols;

use crate::feature_table::{load, print_report};

#[derive(Debug)]
pub struct FoldBenchResult {
    pub interactions: usize,
    pub users: usize,
    pub best_secs: f64,
    pub rates: Vec<f64>,
    pub state_bytes_per_user: f64,
}

pub fn run(interactions: &Path, catalog: &Path, repeat: usize) -> Result<FoldBenchResult> {
    let inputs = load(interactions, catalog, features::FeatureParams::default())?;
    print_report(&interactions.display().to_string(), &inputs.report);
    let spec = &inputs.spec;
    let index = spec.index_catalog(&inputs.catalog);
    let df = &inputs.interactions;
    let user = df.column(cols::USER)?.str()?;
    let target = df.column(cols::TARGET)?.str()?;
    let kind = df.column(cols::KIND)?.i32()?;
    let ts = df.column(cols::TS)?.i64()?;
    let amount = df.column(cols::AMOUNT)?.f64()?;
    let quantity = df.column(cols::QUANTITY)?.f64()?;
    let n = df.height();
    let mut rates = Vec::new();
    let mut best = f64::INFINITY;
    let mut users = 0;
    let mut bytes = 0.0;
    for _ in 0..repeat.max(1) {
        let mut states: HashMap<&str, UserFeatureState> = HashMap::new();
        let started = Instant::now();
        for ((((u, t), k), (time, a)), q) in user
            .iter()
            .zip(target.iter())
            .zip(kind.iter())
            .zip(ts.iter().zip(amount.iter()))
            .zip(quantity.iter())
        {
            let (Some(u), Some(t), Some(k), Some(time)) = (u, t, k, time) else {
                continue;
            };
            let input = FoldInput {
                kind: InteractionType::from_index(k as usize).unwrap_or(InteractionType::View),
                timestamp_micros: time,
                target: index.get(t),
                amount: a,
                quantity: q,
            };
            match states.get_mut(u) {
                Some(s) => s.fold(spec, &input),
                None => {
                    let mut s = UserFeatureState::new();
                    s.fold(spec, &input);
                    states.insert(u, s);
                }
            }
        }
        let secs = started.elapsed().as_secs_f64();
        best = best.min(secs);
        rates.push(n as f64 / secs);
        users = states.len();
        bytes = states.values().map(|s| s.heap_size() as f64).sum::<f64>() / users.max(1) as f64;
        std::hint::black_box(&states);
    }
    Ok(FoldBenchResult {
        interactions: n,
        users,
        best_secs: best,
        rates,
        state_bytes_per_user: bytes,
    })
}
