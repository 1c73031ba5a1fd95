//! `micro-train train` and `micro-train evaluate`: fit the profile models on
//! a labelled history, evaluate them on users held out from training against
//! their baselines (also as cold start: first 5 and first 20 interactions),
//! and write a versioned artifact to the registry.
//!
//! Users are split by a seeded hash of their id: 15 % are test users, held
//! out of everything but the reported metrics; the other 85 % are
//! development users, on which families and settings are compared
//! ([`crate::select`]: a 70/15 holdout when there are many, k-fold
//! cross-validation when there are few). The chosen model is then refitted
//! on *all* labelled users for the artifact: the test metrics describe the
//! same model fitted without the test users.
//!
//! Every fit also sees training users as they looked after their first 5,
//! 20 or 50 interactions (one truncation per user, drawn by hash), so that
//! a model applied to a new user's short history has seen such histories
//! and learnt how much to trust them: fitted on full histories only, a
//! model reads a short history's small totals as a budget customer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use features::definition::CatalogIndex;
use features::incremental::{FoldInput, PurchaseLine, UserFeatureState};
use features::model::{ClassifierModel, ProfileModel, TopicRanker};
use features::registry::{sha256_file, DataFingerprint, Manifest, ModelEntry, Registry};
use features::{FeatureParams, FeatureSpec, InteractionType, LabelRow, LifeStage};
use features_batch::compute_features;
use features_batch::io::{cols, read_catalog, read_interactions, read_labels};
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array1, Array2};
use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::feature_table::{latest_timestamp, print_report};
use crate::metrics::{precision_at_k, print_table, ClassMetrics, ReportRow};
use crate::select::{
    majority, refit, select, stratified_subset, Candidate, CandidateScore, FitRows, Protocol,
};
use crate::topics::fit_topic_ranker;

pub use features::scoring::{CATALOG_FILE, LIFE_STAGE, SPENDING_CLASS, TOPICS};
/// Registry name of the profile models.
pub const MODEL_NAME: &str = "profile";
/// Histories the cold-start evaluation truncates test users to.
pub const COLD_START: [usize; 2] = [5, 20];
/// Histories training users are also seen at (one per user, by hash).
pub const TRUNCATIONS: [usize; 3] = [5, 20, 50];
const TOP_K: usize = 3;
/// Below this many development users, candidates are compared by k-fold
/// cross-validation instead of one validation split.
pub const KFOLD_BELOW: usize = 10_000;
/// Folds of the cross-validation.
pub const FOLDS: usize = 5;
/// Most rows a classifier fits on (full and truncated histories together).
/// Beyond this, a class-stratified, evenly spaced subset of users: a few
/// hundred weights are pinned down long before, while fitting time grows
/// with every row.
pub const MAX_FIT_ROWS: usize = 40_000;

/// Which part of the data a user belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Validation,
    Test,
}

/// A user's bucket, 0–99, from a seeded hash of the id: the split, the
/// cross-validation folds and the truncation a user is seen at all derive
/// from it. `bench/peer.py` computes the same.
pub fn bucket_of(seed: u64, user: &str) -> u64 {
    let digest = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(user.as_bytes())
        .finalize();
    u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8])) % 100
}

/// Seeded split by user id: stable across runs and data files.
pub fn split_of(seed: u64, user: &str) -> Split {
    match bucket_of(seed, user) {
        0..70 => Split::Train,
        70..85 => Split::Validation,
        _ => Split::Test,
    }
}

fn file_name(target: &str) -> String {
    format!("{}.json", target)
}

/// Label vocabulary of each target, in model class order.
fn vocabulary(target: &str, labels: &[LabelRow]) -> Vec<String> {
    match target {
        SPENDING_CLASS => (1..=5).map(|c| c.to_string()).collect(),
        LIFE_STAGE => LifeStage::ALL
            .iter()
            .map(|l| l.as_str().to_owned())
            .collect(),
        _ => {
            let set: std::collections::BTreeSet<&str> = labels
                .iter()
                .filter_map(|l| l.topics.as_ref())
                .flatten()
                .map(String::as_str)
                .collect();
            set.into_iter().map(str::to_owned).collect()
        }
    }
}

/// The class index of a user's label for `target`, if they have one.
fn label_class(target: &str, label: &LabelRow, vocab: &[String]) -> Option<usize> {
    let name = match target {
        SPENDING_CLASS => label.spending_class?.to_string(),
        LIFE_STAGE => label.life_stage?.as_str().to_owned(),
        // Topics are ranked, not classified: the "class" only marks users
        // whose label names at least one known topic.
        _ => {
            let topics = label.topics.as_ref()?;
            return topics.iter().any(|t| vocab.contains(t)).then_some(0);
        }
    };
    vocab.iter().position(|v| *v == name)
}

/// Per-user histories (deduplicated, time-ordered) of the users asked for,
/// as row numbers of the log: for truncated training rows, cold-start
/// evaluation and the topic baseline.
pub(crate) struct Histories {
    index: HashMap<String, usize, foldhash::fast::RandomState>,
    rows: Vec<Vec<usize>>,
}

impl Histories {
    /// Histories of the `wanted` users (`None`: everyone in the log).
    pub(crate) fn collect(log: &DataFrame, wanted: Option<&HashSet<&str>>) -> Result<Histories> {
        let users = log.column(cols::USER)?.str()?;
        // A plain slice: sorting looks a timestamp up ~20 times per row.
        let ts: Vec<i64> = log
            .column(cols::TS)?
            .i64()?
            .iter()
            .map(|t| t.unwrap_or(0))
            .collect();
        let hasher = foldhash::fast::RandomState::default;
        // Looked up by the log's text, owned only once per user: a `String`
        // per row cost more than everything else in collecting.
        let mut index: HashMap<String, usize, _> = HashMap::with_hasher(hasher());
        let mut rows: Vec<Vec<usize>> = Vec::new();
        for (row, user) in users.iter().enumerate() {
            let Some(user) = user else {
                continue;
            };
            let slot = match index.get(user) {
                Some(&slot) => slot,
                None if wanted.is_none_or(|w| w.contains(user)) => {
                    index.insert(user.to_owned(), rows.len());
                    rows.push(Vec::new());
                    rows.len() - 1
                }
                None => continue,
            };
            rows[slot].push(row);
        }
        // The first delivery of an id is kept, as the store and the batch
        // evaluator keep it. Per user: a set the size of one history stays
        // in cache, where one set of every id in the log did not (most of
        // the time of collecting went to its rehashing).
        let ids = log.column(cols::ID)?.str()?;
        let mut seen: HashSet<&str, _> = HashSet::with_hasher(hasher());
        for list in &mut rows {
            seen.clear();
            list.retain(|&r| seen.insert(ids.get(r).unwrap_or_default()));
            list.sort_unstable_by_key(|&r| (ts[r], r));
        }
        Ok(Histories { index, rows })
    }

    /// The users, in the order they first appear in the log.
    pub(crate) fn users(&self) -> impl Iterator<Item = &str> + '_ {
        let mut users: Vec<(&str, usize)> =
            self.index.iter().map(|(u, &i)| (u.as_str(), i)).collect();
        users.sort_unstable_by_key(|&(_, i)| i);
        users.into_iter().map(|(u, _)| u)
    }

    pub(crate) fn of(&self, user: &str) -> &[usize] {
        self.index
            .get(user)
            .map(|&i| self.rows[i].as_slice())
            .unwrap_or(&[])
    }
}

/// Typed access to the normalised log's columns.
pub(crate) struct LogColumns<'a> {
    kind: &'a polars::prelude::Int32Chunked,
    ts: &'a polars::prelude::Int64Chunked,
    target: &'a polars::prelude::StringChunked,
    amount: &'a polars::prelude::Float64Chunked,
    quantity: &'a polars::prelude::Float64Chunked,
}

impl<'a> LogColumns<'a> {
    pub(crate) fn new(log: &'a DataFrame) -> Result<LogColumns<'a>> {
        Ok(LogColumns {
            kind: log.column(cols::KIND)?.i32()?,
            ts: log.column(cols::TS)?.i64()?,
            target: log.column(cols::TARGET)?.str()?,
            amount: log.column(cols::AMOUNT)?.f64()?,
            quantity: log.column(cols::QUANTITY)?.f64()?,
        })
    }

    /// The feature vector a user had right after their first `k` interactions,
    /// as serving would have computed it then.
    pub(crate) fn vector_after(
        &self,
        spec: &FeatureSpec,
        index: &CatalogIndex,
        rows: &[usize],
        k: usize,
    ) -> Vec<f64> {
        let mut state = UserFeatureState::new();
        let mut as_of = 0;
        for &r in rows.iter().take(k) {
            let t = self.ts.get(r).unwrap_or(0);
            as_of = as_of.max(t);
            state.fold(
                spec,
                &FoldInput {
                    kind: InteractionType::from_index(self.kind.get(r).unwrap_or(3) as usize)
                        .unwrap_or(InteractionType::View),
                    timestamp_micros: t,
                    target: self.target.get(r).and_then(|t| index.get(t)),
                    amount: self.amount.get(r),
                    quantity: self.quantity.get(r),
                },
            );
        }
        state.vector(spec, as_of)
    }

    /// Baseline topics (SPEC §4): the user's top past categories ranked by
    /// net spend (sales less refunds); categories without spend follow, by
    /// how often the user touched them, then by name.
    fn top_categories(&self, index: &CatalogIndex, rows: &[usize], k: usize) -> Vec<String> {
        let mut by_category: HashMap<&str, (f64, usize)> = HashMap::new();
        for &r in rows {
            let Some(item) = self.target.get(r).and_then(|t| index.catalog().get(t)) else {
                continue;
            };
            let Some(category) = item.category.as_deref() else {
                continue;
            };
            let entry = by_category.entry(category).or_default();
            entry.1 += 1;
            if self.kind.get(r) == Some(InteractionType::Purchase.index() as i32) {
                match PurchaseLine::of(self.quantity.get(r), self.amount.get(r), item.price) {
                    PurchaseLine::Sale {
                        spend: Some(spend), ..
                    } => entry.0 += spend,
                    PurchaseLine::Return {
                        refund: Some(refund),
                    } => entry.0 -= refund,
                    _ => {}
                }
            }
        }
        let mut ranked: Vec<(&str, (f64, usize))> = by_category.into_iter().collect();
        ranked.sort_by(|a, b| {
            b.1 .0
                .max(0.0)
                .total_cmp(&a.1 .0.max(0.0))
                .then(b.1 .1.cmp(&a.1 .1))
                .then(a.0.cmp(b.0))
        });
        ranked
            .into_iter()
            .take(k)
            .map(|(c, _)| c.to_owned())
            .collect()
    }
}

/// Feature vectors of labelled users: their batch row, or the empty-history
/// vector for users who never interacted (what serving shows them).
struct UserFeatures {
    x: Array2<f64>,
}

fn user_features(
    table: &DataFrame,
    labels: &[LabelRow],
    spec: &FeatureSpec,
    as_of: i64,
) -> Result<UserFeatures> {
    let rows: HashMap<String, Vec<f64>> =
        features_batch::feature_rows(table)?.into_iter().collect();
    let empty = UserFeatureState::new().vector(spec, as_of);
    let d = spec.len();
    let mut x = Array2::<f64>::zeros((labels.len(), d));
    for (i, label) in labels.iter().enumerate() {
        let v = rows.get(&label.user_id).unwrap_or(&empty);
        x.row_mut(i).assign(&Array1::from(v.clone()));
    }
    Ok(UserFeatures { x })
}

fn select_rows(x: &Array2<f64>, rows: &[usize]) -> Array2<f64> {
    x.select(ndarray::Axis(0), rows)
}

/// What fitting needs besides the plan: features, histories, the seed.
struct FitContext<'a> {
    prepared: &'a Prepared,
    histories: &'a Histories,
    columns: &'a LogColumns<'a>,
    seed: u64,
    families: &'a [crate::select::Family],
    bar: &'a ProgressBar,
}

impl FitContext<'_> {
    /// A progress line from a fitting thread.
    fn note(&self, message: &str) {
        step(self.bar, message.to_owned());
    }

    /// The full-history vectors of labelled users (indices into the labels).
    fn full(&self, members: &[usize]) -> Array2<f64> {
        select_rows(&self.prepared.features.x, members)
    }

    /// Rows to fit on for `members` (label indices) with classes `y`: each
    /// user's full history, and the same user after their first 5, 20 or 50
    /// interactions (drawn by the user's bucket) when the history is
    /// longer. At most `cap` rows, class-stratified.
    fn fit_rows(&self, members: &[usize], y: &[usize], k: usize, cap: usize) -> FitRows {
        let chosen = stratified_subset(y, k, cap / 2);
        let width = self.prepared.spec.len();
        let mut x: Vec<f64> = Vec::with_capacity(chosen.len() * 2 * width);
        let mut labels = Vec::with_capacity(chosen.len() * 2);
        let features = &self.prepared.features.x;
        for &i in &chosen {
            let label_row = members[i];
            x.extend(features.row(label_row).iter());
            labels.push(y[i]);
            let user = &self.prepared.labels[label_row].user_id;
            let history = self.histories.of(user);
            let n = TRUNCATIONS[(bucket_of(self.seed, user) % 3) as usize];
            if history.len() > n {
                x.extend(self.columns.vector_after(
                    &self.prepared.spec,
                    &self.prepared.index,
                    history,
                    n,
                ));
                labels.push(y[i]);
            }
        }
        FitRows {
            x: Array2::from_shape_vec((labels.len(), width), x)
                .unwrap_or_else(|_| Array2::zeros((0, width))),
            y: labels,
        }
    }
}

fn predict_classes(model: &ClassifierModel, x: &Array2<f64>) -> Vec<usize> {
    model.predict(x).into_iter().map(|p| p.class).collect()
}

/// Metrics of a classifier (or topic ranker) on one set of users.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub model: serde_json::Value,
    pub baseline: serde_json::Value,
    pub beats_baseline: bool,
}

/// Everything reported for one target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetReport {
    pub family: String,
    /// The kept family's settings (boosted trees: the rounds early stopping
    /// found), and whether its probabilities are class-balanced.
    pub settings: serde_json::Value,
    pub labelled_users: usize,
    /// Users families were compared on (everyone but the test users).
    pub development_users: usize,
    pub train_users: usize,
    pub validation_users: usize,
    pub test_users: usize,
    /// How families were compared.
    pub protocol: String,
    /// Validation scores per candidate (precision@3 for topics).
    pub candidates: BTreeMap<String, CandidateScore>,
    /// Said when the kept model is below the majority class's accuracy.
    pub selection_note: Option<String>,
    /// Majority class of the development users (the classification baseline).
    pub majority_class: Option<usize>,
    /// What the artifact's model was fitted on: every labelled user, with
    /// truncated histories beside the full ones.
    pub refit: String,
    /// Seconds spent comparing candidates and refitting, and evaluating.
    pub fit_secs: f64,
    pub evaluate_secs: f64,
    pub test: Evaluation,
    /// `first_5`, `first_20`: the test users with only that many interactions.
    pub cold_start: BTreeMap<String, Evaluation>,
}

/// Evaluates a classifier against the majority-class baseline.
fn evaluate_classifier(
    model: &ClassifierModel,
    x: &Array2<f64>,
    truth: &[usize],
    majority: usize,
) -> Evaluation {
    let predicted = predict_classes(model, x);
    let m = ClassMetrics::compute(truth, &predicted, &model.classes);
    let b = ClassMetrics::compute(truth, &vec![majority; truth.len()], &model.classes);
    Evaluation {
        beats_baseline: m.beats(&b),
        model: serde_json::to_value(&m).unwrap_or_default(),
        baseline: serde_json::to_value(&b).unwrap_or_default(),
    }
}

/// Evaluates a topic ranker against the most-frequent-past-categories baseline.
fn evaluate_topics(
    model: &TopicRanker,
    x: &Array2<f64>,
    relevant: &[Vec<String>],
    baseline: &[Vec<String>],
) -> Evaluation {
    let m = precision_at_k(&model.top_names(x, TOP_K), relevant, TOP_K);
    let b = precision_at_k(baseline, relevant, TOP_K);
    Evaluation {
        model: serde_json::json!({"users": relevant.len(), "precision_at_3": m}),
        baseline: serde_json::json!({"users": relevant.len(), "precision_at_3": b}),
        beats_baseline: m > b,
    }
}

fn metric_of(e: &serde_json::Value, name: &str) -> f64 {
    e[name].as_f64().unwrap_or(f64::NAN)
}

/// Rows of the printed table for one target's report.
fn report_rows(target: &str, family: &str, evals: &[(String, &Evaluation)]) -> Vec<ReportRow> {
    let metrics: &[&str] = if target == TOPICS {
        &["precision_at_3"]
    } else {
        &["accuracy", "macro_f1"]
    };
    let mut rows = Vec::new();
    for (users, e) in evals {
        for m in metrics {
            rows.push(ReportRow {
                target: target.to_owned(),
                users: format!("{users} ({})", e.model["users"]),
                metric: (*m).to_owned(),
                model: metric_of(&e.model, m),
                baseline: metric_of(&e.baseline, m),
                family: family.to_owned(),
            });
        }
    }
    rows
}

/// Shows what training is doing; with `MICRO_TRAIN_VERBOSE` set, also
/// prints each step with the time it started, to see where the time goes.
fn step(bar: &ProgressBar, message: impl Into<std::borrow::Cow<'static, str>>) {
    let message = message.into();
    if std::env::var_os("MICRO_TRAIN_VERBOSE").is_some() {
        // Read outside `suspend`, which holds the lock `elapsed` takes.
        let elapsed = bar.elapsed().as_secs_f64();
        bar.suspend(|| eprintln!("[{elapsed:>5.1}s] {message}"));
    }
    bar.set_message(message);
}

fn spinner(enabled: bool) -> ProgressBar {
    let bar = if enabled {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

#[derive(Debug, Clone)]
pub struct TrainArgs {
    pub interactions: PathBuf,
    pub catalog: PathBuf,
    pub labels: PathBuf,
    pub registry: PathBuf,
    pub seed: u64,
    /// Families that compete (empty: all).
    pub families: Vec<crate::select::Family>,
    pub progress: bool,
}

/// What a training run produced.
#[derive(Debug)]
pub struct TrainOutcome {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub reports: BTreeMap<String, TargetReport>,
}

/// Loaded and featurised inputs shared by `train` and `evaluate`.
struct Prepared {
    /// Every labelled user's history.
    histories: Histories,
    spec: FeatureSpec,
    index: CatalogIndex,
    log: DataFrame,
    labels: Vec<LabelRow>,
    features: UserFeatures,
    as_of: i64,
    interactions: usize,
    users_with_history: usize,
}

fn prepare(
    interactions: &Path,
    catalog: &Path,
    labels: &Path,
    spec: Option<FeatureSpec>,
    bar: &ProgressBar,
) -> Result<Prepared> {
    step(bar, "reading catalog");
    let catalog_path = catalog;
    let (catalog, catalog_report) = read_catalog(catalog)?;
    let spec = match spec {
        Some(s) => s,
        None => FeatureParams::default()
            .fit(&catalog)
            .context("feature parameters")?,
    };
    let index = spec.index_catalog(&catalog);
    step(bar, "reading labels");
    let labels_path = labels;
    let (labels, label_report) = read_labels(labels)?;
    step(bar, "reading interactions");
    let (log, report) = read_interactions(interactions)?;
    bar.suspend(|| {
        print_report(&catalog_path.display().to_string(), &catalog_report);
        print_report(&interactions.display().to_string(), &report);
        if label_report.skipped > 0 {
            print_report(&labels_path.display().to_string(), &label_report);
        }
    });
    let as_of = latest_timestamp(&log)?.unwrap_or(0);
    step(
        bar,
        format!("computing features of {} interactions", log.height()),
    );
    // Histories need only the log: collected meanwhile, on the core polars
    // leaves idle part of the time.
    let labelled: HashSet<&str> = labels.iter().map(|l| l.user_id.as_str()).collect();
    let (table, histories) = std::thread::scope(|s| {
        let histories = s.spawn(|| Histories::collect(&log, Some(&labelled)));
        let table = compute_features(&spec, &index, &log, as_of);
        let histories = histories
            .join()
            .map_err(|_| anyhow!("collecting histories panicked"));
        (table, histories)
    });
    let (table, histories) = (table?, histories??);
    step(bar, "gathering labelled users' rows");
    let users_with_history = table.height();
    let features = user_features(&table, &labels, &spec, as_of)?;
    Ok(Prepared {
        histories,
        interactions: log.height(),
        spec,
        index,
        log,
        labels,
        features,
        as_of,
        users_with_history,
    })
}

/// Cold-start inputs for a set of users: vectors after their first k
/// interactions and the baseline topics from those interactions.
fn cold_start_inputs(
    prepared: &Prepared,
    histories: &Histories,
    users: &[&str],
    k: usize,
) -> Result<Truncated> {
    let columns = LogColumns::new(&prepared.log)?;
    let mut x = Array2::<f64>::zeros((users.len(), prepared.spec.len()));
    let mut baseline = Vec::with_capacity(users.len());
    for (i, user) in users.iter().enumerate() {
        let rows = histories.of(user);
        let v = columns.vector_after(&prepared.spec, &prepared.index, rows, k);
        x.row_mut(i).assign(&Array1::from(v));
        baseline.push(columns.top_categories(&prepared.index, &rows[..rows.len().min(k)], TOP_K));
    }
    Ok((x, baseline))
}

/// One target's users and labels, split.
struct Plan {
    target: &'static str,
    vocab: Vec<String>,
    labelled: Vec<usize>,
    labelled_y: Vec<usize>,
    /// Development users (not test), with their bucket.
    dev: Vec<(usize, usize, u64)>,
    test_rows: Vec<usize>,
    test_y: Vec<usize>,
}

impl Plan {
    fn new(target: &'static str, labels: &[LabelRow], seed: u64) -> Plan {
        let vocab = vocabulary(target, labels);
        let labelled: Vec<(usize, usize)> = labels
            .iter()
            .enumerate()
            .filter_map(|(i, l)| label_class(target, l, &vocab).map(|c| (i, c)))
            .collect();
        let mut dev = Vec::new();
        let (mut test_rows, mut test_y) = (Vec::new(), Vec::new());
        for &(i, c) in &labelled {
            let bucket = bucket_of(seed, &labels[i].user_id);
            if bucket >= 85 {
                test_rows.push(i);
                test_y.push(c);
            } else {
                dev.push((i, c, bucket));
            }
        }
        let (labelled, labelled_y) = labelled.into_iter().unzip();
        Plan {
            target,
            vocab,
            labelled,
            labelled_y,
            dev,
            test_rows,
            test_y,
        }
    }

    /// Why this target cannot be trained, if it cannot.
    fn skipped(&self) -> Option<String> {
        if self.labelled.is_empty() {
            Some("no labels in the labels file".to_owned())
        } else if self.dev.len() < 2 * FOLDS || self.test_rows.is_empty() {
            Some(format!(
                "only {} labelled users: too few to train and evaluate",
                self.labelled.len()
            ))
        } else {
            None
        }
    }

    fn kfold(&self) -> bool {
        self.dev.len() < KFOLD_BELOW
    }

    /// Development users in part `keep` of the protocol: holdout train
    /// (buckets 0–69) or validation (70–84); or, for k-fold, fold `f`
    /// (bucket mod k) or everything but it.
    fn part(&self, keep: impl Fn(u64) -> bool) -> (Vec<usize>, Vec<usize>) {
        self.dev
            .iter()
            .filter(|(_, _, b)| keep(*b))
            .map(|&(i, c, _)| (i, c))
            .unzip()
    }
}

/// A target's models: the one tested (fitted without the test users) and
/// the one shipped (refitted on every labelled user).
struct Fitted {
    tested: ProfileModel,
    shipped: ProfileModel,
    settings: serde_json::Value,
    protocol: String,
    scores: BTreeMap<String, CandidateScore>,
    note: Option<String>,
    train_users: usize,
    validation_users: usize,
    refit: String,
    fit_secs: f64,
}

/// Compares the candidates, keeps the best, refits it on every labelled user.
fn fit_classifier(plan: &Plan, ctx: &FitContext<'_>) -> Result<Fitted> {
    let started = Instant::now();
    let k = plan.vocab.len();
    let protocol = if plan.kfold() {
        let folds = (0..FOLDS as u64)
            .map(|f| {
                let (fit, fit_y) = plan.part(|b| b % FOLDS as u64 != f);
                let (val, val_y) = plan.part(|b| b % FOLDS as u64 == f);
                (
                    ctx.fit_rows(&fit, &fit_y, k, MAX_FIT_ROWS),
                    FitRows {
                        x: ctx.full(&val),
                        y: val_y,
                    },
                )
            })
            .collect();
        Protocol::KFold { folds }
    } else {
        let (fit, fit_y) = plan.part(|b| b < 70);
        let (val, val_y) = plan.part(|b| b >= 70);
        Protocol::Holdout {
            fit: ctx.fit_rows(&fit, &fit_y, k, MAX_FIT_ROWS),
            validate: FitRows {
                x: ctx.full(&val),
                y: val_y,
            },
        }
    };
    let (train_users, validation_users) = match &protocol {
        Protocol::Holdout { validate, .. } => (plan.part(|b| b < 70).0.len(), validate.y.len()),
        Protocol::KFold { .. } => (plan.dev.len(), plan.dev.len()),
    };
    ctx.note(&format!("{}: comparing candidates", plan.target));
    let fit_rows = match &protocol {
        Protocol::Holdout { fit, .. } => fit.y.len(),
        Protocol::KFold { folds } => folds.first().map_or(0, |(f, _)| f.y.len()),
    };
    let candidates: Vec<Candidate> = Candidate::all(ctx.seed, fit_rows)
        .into_iter()
        .filter(|c| ctx.families.is_empty() || ctx.families.contains(&c.family()))
        .collect();
    let selection = select(&candidates, &protocol, &plan.vocab)?;
    ctx.note(&format!(
        "{}: refitting {}",
        plan.target,
        selection.candidate.name()
    ));
    let tested = match selection.holdout_model.clone() {
        Some(m) => m,
        None => {
            let (dev, dev_y): (Vec<usize>, Vec<usize>) =
                plan.dev.iter().map(|&(i, c, _)| (i, c)).unzip();
            refit(
                &selection,
                &ctx.fit_rows(&dev, &dev_y, k, MAX_FIT_ROWS),
                &plan.vocab,
            )?
        }
    };
    let all = ctx.fit_rows(&plan.labelled, &plan.labelled_y, k, MAX_FIT_ROWS);
    let shipped = refit(&selection, &all, &plan.vocab)?;
    ctx.note(&format!("{}: refitted", plan.target));
    let mut settings = serde_json::to_value(&selection.candidate)?;
    settings["balanced"] = serde_json::json!(selection.balanced);
    Ok(Fitted {
        tested: ProfileModel::Classifier(tested),
        shipped: ProfileModel::Classifier(shipped),
        settings,
        protocol: protocol.describe(),
        scores: selection.scores.into_iter().collect(),
        note: selection.note,
        train_users,
        validation_users,
        refit: format!(
            "{} labelled users, {} rows with truncated histories",
            plan.labelled.len(),
            all.y.len()
        ),
        fit_secs: started.elapsed().as_secs_f64(),
    })
}

/// Fits the topic ranker: on the development users for the test report
/// (scored on the validation users first when there are many), then on
/// every labelled user for the artifact.
fn fit_topics(plan: &Plan, ctx: &FitContext<'_>) -> Result<Fitted> {
    let started = Instant::now();
    let relevant = |rows: &[usize]| -> Vec<Vec<String>> {
        rows.iter()
            .map(|&i| ctx.prepared.labels[i].topics.clone().unwrap_or_default())
            .collect()
    };
    let spec = &ctx.prepared.spec;
    let ranker_on = |rows: &[usize]| -> Result<TopicRanker> {
        fit_topic_ranker(spec, &ctx.full(rows), &relevant(rows), &plan.vocab)
    };
    let mut scores = BTreeMap::new();
    let (train, _) = plan.part(|b| b < 70);
    let (val, _) = plan.part(|b| b >= 70);
    let (protocol, tested) = if plan.kfold() {
        let (dev, _) = plan.part(|_| true);
        (
            "fitted on the development users".to_owned(),
            ranker_on(&dev)?,
        )
    } else {
        let ranker = ranker_on(&train)?;
        let score = precision_at_k(
            &ranker.top_names(&ctx.full(&val), TOP_K),
            &relevant(&val),
            TOP_K,
        );
        scores.insert(
            ranker.pair_model.family.clone(),
            CandidateScore {
                macro_f1: score,
                accuracy: score,
                majority_accuracy: 0.0,
                validation_users: val.len(),
                fit_secs: started.elapsed().as_secs_f64(),
            },
        );
        (
            format!(
                "holdout: fit on {} users, precision@3 on {} validation users",
                train.len(),
                val.len()
            ),
            ranker,
        )
    };
    ctx.note("topics: refitting on every labelled user");
    let shipped = ranker_on(&plan.labelled)?;
    ctx.note("topics: refitted");
    Ok(Fitted {
        tested: ProfileModel::TopicRanker(tested),
        shipped: ProfileModel::TopicRanker(shipped),
        settings: serde_json::json!({"family": "pointwise_logistic_ranker", "alpha": 1.0}),
        protocol,
        scores,
        note: None,
        train_users: train.len(),
        validation_users: val.len(),
        refit: format!("{} labelled users", plan.labelled.len()),
        fit_secs: started.elapsed().as_secs_f64(),
    })
}

/// Users' vectors after their first k interactions, and the baseline topics
/// of those interactions.
type Truncated = (Array2<f64>, Vec<Vec<String>>);

/// Cold-start inputs of the test users: their row in each matrix, and per
/// history length k the vectors and baseline topics.
struct ColdStart<'a> {
    rows: &'a HashMap<&'a str, usize>,
    inputs: &'a [(usize, Truncated)],
}

/// A target's test metrics, with every history length, and the seconds
/// evaluating took.
type TargetEvaluation = (Evaluation, BTreeMap<String, Evaluation>, f64);

/// Evaluates the tested model on the test users: full histories and cold
/// start, against the baselines.
fn evaluate_fit(
    plan: &Plan,
    ctx: &FitContext<'_>,
    fit: &Fitted,
    cold: &ColdStart<'_>,
) -> TargetEvaluation {
    let evaluating = Instant::now();
    let prepared = ctx.prepared;
    let relevant: Vec<Vec<String>> = plan
        .test_rows
        .iter()
        .map(|&i| prepared.labels[i].topics.clone().unwrap_or_default())
        .collect();
    let dev_y: Vec<usize> = plan.dev.iter().map(|d| d.1).collect();
    let majority = majority(&dev_y, plan.vocab.len());
    let test_users: Vec<&str> = plan
        .test_rows
        .iter()
        .map(|&i| prepared.labels[i].user_id.as_str())
        .collect();
    let full_baseline: Vec<Vec<String>> = test_users
        .iter()
        .map(|u| {
            ctx.columns
                .top_categories(&prepared.index, ctx.histories.of(u), TOP_K)
        })
        .collect();
    let evaluate = |x: &Array2<f64>, baseline: &[Vec<String>]| match &fit.tested {
        ProfileModel::TopicRanker(m) => evaluate_topics(m, x, &relevant, baseline),
        ProfileModel::Classifier(m) => evaluate_classifier(m, x, &plan.test_y, majority),
    };
    let test = evaluate(&ctx.full(&plan.test_rows), &full_baseline);
    let mut cold_start = BTreeMap::new();
    for (k, (x_all, baselines)) in cold.inputs {
        let rows: Vec<usize> = test_users.iter().map(|u| cold.rows[u]).collect();
        let baseline: Vec<Vec<String>> = rows.iter().map(|&r| baselines[r].clone()).collect();
        cold_start.insert(
            format!("first_{k}"),
            evaluate(&select_rows(x_all, &rows), &baseline),
        );
    }
    (test, cold_start, evaluating.elapsed().as_secs_f64())
}

pub fn train(args: &TrainArgs) -> Result<TrainOutcome> {
    let started = Instant::now();
    let bar = spinner(args.progress);
    // Fingerprint the inputs while the features are computed.
    let (prepared, fingerprint) = std::thread::scope(|s| {
        let hashing = s.spawn(|| -> Result<BTreeMap<String, String>> {
            let mut files = BTreeMap::new();
            for path in [&args.interactions, &args.catalog, &args.labels] {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                files.insert(name, sha256_file(path)?);
            }
            Ok(files)
        });
        let prepared = prepare(&args.interactions, &args.catalog, &args.labels, None, &bar);
        let fingerprint = hashing
            .join()
            .map_err(|_| anyhow!("hashing thread panicked"))?;
        Ok::<_, anyhow::Error>((prepared?, fingerprint?))
    })?;
    let features_done = started.elapsed();
    let histories = &prepared.histories;
    let columns = LogColumns::new(&prepared.log)?;
    let ctx = FitContext {
        prepared: &prepared,
        histories,
        columns: &columns,
        seed: args.seed,
        families: &args.families,
        bar: &bar,
    };

    // Cold-start inputs of every test user, once for all targets.
    let mut cold_users: Vec<&str> = prepared
        .labels
        .iter()
        .map(|l| l.user_id.as_str())
        .filter(|u| split_of(args.seed, u) == Split::Test)
        .collect();
    cold_users.sort_unstable();
    cold_users.dedup();
    let cold_row: HashMap<&str, usize> = cold_users
        .iter()
        .enumerate()
        .map(|(i, u)| (*u, i))
        .collect();
    let cold: Vec<(usize, Truncated)> = COLD_START
        .iter()
        .map(|&k| Ok((k, cold_start_inputs(&prepared, histories, &cold_users, k)?)))
        .collect::<Result<_>>()?;

    let mut reports = BTreeMap::new();
    let mut entries = Vec::new();
    let mut files = Vec::new();
    let mut vocabularies = BTreeMap::new();
    let mut table = Vec::new();
    // Plan every target, fit them all in parallel (fitting dominates and
    // each model is single-threaded), then evaluate in order.
    let plans: Vec<Plan> = [SPENDING_CLASS, LIFE_STAGE, TOPICS]
        .into_iter()
        .map(|target| Plan::new(target, &prepared.labels, args.seed))
        .collect();
    step(&bar, "training models");
    let cold = ColdStart {
        rows: &cold_row,
        inputs: &cold,
    };
    let fits: Vec<Option<Result<(Fitted, TargetEvaluation)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .map(|plan| {
                let (ctx, cold) = (&ctx, &cold);
                (plan.skipped().is_none()).then(|| {
                    s.spawn(move || {
                        let fit = if plan.target == TOPICS {
                            fit_topics(plan, ctx)
                        } else {
                            fit_classifier(plan, ctx)
                        }?;
                        ctx.note(&format!("evaluating {}", plan.target));
                        let evaluation = evaluate_fit(plan, ctx, &fit, cold);
                        Ok((fit, evaluation))
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("model fitting panicked")))
                })
            })
            .collect()
    });
    for (plan, fit) in plans.iter().zip(fits) {
        let target = plan.target;
        let Some(fit) = fit else {
            let why = plan.skipped().unwrap_or_default();
            bar.suspend(|| println!("{target}: not trained: {why}"));
            entries.push(ModelEntry {
                target: target.to_owned(),
                family: None,
                skipped: Some(why),
                file: None,
                beats_baseline: false,
            });
            continue;
        };
        let (fit, evaluation) = fit.with_context(|| format!("training {target}"))?;
        let topics = target == TOPICS;
        let (test, cold_start, evaluate_secs) = evaluation;
        let dev_y: Vec<usize> = plan.dev.iter().map(|d| d.1).collect();
        let majority = majority(&dev_y, plan.vocab.len());
        let mut evals = vec![("test".to_owned(), &test)];
        evals.extend(
            cold_start
                .iter()
                .map(|(k, e)| (format!("test, {}", k.replace('_', " ")), e)),
        );
        let family = fit.shipped.family().to_owned();
        table.extend(report_rows(target, &family, &evals));
        if let Some(note) = &fit.note {
            bar.suspend(|| println!("{target}: {note}"));
        }
        let file = file_name(target);
        files.push((file.clone(), serde_json::to_vec(&fit.shipped)?));
        entries.push(ModelEntry {
            target: target.to_owned(),
            family: Some(family.clone()),
            skipped: None,
            file: Some(file),
            beats_baseline: test.beats_baseline,
        });
        vocabularies.insert(target.to_owned(), plan.vocab.clone());
        reports.insert(
            target.to_owned(),
            TargetReport {
                family,
                settings: fit.settings,
                labelled_users: plan.labelled.len(),
                development_users: plan.dev.len(),
                train_users: fit.train_users,
                validation_users: fit.validation_users,
                test_users: plan.test_rows.len(),
                protocol: fit.protocol,
                candidates: fit.scores,
                selection_note: fit.note,
                majority_class: (!topics).then_some(majority),
                refit: fit.refit,
                fit_secs: fit.fit_secs,
                evaluate_secs,
                test,
                cold_start,
            },
        );
    }
    step(&bar, "writing artifact");
    // The catalog index is part of the fitted preprocessing: serving resolves
    // targets against exactly the catalog the features were trained on.
    files.push((
        CATALOG_FILE.to_owned(),
        serde_json::to_vec(prepared.index.catalog())?,
    ));
    let now = chrono::Utc::now();
    let as_of = chrono::DateTime::from_timestamp_micros(prepared.as_of).unwrap_or_default();
    let manifest = Manifest {
        name: MODEL_NAME.to_owned(),
        version: format!("{MODEL_NAME}-{}", now.format("%Y-%m-%dT%H-%M-%SZ")),
        created_at: now,
        code_version: crate::CODE_VERSION.to_owned(),
        feature_schema: prepared.spec.schema(),
        feature_spec: prepared.spec.clone(),
        training_data: DataFingerprint {
            files: fingerprint,
            interactions: prepared.interactions,
            users: prepared.users_with_history,
            as_of: features::interaction::format_rfc3339(&as_of),
        },
        label_vocabularies: vocabularies,
        models: entries,
        metrics: serde_json::json!({
            "seed": args.seed,
            "split": {
                "test": 0.15,
                "development": 0.85,
                "holdout": {"train": 0.70, "validation": 0.15},
                "folds_below_users": KFOLD_BELOW,
                "folds": FOLDS,
                "by": "user",
            },
            "truncations": TRUNCATIONS,
            "targets": reports,
            "timings_secs": {
                "features": features_done.as_secs_f64(),
                "total": started.elapsed().as_secs_f64(),
            },
        }),
        files: BTreeMap::new(),
    };
    let dir = Registry::new(&args.registry).write(manifest, &files)?;
    bar.finish_and_clear();
    print_table(
        &format!("metrics on held-out users (seed {})", args.seed),
        &table,
    );
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(dir.join(features::registry::MANIFEST))?)?;
    println!(
        "\nwrote {} in {:.1}s (features {:.1}s)",
        dir.display(),
        started.elapsed().as_secs_f64(),
        features_done.as_secs_f64()
    );
    Ok(TrainOutcome {
        dir,
        manifest,
        reports,
    })
}

/// `evaluate`: an existing artifact on any labelled data (every labelled user
/// counts; nothing is held out because nothing is fitted).
pub fn evaluate(
    model_dir: &Path,
    interactions: &Path,
    catalog: &Path,
    labels: &Path,
    progress: bool,
) -> Result<serde_json::Value> {
    let bar = spinner(progress);
    let artifact = features::registry::Artifact::load(model_dir)?;
    let manifest = &artifact.manifest;
    let prepared = prepare(
        interactions,
        catalog,
        labels,
        Some(manifest.feature_spec.clone()),
        &bar,
    )?;
    let histories = &prepared.histories;
    let columns = LogColumns::new(&prepared.log)?;
    let training_reports = &manifest.metrics["targets"];
    let mut out = serde_json::Map::new();
    let mut table = Vec::new();
    for entry in &manifest.models {
        let Some(file) = &entry.file else { continue };
        let bytes = artifact
            .file(file)
            .ok_or_else(|| anyhow!("{file} missing from the artifact"))?;
        let model: ProfileModel =
            serde_json::from_slice(bytes).with_context(|| format!("reading {file}"))?;
        let target = entry.target.as_str();
        let vocab = manifest
            .label_vocabularies
            .get(target)
            .cloned()
            .unwrap_or_default();
        let labelled: Vec<(usize, usize)> = prepared
            .labels
            .iter()
            .enumerate()
            .filter_map(|(i, l)| label_class(target, l, &vocab).map(|c| (i, c)))
            .collect();
        if labelled.is_empty() {
            bar.suspend(|| println!("{target}: no labels for it in {}", labels.display()));
            continue;
        }
        step(&bar, format!("evaluating {target}"));
        let (rows, truth): (Vec<usize>, Vec<usize>) = labelled.into_iter().unzip();
        let x = select_rows(&prepared.features.x, &rows);
        let users: Vec<&str> = rows
            .iter()
            .map(|&i| prepared.labels[i].user_id.as_str())
            .collect();
        let relevant: Vec<Vec<String>> = rows
            .iter()
            .map(|&i| prepared.labels[i].topics.clone().unwrap_or_default())
            .collect();
        let majority = training_reports[target]["majority_class"]
            .as_u64()
            .unwrap_or(0) as usize;
        let eval = |x: &Array2<f64>, baseline: &[Vec<String>]| match &model {
            ProfileModel::TopicRanker(m) => evaluate_topics(m, x, &relevant, baseline),
            ProfileModel::Classifier(m) => evaluate_classifier(m, x, &truth, majority),
        };
        let full_baseline: Vec<Vec<String>> = users
            .iter()
            .map(|u| columns.top_categories(&prepared.index, histories.of(u), TOP_K))
            .collect();
        let all = eval(&x, &full_baseline);
        let mut cold = BTreeMap::new();
        for k in COLD_START {
            let (x_cold, baseline) = cold_start_inputs(&prepared, histories, &users, k)?;
            cold.insert(format!("first_{k}"), eval(&x_cold, &baseline));
        }
        let mut evals = vec![("all".to_owned(), &all)];
        evals.extend(cold.iter().map(|(k, e)| (k.replace('_', " "), e)));
        table.extend(report_rows(target, model.family(), &evals));
        out.insert(
            target.to_owned(),
            serde_json::json!({"all": all, "cold_start": cold}),
        );
    }
    bar.finish_and_clear();
    print_table(
        &format!("{} on {}", manifest.version, labels.display()),
        &table,
    );
    Ok(serde_json::json!({"version": manifest.version, "targets": out}))
}
