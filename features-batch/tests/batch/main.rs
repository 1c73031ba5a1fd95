//! Integration tests of the batch evaluator: parity with the incremental fold
//! (SPEC §3) and reading batch files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod io;
mod parity;
