//! Core errors. They carry a kind; only the HTTP layer (per dialect) maps kinds to status codes and vendor codes.

use crate::model::Violation;

/// What went wrong, in terms a dialect can map to its own codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ErrorKind {
    /// The request describes something that cannot be run; `violations` says why.
    Invalid,
    /// The named mix (or other object) does not exist.
    NotFound,
    /// A node limit (mixes, inputs, …) would be exceeded.
    LimitExceeded,
    /// Something the request needs is held by another task (an output target).
    Conflict,
    /// The task is not in a state that allows the request now: a relay project that is not running, an input
    /// that is not live, or a request overtaken by a later one for the same task (which was applied first).
    State,
    /// A referenced resource (image, …) could not be fetched or decoded.
    Unavailable,
    /// A referenced resource is larger than this node takes: an image's bytes, or the pixels its header claims.
    TooLarge,
    /// Something broke inside Tessera; details are logged, not returned.
    Internal,
}

/// A core error: a kind, a message safe to show to callers, and the violated rules for `Invalid`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub violations: Vec<Violation>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            violations: Vec::new(),
        }
    }

    pub fn invalid(violations: Vec<Violation>) -> Self {
        let message = match violations.as_slice() {
            [one] => format!("{}: {}", one.field, one.rule),
            many => format!("{} fields are invalid", many.len()),
        };
        Self {
            kind: ErrorKind::Invalid,
            message,
            violations,
        }
    }

    /// An internal failure: the detail is logged here, the caller sees a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(ErrorKind::Internal, "internal error; see the server log")
    }
}
