//! Live profiles: `GET /v1/profiles/{userId}` (read-your-writes: served from
//! the live state) and `GET /v1/profiles` (audiences for messaging).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::Json;
use features::{LifeStage, Profile};
use serde_json::{json, Value};

use super::{page, AppState};
use crate::error::{ApiResult, AppError};
use crate::store::ProfileFilter;

#[utoipa::path(get, path = "/v1/profiles/{user_id}", tag = "profiles", params(("user_id" = String, Path)),
    responses((status = 200, description = "The live profile (SPEC §2.6)"), (status = 404, description = "No such user")))]
pub async fn get(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Profile>> {
    if let Some(p) = state.engine.profile(&user_id) {
        return Ok(Json(p));
    }
    state
        .store
        .profile(&user_id)
        .await?
        .map(Json)
        .ok_or_else(|| AppError::NotFound(format!("profile of user {user_id}")))
}

fn life_stage_param(query: &HashMap<String, String>, name: &str) -> ApiResult<Option<String>> {
    query
        .get(name)
        .map(|s| {
            LifeStage::parse(s)
                .map(|l| l.as_str().to_owned())
                .ok_or_else(|| {
                    let allowed: Vec<&str> = LifeStage::ALL.iter().map(|l| l.as_str()).collect();
                    AppError::Invalid(json!([{"field": name,
                    "message": format!("{s:?} is not one of {}", allowed.join(", "))}]))
                })
        })
        .transpose()
}

#[utoipa::path(get, path = "/v1/profiles", tag = "profiles",
    params(("spendingClass" = Option<u8>, Query, description = "1–5"),
        ("lifeStage" = Option<String>, Query, description = "acting life stage"),
        ("realLifeStage" = Option<String>, Query, description = "declared life stage"),
        ("topic" = Option<String>, Query), ("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{items, nextCursor}, by userId")))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let limit = page::limit(&query)?;
    let spending_class = query
        .get("spendingClass")
        .map(|s| {
            s.parse::<u8>().ok().filter(|c| (1..=5).contains(c)).ok_or_else(|| {
                AppError::Invalid(json!([{"field": "spendingClass", "message": format!("{s:?} is not 1 to 5")}]))
            })
        })
        .transpose()?;
    let filter = ProfileFilter {
        spending_class,
        life_stage: life_stage_param(&query, "lifeStage")?,
        real_life_stage: life_stage_param(&query, "realLifeStage")?,
        topic: query.get("topic").cloned(),
        after: page::after(&query)?,
        limit,
    };
    // Lists read the store: write what changed first, so they see every
    // answered POST too.
    state.pipeline.flush().await?;
    let items = state.store.list_profiles(&filter).await?;
    let next = page::next(items.len(), limit, items.last().map(|p| &p.user_id));
    Ok(Json(json!({"items": items, "nextCursor": next})))
}
