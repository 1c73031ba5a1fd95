//! `micro-train features`: the per-user feature table a notebook or the
//! training job reads, computed by the batch (polars) evaluator.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use features::{Catalog, FeatureParams, FeatureSpec};
use features_batch::io::{read_catalog, read_interactions, LoadReport};
use features_batch::{compute_features, io::cols};
use polars::prelude::*;

use crate::write_parquet;

/// A loaded log and catalog with the fitted feature spec.
#[derive(Debug)]
pub struct Inputs {
    pub catalog: Catalog,
    pub catalog_report: LoadReport,
    pub spec: FeatureSpec,
    pub interactions: DataFrame,
    pub report: LoadReport,
}

/// Reads the catalog and log and fits the feature spec on the catalog.
pub fn load(interactions: &Path, catalog: &Path, params: FeatureParams) -> Result<Inputs> {
    let (catalog, catalog_report) = read_catalog(catalog)?;
    let spec = params.fit(&catalog).context("feature parameters")?;
    let (interactions, report) = read_interactions(interactions)?;
    Ok(Inputs {
        catalog,
        catalog_report,
        spec,
        interactions,
        report,
    })
}

/// Prints what reading a file found: totals, and the kinds of skipped or
/// noted rows with counts and a few example rows.
pub fn print_report(what: &str, report: &LoadReport) {
    for line in report.lines(what) {
        eprintln!("{line}");
    }
}

/// The latest interaction time in a normalised log, the default reference
/// time (so that the table does not depend on when it was computed).
pub fn latest_timestamp(interactions: &DataFrame) -> Result<Option<i64>> {
    Ok(interactions.column(cols::TS)?.i64()?.max())
}

#[derive(Debug)]
pub struct FeatureTableArgs {
    pub interactions: PathBuf,
    pub catalog: PathBuf,
    pub as_of_micros: Option<i64>,
    /// Each user as of their n-th interaction, with only the first n.
    pub first_n: Option<usize>,
    pub out: PathBuf,
}

/// Every user's vector right after their first `n` interactions (all of
/// them when fewer), as serving showed it then: the table cold-start
/// comparisons and notebooks need. Folded incrementally, which the parity
/// test holds equal to the batch evaluator.
fn first_n_table(
    inputs: &Inputs,
    index: &features::definition::CatalogIndex,
    n: usize,
) -> Result<DataFrame> {
    let histories = crate::train::Histories::collect(&inputs.interactions, None)?;
    let columns = crate::train::LogColumns::new(&inputs.interactions)?;
    let mut ids: Vec<&str> = histories.users().collect();
    ids.sort_unstable();
    let vectors: Vec<Vec<f64>> = ids
        .iter()
        .map(|u| columns.vector_after(&inputs.spec, index, histories.of(u), n))
        .collect();
    let mut out = vec![Column::new(features_batch::USER_ID.into(), ids)];
    for (j, name) in inputs.spec.schema().names.iter().enumerate() {
        let values: Vec<f64> = vectors.iter().map(|v| v[j]).collect();
        out.push(Column::new(name.as_str().into(), values));
    }
    Ok(DataFrame::new_infer_height(out)?)
}

pub fn run(args: &FeatureTableArgs) -> Result<()> {
    let started = Instant::now();
    let inputs = load(&args.interactions, &args.catalog, FeatureParams::default())?;
    print_report(&args.catalog.display().to_string(), &inputs.catalog_report);
    print_report(&args.interactions.display().to_string(), &inputs.report);
    let as_of = match args.as_of_micros {
        Some(t) => t,
        None => latest_timestamp(&inputs.interactions)?.unwrap_or(0),
    };
    let index = inputs.spec.index_catalog(&inputs.catalog);
    let computing = Instant::now();
    let mut table = match args.first_n {
        Some(n) => first_n_table(&inputs, &index, n)?,
        None => compute_features(&inputs.spec, &index, &inputs.interactions, as_of)?,
    };
    let compute_secs = computing.elapsed().as_secs_f64();
    write_parquet(&args.out, &mut table)?;
    let schema = inputs.spec.schema();
    let sidecar = args.out.with_extension("schema.json");
    let as_of_text = match args.first_n {
        Some(n) => format!("each user's {n}-th interaction"),
        None => features::interaction::format_rfc3339(
            &chrono::DateTime::from_timestamp_micros(as_of).unwrap_or_default(),
        ),
    };
    let description = serde_json::json!({
        "as_of": as_of_text,
        "first_n": args.first_n,
        "spec": inputs.spec,
        "schema": schema,
    });
    std::fs::write(&sidecar, serde_json::to_string_pretty(&description)?)
        .with_context(|| format!("writing {}", sidecar.display()))?;
    eprintln!(
        "wrote {} users × {} features to {} (schema {}) in {:.1}s (features {:.1}s)",
        table.height(),
        schema.len(),
        args.out.display(),
        sidecar.display(),
        started.elapsed().as_secs_f64(),
        compute_secs
    );
    Ok(())
}
