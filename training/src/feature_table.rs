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
    pub spec: FeatureSpec,
    pub interactions: DataFrame,
    pub report: LoadReport,
}

/// Reads the catalog and log and fits the feature spec on the catalog.
pub fn load(interactions: &Path, catalog: &Path, params: FeatureParams) -> Result<Inputs> {
    let catalog = read_catalog(catalog)?;
    let spec = params.fit(&catalog).context("feature parameters")?;
    let (interactions, report) = read_interactions(interactions)?;
    Ok(Inputs {
        catalog,
        spec,
        interactions,
        report,
    })
}

/// Prints how many rows were skipped and why (the first few).
pub fn print_report(what: &str, report: &LoadReport) {
    eprintln!(
        "{what}: {} rows read, {} valid, {} skipped as invalid",
        report.rows,
        report.rows - report.invalid,
        report.invalid
    );
    for e in &report.errors {
        eprintln!("  {e}");
    }
    if report.invalid > report.errors.len() {
        eprintln!("  … and {} more", report.invalid - report.errors.len());
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
    pub out: PathBuf,
}

pub fn run(args: &FeatureTableArgs) -> Result<()> {
    let started = Instant::now();
    let inputs = load(&args.interactions, &args.catalog, FeatureParams::default())?;
    print_report(&args.interactions.display().to_string(), &inputs.report);
    let as_of = match args.as_of_micros {
        Some(t) => t,
        None => latest_timestamp(&inputs.interactions)?.unwrap_or(0),
    };
    let index = inputs.spec.index_catalog(&inputs.catalog);
    let computing = Instant::now();
    let mut table = compute_features(&inputs.spec, &index, &inputs.interactions, as_of)?;
    let compute_secs = computing.elapsed().as_secs_f64();
    write_parquet(&args.out, &mut table)?;
    let schema = inputs.spec.schema();
    let sidecar = args.out.with_extension("schema.json");
    let description = serde_json::json!({
        "as_of": features::interaction::format_rfc3339(
            &chrono::DateTime::from_timestamp_micros(as_of).unwrap_or_default()),
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
