//! The one definition of Micro's behavioural features.
//!
//! Every feature below is a function of a user's *deduplicated* interactions
//! with `timestamp <= T` (the reference time "as of" which features are
//! computed) and of the catalog. Both evaluators — the incremental fold in
//! [`crate::incremental`] and the polars evaluator in `crate::batch` —
//! implement exactly this table; the parity property test holds them to it.
//!
//! Notation: `n` interactions; `n_k` of kind `k`; a *known* interaction has its
//! target in the catalog; a *priced* one's target also has a price, giving
//! `ln p = ln(price)`. Amounts are taken in a single currency.
//!
//! Purchase lines (`PURCHACE`) come in three sorts, as point-of-sale data has
//! them. With `q` the quantity (1 when absent) and `a` the amount (if sent):
//! - a **return** has `q < 0` or `a < 0`; it refunds `|a|` when sent, else
//!   `price × |q|` when priced, else an unknown amount;
//! - a **void** line (coupons, corrections) has `q = 0` and is no return;
//! - a **sale** is any other purchase line; it spends `a` when sent, else
//!   `price × q` when priced, else an unknown amount.
//!
//! Only sales count as purchases (`n_purchase`, spend, quantity, last
//! purchase); returns and voids are interactions like any other for
//! activity, rhythm, prices and interests. Net spend is `max(0, Σ spend −
//! Σ refund)`.
//!
//! Decay halves a weight every `half_life_days`:
//! `w_i = 2^(-(t_last - t_i)/H)` relative to the user's latest interaction
//! `t_last`, and absolute decayed totals multiply by `2^(-(T - t_last)/H)`,
//! so shares do not depend on `T` and nothing underflows for active users.
//! Time of day and weekday are taken in UTC. `ln1p(x) = ln(1 + x)`; a ratio
//! whose denominator is zero is 0. `weeks = max(1, (t_last - t_first)/week)`
//! is the span of activity in weeks, at least one.
//!
//! Totals (counts, spend, tenure) grow with the length of a history; rates,
//! shares and means do not, so the first 20 interactions of a user look like
//! a smaller sample of the same person. Both kinds are kept: a model sees
//! how much history it has (`log_interactions`) beside what it says.
//!
//! | feature | definition | what it reveals |
//! |---|---|---|
//! | `log_interactions` | `ln1p(n)` | activity |
//! | `log_decayed_interactions` | `ln1p(Σ w_i · 2^(-(T-t_last)/H))` | recent activity |
//! | `share_purchase` … `share_share` | `n_k / n` for each kind (purchases: sales) | how the user engages |
//! | `share_return` | `#returns / n` | returning habit |
//! | `log_purchases` | `ln1p(n_purchase)` | buying frequency |
//! | `log_total_spend` | `ln1p(net spend)` | spending level |
//! | `log_decayed_spend` | `ln1p(Σ w_i spend_i · 2^(-(T-t_last)/H))` | recent spending |
//! | `log_mean_order_value` | `ln1p(Σ spend / #spend known)` | basket value |
//! | `mean_log_order_value` | `Σ ln1p(spend) / #spend known` | typical basket, robust to outliers |
//! | `decayed_mean_log_order_value` | `Σ w_i ln1p(spend_i) / Σ w_i` over sales with known spend | recent typical basket |
//! | `refund_share` | `Σ refund / (Σ spend + Σ refund)` | how much bought goes back |
//! | `log_spend_per_interaction` | `ln1p(net spend / n)` | spend intensity |
//! | `log_spend_per_week` | `ln1p(net spend / weeks)` | spending rate |
//! | `log_purchases_per_week` | `ln1p(n_purchase / weeks)` | buying rate |
//! | `mean_quantity` | `Σ q / n_purchase` over sales | basket size |
//! | `mean_log_price` | mean `ln p` of priced interactions | price level |
//! | `mean_log_price_purchased` | mean `ln p` of priced sales | price level bought |
//! | `mean_log_price_browsed` | mean `ln p` of priced non-purchases | price level aspired to |
//! | `max_log_price` | max `ln p` over priced interactions (0 if none) | premium reach |
//! | `var_log_price` | variance of `ln p` over priced interactions | price range |
//! | `known_target_share` | `#known / n` | how much of the history the catalog explains |
//! | `log_tenure_days` | `ln1p((T - t_first)/day)` | how long we have known the user |
//! | `log_recency_days` | `ln1p((T - t_last)/day)` | lapse |
//! | `has_purchased` | 1 if any sale, else 0 | buyer or browser |
//! | `log_days_since_purchase` | `ln1p((T - t_last_sale)/day)`, 0 without sales | purchase lapse |
//! | `log_interactions_per_week` | `ln1p(n / weeks)` | frequency |
//! | `share_night` … `share_evening` | share of interactions at 0–6, 6–12, 12–18, 18–24 h | daily rhythm |
//! | `share_weekend` | share on Saturday or Sunday | weekly rhythm |
//! | `tag:<name>` | `Σ_{known, tag ∈ tags} w_i e_i / Σ_{known} w_i e_i` | current interests |
//! | `tag_lifetime:<name>` | `#{known, tag ∈ tags} / #known` (no decay, no weights) | lasting interests |
//! | `category:<name>` | `#{known, category = name} / #known` | what the user actually shops for |
//!
//! `tags` of a catalog item are its category (when it has one) and topics;
//! the vocabulary is fitted from the catalog (most frequent first, at most
//! `max_tags`). The `category:` family counts only the item's own category:
//! topics attached across categories blur `tag_lifetime:`, and categories
//! are what the topic baseline (and most merchandising) ranks by. `e_i` is
//! the engagement weight of the interaction's kind (`type_weights`). Time
//! differences are clamped at zero.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::interaction::InteractionType;
use crate::validation::ValidationErrors;

/// Bumped whenever a definition above changes meaning, so that artifacts built
/// with the old meaning are refused.
pub const FEATURE_DEFINITION_VERSION: u32 = 5;

pub const MICROS_PER_HOUR: i64 = 3_600_000_000;
pub const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;
pub const MICROS_PER_WEEK: i64 = 7 * MICROS_PER_DAY;

/// Names of the features that do not depend on the catalog, in vector order.
pub const BASE_FEATURES: [&str; 35] = [
    "log_interactions",
    "log_decayed_interactions",
    "share_purchase",
    "share_save",
    "share_inquiry",
    "share_view",
    "share_share",
    "share_return",
    "log_purchases",
    "log_total_spend",
    "log_decayed_spend",
    "log_mean_order_value",
    "mean_log_order_value",
    "decayed_mean_log_order_value",
    "refund_share",
    "log_spend_per_interaction",
    "log_spend_per_week",
    "log_purchases_per_week",
    "mean_quantity",
    "mean_log_price",
    "mean_log_price_purchased",
    "mean_log_price_browsed",
    "max_log_price",
    "var_log_price",
    "known_target_share",
    "log_tenure_days",
    "log_recency_days",
    "has_purchased",
    "log_days_since_purchase",
    "log_interactions_per_week",
    "share_night",
    "share_morning",
    "share_afternoon",
    "share_evening",
    "share_weekend",
];

/// Prefix of the decayed per-tag interest features.
pub const TAG_PREFIX: &str = "tag:";
/// Prefix of the undecayed per-tag interest features.
pub const TAG_LIFETIME_PREFIX: &str = "tag_lifetime:";
/// Prefix of the per-tag category shares.
pub const CATEGORY_PREFIX: &str = "category:";

/// Tunable constants of the definition (they are part of the schema hash).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureParams {
    /// Half-life of the time decay, in days.
    pub half_life_days: f64,
    /// Most interest tags kept from the catalog.
    pub max_tags: usize,
    /// Engagement weight per kind, in [`InteractionType::ALL`] order
    /// (purchase, save, inquiry, view, share).
    pub type_weights: [f64; 5],
}

impl Default for FeatureParams {
    fn default() -> Self {
        Self {
            half_life_days: 30.0,
            max_tags: 64,
            // A purchase says most about interest, a view least; saves and
            // shares are deliberate acts in between.
            type_weights: [5.0, 3.0, 2.0, 1.0, 3.0],
        }
    }
}

impl FeatureParams {
    /// linfa-style check before fitting.
    pub fn check(self) -> Result<FeatureParams, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if !(self.half_life_days.is_finite() && self.half_life_days > 0.0) {
            errors.push("half_life_days", "must be a positive number");
        }
        if self.max_tags == 0 || self.max_tags > u16::MAX as usize {
            errors.push("max_tags", "must be between 1 and 65535");
        }
        if self
            .type_weights
            .iter()
            .any(|w| !w.is_finite() || *w <= 0.0)
        {
            errors.push("type_weights", "must all be positive numbers");
        }
        errors.into_result(|| self)
    }

    /// Fits the tag vocabulary on a catalog.
    pub fn fit(self, catalog: &Catalog) -> Result<FeatureSpec, ValidationErrors> {
        let params = self.check()?;
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for item in catalog.items() {
            for tag in item.tags() {
                *counts.entry(tag).or_default() += 1;
            }
        }
        let mut tags: Vec<(&str, usize)> = counts.into_iter().collect();
        tags.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        tags.truncate(params.max_tags);
        Ok(FeatureSpec {
            params,
            tags: tags.into_iter().map(|(t, _)| t.to_owned()).collect(),
        })
    }

    /// Decay rate per microsecond: `w = exp(-Δµs · rate)`.
    pub fn decay_per_micro(&self) -> f64 {
        std::f64::consts::LN_2 / (self.half_life_days * MICROS_PER_DAY as f64)
    }

    pub fn type_weight(&self, kind: InteractionType) -> f64 {
        self.type_weights[kind.index()]
    }
}

/// Number of per-tag feature families (`tag:`, `tag_lifetime:`, `category:`).
pub const TAG_FAMILIES: usize = 3;

/// Where one tag's features sit in the vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagFeatureIndices {
    pub decayed: usize,
    pub lifetime: usize,
    pub category: usize,
}

/// The fitted definition: parameters plus the tag vocabulary. Serialisable,
/// stored in model artifacts, and applied unchanged by serving.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub params: FeatureParams,
    pub tags: Vec<String>,
}

impl FeatureSpec {
    pub fn schema(&self) -> FeatureSchema {
        let names = BASE_FEATURES
            .iter()
            .map(|n| n.to_string())
            .chain(self.tags.iter().map(|t| format!("{TAG_PREFIX}{t}")))
            .chain(
                self.tags
                    .iter()
                    .map(|t| format!("{TAG_LIFETIME_PREFIX}{t}")),
            )
            .chain(self.tags.iter().map(|t| format!("{CATEGORY_PREFIX}{t}")))
            .collect::<Vec<_>>();
        FeatureSchema::new(names, &self.params)
    }

    pub fn len(&self) -> usize {
        BASE_FEATURES.len() + TAG_FAMILIES * self.tags.len()
    }

    /// Positions of a tag's decayed, lifetime and category shares in the
    /// vector.
    pub fn tag_feature_indices(&self, tag: &str) -> Option<TagFeatureIndices> {
        let i = self.tags.iter().position(|t| t == tag)?;
        let at = |family: usize| BASE_FEATURES.len() + family * self.tags.len() + i;
        Some(TagFeatureIndices {
            decayed: at(0),
            lifetime: at(1),
            category: at(2),
        })
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Resolves the catalog against this spec's vocabulary for fast lookups.
    pub fn index_catalog(&self, catalog: &Catalog) -> CatalogIndex {
        let tag_index: HashMap<&str, u16> = self
            .tags
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i as u16))
            .collect();
        let targets = catalog
            .items()
            .iter()
            .map(|item| {
                let mut tags: Vec<u16> = item
                    .tags()
                    .filter_map(|t| tag_index.get(t).copied())
                    .collect();
                tags.sort_unstable();
                TargetInfo {
                    price: item.price,
                    ln_price: item.price.map(f64::ln),
                    tags: tags.into_boxed_slice(),
                    category: item
                        .category
                        .as_deref()
                        .and_then(|c| tag_index.get(c).copied()),
                }
            })
            .collect();
        CatalogIndex {
            catalog: catalog.clone(),
            targets,
        }
    }
}

/// What the features need of one catalog item.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetInfo {
    /// `None` when the catalog does not know the price.
    pub price: Option<f64>,
    pub ln_price: Option<f64>,
    /// Indices into [`FeatureSpec::tags`], ascending.
    pub tags: Box<[u16]>,
    /// The item's category as an index into [`FeatureSpec::tags`] (also in
    /// `tags`), when the vocabulary has it.
    pub category: Option<u16>,
}

/// The catalog resolved against a [`FeatureSpec`].
#[derive(Clone, Debug)]
pub struct CatalogIndex {
    catalog: Catalog,
    targets: Vec<TargetInfo>,
}

impl CatalogIndex {
    pub fn get(&self, target_id: &str) -> Option<&TargetInfo> {
        self.catalog.index_of(target_id).map(|i| &self.targets[i])
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// `(target_id, info)` pairs in catalog order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &TargetInfo)> {
        self.catalog
            .items()
            .iter()
            .map(|i| i.target_id.as_str())
            .zip(self.targets.iter())
    }
}

/// Ordered feature names with a stable hash, recorded by every artifact so that
/// serving can refuse a model built on other features.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSchema {
    pub definition_version: u32,
    pub names: Vec<String>,
    /// Value type of each feature, in `names` order (all `f64` today; kept
    /// explicit so that a typed feature changes the hash).
    pub types: Vec<String>,
    pub hash: String,
}

impl FeatureSchema {
    fn new(names: Vec<String>, params: &FeatureParams) -> FeatureSchema {
        let types = vec!["f64".to_owned(); names.len()];
        let canonical = serde_json::json!({
            "definition_version": FEATURE_DEFINITION_VERSION,
            "names": names,
            "types": types,
            "params": params,
        });
        let digest = Sha256::digest(canonical.to_string().as_bytes());
        FeatureSchema {
            definition_version: FEATURE_DEFINITION_VERSION,
            names,
            types,
            hash: format!("sha256:{}", hex::encode(digest)),
        }
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CatalogItem;

    fn item(id: &str, category: &str, topics: &[&str]) -> CatalogItem {
        CatalogItem {
            target_id: id.into(),
            target_type: "product".into(),
            category: Some(category.into()),
            price: Some(10.0),
            subcategory: None,
            brand: None,
            topics: topics.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn catalog() -> Catalog {
        Catalog::new(vec![
            item("a", "baby", &["outdoor"]),
            item("b", "baby", &[]),
            item("c", "toys", &["baby"]),
            item("d", "garden", &["outdoor"]),
        ])
        .expect("valid")
    }

    #[test]
    fn vocabulary_is_most_frequent_first_then_by_name_and_capped() {
        let spec = FeatureParams::default().fit(&catalog()).expect("fit");
        assert_eq!(spec.tags, ["baby", "outdoor", "garden", "toys"]);
        let capped = FeatureParams {
            max_tags: 2,
            ..Default::default()
        }
        .fit(&catalog())
        .expect("fit");
        assert_eq!(capped.tags, ["baby", "outdoor"]);
        let schema = capped.schema();
        assert_eq!(schema.len(), BASE_FEATURES.len() + 6);
        assert_eq!(schema.names[BASE_FEATURES.len() + 1], "tag:outdoor");
        assert_eq!(
            schema.names[BASE_FEATURES.len() + 3],
            "tag_lifetime:outdoor"
        );
        assert_eq!(
            schema.names.last().map(String::as_str),
            Some("category:outdoor")
        );
        let b = BASE_FEATURES.len();
        assert_eq!(
            capped.tag_feature_indices("outdoor"),
            Some(TagFeatureIndices {
                decayed: b + 1,
                lifetime: b + 3,
                category: b + 5
            })
        );
        let idx = capped.index_catalog(&catalog());
        // "c" is a toy (not in the capped vocabulary) about babies.
        let c = idx.get("c").expect("known");
        assert_eq!((&*c.tags, c.category), (&[0u16][..], None));
        let a = idx.get("a").expect("known");
        assert_eq!((&*a.tags, a.category), (&[0u16, 1][..], Some(0)));
        assert!(idx.get("d").expect("known").tags.len() == 1);
    }

    #[test]
    fn schema_hash_is_stable_and_sensitive_to_names_and_params() {
        let spec = FeatureParams::default().fit(&catalog()).expect("fit");
        let a = spec.schema();
        assert_eq!(a, spec.schema());
        assert!(a.hash.starts_with("sha256:") && a.hash.len() == 7 + 64);
        let mut other = spec.clone();
        other.tags.swap(0, 1);
        assert_ne!(a.hash, other.schema().hash);
        let mut other = spec.clone();
        other.params.half_life_days = 14.0;
        assert_ne!(a.hash, other.schema().hash);
    }

    #[test]
    fn bad_params_are_named() {
        let err = FeatureParams {
            half_life_days: 0.0,
            max_tags: 0,
            type_weights: [1.0, 1.0, -1.0, 1.0, 1.0],
        }
        .check()
        .expect_err("invalid");
        for f in ["half_life_days", "max_tags", "type_weights"] {
            assert!(err.has_field(f), "{err}");
        }
    }
}
