//! The seed's events service: `POST/GET /v1/events`, `GET/DELETE
//! /v1/events/{id}`. Interactions are events too (`interaction.recorded`):
//! they are listed from the log, and deleting one recomputes its user.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use features::{Interaction, NewEvent};
use serde_json::{json, Value};

use super::ingest::json_request;
use super::{page, AppState};
use crate::bus::new_event;
use crate::error::{ApiResult, AppError};
use crate::store::{event_user, EventCursor, EventFilter, EventRecord, INTERACTION_RECORDED};

#[utoipa::path(post, path = "/v1/events", tag = "events",
    request_body(content = String, description = "{type, payload}; an interaction.recorded payload is ingested as an interaction"),
    responses((status = 201, description = "The stored event with id and receivedAt"),
        (status = 422, description = "Invalid fields, each named")))]
pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let value = json_request(&headers, body, "POST /v1/events")?;
    let new = NewEvent::from_json(&value).map_err(|e| AppError::invalid(&e))?;
    if new.kind == INTERACTION_RECORDED {
        let interaction = Interaction::from_json(&new.payload).map_err(|e| {
            let mut prefixed = features::ValidationErrors::new();
            for fe in e.errors() {
                prefixed.push(format!("payload.{}", fe.field), fe.message.clone());
            }
            AppError::invalid(&prefixed)
        })?;
        let id = interaction.id.clone();
        let appended = state.pipeline.ingest(vec![interaction]).await?;
        let duplicate = appended.first().is_some_and(Option::is_none);
        let stored = state.store.event(&id).await?.ok_or_else(|| {
            AppError::Internal(format!("interaction {id} not found after commit"))
        })?;
        let status = if duplicate {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        return Ok((status, Json(json!(stored.event))));
    }
    let event = new_event(&new.kind, new.payload);
    let record = EventRecord {
        user_id: event_user(&event.payload),
        event: event.clone(),
    };
    state.store.insert_event(&record).await?;
    state.bus.publish(event.clone());
    Ok((StatusCode::CREATED, Json(json!(event))))
}

fn time_param(query: &HashMap<String, String>, name: &str) -> ApiResult<Option<i64>> {
    query
        .get(name)
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp_micros())
                .map_err(|e| {
                    AppError::Invalid(
                        json!([{"field": name, "message": format!("not RFC 3339: {e}")}]),
                    )
                })
        })
        .transpose()
}

#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(("type" = Option<String>, Query), ("userId" = Option<String>, Query),
        ("from" = Option<String>, Query, description = "receivedAt ≥ (RFC 3339)"),
        ("to" = Option<String>, Query, description = "receivedAt < (RFC 3339)"),
        ("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{items, nextCursor}, oldest first")))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let limit = page::limit(&query)?;
    let after: EventCursor = page::after(&query)?.unwrap_or_default();
    let filter = EventFilter {
        kind: query.get("type").cloned(),
        user_id: query.get("userId").cloned(),
        from_micros: time_param(&query, "from")?,
        to_micros: time_param(&query, "to")?,
        after,
        limit,
    };
    let (items, next) = state.store.list_events(&filter).await?;
    let next = page::next(items.len(), limit, Some(next));
    Ok(Json(json!({"items": items, "nextCursor": next})))
}

#[utoipa::path(get, path = "/v1/events/{id}", tag = "events", params(("id" = String, Path)),
    responses((status = 200, description = "The event"), (status = 404, description = "No such event")))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let record = state
        .store
        .event(&id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("event {id}")))?;
    Ok(Json(json!(record.event)))
}

#[utoipa::path(delete, path = "/v1/events/{id}", tag = "events", params(("id" = String, Path)),
    responses((status = 200, description = "Deleted; for an interaction, its user's features are recomputed"),
        (status = 404, description = "No such event")))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if state.store.delete_event(&id).await? {
        return Ok(Json(json!({"id": id, "deleted": true})));
    }
    match state.pipeline.delete_interaction(id.clone()).await? {
        Some(user) => Ok(Json(json!({"id": id, "deleted": true, "recomputed": user}))),
        None => Err(AppError::NotFound(format!("event {id}"))),
    }
}
