//! What the engine reports about running work. Serialised as-is by the native API.

use serde::Serialize;

/// State of one input of a mix (or of a shared input pull).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum InputState {
    /// Pulling has started; no media yet.
    Connecting { attempt: u32 },
    /// Media is arriving.
    Live,
    /// Media stopped arriving; a reconnect follows.
    Lost { reason: String },
    /// The last attempt failed; the next starts after `retry_in_ms`.
    Retrying {
        attempt: u32,
        last_error: String,
        retry_in_ms: u64,
    },
}

/// State of one output target.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum OutputState {
    /// Connecting to the target; nothing sent yet.
    Connecting { attempt: u32 },
    /// Bytes are being delivered.
    Live,
    /// The last attempt failed; the next starts after `retry_in_ms`.
    Retrying {
        attempt: u32,
        last_error: String,
        retry_in_ms: u64,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct InputStatus {
    pub id: String,
    /// The URL pulled (stream ids resolved through `ingest.pull_url`).
    pub url: String,
    #[serde(flatten)]
    pub state: InputState,
    /// Size of the picture currently received, once known.
    pub video_size: Option<(u32, u32)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputStatus {
    /// The URL published to.
    pub url: String,
    #[serde(flatten)]
    pub state: OutputState,
    /// Bitrate actually sent over the last seconds, in kbit/s.
    pub bitrate_kbps: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MixState {
    /// The pipeline runs.
    Running,
    /// The pipeline failed; see the log. The mix is kept so its status can be read; a new PUT restarts it.
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct MixStatus {
    pub state: MixState,
    /// Seconds since the mix (re)started.
    pub uptime_s: u64,
    /// Frames per second leaving the compositor over the last seconds; 0 when every output is audio-only (the
    /// mix then has no compositor).
    pub output_fps: f64,
    /// Bitrate of the encoded output over the last seconds, in kbit/s (first encoder).
    pub output_bitrate_kbps: u64,
    pub inputs: Vec<InputStatus>,
    pub outputs: Vec<OutputStatus>,
}
