//! `micro-train train` and `micro-train evaluate`: fit the profile models on
//! a labelled history, evaluate them on users held out from training against
//! their baselines (also as cold start: first 5 and first 20 interactions),
//! and write a versioned artifact to the registry.
//!
//! Users are split by a seeded hash of their id — 70 % train, 15 %
//! validation (model family selection), 15 % test (reported metrics) — so no
//! user's history informs both fitting and evaluation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use features::definition::CatalogIndex;
use features::definition::{TagFeatureIndices, BASE_FEATURES};
use features::incremental::{FoldInput, UserFeatureState};
use features::model::{Classifier, ClassifierModel, ProfileModel, Standardizer, TopicRanker};
use features::registry::{sha256_file, DataFingerprint, Manifest, ModelEntry, Registry};
use features::{FeatureParams, FeatureSpec, InteractionType, LabelRow, LifeStage};
use features_batch::compute_features;
use features_batch::io::{cols, read_catalog, read_interactions, read_labels};
use indicatif::{ProgressBar, ProgressStyle};
use linfa::prelude::*;
use linfa_bayes::GaussianNb;
use linfa_logistic::MultiLogisticRegression;
use linfa_trees::DecisionTree;
use ndarray::{Array1, Array2};
use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::feature_table::{latest_timestamp, print_report};
use crate::metrics::{precision_at_k, print_table, ClassMetrics, ReportRow};

pub use features::scoring::{CATALOG_FILE, LIFE_STAGE, SPENDING_CLASS, TOPICS};
/// Registry name of the profile models.
pub const MODEL_NAME: &str = "profile";
/// Histories the cold-start evaluation truncates test users to.
pub const COLD_START: [usize; 2] = [5, 20];
const TOP_K: usize = 3;

/// Which part of the data a user belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Validation,
    Test,
}

/// Seeded split by user id: stable across runs and data files.
pub fn split_of(seed: u64, user: &str) -> Split {
    let digest = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(user.as_bytes())
        .finalize();
    let bucket = u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8])) % 100;
    match bucket {
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
/// for cold-start evaluation and the topic baseline.
struct Histories {
    rows: HashMap<String, Vec<usize>>,
}

impl Histories {
    fn collect(log: &DataFrame, wanted: &HashSet<&str>) -> Result<Histories> {
        let users = log.column(cols::USER)?.str()?;
        let ids = log.column(cols::ID)?.str()?;
        let ts = log.column(cols::TS)?.i64()?;
        let mut seen = HashSet::new();
        let mut rows: HashMap<String, Vec<usize>> = HashMap::new();
        for (row, (user, id)) in users.iter().zip(ids.iter()).enumerate() {
            let (Some(user), Some(id)) = (user, id) else {
                continue;
            };
            if wanted.contains(user) && seen.insert(id) {
                rows.entry(user.to_owned()).or_default().push(row);
            }
        }
        for list in rows.values_mut() {
            list.sort_by_key(|&r| (ts.get(r).unwrap_or(0), r));
        }
        Ok(Histories { rows })
    }

    fn of(&self, user: &str) -> &[usize] {
        self.rows.get(user).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// Typed access to the normalised log's columns.
struct LogColumns<'a> {
    kind: &'a polars::prelude::Int32Chunked,
    ts: &'a polars::prelude::Int64Chunked,
    target: &'a polars::prelude::StringChunked,
    amount: &'a polars::prelude::Float64Chunked,
    quantity: &'a polars::prelude::Float64Chunked,
}

impl<'a> LogColumns<'a> {
    fn new(log: &'a DataFrame) -> Result<LogColumns<'a>> {
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
    fn vector_after(
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

    /// Baseline topics: the user's most frequent past categories.
    fn top_categories(&self, index: &CatalogIndex, rows: &[usize], k: usize) -> Vec<String> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for &r in rows {
            if let Some(item) = self.target.get(r).and_then(|t| index.catalog().get(t)) {
                *counts.entry(item.category.as_str()).or_default() += 1;
            }
        }
        let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
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
    users: Vec<String>,
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
    Ok(UserFeatures {
        x,
        users: labels.iter().map(|l| l.user_id.clone()).collect(),
    })
}

fn select(x: &Array2<f64>, rows: &[usize]) -> Array2<f64> {
    x.select(ndarray::Axis(0), rows)
}

fn class_weights(y: &[usize], k: usize) -> Vec<f64> {
    let mut counts = vec![0usize; k];
    for &c in y {
        counts[c] += 1;
    }
    let n = y.len() as f64;
    counts
        .iter()
        .map(|&c| {
            if c > 0 {
                n / (k as f64 * c as f64)
            } else {
                0.0
            }
        })
        .collect()
}

/// L-BFGS iteration cap of the logistic regressions (scikit-learn's default
/// is 100).
const MAX_ITERATIONS: u64 = 100;

/// linfa's logistic loss is summed over samples, so its gradient grows with
/// the sample count; scaling the tolerance by it gives scikit-learn's
/// convention (tolerance 1e-4 on the mean loss) instead of a bound that is
/// never met and always runs to the iteration cap.
fn gradient_tolerance(samples: usize) -> f64 {
    1e-4 * samples.max(1) as f64
}

/// Reports how long a fit took when `MICRO_TRAIN_VERBOSE` is set.
fn tracing_fit(what: &str, started: Instant) {
    if std::env::var_os("MICRO_TRAIN_VERBOSE").is_some() {
        eprintln!("  {what} fitted in {:.1}s", started.elapsed().as_secs_f64());
    }
}

/// Most rows the multinomial logistic regressions and the decision trees fit
/// on. Beyond this, a class-stratified, evenly spaced subset: a few hundred
/// weights (or a depth-10 tree's splits) are pinned down long before 30k
/// rows, while L-BFGS and split-search time grow with every row (they are
/// the slowest steps of `train`).
pub const MAX_FIT_ROWS: usize = 30_000;

/// Indices of at most `cap` rows of `y`, the same share of every class,
/// evenly spaced within each class (deterministic: no RNG, no order effects
/// beyond the input's).
fn stratified_subset(y: &[usize], k: usize, cap: usize) -> Vec<usize> {
    if y.len() <= cap {
        return (0..y.len()).collect();
    }
    let mut by_class = vec![Vec::new(); k];
    for (i, &c) in y.iter().enumerate() {
        by_class[c].push(i);
    }
    let mut out = Vec::with_capacity(cap);
    for rows in by_class {
        let take = (rows.len() * cap).div_ceil(y.len()).min(rows.len());
        out.extend((0..take).map(|j| rows[j * rows.len() / take.max(1)]));
    }
    out.sort_unstable();
    out
}

/// Fits every candidate family on the training rows. Class imbalance: trees
/// train with class-balanced sample weights; probabilistic families are also
/// offered with prior correction (probabilities divided by class frequency).
fn fit_candidates(x: &Array2<f64>, y: &[usize], classes: &[String]) -> Vec<ClassifierModel> {
    let standardizer = Standardizer::fit(x);
    let z = standardizer.transform(x);
    let targets = Array1::from(y.to_vec());
    let dataset = Dataset::new(z, targets);
    let weights = class_weights(y, classes.len());
    let model = |family: &str, classifier: Classifier, balanced: bool| ClassifierModel {
        family: family.to_owned(),
        classes: classes.to_vec(),
        standardizer: standardizer.clone(),
        classifier,
        class_weights: balanced.then(|| weights.clone()),
    };
    let subset = stratified_subset(y, classes.len(), MAX_FIT_ROWS);
    let fit_data = Dataset::new(
        select(dataset.records(), &subset),
        Array1::from_iter(subset.iter().map(|&i| y[i])),
    );
    // The tree (the slowest) fits on the second core meanwhile.
    let (tree, mut out) = std::thread::scope(|s| {
        let tree = s.spawn(|| {
            let started = Instant::now();
            // linfa breaks ties between equally weighted classes in a leaf in
            // HashMap order, which changes from run to run; a tiny per-class
            // offset makes the weighted counts differ, so the same data gives
            // the same tree.
            let sample_weights = Array1::from_iter(
                subset
                    .iter()
                    .map(|&i| (weights[y[i]] * (1.0 + 1e-4 * y[i] as f64)) as f32),
            );
            let fitted = DecisionTree::params()
                .max_depth(Some(10))
                .min_weight_leaf(5.0)
                .fit(&fit_data.clone().with_weights(sample_weights));
            tracing_fit("decision tree", started);
            fitted
        });
        let mut out = Vec::new();
        let started = Instant::now();
        let logistic = MultiLogisticRegression::default()
            .alpha(1.0)
            .max_iterations(MAX_ITERATIONS)
            .gradient_tolerance(gradient_tolerance(subset.len()))
            .fit(&fit_data);
        tracing_fit("logistic regression", started);
        match logistic {
            Ok(m) => {
                out.push(model(
                    "logistic_regression",
                    Classifier::Logistic(m.clone()),
                    false,
                ));
                out.push(model(
                    "logistic_regression_balanced",
                    Classifier::Logistic(m),
                    true,
                ));
            }
            Err(e) => eprintln!("  logistic regression failed: {e}"),
        }
        match GaussianNb::params().fit(&dataset) {
            Ok(m) => {
                out.push(model(
                    "gaussian_nb",
                    Classifier::NaiveBayes(m.clone()),
                    false,
                ));
                out.push(model(
                    "gaussian_nb_balanced",
                    Classifier::NaiveBayes(m),
                    true,
                ));
            }
            Err(e) => eprintln!("  gaussian naive Bayes failed: {e}"),
        }
        (tree.join(), out)
    });
    match tree {
        Ok(Ok(m)) => out.push(model("decision_tree_balanced", Classifier::Tree(m), false)),
        Ok(Err(e)) => eprintln!("  decision tree failed: {e}"),
        Err(_) => eprintln!("  decision tree panicked"),
    }
    out
}

/// Most training users the topic ranker fits on (each contributes one row
/// per topic); beyond this, an evenly spaced subset is used.
pub const MAX_RANKER_USERS: usize = 20_000;

/// Fits the topic ranker on training users' feature rows and topic labels.
fn fit_topic_ranker(
    spec: &FeatureSpec,
    x: &Array2<f64>,
    relevant: &[Vec<String>],
    topics: &[String],
) -> Result<TopicRanker> {
    let step = x.nrows().div_ceil(MAX_RANKER_USERS).max(1);
    let subset: Vec<usize> = (0..x.nrows()).step_by(step).collect();
    let x = &select(x, &subset);
    let relevant: Vec<&Vec<String>> = subset.iter().map(|&i| &relevant[i]).collect();
    let share_indices: Vec<Option<TagFeatureIndices>> =
        topics.iter().map(|t| spec.tag_feature_indices(t)).collect();
    let activity_index = BASE_FEATURES
        .iter()
        .position(|f| *f == "log_interactions")
        .unwrap_or(0);
    let pairs = TopicRanker::pair_matrix(topics.len(), &share_indices, activity_index, x);
    let y: Vec<usize> = relevant
        .iter()
        .flat_map(|r| topics.iter().map(move |t| usize::from(r.contains(t))))
        .collect();
    let standardizer = Standardizer::fit(&pairs);
    let dataset = Dataset::new(standardizer.transform(&pairs), Array1::from(y));
    let fitted = MultiLogisticRegression::default()
        .alpha(1.0)
        .max_iterations(MAX_ITERATIONS)
        .gradient_tolerance(gradient_tolerance(dataset.nsamples()))
        .fit(&dataset)
        .map_err(|e| anyhow!("topic ranker: {e}"))?;
    Ok(TopicRanker {
        topics: topics.to_vec(),
        share_indices,
        activity_index,
        pair_model: ClassifierModel {
            family: "pointwise_logistic_ranker".to_owned(),
            classes: vec!["no".to_owned(), "yes".to_owned()],
            standardizer,
            classifier: Classifier::Logistic(fitted),
            class_weights: None,
        },
    })
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
    pub labelled_users: usize,
    pub train_users: usize,
    pub validation_users: usize,
    /// Validation score (macro-F1, or precision@3 for topics) per candidate.
    pub candidates: BTreeMap<String, f64>,
    /// Majority class of the training users (the classification baseline).
    pub majority_class: Option<usize>,
    /// Seconds spent fitting every candidate, and evaluating the kept one.
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
    bar.set_message("reading catalog");
    let catalog = read_catalog(catalog)?;
    let spec = match spec {
        Some(s) => s,
        None => FeatureParams::default()
            .fit(&catalog)
            .context("feature parameters")?,
    };
    let index = spec.index_catalog(&catalog);
    bar.set_message("reading labels");
    let (labels, label_report) = read_labels(labels)?;
    bar.set_message("reading interactions");
    let (log, report) = read_interactions(interactions)?;
    bar.suspend(|| {
        print_report(&interactions.display().to_string(), &report);
        if label_report.invalid > 0 {
            print_report(&labels.len().to_string(), &label_report);
        }
    });
    let as_of = latest_timestamp(&log)?.unwrap_or(0);
    bar.set_message(format!(
        "computing features of {} interactions",
        log.height()
    ));
    let table = compute_features(&spec, &index, &log, as_of)?;
    let users_with_history = table.height();
    let features = user_features(&table, &labels, &spec, as_of)?;
    Ok(Prepared {
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
) -> Result<(Array2<f64>, Vec<Vec<String>>)> {
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
    labelled: usize,
    train_rows: Vec<usize>,
    train_y: Vec<usize>,
    val_rows: Vec<usize>,
    val_y: Vec<usize>,
    test_rows: Vec<usize>,
    test_y: Vec<usize>,
}

impl Plan {
    fn new(target: &'static str, labels: &[LabelRow], splits: &[Split]) -> Plan {
        let vocab = vocabulary(target, labels);
        let labelled: Vec<(usize, usize)> = labels
            .iter()
            .enumerate()
            .filter_map(|(i, l)| label_class(target, l, &vocab).map(|c| (i, c)))
            .collect();
        let part = |split: Split| -> (Vec<usize>, Vec<usize>) {
            labelled
                .iter()
                .filter(|(i, _)| splits[*i] == split)
                .copied()
                .unzip()
        };
        let (train_rows, train_y) = part(Split::Train);
        let (val_rows, val_y) = part(Split::Validation);
        let (test_rows, test_y) = part(Split::Test);
        Plan {
            target,
            vocab,
            labelled: labelled.len(),
            train_rows,
            train_y,
            val_rows,
            val_y,
            test_rows,
            test_y,
        }
    }

    /// Why this target cannot be trained, if it cannot.
    fn skipped(&self) -> Option<String> {
        if self.labelled == 0 {
            Some("no labels in the labels file".to_owned())
        } else if self.train_rows.is_empty()
            || self.val_rows.is_empty()
            || self.test_rows.is_empty()
        {
            Some(format!(
                "only {} labelled users: too few to train and evaluate",
                self.labelled
            ))
        } else {
            None
        }
    }
}

/// The model kept for a target, with every candidate's validation score.
struct Fitted {
    model: ProfileModel,
    scores: BTreeMap<String, f64>,
    fit_secs: f64,
}

/// Fits a target's candidates on the training users and keeps the best on
/// validation (macro-F1; precision@3 for topics).
fn fit_and_select(plan: &Plan, prepared: &Prepared) -> Result<Fitted> {
    let fitting = Instant::now();
    let x = &prepared.features.x;
    let x_val = select(x, &plan.val_rows);
    let relevant = |rows: &[usize]| -> Vec<Vec<String>> {
        rows.iter()
            .map(|&i| prepared.labels[i].topics.clone().unwrap_or_default())
            .collect()
    };
    let mut scores = BTreeMap::new();
    let model = if plan.target == TOPICS {
        let ranker = fit_topic_ranker(
            &prepared.spec,
            &select(x, &plan.train_rows),
            &relevant(&plan.train_rows),
            &plan.vocab,
        )?;
        let score = precision_at_k(
            &ranker.top_names(&x_val, TOP_K),
            &relevant(&plan.val_rows),
            TOP_K,
        );
        scores.insert(ranker.pair_model.family.clone(), score);
        ProfileModel::TopicRanker(ranker)
    } else {
        let mut best: Option<(f64, ClassifierModel)> = None;
        for candidate in fit_candidates(&select(x, &plan.train_rows), &plan.train_y, &plan.vocab) {
            let predicted = predict_classes(&candidate, &x_val);
            let score = ClassMetrics::compute(&plan.val_y, &predicted, &plan.vocab).macro_f1;
            scores.insert(candidate.family.clone(), score);
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, candidate));
            }
        }
        let Some((_, model)) = best else {
            bail!("{}: every model family failed to fit", plan.target);
        };
        ProfileModel::Classifier(model)
    };
    Ok(Fitted {
        model,
        scores,
        fit_secs: fitting.elapsed().as_secs_f64(),
    })
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
    let x = &prepared.features.x;
    let splits: Vec<Split> = prepared
        .features
        .users
        .iter()
        .map(|u| split_of(args.seed, u))
        .collect();
    let test_users: HashSet<&str> = prepared
        .features
        .users
        .iter()
        .zip(&splits)
        .filter(|(_, s)| **s == Split::Test)
        .map(|(u, _)| u.as_str())
        .collect();
    let histories = Histories::collect(&prepared.log, &test_users)?;
    let columns = LogColumns::new(&prepared.log)?;

    let mut reports = BTreeMap::new();
    let mut entries = Vec::new();
    let mut files = Vec::new();
    let mut vocabularies = BTreeMap::new();
    let mut table = Vec::new();
    // Plan every target, fit them all in parallel (fitting dominates and
    // each model is single-threaded), then evaluate in order.
    let plans: Vec<Plan> = [SPENDING_CLASS, LIFE_STAGE, TOPICS]
        .into_iter()
        .map(|target| Plan::new(target, &prepared.labels, &splits))
        .collect();
    bar.set_message("training models");
    let fits: Vec<Option<Result<Fitted>>> = std::thread::scope(|s| {
        let handles: Vec<_> = plans
            .iter()
            .map(|plan| {
                let prepared = &prepared;
                (plan.skipped().is_none()).then(|| s.spawn(move || fit_and_select(plan, prepared)))
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
        let Fitted {
            model,
            scores,
            fit_secs,
        } = fit?;
        let topics = target == TOPICS;
        let Plan {
            vocab,
            labelled,
            train_rows,
            train_y,
            val_rows,
            test_rows,
            test_y,
            ..
        } = plan;
        let relevant = |rows: &[usize]| -> Vec<Vec<String>> {
            rows.iter()
                .map(|&i| prepared.labels[i].topics.clone().unwrap_or_default())
                .collect()
        };
        let evaluating = Instant::now();
        bar.set_message(format!("evaluating {target}"));
        let majority = {
            let mut counts = vec![0usize; vocab.len()];
            train_y.iter().for_each(|&c| counts[c] += 1);
            (0..vocab.len())
                .max_by_key(|&c| (counts[c], std::cmp::Reverse(c)))
                .unwrap_or(0)
        };
        let x_test = select(x, test_rows);
        let test_user_ids: Vec<&str> = test_rows
            .iter()
            .map(|&i| prepared.labels[i].user_id.as_str())
            .collect();
        let full_baseline: Vec<Vec<String>> = test_user_ids
            .iter()
            .map(|u| columns.top_categories(&prepared.index, histories.of(u), TOP_K))
            .collect();
        let test_relevant = relevant(test_rows);
        let evaluate = |x: &Array2<f64>, baseline: &[Vec<String>]| match &model {
            ProfileModel::TopicRanker(m) => evaluate_topics(m, x, &test_relevant, baseline),
            ProfileModel::Classifier(m) => evaluate_classifier(m, x, test_y, majority),
        };
        let test = evaluate(&x_test, &full_baseline);
        let mut cold_start = BTreeMap::new();
        for k in COLD_START {
            let (x_cold, baseline) = cold_start_inputs(&prepared, &histories, &test_user_ids, k)?;
            cold_start.insert(format!("first_{k}"), evaluate(&x_cold, &baseline));
        }
        let mut evals = vec![("test".to_owned(), &test)];
        evals.extend(
            cold_start
                .iter()
                .map(|(k, e)| (format!("test, {}", k.replace('_', " ")), e)),
        );
        table.extend(report_rows(target, model.family(), &evals));
        let file = file_name(target);
        files.push((file.clone(), serde_json::to_vec(&model)?));
        entries.push(ModelEntry {
            target: target.to_owned(),
            family: Some(model.family().to_owned()),
            skipped: None,
            file: Some(file),
            beats_baseline: test.beats_baseline,
        });
        vocabularies.insert(target.to_owned(), vocab.clone());
        reports.insert(
            target.to_owned(),
            TargetReport {
                family: model.family().to_owned(),
                labelled_users: *labelled,
                train_users: train_rows.len(),
                validation_users: val_rows.len(),
                candidates: scores,
                majority_class: (!topics).then_some(majority),
                fit_secs,
                evaluate_secs: evaluating.elapsed().as_secs_f64(),
                test,
                cold_start,
            },
        );
    }
    bar.set_message("writing artifact");
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
            "split": {"train": 0.70, "validation": 0.15, "test": 0.15, "by": "user"},
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
    let all_users: HashSet<&str> = prepared.labels.iter().map(|l| l.user_id.as_str()).collect();
    let histories = Histories::collect(&prepared.log, &all_users)?;
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
        bar.set_message(format!("evaluating {target}"));
        let (rows, truth): (Vec<usize>, Vec<usize>) = labelled.into_iter().unzip();
        let x = select(&prepared.features.x, &rows);
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
            let (x_cold, baseline) = cold_start_inputs(&prepared, &histories, &users, k)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_subset_keeps_class_shares_and_the_cap() {
        let y: Vec<usize> = (0..1000).map(|i| usize::from(i % 10 == 0)).collect();
        let rows = stratified_subset(&y, 2, 100);
        assert!(rows.len() <= 101, "{}", rows.len());
        let ones = rows.iter().filter(|&&i| y[i] == 1).count();
        assert_eq!(ones, 10);
        assert!(rows.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
        assert_eq!(
            stratified_subset(&y[..50], 2, 100),
            (0..50).collect::<Vec<_>>()
        );
    }
}
