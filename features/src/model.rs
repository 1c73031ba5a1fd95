//! Fitted profile models: the serialisable types training produces and serving
//! loads unchanged (linfa's params → fit → fitted-model pattern). Each model
//! carries its own preprocessing (the fitted standardiser) and class
//! vocabulary, so applying it needs nothing but a feature vector.

use crate::definition::TagFeatureIndices;
use crate::gbdt::Gbdt;
use crate::softmax::Softmax;
use linfa::prelude::*;
use linfa_bayes::{GaussianNb, NaiveBayes};
use linfa_logistic::MultiFittedLogisticRegression;
use linfa_trees::DecisionTree;
use ndarray::{Array1, Array2, Axis};
use serde::{Deserialize, Serialize};

/// Per-feature centring and scaling fitted on training rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Standardizer {
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
}

impl Standardizer {
    /// Mean and standard deviation per column; constant columns get scale 1.
    pub fn fit(x: &Array2<f64>) -> Standardizer {
        let n = x.nrows().max(1) as f64;
        let mean: Vec<f64> = x.axis_iter(Axis(1)).map(|c| c.sum() / n).collect();
        let scale = x
            .axis_iter(Axis(1))
            .zip(&mean)
            .map(|(c, m)| {
                let var = c.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n;
                if var > 1e-24 {
                    var.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        Standardizer { mean, scale }
    }

    pub fn transform(&self, x: &Array2<f64>) -> Array2<f64> {
        let mut out = x.clone();
        // Row by row: matrices are row-major, and walking columns strided
        // through memory made this the costliest step of scoring in serving.
        for mut row in out.rows_mut() {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                *v = (*v - m) / s;
            }
        }
        out
    }
}

/// The fitted estimator of one model family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Classifier {
    /// linfa's logistic regression: what artifacts before definition
    /// version 5 hold; training now fits [`Classifier::Softmax`].
    Logistic(MultiFittedLogisticRegression<f64, usize>),
    /// Multinomial logistic regression ([`crate::softmax`]).
    Softmax(Softmax),
    NaiveBayes(GaussianNb<f64, usize>),
    Tree(DecisionTree<f64, usize>),
    /// Gradient-boosted trees ([`crate::gbdt`]).
    Gbdt(Gbdt),
    /// The mean of the members' probabilities (each member standardises
    /// the raw vector itself; this model's own standardiser is unused).
    Average(Vec<ClassifierModel>),
}

/// A multiclass model over a named vocabulary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifierModel {
    /// Family as reported (e.g. `logistic_regression`, `gaussian_nb`).
    pub family: String,
    /// Class names; class `i` of the estimator is `classes[i]`.
    pub classes: Vec<String>,
    pub standardizer: Standardizer,
    pub classifier: Classifier,
    /// Probabilities are multiplied by these and renormalised: dividing by the
    /// training class frequencies turns a model of `p(class | x)` into a
    /// class-balanced decision.
    pub class_weights: Option<Vec<f64>>,
}

/// One prediction: class index and, for probabilistic families, its
/// probability.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prediction {
    pub class: usize,
    pub confidence: Option<f64>,
}

fn log_sum_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + values.map(|v| (v - max).exp()).sum::<f64>().ln()
}

impl ClassifierModel {
    /// Class probabilities, `(rows, classes)`, or `None` for families without
    /// them (decision trees).
    pub fn probabilities(&self, x: &Array2<f64>) -> Option<Array2<f64>> {
        let k = self.classes.len();
        let mut out = Array2::<f64>::zeros((x.nrows(), k));
        let z = match &self.classifier {
            Classifier::Average(_) => x.clone(),
            _ => self.standardizer.transform(x),
        };
        match &self.classifier {
            Classifier::Average(members) => {
                for m in members {
                    out += &m.probabilities(x)?;
                }
                out /= members.len().max(1) as f64;
            }
            Classifier::Logistic(m) => {
                let p = m.predict_probabilities(&z);
                for (j, &class) in m.classes().iter().enumerate() {
                    if class < k {
                        out.column_mut(class).assign(&p.column(j));
                    }
                }
            }
            Classifier::NaiveBayes(m) => {
                // linfa's predict_proba normalises without subtracting the
                // maximum and can overflow; normalise in log space instead.
                let jll = m.joint_log_likelihood(z.view());
                for row in 0..x.nrows() {
                    let terms: Vec<(usize, f64)> = jll.iter().map(|(c, v)| (**c, v[row])).collect();
                    let norm = log_sum_exp(terms.iter().map(|(_, v)| *v));
                    for (class, v) in terms {
                        if class < k {
                            out[[row, class]] = (v - norm).exp();
                        }
                    }
                }
            }
            Classifier::Softmax(m) => {
                let p = m.predict_proba(z.view());
                for class in 0..k.min(p.ncols()) {
                    out.column_mut(class).assign(&p.column(class));
                }
            }
            Classifier::Gbdt(m) => {
                let p = m.predict_proba(z.view());
                for class in 0..k.min(p.ncols()) {
                    out.column_mut(class).assign(&p.column(class));
                }
            }
            Classifier::Tree(_) => return None,
        }
        if let Some(w) = &self.class_weights {
            for mut row in out.axis_iter_mut(Axis(0)) {
                for (p, w) in row.iter_mut().zip(w) {
                    *p *= w;
                }
                let sum = row.sum();
                if sum > 0.0 {
                    row.mapv_inplace(|p| p / sum);
                }
            }
        }
        Some(out)
    }

    pub fn predict(&self, x: &Array2<f64>) -> Vec<Prediction> {
        match self.probabilities(x) {
            Some(p) => p
                .axis_iter(Axis(0))
                .map(|row| {
                    let (class, confidence) =
                        row.iter()
                            .enumerate()
                            .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
                                if v > best.1 {
                                    (i, v)
                                } else {
                                    best
                                }
                            });
                    Prediction {
                        class,
                        confidence: Some(confidence),
                    }
                })
                .collect(),
            None => {
                let z = self.standardizer.transform(x);
                let predicted: Array1<usize> = match &self.classifier {
                    Classifier::Tree(t) => t.predict(&z),
                    Classifier::Logistic(m) => m.predict(&z),
                    Classifier::NaiveBayes(m) => m.predict(&z),
                    // Always probabilistic: answered above.
                    Classifier::Gbdt(_) | Classifier::Softmax(_) | Classifier::Average(_) => {
                        Array1::zeros(z.nrows())
                    }
                };
                predicted
                    .iter()
                    .map(|&class| Prediction {
                        class,
                        confidence: None,
                    })
                    .collect()
            }
        }
    }

    /// Class indices ranked by probability (strongest first), per row; for
    /// non-probabilistic families the predicted class alone.
    pub fn rank(&self, x: &Array2<f64>, top: usize) -> Vec<Vec<(usize, f64)>> {
        match self.probabilities(x) {
            Some(p) => p
                .axis_iter(Axis(0))
                .map(|row| {
                    let mut ranked: Vec<(usize, f64)> = row.iter().copied().enumerate().collect();
                    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    ranked.truncate(top);
                    ranked
                })
                .collect(),
            None => self
                .predict(x)
                .into_iter()
                .map(|p| vec![(p.class, 1.0)])
                .collect(),
        }
    }

    /// A one-row matrix from a feature vector.
    pub fn row(vector: &[f64]) -> Array2<f64> {
        Array2::from_shape_vec((1, vector.len()), vector.to_vec())
            .unwrap_or_else(|_| Array2::zeros((1, 0)))
    }
}

/// Ranks topics for a user: a pointwise learning-to-rank model. Each
/// (user, topic) pair is described by
/// - the user's decayed, lifetime and category engagement share with that
///   topic, the user's activity (how much those shares can be trusted) and
///   their products;
/// - where the topic stands among the user's topics (first, second, … by
///   category share and by decayed share): precision at the top is what
///   counts, and a rank says more than a share alone;
/// - a co-occurrence score: what users who shop the categories this user
///   shops go on to engage with, learnt across training users (`affinity`),
///   which carries the signal for short histories and for topics the user
///   has not touched yet;
/// - the topic's identity (its prior popularity).
///
/// A binary classifier scores "this topic is one of the user's interests",
/// and topics are ranked by that probability.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicRanker {
    pub topics: Vec<String>,
    pub pairs: TopicPairFeatures,
    /// Classes `["no", "yes"]` over pair features.
    pub pair_model: ClassifierModel,
}

/// How a feature vector becomes one row of pair features per topic (in
/// [`TopicRanker::topics`] order).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicPairFeatures {
    /// Per topic, the positions of its `tag:`, `tag_lifetime:` and
    /// `category:` features in the feature vector (absent when the topic is
    /// not a catalog tag).
    pub share_indices: Vec<Option<TagFeatureIndices>>,
    /// Position of `log_interactions` in the feature vector.
    pub activity_index: usize,
    /// Positions of every `category:` feature in the feature vector.
    pub category_indices: Vec<usize>,
    /// `affinity[t][c]`: how likely topic `t` is for a user, per unit of
    /// category share `c` (in `category_indices` order).
    pub affinity: Vec<Vec<f64>>,
}

/// Number of non-identity pair features.
pub const PAIR_BASE: usize = 11;

/// `1 / (1 + rank)` of each value among `values` (rank 0 = largest; ties by
/// position), 0 for values that are not positive.
fn reciprocal_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    let mut out = vec![0.0; values.len()];
    for (rank, &i) in order.iter().enumerate() {
        if values[i] > 0.0 {
            out[i] = 1.0 / (1.0 + rank as f64);
        }
    }
    out
}

impl TopicPairFeatures {
    /// The co-occurrence score of every topic for one feature vector.
    fn affinity_scores(&self, row: ndarray::ArrayView1<'_, f64>) -> Vec<f64> {
        self.affinity
            .iter()
            .map(|weights| {
                weights
                    .iter()
                    .zip(&self.category_indices)
                    .map(|(w, &i)| w * row[i])
                    .sum()
            })
            .collect()
    }

    /// Pair features of every (row of `x`, topic), row-major by user.
    pub fn matrix(&self, x: &Array2<f64>) -> Array2<f64> {
        let topics = self.share_indices.len();
        let width = PAIR_BASE + topics;
        let mut out = Array2::<f64>::zeros((x.nrows() * topics, width));
        let mut decayed = vec![0.0; topics];
        let mut lifetime = vec![0.0; topics];
        let mut category = vec![0.0; topics];
        for (u, row) in x.axis_iter(Axis(0)).enumerate() {
            let activity = row[self.activity_index];
            for t in 0..topics {
                (decayed[t], lifetime[t], category[t]) = self.share_indices[t]
                    .map_or((0.0, 0.0, 0.0), |i| {
                        (row[i.decayed], row[i.lifetime], row[i.category])
                    });
            }
            let affinity = self.affinity_scores(row);
            let category_rank = reciprocal_ranks(&category);
            let decayed_rank = reciprocal_ranks(&decayed);
            for t in 0..topics {
                let mut pair = out.row_mut(u * topics + t);
                pair[0] = decayed[t];
                pair[1] = lifetime[t];
                pair[2] = category[t];
                pair[3] = activity;
                pair[4] = decayed[t] * activity;
                pair[5] = lifetime[t] * activity;
                pair[6] = category[t] * activity;
                pair[7] = affinity[t];
                pair[8] = affinity[t] * activity;
                pair[9] = category_rank[t];
                pair[10] = decayed_rank[t];
                pair[PAIR_BASE + t] = 1.0;
            }
        }
        out
    }
}

impl TopicRanker {
    /// Topic indices ranked by score, strongest first, `top` per row.
    pub fn rank(&self, x: &Array2<f64>, top: usize) -> Vec<Vec<(usize, f64)>> {
        let k = self.topics.len();
        let pairs = self.pairs.matrix(x);
        let scores = self
            .pair_model
            .probabilities(&pairs)
            .map(|p| p.column(1).to_owned())
            .unwrap_or_else(|| Array1::zeros(pairs.nrows()));
        (0..x.nrows())
            .map(|u| {
                let mut ranked: Vec<(usize, f64)> =
                    (0..k).map(|t| (t, scores[u * k + t])).collect();
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                ranked.truncate(top);
                ranked
            })
            .collect()
    }

    /// Names of the top topics per row.
    pub fn top_names(&self, x: &Array2<f64>, top: usize) -> Vec<Vec<String>> {
        self.rank(x, top)
            .into_iter()
            .map(|r| r.into_iter().map(|(t, _)| self.topics[t].clone()).collect())
            .collect()
    }
}

/// What an artifact's model file holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProfileModel {
    Classifier(ClassifierModel),
    TopicRanker(TopicRanker),
}

impl ProfileModel {
    pub fn family(&self) -> &str {
        match self {
            ProfileModel::Classifier(m) => &m.family,
            ProfileModel::TopicRanker(m) => &m.pair_model.family,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reciprocal_ranks_order_positive_values_only() {
        assert_eq!(
            reciprocal_ranks(&[0.2, 0.0, 0.5, 0.2]),
            vec![0.5, 0.0, 1.0, 1.0 / 3.0]
        );
    }
}
