//! The one place where domain errors become HTTP answers:
//! `{"error": {"code", "message", "details"}}` with the status SPEC §7 names.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use features::registry::RegistryError;
use features::ValidationErrors;
use serde_json::{json, Value};

use crate::pipeline::PipelineError;
use crate::store::StoreError;

/// Seconds a client is asked to wait when the service is overloaded.
pub const RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Malformed(String),
    #[error("invalid input")]
    Invalid(Value),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Overloaded(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    pub fn invalid(errors: &ValidationErrors) -> AppError {
        AppError::Invalid(json!(errors))
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed"),
            AppError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            AppError::Unsupported(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            AppError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            AppError::Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let (message, details) = match &self {
            AppError::Invalid(details) => (
                "the input is not valid; details name each field".to_owned(),
                details.clone(),
            ),
            other => (other.to_string(), Value::Null),
        };
        if status.is_server_error() && !matches!(self, AppError::Overloaded(_)) {
            tracing::error!(%code, %message, "request failed");
        }
        let body = json!({"error": {"code": code, "message": message, "details": details}});
        let mut response = (status, Json(body)).into_response();
        if matches!(self, AppError::Overloaded(_) | AppError::Unavailable(_)) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => AppError::Conflict(format!("{what} already exists")),
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed,
            )
            | StoreError::WriterStopped => {
                AppError::Unavailable(format!("database unavailable: {e}"))
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<PipelineError> for AppError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Overloaded { .. } => AppError::Overloaded(e.to_string()),
            PipelineError::TooLarge { .. } => AppError::TooLarge(e.to_string()),
            PipelineError::Closed => AppError::Unavailable(e.to_string()),
            PipelineError::Store(s) => s.into(),
        }
    }
}

impl From<RegistryError> for AppError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::UnknownVersion { .. } | RegistryError::NothingPromoted { .. } => {
                AppError::NotFound(e.to_string())
            }
            RegistryError::BelowBaseline { .. } => AppError::Conflict(e.to_string()),
            RegistryError::Corrupted { .. }
            | RegistryError::SchemaMismatch { .. }
            | RegistryError::Manifest { .. } => AppError::Invalid(json!({"model": e.to_string()})),
            RegistryError::Io { .. } => AppError::Internal(e.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, AppError>;
