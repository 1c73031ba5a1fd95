//! The training side of Micro: synthetic worlds, feature tables and the fold
//! benchmark. `main.rs` only parses the command line and calls in here.

pub mod bench;
pub mod feature_table;
pub mod generate;

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
