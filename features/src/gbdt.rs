//! Gradient-boosted decision trees: a stronger model family for training to
//! compete on validation, fitted into a serialisable type that serving loads
//! unchanged (linfa's params → checked params → fit → fitted model pattern).
//!
//! # Why our own
//!
//! The fitted [`Gbdt`] is a data structure of ours, so the artifact format
//! (JSON through serde) does not move when a dependency is upgraded. Fitting
//! is bit-for-bit deterministic for a seed, supports multiclass softmax and
//! sample weights, and applying a model is a plain tree walk: the serving
//! binary gains no heavy dependency.
//!
//! # Algorithm
//!
//! Second-order (Newton) boosting on feature histograms, as in XGBoost's
//! `hist` method and LightGBM:
//!
//! * **Binning.** Each feature's training values are cut into at most
//!   `max_bins` quantile bins; a feature with no more distinct values than
//!   that gets one bin per value. Cuts lie between consecutive distinct values
//!   (at a short decimal near the midpoint) and are kept as raw feature
//!   values, so prediction compares raw values and needs no binning state.
//!   Training works on a row-major `u8` bin matrix.
//! * **Loss.** Two classes: one logistic tree per round on a single score.
//!   Three or more: softmax cross-entropy, one tree per class per round.
//!   Initial scores are the log of the weighted class priors (the log-odds for
//!   two classes). Each row contributes the gradient `g = p − y` and hessian
//!   `h = p(1 − p)` of its score, both multiplied by its sample weight.
//! * **Rows.** Each round draws `row_subsample` of the training rows without
//!   replacement (a seeded SplitMix64); the round's trees see only those.
//! * **Trees.** Depth-wise to `max_depth`: every node takes the split, over all
//!   features and cuts, of largest gain
//!   `G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)`, provided both children keep a
//!   hessian sum of at least `min_child_weight` and the gain exceeds 1e-12
//!   (no zero-gain splits). A leaf is worth `−G/(H+λ) × learning_rate`.
//!   Only the smaller child's histogram is built from its rows; the larger
//!   one's is the parent's minus it.
//! * **Early stopping.** With validation data, boosting stops once the
//!   validation log-loss has not improved for `early_stopping_rounds` rounds,
//!   and the model keeps the trees of the best round only.
//!
//! # Missing and extreme values
//!
//! NaN goes to the left child of every split: a split sends a value right when
//! `value > threshold`, which is false for NaN (in training NaN falls in the
//! lowest bin, which is always on the left). Infinities are allowed; they are
//! clamped to the finite extremes when cuts are chosen, so thresholds stay
//! finite.
//!
//! # Determinism
//!
//! Work runs in parallel over the classes of a round and over ranges of
//! features within a histogram, but every floating-point sum is made by one
//! thread in a fixed row order, so the model is bit-identical for the same
//! inputs and seed whatever the number of threads.
//!
//! # Exact JSON round trip
//!
//! serde_json's default float parser (the workspace does not enable its
//! `float_roundtrip` feature) may read a 17-digit number back one ulp off.
//! Every float the model stores is therefore chosen, within its last digits,
//! among those that parser reads back exactly: the model serving loads is the
//! one training validated, bit for bit.

use ndarray::{Array2, ArrayView1, ArrayView2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::validation::ValidationErrors;

/// Deepest tree allowed: 2^16 leaves is far past what boosting benefits from,
/// and the limit bounds the recursion and the per-tree buffers.
pub const MAX_DEPTH: usize = 16;

/// Gains at or below this are rounding noise, not structure.
const MIN_SPLIT_GAIN: f64 = 1e-12;
/// Floor of a row's hessian: a confidently right prediction has p(1 − p) → 0,
/// and a leaf of such rows would otherwise get an unbounded value.
const MIN_HESSIAN: f64 = 1e-16;
/// Class priors are kept off 0 and 1 so that initial scores stay finite when
/// a class has no (weighted) training rows.
const MIN_PRIOR: f64 = 1e-12;
/// Row × feature histogram updates below which one thread beats fanning out.
const PARALLEL_HISTOGRAM_WORK: usize = 1 << 15;
/// Rows per parallel task in the row-wise passes (binning, gradients).
const ROWS_PER_TASK: usize = 1024;
/// How far ahead histogram building touches the rows it will read.
const PREFETCH_ROWS: usize = 8;
/// Bins a feature can have (`u8` bin numbers).
const BIN_LIMIT: usize = 256;

/// One feature's histogram: `(g, h)` per bin. Sized for any `u8` bin so that
/// indexing by bin needs no bounds check; only the first `stride` cells are
/// ever touched, so the unused tail costs address space, not cache.
type FeatureCells = [[f64; 2]; BIN_LIMIT];
type Histogram = Vec<FeatureCells>;

/// Hyper-parameters of [`Gbdt`]. Missing fields deserialise to the defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GbdtParams {
    /// Maximum number of boosting rounds.
    pub rounds: usize,
    /// Shrinkage applied to every leaf value, in (0, 1].
    pub learning_rate: f64,
    /// Maximum tree depth (depth-wise growth), 1..=[`MAX_DEPTH`].
    pub max_depth: usize,
    /// Minimum hessian sum (weighted) of each child of a split.
    pub min_child_weight: f64,
    /// L2 regularisation of leaf values (λ).
    pub l2: f64,
    /// Histogram bins per feature, 2..=256.
    pub max_bins: usize,
    /// Fraction of training rows drawn, without replacement, for each round.
    pub row_subsample: f64,
    /// Stop when the validation log-loss has not improved for this many
    /// rounds. Only used when validation data is given to [`GbdtParams::fit`].
    pub early_stopping_rounds: usize,
    /// Seed of the row subsampling.
    pub seed: u64,
}

impl Default for GbdtParams {
    fn default() -> Self {
        GbdtParams {
            rounds: 300,
            learning_rate: 0.1,
            max_depth: 4,
            min_child_weight: 1.0,
            l2: 1.0,
            max_bins: 64,
            row_subsample: 0.8,
            early_stopping_rounds: 20,
            seed: 0,
        }
    }
}

/// Why a fit was refused, or a serialised model rejected.
#[derive(Debug, thiserror::Error)]
pub enum GbdtError {
    #[error("invalid GBDT parameters: {0}")]
    InvalidParams(#[from] ValidationErrors),
    #[error("{0} has no rows")]
    EmptyData(&'static str),
    #[error("training data has no feature columns")]
    NoFeatures,
    #[error("n_classes is {0}; a classifier needs at least 2 classes")]
    TooFewClasses(usize),
    #[error("expected {expected} {what}, got {got}")]
    ShapeMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{set} row {row} has label {label}, but n_classes is {n_classes}")]
    LabelOutOfRange {
        set: &'static str,
        row: usize,
        label: usize,
        n_classes: usize,
    },
    #[error("sample weight of row {row} is {value}; weights must be finite and non-negative")]
    BadWeight { row: usize, value: f64 },
    #[error("sample weights must have a positive, finite sum")]
    BadTotalWeight,
    #[error("invalid GBDT model: {0}")]
    InvalidModel(String),
}

impl GbdtParams {
    /// The parameters if all are in range, otherwise every bad field by name.
    pub fn check(self) -> Result<GbdtParams, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if self.rounds == 0 {
            errors.push("rounds", "must be at least 1");
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            errors.push("learning_rate", "must be in (0, 1]");
        }
        if self.max_depth == 0 || self.max_depth > MAX_DEPTH {
            errors.push("max_depth", format!("must be between 1 and {MAX_DEPTH}"));
        }
        if !(self.min_child_weight.is_finite() && self.min_child_weight >= 0.0) {
            errors.push("min_child_weight", "must be a finite number >= 0");
        }
        if !(self.l2.is_finite() && self.l2 >= 0.0) {
            errors.push("l2", "must be a finite number >= 0");
        }
        if !(2..=256).contains(&self.max_bins) {
            errors.push("max_bins", "must be between 2 and 256");
        }
        if !(self.row_subsample > 0.0 && self.row_subsample <= 1.0) {
            errors.push("row_subsample", "must be in (0, 1]");
        }
        if self.early_stopping_rounds == 0 {
            errors.push("early_stopping_rounds", "must be at least 1");
        }
        errors.into_result(|| self)
    }

    /// Fits a classifier of `n_classes` classes on the rows of `x` (features
    /// in columns) labelled `y` (`0..n_classes`).
    ///
    /// `sample_weight` multiplies each row's gradient and hessian (default
    /// 1). With `validation`, boosting stops early on its log-loss and the
    /// model keeps the best round's trees; that may be none at all when no
    /// round beats the class priors.
    pub fn fit(
        &self,
        x: ArrayView2<f64>,
        y: &[usize],
        n_classes: usize,
        sample_weight: Option<&[f64]>,
        validation: Option<(ArrayView2<f64>, &[usize])>,
    ) -> Result<Gbdt, GbdtError> {
        let params = self.clone().check()?;
        check_inputs(x, y, n_classes, sample_weight, validation)?;
        let n = x.nrows();
        let slots = slots(n_classes);
        let weights: Vec<f64> = match sample_weight {
            Some(w) => w.to_vec(),
            None => vec![1.0; n],
        };
        let data = Binned::fit(x, params.max_bins);
        let base_score = base_score(y, &weights, n_classes);

        // Row-major copy: validation rows are walked one at a time each round.
        let val: Option<(Vec<f64>, &[usize])> =
            validation.map(|(xv, yv)| (xv.iter().copied().collect(), yv));
        let n_val = val.as_ref().map_or(0, |(_, yv)| yv.len());
        let mut states: Vec<ClassState> = base_score
            .iter()
            .map(|&b| ClassState {
                scores: vec![b; n],
                val_scores: vec![b; n_val],
                rows: Vec::with_capacity(n),
                tmp: Vec::new(),
                pool: Vec::new(),
            })
            .collect();

        let mut rng = SplitMix64::new(params.seed);
        let sample_size = ((n as f64 * params.row_subsample).round() as usize).clamp(1, n);
        let (mut sample, mut oob) = (Vec::with_capacity(n), Vec::new());
        let mut gh = vec![[0.0; 2]; n * slots];
        let mut root = vec![[0.0; 2]; data.n_features * data.stride * slots];
        let mut trees: Vec<Tree> = Vec::with_capacity(params.rounds * slots);
        let mut best_loss = match &val {
            Some((_, yv)) => validation_loss(&states, yv),
            None => f64::INFINITY,
        };
        let mut best_rounds = 0;

        for round in 0..params.rounds {
            draw_sample(&mut rng, n, sample_size, &mut sample, &mut oob);
            gradients(&states, y, &weights, &mut gh);
            root_histograms(&data, &gh, slots, &sample, &mut root);
            let input = RoundInput {
                data: &data,
                params: &params,
                gh: &gh,
                root: &root,
                slots,
                sample: &sample,
                oob: &oob,
                val: val.as_ref().map(|(xv, _)| xv.as_slice()),
            };
            let round_trees: Vec<Tree> = states
                .par_iter_mut()
                .enumerate()
                .map(|(k, state)| state.boost(k, &input))
                .collect();
            trees.extend(round_trees);
            if let Some((_, yv)) = &val {
                let loss = validation_loss(&states, yv);
                if loss < best_loss {
                    best_loss = loss;
                    best_rounds = round + 1;
                } else if round + 1 - best_rounds >= params.early_stopping_rounds {
                    break;
                }
            }
        }
        if val.is_some() {
            trees.truncate(best_rounds * slots);
        }
        Ok(Gbdt {
            n_classes,
            n_features: x.ncols(),
            base_score,
            trees,
        })
    }
}

fn check_inputs(
    x: ArrayView2<f64>,
    y: &[usize],
    n_classes: usize,
    sample_weight: Option<&[f64]>,
    validation: Option<(ArrayView2<f64>, &[usize])>,
) -> Result<(), GbdtError> {
    if n_classes < 2 {
        return Err(GbdtError::TooFewClasses(n_classes));
    }
    if x.nrows() == 0 {
        return Err(GbdtError::EmptyData("training data"));
    }
    if x.ncols() == 0 {
        return Err(GbdtError::NoFeatures);
    }
    if y.len() != x.nrows() {
        return Err(GbdtError::ShapeMismatch {
            what: "labels (one per training row)",
            expected: x.nrows(),
            got: y.len(),
        });
    }
    check_labels("training", y, n_classes)?;
    if let Some(w) = sample_weight {
        if w.len() != x.nrows() {
            return Err(GbdtError::ShapeMismatch {
                what: "sample weights (one per training row)",
                expected: x.nrows(),
                got: w.len(),
            });
        }
        if let Some((row, &value)) = w
            .iter()
            .enumerate()
            .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
        {
            return Err(GbdtError::BadWeight { row, value });
        }
        let total: f64 = w.iter().sum();
        if !(total.is_finite() && total > 0.0) {
            return Err(GbdtError::BadTotalWeight);
        }
    }
    if let Some((xv, yv)) = validation {
        if xv.nrows() == 0 {
            return Err(GbdtError::EmptyData("validation data"));
        }
        if xv.ncols() != x.ncols() {
            return Err(GbdtError::ShapeMismatch {
                what: "validation feature columns (as many as in training)",
                expected: x.ncols(),
                got: xv.ncols(),
            });
        }
        if yv.len() != xv.nrows() {
            return Err(GbdtError::ShapeMismatch {
                what: "validation labels (one per validation row)",
                expected: xv.nrows(),
                got: yv.len(),
            });
        }
        check_labels("validation", yv, n_classes)?;
    }
    Ok(())
}

fn check_labels(set: &'static str, y: &[usize], n_classes: usize) -> Result<(), GbdtError> {
    match y.iter().enumerate().find(|(_, &l)| l >= n_classes) {
        Some((row, &label)) => Err(GbdtError::LabelOutOfRange {
            set,
            row,
            label,
            n_classes,
        }),
        None => Ok(()),
    }
}

/// Scores per row: one (the log-odds of class 1) for two classes, one per
/// class otherwise.
fn slots(n_classes: usize) -> usize {
    if n_classes == 2 {
        1
    } else {
        n_classes
    }
}

fn base_score(y: &[usize], weights: &[f64], n_classes: usize) -> Vec<f64> {
    let mut class_weight = vec![0.0; n_classes];
    for (&label, &w) in y.iter().zip(weights) {
        class_weight[label] += w;
    }
    let total: f64 = class_weight.iter().sum();
    let prior = |c: usize| (class_weight[c] / total).clamp(MIN_PRIOR, 1.0 - MIN_PRIOR);
    if n_classes == 2 {
        let p = prior(1);
        vec![json_exact((p / (1.0 - p)).ln())]
    } else {
        (0..n_classes).map(|c| json_exact(prior(c).ln())).collect()
    }
}

/// A fitted GBDT classifier. Thresholds are raw feature values, so applying
/// it needs nothing but a feature vector.
///
/// Serialised as `{"n_classes", "n_features", "base_score": [..], "trees":
/// [{"nodes": [..]}, ..]}`, trees round by round (one per class per round,
/// or one per round for two classes), each node either
/// `{"split": {"feature", "threshold", "left", "right", "gain"}}` (children
/// indexed within the tree, after their parent) or `{"leaf": {"value"}}`. A
/// score is the slot's base score plus one leaf value per tree; loading
/// checks the structure, so a corrupt file is an error, not a panic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GbdtRepr")]
pub struct Gbdt {
    n_classes: usize,
    n_features: usize,
    /// Initial score of each slot (one for two classes, one per class).
    base_score: Vec<f64>,
    /// Round-major: the tree of slot `k` in round `r` is `trees[r * slots + k]`.
    trees: Vec<Tree>,
}

/// What a serialised model deserialises into before [`Gbdt`] checks it: a
/// corrupt file must fail to load, not panic or loop in a tree walk.
#[derive(Deserialize)]
struct GbdtRepr {
    n_classes: usize,
    n_features: usize,
    base_score: Vec<f64>,
    trees: Vec<Tree>,
}

impl TryFrom<GbdtRepr> for Gbdt {
    type Error = GbdtError;

    fn try_from(m: GbdtRepr) -> Result<Self, GbdtError> {
        let invalid = |message: String| Err(GbdtError::InvalidModel(message));
        if m.n_classes < 2 {
            return invalid(format!("n_classes is {}, at least 2 needed", m.n_classes));
        }
        if m.n_features == 0 {
            return invalid("n_features is 0".into());
        }
        let slots = slots(m.n_classes);
        if m.base_score.len() != slots {
            return invalid(format!(
                "{} base scores for {} classes, expected {slots}",
                m.base_score.len(),
                m.n_classes
            ));
        }
        if m.trees.len() % slots != 0 {
            return invalid(format!(
                "{} trees is not a whole number of rounds of {slots}",
                m.trees.len()
            ));
        }
        for (t, tree) in m.trees.iter().enumerate() {
            if tree.nodes.is_empty() {
                return invalid(format!("tree {t} has no nodes"));
            }
            let len = tree.nodes.len();
            for (i, node) in tree.nodes.iter().enumerate() {
                if let Node::Split {
                    feature,
                    left,
                    right,
                    ..
                } = *node
                {
                    // Children after their parent: every walk ends at a leaf.
                    let child_ok = |c: u32| (c as usize) > i && (c as usize) < len;
                    if feature as usize >= m.n_features || !child_ok(left) || !child_ok(right) {
                        return invalid(format!("tree {t} node {i} is malformed"));
                    }
                }
            }
        }
        Ok(Gbdt {
            n_classes: m.n_classes,
            n_features: m.n_features,
            base_score: m.base_score,
            trees: m.trees,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Tree {
    /// Pre-order: the root first, children after their parent.
    nodes: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Node {
    /// `value > threshold` goes right; anything else, NaN included, left.
    Split {
        feature: u32,
        threshold: f64,
        left: u32,
        right: u32,
        gain: f64,
    },
    Leaf {
        value: f64,
    },
}

impl Tree {
    fn value(&self, row: &[f64]) -> f64 {
        let mut i = 0;
        loop {
            match self.nodes[i] {
                Node::Leaf { value } => return value,
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                    ..
                } => {
                    i = if row[feature as usize] > threshold {
                        right
                    } else {
                        left
                    } as usize
                }
            }
        }
    }
}

impl Gbdt {
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Boosting rounds kept (the best round when stopped early).
    pub fn rounds(&self) -> usize {
        self.trees.len() / self.base_score.len()
    }

    /// Total split gain per feature over all trees: how much each feature
    /// reduced the training loss.
    pub fn feature_importance(&self) -> Vec<f64> {
        let mut importance = vec![0.0; self.n_features];
        for tree in &self.trees {
            for node in &tree.nodes {
                if let Node::Split { feature, gain, .. } = *node {
                    importance[feature as usize] += gain;
                }
            }
        }
        importance
    }

    /// Class probabilities, one row per row of `x` and one column per class;
    /// each row sums to 1.
    ///
    /// # Panics
    ///
    /// If `x` does not have [`Gbdt::n_features`] columns.
    pub fn predict_proba(&self, x: ArrayView2<f64>) -> Array2<f64> {
        assert_eq!(
            x.ncols(),
            self.n_features,
            "GBDT model expects {} features",
            self.n_features
        );
        let mut out = Array2::zeros((x.nrows(), self.n_classes));
        let mut contiguous = Vec::new();
        let mut probs = vec![0.0; self.n_classes];
        for (row, mut out_row) in x.rows().into_iter().zip(out.rows_mut()) {
            self.predict_proba_row(as_slice(&row, &mut contiguous), &mut probs);
            for (o, p) in out_row.iter_mut().zip(&probs) {
                *o = *p;
            }
        }
        out
    }

    /// Class probabilities of one row into `out`, without allocating.
    ///
    /// # Panics
    ///
    /// If `row` does not have [`Gbdt::n_features`] values or `out` does not
    /// have [`Gbdt::n_classes`] slots.
    pub fn predict_proba_row(&self, row: &[f64], out: &mut [f64]) {
        assert_eq!(
            row.len(),
            self.n_features,
            "GBDT model expects {} features",
            self.n_features
        );
        assert_eq!(
            out.len(),
            self.n_classes,
            "GBDT model has {} classes",
            self.n_classes
        );
        let slots = self.base_score.len();
        self.raw_scores(row, &mut out[..slots]);
        if slots == 1 {
            let p = sigmoid(out[0]);
            out[0] = 1.0 - p;
            out[1] = p;
        } else {
            softmax_in_place(out);
        }
    }

    /// Mean log-loss (cross-entropy) of the model on labelled rows, computed
    /// exactly as early stopping computes it.
    pub fn log_loss(&self, x: ArrayView2<f64>, y: &[usize]) -> Result<f64, GbdtError> {
        if x.nrows() == 0 {
            return Err(GbdtError::EmptyData("evaluation data"));
        }
        if x.ncols() != self.n_features {
            return Err(GbdtError::ShapeMismatch {
                what: "feature columns (as many as in training)",
                expected: self.n_features,
                got: x.ncols(),
            });
        }
        if y.len() != x.nrows() {
            return Err(GbdtError::ShapeMismatch {
                what: "labels (one per row)",
                expected: x.nrows(),
                got: y.len(),
            });
        }
        check_labels("evaluation", y, self.n_classes)?;
        let mut contiguous = Vec::new();
        let mut scores = vec![0.0; self.base_score.len()];
        let mut total = 0.0;
        for (row, &label) in x.rows().into_iter().zip(y) {
            self.raw_scores(as_slice(&row, &mut contiguous), &mut scores);
            total += row_log_loss(&scores, label);
        }
        Ok(total / y.len() as f64)
    }

    /// Summed in round order, as training accumulates them.
    fn raw_scores(&self, row: &[f64], out: &mut [f64]) {
        out.copy_from_slice(&self.base_score);
        for round in self.trees.chunks_exact(out.len()) {
            for (o, tree) in out.iter_mut().zip(round) {
                *o += tree.value(row);
            }
        }
    }
}

/// The row as a slice, copied into `buf` only when it is strided.
fn as_slice<'r>(row: &'r ArrayView1<'_, f64>, buf: &'r mut Vec<f64>) -> &'r [f64] {
    match row.as_slice() {
        Some(s) => s,
        None => {
            buf.clear();
            buf.extend(row.iter().copied());
            buf
        }
    }
}

fn sigmoid(s: f64) -> f64 {
    if s >= 0.0 {
        1.0 / (1.0 + (-s).exp())
    } else {
        let e = s.exp();
        e / (1.0 + e)
    }
}

fn softmax_in_place(scores: &mut [f64]) {
    let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    for s in scores.iter_mut() {
        *s /= sum;
    }
}

/// `ln(1 + e^x)` without overflow.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Cross-entropy of one row from its raw scores.
fn row_log_loss(scores: &[f64], label: usize) -> f64 {
    if let [s] = scores {
        if label == 1 {
            softplus(-s)
        } else {
            softplus(*s)
        }
    } else {
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = scores.iter().map(|s| (s - max).exp()).sum();
        max + sum.ln() - scores[label]
    }
}

// ---------------------------------------------------------------------------
// Binning

/// The training matrix as bins: row-major, one byte per feature.
struct Binned {
    n_features: usize,
    /// The most bins any feature has: the histogram cells in use per feature.
    stride: usize,
    bins: Vec<u8>,
    /// The same bins feature-major, for partitioning a node on one feature:
    /// reading a column of the row-major matrix misses cache on every row.
    columns: Vec<u8>,
    /// Per feature, ascending: bin `b` holds the values `v` with
    /// `cuts[b-1] < v <= cuts[b]`, so a split after bin `b` is `v > cuts[b]`.
    cuts: Vec<Vec<f64>>,
}

impl Binned {
    fn fit(x: ArrayView2<f64>, max_bins: usize) -> Binned {
        let cuts: Vec<Vec<f64>> = (0..x.ncols())
            .into_par_iter()
            .map(|f| cut_points(x.column(f), max_bins))
            .collect();
        let n_features = x.ncols();
        let stride = cuts.iter().map(|c| c.len() + 1).max().unwrap_or(1);
        let mut bins = vec![0u8; x.nrows() * n_features];
        bins.par_chunks_mut(n_features * ROWS_PER_TASK)
            .enumerate()
            .for_each(|(task, chunk)| {
                for (i, out) in chunk.chunks_exact_mut(n_features).enumerate() {
                    let row = x.row(task * ROWS_PER_TASK + i);
                    for ((o, &v), c) in out.iter_mut().zip(row.iter()).zip(&cuts) {
                        *o = bin_of(c, v);
                    }
                }
            });
        let n = x.nrows();
        let mut columns = vec![0u8; n * n_features];
        columns
            .par_chunks_mut(n.max(1))
            .enumerate()
            .for_each(|(f, column)| {
                for (r, c) in column.iter_mut().enumerate() {
                    *c = bins[r * n_features + f];
                }
            });
        Binned {
            n_features,
            stride,
            bins,
            columns,
            cuts,
        }
    }

    fn row(&self, r: usize) -> &[u8] {
        &self.bins[r * self.n_features..(r + 1) * self.n_features]
    }
}

/// The same comparison prediction makes (`v > cut` goes right), so training
/// bins and raw-threshold walks agree exactly; NaN lands in bin 0.
fn bin_of(cuts: &[f64], v: f64) -> u8 {
    cuts.partition_point(|&c| v > c) as u8
}

/// Quantile cuts of one feature's values (at most `max_bins - 1`).
fn cut_points(column: ArrayView1<f64>, max_bins: usize) -> Vec<f64> {
    let mut values: Vec<f64> = column
        .iter()
        .filter(|v| !v.is_nan())
        .map(|v| v.clamp(f64::MIN, f64::MAX))
        .collect();
    values.sort_unstable_by(f64::total_cmp);
    // Distinct as `>` sees them: -0.0 and 0.0 are one value.
    let mut distinct: Vec<(f64, usize)> = Vec::new();
    for v in values {
        match distinct.last_mut() {
            Some((d, count)) if *d == v => *count += 1,
            _ => distinct.push((v, 1)),
        }
    }
    let d = distinct.len();
    let cut_after: Vec<usize> = if d <= max_bins {
        (0..d.saturating_sub(1)).collect()
    } else {
        let mut cut_after = Vec::with_capacity(max_bins - 1);
        let mut remaining: usize = distinct.iter().map(|(_, c)| c).sum();
        let mut in_bin = 0;
        let mut bins_left = max_bins;
        for i in 0..d - 1 {
            in_bin += distinct[i].1;
            // Re-aimed after every cut, so a heavy value (say half the rows
            // at 0) does not starve the remaining bins.
            let target = remaining as f64 / bins_left as f64;
            let full = in_bin as f64 >= target;
            // A value that fills a bin by itself gets one of its own rather
            // than absorbing the sparse values just below it.
            let next_is_heavy = distinct[i + 1].1 as f64 >= target;
            let room_for_each_rest = d - 1 - i < bins_left;
            if full || next_is_heavy || room_for_each_rest {
                cut_after.push(i);
                remaining -= in_bin;
                in_bin = 0;
                bins_left -= 1;
                if bins_left == 1 {
                    break;
                }
            }
        }
        cut_after
    };
    cut_after
        .into_iter()
        .map(|i| threshold_between(distinct[i].0, distinct[i + 1].0))
        .collect()
}

/// A threshold `t` with `a <= t < b` for finite `a < b`: the shortest decimal
/// in the middle half of the gap that survives JSON exactly; the midpoint if
/// there is none.
fn threshold_between(a: f64, b: f64) -> f64 {
    let mid = a / 2.0 + b / 2.0;
    let quarter = (b / 2.0 - a / 2.0) / 2.0;
    let (lo, hi) = (mid - quarter, mid + quarter);
    for digits in 1..=17 {
        if let Some(t) = round_to_digits(mid, digits) {
            if t >= lo && t <= hi && t >= a && t < b && survives_json(t) {
                return t;
            }
        }
    }
    // Adjacent floats: the midpoint may round up to `b`.
    if mid < b {
        mid
    } else {
        a
    }
}

fn round_to_digits(v: f64, digits: usize) -> Option<f64> {
    format!("{:.*e}", digits - 1, v).parse().ok()
}

/// Whether serde_json writes and reads `v` back bit for bit.
fn survives_json(v: f64) -> bool {
    serde_json::to_string(&v)
        .ok()
        .and_then(|s| serde_json::from_str::<f64>(&s).ok())
        .is_some_and(|back| back.to_bits() == v.to_bits())
}

/// `v`, or the closest shorter decimal that survives JSON exactly; 0 for a
/// non-finite value (JSON has no representation for it).
pub(crate) fn json_exact(v: f64) -> f64 {
    if !v.is_finite() {
        return 0.0;
    }
    if survives_json(v) {
        return v;
    }
    (1..=16)
        .rev()
        .filter_map(|digits| round_to_digits(v, digits))
        .find(|&r| survives_json(r))
        .unwrap_or(v)
}

// ---------------------------------------------------------------------------
// Boosting

/// Small seeded generator for row subsampling (SplitMix64): deterministic
/// across platforms and crate versions, which `rand`'s generators do not
/// promise.
#[derive(Clone, Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Exactly `m` of `n` rows, ascending (selection sampling): ascending rows
/// keep histogram building streaming through the bin matrix.
fn draw_sample(
    rng: &mut SplitMix64,
    n: usize,
    m: usize,
    sample: &mut Vec<u32>,
    oob: &mut Vec<u32>,
) {
    sample.clear();
    oob.clear();
    if m >= n {
        sample.extend(0..n as u32);
        return;
    }
    let mut needed = m;
    for i in 0..n {
        if rng.next_f64() * ((n - i) as f64) < needed as f64 {
            sample.push(i as u32);
            needed -= 1;
        } else {
            oob.push(i as u32);
        }
    }
}

/// Gradient and hessian of every row and slot (row-major, weighted) at the
/// current scores.
fn gradients(states: &[ClassState], y: &[usize], weights: &[f64], gh: &mut [[f64; 2]]) {
    let slots = states.len();
    gh.par_chunks_mut(slots * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(task, chunk)| {
            let mut p = vec![0.0; slots];
            for (i, out) in chunk.chunks_exact_mut(slots).enumerate() {
                let r = task * ROWS_PER_TASK + i;
                for (pk, state) in p.iter_mut().zip(states) {
                    *pk = state.scores[r];
                }
                if let [s] = p.as_mut_slice() {
                    *s = sigmoid(*s);
                } else {
                    softmax_in_place(&mut p);
                }
                // Two classes: the one slot is class 1's probability.
                let class_of_slot = |k: usize| if slots == 1 { 1 } else { k };
                let w = weights[r];
                for (k, (o, &pk)) in out.iter_mut().zip(&p).enumerate() {
                    let target = if y[r] == class_of_slot(k) { 1.0 } else { 0.0 };
                    *o = [(pk - target) * w, (pk * (1.0 - pk)).max(MIN_HESSIAN) * w];
                }
            }
        });
}

fn validation_loss(states: &[ClassState], y: &[usize]) -> f64 {
    let mut scores = vec![0.0; states.len()];
    let mut total = 0.0;
    for (r, &label) in y.iter().enumerate() {
        for (s, state) in scores.iter_mut().zip(states) {
            *s = state.val_scores[r];
        }
        total += row_log_loss(&scores, label);
    }
    total / y.len() as f64
}

/// What every slot's tree of one round reads.
struct RoundInput<'a> {
    data: &'a Binned,
    params: &'a GbdtParams,
    /// Row-major, `slots` per row.
    gh: &'a [[f64; 2]],
    /// The root histograms of all slots, see [`root_histograms`].
    root: &'a [[f64; 2]],
    slots: usize,
    sample: &'a [u32],
    oob: &'a [u32],
    /// Row-major validation features.
    val: Option<&'a [f64]>,
}

/// Scores and scratch of one slot, owned so slots can boost in parallel.
struct ClassState {
    scores: Vec<f64>,
    val_scores: Vec<f64>,
    /// The round's sampled rows, partitioned in place into node ranges.
    rows: Vec<u32>,
    tmp: Vec<u32>,
    /// Spare histogram buffers, reused across nodes and rounds.
    pool: Vec<Histogram>,
}

impl ClassState {
    /// Fits slot `k`'s tree of the round and adds it to the scores.
    fn boost(&mut self, k: usize, input: &RoundInput) -> Tree {
        self.rows.clear();
        self.rows.extend_from_slice(input.sample);
        let (mut g, mut h) = (0.0, 0.0);
        for &r in &self.rows {
            let [gr, hr] = input.gh[r as usize * input.slots + k];
            g += gr;
            h += hr;
        }

        let n_rows = self.rows.len();
        let mut grower = Grower {
            data: input.data,
            gh: GhColumn {
                gh: input.gh,
                slots: input.slots,
                slot: k,
            },
            params: input.params,
            rows: &mut self.rows,
            tmp: &mut self.tmp,
            pool: &mut self.pool,
            nodes: Vec::new(),
            split_bins: Vec::new(),
            leaves: Vec::new(),
        };
        let root_hist = grower
            .can_split(0, n_rows, h)
            .then(|| grower.root_histogram(input.root));
        grower.grow(0, n_rows, g, h, root_hist, 0);
        let Grower {
            nodes,
            split_bins,
            leaves,
            ..
        } = grower;

        for &(start, end, value) in &leaves {
            for &r in &self.rows[start..end] {
                self.scores[r as usize] += value;
            }
        }
        for &r in input.oob {
            let r = r as usize;
            self.scores[r] += value_by_bins(&nodes, &split_bins, input.data.row(r));
        }
        let tree = Tree { nodes };
        if let Some(xv) = input.val {
            for (s, row) in self
                .val_scores
                .iter_mut()
                .zip(xv.chunks_exact(input.data.n_features))
            {
                *s += tree.value(row);
            }
        }
        tree
    }
}

/// A tree walk on training bins (`split_bins` parallel to `nodes`).
fn value_by_bins(nodes: &[Node], split_bins: &[u8], row_bins: &[u8]) -> f64 {
    let mut i = 0;
    loop {
        match nodes[i] {
            Node::Leaf { value } => return value,
            Node::Split {
                feature,
                left,
                right,
                ..
            } => {
                i = if row_bins[feature as usize] > split_bins[i] {
                    right
                } else {
                    left
                } as usize
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Split {
    feature: usize,
    /// Bins `0..=bin` go left.
    bin: usize,
    gain: f64,
    gl: f64,
    hl: f64,
}

/// Grows one tree over `rows`, depth first: with no limit on the number of
/// leaves, each node's split is independent of its cousins, so this gives
/// the depth-wise tree while holding only O(depth) histograms.
struct Grower<'a> {
    data: &'a Binned,
    gh: GhColumn<'a>,
    params: &'a GbdtParams,
    rows: &'a mut [u32],
    tmp: &'a mut Vec<u32>,
    pool: &'a mut Vec<Histogram>,
    nodes: Vec<Node>,
    split_bins: Vec<u8>,
    /// `(start, end, value)`: a leaf's range of `rows`.
    leaves: Vec<(usize, usize, f64)>,
}

impl Grower<'_> {
    fn can_split(&self, depth: usize, n_rows: usize, hessian: f64) -> bool {
        depth < self.params.max_depth
            && n_rows >= 2
            && hessian >= 2.0 * self.params.min_child_weight
    }

    fn buffer(&mut self) -> Histogram {
        self.pool
            .pop()
            .unwrap_or_else(|| vec![[[0.0; 2]; BIN_LIMIT]; self.data.n_features])
    }

    fn histogram(&mut self, start: usize, end: usize) -> Histogram {
        let mut hist = self.buffer();
        build_histogram(self.data, self.gh, &self.rows[start..end], &mut hist);
        hist
    }

    /// This slot's share of the round's joint root histograms.
    fn root_histogram(&mut self, root: &[[f64; 2]]) -> Histogram {
        let mut hist = self.buffer();
        let (stride, slots, slot) = (self.data.stride, self.gh.slots, self.gh.slot);
        for (cells, joint) in hist.iter_mut().zip(root.chunks_exact(stride * slots)) {
            for (cell, bin) in cells.iter_mut().zip(joint.chunks_exact(slots)) {
                *cell = bin[slot];
            }
        }
        hist
    }

    fn grow(
        &mut self,
        start: usize,
        end: usize,
        g: f64,
        h: f64,
        hist: Option<Histogram>,
        depth: usize,
    ) -> u32 {
        let id = self.nodes.len();
        self.nodes.push(Node::Leaf { value: 0.0 });
        self.split_bins.push(0);
        let Some(mut parent) = hist else {
            return self.leaf(id, start, end, g, h);
        };
        let Some(split) = best_split(self.data, &parent, g, h, self.params) else {
            self.pool.push(parent);
            return self.leaf(id, start, end, g, h);
        };
        let mid = self.partition(start, end, split.feature, split.bin as u8);
        // Histogram subtraction leaves rounding residue in empty bins; with
        // min_child_weight 0 that can pass for a split with an empty side.
        if mid == start || mid == end {
            self.pool.push(parent);
            return self.leaf(id, start, end, g, h);
        }
        let (gl, hl) = (split.gl, split.hl);
        let (gr, hr) = (g - gl, h - hl);
        let need_left = self.can_split(depth + 1, mid - start, hl);
        let need_right = self.can_split(depth + 1, end - mid, hr);
        let (hist_left, hist_right) = if need_left || need_right {
            let left_smaller = mid - start <= end - mid;
            let small = if left_smaller {
                self.histogram(start, mid)
            } else {
                self.histogram(mid, end)
            };
            let need_large = if left_smaller { need_right } else { need_left };
            if need_large {
                let stride = self.data.stride;
                for (p, s) in parent.iter_mut().zip(&small) {
                    for (pc, sc) in p[..stride].iter_mut().zip(&s[..stride]) {
                        pc[0] -= sc[0];
                        pc[1] -= sc[1];
                    }
                }
            }
            let (l, r) = if left_smaller {
                (small, parent)
            } else {
                (parent, small)
            };
            (self.keep_if(need_left, l), self.keep_if(need_right, r))
        } else {
            self.pool.push(parent);
            (None, None)
        };
        let left = self.grow(start, mid, gl, hl, hist_left, depth + 1);
        let right = self.grow(mid, end, gr, hr, hist_right, depth + 1);
        self.nodes[id] = Node::Split {
            feature: split.feature as u32,
            threshold: self.data.cuts[split.feature][split.bin],
            left,
            right,
            gain: json_exact(split.gain),
        };
        self.split_bins[id] = split.bin as u8;
        id as u32
    }

    fn keep_if(&mut self, keep: bool, hist: Histogram) -> Option<Histogram> {
        if keep {
            Some(hist)
        } else {
            self.pool.push(hist);
            None
        }
    }

    fn leaf(&mut self, id: usize, start: usize, end: usize, g: f64, h: f64) -> u32 {
        let denominator = h + self.params.l2;
        let value = if denominator > 0.0 {
            json_exact(-g / denominator * self.params.learning_rate)
        } else {
            0.0
        };
        self.nodes[id] = Node::Leaf { value };
        self.leaves.push((start, end, value));
        id as u32
    }

    /// Stable partition of `rows[start..end]`, left rows first; returns the
    /// boundary. Stable keeps rows ascending for the children's histograms.
    fn partition(&mut self, start: usize, end: usize, feature: usize, bin: u8) -> usize {
        let n = self.data.bins.len() / self.data.n_features;
        let column = &self.data.columns[feature * n..(feature + 1) * n];
        self.tmp.clear();
        self.tmp.resize(end - start, 0);
        let (mut left, mut right) = (start, 0);
        // Branch-free: which side a row goes is a coin flip to the predictor.
        for i in start..end {
            let r = self.rows[i];
            let goes_left = column[r as usize] <= bin;
            self.rows[left] = r;
            self.tmp[right] = r;
            left += usize::from(goes_left);
            right += usize::from(!goes_left);
        }
        self.rows[left..end].copy_from_slice(&self.tmp[..right]);
        left
    }
}

/// One slot's column of the row-major `(g, h)` matrix (`slots` per row).
#[derive(Clone, Copy)]
struct GhColumn<'a> {
    gh: &'a [[f64; 2]],
    slots: usize,
    slot: usize,
}

/// Sums `(g, h)` per feature and bin over `rows` into `hist`. Threads split
/// the features, never the rows: each cell is summed by one thread in row
/// order, so the result does not depend on the thread count.
fn build_histogram(data: &Binned, gh: GhColumn, rows: &[u32], hist: &mut [FeatureCells]) {
    let nf = data.n_features;
    if rows.len() * nf < PARALLEL_HISTOGRAM_WORK {
        accumulate(data, gh, rows, 0, hist);
        return;
    }
    let features_per_task = nf.div_ceil(2 * rayon::current_num_threads()).max(4);
    hist.par_chunks_mut(features_per_task)
        .enumerate()
        .for_each(|(task, chunk)| accumulate(data, gh, rows, task * features_per_task, chunk));
}

/// `hist` holds the features from `first_feature` on.
fn accumulate(
    data: &Binned,
    gh: GhColumn,
    rows: &[u32],
    first_feature: usize,
    hist: &mut [FeatureCells],
) {
    for cells in hist.iter_mut() {
        cells[..data.stride].fill([0.0; 2]);
    }
    let (nf, n) = (data.n_features, hist.len());
    for (i, &r) in rows.iter().enumerate() {
        // Touch a row a few ahead: a node's rows are scattered, so without
        // this every row would wait for its bins and gradient from memory.
        if let Some(&ahead) = rows.get(i + PREFETCH_ROWS) {
            let ahead = ahead as usize;
            std::hint::black_box((
                data.bins[ahead * nf + first_feature],
                gh.gh[ahead * gh.slots + gh.slot][0],
            ));
        }
        let r = r as usize;
        let [g, h] = gh.gh[r * gh.slots + gh.slot];
        let start = r * nf + first_feature;
        // A u8 bin always indexes a 256-cell array: no bounds check here.
        for (cells, &b) in hist.iter_mut().zip(&data.bins[start..start + n]) {
            let cell = &mut cells[b as usize];
            cell[0] += g;
            cell[1] += h;
        }
    }
}

/// The root histograms of every slot at once, cell `(feature, bin, slot)` at
/// `(feature * stride + bin) * slots + slot`: the slots' trees share the
/// round's rows, so each row's bins are read once for all of them. Sums run
/// in the same row order as [`accumulate`], so the result is the same.
fn root_histograms(
    data: &Binned,
    gh: &[[f64; 2]],
    slots: usize,
    rows: &[u32],
    hist: &mut [[f64; 2]],
) {
    let nf = data.n_features;
    let per_feature = data.stride * slots;
    let features_per_task = nf.div_ceil(2 * rayon::current_num_threads()).max(1);
    hist.par_chunks_mut(features_per_task * per_feature)
        .enumerate()
        .for_each(|(task, chunk)| {
            chunk.fill([0.0; 2]);
            let first_feature = task * features_per_task;
            let n = chunk.len() / per_feature;
            for &r in rows {
                let r = r as usize;
                let row_gh = &gh[r * slots..(r + 1) * slots];
                let start = r * nf + first_feature;
                for (cells, &b) in chunk
                    .chunks_exact_mut(per_feature)
                    .zip(&data.bins[start..start + n])
                {
                    let at = b as usize * slots;
                    for (cell, v) in cells[at..at + slots].iter_mut().zip(row_gh) {
                        cell[0] += v[0];
                        cell[1] += v[1];
                    }
                }
            }
        });
}

/// The split of largest gain over all features and cuts, if any beats
/// [`MIN_SPLIT_GAIN`] with both children keeping `min_child_weight`. Ties go
/// to the lowest feature, then the lowest cut.
fn best_split(
    data: &Binned,
    hist: &[FeatureCells],
    g: f64,
    h: f64,
    params: &GbdtParams,
) -> Option<Split> {
    let (l2, min_child) = (params.l2, params.min_child_weight);
    let parent_denominator = h + l2;
    if parent_denominator <= 0.0 {
        return None;
    }
    let parent = g * g / parent_denominator;
    let mut best: Option<Split> = None;
    let mut best_gain = MIN_SPLIT_GAIN;
    for (feature, (cuts, cells)) in data.cuts.iter().zip(hist).enumerate() {
        let cells = &cells[..cuts.len()];
        let (mut gl, mut hl) = (0.0, 0.0);
        for (bin, cell) in cells.iter().enumerate() {
            gl += cell[0];
            hl += cell[1];
            let hr = h - hl;
            if hl < min_child || hr < min_child {
                continue;
            }
            let (dl, dr) = (hl + l2, hr + l2);
            if dl <= 0.0 || dr <= 0.0 {
                continue;
            }
            let gr = g - gl;
            let gain = gl * gl / dl + gr * gr / dr - parent;
            if gain > best_gain {
                best_gain = gain;
                best = Some(Split {
                    feature,
                    bin,
                    gain,
                    gl,
                    hl,
                });
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Uniform test data from the module's own generator.
    fn uniform(rng: &mut SplitMix64, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * rng.next_f64()
    }

    /// Two informative features in [-1, 1] plus `noise` uninformative ones.
    /// Class 0 is the first and third quadrants, class 1 the second, class 2
    /// the fourth.
    fn quadrants(n: usize, noise: usize, seed: u64) -> (Array2<f64>, Vec<usize>) {
        let mut rng = SplitMix64::new(seed);
        let x = Array2::from_shape_fn((n, 2 + noise), |_| uniform(&mut rng, -1.0, 1.0));
        let y = x
            .rows()
            .into_iter()
            .map(|r| match (r[0] > 0.0, r[1] > 0.0) {
                (true, true) | (false, false) => 0,
                (false, true) => 1,
                (true, false) => 2,
            })
            .collect();
        (x, y)
    }

    /// Two informative features in [0, 3) plus `noise` uninformative ones; the
    /// class of a row is `(⌊x0⌋ + ⌊x1⌋) mod 3`, a three-class checkerboard
    /// (XOR-like: no linear model, nor any sum of per-feature terms, has it).
    fn checkerboard(n: usize, noise: usize, seed: u64) -> (Array2<f64>, Vec<usize>) {
        let mut rng = SplitMix64::new(seed);
        let x = Array2::from_shape_fn((n, 2 + noise), |_| uniform(&mut rng, 0.0, 3.0));
        let y = x
            .rows()
            .into_iter()
            .map(|r| (r[0].floor() + r[1].floor()) as usize % 3)
            .collect();
        (x, y)
    }

    fn accuracy(model: &Gbdt, x: &Array2<f64>, y: &[usize]) -> f64 {
        let p = model.predict_proba(x.view());
        let right = p
            .rows()
            .into_iter()
            .zip(y)
            .filter(|(row, &label)| {
                let best = row
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f64::NEG_INFINITY),
                        |b, (i, &v)| if v > b.1 { (i, v) } else { b },
                    );
                best.0 == label
            })
            .count();
        right as f64 / y.len() as f64
    }

    fn small_params() -> GbdtParams {
        GbdtParams {
            rounds: 40,
            max_depth: 3,
            learning_rate: 0.3,
            ..GbdtParams::default()
        }
    }

    #[test]
    fn learns_a_multiclass_checkerboard_that_additive_models_cannot() {
        let (x, y) = checkerboard(1500, 3, 1);
        let (xt, yt) = checkerboard(1000, 3, 2);
        let model = small_params()
            .fit(x.view(), &y, 3, None, None)
            .expect("fit");
        assert_eq!(
            (model.n_classes(), model.n_features(), model.rounds()),
            (3, 5, 40)
        );
        let acc = accuracy(&model, &xt, &yt);
        // Depth-1 trees make an additive model (a sum of per-feature terms
        // per class), which cannot express the checkerboard.
        let stumps = GbdtParams {
            max_depth: 1,
            ..small_params()
        }
        .fit(x.view(), &y, 3, None, None)
        .expect("fit stumps");
        let stump_acc = accuracy(&stumps, &xt, &yt);
        eprintln!("held-out accuracy: depth 3 {acc:.3}, stumps {stump_acc:.3}");
        assert!(acc > 0.95, "accuracy {acc}");
        assert!(stump_acc < 0.8, "stump accuracy {stump_acc}");
        let importance = model.feature_importance();
        assert!(importance[0] > 10.0 * importance[2..].iter().sum::<f64>());
        assert!(importance[1] > 10.0 * importance[2..].iter().sum::<f64>());
    }

    #[test]
    fn binary_uses_one_logistic_tree_per_round() {
        let circle = |n, seed| {
            let (x, _) = quadrants(n, 2, seed);
            let y: Vec<usize> = x
                .rows()
                .into_iter()
                .map(|r| usize::from(r[0] * r[0] + r[1] * r[1] < 0.5))
                .collect();
            (x, y)
        };
        let (x, y) = circle(1500, 3);
        let (xt, yt) = circle(1000, 4);
        let model = small_params()
            .fit(x.view(), &y, 2, None, None)
            .expect("fit");
        assert_eq!(model.trees.len(), 40, "one tree per round");
        let p = model.predict_proba(xt.view());
        assert_eq!(p.ncols(), 2);
        for row in p.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-12);
        }
        let acc = accuracy(&model, &xt, &yt);
        eprintln!("binary held-out accuracy: {acc:.3}");
        assert!(acc > 0.93, "accuracy {acc}");
    }

    #[test]
    fn json_round_trip_is_exact() {
        let (x, y) = quadrants(800, 3, 5);
        // Awkward values: thresholds between 17-digit numbers.
        let x = x.mapv(|v| v * std::f64::consts::PI / 7.0);
        let model = GbdtParams {
            row_subsample: 0.7,
            ..small_params()
        }
        .fit(x.view(), &y, 3, None, None)
        .expect("fit");
        let json = serde_json::to_string(&model).expect("serialise");
        let back: Gbdt = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back, model);
        assert_eq!(back.predict_proba(x.view()), model.predict_proba(x.view()));
        let pretty: Gbdt =
            serde_json::from_str(&serde_json::to_string_pretty(&model).expect("pretty"))
                .expect("deserialise pretty");
        assert_eq!(pretty, model);
    }

    #[test]
    fn corrupt_models_fail_to_load() {
        let (x, y) = quadrants(200, 0, 6);
        let model = small_params()
            .fit(x.view(), &y, 3, None, None)
            .expect("fit");
        let mut value = serde_json::to_value(&model).expect("to value");
        value["trees"][0]["nodes"][0]["split"]["left"] = serde_json::json!(0);
        let err = serde_json::from_value::<Gbdt>(value).expect_err("cycle");
        assert!(err.to_string().contains("malformed"), "{err}");
        let mut value = serde_json::to_value(&model).expect("to value");
        value["base_score"] = serde_json::json!([0.0]);
        assert!(serde_json::from_value::<Gbdt>(value).is_err());
    }

    #[test]
    fn fits_are_deterministic_for_a_seed() {
        let (x, y) = quadrants(600, 4, 7);
        let params = GbdtParams {
            row_subsample: 0.6,
            seed: 11,
            ..small_params()
        };
        let a = params.fit(x.view(), &y, 3, None, None).expect("fit a");
        let b = params.fit(x.view(), &y, 3, None, None).expect("fit b");
        assert_eq!(a, b);
        let other = GbdtParams { seed: 12, ..params }
            .fit(x.view(), &y, 3, None, None)
            .expect("fit other");
        assert_ne!(a.trees, other.trees);
    }

    #[test]
    fn sample_weights_shift_predictions() {
        // Labels independent of the features: the model can only learn priors.
        let mut rng = SplitMix64::new(8);
        let x = Array2::from_shape_fn((900, 3), |_| uniform(&mut rng, 0.0, 1.0));
        let y: Vec<usize> = (0..900).map(|i| i % 3).collect();
        let mean_p2 = |w: Option<&[f64]>| {
            let model = small_params().fit(x.view(), &y, 3, w, None).expect("fit");
            model
                .predict_proba(x.view())
                .column(2)
                .mean()
                .expect("rows")
        };
        let plain = mean_p2(None);
        let weights: Vec<f64> = y.iter().map(|&c| if c == 2 { 10.0 } else { 1.0 }).collect();
        let weighted = mean_p2(Some(&weights));
        assert!(
            weighted > plain + 0.3,
            "plain {plain:.3}, weighted {weighted:.3}"
        );
        // Zero weight removes rows: class 2 all but vanishes.
        let zeroed: Vec<f64> = y.iter().map(|&c| if c == 2 { 0.0 } else { 1.0 }).collect();
        assert!(mean_p2(Some(&zeroed)) < 0.01);
    }

    #[test]
    fn early_stopping_keeps_the_best_round() {
        // Noisy labels: a third of them random, so overfitting sets in.
        let noisy = |n, seed| {
            let (x, mut y) = quadrants(n, 6, seed);
            let mut rng = SplitMix64::new(seed + 100);
            for label in &mut y {
                if rng.next_f64() < 0.35 {
                    *label = (rng.next_u64() % 3) as usize;
                }
            }
            (x, y)
        };
        let (x, y) = noisy(600, 9);
        let (xv, yv) = noisy(400, 10);
        let params = GbdtParams {
            rounds: 50,
            max_depth: 4,
            learning_rate: 0.5,
            min_child_weight: 0.1,
            l2: 0.1,
            early_stopping_rounds: 5,
            ..GbdtParams::default()
        };
        let model = params
            .fit(x.view(), &y, 3, None, Some((xv.view(), &yv)))
            .expect("fit");
        let kept = model.rounds();
        assert!(kept > 0 && kept < 50, "kept {kept} rounds");

        // The same fit without validation runs on past the stop; its prefix
        // is the early-stopped model, and its losses bottom out there.
        let full = GbdtParams {
            rounds: kept + params.early_stopping_rounds,
            ..params
        }
        .fit(x.view(), &y, 3, None, None)
        .expect("fit full");
        assert_eq!(full.trees[..model.trees.len()], model.trees[..]);
        let losses: Vec<f64> = (0..=full.rounds())
            .map(|r| {
                let mut prefix = full.clone();
                prefix.trees.truncate(r * 3);
                prefix.log_loss(xv.view(), &yv).expect("loss")
            })
            .collect();
        let best = losses[kept];
        assert!(
            losses.iter().all(|&l| l >= best),
            "kept {kept}, losses {losses:?}"
        );
        assert!(losses[..kept].iter().all(|&l| l > best));
    }

    #[test]
    fn bad_params_are_named_by_field() {
        let bad = GbdtParams {
            rounds: 0,
            learning_rate: f64::NAN,
            max_depth: 0,
            min_child_weight: -1.0,
            l2: f64::INFINITY,
            max_bins: 257,
            row_subsample: 0.0,
            early_stopping_rounds: 0,
            seed: 1,
        };
        let errors = bad.clone().check().expect_err("invalid");
        for field in [
            "rounds",
            "learning_rate",
            "max_depth",
            "min_child_weight",
            "l2",
            "max_bins",
            "row_subsample",
            "early_stopping_rounds",
        ] {
            assert!(errors.has_field(field), "{field} not named in {errors}");
        }
        assert_eq!(errors.errors().len(), 8);
        assert!(GbdtParams::default().check().is_ok());

        let (x, y) = quadrants(20, 0, 1);
        let err = bad
            .fit(x.view(), &y, 3, None, None)
            .expect_err("fit refuses");
        assert!(matches!(err, GbdtError::InvalidParams(_)), "{err}");
        assert!(err.to_string().contains("max_bins"), "{err}");
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        fn fit(
            x: ArrayView2<f64>,
            y: &[usize],
            n_classes: usize,
            weights: Option<&[f64]>,
            validation: Option<(ArrayView2<f64>, &[usize])>,
        ) -> GbdtError {
            small_params()
                .fit(x, y, n_classes, weights, validation)
                .expect_err("bad input")
        }
        let p = small_params();
        let (x, y) = quadrants(20, 0, 1);
        let empty = Array2::<f64>::zeros((0, 2));
        let no_columns = Array2::<f64>::zeros((20, 0));
        let narrow = Array2::<f64>::zeros((20, 1));
        let cases: Vec<(GbdtError, &str)> = vec![
            (
                fit(empty.view(), &[], 3, None, None),
                "training data has no rows",
            ),
            (
                fit(no_columns.view(), &y, 3, None, None),
                "no feature columns",
            ),
            (fit(x.view(), &y, 1, None, None), "at least 2 classes"),
            (fit(x.view(), &y[1..], 3, None, None), "expected 20 labels"),
            (
                fit(x.view(), &y, 2, None, None),
                "has label 2, but n_classes is 2",
            ),
            (
                fit(x.view(), &y, 3, Some(&[1.0; 3][..]), None),
                "expected 20 sample weights",
            ),
            (
                fit(x.view(), &y, 3, Some(&[-1.0; 20][..]), None),
                "row 0 is -1",
            ),
            (
                fit(x.view(), &y, 3, Some(&[f64::NAN; 20][..]), None),
                "row 0 is NaN",
            ),
            (
                fit(x.view(), &y, 3, Some(&[0.0; 20][..]), None),
                "positive, finite sum",
            ),
            (
                fit(x.view(), &y, 3, None, Some((empty.view(), &[][..]))),
                "validation data has no rows",
            ),
            (
                fit(x.view(), &y, 3, None, Some((narrow.view(), &y))),
                "validation feature columns",
            ),
            (
                fit(x.view(), &y, 3, None, Some((x.view(), &y[..5]))),
                "validation labels",
            ),
            (
                fit(x.view(), &y, 3, None, Some((x.view(), &[7; 20][..]))),
                "validation row 0 has label 7",
            ),
        ];
        for (err, expected) in cases {
            assert!(err.to_string().contains(expected), "{err} lacks {expected}");
        }
        let model = p.fit(x.view(), &y, 3, None, None).expect("fit");
        assert!(model.log_loss(x.view(), &y[1..]).is_err());
        assert!(model.log_loss(x.view(), &[9; 20]).is_err());
    }

    #[test]
    fn probabilities_stay_finite_on_extreme_inputs() {
        let (mut x, y) = quadrants(400, 1, 12);
        // Extreme and missing values in training too: no panic, finite
        // thresholds, a loadable model.
        x[[0, 2]] = f64::INFINITY;
        x[[1, 2]] = f64::NEG_INFINITY;
        x[[2, 2]] = f64::NAN;
        x[[3, 2]] = 1e300;
        x[[4, 2]] = -1e300;
        for classes in [2, 3] {
            let y: Vec<usize> = y.iter().map(|&c| c.min(classes - 1)).collect();
            let model = GbdtParams {
                learning_rate: 1.0,
                l2: 0.0,
                min_child_weight: 0.0,
                ..small_params()
            }
            .fit(x.view(), &y, classes, None, None)
            .expect("fit");
            let json = serde_json::to_string(&model).expect("serialise");
            let back: Gbdt = serde_json::from_str(&json).expect("loadable");
            assert_eq!(back, model);
            let extremes = [
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::MAX,
                f64::MIN,
                f64::MIN_POSITIVE,
                -0.0,
                1e300,
            ];
            let rows = Array2::from_shape_fn((extremes.len() * 3, 3), |(i, j)| {
                extremes[(i + j * (i / extremes.len() + 1)) % extremes.len()]
            });
            let p = model.predict_proba(rows.view());
            for row in p.rows() {
                assert!(row.iter().all(|v| v.is_finite() && *v >= 0.0), "{row}");
                assert!((row.sum() - 1.0).abs() < 1e-12, "{row}");
            }
            // The same probabilities one row at a time, from a strided view.
            let mut out = vec![0.0; classes];
            let transposed =
                Array2::from_shape_vec((3, rows.nrows()), rows.t().iter().copied().collect())
                    .expect("shape");
            for (i, row) in transposed.t().rows().into_iter().enumerate() {
                assert!(row.as_slice().is_none(), "strided");
                let row: Vec<f64> = row.to_vec();
                model.predict_proba_row(&row, &mut out);
                assert_eq!(out, p.row(i).to_vec());
            }
            assert_eq!(model.predict_proba(transposed.t()), p);
        }
    }

    #[test]
    fn bins_are_quantiles_or_one_per_value() {
        let few = ndarray::Array1::from_vec(vec![3.0, 1.0, 2.0, 1.0, -0.0, 0.0, f64::NAN]);
        assert_eq!(cut_points(few.view(), 64), vec![0.5, 1.5, 2.5]);
        assert_eq!(bin_of(&[0.5, 1.5, 2.5], f64::NAN), 0);
        assert_eq!(bin_of(&[0.5, 1.5, 2.5], 1.5), 1);
        assert_eq!(bin_of(&[0.5, 1.5, 2.5], 9.0), 3);

        let many = ndarray::Array1::from_iter((0..10_000).map(|i| f64::from(i) / 10_000.0));
        let cuts = cut_points(many.view(), 16);
        assert_eq!(cuts.len(), 15);
        let counts = (0..10_000).fold(vec![0usize; 16], |mut c, i| {
            c[bin_of(&cuts, many[i]) as usize] += 1;
            c
        });
        assert!(
            counts.iter().all(|&c| (600..=650).contains(&c)),
            "{counts:?}"
        );

        // Half the rows at 0: zero gets a bin of its own, apart from the
        // sparse negative values.
        let heavy = ndarray::Array1::from_iter((0..1000).map(|i| {
            if i < 500 {
                0.0
            } else {
                f64::from(i - 750)
            }
        }));
        let cuts = cut_points(heavy.view(), 8);
        assert!(cuts.len() <= 7);
        assert_ne!(bin_of(&cuts, 0.0), bin_of(&cuts, -1.0));
        assert_ne!(bin_of(&cuts, 0.0), bin_of(&cuts, 1.0));
    }

    #[test]
    fn sampling_draws_exactly_the_requested_rows() {
        let mut rng = SplitMix64::new(3);
        let (mut sample, mut oob) = (Vec::new(), Vec::new());
        draw_sample(&mut rng, 1000, 800, &mut sample, &mut oob);
        assert_eq!((sample.len(), oob.len()), (800, 200));
        assert!(sample.windows(2).all(|w| w[0] < w[1]));
        draw_sample(&mut rng, 10, 10, &mut sample, &mut oob);
        assert_eq!((sample.len(), oob.len()), (10, 0));
    }

    /// Not a test of speed: prints how long the reference workload takes.
    /// `cargo test --release -p features gbdt -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn timing_30k_rows_120_features_5_classes() {
        let (n, nf, classes) = (30_000, 120, 5);
        let mut rng = SplitMix64::new(42);
        let x = Array2::from_shape_fn((n, nf), |_| uniform(&mut rng, 0.0, 1.0));
        let y: Vec<usize> = x
            .rows()
            .into_iter()
            .map(|r| {
                let s = r[0] + r[1] * r[2] + (r[3] - 0.5).abs() + 0.3 * rng.next_f64();
                ((s * 2.0) as usize).min(classes - 1)
            })
            .collect();
        let params = GbdtParams {
            rounds: 300,
            max_depth: 4,
            ..GbdtParams::default()
        };
        let started = std::time::Instant::now();
        let model = params.fit(x.view(), &y, classes, None, None).expect("fit");
        let fit = started.elapsed();
        let row: Vec<f64> = x.row(0).to_vec();
        let mut out = vec![0.0; classes];
        let started = std::time::Instant::now();
        for _ in 0..1000 {
            model.predict_proba_row(&row, &mut out);
        }
        let one_row = started.elapsed() / 1000;
        let leaves: usize = model
            .trees
            .iter()
            .map(|t| {
                t.nodes
                    .iter()
                    .filter(|n| matches!(n, Node::Leaf { .. }))
                    .count()
            })
            .sum();
        eprintln!(
            "fit {n}x{nf}, {classes} classes, {} rounds, depth 4 on {} threads: {fit:.2?} \
             ({leaves} leaves); one-row predict_proba: {one_row:.2?}; train accuracy {:.3}",
            model.rounds(),
            rayon::current_num_threads(),
            accuracy(&model, &x, &y),
        );
    }
}
