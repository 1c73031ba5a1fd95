//! Registration (the seed's user service): `POST/GET /v1/users`,
//! `GET/DELETE /v1/users/{id}`. Deleting erases every row of the user.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::Datelike;
use features::UserRegistration;
use serde_json::{json, Value};

use super::ingest::json_request;
use super::{page, AppState};
use crate::bus::new_event;
use crate::error::{ApiResult, AppError};
use crate::pipeline::user_event;
use crate::store::UserRecord;

fn user_json(record: &UserRecord) -> Value {
    json!(record)
}

#[utoipa::path(post, path = "/v1/users", tag = "users",
    request_body(content = String, description = "{userId?, email, name?, gender?, birthYear?, adults?, kids?, maritalStatus?, incomeBand?}"),
    responses((status = 201, description = "{user, profile}: saved, user.registered emitted, profile created"),
        (status = 409, description = "userId or email already registered"),
        (status = 422, description = "Invalid fields, each named")))]
pub async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let value = json_request(&headers, body, "POST /v1/users")?;
    let now = crate::bus::now();
    let mut registration =
        UserRegistration::from_json(&value, now.year()).map_err(|e| AppError::invalid(&e))?;
    let user_id = registration
        .user_id
        .get_or_insert_with(|| format!("u_{}", uuid::Uuid::now_v7().simple()))
        .clone();
    let record = UserRecord {
        registration,
        created_at: now,
    };
    let event = user_event(new_event("user.registered", user_json(&record)), &user_id);
    let profile = state.pipeline.register(record.clone(), event).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"user": user_json(&record), "profile": profile})),
    ))
}

#[utoipa::path(get, path = "/v1/users", tag = "users",
    params(("limit" = Option<usize>, Query, description = "1–1000, default 100"),
        ("cursor" = Option<String>, Query, description = "nextCursor of the previous page")),
    responses((status = 200, description = "{items, nextCursor}")))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let limit = page::limit(&query)?;
    let after: Option<String> = page::after(&query)?;
    let users = state.store.list_users(after.as_deref(), limit).await?;
    let next = page::next(users.len(), limit, users.last().map(|u| u.user_id()));
    let items: Vec<Value> = users.iter().map(user_json).collect();
    Ok(Json(json!({"items": items, "nextCursor": next})))
}

#[utoipa::path(get, path = "/v1/users/{user_id}", tag = "users",
    params(("user_id" = String, Path)),
    responses((status = 200, description = "The registration"), (status = 404, description = "No such user")))]
pub async fn get(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let user = state
        .store
        .user(&user_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("user {user_id}")))?;
    Ok(Json(user_json(&user)))
}

#[utoipa::path(delete, path = "/v1/users/{user_id}", tag = "users",
    params(("user_id" = String, Path)),
    responses((status = 200, description = "{userId, removed: {user, interactions, events, profiles}}: every row of the user erased"),
        (status = 404, description = "Nothing stored for this user")))]
pub async fn erase(
    State(state): State<AppState>,
    Path(user_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let removed = state.pipeline.erase(user_id.clone()).await?;
    if removed.is_empty() {
        return Err(AppError::NotFound(format!("user {user_id}")));
    }
    Ok(Json(json!({"userId": user_id, "removed": removed})))
}
