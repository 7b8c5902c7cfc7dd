//! The native API's error shape: `{"error":{"code","message","details"}}`, with a stable machine-readable code.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde_json::json;

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
        let mut error = json!({"code": self.code, "message": self.message});
        if !self.details.is_empty() {
            error["details"] = json!(self.details);
        }
        (self.status, Json(json!({ "error": error }))).into_response()
    }
}
