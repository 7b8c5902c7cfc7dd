//! What the engine reports about running work. Serialised as-is by the native API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use crate::media::LinkState;

/// One input of a running mix.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct InputStatus {
    pub id: String,
    /// The URL pulled (stream ids resolved through `ingest.pull_url`).
    pub url: String,
    #[serde(flatten)]
    pub state: LinkState,
    /// Size of the picture currently received, once known: `[width, height]`.
    #[schema(required = true)]
    pub video_size: Option<(u32, u32)>,
    /// Milliseconds since the input's newest decoded frame; null before any.
    #[schema(required = true)]
    pub last_frame_age_ms: Option<u64>,
    /// Connections to the input tried after the first.
    pub reconnects: u64,
}

/// One output of a running mix.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OutputStatus {
    /// The URL published to.
    pub url: String,
    #[serde(flatten)]
    pub state: LinkState,
    /// Bitrate actually sent over the last seconds, in kbit/s.
    pub bitrate_kbps: u64,
    /// Connections tried after the first.
    pub reconnects: u64,
}

/// Whether a mix runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MixState {
    /// Being started: after a restart of the process, or to recover from a failure.
    Starting,
    /// The pipeline runs.
    Running,
    /// The pipeline failed or could not be started (`error` says why); it is restarted after a backoff, and a
    /// new PUT restarts it at once.
    Failed,
}

/// What a mix is doing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MixStatus {
    pub state: MixState,
    /// Why the mix is not running, when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub error: Option<String>,
    /// Seconds since the mix (re)started.
    pub uptime_s: u64,
    /// Frames per second leaving the compositor over the last seconds; 0 when every output is audio-only (the
    /// mix then has no compositor).
    pub output_fps: f64,
    /// Bitrate of the encoded output over the last seconds, in kbit/s (first encoder).
    pub output_bitrate_kbps: u64,
    pub inputs: Vec<InputStatus>,
    pub outputs: Vec<OutputStatus>,
    /// The worker process the mix runs in: its CPU and memory, shared by the mixes it runs (absent while the
    /// mix is not running, or where mixes run inside the serving process: `engine.workers = 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<crate::worker::ProcessUsage>,
}

/// The status of a mix that has no pipeline (starting, or failed to start): its inputs and outputs idle.
pub fn not_running(
    spec: &crate::model::MixSpec,
    state: MixState,
    error: Option<String>,
    config: &crate::config::Config,
) -> MixStatus {
    MixStatus {
        state,
        error,
        uptime_s: 0,
        output_fps: 0.0,
        output_bitrate_kbps: 0,
        inputs: spec
            .inputs
            .iter()
            .map(|i| InputStatus {
                id: i.id.clone(),
                url: super::resolve_input(&i.source, &config.ingest),
                state: LinkState::Idle,
                video_size: None,
                last_frame_age_ms: None,
                reconnects: 0,
            })
            .collect(),
        outputs: spec
            .outputs
            .iter()
            .map(|o| OutputStatus {
                url: super::resolve_output(&o.target, &config.egress),
                state: LinkState::Idle,
                bitrate_kbps: 0,
                reconnects: 0,
            })
            .collect(),
        process: None,
    }
}
