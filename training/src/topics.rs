//! Fitting the topic ranker ([`features::model::TopicRanker`]): the
//! co-occurrence table across users, then a pointwise classifier over
//! (user, topic) pairs.

use anyhow::{anyhow, Result};
use features::definition::{TagFeatureIndices, BASE_FEATURES, CATEGORY_PREFIX};
use features::model::{Classifier, ClassifierModel, Standardizer, TopicPairFeatures, TopicRanker};
use features::softmax::SoftmaxParams;
use features::FeatureSpec;
use ndarray::Array2;

/// Most users the ranker fits on (each contributes one row per topic);
/// beyond this, an evenly spaced subset is used.
pub const MAX_RANKER_USERS: usize = 20_000;

/// Pseudo-count of the co-occurrence estimates: a category few users shop
/// leans on the topic's overall rate instead of on those few users.
const AFFINITY_PRIOR: f64 = 20.0;

/// Fits a ranker of `topics` on feature rows `x` and each row's relevant
/// topics.
pub fn fit_topic_ranker(
    spec: &FeatureSpec,
    x: &Array2<f64>,
    relevant: &[Vec<String>],
    topics: &[String],
) -> Result<TopicRanker> {
    let step = x.nrows().div_ceil(MAX_RANKER_USERS).max(1);
    let subset: Vec<usize> = (0..x.nrows()).step_by(step).collect();
    let x = &x.select(ndarray::Axis(0), &subset);
    let relevant: Vec<&Vec<String>> = subset.iter().map(|&i| &relevant[i]).collect();
    let share_indices: Vec<Option<TagFeatureIndices>> =
        topics.iter().map(|t| spec.tag_feature_indices(t)).collect();
    let activity_index = BASE_FEATURES
        .iter()
        .position(|f| *f == "log_interactions")
        .unwrap_or(0);
    let category_indices: Vec<usize> = spec
        .schema()
        .names
        .iter()
        .enumerate()
        .filter(|(_, n)| n.starts_with(CATEGORY_PREFIX))
        .map(|(i, _)| i)
        .collect();
    let labels: Vec<Vec<bool>> = relevant
        .iter()
        .map(|r| topics.iter().map(|t| r.contains(t)).collect())
        .collect();
    let affinity = affinity(x, &category_indices, &labels, topics.len());
    let features = TopicPairFeatures {
        share_indices,
        activity_index,
        category_indices,
        affinity,
    };
    let pairs = features.matrix(x);
    let y: Vec<usize> = labels
        .iter()
        .flat_map(|l| l.iter().map(|&r| usize::from(r)))
        .collect();
    let standardizer = Standardizer::fit(&pairs);
    let fitted = SoftmaxParams::default()
        .fit(standardizer.transform(&pairs).view(), &y, 2, None)
        .map_err(|e| anyhow!("topic ranker: {e}"))?;
    Ok(TopicRanker {
        topics: topics.to_vec(),
        pairs: features,
        pair_model: ClassifierModel {
            family: "pointwise_logistic_ranker".to_owned(),
            classes: vec!["no".to_owned(), "yes".to_owned()],
            standardizer,
            classifier: Classifier::Softmax(fitted),
            class_weights: None,
        },
    })
}

/// `affinity[t][c]`: the share-weighted rate of topic `t` among users who
/// shop category `c`, `Σ_u share_c(u)·[t ∈ u] / Σ_u share_c(u)`, shrunk
/// towards the topic's overall rate.
fn affinity(
    x: &Array2<f64>,
    category_indices: &[usize],
    labels: &[Vec<bool>],
    topics: usize,
) -> Vec<Vec<f64>> {
    let users = labels.len().max(1) as f64;
    let mut weight = vec![0.0; category_indices.len()];
    let mut hits = vec![vec![0.0; category_indices.len()]; topics];
    let mut rate = vec![0.0; topics];
    for (row, label) in x.rows().into_iter().zip(labels) {
        for (t, &yes) in label.iter().enumerate() {
            if yes {
                rate[t] += 1.0 / users;
            }
        }
        for (c, &i) in category_indices.iter().enumerate() {
            let share = row[i];
            if share > 0.0 {
                weight[c] += share;
                for (t, &yes) in label.iter().enumerate() {
                    if yes {
                        hits[t][c] += share;
                    }
                }
            }
        }
    }
    hits.iter()
        .zip(&rate)
        .map(|(row, &r)| {
            row.iter()
                .zip(&weight)
                .map(|(h, w)| (h + AFFINITY_PRIOR * r) / (w + AFFINITY_PRIOR))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_learns_which_topics_follow_which_categories() {
        // two categories; users of category 0 like topic 1, users of
        // category 1 like topic 0
        let n = 400;
        let mut x = Array2::zeros((n, 2));
        let mut labels = Vec::new();
        for u in 0..n {
            let c = u % 2;
            x[[u, c]] = 1.0;
            labels.push(vec![c == 1, c == 0]);
        }
        let a = affinity(&x, &[0, 1], &labels, 2);
        assert!(a[1][0] > 0.9 && a[0][0] < 0.1, "{a:?}");
        assert!(a[0][1] > 0.9 && a[1][1] < 0.1, "{a:?}");
    }
}
