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
    /// 410: about a user who was erased; dropped (SPEC §10).
    Erased,
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
    Erased(String),
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
            AppError::Erased(_) => (StatusCode::GONE, ErrorCode::Erased),
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

#[cfg(test)]
mod tests {
    //! The mapping is the contract clients program against (SPEC §7): each
    //! case is checked on the answer a client receives, not on the variant,
    //! so a change of status, code or header anywhere on the way shows.

    use std::path::PathBuf;

    use serde_json::{json, Value};

    use super::*;

    /// What a client reads of an error answer.
    #[derive(Debug, PartialEq)]
    struct Seen {
        status: StatusCode,
        code: String,
        retry_after: Option<String>,
    }

    fn seen(status: StatusCode, code: &str, retry_after: bool) -> Seen {
        Seen {
            status,
            code: code.to_owned(),
            retry_after: retry_after.then(|| RETRY_AFTER_SECS.to_string()),
        }
    }

    /// The answer `error` becomes, and its whole body.
    async fn answer(error: impl Into<AppError>) -> (Seen, Value) {
        let response = error.into().into_response();
        let status = response.status();
        let header_of = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
        };
        let retry_after = header_of(header::RETRY_AFTER);
        assert_eq!(
            header_of(header::CONTENT_TYPE).as_deref(),
            Some("application/json")
        );
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let code = body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let seen = Seen {
            status,
            code,
            retry_after,
        };
        (seen, body)
    }

    /// Every error of `errors` is answered as `expected`.
    async fn each_answers<E>(errors: impl IntoIterator<Item = E>, expected: Seen)
    where
        E: Into<AppError> + std::fmt::Display,
    {
        for e in errors {
            let shown = e.to_string();
            let (got, _) = answer(e).await;
            assert_eq!(got, expected, "{shown}");
        }
    }

    #[tokio::test]
    async fn each_variant_has_its_status_code_and_retry_after() {
        let cases = [
            (
                AppError::Malformed("not JSON".into()),
                400,
                "malformed",
                false,
            ),
            (
                AppError::invalid_field("limit", "must be 1 to 1000"),
                422,
                "invalid",
                false,
            ),
            (
                AppError::NotFound("user ann".into()),
                404,
                "not_found",
                false,
            ),
            (
                AppError::Conflict("user ann exists".into()),
                409,
                "conflict",
                false,
            ),
            (AppError::Erased("user ann".into()), 410, "erased", false),
            (
                AppError::Unsupported("text/plain".into()),
                415,
                "unsupported_media_type",
                false,
            ),
            (
                AppError::TooLarge("body too large".into()),
                413,
                "too_large",
                false,
            ),
            (
                AppError::Overloaded("queue is full".into()),
                503,
                "overloaded",
                true,
            ),
            (
                AppError::Unavailable("database down".into()),
                503,
                "unavailable",
                true,
            ),
            (
                AppError::Internal("not readable".into()),
                500,
                "internal",
                false,
            ),
        ];
        for (error, status, code, retry_after) in cases {
            let expected = seen(StatusCode::from_u16(status).unwrap(), code, retry_after);
            let shown = error.to_string();
            let (got, body) = answer(error).await;
            assert_eq!(got, expected, "{shown}: {body}");
            // Only `invalid` carries details; the others say it in the message.
            if expected.code == "invalid" {
                assert!(body["error"]["details"].is_array(), "{body}");
            } else {
                assert_eq!(body["error"]["message"], json!(shown), "{body}");
                assert_eq!(body["error"]["details"], Value::Null, "{body}");
            }
        }
    }

    #[tokio::test]
    async fn invalid_names_each_field_in_details() {
        let mut errors = ValidationErrors::new();
        errors.push("email", "is not an e-mail address");
        errors.push("kids", "must not be negative");
        let (got, body) = answer(AppError::invalid(&errors)).await;
        assert_eq!(got.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body["error"]["details"],
            json!([
                {"field": "email", "message": "is not an e-mail address"},
                {"field": "kids", "message": "must not be negative"},
            ])
        );
        let (_, body) = answer(AppError::invalid_field("limit", "must be 1 to 1000")).await;
        assert_eq!(
            body["error"]["details"],
            json!([{"field": "limit", "message": "must be 1 to 1000"}])
        );
    }

    #[tokio::test]
    async fn store_errors_map_to_conflict_unavailable_or_internal() {
        let (got, body) = answer(StoreError::Conflict("user ann".into())).await;
        assert_eq!(got, seen(StatusCode::CONFLICT, "conflict", false));
        assert_eq!(body["error"]["message"], "user ann already exists");
        // The database cannot be reached (for now): ask the client to retry.
        let unreachable = [
            StoreError::Database(sqlx::Error::PoolTimedOut),
            StoreError::Database(sqlx::Error::PoolClosed),
            StoreError::Database(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "connection refused",
            ))),
            StoreError::WriterStopped,
        ];
        each_answers(
            unreachable,
            seen(StatusCode::SERVICE_UNAVAILABLE, "unavailable", true),
        )
        .await;
        // Anything else is the service's fault: no retry will help.
        let broken = [
            StoreError::Database(sqlx::Error::RowNotFound),
            StoreError::Database(sqlx::Error::Protocol("unexpected message".into())),
            StoreError::Corrupt("profile of ann".into()),
            StoreError::UnsupportedUrl("mysql://db".into()),
        ];
        each_answers(
            broken,
            seen(StatusCode::INTERNAL_SERVER_ERROR, "internal", false),
        )
        .await;
    }

    #[tokio::test]
    async fn pipeline_errors_map_to_overloaded_too_large_or_unavailable() {
        let (got, body) = answer(PipelineError::Overloaded { queued: 10 }).await;
        assert_eq!(
            got,
            seen(StatusCode::SERVICE_UNAVAILABLE, "overloaded", true)
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("retry")),
            "{body}"
        );
        let (got, body) = answer(PipelineError::TooLarge {
            size: 11,
            capacity: 10,
        })
        .await;
        assert_eq!(got, seen(StatusCode::PAYLOAD_TOO_LARGE, "too_large", false));
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("split it")),
            "{body}"
        );
        let (got, _) = answer(PipelineError::Closed).await;
        assert_eq!(
            got,
            seen(StatusCode::SERVICE_UNAVAILABLE, "unavailable", true)
        );
        // A store error inside the pipeline maps as it does on its own.
        let (got, _) = answer(PipelineError::Store(StoreError::Conflict("x".into()))).await;
        assert_eq!(got, seen(StatusCode::CONFLICT, "conflict", false));
        let (got, _) = answer(PipelineError::Store(StoreError::WriterStopped)).await;
        assert_eq!(
            got,
            seen(StatusCode::SERVICE_UNAVAILABLE, "unavailable", true)
        );
    }

    #[tokio::test]
    async fn registry_errors_map_to_not_found_conflict_invalid_model_or_internal() {
        let path = PathBuf::from("models/profile/profile-2");
        let missing = [
            RegistryError::UnknownVersion {
                name: "profile".into(),
                version: "profile-9".into(),
            },
            RegistryError::NothingPromoted {
                name: "profile".into(),
                path: path.clone(),
            },
        ];
        each_answers(missing, seen(StatusCode::NOT_FOUND, "not_found", false)).await;
        let (got, _) = answer(RegistryError::BelowBaseline {
            version: "profile-2".into(),
            models: "spending_class".into(),
        })
        .await;
        assert_eq!(got, seen(StatusCode::CONFLICT, "conflict", false));
        // An artifact that cannot be served is the request's problem: 422
        // naming `model`, with the registry's reason as the message.
        let unservable = [
            RegistryError::Corrupted {
                path: path.clone(),
                file: "catalog.json".into(),
                expected: "aa".into(),
                actual: "bb".into(),
            },
            RegistryError::SchemaMismatch {
                path: path.clone(),
                artifact: "v1".into(),
                current: "v2".into(),
            },
            RegistryError::Manifest {
                path: path.clone(),
                message: "missing field `version`".into(),
            },
        ];
        for e in unservable {
            let shown = e.to_string();
            let (got, body) = answer(e).await;
            assert_eq!(
                got,
                seen(StatusCode::UNPROCESSABLE_ENTITY, "invalid", false),
                "{shown}"
            );
            assert_eq!(
                body["error"]["details"],
                json!([{"field": "model", "message": shown}])
            );
        }
        let (got, _) = answer(RegistryError::Io {
            path,
            source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        })
        .await;
        assert_eq!(
            got,
            seen(StatusCode::INTERNAL_SERVER_ERROR, "internal", false)
        );
    }
}
