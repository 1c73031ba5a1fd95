//! Operational endpoints at the root: liveness, readiness, metrics, the
//! OpenAPI document, and the JSON 404 for unknown paths.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use utoipa::OpenApi;

use super::AppState;
use crate::error::AppError;

#[derive(OpenApi, Debug)]
#[openapi(
    info(
        title = "Micro",
        description = "Live user profiles from interaction streams"
    ),
    paths(
        super::ingest::post_interactions,
        super::ingest::score,
        super::users::register,
        super::users::list,
        super::users::get,
        super::users::erase,
        super::events::post,
        super::events::list,
        super::events::get,
        super::events::delete,
        super::profiles::get,
        super::profiles::list,
        super::models::list,
        super::models::promote,
        healthz,
        readyz,
        metrics,
        openapi,
    )
)]
pub struct ApiDoc;

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "The process is alive")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready: the database answers"), (status = 503, description = "Not ready")))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let db = tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await;
    let model = state.engine.model().map(|m| m.version().to_owned());
    // NATS being down does not make the service unready: HTTP keeps working
    // and events wait in the outbox. It is reported for operators.
    let bus = match &state.broker {
        None => "in-process",
        Some(b) if b.is_connected() => "nats: connected",
        Some(_) => "nats: disconnected (events wait in the outbox)",
    };
    match db {
        Ok(Ok(())) => {
            let mut body = json!({"ready": true, "database": state.store.backend(), "model": model, "bus": bus});
            if let Some(demo) = &state.demo {
                body["demo"] = demo.to_json();
            }
            (StatusCode::OK, Json(body))
        }
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": format!("database: {e}")})),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false, "reason": "database did not answer within 2 s"})),
        ),
    }
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state
        .metrics
        .queue_depth
        .set(state.pipeline.queue_depth() as i64);
    state
        .metrics
        .log_unindexed
        .set(state.store.unindexed() as i64);
    if state.broker.is_some() {
        match state.store.outbox_depth().await {
            Ok(depth) => state.metrics.outbox_depth.set(depth),
            Err(e) => tracing::warn!(error = %e, "reading the outbox depth failed"),
        }
    }
    state
        .metrics
        .users_in_memory
        .set(state.engine.users() as i64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "This document")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

pub async fn not_found() -> AppError {
    AppError::NotFound("route".into())
}
