//! `micro-serve`: Micro's HTTP service. Interactions come in over HTTP, are
//! appended durably ([`store`]), folded into live per-user states and scored
//! ([`engine`], [`pipeline`]); profiles, users, events and models are served
//! under `/v1` ([`routes`]).

pub mod broker;
pub mod bus;
pub mod config;
pub mod dashboard;
pub mod demo;
pub mod engine;
pub mod erasure;
pub mod error;
pub mod events;
pub mod models;
pub mod pipeline;
pub mod routes;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod welcome;
pub mod wire;

pub use config::Config;
pub use startup::Application;
