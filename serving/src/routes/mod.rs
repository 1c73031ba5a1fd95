//! HTTP routes (SPEC §7). `app` builds the router from the state so tests can
//! drive it without a socket; `startup` adds the socket and shutdown.

mod events;
mod ingest;
pub mod models;
mod ops;
mod profiles;
mod users;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::routing::{get, post};
use axum::Router;
use features::registry::Registry;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::bus::Bus;
use crate::engine::Engine;
use crate::pipeline::Pipeline;
use crate::store::Store;
use crate::telemetry::{self, Metrics};

pub use ops::ApiDoc;

/// Name of the model family serving loads from the registry.
pub const MODEL_NAME: &str = "profile";

/// Shared state handed to every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub engine: Arc<Engine>,
    pub pipeline: Pipeline,
    pub bus: Arc<dyn Bus>,
    pub registry: Arc<Registry>,
    pub metrics: Metrics,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Model swaps and their background re-scoring, one at a time.
    pub promoting: Arc<tokio::sync::Mutex<()>>,
    /// Browser origins allowed to call the API.
    pub cors_origins: Vec<String>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/interactions", post(ingest::post_interactions))
        .route("/score", post(ingest::score))
        .route("/users", post(users::register).get(users::list))
        .route("/users/{user_id}", get(users::get).delete(users::erase))
        .route("/events", post(events::post).get(events::list))
        .route("/events/{id}", get(events::get).delete(events::delete))
        .route("/profiles", get(profiles::list))
        .route("/profiles/{user_id}", get(profiles::get))
        .route("/models", get(models::list))
        .route("/models/{version}/promote", post(models::promote));
    let cors = if state.cors_origins.is_empty() {
        CorsLayer::new()
    } else {
        let origins: Vec<HeaderValue> = state
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
            .collect();
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([axum::http::header::CONTENT_TYPE])
    };
    Router::new()
        .nest("/v1", api)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .fallback(ops::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            telemetry::track,
        ))
        // Bodies are limited here (413); handlers read them whole.
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(cors)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(
            |request: &axum::http::Request<axum::body::Body>| {
                let id = request
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                tracing::info_span!("request", method = %request.method(), uri = %request.uri(), request_id = %id)
            },
        ))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// Opaque pagination cursors: hex of the JSON of the position.
pub(crate) mod cursor {
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use crate::error::AppError;

    pub fn encode<T: Serialize>(position: &T) -> String {
        hex_encode(&serde_json::to_vec(position).unwrap_or_default())
    }

    pub fn decode<T: DeserializeOwned>(cursor: &str) -> Result<T, AppError> {
        let bad =
            || AppError::Malformed(format!("cursor {cursor:?} is not one this service issued"));
        let bytes = hex_decode(cursor).ok_or_else(bad)?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }

    fn hex_encode(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn hex_decode(s: &str) -> Option<Vec<u8>> {
        if s.len() % 2 != 0 {
            return None;
        }
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
            .collect()
    }
}

/// Page size of list endpoints: `limit` query parameter, default and maximum.
pub(crate) fn page_limit(limit: Option<usize>) -> Result<usize, crate::error::AppError> {
    match limit {
        None => Ok(100),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(n) => Err(crate::error::AppError::Invalid(serde_json::json!([
            {"field": "limit", "message": format!("must be 1 to 1000, got {n}")}
        ]))),
    }
}
