//! The native API's error shape: `{"error":{"code","message","details"}}`, with a stable machine-readable code.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use utoipa::{ToResponse, ToSchema};

use crate::{
    error::{Error, ErrorKind},
    model::Violation,
};

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<Violation>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, code) = match e.kind {
            ErrorKind::Invalid => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_spec"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::LimitExceeded => (StatusCode::CONFLICT, "limit_exceeded"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "output_in_use"),
            ErrorKind::State => (StatusCode::CONFLICT, "wrong_state"),
            ErrorKind::Unavailable => (StatusCode::UNPROCESSABLE_ENTITY, "resource_unavailable"),
            ErrorKind::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "image_too_large"),
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        Self {
            status,
            code,
            message: e.message,
            details: e.violations,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// The body of every error of the native API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable.
    #[schema(value_type = ErrorCode)]
    pub code: &'static str,
    /// For people: what was wrong and how to fix it.
    pub message: String,
    /// Every rule the request breaks, each with the path of its field (`invalid_spec`); absent otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Violation>,
}

/// Every code of the native API's errors.
// Schema only: the handlers name the codes as strings (a test checks this list against them).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ErrorCode {
    InvalidSpec,
    InvalidBody,
    MalformedJson,
    UnsupportedMediaType,
    BodyTooLarge,
    InvalidId,
    NotFound,
    AlreadyExists,
    LimitExceeded,
    ResourceUnavailable,
    Internal,
    OutputInUse,
    RateLimited,
    ReadOnly,
    ImageTooLarge,
    MethodNotAllowed,
    WrongState,
    Unauthorized,
    Forbidden,
    NoFrame,
    Busy,
    /// Cluster: the node that runs the task cannot be reached or is changing now; retry (`Retry-After`).
    Unavailable,
}

/// More than `server.max_requests_per_s` from this client; `Retry-After` says when to retry (code
/// `rate_limited`).
#[derive(ToResponse)]
#[response(headers(("Retry-After" = u64, description = "seconds to wait before the next request")))]
#[allow(dead_code)]
pub struct RateLimited(ErrorBody);
