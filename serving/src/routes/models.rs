//! `GET /v1/models` (registry state) and `POST /v1/models/{version}/promote`:
//! verify, swap atomically ([`crate::models`]), re-score in the background.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use features::registry::ModelEntry;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::query::ApiQuery;
use super::AppState;
use crate::error::{ApiResult, AppError};
use crate::models::MODEL_NAME;

/// The registry as serving sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Models {
    /// The version scoring now (`null` before any is promoted).
    pub serving: Option<String>,
    /// The registry's `current` pointer.
    pub current: Option<String>,
    /// Every version, oldest first.
    pub versions: Vec<ModelVersion>,
}

/// One version in the registry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelVersion {
    pub version: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub code_version: String,
    pub feature_schema_hash: String,
    pub models: Vec<ModelEntry>,
    /// Each classifier's classes, e.g. the life stages.
    pub label_vocabularies: BTreeMap<String, Vec<String>>,
    /// Targets whose model did not beat its baseline on held-out users.
    pub below_baseline: Vec<String>,
    /// The training report's held-out metrics.
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PromoteQuery {
    /// Promote even though a model is below its baseline.
    force: Option<bool>,
}

/// A promotion's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Promoted {
    pub serving: String,
    pub previous: Option<String>,
    /// Profiles are re-scored with the new model in the background.
    pub rescoring: String,
}

#[utoipa::path(get, path = "/v1/models", tag = "models",
    responses((status = 200, body = Models, description = "The registry's versions and the one serving")))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<Models>> {
    let registry = state.models.registry().clone();
    let (current, versions) = tokio::task::spawn_blocking(move || {
        Ok::<_, features::registry::RegistryError>((
            registry.current(MODEL_NAME)?,
            registry.list(MODEL_NAME)?,
        ))
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))??;
    let versions = versions
        .into_iter()
        .map(|m| ModelVersion {
            created_at: features::interaction::format_rfc3339(&m.created_at),
            below_baseline: m.below_baseline().into_iter().map(str::to_owned).collect(),
            feature_schema_hash: m.feature_schema.hash.clone(),
            version: m.version,
            code_version: m.code_version,
            models: m.models,
            label_vocabularies: m.label_vocabularies,
            metrics: m.metrics,
        })
        .collect();
    Ok(Json(Models {
        serving: state.models.serving(),
        current,
        versions,
    }))
}

#[utoipa::path(post, path = "/v1/models/{version}/promote", tag = "models",
    params(("version" = String, Path), PromoteQuery),
    responses((status = 200, body = Promoted, description = "Serving the version; profiles re-scored in the background"),
        (status = 404, description = "No such version"), (status = 409, description = "Below its baseline (use force)"),
        (status = 422, description = "Corrupted or incompatible artifact; the old model keeps serving")))]
pub async fn promote(
    State(state): State<AppState>,
    Path(version): Path<String>,
    ApiQuery(query): ApiQuery<PromoteQuery>,
) -> ApiResult<Json<Promoted>> {
    let activated = state
        .models
        .promote(&version, query.force.unwrap_or(false))
        .await?;
    let pipeline = state.pipeline.clone();
    tokio::spawn(async move {
        match pipeline.rescore_all().await {
            Ok(n) => tracing::info!(profiles = n, "re-scored with the promoted model"),
            Err(e) => tracing::error!(error = %e, "re-scoring after promote failed"),
        }
    });
    Ok(Json(Promoted {
        serving: activated.version,
        previous: activated.previous,
        rescoring: "background".to_owned(),
    }))
}
