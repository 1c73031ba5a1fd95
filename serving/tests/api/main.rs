//! Integration tests over real HTTP on port 0. Every test that takes a
//! `Backend` runs twice: on an embedded SQLite file and on a fresh PostgreSQL
//! database (the same suite for both stores). One binary, one file per area
//! of the API; what they share is in `helpers`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bus;
mod dashboard;
mod erasure;
mod events;
mod helpers;
mod ingest;
mod lifecycle;
mod models;
mod profiles;
mod protobuf;
mod router;
mod users;
