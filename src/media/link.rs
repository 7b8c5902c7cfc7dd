//! The one state every supervised link reports: mix inputs and outputs, relay inputs and outputs.

use serde::Serialize;

/// Where a supervised link (an input pull, an output push) stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LinkState {
    /// Not running: nothing is tried (a relay project that is stopped).
    Idle,
    /// An attempt is under way; no media has moved yet. `attempt` counts the failures before it.
    Connecting { attempt: u32 },
    /// Media is moving.
    Live,
    /// The last attempt failed; the next starts after `retry_in_ms`.
    Retrying {
        attempt: u32,
        last_error: String,
        retry_in_ms: u64,
    },
    /// The retry budget is spent (relay outputs) and nothing more is tried until the link is started again.
    Failed { last_error: String },
}

impl LinkState {
    /// The state's name as serialised: `idle`, `connecting`, `live`, `retrying`, `failed`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Connecting { .. } => "connecting",
            Self::Live => "live",
            Self::Retrying { .. } => "retrying",
            Self::Failed { .. } => "failed",
        }
    }

    pub fn is_live(&self) -> bool {
        matches!(self, Self::Live)
    }

    /// The error of the last failed attempt, where the state carries one.
    pub fn last_error(&self) -> Option<&str> {
        match self {
            Self::Retrying { last_error, .. } | Self::Failed { last_error } => Some(last_error),
            _ => None,
        }
    }
}
