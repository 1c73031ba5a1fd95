//! Registration (the seed's user service): `POST/GET /v1/users`,
//! `GET/PATCH/DELETE /v1/users/{id}`. Editing changes declared fields (the
//! profile's follow at once); deleting erases every row of the user.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::Datelike;
use features::{Profile, UserRegistration};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ingest::json_request;
use super::query::{ApiQuery, Limit};
use super::{page, AppState};
use crate::error::{ApiResult, AppError};
use crate::store::{Erasure, UserRecord};

/// A registration's answer: the user as saved and the profile it starts.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    pub user: UserRecord,
    pub profile: Profile,
}

/// A page of `GET /v1/users`, by userId.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPage {
    pub items: Vec<UserRecord>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UserListQuery {
    /// Users per page, 1–1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<Limit>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// What erasing a user removed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Erased {
    pub user_id: String,
    pub removed: Erasure,
}

#[utoipa::path(post, path = "/v1/users", tag = "users",
    request_body(content = UserRegistration, description = "userId is assigned when absent; the e-mail must be unique"),
    responses((status = 201, body = Registered, description = "Saved, user.registered emitted, profile created"),
        (status = 409, description = "userId or email already registered"),
        (status = 422, description = "Invalid fields, each named")))]
pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Registered>)> {
    let value = json_request(&headers, body, "POST /v1/users")?;
    let now = crate::bus::now();
    let mut registration =
        UserRegistration::from_json(&value, now.year()).map_err(|e| AppError::invalid(&e))?;
    registration
        .user_id
        .get_or_insert_with(|| format!("u_{}", uuid::Uuid::now_v7().simple()));
    let record = UserRecord {
        registration,
        created_at: now,
    };
    let profile = state.pipeline.register(record.clone()).await?;
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            user: record,
            profile,
        }),
    ))
}

#[utoipa::path(get, path = "/v1/users", tag = "users", params(UserListQuery),
    responses((status = 200, body = UserPage, description = "Registered users by userId"),
        (status = 422, description = "A parameter is invalid; details name it")))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<UserListQuery>,
) -> ApiResult<Json<UserPage>> {
    let limit = Limit::or_default(query.limit);
    let after: Option<String> = page::after(query.cursor.as_deref())?;
    let users = state.store.list_users(after.as_deref(), limit).await?;
    let next_cursor = page::next(users.len(), limit, users.last().map(|u| u.user_id()));
    Ok(Json(UserPage {
        items: users,
        next_cursor,
    }))
}

#[utoipa::path(get, path = "/v1/users/{user_id}", tag = "users",
    params(("user_id" = String, Path)),
    responses((status = 200, body = UserRecord, description = "The registration"),
        (status = 404, description = "No such user")))]
pub async fn get(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> ApiResult<Json<UserRecord>> {
    let user = state
        .store
        .user(&user_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("user {user_id}")))?;
    Ok(Json(user))
}

#[utoipa::path(delete, path = "/v1/users/{user_id}", tag = "users",
    params(("user_id" = String, Path)),
    responses((status = 200, body = Erased, description = "Every row of the user erased"),
        (status = 404, description = "Nothing stored for this user")))]
pub async fn erase(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Erased>> {
    let removed = state.pipeline.erase(user_id.clone()).await?;
    if removed.is_empty() {
        return Err(AppError::NotFound(format!("user {user_id}")));
    }
    Ok(Json(Erased { user_id, removed }))
}

/// The body of `PATCH /v1/users/{user_id}`: a JSON merge patch (RFC 7396)
/// of the declared fields. A field given is set, `null` removes an optional
/// one, an absent one is kept; the result must hold as a registration
/// would. The id cannot change: a `userId` equal to the path's is allowed
/// (a patch made from a user as read), any other is refused.
// The OpenAPI shape only: the patch is applied to the stored user and the
// result validated as a whole, so that every bad field is named.
#[expect(dead_code, reason = "a schema; patches are validated once applied")]
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserPatch {
    #[schema(format = Email, max_length = 254, nullable = false)]
    email: Option<String>,
    #[schema(max_length = 200)]
    name: Option<String>,
    #[schema(max_length = 32)]
    gender: Option<String>,
    #[schema(minimum = 1900)]
    birth_year: Option<i32>,
    #[schema(maximum = 20)]
    adults: Option<u32>,
    #[schema(maximum = 20)]
    kids: Option<u32>,
    marital_status: Option<features::MaritalStatus>,
    #[schema(max_length = 32)]
    income_band: Option<String>,
}

/// An edit's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Updated {
    pub user: UserRecord,
    pub profile: Profile,
    /// The fields whose values changed; empty when the patch changed
    /// nothing (then nothing was stored and no event emitted).
    pub changed: Vec<String>,
}

#[utoipa::path(patch, path = "/v1/users/{user_id}", tag = "users",
    params(("user_id" = String, Path)),
    request_body(content(
        (UserPatch = "application/merge-patch+json"),
        (UserPatch = "application/json"),
    ), description = "The fields to change; null removes an optional one"),
    responses((status = 200, body = Updated, description = "Saved, user.updated emitted, the profile's declared fields follow"),
        (status = 404, description = "No such user"),
        (status = 409, description = "The email belongs to another user"),
        (status = 422, description = "Invalid fields, each named")))]
pub async fn update(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Updated>> {
    let body = super::ingest::body_bytes(body)?;
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/merge-patch+json")
        && !mime.eq_ignore_ascii_case("application/json")
    {
        return Err(AppError::Unsupported(format!(
            "PATCH /v1/users/{{user_id}} takes application/merge-patch+json or application/json, not {mime:?}"
        )));
    }
    let patch = match super::ingest::json_body(&body)? {
        serde_json::Value::Object(patch) => patch,
        _ => return Err(AppError::invalid_field("$", "must be a JSON object")),
    };
    let updated = state
        .pipeline
        .update_user(user_id.clone(), patch)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("user {user_id}")))?;
    Ok(Json(Updated {
        user: updated.user,
        profile: updated.profile,
        changed: updated.changed,
    }))
}
