//! Tessera's configuration file: TOML, strict (an unknown key is an error that names it), and every value
//! has a default that works on a single box with nginx-rtmp on loopback.

use std::{net::SocketAddr, path::Path, time::Duration};

use serde::Deserialize;

/// A credential from the configuration: compared and hashed like a string, but never shown by `Debug`, so a
/// logged or printed configuration cannot leak it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for signing and verifying only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether it is long enough to sign with: [`MIN_SECRET_CHARS`] characters or more.
    pub fn is_strong(&self) -> bool {
        self.0.chars().count() >= MIN_SECRET_CHARS
    }
}

/// The shortest secret a dialect with an id accepts: an empty or short one would let anyone sign requests.
pub const MIN_SECRET_CHARS: usize = 16;

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Whether one is set is useful in a dump; its value is not.
        f.write_str(if self.0.is_empty() {
            "Secret(empty)"
        } else {
            "Secret(***)"
        })
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The HTTP listener that serves every API dialect.
    pub server: ServerConfig,
    /// Where input stream ids are pulled from, and how inputs are supervised.
    pub ingest: IngestConfig,
    /// Where output stream ids are published, and how outputs reconnect.
    pub egress: EgressConfig,
    /// Limits and tuning of the mixing engine.
    pub engine: EngineConfig,
    /// The ZEGO server API dialect (`/?Action=StartMix`, …).
    pub zego: ZegoConfig,
    /// The Tencent Cloud dialects: legacy `Mix_StreamV2` CGI and push-URL auto-mix (and what API 3.0 shares).
    pub tencent: TencentConfig,
    /// Credentials of the Tencent Cloud API 3.0 dialect (`POST /` with `X-TC-Action`).
    pub tencentcloud: TencentCloudConfig,
    /// How status callbacks (relay project events) are delivered.
    pub callbacks: CallbacksConfig,
    /// Signed webhooks: the node's events POSTed to the operator's own systems.
    pub webhooks: WebhooksConfig,
    /// Where accepted tasks are recorded so a restart resumes them.
    pub store: StoreConfig,
    /// Many nodes behind one endpoint, coordinated through etcd (docs/cluster.md). Absent: a single node, its
    /// tasks in `[store]`.
    pub cluster: Option<ClusterConfig>,
    /// The process's log: its format and level.
    pub log: LogConfig,
    /// Pictures known by id (Tencent `picture_id` / `WatermarkId`), in addition to those uploaded with
    /// `PUT /v1/pictures/{id}`: id = file path or http(s) URL of a PNG or JPEG.
    pub pictures: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes; larger bodies get 413.
    pub max_body_bytes: usize,
    /// Requests per second the native API (`/v1/…`) takes from one client address (429 above it); 0: no
    /// limit, as a self-hosted node trusts its callers.
    pub max_requests_per_s: u32,
    /// Bearer tokens that may use the whole native API (`/v1/…`, the event stream, `/metrics`): callers send
    /// `Authorization: Bearer <token>`. Each at least 16 characters. Never logged. Vendor dialects keep their
    /// own signatures; `/healthz` and `/readyz` stay open.
    pub api_tokens: Vec<Secret>,
    /// Tokens that may only read (GET): dashboards, monitoring.
    pub read_only_tokens: Vec<Secret>,
    /// A file of further tokens, one per line (`ro:` before a read-only one; `#` starts a comment), read at start
    /// (and on reload): keeps tokens out of the main file.
    pub token_file: String,
    /// Serve the native API without tokens on an address other machines can reach. Without tokens, a `listen`
    /// address that is not loopback is refused at start unless this is `true`: an open API must be a decision.
    pub allow_unauthenticated: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            max_body_bytes: 256 * 1024,
            max_requests_per_s: 0,
            api_tokens: Vec::new(),
            read_only_tokens: Vec::new(),
            token_file: String::new(),
            allow_unauthenticated: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// URL template an input given by stream id is pulled from; `{stream_id}` is replaced.
    pub pull_url: String,
    /// An input that delivered media and then none for this long is declared lost and reconnected.
    pub stall_timeout_ms: u64,
    /// An input that delivers nothing this long after connecting is retried.
    pub connect_timeout_ms: u64,
    /// First reconnect delay; doubles per failed attempt (with ±20 % jitter) up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    /// Longest delay between two reconnect attempts.
    pub retry_max_ms: u64,
    /// Refuse requests whose URLs — inputs, images, outputs, relay targets and status callbacks — name (or
    /// resolve to) a loopback, private, link-local or otherwise non-public address: a multi-tenant node must not
    /// reach into its own network on a caller's behalf. Off for the self-hosted case, where inputs and targets on
    /// the LAN are the norm.
    pub forbid_private_sources: bool,
    /// Threads each input's video decoder may use; 0 lets the decoder choose (one per core, frame threading).
    /// One thread costs the least CPU and adds no frame of delay; a single input above 1080p may need more.
    pub decoder_threads: u32,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            pull_url: "rtmp://127.0.0.1:1935/live/{stream_id}".into(),
            stall_timeout_ms: 2_000,
            connect_timeout_ms: 10_000,
            retry_initial_ms: 500,
            retry_max_ms: 10_000,
            forbid_private_sources: false,
            decoder_threads: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    /// URL template an output given by stream id is published to; `{stream_id}` is replaced.
    pub push_url: String,
    /// First reconnect delay of a failed output; doubles per attempt (±20 % jitter) up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    /// Longest delay between two reconnect attempts of an output.
    pub retry_max_ms: u64,
    /// Encoded media queued for one slow target before it skips ahead to the next keyframe, in bytes.
    pub max_queue_bytes: u64,
    /// Whether an `rtmps://` target's certificate must be valid for its host and signed by a CA the system
    /// trusts. `false` accepts any certificate: only for private targets with self-signed certificates.
    pub rtmps_verify: bool,
}

impl Default for EgressConfig {
    fn default() -> Self {
        Self {
            push_url: "rtmp://127.0.0.1:1935/mix/{stream_id}".into(),
            retry_initial_ms: 1_000,
            retry_max_ms: 30_000,
            max_queue_bytes: 4 * 1024 * 1024,
            rtmps_verify: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Time the compositor and audio mixer wait for late input before producing a frame without it.
    /// Inputs whose media arrives with more jitter than this are shown a frame late. It adds to every mix's
    /// latency one for one. 40 ms is a little over one frame at 30 fps; in the S4 benchmark 30 ms repeated no more
    /// input frames than 100 ms (0.3 % either way).
    pub latency_ms: u64,
    /// Most mixes running at once on this node; absent: [`EngineConfig::max_mixes`] derives it from the CPU
    /// cores. 0 refuses every mix (a relay-only node).
    pub max_mixes: Option<usize>,
    /// Most inputs per mix.
    pub max_inputs: usize,
    /// Most image overlays per mix.
    pub max_overlays: usize,
    /// Most output targets per mix.
    pub max_outputs: usize,
    /// Largest image accepted for an overlay or background, in bytes.
    pub max_image_bytes: u64,
    /// Most pixels (width × height, as the PNG / JPEG header claims them) of an overlay, background or uploaded
    /// picture; checked before anything decodes it (decoded, every pixel costs 4 bytes or more: a small file can
    /// claim gigabytes).
    pub max_image_pixels: u64,
    /// Threads each H.264 encoder may use; 0 lets x264 choose (sliced threads, about 1.5 per core). One
    /// thread costs the least CPU per mix (x264 veryfast at 720p: about a fifth less) and so fits the most mixes
    /// on a node; more threads only shorten one frame's encoding on an otherwise idle machine.
    pub encoder_threads: u32,
    /// The folder image files named in native API requests (`/v1/mixes` overlays and background) must lie in:
    /// a relative path there is relative to this folder, an absolute one must lie inside it, `..` is refused,
    /// and a symbolic link must not lead out of it. Empty: the native API refuses local image files (http(s)
    /// URLs only). A relative folder is relative to the configuration file's folder, like `store.path`.
    /// Operator-configured images (`[pictures]`, `zego.image_presets`) are not confined to it.
    pub pictures_dir: String,
    /// Most worker processes the mixes run in (`tessera serve` starts and supervises them): a crash, an abort
    /// or a runaway allocation in one mix's decoders ends that worker only, and its mixes come back in a new
    /// one. Mixes that share an input share a worker (the input is decoded once); otherwise each mix has its
    /// own until this many run, then new mixes join the worker with the fewest. Absent: one per mix
    /// ([`EngineConfig::max_mixes`]). 0 runs every mix inside the serving process (no isolation).
    pub workers: Option<usize>,
    /// The program a worker runs (`PROGRAM worker`); `tessera serve` fills an empty one in with its own
    /// executable. Left empty by a program that embeds the library, its mixes run in-process.
    pub worker_program: String,
    /// A worker whose resident memory grows past this many MiB is killed and its mixes restarted in a new one
    /// (the `mix.failed` event says why); the node and the other workers go on.
    pub max_worker_memory_mb: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            latency_ms: 40,
            max_mixes: None,
            max_inputs: 16,
            max_overlays: 8,
            max_outputs: 8,
            max_image_bytes: 4 * 1024 * 1024,
            max_image_pixels: 4096 * 4096,
            encoder_threads: 1,
            pictures_dir: String::new(),
            workers: None,
            worker_program: String::new(),
            max_worker_memory_mb: 2048,
        }
    }
}

impl EngineConfig {
    /// Mixes this node admits at once: the configured number, or 5 per 2 CPU cores (at least 2) — the benchmark's
    /// target for the standard 4-input 720p scene (S4). It is a ceiling, not a promise: what fits depends on the
    /// inputs (see docs/benchmarks.md), so nodes should set it from their own scenes.
    /// Most worker processes: the configured number, else one per mix this node admits.
    pub fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| self.max_mixes())
    }

    pub fn max_mixes(&self) -> usize {
        self.max_mixes.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            mixes_for_cores(cores)
        })
    }
}

/// The default mix capacity of a node with `cores` CPU cores.
pub fn mixes_for_cores(cores: usize) -> usize {
    (cores * 5 / 2).max(2)
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ZegoConfig {
    /// The AppId requests must carry; 0 turns the dialect off (every request is refused with 100000001).
    pub app_id: u64,
    /// The ServerSecret signatures are made with, at least 16 characters when `app_id` is set. Never logged.
    pub server_secret: Secret,
    /// How far a request's Timestamp may be from the server's clock, in seconds; nonces are remembered as long.
    pub timestamp_window_s: u64,
    /// Most inputs per task (ZEGO's default limit is 9; over it: 110200158).
    pub max_inputs: usize,
    /// How long StartMix waits for a new input to be found (110200150 when it is not live by then and the last
    /// try to pull it failed); 0 skips the check.
    pub input_check_ms: u64,
    /// Seconds a task may have no live input before it ends by itself, when the request gives no MaxIdleTime.
    pub max_idle_s: u64,
    /// Play URL templates returned in PlayInfo (`{stream_id}` is replaced). An empty RTMP template means the
    /// egress URL the output is published to; empty FLV / HLS templates are returned as "".
    pub play_rtmp_url: String,
    pub play_flv_url: String,
    pub play_hls_url: String,
    /// `preset-id://…` names for BackgroundImage and WaterMark.Image, mapped to a file path or http(s) URL.
    pub image_presets: std::collections::BTreeMap<String, String>,
    /// Requests per second accepted per AppId (ZEGO's own limit is 100/s; above it: code 7); 0: no limit.
    pub max_requests_per_s: u32,
}

impl Default for ZegoConfig {
    fn default() -> Self {
        Self {
            app_id: 0,
            server_secret: Secret::default(),
            timestamp_window_s: 600,
            max_inputs: 9,
            input_check_ms: 3_000,
            max_idle_s: 90,
            play_rtmp_url: String::new(),
            play_flv_url: String::new(),
            play_hls_url: String::new(),
            image_presets: Default::default(),
            max_requests_per_s: 100,
        }
    }
}

/// One application allowed to call the legacy CGI.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TencentApp {
    /// The live APPID requests name in `appid` (or `cmd`).
    pub appid: u64,
    /// The API key `sign = MD5(key + t)` is made with, at least 16 characters. Never logged.
    pub key: Secret,
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TencentConfig {
    /// The APPID of the legacy CGI; 0 (with no `apps`) turns the CGI off.
    pub appid: u64,
    /// Its API key, at least 16 characters when `appid` is set. Never logged.
    pub key: Secret,
    /// Further applications, each with its own key.
    pub apps: Vec<TencentApp>,
    /// A session whose inputs have all been gone this long ends by itself (Tencent: 15 minutes).
    pub idle_end_s: u64,
    /// How long a request waits for its inputs to be found (and the background's size to be known) before
    /// refusing with -505 / `FailedOperation.StreamNotExist`.
    pub input_check_ms: u64,
    /// Whether streams published with `mixv2=` / `mix=` in their URL query are mixed automatically (the RTMP
    /// server must call the `/callbacks/…` endpoints).
    pub automix: bool,
    /// Legacy CGI requests per second accepted per APPID (Tencent's limit is 200/s; above it: -10031); 0: no
    /// limit.
    pub max_requests_per_s: u32,
    /// How far ahead of the server's clock a CGI request's expiry `t` may be, in seconds (Tencent's
    /// documentation signs with now + 60 s); a later one is refused as expired (-40002), so a leaked signed URL
    /// is not good for long.
    pub max_expiry_ahead_s: u64,
}

impl Default for TencentConfig {
    fn default() -> Self {
        Self {
            appid: 0,
            key: Secret::default(),
            apps: Vec::new(),
            idle_end_s: 900,
            input_check_ms: 5_000,
            automix: true,
            max_requests_per_s: 200,
            max_expiry_ahead_s: 600,
        }
    }
}

impl TencentConfig {
    /// The key of `appid`, if that application is configured.
    pub fn key_of(&self, appid: u64) -> Option<&str> {
        if appid == 0 {
            return None;
        }
        if self.appid == appid {
            return Some(self.key.expose());
        }
        self.apps
            .iter()
            .find(|a| a.appid == appid)
            .map(|a| a.key.expose())
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TencentCloudConfig {
    /// The SecretId API 3.0 requests are signed with; empty turns API 3.0 off.
    pub secret_id: String,
    /// Its SecretKey, at least 16 characters when `secret_id` is set. Never logged.
    pub secret_key: Secret,
    /// API 3.0 requests (live and CME) per second accepted per SecretId (Tencent's limit is 200/s; above it:
    /// `RequestLimitExceeded`); 0: no limit.
    pub max_requests_per_s: u32,
}

impl Default for TencentCloudConfig {
    fn default() -> Self {
        Self {
            secret_id: String::new(),
            secret_key: Secret::default(),
            max_requests_per_s: 200,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// SQLite file holding every accepted mix and relay project (created if missing; its directory must exist,
    /// or the start is refused). A relative path is relative to the configuration file's folder (the embedded
    /// default configuration's: to the working directory). Empty: records live in memory only, and a restart
    /// starts with no tasks.
    pub path: String,
}

/// `[cluster]`: this node's place in a cluster (docs/cluster.md). Task records then live in etcd, not `[store]`.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// etcd client endpoints (`http://host:2379`); every member, so a member's loss is survived.
    pub etcd: Vec<String>,
    /// This node's id, unique in the cluster: its tasks are owned under it.
    pub node_id: String,
    /// Where the other nodes reach this node's API (requests for its tasks are forwarded there).
    pub advertise_url: String,
    /// The node's etcd lease: a node silent this long loses its tasks to others. It stops its own outputs
    /// before then (fencing). Shorter moves tasks sooner after a crash; longer survives longer etcd trouble.
    pub lease_ttl_ms: u64,
    /// Cost units this node takes (1000 = one core of the reference machine); 0: from its cores.
    pub capacity: u64,
    /// Prefix of every key this cluster writes in etcd (several clusters may share one etcd).
    pub prefix: String,
    /// How long SIGTERM may drain the node (move its tasks away one at a time) before it stops what is left.
    pub drain_timeout_s: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            etcd: vec!["http://127.0.0.1:2379".into()],
            node_id: String::new(),
            advertise_url: String::new(),
            lease_ttl_ms: 6000,
            capacity: 0,
            prefix: "/tessera".into(),
            drain_timeout_s: 120,
        }
    }
}

impl ClusterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(format!("cluster.{m}")));
        if self.etcd.is_empty() {
            return bad("etcd must name at least one endpoint");
        }
        let id_ok = !self.node_id.is_empty()
            && self.node_id.len() <= 64
            && self
                .node_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return bad("node_id must be 1-64 characters of letters, digits, '-' and '_'");
        }
        let url_ok = url::Url::parse(&self.advertise_url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        if !url_ok {
            return bad(
                "advertise_url must be the http(s):// URL other nodes reach this node's API at",
            );
        }
        if !(1000..=600_000).contains(&self.lease_ttl_ms) {
            return bad("lease_ttl_ms must be between 1000 and 600000");
        }
        if !self.prefix.starts_with('/') || self.prefix.ends_with('/') {
            return bad("prefix must start with '/' and not end with one");
        }
        Ok(())
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: "tessera-state.db".into(),
        }
    }
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line, every field at the top level.
    Json,
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// What is logged: a level (`info`) or `target=level` directives separated by commas
    /// (`info,tessera::relay=debug,gstreamer=error`), as `RUST_LOG` takes them. `RUST_LOG`, when set, wins at start.
    /// Changeable while the node runs ([`crate::logging::LogHandle::set_level`]).
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallbacksConfig {
    /// A PEM file of CA certificates trusted for `https://` callback URLs besides the system's (a private CA of
    /// the receiving service); empty: the system's only.
    pub ca_file: String,
    /// How long one delivery attempt may take.
    pub timeout_ms: u64,
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        Self {
            ca_file: String::new(),
            timeout_ms: 5000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Where each selected event is POSTed (http:// or https://, through the `[callbacks]` client); empty: no
    /// webhooks.
    pub urls: Vec<String>,
    /// The key of each delivery's `X-Tessera-Signature` (HMAC-SHA256); required, at least 16 characters, when
    /// `urls` is set. Never logged.
    pub secret: Secret,
    /// Event types delivered (`mix.started`, or a prefix and `*`: `output.*`); empty: every type.
    pub events: Vec<String>,
    /// Events waiting per URL while it is slow or down; beyond it, new ones are dropped (and counted).
    pub queue: usize,
    /// How long one event is retried (with backoff) before it is dropped (and counted).
    pub retry_for_ms: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            secret: Secret::default(),
            events: Vec::new(),
            queue: 1000,
            retry_for_ms: 60_000,
        }
    }
}

impl WebhooksConfig {
    /// Whether events of type `kind` are delivered.
    pub fn wants(&self, kind: &str) -> bool {
        self.events.is_empty()
            || self.events.iter().any(|e| match e.strip_suffix('*') {
                Some(prefix) => kind.starts_with(prefix),
                None => e == kind,
            })
    }
}

impl IngestConfig {
    pub fn stall_timeout(&self) -> Duration {
        Duration::from_millis(self.stall_timeout_ms)
    }
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// A configuration that could not be loaded; the message names the file and the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// A dialect with an id (ZEGO AppId, CGI APPID, API 3.0 SecretId) needs a secret of at least
    /// [`MIN_SECRET_CHARS`] characters: an empty one would make every request signed with "" valid.
    fn validate_secrets(&self) -> Result<(), ConfigError> {
        let weak = |key: &str, when: &str| {
            Err(ConfigError::Invalid(format!(
                "{key} must be set (at least {MIN_SECRET_CHARS} characters) when {when}; set both or neither"
            )))
        };
        if self.zego.app_id != 0 && !self.zego.server_secret.is_strong() {
            return weak("zego.server_secret", "zego.app_id is set");
        }
        if self.tencent.appid != 0 && !self.tencent.key.is_strong() {
            return weak("tencent.key", "tencent.appid is set");
        }
        for (i, app) in self.tencent.apps.iter().enumerate() {
            if !app.key.is_strong() {
                return weak(
                    &format!("tencent.apps[{i}].key"),
                    &format!("tencent.apps[{i}].appid is set"),
                );
            }
        }
        if !self.tencentcloud.secret_id.is_empty() && !self.tencentcloud.secret_key.is_strong() {
            return weak("tencentcloud.secret_key", "tencentcloud.secret_id is set");
        }
        if !self.webhooks.urls.is_empty() && !self.webhooks.secret.is_strong() {
            return weak("webhooks.secret", "webhooks.urls is set");
        }
        Ok(())
    }

    /// Parses and validates a configuration from TOML text.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Loads a configuration file. Relative paths in it (`store.path`, `server.token_file`,
    /// `engine.pictures_dir`) are relative to the file's folder (made absolute here), so nothing moves with the
    /// working directory the node is started from.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Self::from_toml(&text, &path.display().to_string())?;
        let folder = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        for (key, value) in [
            ("store.path", &mut config.store.path),
            ("server.token_file", &mut config.server.token_file),
            ("engine.pictures_dir", &mut config.engine.pictures_dir),
        ] {
            let relative = Path::new(value.as_str());
            if !value.is_empty() && relative.is_relative() {
                let resolved = std::path::absolute(folder.join(relative)).map_err(|e| {
                    ConfigError::Invalid(format!("{key} {relative:?} cannot be resolved: {e}"))
                })?;
                *value = resolved.display().to_string();
            }
        }
        Ok(config)
    }

    /// Checks what TOML types cannot: templates, ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, template) in [
            ("ingest.pull_url", &self.ingest.pull_url),
            ("egress.push_url", &self.egress.push_url),
        ] {
            if !template.contains("{stream_id}") {
                return Err(ConfigError::Invalid(format!(
                    "{key} must contain the placeholder {{stream_id}}"
                )));
            }
        }
        if self.engine.encoder_threads > 64 || self.ingest.decoder_threads > 64 {
            return Err(ConfigError::Invalid(
                "engine.encoder_threads and ingest.decoder_threads must be at most 64".into(),
            ));
        }
        if self.engine.latency_ms > 2_000 {
            return Err(ConfigError::Invalid(
                "engine.latency_ms must be at most 2000".into(),
            ));
        }
        if self.ingest.retry_initial_ms == 0 || self.egress.retry_initial_ms == 0 {
            return Err(ConfigError::Invalid(
                "retry_initial_ms must be greater than 0".into(),
            ));
        }
        if self.engine.max_worker_memory_mb < 64 {
            return Err(ConfigError::Invalid(
                "engine.max_worker_memory_mb must be at least 64".into(),
            ));
        }
        if self.engine.max_image_pixels == 0 {
            return Err(ConfigError::Invalid(
                "engine.max_image_pixels must be greater than 0".into(),
            ));
        }
        if self.tencent.max_expiry_ahead_s == 0 {
            return Err(ConfigError::Invalid(
                "tencent.max_expiry_ahead_s must be greater than 0".into(),
            ));
        }
        if self.callbacks.timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "callbacks.timeout_ms must be greater than 0".into(),
            ));
        }
        for (i, u) in self.webhooks.urls.iter().enumerate() {
            let ok = url::Url::parse(u)
                .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.host_str().is_some());
            if !ok {
                return Err(ConfigError::Invalid(format!(
                    "webhooks.urls[{i}] must be an http:// or https:// URL"
                )));
            }
        }
        if self.webhooks.queue == 0 {
            return Err(ConfigError::Invalid(
                "webhooks.queue must be greater than 0".into(),
            ));
        }
        crate::logging::parse_level(&self.log.level)
            .map_err(|e| ConfigError::Invalid(format!("log.level: {e}")))?;
        if let Some(cluster) = &self.cluster {
            cluster.validate()?;
        }
        self.validate_secrets()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_section_is_checked() {
        let c = Config::from_toml("", "t").unwrap();
        assert!(
            c.cluster.is_none(),
            "a single node unless [cluster] says otherwise"
        );
        let ok = "[cluster]\nnode_id = \"node-a\"\nadvertise_url = \"http://10.0.0.5:8080\"\n";
        let c = Config::from_toml(ok, "t").unwrap();
        let cluster = c.cluster.unwrap();
        assert_eq!(cluster.lease_ttl_ms, 6000);
        assert_eq!(cluster.etcd, ["http://127.0.0.1:2379"]);
        for (bad, key) in [
            ("[cluster]\nadvertise_url = \"http://h:1\"\n", "node_id"),
            (
                "[cluster]\nnode_id = \"a/b\"\nadvertise_url = \"http://h:1\"\n",
                "node_id",
            ),
            ("[cluster]\nnode_id = \"a\"\n", "advertise_url"),
            (
                "[cluster]\nnode_id = \"a\"\nadvertise_url = \"http://h:1\"\nlease_ttl_ms = 10\n",
                "lease_ttl_ms",
            ),
            (
                "[cluster]\nnode_id = \"a\"\nadvertise_url = \"http://h:1\"\netcd = []\n",
                "etcd",
            ),
            (
                "[cluster]\nnode_id = \"a\"\nadvertise_url = \"http://h:1\"\nprefix = \"t/\"\n",
                "prefix",
            ),
        ] {
            let err = Config::from_toml(bad, "t").unwrap_err().to_string();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml("", "t").unwrap();
        assert_eq!(c.server.listen.port(), 8080);
        assert!(c.ingest.pull_url.contains("{stream_id}"));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlistn = 3\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listn"), "{err}");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let mut c = Config::default();
        c.zego.server_secret = "zego-secret-value".into();
        c.tencent.key = "cgi-key-value".into();
        c.tencent.apps.push(TencentApp {
            appid: 7,
            key: "app-key-value".into(),
        });
        c.tencentcloud.secret_key = "cloud-key-value".into();
        let dump = format!("{c:?}");
        for secret in [
            "zego-secret-value",
            "cgi-key-value",
            "app-key-value",
            "cloud-key-value",
        ] {
            assert!(!dump.contains(secret), "{secret} in {dump}");
        }
        assert!(dump.contains("Secret(***)"));
        assert_eq!(c.zego.server_secret.expose(), "zego-secret-value");
    }

    #[test]
    fn max_mixes_is_configured_or_derived_from_cores() {
        assert_eq!(mixes_for_cores(1), 2);
        assert_eq!(mixes_for_cores(2), 5);
        assert_eq!(mixes_for_cores(16), 40);
        let c = Config::from_toml("[engine]\nmax_mixes = 3\n", "t").unwrap();
        assert_eq!(c.engine.max_mixes(), 3);
        let d = Config::default();
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(d.engine.max_mixes(), mixes_for_cores(cores));
    }

    /// An id with an empty or short secret would let anyone sign requests: the start is refused, naming the key.
    #[test]
    fn an_id_without_a_strong_secret_is_refused() {
        for (toml, key) in [
            ("[zego]\napp_id = 1\nserver_secret = \"\"\n", "zego.server_secret"),
            ("[zego]\napp_id = 1\nserver_secret = \"short\"\n", "zego.server_secret"),
            ("[tencent]\nappid = 1\nkey = \"\"\n", "tencent.key"),
            (
                "[[tencent.apps]]\nappid = 7\nkey = \"0123456789abcdef\"\n[[tencent.apps]]\nappid = 8\nkey = \"k8\"\n",
                "tencent.apps[1].key",
            ),
            (
                "[tencentcloud]\nsecret_id = \"AKID\"\nsecret_key = \"\"\n",
                "tencentcloud.secret_key",
            ),
        ] {
            let err = Config::from_toml(toml, "t").unwrap_err().to_string();
            assert!(err.contains(key) && err.contains("16"), "{toml}: {err}");
        }
        let strong = "0123456789abcdef";
        Config::from_toml(
            &format!(
                "[zego]\napp_id = 1\nserver_secret = \"{strong}\"\n[tencent]\nappid = 2\nkey = \"{strong}\"\n\
                 [tencentcloud]\nsecret_id = \"AKID\"\nsecret_key = \"{strong}\"\n"
            ),
            "t",
        )
        .unwrap();
        // Without ids the dialects are off and their secrets may stay empty (the shipped example).
        Config::from_toml("[zego]\nserver_secret = \"\"\n", "t").unwrap();
    }

    /// A relative `store.path` in a file is relative to that file's folder (the embedded default's stays
    /// relative to the working directory); an absolute or empty one is kept.
    #[test]
    fn a_relative_store_path_is_the_config_files_folders() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tessera.toml");
        let load = |path: &str| {
            std::fs::write(&file, format!("[store]\npath = \"{path}\"\n")).unwrap();
            Config::load(&file).unwrap().store.path
        };
        let folder = std::path::absolute(dir.path()).unwrap();
        assert_eq!(
            load("state.db"),
            folder.join("state.db").display().to_string()
        );
        assert_eq!(
            load("sub/state.db"),
            folder.join("sub/state.db").display().to_string()
        );
        assert_eq!(
            load("/var/lib/tessera/state.db"),
            "/var/lib/tessera/state.db"
        );
        assert_eq!(load(""), "");
        let embedded = Config::from_toml("", "embedded").unwrap();
        assert_eq!(embedded.store.path, "tessera-state.db");
        // So is the token file.
        std::fs::write(&file, "[server]\ntoken_file = \"tokens\"\n").unwrap();
        assert_eq!(
            Config::load(&file).unwrap().server.token_file,
            folder.join("tokens").display().to_string()
        );
    }

    /// `engine.pictures_dir` resolves like `store.path`: a relative folder is the config file's folder's; empty
    /// (the default: local image files refused) stays empty.
    #[test]
    fn a_relative_pictures_dir_is_the_config_files_folders() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tessera.toml");
        let load = |folder: &str| {
            std::fs::write(&file, format!("[engine]\npictures_dir = \"{folder}\"\n")).unwrap();
            Config::load(&file).unwrap().engine.pictures_dir
        };
        let folder = std::path::absolute(dir.path()).unwrap();
        assert_eq!(
            load("pictures"),
            folder.join("pictures").display().to_string()
        );
        assert_eq!(load("/srv/pictures"), "/srv/pictures");
        assert_eq!(load(""), "");
        assert_eq!(Config::default().engine.pictures_dir, "");
        let embedded = Config::from_toml("[engine]\npictures_dir = \"p\"\n", "embedded").unwrap();
        assert_eq!(embedded.engine.pictures_dir, "p");
    }

    #[test]
    fn log_format_and_level_are_checked() {
        let c = Config::from_toml("", "t").unwrap();
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!(c.log.level, "info");
        let c = Config::from_toml(
            "[log]\nformat = \"json\"\nlevel = \"warn,tessera::relay=debug\"\n",
            "t",
        )
        .unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        let err = Config::from_toml("[log]\nformat = \"xml\"\n", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("xml") && err.contains("json"), "{err}");
        for level in ["tessera=loud", "debgu", "", "info,verbose"] {
            let err = Config::from_toml(&format!("[log]\nlevel = \"{level}\"\n"), "t")
                .unwrap_err()
                .to_string();
            assert!(err.contains("log.level"), "{level}: {err}");
        }
    }

    #[test]
    fn template_without_placeholder_is_refused() {
        let err = Config::from_toml("[egress]\npush_url = \"rtmp://x/y\"\n", "t").unwrap_err();
        assert!(err.to_string().contains("egress.push_url"));
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The documented example file and the built-in defaults must not drift apart.
    #[test]
    fn example_file_matches_defaults() {
        let c = Config::from_toml(include_str!("../tessera.example.toml"), "example").unwrap();
        let d = Config::default();
        assert_eq!(format!("{c:?}"), format!("{d:?}"));
    }
}
