//! `micro-serve`: Micro's HTTP service. This foundation serves the operational
//! endpoints; ingestion, profiles and the rest of SPEC §7 build on it.

pub mod config;
pub mod routes;
pub mod startup;

pub use config::Config;
pub use startup::Application;
