//! The seed's events service: `POST/GET /v1/events`, `GET/DELETE
//! /v1/events/{id}`. Interactions are events too (`interaction.recorded`):
//! they are listed from the log, and deleting one recomputes its user.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use features::{Event, Interaction, NewEvent};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::ingest::json_request;
use super::query::{ApiQuery, Instant, Limit};
use super::{page, AppState};
use crate::bus::new_event;
use crate::error::{ApiResult, AppError, ErrorBody};
use crate::events::{event_user, INTERACTION_RECORDED};
use crate::store::{EventCursor, EventFilter, EventRecord};

#[utoipa::path(post, path = "/v1/events", tag = "events",
    request_body(content = NewEvent, description = "An interaction.recorded payload is ingested as an interaction"),
    responses((status = 201, body = Event, description = "The stored event with id and receivedAt"),
        (status = 200, body = Event, description = "An interaction.recorded already stored: the stored one"),
        (status = 410, body = ErrorBody, description = "The event's user was erased (and has not registered since): dropped"),
        (status = 422, description = "Invalid fields, each named")))]
pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Event>)> {
    let value = json_request(&headers, body, "POST /v1/events")?;
    let new = NewEvent::from_json(&value).map_err(|e| AppError::invalid(&e))?;
    // An erased user's events are dropped until they register again
    // (SPEC §10), interactions included.
    let user = if new.kind == INTERACTION_RECORDED {
        new.payload["actor"]["id"].as_str().map(str::to_owned)
    } else {
        event_user(&new.payload)
    };
    if let Some(user) = user.filter(|u| state.pipeline.is_erased(u)) {
        state.metrics.ingest_erased.inc();
        return Err(AppError::Erased(format!(
            "user {user} was erased: their events are dropped until they register again"
        )));
    }
    if new.kind == INTERACTION_RECORDED {
        let interaction = Interaction::from_json(&new.payload).map_err(|e| {
            let mut prefixed = features::ValidationErrors::new();
            for fe in e.errors() {
                prefixed.push(format!("payload.{}", fe.field), fe.message.clone());
            }
            AppError::invalid(&prefixed)
        })?;
        let id = interaction.id.clone();
        let outcomes = state.pipeline.ingest(vec![interaction]).await?;
        state.metrics.count_ingested(&outcomes);
        let duplicate = match outcomes.first() {
            Some(crate::pipeline::Ingested::Erased) => {
                return Err(AppError::Erased(format!(
                    "the user of interaction {id} was erased: it was dropped"
                )))
            }
            Some(crate::pipeline::Ingested::Duplicate) => true,
            _ => false,
        };
        let stored = crate::events::find(&*state.store, &id)
            .await?
            .ok_or_else(|| {
                AppError::Internal(format!("interaction {id} not found after commit"))
            })?;
        let status = if duplicate {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        return Ok((status, Json(stored.event)));
    }
    let event = new_event(&new.kind, new.payload);
    let record = EventRecord {
        user_id: event_user(&event.payload),
        event: event.clone(),
    };
    state.store.insert_event(&record).await?;
    state.bus.publish(event.clone());
    Ok((StatusCode::CREATED, Json(event)))
}

/// Filters of `GET /v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventListQuery {
    /// Events of this type only, e.g. `user.registered`.
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Events concerning this user only.
    user_id: Option<String>,
    /// receivedAt at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<Instant>,
    /// receivedAt before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<Instant>,
    /// Events per page, 1–1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<Limit>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// A page of `GET /v1/events`, oldest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    pub items: Vec<Event>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// A deleted event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDeleted {
    pub id: String,
    pub deleted: bool,
    /// For an interaction: the user whose features were recomputed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recomputed: Option<String>,
}

#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventListQuery),
    responses((status = 200, body = EventPage, description = "Matching events, oldest first"),
        (status = 422, description = "A parameter is invalid; details name it")))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<EventListQuery>,
) -> ApiResult<Json<EventPage>> {
    let limit = Limit::or_default(query.limit);
    let after: EventCursor = page::after(query.cursor.as_deref())?.unwrap_or_default();
    let filter = EventFilter {
        kind: query.kind,
        user_id: query.user_id,
        from_micros: query.from.map(|t| t.0),
        to_micros: query.to.map(|t| t.0),
        after,
        limit,
    };
    let (items, next) = crate::events::list(&*state.store, &filter).await?;
    let next_cursor = page::next(items.len(), limit, Some(next));
    Ok(Json(EventPage { items, next_cursor }))
}

#[utoipa::path(get, path = "/v1/events/{id}", tag = "events", params(("id" = String, Path)),
    responses((status = 200, body = Event, description = "The event"),
        (status = 404, description = "No such event")))]
pub async fn get(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Event>> {
    let record = crate::events::find(&*state.store, &id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("event {id}")))?;
    Ok(Json(record.event))
}

#[utoipa::path(delete, path = "/v1/events/{id}", tag = "events", params(("id" = String, Path)),
    responses((status = 200, body = EventDeleted, description = "Deleted; for an interaction, its user's features are recomputed"),
        (status = 404, description = "No such event")))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<EventDeleted>> {
    if state.store.delete_event(&id).await? {
        return Ok(Json(EventDeleted {
            id,
            deleted: true,
            recomputed: None,
        }));
    }
    match state.pipeline.delete_interaction(id.clone()).await? {
        Some(user) => Ok(Json(EventDeleted {
            id,
            deleted: true,
            recomputed: Some(user),
        })),
        None => Err(AppError::NotFound(format!("event {id}"))),
    }
}
