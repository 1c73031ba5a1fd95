//! HTTP routes. `app` builds the router so tests can drive it without a socket.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// Shared state handed to every handler.
#[derive(Clone, Debug, Default)]
pub struct AppState {}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}
