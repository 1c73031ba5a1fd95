//! Evaluation metrics and the readable report table.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use serde::{Deserialize, Serialize};

/// Classification quality on one set of users.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub users: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub per_class_recall: BTreeMap<String, f64>,
    /// `confusion[truth][predicted]`, in vocabulary order.
    pub confusion: Vec<Vec<usize>>,
}

impl ClassMetrics {
    pub fn compute(truth: &[usize], predicted: &[usize], classes: &[String]) -> ClassMetrics {
        let k = classes.len();
        let mut confusion = vec![vec![0usize; k]; k];
        for (&t, &p) in truth.iter().zip(predicted) {
            if t < k && p < k {
                confusion[t][p] += 1;
            }
        }
        let n = truth.len();
        let correct: usize = (0..k).map(|i| confusion[i][i]).sum();
        let mut f1_sum = 0.0;
        let mut f1_classes = 0;
        let mut per_class_recall = BTreeMap::new();
        for (i, class) in classes.iter().enumerate() {
            let actual: usize = confusion[i].iter().sum();
            let predicted_i: usize = confusion.iter().map(|row| row[i]).sum();
            let tp = confusion[i][i] as f64;
            let recall = if actual > 0 { tp / actual as f64 } else { 0.0 };
            let precision = if predicted_i > 0 {
                tp / predicted_i as f64
            } else {
                0.0
            };
            if actual > 0 {
                per_class_recall.insert(class.clone(), recall);
                f1_classes += 1;
                f1_sum += if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
            }
        }
        ClassMetrics {
            users: n,
            accuracy: if n > 0 {
                correct as f64 / n as f64
            } else {
                0.0
            },
            macro_f1: if f1_classes > 0 {
                f1_sum / f1_classes as f64
            } else {
                0.0
            },
            per_class_recall,
            confusion,
        }
    }

    /// Better than `baseline` on both accuracy and macro-F1.
    pub fn beats(&self, baseline: &ClassMetrics) -> bool {
        self.accuracy > baseline.accuracy && self.macro_f1 > baseline.macro_f1
    }
}

/// Precision@k of ranked predictions against sets of relevant names.
pub fn precision_at_k(predicted: &[Vec<String>], relevant: &[Vec<String>], k: usize) -> f64 {
    if predicted.is_empty() {
        return 0.0;
    }
    let total: f64 = predicted
        .iter()
        .zip(relevant)
        .map(|(p, r)| p.iter().take(k).filter(|t| r.contains(t)).count() as f64 / k as f64)
        .sum();
    total / predicted.len() as f64
}

/// One line of the report: model vs baseline on one metric.
#[derive(Clone, Debug)]
pub struct ReportRow {
    pub target: String,
    pub users: String,
    pub metric: String,
    pub model: f64,
    pub baseline: f64,
    pub family: String,
}

/// Prints the metrics table; rows where the model does not beat its baseline
/// are marked, in red on a terminal.
pub fn print_table(title: &str, rows: &[ReportRow]) {
    let red = std::io::stdout().is_terminal();
    println!("\n{title}");
    println!(
        "{:<16} {:<22} {:<12} {:>8} {:>9}  family",
        "model", "users", "metric", "model", "baseline"
    );
    println!("{}", "-".repeat(86));
    for r in rows {
        let ok = r.model > r.baseline;
        let line = format!(
            "{:<16} {:<22} {:<12} {:>8.4} {:>9.4}  {}{}",
            r.target,
            r.users,
            r.metric,
            r.model,
            r.baseline,
            r.family,
            if ok { "" } else { "  BELOW BASELINE" }
        );
        if !ok && red {
            println!("\x1b[31m{line}\x1b[0m");
        } else {
            println!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_on_a_hand_made_case() {
        let classes: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let truth = [0, 0, 1, 1, 2];
        let predicted = [0, 1, 1, 1, 0];
        let m = ClassMetrics::compute(&truth, &predicted, &classes);
        assert_eq!(
            m.confusion,
            vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]
        );
        assert!((m.accuracy - 0.6).abs() < 1e-12);
        // F1: a = 2·0.5·0.5/1 = 0.5; b = 2·(2/3)·1/(5/3) = 0.8; c = 0
        assert!((m.macro_f1 - (0.5 + 0.8 + 0.0) / 3.0).abs() < 1e-12);
        assert_eq!(m.per_class_recall["b"], 1.0);
        let majority = ClassMetrics::compute(&truth, &[0, 0, 0, 0, 0], &classes);
        assert!(
            m.beats(&majority)
                == (m.accuracy > majority.accuracy && m.macro_f1 > majority.macro_f1)
        );
    }

    #[test]
    fn precision_at_3() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let p = precision_at_k(
            &[s(&["a", "b", "c"]), s(&["x"])],
            &[s(&["a", "c"]), s(&["x", "y"])],
            3,
        );
        assert!((p - (2.0 / 3.0 + 1.0 / 3.0) / 2.0).abs() < 1e-12);
    }
}
