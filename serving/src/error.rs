//! The one place where domain errors become HTTP answers:
//! `{"error": {"code", "message", "details"}}` with the status SPEC §7 names,
//! described once for the OpenAPI document ([`ErrorBody`]).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use features::registry::RegistryError;
use features::{FieldError, ValidationErrors};
use serde::Serialize;
use utoipa::ToSchema;

use crate::models::ModelError;
use crate::pipeline::PipelineError;
use crate::routes::ingest::Rejections;
use crate::store::StoreError;

/// Every error answer: `{"error": {code, message, details}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorInfo {
    pub code: ErrorCode,
    pub message: String,
    /// For `invalid`: each bad field, or for a batch whose every item is
    /// invalid, the items by index. `null` otherwise.
    pub details: Option<ErrorDetails>,
}

/// What an error answer's `code` says; the status follows from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the body or a parameter cannot be read at all.
    Malformed,
    /// 422: readable, but fields break the rules; `details` names them.
    Invalid,
    NotFound,
    Conflict,
    UnsupportedMediaType,
    TooLarge,
    /// 503 with `Retry-After`: the ingest queue is full.
    Overloaded,
    /// 503 with `Retry-After`: the database cannot be reached.
    Unavailable,
    Internal,
}

/// The `details` of an `invalid` answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ErrorDetails {
    /// Each problem by field path, e.g. `target.id`.
    Fields(Vec<FieldError>),
    /// A batch none of whose items could be accepted.
    Batch(Box<Rejections>),
}

/// Seconds a client is asked to wait when the service is overloaded.
pub const RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Malformed(String),
    #[error("invalid input")]
    Invalid(ErrorDetails),
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
        AppError::Invalid(ErrorDetails::Fields(errors.errors().to_vec()))
    }

    /// 422 naming one field.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> AppError {
        AppError::Invalid(ErrorDetails::Fields(vec![FieldError {
            field: field.to_owned(),
            message: message.into(),
        }]))
    }

    fn parts(&self) -> (StatusCode, ErrorCode) {
        match self {
            AppError::Malformed(_) => (StatusCode::BAD_REQUEST, ErrorCode::Malformed),
            AppError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::Invalid),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
            AppError::Conflict(_) => (StatusCode::CONFLICT, ErrorCode::Conflict),
            AppError::Unsupported(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
            ),
            AppError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge),
            AppError::Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Overloaded),
            AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable),
            AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let retry_later = matches!(self, AppError::Overloaded(_) | AppError::Unavailable(_));
        let (message, details) = match self {
            AppError::Invalid(details) => (
                "the input is not valid; details name each field".to_owned(),
                Some(details),
            ),
            other => (other.to_string(), None),
        };
        if status.is_server_error() && code != ErrorCode::Overloaded {
            tracing::error!(?code, %message, "request failed");
        }
        let body = ErrorBody {
            error: ErrorInfo {
                code,
                message,
                details,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if retry_later {
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
            PipelineError::Invalid(errors) => AppError::invalid(&errors),
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
            | RegistryError::Manifest { .. } => AppError::invalid_field("model", e.to_string()),
            RegistryError::Io { .. } => AppError::Internal(e.to_string()),
        }
    }
}

impl From<ModelError> for AppError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Registry(e) => e.into(),
            ModelError::Stopped(_) => AppError::Internal(e.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, AppError>;
