//! Live profiles: `GET /v1/profiles/{userId}` (read-your-writes: served from
//! the live state) and `GET /v1/profiles` (audiences for messaging).

use axum::extract::{Path, State};
use axum::Json;
use features::{LifeStage, Profile};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::query::{ApiQuery, Limit, SpendingClass};
use super::{page, AppState};
use crate::error::{ApiResult, AppError};
use crate::store::ProfileFilter;

#[utoipa::path(get, path = "/v1/profiles/{user_id}", tag = "profiles", params(("user_id" = String, Path)),
    responses((status = 200, body = Profile, description = "The live profile (SPEC §2.6)"),
        (status = 404, description = "No such user")))]
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

/// Filters of `GET /v1/profiles`: an audience for messaging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProfileListQuery {
    /// 1 (budget) to 5 (premium).
    #[param(value_type = Option<u8>, minimum = 1, maximum = 5)]
    spending_class: Option<SpendingClass>,
    /// The acting life stage (what behaviour says).
    #[param(inline)]
    life_stage: Option<LifeStage>,
    /// The declared life stage.
    #[param(inline)]
    real_life_stage: Option<LifeStage>,
    /// Profiles with this topic among theirs.
    topic: Option<String>,
    /// Profiles per page, 1–1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<Limit>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// A page of `GET /v1/profiles`, by userId.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfilePage {
    pub items: Vec<Profile>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/profiles", tag = "profiles", params(ProfileListQuery),
    responses((status = 200, body = ProfilePage, description = "Matching profiles by userId"),
        (status = 422, description = "A parameter is invalid; details name it")))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ProfileListQuery>,
) -> ApiResult<Json<ProfilePage>> {
    let limit = Limit::or_default(query.limit);
    let filter = ProfileFilter {
        spending_class: query.spending_class.map(|c| c.0),
        life_stage: query.life_stage.map(|l| l.as_str().to_owned()),
        real_life_stage: query.real_life_stage.map(|l| l.as_str().to_owned()),
        topic: query.topic,
        after: page::after(query.cursor.as_deref())?,
        limit,
    };
    // Lists read the store: write what changed first, so they see every
    // answered POST too.
    state.pipeline.flush().await?;
    let items = state.store.list_profiles(&filter).await?;
    let next_cursor = page::next(items.len(), limit, items.last().map(|p| &p.user_id));
    Ok(Json(ProfilePage { items, next_cursor }))
}
