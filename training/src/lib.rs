//! The training side of Micro: synthetic worlds, feature tables, the fold
//! benchmark, model training and evaluation. `main.rs` only parses the command line and calls in here.

pub mod backfill;
pub mod bench;
pub mod feature_table;
pub mod generate;
pub mod metrics;
pub mod select;
pub mod topics;
pub mod train;

/// The code version recorded in artifacts: crate version and, when built
/// from a git checkout, the commit.
pub const CODE_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+", env!("MICRO_GIT_COMMIT"));

use std::fs::File;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use polars::prelude::{DataFrame, ParquetWriter};

/// Writes a frame to a Parquet file (zstd), naming the file on failure.
pub fn write_parquet(path: &Path, df: &mut DataFrame) -> Result<()> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    ParquetWriter::new(file)
        .finish(df)
        .map_err(|e| anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}
