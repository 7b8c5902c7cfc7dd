//! What a relay project reports. Serialised as-is by the native API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Main,
    Backup,
}

impl Endpoint {
    /// The other input.
    pub fn other(self) -> Self {
        match self {
            Self::Main => Self::Backup,
            Self::Backup => Self::Main,
        }
    }

    /// As serialised: `main`, `backup`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Main => "main",
            Self::Backup => "backup",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// Whether a relay project runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProjectState {
    /// Not running (created, stopped, or past its stop time).
    Idle,
    /// Pulling and pushing.
    Working,
}

/// State of one input.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum InputState {
    /// Media is arriving.
    Live,
    /// Media arrived, then stopped for longer than the stall time.
    Stalled,
    /// Nothing could be pulled (yet): not published, unreachable; retried with backoff.
    Absent {
        #[schema(required = true)]
        last_error: Option<String>,
    },
}

/// One input of a relay project.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = RelayInputStatus)]
pub struct InputStatus {
    /// The URL pulled; for a `vod` input the file playing (the first one before it plays).
    pub url: String,
    #[serde(flatten)]
    pub state: InputState,
    /// For a `vod` input while it plays: where it is. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = VodPosition)]
    pub vod: Option<VodPosition>,
}

/// Where a `vod` input is in its playlist, as a viewer sees it (the input is read up to a few seconds ahead).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VodPosition {
    /// Index in `urls` of the file playing, from 0.
    pub index: usize,
    pub url: String,
    /// Seconds into that file.
    pub seconds: f64,
    /// Which play of the list this is: 1 the first, `1 + loop_times` the last.
    pub pass: u64,
}

/// One output of a relay project.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = RelayOutputStatus)]
pub struct OutputStatus {
    pub id: String,
    pub url: String,
    /// `idle` while the project is not running; then the link's state (`connecting`, `live`, `retrying`,
    /// `failed` once its retry budget is spent).
    #[serde(flatten)]
    pub state: crate::media::LinkState,
    /// Bitrate actually sent over the last seconds, kbit/s.
    pub bitrate_kbps: u64,
    /// Bytes sent since the project started.
    pub bytes: u64,
    /// Connections tried after the first, since the project started.
    pub reconnects: u64,
}

/// What a relay project is doing.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RelayStatus {
    pub state: ProjectState,
    /// The input being forwarded; null while idle or before any input delivered.
    #[schema(required = true)]
    pub active: Option<Endpoint>,
    /// Unix seconds of the last start / stop.
    #[schema(required = true)]
    pub started_at: Option<i64>,
    #[schema(required = true)]
    pub stopped_at: Option<i64>,
    /// The main input, while the project runs.
    #[schema(required = true)]
    pub main: Option<InputStatus>,
    /// The backup input, while the project runs with one.
    #[schema(required = true)]
    pub backup: Option<InputStatus>,
    pub outputs: Vec<OutputStatus>,
    /// Input switches since the start (failovers, returns and manual switches).
    pub switches: u32,
    /// For `push` inputs: where the broadcaster publishes (the ingest URL of the stream id).
    pub push_urls: Vec<String>,
}
