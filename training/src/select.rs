//! Choosing a classifier for one target: candidate families and settings,
//! fitted on development users and compared on users they did not see —
//! a validation split when there are many labelled users, k-fold
//! cross-validation when there are few (a few thousand is common in a real
//! shop) — then refitted for the test report and for the artifact.
//!
//! The rule: highest validation macro-F1 among the candidates whose
//! validation accuracy is at least the majority class's; when none is, the
//! best macro-F1 still, and the report says so. Macro-F1 alone prefers a
//! class-balanced model that is right less often than "always the majority"
//! on a skewed label, which is no use to a messaging service.

use std::time::Instant;

use anyhow::{anyhow, Result};
use features::gbdt::GbdtParams;
use features::model::{Classifier, ClassifierModel, Standardizer};
use features::softmax::SoftmaxParams;
use linfa::prelude::*;
use linfa_bayes::GaussianNb;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::metrics::ClassMetrics;

/// Most rows a logistic regression fits on (a class-stratified subset).
pub const MAX_LOGISTIC_ROWS: usize = 10_000;

/// Below this many fit rows, boosting takes small steps (see
/// [`Candidate::all`]).
pub const SMALL_FIT_ROWS: usize = 20_000;

/// The model families a user may choose among (`micro-train train
/// --families`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Family {
    LogisticRegression,
    GaussianNb,
    GradientBoostedTrees,
}

/// A family with its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum Candidate {
    LogisticRegression {
        alpha: f64,
    },
    GaussianNb,
    GradientBoostedTrees {
        #[serde(flatten)]
        params: GbdtParams,
    },
    /// The mean of the members' probabilities.
    Average {
        members: Vec<Candidate>,
    },
}

impl Candidate {
    /// The candidates every classification target tries, for a fit of about
    /// `rows` rows. Boosting takes smaller steps on small data, where fits
    /// are cheap and each step can overfit a few users; on large data it
    /// takes larger ones, so that fitting stays within the time budget.
    pub fn all(seed: u64, rows: usize) -> Vec<Candidate> {
        let small = rows < SMALL_FIT_ROWS;
        let gbdt = |max_depth: usize| Candidate::GradientBoostedTrees {
            params: GbdtParams {
                max_depth,
                learning_rate: if small { 0.1 } else { 0.3 },
                rounds: if small { 500 } else { 250 },
                row_subsample: if small { 0.8 } else { 0.5 },
                max_bins: if small { 64 } else { 32 },
                min_child_weight: if small { 3.0 } else { 1.0 },
                seed,
                ..GbdtParams::default()
            },
        };
        vec![
            Candidate::LogisticRegression { alpha: 1.0 },
            Candidate::GaussianNb,
            gbdt(if small { 2 } else { 3 }),
            gbdt(5),
        ]
    }

    /// The family of a single model (an average has none of its own).
    pub fn family(&self) -> Family {
        match self {
            Candidate::LogisticRegression { .. } => Family::LogisticRegression,
            Candidate::GaussianNb => Family::GaussianNb,
            Candidate::GradientBoostedTrees { .. } | Candidate::Average { .. } => {
                Family::GradientBoostedTrees
            }
        }
    }

    /// Family name as reported (`gradient_boosted_trees_d3`, …).
    pub fn name(&self) -> String {
        match self {
            Candidate::LogisticRegression { .. } => "logistic_regression".to_owned(),
            Candidate::GaussianNb => "gaussian_nb".to_owned(),
            Candidate::GradientBoostedTrees { params } => {
                format!("gradient_boosted_trees_d{}", params.max_depth)
            }
            Candidate::Average { members } => {
                let names: Vec<String> = members.iter().map(Candidate::name).collect();
                format!("average({})", names.join(", "))
            }
        }
    }

    /// The same candidate with its number of rounds fixed to what early
    /// stopping found (the mean over folds), for refits that have no users
    /// to stop on.
    fn with_rounds(&self, rounds: &[usize]) -> Candidate {
        match self {
            Candidate::GradientBoostedTrees { params } if !rounds.is_empty() => {
                Candidate::GradientBoostedTrees {
                    params: GbdtParams {
                        rounds: (rounds.iter().sum::<usize>() / rounds.len()).max(1),
                        ..params.clone()
                    },
                }
            }
            other => other.clone(),
        }
    }

    /// Fits on standardised rows. Gradient-boosted trees stop early on
    /// `stop_on` when given (and report the rounds kept).
    fn fit(
        &self,
        x: &Array2<f64>,
        y: &[usize],
        classes: &[String],
        stop_on: Option<(&Array2<f64>, &[usize])>,
    ) -> Result<Fitted> {
        if let Candidate::Average { members } = self {
            let models = members
                .iter()
                .map(|m| m.fit(x, y, classes, None).map(|f| f.model))
                .collect::<Result<Vec<_>>>()?;
            return Ok(Fitted {
                model: average_model(models, classes),
                rounds: None,
            });
        }
        let started = Instant::now();
        let standardizer = Standardizer::fit(x);
        let z = standardizer.transform(x);
        let (classifier, rounds) = match self {
            Candidate::LogisticRegression { alpha } => {
                // L-BFGS time grows with every row while a few hundred
                // weights are pinned down long before this many.
                let rows = stratified_subset(y, classes.len(), MAX_LOGISTIC_ROWS);
                let m = SoftmaxParams {
                    alpha: *alpha,
                    ..SoftmaxParams::default()
                }
                .fit(
                    z.select(ndarray::Axis(0), &rows).view(),
                    &rows.iter().map(|&i| y[i]).collect::<Vec<_>>(),
                    classes.len(),
                    None,
                )
                .map_err(|e| anyhow!("logistic regression: {e}"))?;
                (Classifier::Softmax(m), None)
            }
            Candidate::GaussianNb => {
                let data = Dataset::new(z, Array1::from(y.to_vec()));
                let m = GaussianNb::params()
                    .fit(&data)
                    .map_err(|e| anyhow!("gaussian naive Bayes: {e}"))?;
                (Classifier::NaiveBayes(m), None)
            }
            Candidate::GradientBoostedTrees { params } => {
                let stop = stop_on.map(|(x, y)| (standardizer.transform(x), y));
                let m = params
                    .clone()
                    .check()
                    .map_err(|e| anyhow!("gradient-boosted trees: {e}"))?
                    .fit(
                        z.view(),
                        y,
                        classes.len(),
                        None,
                        stop.as_ref().map(|(x, y)| (x.view(), *y)),
                    )
                    .map_err(|e| anyhow!("gradient-boosted trees: {e}"))?;
                let rounds = m.rounds();
                (Classifier::Gbdt(m), Some(rounds))
            }
            Candidate::Average { .. } => {
                return Err(anyhow!("an average is fitted member by member"))
            }
        };
        if std::env::var_os("MICRO_TRAIN_VERBOSE").is_some() {
            eprintln!(
                "  {} fitted on {} rows in {:.1}s",
                self.name(),
                y.len(),
                started.elapsed().as_secs_f64()
            );
        }
        Ok(Fitted {
            model: ClassifierModel {
                family: self.name(),
                classes: classes.to_vec(),
                standardizer,
                classifier,
                class_weights: None,
            },
            rounds,
        })
    }
}

/// A fitted candidate, and for boosted trees the rounds it kept.
struct Fitted {
    model: ClassifierModel,
    rounds: Option<usize>,
}

/// Rows to fit on: feature vectors and their classes.
#[derive(Clone, Debug)]
pub struct FitRows {
    pub x: Array2<f64>,
    pub y: Vec<usize>,
}

/// Indices of at most `cap` of the rows of `y`, the same share of every class,
/// evenly spaced within each class (deterministic: no RNG, no order effects
/// beyond the input's).
pub fn stratified_subset(y: &[usize], k: usize, cap: usize) -> Vec<usize> {
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

/// Class weights that undo the class frequencies of `y` (prior correction).
pub fn class_weights(y: &[usize], k: usize) -> Vec<f64> {
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

/// The most frequent class of `y` (lowest index on ties).
pub fn majority(y: &[usize], k: usize) -> usize {
    let mut counts = vec![0usize; k];
    y.iter().for_each(|&c| counts[c] += 1);
    (0..k)
        .max_by_key(|&c| (counts[c], std::cmp::Reverse(c)))
        .unwrap_or(0)
}

/// How candidates are compared.
#[derive(Clone, Debug)]
pub enum Protocol {
    /// Fit on one part of the development users, compare on the other.
    Holdout { fit: FitRows, validate: FitRows },
    /// Fit on k−1 folds, compare on the remaining one, k times.
    KFold { folds: Vec<(FitRows, FitRows)> },
}

impl Protocol {
    pub fn describe(&self) -> String {
        match self {
            Protocol::Holdout { fit, validate } => format!(
                "holdout: fit on {} rows, validated on {} users",
                fit.y.len(),
                validate.y.len()
            ),
            Protocol::KFold { folds } => format!(
                "{}-fold cross-validation over {} users",
                folds.len(),
                folds.iter().map(|(_, v)| v.y.len()).sum::<usize>()
            ),
        }
    }
}

/// One candidate's validation score (pooled over folds).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandidateScore {
    pub macro_f1: f64,
    pub accuracy: f64,
    /// Majority-class accuracy on the same users.
    pub majority_accuracy: f64,
    /// Users the scores were measured on.
    pub validation_users: usize,
    pub fit_secs: f64,
}

/// What selection settled.
#[derive(Debug)]
pub struct Selection {
    pub candidate: Candidate,
    /// Whether probabilities are prior-corrected (class-balanced decisions).
    pub balanced: bool,
    /// Every variant's validation score, by reported name.
    pub scores: Vec<(String, CandidateScore)>,
    /// Said when no candidate reached the majority class's accuracy.
    pub note: Option<String>,
    /// The chosen candidate fitted on the holdout's fit rows (k-fold fits
    /// are per fold and not kept).
    pub holdout_model: Option<ClassifierModel>,
}

/// Every early-stopping split takes one user in this many from the fit rows.
const STOP_ONE_IN: usize = 10;

/// Splits fit rows into rows to fit on and rows to stop boosting on.
fn stopping_split(rows: &FitRows) -> (FitRows, FitRows) {
    let (mut fit, mut stop) = (Vec::new(), Vec::new());
    for i in 0..rows.y.len() {
        if i % STOP_ONE_IN == STOP_ONE_IN - 1 {
            stop.push(i);
        } else {
            fit.push(i);
        }
    }
    let take = |idx: &[usize]| FitRows {
        x: rows.x.select(ndarray::Axis(0), idx),
        y: idx.iter().map(|&i| rows.y[i]).collect(),
    };
    (take(&fit), take(&stop))
}

/// Fits a candidate on rows; boosted trees stop early on a tenth of them.
fn fit_for_validation(
    candidate: &Candidate,
    rows: &FitRows,
    classes: &[String],
) -> Result<(ClassifierModel, Option<usize>)> {
    let fitted = if matches!(candidate, Candidate::GradientBoostedTrees { .. }) {
        let (fit, stop) = stopping_split(rows);
        candidate.fit(&fit.x, &fit.y, classes, Some((&stop.x, &stop.y)))?
    } else {
        candidate.fit(&rows.x, &rows.y, classes, None)?
    };
    Ok((fitted.model, fitted.rounds))
}

/// Probabilities multiplied by class weights and renormalised, row by row
/// (the weights of each part apply to its rows).
fn reweight(probs: &Array2<f64>, parts: &[(usize, Vec<f64>)]) -> Array2<f64> {
    let mut out = probs.clone();
    let mut rows = out.rows_mut().into_iter();
    for (len, weights) in parts {
        for mut row in rows.by_ref().take(*len) {
            row.iter_mut().zip(weights).for_each(|(p, w)| *p *= w);
            let sum = row.sum();
            if sum > 0.0 {
                row.mapv_inplace(|p| p / sum);
            }
        }
    }
    out
}

fn argmax_rows(probs: &Array2<f64>) -> Vec<usize> {
    probs
        .rows()
        .into_iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 {
                        (i, v)
                    } else {
                        best
                    }
                })
                .0
        })
        .collect()
}

/// A candidate's validation probabilities, pooled over the protocol's parts.
struct Validated {
    candidate: Candidate,
    probs: Array2<f64>,
    rounds: Vec<usize>,
    fit_secs: f64,
    /// Fitted on the holdout's fit rows (not kept for k-fold).
    model: Option<ClassifierModel>,
}

/// Fits every candidate under the protocol and chooses by the rule in the
/// module docs. Each candidate is also judged with prior-corrected
/// probabilities (`_balanced`), which trade accuracy for minority recall,
/// and the best boosted trees and the logistic regression are also judged
/// together (`average`: the mean of their probabilities), which on small
/// or noisy data is often better than either.
pub fn select(
    candidates: &[Candidate],
    protocol: &Protocol,
    classes: &[String],
) -> Result<Selection> {
    let k = classes.len();
    let parts: Vec<(&FitRows, &FitRows)> = match protocol {
        Protocol::Holdout { fit, validate } => vec![(fit, validate)],
        Protocol::KFold { folds } => folds.iter().map(|(f, v)| (f, v)).collect(),
    };
    let truth: Vec<usize> = parts
        .iter()
        .flat_map(|(_, v)| v.y.iter().copied())
        .collect();
    let part_weights: Vec<(usize, Vec<f64>)> = parts
        .iter()
        .map(|(f, v)| (v.y.len(), class_weights(&f.y, k)))
        .collect();
    let majorities: Vec<usize> = parts
        .iter()
        .flat_map(|(f, v)| std::iter::repeat_n(majority(&f.y, k), v.y.len()))
        .collect();
    let majority_accuracy = ClassMetrics::compute(&truth, &majorities, classes).accuracy;

    let mut validated: Vec<Validated> = Vec::new();
    let mut failures = Vec::new();
    'candidates: for candidate in candidates {
        let started = Instant::now();
        let mut probs = Array2::<f64>::zeros((truth.len(), k));
        let mut rounds = Vec::new();
        let mut model = None;
        let mut at = 0;
        for (fit, validate) in &parts {
            match fit_for_validation(candidate, fit, classes) {
                Ok((m, r)) => {
                    rounds.extend(r);
                    let p = m
                        .probabilities(&validate.x)
                        .ok_or_else(|| anyhow!("{} gives no probabilities", candidate.name()))?;
                    for (i, row) in p.rows().into_iter().enumerate() {
                        probs.row_mut(at + i).assign(&row);
                    }
                    at += validate.y.len();
                    if matches!(protocol, Protocol::Holdout { .. }) {
                        model = Some(m);
                    }
                }
                Err(e) => {
                    failures.push(format!("{}: {e}", candidate.name()));
                    continue 'candidates;
                }
            }
        }
        validated.push(Validated {
            candidate: candidate.clone(),
            probs,
            rounds,
            fit_secs: started.elapsed().as_secs_f64(),
            model,
        });
    }
    for f in &failures {
        eprintln!("  {f}");
    }
    if let Some(average) = average_of_best(&validated, &truth, classes) {
        validated.push(average);
    }

    struct Outcome<'v> {
        from: &'v Validated,
        balanced: bool,
        name: String,
        score: CandidateScore,
    }
    let mut outcomes: Vec<Outcome<'_>> = Vec::new();
    for v in &validated {
        for balanced in [false, true] {
            let probs = if balanced {
                reweight(&v.probs, &part_weights)
            } else {
                v.probs.clone()
            };
            let m = ClassMetrics::compute(&truth, &argmax_rows(&probs), classes);
            let name = if balanced {
                format!("{}_balanced", v.candidate.name())
            } else {
                v.candidate.name()
            };
            outcomes.push(Outcome {
                from: v,
                balanced,
                name,
                score: CandidateScore {
                    macro_f1: m.macro_f1,
                    accuracy: m.accuracy,
                    majority_accuracy,
                    validation_users: truth.len(),
                    fit_secs: v.fit_secs,
                },
            });
        }
    }
    let chosen = choose(&outcomes, |o| &o.score).map(|(i, note)| (&outcomes[i], note));
    let Some((chosen, note)) = chosen else {
        return Err(anyhow!(
            "every model family failed to fit: {}",
            failures.join("; ")
        ));
    };
    let fit_y = match protocol {
        Protocol::Holdout { fit, .. } => &fit.y[..],
        Protocol::KFold { .. } => &[],
    };
    Ok(Selection {
        candidate: chosen.from.candidate.with_rounds(&chosen.from.rounds),
        balanced: chosen.balanced,
        scores: outcomes
            .iter()
            .map(|o| (o.name.clone(), o.score.clone()))
            .collect(),
        note,
        holdout_model: chosen.from.model.clone().map(|model| ClassifierModel {
            class_weights: chosen.balanced.then(|| class_weights(fit_y, k)),
            ..model
        }),
    })
}

/// The rule of the module docs, with the one-standard-error rule of model
/// selection (Breiman et al., *Classification and Regression Trees*, 1984;
/// Hastie et al., *The Elements of Statistical Learning*, §7.10): of the
/// eligible outcomes, the first (outcomes come simplest first) whose
/// macro-F1 is within one standard error of the best one's. Validation
/// scores of a few thousand users differ by that much from one split of the
/// users to another, so a more complex model must beat a simpler one by more
/// than that to be worth its variance. Returns the index and, when no
/// outcome is eligible, why the chosen one is below the majority.
fn choose<T>(
    outcomes: &[T],
    score: impl Fn(&T) -> &CandidateScore,
) -> Option<(usize, Option<String>)> {
    let eligible: Vec<usize> = (0..outcomes.len())
        .filter(|&i| score(&outcomes[i]).accuracy >= score(&outcomes[i]).majority_accuracy)
        .collect();
    let (pool, note) = if eligible.is_empty() {
        ((0..outcomes.len()).collect::<Vec<_>>(), true)
    } else {
        (eligible, false)
    };
    let best = pool.iter().copied().max_by(|&a, &b| {
        let (a, b) = (score(&outcomes[a]), score(&outcomes[b]));
        a.macro_f1
            .total_cmp(&b.macro_f1)
            .then(a.accuracy.total_cmp(&b.accuracy))
    })?;
    let top = score(&outcomes[best]);
    let standard_error =
        (top.macro_f1 * (1.0 - top.macro_f1) / top.validation_users.max(1) as f64).sqrt();
    let chosen = pool
        .iter()
        .copied()
        .find(|&i| score(&outcomes[i]).macro_f1 >= top.macro_f1 - standard_error)
        .unwrap_or(best);
    let s = score(&outcomes[chosen]);
    let note = note.then(|| {
        format!(
            "no candidate reached the majority class's validation accuracy ({:.4}); \
             the one kept has accuracy {:.4}",
            s.majority_accuracy, s.accuracy
        )
    });
    Some((chosen, note))
}

/// The mean of the probabilities of the logistic regression and the boosted
/// trees with the best validation macro-F1, as one more candidate.
fn average_of_best(
    validated: &[Validated],
    truth: &[usize],
    classes: &[String],
) -> Option<Validated> {
    let f1 = |v: &Validated| ClassMetrics::compute(truth, &argmax_rows(&v.probs), classes).macro_f1;
    let logistic = validated
        .iter()
        .find(|v| matches!(v.candidate, Candidate::LogisticRegression { .. }))?;
    let trees = validated
        .iter()
        .filter(|v| matches!(v.candidate, Candidate::GradientBoostedTrees { .. }))
        .rev()
        .max_by(|a, b| f1(a).total_cmp(&f1(b)))?;
    let members = [logistic, trees];
    let model = match (&logistic.model, &trees.model) {
        (Some(a), Some(b)) => Some(average_model(vec![a.clone(), b.clone()], classes)),
        _ => None,
    };
    Some(Validated {
        candidate: Candidate::Average {
            members: members
                .iter()
                .map(|m| m.candidate.with_rounds(&m.rounds))
                .collect(),
        },
        probs: (&logistic.probs + &trees.probs) / 2.0,
        rounds: Vec::new(),
        fit_secs: logistic.fit_secs + trees.fit_secs,
        model,
    })
}

/// A model whose probabilities are the mean of its members'.
fn average_model(members: Vec<ClassifierModel>, classes: &[String]) -> ClassifierModel {
    ClassifierModel {
        family: "average".to_owned(),
        classes: classes.to_vec(),
        standardizer: Standardizer {
            mean: Vec::new(),
            scale: Vec::new(),
        },
        classifier: Classifier::Average(members),
        class_weights: None,
    }
}

/// Fits the selected candidate on rows (no early stopping: boosted trees
/// use the rounds selection found), with its class weighting.
pub fn refit(selection: &Selection, rows: &FitRows, classes: &[String]) -> Result<ClassifierModel> {
    let fitted = selection.candidate.fit(&rows.x, &rows.y, classes, None)?;
    Ok(ClassifierModel {
        class_weights: selection
            .balanced
            .then(|| class_weights(&rows.y, classes.len())),
        ..fitted.model
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(k: usize) -> Vec<String> {
        (0..k).map(|c| c.to_string()).collect()
    }

    /// Two informative features and a skewed label: class 0 is 80 %.
    fn rows(n: usize, offset: usize) -> FitRows {
        let mut x = Array2::zeros((n, 3));
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let j = i + offset;
            let class = usize::from(j % 5 == 0) + usize::from(j % 10 == 0);
            let noise = ((j * 7919) % 101) as f64 / 101.0 - 0.5;
            x[[i, 0]] = class as f64 + noise;
            x[[i, 1]] = ((j * 31) % 17) as f64;
            x[[i, 2]] = noise;
            y.push(class);
        }
        FitRows { x, y }
    }

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

    fn predict(model: &ClassifierModel, x: &Array2<f64>) -> Vec<usize> {
        model.predict(x).into_iter().map(|p| p.class).collect()
    }

    #[test]
    fn selection_prefers_accurate_candidates_and_refits() {
        let protocol = Protocol::Holdout {
            fit: rows(600, 0),
            validate: rows(300, 600),
        };
        let candidates = [
            Candidate::LogisticRegression { alpha: 1.0 },
            Candidate::GaussianNb,
        ];
        let selection = select(&candidates, &protocol, &classes(3)).expect("select");
        assert_eq!(selection.scores.len(), 4, "plain and balanced of each");
        let chosen = selection
            .scores
            .iter()
            .find(|(name, _)| {
                *name
                    == format!(
                        "{}{}",
                        selection.candidate.name(),
                        if selection.balanced { "_balanced" } else { "" }
                    )
            })
            .expect("chosen is scored");
        assert!(
            chosen.1.accuracy >= chosen.1.majority_accuracy,
            "{chosen:?}"
        );
        assert!(selection.note.is_none());
        assert!(selection.holdout_model.is_some());
        let all = rows(900, 0);
        let model = refit(&selection, &all, &classes(3)).expect("refit");
        let correct = predict(&model, &all.x)
            .iter()
            .zip(&all.y)
            .filter(|(p, t)| p == t)
            .count();
        assert!(correct as f64 / 900.0 > 0.9, "{correct}");
    }

    fn score(macro_f1: f64, accuracy: f64, majority_accuracy: f64) -> CandidateScore {
        CandidateScore {
            macro_f1,
            accuracy,
            majority_accuracy,
            validation_users: 6_000,
            fit_secs: 0.0,
        }
    }

    #[test]
    fn a_complex_model_must_beat_a_simpler_one_by_more_than_noise() {
        // within one standard error (≈ 0.006 at 6,000 users): the simpler
        let close = [score(0.319, 0.34, 0.17), score(0.323, 0.34, 0.17)];
        assert_eq!(choose(&close, |s| s), Some((0, None)));
        // clearly better: the complex one
        let far = [score(0.75, 0.75, 0.2), score(0.83, 0.83, 0.2)];
        assert_eq!(choose(&far, |s| s), Some((1, None)));
        // the best macro-F1 is below the majority's accuracy: not eligible
        let skewed = [score(0.40, 0.45, 0.41), score(0.50, 0.30, 0.41)];
        assert_eq!(choose(&skewed, |s| s), Some((0, None)));
        // nothing eligible: the best macro-F1, said
        let hopeless = [score(0.20, 0.30, 0.41), score(0.30, 0.35, 0.41)];
        let (i, note) = choose(&hopeless, |s| s).expect("chosen");
        assert_eq!(i, 1);
        assert!(note.expect("said").contains("majority"));
    }

    #[test]
    fn k_fold_pools_every_fold_and_says_when_nothing_beats_the_majority() {
        // validation users behave unlike the fitted ones (the feature that
        // gave class c now says c + 1): every candidate is worse than
        // "always the majority class", and selection says so
        let shifted = |n: usize, offset: usize| {
            let mut r = rows(n, offset);
            for (i, &c) in r.y.iter().enumerate() {
                r.x[[i, 0]] = ((c + 1) % 3) as f64;
            }
            r
        };
        let folds = (0..3)
            .map(|f| (rows(200, f * 1000), shifted(100, f * 1000 + 500)))
            .collect();
        let protocol = Protocol::KFold { folds };
        assert!(protocol
            .describe()
            .starts_with("3-fold cross-validation over 300 users"));
        let selection = select(&[Candidate::GaussianNb], &protocol, &classes(3)).expect("select");
        assert!(selection.holdout_model.is_none());
        for (name, score) in &selection.scores {
            assert!(
                score.accuracy < score.majority_accuracy,
                "{name}: {score:?}"
            );
        }
        let note = selection.note.expect("said");
        assert!(note.contains("majority"), "{note}");
    }
}
