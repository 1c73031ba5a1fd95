//! HTTP routes (SPEC §7). `app` builds the router from the state so tests can
//! drive it without a socket; `startup` adds the socket and shutdown.

mod events;
pub(crate) mod ingest;
pub mod models;
mod ops;
mod profiles;
pub mod query;
mod users;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::routing::{get, post};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::bus::Bus;
use crate::engine::Engine;
use crate::pipeline::Pipeline;
use crate::store::Store;
use crate::telemetry::{self, Metrics};

pub use ops::ApiDoc;

/// Shared state handed to every handler. Axum clones it for every request,
/// so it is one pointer (cloning the fields each time — a dozen reference
/// counts, the metric handles, the origin list — was an eighth of the CPU
/// of a profile GET).
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
#[derive(Debug)]
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub engine: Arc<Engine>,
    pub pipeline: Pipeline,
    pub bus: Arc<dyn Bus>,
    /// NATS JetStream, when configured.
    pub broker: Option<crate::broker::Broker>,
    /// The registry and the model serving from it.
    pub models: Arc<crate::models::Models>,
    pub metrics: Metrics,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Browser origins allowed to call the API.
    pub cors_origins: Vec<String>,
    /// Progress of `--demo`, when on.
    pub demo: Option<Arc<crate::demo::DemoStatus>>,
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .route("/interactions", post(ingest::post_interactions))
        .route("/score", post(ingest::score))
        .route("/users", post(users::register).get(users::list))
        .route(
            "/users/{user_id}",
            get(users::get).patch(users::update).delete(users::erase),
        )
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
            .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
            .allow_headers([axum::http::header::CONTENT_TYPE])
    };
    Router::new()
        .nest("/v1", api)
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .merge(crate::dashboard::routes())
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

/// Paging of list endpoints: `limit` ([`query::Limit`]) and an opaque
/// `cursor` (hex of the JSON of the last position returned).
pub(crate) mod page {
    use serde::de::DeserializeOwned;
    use serde::Serialize;

    use crate::error::AppError;

    /// The position a `cursor` names, if one is given.
    pub fn after<T: DeserializeOwned>(cursor: Option<&str>) -> Result<Option<T>, AppError> {
        // `?cursor=` (a form's empty field) is the first page.
        let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let bad = || {
            AppError::invalid_field(
                "cursor",
                format!("{cursor:?} is not a cursor this service issued"),
            )
        };
        let bytes = hex::decode(cursor).map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map(Some).map_err(|_| bad())
    }

    /// The cursor of the page after one of `returned` items ending at `last`:
    /// none when the page was not full.
    pub fn next<T: Serialize>(returned: usize, limit: usize, last: Option<T>) -> Option<String> {
        if returned < limit {
            return None;
        }
        last.map(|position| hex::encode(serde_json::to_vec(&position).unwrap_or_default()))
    }
}
