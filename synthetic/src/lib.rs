//! A synthetic but realistic world of shoppers, deterministic for a seed:
//! what `micro-train generate` writes to files and what `micro-serve --demo`
//! plays live. No polars here, so the serving binary can use it.
//!
//! Latent traits per user drive behaviour, with noise:
//! - **life stage** (acting): from age and kids by the SPEC rules, but 15 % of
//!   users act like a neighbouring stage (a grandparent buying for a baby, a
//!   young parent living like a young adult). Drives category affinities and
//!   the hours and weekdays of activity.
//! - **spending class** 1–5: the quintile of a latent wealth score (age adds to
//!   it). Drives the price tier of what is viewed and bought, and how often a
//!   session ends in a purchase.
//! - **interests**: 2–4 categories drawn from life-stage affinities plus random
//!   ones, with Dirichlet-like weights; 85 % of sessions browse one of them.
//!
//! Activity is heavy-tailed (log-normal daily rate, σ = 1.1); 40 % of users
//! register during the window (so some have almost no history: cold start)
//! and some registered users never interact. Declared registration data has
//! realistic gaps. Life stages are skewed (about two users in five act as
//! mid-life adults). The data is as untidy as a real shop's:
//! - the catalog lists no price for a fifth of its items (never sold in the
//!   window of the price export), a placeholder price of 0 for 1 %, and no
//!   category for 3 %;
//! - 7 % of purchases are returned a few hours later (negative quantity,
//!   and a negative amount when the sale had one), twice that in fashion;
//!   2 % get a partial refund (a negative amount); 3 % are followed by a
//!   void correction line (quantity 0);
//! - a small share of interactions point at targets outside the catalog,
//!   and 0.5 % are delivered twice (same id), as real feeds do.
//!
//! Generation runs day by day: each (user, day) has its own RNG stream derived
//! from the seed, so any day can be generated on its own (in parallel per
//! user) and a day's interactions are the same whoever asks for them.

use chrono::{DateTime, SecondsFormat, Utc};
use features::{CatalogItem, LifeStage};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Gamma, LogNormal, Normal, Poisson};
use rand_pcg::Pcg64Mcg;
use rayon::prelude::*;

/// World settings.
#[derive(Clone, Debug)]
pub struct WorldParams {
    pub users: usize,
    pub days: u32,
    pub seed: u64,
    /// Midnight UTC of the first day.
    pub start: DateTime<Utc>,
    /// Mean interactions per user over 180 days of full activity.
    pub interactions_per_user_180d: f64,
}

/// Categories with their median price and which life stages favour them.
pub const CATEGORIES: [(&str, f64, &[LifeStage]); 20] = {
    use LifeStage::*;
    [
        ("baby", 35.0, &[YoungFamily]),
        ("toys", 25.0, &[YoungFamily, MatureFamily]),
        ("kids_fashion", 30.0, &[YoungFamily, MatureFamily]),
        ("school", 15.0, &[MatureFamily]),
        ("fashion", 45.0, &[YoungAdult, MidlifeAdult]),
        ("beauty", 25.0, &[YoungAdult, MidlifeAdult]),
        ("electronics", 180.0, &[YoungAdult, MidlifeAdult]),
        ("gaming", 60.0, &[YoungAdult, MatureFamily]),
        ("outdoor", 70.0, &[MidlifeAdult, YoungFamily]),
        ("sports", 50.0, &[YoungAdult, MatureFamily]),
        ("travel", 300.0, &[Senior, MidlifeAdult]),
        ("music", 20.0, &[YoungAdult]),
        ("books", 15.0, &[Senior, MidlifeAdult]),
        ("home", 60.0, &[MidlifeAdult, MatureFamily]),
        ("kitchen", 40.0, &[MidlifeAdult, YoungFamily]),
        ("garden", 35.0, &[Senior, MatureFamily]),
        ("diy", 45.0, &[MidlifeAdult, Senior]),
        ("health", 20.0, &[Senior]),
        ("pets", 25.0, &[Senior, YoungAdult]),
        ("wine", 30.0, &[Senior, MidlifeAdult]),
    ]
};

const ORIGINS: [(&str, &[&str]); 5] = [
    ("web", &["shop-web", "partner-blog", "marketplace"]),
    ("app", &["ios-app", "android-app"]),
    (
        "pos",
        &[
            "store-01", "store-02", "store-03", "store-04", "store-05", "store-06",
        ],
    ),
    (
        "partner",
        &["partner-01", "partner-02", "partner-03", "partner-04"],
    ),
    ("iot", &["smart-speaker", "smart-fridge"]),
];

const FIRST_NAMES: [&str; 16] = [
    "Ada", "Ben", "Chloé", "Dev", "Elif", "Femi", "Grace", "Hiro", "Ines", "Jonas", "Kai", "Lena",
    "Mateo", "Nora", "Omar", "Priya",
];
const LAST_NAMES: [&str; 12] = [
    "Andersen", "Brown", "Costa", "Dubois", "Erdem", "Fischer", "García", "Hughes", "Ito",
    "Jensen", "Kowalski", "Li",
];

/// A catalog item and its price tier (1–5).
#[derive(Clone, Debug)]
pub struct Item {
    pub id: String,
    /// Index into [`CATEGORIES`].
    pub category: usize,
    pub tier: u8,
    /// What the item sells for.
    pub price: f64,
    /// What the catalog file says it costs: the price, none (a fifth of the
    /// items) or a placeholder 0 (1 %).
    pub listed_price: Option<f64>,
    /// Whether the catalog file gives the category (97 %).
    pub listed_category: bool,
    pub topics: Vec<&'static str>,
    pub subcategory: String,
    pub brand: String,
}

/// The catalog.
#[derive(Debug)]
pub struct World {
    pub items: Vec<Item>,
    /// Item indices per (category, tier-1).
    by_category_tier: Vec<[Vec<u32>; 5]>,
}

/// Latent and declared facts of one user.
#[derive(Clone, Debug)]
pub struct Person {
    pub id: String,
    pub birth_year: i32,
    pub kids: u32,
    pub acting: LifeStage,
    wealth: f64,
    /// Spending class, 1–5.
    pub class: u8,
    /// (category, cumulative weight)
    interests: Vec<(usize, f64)>,
    daily_rate: f64,
    /// First day of activity (and of registration).
    pub first_day: u32,
    share_prob: f64,
    purchase_prob: f64,
}

fn stream(seed: u64, a: u64, b: u64) -> Pcg64Mcg {
    // SplitMix-style mixing so neighbouring (a, b) give unrelated streams.
    let mut z = seed
        .wrapping_add(a.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(b.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    Pcg64Mcg::seed_from_u64(z ^ (z >> 31))
}

pub fn build_catalog(params: &WorldParams) -> World {
    let mut rng = stream(params.seed, u64::MAX, 1);
    let n_items = (params.users / 5).clamp(2_000, 50_000);
    let mut by_category_tier: Vec<[Vec<u32>; 5]> =
        (0..CATEGORIES.len()).map(|_| Default::default()).collect();
    let noise = Normal::new(0.0, 0.2).expect("valid normal");
    let items = (0..n_items)
        .map(|i| {
            // Popular categories have more items (Zipf-like).
            let category = ((rng.random::<f64>().powf(1.6)) * CATEGORIES.len() as f64) as usize;
            let category = category.min(CATEGORIES.len() - 1);
            let tier = rng.random_range(1..=5u8);
            let (name, median, _) = CATEGORIES[category];
            let price =
                (median.ln() + (f64::from(tier) - 3.0) * 0.5 + noise.sample(&mut rng)).exp();
            let price = (price * 100.0).round() / 100.0;
            let mut topics = vec![name];
            if rng.random_bool(0.3) {
                let other = CATEGORIES[rng.random_range(0..CATEGORIES.len())].0;
                if other != name {
                    topics.push(other);
                }
            }
            if rng.random_bool(0.1) {
                topics.push("eco");
            }
            by_category_tier[category][usize::from(tier - 1)].push(i as u32);
            let price = price.max(0.5);
            let listed_price = match rng.random::<f64>() {
                x if x < 0.20 => None,
                x if x < 0.21 => Some(0.0),
                _ => Some(price),
            };
            Item {
                id: format!("sku-{i:06}"),
                category,
                tier,
                price,
                listed_price,
                listed_category: rng.random_bool(0.97),
                topics,
                subcategory: format!("{name}-{}", rng.random_range(1..=5)),
                brand: format!("{name}-brand-{}{}", tier, rng.random_range(0..4)),
            }
        })
        .collect();
    // Every (category, tier) needs at least one item to draw from.
    let mut world = World {
        items,
        by_category_tier,
    };
    for (c, &(name, median, _)) in CATEGORIES.iter().enumerate() {
        for t in 0..5 {
            if world.by_category_tier[c][t].is_empty() {
                let i = world.items.len();
                let price = (median * ((t as f64 - 2.0) * 0.5).exp() * 100.0).round() / 100.0;
                world.items.push(Item {
                    id: format!("sku-{i:06}"),
                    category: c,
                    tier: t as u8 + 1,
                    price,
                    listed_price: Some(price),
                    listed_category: true,
                    topics: vec![name],
                    subcategory: format!("{name}-1"),
                    brand: format!("{name}-brand-{}0", t + 1),
                });
                world.by_category_tier[c][t].push(i as u32);
            }
        }
    }
    world
}

pub fn make_people(params: &WorldParams) -> Vec<Person> {
    let end_year = (params.start + chrono::Duration::days(params.days.into()))
        .format("%Y")
        .to_string()
        .parse::<i32>()
        .unwrap_or(2026);
    let per_day = params.interactions_per_user_180d / 180.0;
    // Log-normal with σ = 1.1 and mean `per_day / active share`: 40 % of
    // users register at a uniform day inside the window (active half of it on
    // average) and 3 % never interact, so 0.97 × (0.6 + 0.4 / 2) of user-days
    // are active.
    let sigma: f64 = 1.1;
    let mean = per_day / (0.97 * 0.8);
    let rate = LogNormal::new(mean.ln() - sigma * sigma / 2.0, sigma).expect("valid log-normal");
    let mut people: Vec<Person> = (0..params.users)
        .map(|u| {
            let mut rng = stream(params.seed, u as u64, u64::MAX);
            let age: i32 = match rng.random::<f64>() {
                x if x < 0.18 => rng.random_range(18..35),
                x if x < 0.60 => rng.random_range(35..50),
                x if x < 0.88 => rng.random_range(50..65),
                _ => rng.random_range(65..90),
            };
            let kids_prob = if (27..56).contains(&age) { 0.45 } else { 0.1 };
            let kids = if rng.random_bool(kids_prob) {
                rng.random_range(1..=3)
            } else {
                0
            };
            let declared =
                LifeStage::from_declared(Some(age), Some(kids)).expect("age and kids known");
            let acting = if rng.random_bool(0.15) {
                *LifeStage::ALL.choose(&mut rng).expect("non-empty")
            } else {
                declared
            };
            let age_effect = match declared {
                LifeStage::YoungAdult => -0.4,
                LifeStage::MidlifeAdult | LifeStage::MatureFamily => 0.3,
                LifeStage::YoungFamily => 0.0,
                LifeStage::Senior => 0.1,
            };
            let wealth = Normal::new(age_effect, 1.0)
                .expect("valid")
                .sample(&mut rng);
            let mut interests: Vec<(usize, f64)> = Vec::new();
            let favoured: Vec<usize> = (0..CATEGORIES.len())
                .filter(|&c| CATEGORIES[c].2.contains(&acting))
                .collect();
            let n_interests = rng.random_range(2..=4);
            let gamma = Gamma::new(1.0, 1.0).expect("valid gamma");
            while interests.len() < n_interests {
                let c = if rng.random_bool(0.7) {
                    *favoured
                        .choose(&mut rng)
                        .expect("every stage favours some category")
                } else {
                    rng.random_range(0..CATEGORIES.len())
                };
                if !interests.iter().any(|(i, _)| *i == c) {
                    interests.push((c, gamma.sample(&mut rng) + 0.2));
                }
            }
            interests.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let total: f64 = interests.iter().map(|(_, w)| w).sum();
            let mut acc = 0.0;
            for (_, w) in &mut interests {
                acc += *w / total;
                *w = acc;
            }
            let first_day = if rng.random_bool(0.6) {
                0
            } else {
                rng.random_range(0..params.days.max(1))
            };
            let daily_rate = if rng.random_bool(0.03) {
                0.0
            } else {
                rate.sample(&mut rng).min(40.0)
            };
            Person {
                id: format!("u{u:07}"),
                birth_year: end_year - age,
                kids,
                acting,
                wealth,
                class: 0,
                interests,
                daily_rate,
                first_day,
                share_prob: if acting == LifeStage::YoungAdult {
                    0.08
                } else {
                    0.03
                },
                purchase_prob: 0.0,
            }
        })
        .collect();
    // Spending class: exact quintiles of latent wealth.
    let mut order: Vec<usize> = (0..people.len()).collect();
    order.sort_by(|&a, &b| {
        people[a]
            .wealth
            .total_cmp(&people[b].wealth)
            .then(a.cmp(&b))
    });
    let n = people.len().max(1);
    for (rank, &p) in order.iter().enumerate() {
        let class = (rank * 5 / n) as u8 + 1;
        people[p].class = class;
        people[p].purchase_prob = 0.07 + 0.015 * f64::from(class);
    }
    people
}

/// Hour-of-day weights (24) by acting life stage.
fn hour_weights(stage: LifeStage) -> [f64; 24] {
    let mut w = [0.2; 24];
    let peaks: &[(usize, f64)] = match stage {
        LifeStage::Senior => &[
            (8, 2.0),
            (9, 3.0),
            (10, 3.0),
            (11, 2.0),
            (15, 1.5),
            (16, 1.5),
        ],
        LifeStage::YoungFamily => &[(6, 1.0), (12, 1.5), (20, 3.0), (21, 3.5), (22, 2.5)],
        LifeStage::MatureFamily => &[
            (7, 1.0),
            (12, 1.5),
            (18, 2.0),
            (19, 2.5),
            (20, 2.5),
            (21, 2.0),
        ],
        LifeStage::YoungAdult => &[
            (13, 1.5),
            (21, 2.0),
            (22, 3.0),
            (23, 3.0),
            (0, 2.5),
            (1, 1.5),
        ],
        LifeStage::MidlifeAdult => &[(7, 1.5), (12, 2.5), (13, 2.0), (19, 2.0), (20, 2.0)],
    };
    for &(h, v) in peaks {
        w[h] += v;
    }
    // Daytime browsing for everyone.
    for x in &mut w[9..18] {
        *x += 0.5;
    }
    w
}

/// One generated interaction, before it becomes a row.
#[derive(Clone, Debug)]
pub struct Row {
    /// Microseconds since the Unix epoch.
    pub ts: i64,
    /// Index into the people.
    pub user: u32,
    /// Index into [`KINDS`].
    pub kind: u8,
    /// Catalog item index, or `u32::MAX - k` for an external target `k`.
    target: u32,
    origin: (u8, u8),
    pub amount: Option<f64>,
    pub quantity: Option<f64>,
    /// Position in the day once sorted; a re-delivery keeps its original's.
    pub seq: u32,
}

/// Session lengths are 1 + Geometric(0.3) failures: mean 1 + 0.7 / 0.3.
const SESSION_CONTINUE: f64 = 0.7;
const MEAN_SESSION_LENGTH: f64 = 1.0 + SESSION_CONTINUE / (1.0 - SESSION_CONTINUE);

/// Interaction types as the seed's feeds spell them.
pub const KINDS: [&str; 5] = ["PURCHACE", "SAVE", "INQUERY", "VIEW", "SHARE"];
const EXTERNAL_TARGETS: u32 = 5_000;

/// The interactions of one day, in time order, re-deliveries appended.
pub fn day_rows(params: &WorldParams, world: &World, people: &[Person], day: u32) -> Vec<Row> {
    let day_start = params.start.timestamp_micros() + i64::from(day) * 86_400_000_000;
    let weekday = (params.start + chrono::Duration::days(day.into()))
        .format("%u")
        .to_string()
        .parse::<u32>()
        .unwrap_or(1);
    let weekend = weekday >= 6;
    let mut rows: Vec<Row> = people
        .par_iter()
        .enumerate()
        .flat_map_iter(|(u, p)| {
            let mut out = Vec::new();
            if day < p.first_day || p.daily_rate == 0.0 {
                return out.into_iter();
            }
            let mut rng = stream(params.seed, u as u64, u64::from(day));
            let family = matches!(p.acting, LifeStage::YoungFamily | LifeStage::MatureFamily);
            let day_factor = if weekend && family {
                1.4
            } else if weekend {
                1.1
            } else {
                0.95
            };
            let sessions_mean = p.daily_rate * day_factor / MEAN_SESSION_LENGTH;
            let sessions = Poisson::new(sessions_mean)
                .map(|d| d.sample(&mut rng) as u32)
                .unwrap_or(0);
            let hours = hour_weights(p.acting);
            let hour_total: f64 = hours.iter().sum();
            for _ in 0..sessions {
                let mut pick = rng.random::<f64>() * hour_total;
                let mut hour = 23;
                for (h, w) in hours.iter().enumerate() {
                    if pick < *w {
                        hour = h;
                        break;
                    }
                    pick -= w;
                }
                let mut ts =
                    day_start + (hour as i64) * 3_600_000_000 + rng.random_range(0..3_600_000_000);
                let category = if rng.random_bool(0.85) {
                    let x = rng.random::<f64>();
                    p.interests
                        .iter()
                        .find(|(_, c)| x <= *c)
                        .unwrap_or(&p.interests[0])
                        .0
                } else {
                    rng.random_range(0..CATEGORIES.len())
                };
                let channel = match rng.random::<f64>() {
                    x if x < 0.45 => 0u8,
                    x if x < 0.80 => 1,
                    x if x < 0.92 => 3,
                    _ => 4,
                };
                let length = 1 + (rng.random::<f64>().ln() / SESSION_CONTINUE.ln()) as u32;
                for _ in 0..length.min(30) {
                    let target = if rng.random_bool(0.03) {
                        u32::MAX - rng.random_range(0..EXTERNAL_TARGETS)
                    } else {
                        let shift = Normal::new(0.0, 0.9).expect("valid").sample(&mut rng);
                        let tier = (f64::from(p.class) + shift).round().clamp(1.0, 5.0) as usize;
                        let pool = &world.by_category_tier[category][tier - 1];
                        pool[rng.random_range(0..pool.len())]
                    };
                    let r = rng.random::<f64>();
                    let known = target < u32::MAX - EXTERNAL_TARGETS;
                    let kind = if known && r < p.purchase_prob {
                        0
                    } else if r < p.purchase_prob + 0.08 {
                        1
                    } else if r < p.purchase_prob + 0.14 {
                        2
                    } else if r < p.purchase_prob + 0.14 + p.share_prob {
                        4
                    } else {
                        3
                    };
                    let mut origin = (channel, 0u8);
                    let (mut amount, mut quantity) = (None, None);
                    if kind == 0 {
                        if rng.random_bool(0.3) {
                            origin.0 = 2; // bought in a store
                        }
                        let q = if family && rng.random_bool(0.35) {
                            rng.random_range(2..=4)
                        } else {
                            1
                        };
                        quantity = Some(f64::from(q));
                        if origin.0 == 2 || rng.random_bool(0.6) {
                            let price = world.items[target as usize].price;
                            let paid = price * f64::from(q) * rng.random_range(0.85..=1.0);
                            amount = Some((paid * 100.0).round() / 100.0);
                        }
                    }
                    origin.1 = rng.random_range(0..ORIGINS[origin.0 as usize].1.len()) as u8;
                    let row = Row {
                        ts,
                        user: u as u32,
                        kind,
                        target,
                        origin,
                        amount,
                        quantity,
                        seq: 0,
                    };
                    if kind == 0 {
                        out.extend(after_purchase(&mut rng, &row, CATEGORIES[category].0));
                    }
                    out.push(row);
                    ts += rng.random_range(5_000_000..240_000_000);
                }
            }
            out.into_iter()
        })
        .collect();
    rows.sort_by_key(|r| r.ts);
    for (i, r) in rows.iter_mut().enumerate() {
        r.seq = i as u32;
    }
    // Re-deliveries: 0.5 % of rows appear again a little later (same id).
    let mut rng = stream(params.seed, u64::MAX - 1, u64::from(day));
    let n = rows.len();
    for i in 0..n {
        if rng.random_bool(0.005) {
            let dup = rows[i].clone();
            rows.push(dup);
        }
    }
    rows
}

/// What may follow a purchase the same day: a return (negative quantity,
/// and a negative amount when the sale had one), a partial refund (a
/// negative amount) or a void correction line (quantity 0).
fn after_purchase(rng: &mut Pcg64Mcg, sale: &Row, category: &str) -> Option<Row> {
    let return_prob = if category.contains("fashion") {
        0.14
    } else {
        0.07
    };
    let later = sale.ts + rng.random_range(600_000_000..21_600_000_000);
    let line = |amount, quantity| Row {
        ts: later,
        amount,
        quantity,
        ..sale.clone()
    };
    let x = rng.random::<f64>();
    if x < return_prob {
        Some(line(sale.amount.map(|a| -a), sale.quantity.map(|q| -q)))
    } else if x < return_prob + 0.02 {
        let share = rng.random_range(0.2..0.5);
        let refund = sale.amount.map(|a| -((a * share * 100.0).round() / 100.0));
        refund.map(|r| line(Some(r), None))
    } else if x < return_prob + 0.05 {
        Some(line(None, Some(0.0)))
    } else {
        None
    }
}

impl Row {
    /// The interaction's id: unique per (day, position), repeated by a
    /// re-delivery.
    pub fn id(&self, day: u32) -> String {
        format!("ix-{day:04}-{:07}", self.seq)
    }

    pub fn kind_name(&self) -> &'static str {
        KINDS[self.kind as usize]
    }

    /// `(id, type)` of where the interaction came from.
    pub fn origin(&self) -> (&'static str, &'static str) {
        let (channel, source) = ORIGINS[self.origin.0 as usize];
        (source[self.origin.1 as usize], channel)
    }

    fn is_external(&self) -> bool {
        self.target >= u32::MAX - EXTERNAL_TARGETS
    }

    /// `(id, type)` of what the interaction is about: a catalog product or a
    /// page outside the catalog.
    pub fn target(&self, world: &World) -> (String, &'static str) {
        if self.is_external() {
            (format!("page-{:05}", u32::MAX - self.target), "page")
        } else {
            (world.items[self.target as usize].id.clone(), "product")
        }
    }

    /// The interaction in the wire format of SPEC §2.1.
    pub fn to_json(&self, day: u32, world: &World, people: &[Person]) -> serde_json::Value {
        let (origin_id, origin_type) = self.origin();
        let (target_id, target_type) = self.target(world);
        let mut v = serde_json::json!({
            "id": self.id(day),
            "type": self.kind_name(),
            "timestamp": DateTime::from_timestamp_micros(self.ts)
                .unwrap_or_default()
                .to_rfc3339_opts(SecondsFormat::Micros, true),
            "origin": {"id": origin_id, "type": origin_type},
            "actor": {"id": people[self.user as usize].id, "type": "user"},
            "target": {"id": target_id, "type": target_type},
        });
        if let Some(amount) = self.amount {
            v["value"] = serde_json::json!({"amount": amount, "currency": "USD"});
        }
        if let Some(q) = self.quantity {
            v["quantity"] = serde_json::json!(q);
        }
        v
    }
}

impl World {
    pub fn category_name(&self, item: &Item) -> &'static str {
        CATEGORIES[item.category].0
    }

    /// The catalog in the shape training and serving read (SPEC §2.4).
    pub fn catalog_items(&self) -> Vec<CatalogItem> {
        self.items
            .iter()
            .map(|i| CatalogItem {
                target_id: i.id.clone(),
                target_type: "product".into(),
                category: i.listed_category.then(|| self.category_name(i).into()),
                price: i.listed_price,
                subcategory: Some(i.subcategory.clone()),
                brand: Some(i.brand.clone()),
                topics: i.topics.iter().map(|t| t.to_string()).collect(),
            })
            .collect()
    }
}

/// What a person declared at registration (with the gaps real forms have).
#[derive(Clone, Debug, PartialEq)]
pub struct DeclaredUser {
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
    pub gender: Option<&'static str>,
    pub birth_year: Option<i32>,
    pub adults: Option<i32>,
    pub kids: Option<i32>,
    pub marital_status: Option<&'static str>,
    pub income_band: Option<&'static str>,
    /// Microseconds since the Unix epoch.
    pub registered_at: i64,
}

impl DeclaredUser {
    /// The registration in the wire format of SPEC §2.3.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "userId": self.user_id,
            "email": self.email,
            "name": self.name,
            "gender": self.gender,
            "birthYear": self.birth_year,
            "adults": self.adults,
            "kids": self.kids,
            "maritalStatus": self.marital_status,
            "incomeBand": self.income_band,
        })
    }
}

/// Registration data of every person.
pub fn declared_users(params: &WorldParams, people: &[Person]) -> Vec<DeclaredUser> {
    let mut rng = stream(params.seed, u64::MAX, 2);
    const BANDS: [&str; 5] = ["<25k", "25-50k", "50-100k", "100-200k", "200k+"];
    people
        .iter()
        .enumerate()
        .map(|(u, p)| {
            let first = FIRST_NAMES.choose(&mut rng).expect("non-empty");
            let last = LAST_NAMES.choose(&mut rng).expect("non-empty");
            let email = format!("user{u}@example.{}", ["com", "org", "net"][u % 3]);
            let name = rng.random_bool(0.9).then(|| format!("{first} {last}"));
            let gender = match rng.random::<f64>() {
                x if x < 0.36 => Some("female"),
                x if x < 0.72 => Some("male"),
                x if x < 0.75 => Some("non_binary"),
                _ => None,
            };
            let birth_year = rng.random_bool(0.78).then_some(p.birth_year);
            let kids = rng.random_bool(0.7).then_some(p.kids as i32);
            let adults = rng
                .random_bool(0.6)
                .then(|| if rng.random_bool(0.6) { 2 } else { 1 });
            let marital_status = rng.random_bool(0.65).then(|| {
                if p.kids > 0 {
                    ["married", "partnered", "divorced"][rng.random_range(0..3)]
                } else {
                    ["single", "married", "partnered", "widowed"][rng.random_range(0..4)]
                }
            });
            let income_band = rng.random_bool(0.5).then(|| {
                let band = (i32::from(p.class) - 1 + rng.random_range(-1..=1)).clamp(0, 4);
                BANDS[band as usize]
            });
            let registered_at = params.start.timestamp_micros()
                + i64::from(p.first_day) * 86_400_000_000
                - rng.random_range(0..86_400_000_000);
            DeclaredUser {
                user_id: p.id.clone(),
                email,
                name,
                gender,
                birth_year,
                adults,
                kids,
                marital_status,
                income_band,
                registered_at,
            }
        })
        .collect()
}

impl Person {
    /// The interests that carry at least 20 % of attention, strongest first:
    /// the topic labels.
    pub fn topics(&self) -> Vec<&'static str> {
        let mut prev = 0.0;
        self.interests
            .iter()
            .filter_map(|(c, cum)| {
                let w = cum - prev;
                prev = *cum;
                (w >= 0.2).then_some(CATEGORIES[*c].0)
            })
            .collect()
    }
}
