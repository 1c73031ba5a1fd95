//! The central promise of SPEC §3: for any history, in any arrival order, with
//! duplicates, the batch (polars) and incremental evaluators give the same
//! feature vectors, to 1e-9 relative (absolute for magnitudes below 1).
//! Histories hold what real feeds hold: returns (negative quantities),
//! refunds (negative amounts), void lines (quantity 0), targets outside the
//! catalog, and catalog items without a price or a category.

use std::collections::BTreeMap;

use features::incremental::fold_log;
use features::interaction::RawTimestamp;
use features::{Catalog, CatalogItem, FeatureParams, Interaction, RawInteraction};
use features_batch::io::frame_from_interactions;
use features_batch::{compute_features, feature_rows};
use proptest::prelude::*;
use std::borrow::Cow;

const DAY: i64 = 86_400_000_000;
/// 2025-06-01T00:00:00Z
const BASE: i64 = 1_748_736_000_000_000;
const TAGS: [&str; 5] = ["baby", "outdoor", "garden", "toys", "eco"];

fn catalog_strategy() -> impl Strategy<Value = Vec<CatalogItem>> {
    prop::collection::vec(
        (
            prop::option::weighted(0.8, 0..4usize),
            prop::option::weighted(0.75, 0.5f64..5_000.0),
            prop::collection::vec(0..TAGS.len(), 0..3),
        ),
        1..8,
    )
    .prop_map(|items| {
        items
            .into_iter()
            .enumerate()
            .map(|(i, (category, price, topics))| CatalogItem {
                target_id: format!("item-{i}"),
                target_type: "product".into(),
                category: category.map(|c| TAGS[c].into()),
                price,
                subcategory: None,
                brand: None,
                topics: topics.into_iter().map(|t| TAGS[t].to_string()).collect(),
            })
            .collect()
    })
}

/// One interaction: user, kind, time offset, target (known index or unknown),
/// value, quantity, whether it carries an id.
fn interaction_strategy(n_items: usize) -> impl Strategy<Value = Interaction> {
    (
        0..4usize,
        0..5usize,
        0..(400 * DAY),
        prop_oneof![3 => (0..n_items).prop_map(Some), 1 => Just(None)],
        prop::option::of(prop_oneof![4 => 0.0f64..2_000.0, 1 => -500.0f64..0.0, 1 => Just(0.0)]),
        prop::option::of(prop_oneof![
            6 => (1u32..5).prop_map(f64::from),
            2 => 0.1f64..3.0,
            1 => (-3i32..0).prop_map(f64::from),
            1 => Just(0.0),
        ]),
        any::<bool>(),
        any::<u32>(),
    )
        .prop_map(
            |(user, kind, offset, target, amount, quantity, with_id, salt)| {
                let kinds = ["PURCHACE", "SAVE", "INQUIRY", "VIEW", "SHARE"];
                let raw = RawInteraction {
                    id: with_id.then(|| Cow::Owned(format!("id-{salt}"))),
                    kind: Some(Cow::Borrowed(kinds[kind])),
                    timestamp: RawTimestamp::Micros(BASE + offset),
                    origin_id: Some(Cow::Borrowed("shop")),
                    origin_type: Some(Cow::Borrowed("web")),
                    actor_id: Some(Cow::Owned(format!("user-{user}"))),
                    actor_type: Some(Cow::Borrowed("user")),
                    target_id: Some(Cow::Owned(match target {
                        Some(i) => format!("item-{i}"),
                        None => format!("elsewhere-{}", salt % 3),
                    })),
                    target_type: Some(Cow::Borrowed("product")),
                    amount,
                    currency: amount.map(|_| Cow::Borrowed("EUR")),
                    quantity,
                };
                raw.validate().expect("generated interactions are valid")
            },
        )
}

/// A catalog, a history with duplicates (exact re-deliveries), the same
/// history in another arrival order, and a reference time: sometimes after
/// everything, sometimes in the middle (features then ignore what is later).
fn world() -> impl Strategy<Value = (Vec<CatalogItem>, Vec<Interaction>, Vec<Interaction>, i64)> {
    catalog_strategy().prop_flat_map(|catalog| {
        let n = catalog.len();
        (
            Just(catalog),
            prop::collection::vec(interaction_strategy(n), 0..60),
            prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            prop_oneof![3 => (0..(30 * DAY)).prop_map(|d| (true, d)), 1 => (0..(400 * DAY)).prop_map(|d| (false, d))],
        )
            .prop_flat_map(|(catalog, mut log, dups, (after_all, offset))| {
                if !log.is_empty() {
                    for d in dups {
                        let copy = log[d.index(log.len())].clone();
                        log.push(copy);
                    }
                }
                let latest = log.iter().map(Interaction::timestamp_micros).max().unwrap_or(BASE);
                let as_of = if after_all { latest + offset } else { BASE + offset };
                let shuffled = Just(log.clone()).prop_shuffle();
                (Just(catalog), Just(log), shuffled, Just(as_of))
            })
    })
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn assert_same(
    names: &[String],
    batch: &BTreeMap<String, Vec<f64>>,
    incremental: &BTreeMap<String, Vec<f64>>,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        batch.keys().collect::<Vec<_>>(),
        incremental.keys().collect::<Vec<_>>(),
        "different users"
    );
    for (user, b) in batch {
        let i = &incremental[user];
        prop_assert_eq!(b.len(), i.len());
        for ((name, x), y) in names.iter().zip(b).zip(i) {
            prop_assert!(
                close(*x, *y),
                "user {} feature {}: batch {} vs incremental {}",
                user,
                name,
                x,
                y
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn batch_equals_incremental((items, log, arrival, as_of) in world()) {
        let catalog = Catalog::new(items).expect("valid catalog");
        let spec = FeatureParams::default().fit(&catalog).expect("fit");
        let index = spec.index_catalog(&catalog);
        let names = spec.schema().names;

        let frame = frame_from_interactions(&log).expect("frame");
        let table = compute_features(&spec, &index, &frame, as_of).expect("batch");
        prop_assert_eq!(table.width(), names.len() + 1);
        let batch: BTreeMap<String, Vec<f64>> = feature_rows(&table).expect("rows").into_iter().collect();
        let incremental = fold_log(&spec, &index, &arrival, as_of);
        assert_same(&names, &batch, &incremental)?;
    }

    #[test]
    fn incremental_ignores_arrival_order((items, log, arrival, as_of) in world()) {
        let catalog = Catalog::new(items).expect("valid catalog");
        let spec = FeatureParams::default().fit(&catalog).expect("fit");
        let index = spec.index_catalog(&catalog);
        let names = spec.schema().names;
        let in_order = fold_log(&spec, &index, &log, as_of);
        let reordered = fold_log(&spec, &index, &arrival, as_of);
        assert_same(&names, &in_order, &reordered)?;
    }
}
