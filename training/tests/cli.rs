//! `micro-train` end to end: the generated world is deterministic and shaped as
//! documented, and `features` turns it into a table the incremental evaluator
//! agrees with.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use features::incremental::{FoldInput, UserFeatureState};
use features::{FeatureParams, InteractionType};
use features_batch::io::{read_catalog, read_interactions, read_labels};
use features_batch::polars::prelude::*;
use features_batch::{feature_rows, USER_ID};
use training::train::{split_of, Split};

fn micro_train(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_micro-train"))
        .args(args)
        .output()
        .expect("run micro-train")
}

fn generate(dir: &Path, seed: &str) {
    let out = micro_train(&[
        "generate",
        "--users",
        "400",
        "--days",
        "30",
        "--seed",
        seed,
        "--out",
        dir.to_str().expect("utf-8 path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read")
}

#[test]
fn same_seed_same_bytes_other_seed_other_world() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    generate(&a, "11");
    generate(&b, "11");
    generate(&c, "12");
    for f in ["interactions", "catalog", "users", "labels"] {
        let name = format!("{f}.parquet");
        assert_eq!(
            bytes(&a.join(&name)),
            bytes(&b.join(&name)),
            "{name} differs for one seed"
        );
    }
    assert_ne!(
        bytes(&a.join("interactions.parquet")),
        bytes(&c.join("interactions.parquet"))
    );
}

#[test]
fn generated_world_has_the_documented_shape() {
    let tmp = tempfile::tempdir().expect("tempdir");
    generate(tmp.path(), "3");
    let (log, report) = read_interactions(&tmp.path().join("interactions.parquet")).expect("log");
    assert_eq!(report.skipped, 0, "{:?}", report.problems);
    assert!(log.height() > 400 * 10, "{} interactions", log.height());

    // every kind occurs; views dominate
    let kinds = log.column("kind").unwrap().i32().unwrap();
    let count = |k: InteractionType| {
        kinds
            .iter()
            .filter(|x| *x == Some(k.index() as i32))
            .count()
    };
    for k in InteractionType::ALL {
        assert!(count(k) > 0, "{k} missing");
    }
    assert!(count(InteractionType::View) > log.height() / 2);

    // re-deliveries: some ids repeat
    let ids = log
        .column("id")
        .unwrap()
        .as_materialized_series()
        .n_unique()
        .unwrap();
    assert!(ids < log.height(), "no duplicate deliveries");

    // some targets are not in the catalog; activity is heavy-tailed
    let (catalog, _) = read_catalog(&tmp.path().join("catalog.parquet")).expect("catalog");
    let targets = log.column("target").unwrap().str().unwrap();
    let unknown = targets
        .iter()
        .flatten()
        .filter(|t| catalog.get(t).is_none())
        .count();
    assert!(
        unknown > 0 && unknown < log.height() / 10,
        "{unknown} unknown targets"
    );
    let per_user = log
        .clone()
        .lazy()
        .group_by([col("user")])
        .agg([len().alias("n")])
        .collect()
        .unwrap();
    let n = per_user
        .column("n")
        .unwrap()
        .cast(&DataType::Float64)
        .unwrap();
    let n = n.f64().unwrap();
    let (max, mean) = (n.max().unwrap(), n.mean().unwrap());
    assert!(
        max > 5.0 * mean,
        "max {max} vs mean {mean}: not heavy-tailed"
    );
    assert!(n.iter().flatten().any(|x| x <= 5.0), "no cold-start users");

    // labels: the truth for every user, in the SPEC vocabularies
    let (labels, report) = read_labels(&tmp.path().join("labels.parquet")).expect("labels");
    assert_eq!(report.skipped, 0, "{:?}", report.problems);
    assert_eq!(labels.len(), 400);
    for class in 1..=5u8 {
        let share = labels
            .iter()
            .filter(|l| l.spending_class == Some(class))
            .count();
        assert_eq!(share, 80, "spending classes are quintiles");
    }
    assert!(labels.iter().all(|l| l.life_stage.is_some()));
    assert!(labels
        .iter()
        .all(|l| l.topics.as_ref().is_some_and(|t| !t.is_empty())));

    // declared data has gaps
    let users = ParquetReader::new(std::fs::File::open(tmp.path().join("users.parquet")).unwrap())
        .finish()
        .unwrap();
    assert_eq!(users.height(), 400);
    for column in [
        "birth_year",
        "kids",
        "gender",
        "marital_status",
        "income_band",
    ] {
        let nulls = users.column(column).unwrap().null_count();
        assert!(nulls > 0 && nulls < 400, "{column}: {nulls} missing");
    }
    assert_eq!(users.column("email").unwrap().null_count(), 0);
}

#[test]
fn features_command_writes_the_table_the_fold_agrees_with() {
    let tmp = tempfile::tempdir().expect("tempdir");
    generate(tmp.path(), "5");
    let out = tmp.path().join("features.parquet");
    let interactions = tmp.path().join("interactions.parquet");
    let catalog_path = tmp.path().join("catalog.parquet");
    let run = micro_train(&[
        "features",
        "--interactions",
        interactions.to_str().unwrap(),
        "--catalog",
        catalog_path.to_str().unwrap(),
        "--as-of",
        "2026-02-15T00:00:00Z",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let table = ParquetReader::new(std::fs::File::open(&out).unwrap())
        .finish()
        .unwrap();
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("features.schema.json")).unwrap())
            .unwrap();
    let names: Vec<&str> = sidecar["schema"]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(table.width(), names.len() + 1);
    assert_eq!(table.get_column_names()[0].as_str(), USER_ID);

    // Fold the same log one interaction at a time, serving-style.
    let (catalog, _) = read_catalog(&catalog_path).unwrap();
    let spec = FeatureParams::default().fit(&catalog).unwrap();
    let index = spec.index_catalog(&catalog);
    let (log, _) = read_interactions(&interactions).unwrap();
    let as_of = chrono::DateTime::parse_from_rfc3339("2026-02-15T00:00:00Z")
        .unwrap()
        .timestamp_micros();
    let mut states = std::collections::HashMap::<String, UserFeatureState>::new();
    let mut seen = std::collections::HashSet::new();
    let col = |n: &str| log.column(n).unwrap().clone();
    let (id, user, kind, ts, target) = (
        col("id"),
        col("user"),
        col("kind"),
        col("ts"),
        col("target"),
    );
    let (amount, quantity) = (col("amount"), col("quantity"));
    for row in 0..log.height() {
        let id = id.str().unwrap().get(row).unwrap().to_owned();
        if !seen.insert(id) {
            continue;
        }
        let input = FoldInput {
            kind: InteractionType::from_index(kind.i32().unwrap().get(row).unwrap() as usize)
                .unwrap(),
            timestamp_micros: ts.i64().unwrap().get(row).unwrap(),
            target: index.get(target.str().unwrap().get(row).unwrap()),
            amount: amount.f64().unwrap().get(row),
            quantity: quantity.f64().unwrap().get(row),
        };
        states
            .entry(user.str().unwrap().get(row).unwrap().to_owned())
            .or_default()
            .fold(&spec, &input);
    }
    let rows = feature_rows(&table).unwrap();
    assert_eq!(rows.len(), states.len());
    for (user, batch) in rows {
        let incremental = states[&user].vector(&spec, as_of);
        for ((name, b), i) in names.iter().zip(&batch).zip(&incremental) {
            assert!(
                (b - i).abs() <= 1e-9 * b.abs().max(i.abs()).max(1.0),
                "{user} {name}: {b} vs {i}"
            );
        }
    }
}

#[test]
fn bad_inputs_are_clear_errors_naming_file_and_column() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = tmp.path().join("log.csv");
    std::fs::write(&log, "id,type,timestamp\na,VIEW,2026-01-01T00:00:00Z\n").unwrap();
    let catalog = tmp.path().join("catalog.csv");
    std::fs::write(
        &catalog,
        "target_id,target_type,category,price\nx,product,baby,3\n",
    )
    .unwrap();
    let out = tmp.path().join("f.parquet");
    let run = micro_train(&[
        "features",
        "--interactions",
        log.to_str().unwrap(),
        "--catalog",
        catalog.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("log.csv") && stderr.contains("missing column \"origin_id\""),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn split_is_by_user_and_stable() {
    use training::train::{split_of, Split};
    let users: Vec<String> = (0..10_000).map(|i| format!("u{i}")).collect();
    let splits: Vec<Split> = users.iter().map(|u| split_of(7, u)).collect();
    // a user is in exactly one part, the same one every time
    for (u, s) in users.iter().zip(&splits) {
        assert_eq!(split_of(7, u), *s);
    }
    let share = |p: Split| splits.iter().filter(|s| **s == p).count() as f64 / users.len() as f64;
    assert!((share(Split::Train) - 0.70).abs() < 0.02);
    assert!((share(Split::Validation) - 0.15).abs() < 0.02);
    assert!((share(Split::Test) - 0.15).abs() < 0.02);
    // another seed reshuffles users
    let moved = users
        .iter()
        .zip(&splits)
        .filter(|(u, s)| split_of(8, u) != **s)
        .count();
    assert!(moved > 3_000, "{moved}");
}

#[test]
fn train_writes_a_verified_artifact_that_evaluate_and_models_use() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let world = tmp.path().join("world");
    let out = micro_train(&[
        "generate",
        "--users",
        "1500",
        "--days",
        "40",
        "--seed",
        "21",
        "--out",
        world.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let registry = tmp.path().join("models");
    let file = |n: &str| world.join(n).to_str().unwrap().to_owned();
    let run = micro_train(&[
        "train",
        "--interactions",
        &file("interactions.parquet"),
        "--catalog",
        &file("catalog.parquet"),
        "--labels",
        &file("labels.parquet"),
        "--registry",
        registry.to_str().unwrap(),
        "--seed",
        "3",
    ]);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for target in ["spendingClass", "actingLifeStage", "topics"] {
        assert!(stdout.contains(target), "{stdout}");
    }
    let versions: Vec<_> = std::fs::read_dir(registry.join("profile"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(versions.len(), 1);
    let version_dir = &versions[0];
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(version_dir.join("manifest.json")).unwrap()).unwrap();
    let metrics = &manifest["metrics"]["targets"];
    for target in ["spendingClass", "actingLifeStage"] {
        let test = &metrics[target]["test"];
        assert!(
            test["model"]["accuracy"].as_f64().unwrap()
                > test["baseline"]["accuracy"].as_f64().unwrap()
        );
        assert!(metrics[target]["cold_start"]["first_5"]["model"]["accuracy"].is_number());
        assert!(
            metrics[target]["candidates"].as_object().unwrap().len() >= 2,
            "families compared"
        );
    }
    assert!(manifest["feature_schema"]["hash"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    assert_eq!(
        manifest["training_data"]["files"]
            .as_object()
            .unwrap()
            .len(),
        3
    );

    // evaluate on a fresh world
    let fresh = tmp.path().join("fresh");
    let out = micro_train(&[
        "generate",
        "--users",
        "600",
        "--days",
        "40",
        "--seed",
        "22",
        "--out",
        fresh.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let fresh_file = |n: &str| fresh.join(n).to_str().unwrap().to_owned();
    let evaluate_on_fresh = |extra: &[&str]| {
        let (interactions, catalog, labels) = (
            fresh_file("interactions.parquet"),
            fresh_file("catalog.parquet"),
            fresh_file("labels.parquet"),
        );
        let mut args = vec![
            "evaluate",
            "--model",
            version_dir.to_str().unwrap(),
            "--interactions",
            &interactions,
            "--catalog",
            &catalog,
            "--labels",
            &labels,
        ];
        args.extend_from_slice(extra);
        micro_train(&args)
    };
    let metrics_out = tmp.path().join("metrics.json");
    let run = evaluate_on_fresh(&["--out", metrics_out.to_str().unwrap()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let evaluated: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&metrics_out).unwrap()).unwrap();
    let all = &evaluated["targets"]["actingLifeStage"]["all"];
    assert!(
        all["model"]["accuracy"].as_f64().unwrap() > all["baseline"]["accuracy"].as_f64().unwrap()
    );

    // The artifact is refitted on every labelled user, test users included:
    // on the test users it is right more often than the model the report
    // tested, which was fitted without them.
    for target in ["spendingClass", "actingLifeStage"] {
        let report = &metrics[target];
        let refit = report["refit"].as_str().unwrap();
        let labelled = report["labelled_users"].as_u64().unwrap();
        assert!(
            refit.starts_with(&format!("{labelled} labelled users")),
            "{refit}"
        );
        assert_eq!(
            labelled,
            report["development_users"].as_u64().unwrap() + report["test_users"].as_u64().unwrap()
        );
    }
    let (labels, _) = read_labels(&world.join("labels.parquet")).unwrap();
    let mut test_labels = String::from("user_id,spending_class,life_stage\n");
    for l in labels
        .iter()
        .filter(|l| split_of(3, &l.user_id) == Split::Test)
    {
        test_labels.push_str(&format!(
            "{},{},{}\n",
            l.user_id,
            l.spending_class.map(|c| c.to_string()).unwrap_or_default(),
            l.life_stage.map(|s| s.as_str()).unwrap_or_default()
        ));
    }
    let test_labels_path = tmp.path().join("test-labels.csv");
    std::fs::write(&test_labels_path, test_labels).unwrap();
    let shipped_out = tmp.path().join("shipped.json");
    let run = micro_train(&[
        "evaluate",
        "--model",
        version_dir.to_str().unwrap(),
        "--interactions",
        &file("interactions.parquet"),
        "--catalog",
        &file("catalog.parquet"),
        "--labels",
        test_labels_path.to_str().unwrap(),
        "--out",
        shipped_out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let shipped: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&shipped_out).unwrap()).unwrap();
    let mut gained = false;
    for target in ["spendingClass", "actingLifeStage"] {
        let tested = metrics[target]["test"]["model"]["accuracy"]
            .as_f64()
            .unwrap();
        let on_seen = shipped["targets"][target]["all"]["model"]["accuracy"]
            .as_f64()
            .unwrap();
        assert_eq!(
            shipped["targets"][target]["all"]["model"]["users"],
            metrics[target]["test"]["model"]["users"]
        );
        assert!(on_seen >= tested, "{target}: {on_seen} < {tested}");
        gained |= on_seen > tested;
    }
    assert!(gained, "the shipped models are the tested ones");

    // registry commands
    let version = version_dir.file_name().unwrap().to_str().unwrap();
    let list = micro_train(&["models", "list", "--registry", registry.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&list.stdout).contains(version));
    let below_baseline = !manifest["models"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["beats_baseline"].as_bool().unwrap_or(false));
    let promote = micro_train(&[
        "models",
        "promote",
        version,
        "--registry",
        registry.to_str().unwrap(),
    ]);
    assert_eq!(
        promote.status.success(),
        !below_baseline,
        "{}",
        String::from_utf8_lossy(&promote.stderr)
    );
    let forced = micro_train(&[
        "models",
        "promote",
        version,
        "--force",
        "--registry",
        registry.to_str().unwrap(),
    ]);
    assert!(forced.status.success());
    let current = std::fs::read_to_string(registry.join("profile").join("current")).unwrap();
    assert_eq!(current.trim(), version);

    // a corrupted artifact is refused, naming the file
    let model_file = version_dir.join("spendingClass.json");
    let mut bytes = std::fs::read(&model_file).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&model_file, bytes).unwrap();
    let run = evaluate_on_fresh(&[]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("spendingClass.json is corrupted"),
        "{stderr}"
    );
    let show = micro_train(&[
        "models",
        "show",
        version,
        "--registry",
        registry.to_str().unwrap(),
    ]);
    assert!(!show.status.success());
}
