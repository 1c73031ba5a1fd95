//! Operational endpoints at the root: liveness, readiness, metrics, the
//! OpenAPI document, and the JSON 404 for unknown paths.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use super::AppState;
use crate::error::{AppError, ErrorBody};

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
        super::users::update,
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
    ),
    // Referenced by the error answers `CommonErrors` adds; the rest are
    // collected from the paths.
    components(schemas(ErrorBody)),
    modifiers(&CommonErrors, &BirthYearBound),
)]
pub struct ApiDoc;

/// `birthYear` is at most the current year: a bound no derive can state.
#[derive(Debug)]
struct BirthYearBound;

impl Modify for BirthYearBound {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use chrono::Datelike;
        use utoipa::openapi::{RefOr, Schema};
        let year = crate::bus::now().year();
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for name in ["UserRegistration", "UserPatch"] {
            if let Some(RefOr::T(Schema::Object(user))) = components.schemas.get_mut(name) {
                if let Some(RefOr::T(Schema::Object(birth_year))) =
                    user.properties.get_mut("birthYear")
                {
                    birth_year.maximum = Some(year.into());
                }
            }
        }
    }
}

/// Adds to every `/v1` operation the error answers any of them can give
/// (500, 503 with `Retry-After`; 400, 413 and 415 where there is a body;
/// 422 where there are query parameters), and the error body to each error
/// answer a handler lists by its status only.
#[derive(Debug)]
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/v1/");
            for operation in operations(item) {
                if api {
                    let mut common = vec![
                        ("500", "Internal error"),
                        (
                            "503",
                            "Database unavailable or ingest overloaded; see Retry-After",
                        ),
                    ];
                    if operation.request_body.is_some() {
                        common.extend([
                            ("400", "The body is not valid JSON"),
                            ("413", "The body is too large"),
                            ("415", "The content type is not one this operation takes"),
                        ]);
                    }
                    let has_query = operation.parameters.iter().flatten().any(|p| {
                        matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query)
                    });
                    if has_query {
                        common.push(("422", "A parameter is invalid; details name it"));
                    }
                    for (status, description) in common {
                        operation
                            .responses
                            .responses
                            .entry(status.to_owned())
                            .or_insert_with(|| {
                                ResponseBuilder::new()
                                    .description(description)
                                    .build()
                                    .into()
                            });
                    }
                }
                for (status, response) in operation.responses.responses.iter_mut() {
                    let utoipa::openapi::RefOr::T(response) = response else {
                        continue;
                    };
                    let error = status.starts_with('4') || status.starts_with('5');
                    if api && error && response.content.is_empty() {
                        response.content.insert(
                            "application/json".to_owned(),
                            ContentBuilder::new()
                                .schema(Some(Ref::from_schema_name("ErrorBody")))
                                .build(),
                        );
                    }
                }
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// Readiness: the database answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// Always `true`.
    pub ready: bool,
    /// `sqlite` or `postgres`, with the database's version.
    pub database: String,
    /// The model version serving.
    pub model: Option<String>,
    /// `in-process` or the NATS connection's state.
    pub bus: String,
    /// Progress of `--demo`, when on.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub demo: Option<serde_json::Value>,
}

/// Not ready, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotReady {
    /// Always `false`.
    pub ready: bool,
    pub reason: String,
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health, description = "The process is alive")))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Ready, description = "Ready: the database answers"),
        (status = 503, body = NotReady, description = "Not ready")))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let db = tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await;
    let model = state.engine.model().map(|m| m.version().to_owned());
    // NATS being down does not make the service unready: HTTP keeps working
    // and events wait in the outbox. It is reported for operators.
    let bus = match &state.broker {
        None => "in-process",
        Some(b) if b.is_connected() => "nats: connected",
        Some(_) => "nats: disconnected (events wait in the outbox)",
    };
    let reason = match db {
        Ok(Ok(())) => {
            let ready = Ready {
                ready: true,
                database: state.store.backend().to_string(),
                model,
                bus: bus.to_owned(),
                demo: state.demo.as_ref().map(|d| d.to_json()),
            };
            return (StatusCode::OK, Json(ready)).into_response();
        }
        Ok(Err(e)) => format!("database: {e}"),
        Err(_) => "database did not answer within 2 s".to_owned(),
    };
    let not_ready = NotReady {
        ready: false,
        reason,
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(not_ready)).into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain", body = String, description = "Prometheus text format")))]
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

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, body = Object, description = "This document")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

pub async fn not_found() -> AppError {
    AppError::NotFound("route".into())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use utoipa::OpenApi;

    /// Every `$ref` in a JSON tree.
    fn refs(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    found.push(r.clone());
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }

    /// What a generated client needs: a schema for every request and
    /// response body, error answers in the error shape, and no dangling
    /// reference.
    #[test]
    fn the_document_has_a_schema_for_every_body() {
        let doc = serde_json::to_value(super::ApiDoc::openapi()).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut operations = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                operations += 1;
                let name = format!("{method} {path}");
                if let Some(body) = operation.get("requestBody") {
                    for (media, content) in body["content"].as_object().unwrap() {
                        assert!(content["schema"].is_object(), "{name} {media}: no schema");
                    }
                }
                for (status, response) in operation["responses"].as_object().unwrap() {
                    let content = response["content"].as_object();
                    let content = content.unwrap_or_else(|| panic!("{name} {status}: no body"));
                    for (media, c) in content {
                        assert!(
                            c["schema"].is_object(),
                            "{name} {status} {media}: no schema"
                        );
                    }
                    if path.starts_with("/v1/") && status.as_str() >= "400" {
                        assert_eq!(
                            content["application/json"]["schema"]["$ref"],
                            "#/components/schemas/ErrorBody",
                            "{name} {status}"
                        );
                    }
                }
                if path.starts_with("/v1/") {
                    for status in ["500", "503"] {
                        assert!(
                            operation["responses"][status].is_object(),
                            "{name}: no {status}"
                        );
                    }
                }
            }
        }
        assert!(operations >= 18, "{operations} operations");
        let mut found = Vec::new();
        refs(&doc, &mut found);
        for r in found {
            let name = r.trim_start_matches("#/components/schemas/");
            assert!(schemas.contains_key(name), "dangling {r}");
        }
        // Vocabularies are enums a client (and the dashboard) can read.
        assert_eq!(
            schemas["LifeStage"]["enum"],
            serde_json::json!([
                "young_adult",
                "midlife_adult",
                "young_family",
                "mature_family",
                "senior"
            ])
        );
        assert_eq!(
            schemas["InteractionType"]["enum"].as_array().unwrap().len(),
            5
        );
    }
}
