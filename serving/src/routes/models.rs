//! `GET /v1/models` (registry state) and `POST /v1/models/{version}/promote`:
//! verify, swap atomically, re-score in the background.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use features::registry::Registry;
use features::ProfileScorer;
use serde_json::{json, Value};

use super::{AppState, MODEL_NAME};
use crate::engine::ActiveModel;
use crate::error::{ApiResult, AppError};

#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, description = "{serving, current, versions: [{version, createdAt, models, labelVocabularies, metrics, belowBaseline}]}")))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let registry = state.registry.clone();
    let (current, versions) = tokio::task::spawn_blocking(move || {
        Ok::<_, features::registry::RegistryError>((
            registry.current(MODEL_NAME)?,
            registry.list(MODEL_NAME)?,
        ))
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))??;
    let versions: Vec<Value> = versions
        .iter()
        .map(|m| {
            json!({
                "version": m.version,
                "createdAt": features::interaction::format_rfc3339(&m.created_at),
                "codeVersion": m.code_version,
                "featureSchemaHash": m.feature_schema.hash,
                "models": m.models,
                "labelVocabularies": m.label_vocabularies,
                "belowBaseline": m.below_baseline(),
                "metrics": m.metrics,
            })
        })
        .collect();
    Ok(Json(json!({
        "serving": state.engine.model().map(|m| m.version().to_owned()),
        "current": current,
        "versions": versions,
    })))
}

/// Loads a version into a scorer (verifying checksums and feature schema).
pub fn load_scorer(registry: &Registry, version: &str) -> ApiResult<ProfileScorer> {
    let artifact = registry.load(MODEL_NAME, version)?;
    Ok(ProfileScorer::from_artifact(&artifact)?)
}

#[utoipa::path(post, path = "/v1/models/{version}/promote", tag = "models",
    params(("version" = String, Path), ("force" = Option<bool>, Query, description = "promote even below baseline")),
    responses((status = 200, description = "Serving the version; profiles re-scored in the background"),
        (status = 404, description = "No such version"), (status = 409, description = "Below its baseline (use force)"),
        (status = 422, description = "Corrupted or incompatible artifact; the old model keeps serving")))]
pub async fn promote(
    State(state): State<AppState>,
    Path(version): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let force = matches!(query.get("force").map(String::as_str), Some("true" | "1"));
    let _one_at_a_time = state.promoting.lock().await;
    let registry = state.registry.clone();
    let v = version.clone();
    // Verify and build before touching anything: a bad artifact leaves the
    // serving model as it was.
    let scorer = tokio::task::spawn_blocking(move || -> ApiResult<ProfileScorer> {
        let scorer = load_scorer(&registry, &v)?;
        registry.promote(MODEL_NAME, &v, force)?;
        Ok(scorer)
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))??;
    let previous = state.engine.model().map(|m| m.version().to_owned());
    let states_rebuilt = state.engine.set_model(ActiveModel::new(scorer));
    state.metrics.set_model(Some(&version));
    tracing::info!(%version, ?previous, states_rebuilt, "model promoted");
    let pipeline = state.pipeline.clone();
    tokio::spawn(async move {
        match pipeline.rescore_all().await {
            Ok(n) => tracing::info!(profiles = n, "re-scored with the promoted model"),
            Err(e) => tracing::error!(error = %e, "re-scoring after promote failed"),
        }
    });
    Ok(Json(json!({
        "serving": version,
        "previous": previous,
        "rescoring": "background",
    })))
}
