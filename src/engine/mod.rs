//! The mixing engine: GStreamer pipelines behind a small async API.
//!
//! # Layout
//! - `input`: the input hub — each source is pulled and decoded once (a supervised session on
//!   [`crate::media`]) and fanned out to every mix that uses it.
//! - `mix`: one pipeline per mix — still layers, input branches (`branch`), the compositor and its rounded
//!   corners (`corners`), the audio mixer, SEI (`sei`); `still` renders pictures once; `timing` stamps input
//!   media on the shared clock.
//! - `output`: one encoder branch per distinct encoding, its FLV tags fanned out to one supervised push per
//!   target ([`crate::media::push`]).
//! - `control`: how a request changes a mix — prepared without any lock, applied under the mix's own lock, in
//!   arrival order, recorded before it is acknowledged, rolled back when it cannot be applied; restore at start
//!   and recovery after a failure take the same path.
//! - `status`: what the engine reports.
//!
//! The engine never sees a vendor field name: dialects hand it a [`MixSpec`].

mod adopt;
mod branch;
mod control;
mod corners;
pub mod input;
pub(crate) mod mix;
mod output;
mod pipe;
mod preview;
pub mod sei;
pub mod status;
mod still;
mod timing;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use serde::Serialize;
use tokio::sync::watch;

use crate::{
    config::{Config, EgressConfig, IngestConfig},
    control::{Claims, KeyedLocks, Tickets},
    error::{Error, ErrorKind},
    events::EventBus,
    live::Live,
    media::LinkState,
    model::{Limits, MixSpec, Source, Target},
    node::NodeParts,
    store::Records,
};
pub(crate) use control::blocking;
pub use control::Prepared;
pub use input::{InputHub, InputMetrics};
pub use mix::{output_label, MixMetrics};
use pipe::Pipe;
pub(crate) use preview::snapshot_pad;
pub use preview::Look;
pub use status::MixStatus;
pub use still::image_size;

/// Initialises GStreamer and checks that the elements mixes need are installed.
pub fn init() -> Result<(), Error> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| {
        gst::init().map_err(|e| e.to_string())?;
        for factory in [
            "compositor",
            "audiomixer",
            "x264enc",
            "avenc_aac",
            "decodebin",
            "textoverlay",
            "videocrop",
            "souphttpsrc",
        ] {
            if gst::ElementFactory::find(factory).is_none() {
                return Err(format!(
                    "GStreamer element {factory} is missing: run scripts/setup"
                ));
            }
        }
        Ok(())
    })
    .clone()
    .map_err(Error::internal)
}

/// The raw audio format inputs are converted to and mixed in.
pub fn mix_audio_caps() -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("rate", 48_000i32)
        .field("channels", 2i32)
        .field("layout", "interleaved")
        .build()
}

/// The URL an input is pulled from.
pub fn resolve_input(source: &Source, config: &IngestConfig) -> String {
    match source {
        Source::StreamId(id) => config.pull_url.replace("{stream_id}", id),
        Source::Url(u) => u.clone(),
    }
}

/// The URL an output is published to.
pub fn resolve_output(target: &Target, config: &EgressConfig) -> String {
    match target {
        Target::StreamId(id) => config.push_url.replace("{stream_id}", id),
        Target::Url(u) => u.clone(),
    }
}

/// Keeps a probed source pulled (see [`Engine::probe_source`]).
pub struct SourceHold(#[allow(dead_code)] input::Subscription);

/// What [`Engine::inspect_source`] learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceFacts {
    /// Media arrived.
    pub live: bool,
    /// Size of the picture, when video arrived.
    pub video_size: Option<(u32, u32)>,
}

/// Whether a PUT created a mix or changed an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    /// Applied to the running output without restarting it.
    UpdatedLive,
    /// Applied by restarting the mix's pipeline (canvas size/rate or an output encoding changed, or the mix was
    /// not running).
    Restarted,
}

/// A mix as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MixView {
    pub id: String,
    pub spec: MixSpec,
    pub status: MixStatus,
}

/// The engine: every mix, and the shared input hub. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    /// The node's configuration; a reload replaces it (limits apply to the next request).
    config: Live<Config>,
    hub: InputHub,
    /// Each accepted mix's spec, recorded before the request is answered, so a restart resumes it.
    records: Records<MixRecord>,
    events: EventBus,
    /// Output URLs in use (shared with the relays): one publisher per stream.
    claims: Arc<Claims>,
    /// Every mix, running or not. Held only for reads and the state change itself, never across I/O.
    mixes: Mutex<HashMap<String, Mix>>,
    /// One lock per mix: changes to one mix happen one at a time.
    locks: KeyedLocks,
    /// Arrival order of requests per mix.
    tickets: Tickets,
    /// Set once every recorded mix has been started (or has failed to start) after a restart.
    ready: watch::Sender<bool>,
    /// Numbers pipelines, so a failure report from a replaced pipeline is told from the running one's.
    runs: std::sync::atomic::AtomicU64,
    /// Ids of mixes being created: admitted, not yet in `mixes` (their pipeline is starting). They count against
    /// `engine.max_mixes`, so creates racing for the last place cannot all pass. Locked only inside `mixes`' lock.
    creating: Mutex<std::collections::HashSet<String>>,
    /// In a cluster: the cost reserved for each mix, which a create or change is admitted against.
    ledger: Option<Arc<crate::cluster::ledger::Ledger>>,
    /// The worker processes mixes run in; `None`: they run in this process (`engine.workers = 0`, or a program
    /// embedding the library without naming a worker program).
    workers: Option<crate::worker::Workers>,
}

/// Why a mix is not running.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Being started: after a restart of the process, or a recovery.
    Starting,
    Running,
    /// Its pipeline failed or could not be started; a restart follows after a backoff.
    Failed(String),
}

/// One mix the engine knows: recorded, and running unless it could not (re)start.
struct Mix {
    /// The spec that is recorded and, when it runs, running.
    spec: MixSpec,
    pipeline: Option<Pipe>,
    phase: Phase,
    /// Bumped by every change, so work prepared against an older state is prepared again.
    version: u64,
    /// Automatic restarts since the last accepted request (backoff).
    recoveries: u32,
    /// The number of the running pipeline (see `EngineInner::runs`).
    run: u64,
}

/// A mix's durable record.
#[derive(serde::Serialize, serde::Deserialize)]
struct MixRecord {
    spec: MixSpec,
}

/// The record kind of mixes.
const KIND: &str = "mix";

impl Engine {
    /// Must be called inside a Tokio runtime (supervisors are tasks).
    pub fn new(config: Config, parts: NodeParts) -> Self {
        Self::with_config(Live::new(config), parts)
    }

    /// An engine reading the node's live configuration (shared with the API, which reloads it).
    pub fn with_config(config: Live<Config>, parts: NodeParts) -> Self {
        let (ready, _) = watch::channel(false);
        let workers = crate::worker::pool::program(&config.get().engine).map(|program| {
            crate::worker::Workers::new(program, config.clone(), parts.events.clone())
        });
        Self {
            inner: Arc::new(EngineInner {
                workers,
                hub: InputHub::new(config.get().ingest.clone(), parts.events.clone()),
                records: Records::new(parts.store, KIND),
                events: parts.events,
                claims: parts.claims,
                config,
                mixes: Mutex::new(HashMap::new()),
                locks: KeyedLocks::default(),
                tickets: Tickets::default(),
                ready,
                runs: Default::default(),
                creating: Mutex::default(),
                ledger: parts.ledger,
            }),
        }
    }

    /// An engine of its own, recording in memory only (tests).
    pub fn in_memory(config: Config) -> Self {
        Self::new(config, NodeParts::in_memory())
    }

    pub fn limits(&self) -> Limits {
        let e = &self.inner.config.get().engine;
        Limits {
            max_inputs: e.max_inputs,
            max_overlays: e.max_overlays,
            max_outputs: e.max_outputs,
        }
    }

    /// The configuration now (a reload may replace it; hold the `Arc` for one piece of work).
    pub fn config(&self) -> Arc<Config> {
        self.inner.config.get()
    }

    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// Whether mix `id` fits on this node: it exists already, or fewer than `engine.max_mixes` do. Dialects ask
    /// before they probe inputs, so a full node answers at once; applying a change asks again.
    pub fn check_capacity(&self, id: &str) -> Result<(), Error> {
        let mixes = self.inner.mixes.lock().unwrap();
        self.admits(&mixes, id)
    }

    fn admits(&self, mixes: &HashMap<String, Mix>, id: &str) -> Result<(), Error> {
        let max = self.inner.config.get().engine.max_mixes();
        let others_creating = self
            .inner
            .creating
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c != id && !mixes.contains_key(*c))
            .count();
        if mixes.contains_key(id) || mixes.len() + others_creating < max {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::LimitExceeded,
            format!("this node runs at most {max} mixes at once; stop one or retry later"),
        ))
    }

    /// Creates mix `id`, or applies `spec` to it. A refused request changes nothing; see `control`.
    pub async fn put_mix(&self, id: &str, spec: MixSpec) -> Result<PutOutcome, Error> {
        self.put_mix_with(id, spec, self.inner.config.get().engine.max_image_bytes)
            .await
    }

    /// [`Engine::put_mix`] with a dialect's own limit on image size (ZEGO: 1 MB); never above the node's limit.
    pub async fn put_mix_with(
        &self,
        id: &str,
        spec: MixSpec,
        max_image_bytes: u64,
    ) -> Result<PutOutcome, Error> {
        let prepared = self.prepare_mix(id, spec, max_image_bytes).await?;
        self.commit_mix(prepared).await
    }

    /// Stops mix `id`, releases everything it held and removes its record.
    pub async fn delete_mix(&self, id: &str) -> Result<(), Error> {
        self.delete_mix_because(id, "deleted").await
    }

    pub fn get_mix(&self, id: &str) -> Option<MixView> {
        let (spec, pipeline, phase) = {
            let mixes = self.inner.mixes.lock().unwrap();
            let m = mixes.get(id)?;
            (m.spec.clone(), m.pipeline.clone(), m.phase.clone())
        };
        let (state, error) = phase_view(&phase);
        let status = match &pipeline {
            Some(p) => {
                let mut status = p.status(&spec, &self.inner.config.get());
                if error.is_some() {
                    status.state = state;
                    status.error = error;
                }
                status
            }
            None => status::not_running(&spec, state, error, &self.inner.config.get()),
        };
        Some(MixView {
            id: id.to_string(),
            spec,
            status,
        })
    }

    pub fn list(&self) -> Vec<MixView> {
        let mut ids: Vec<String> = self.inner.mixes.lock().unwrap().keys().cloned().collect();
        ids.sort();
        ids.iter().filter_map(|id| self.get_mix(id)).collect()
    }

    /// Number of sources currently pulled (shared between mixes).
    pub fn active_pulls(&self) -> usize {
        self.inner.hub.active_pulls() + self.inner.workers.as_ref().map_or(0, |w| w.pulls())
    }

    /// The worker processes, when mixes run in them.
    pub fn workers(&self) -> Option<&crate::worker::Workers> {
        self.inner.workers.as_ref()
    }

    /// Whether every mix recorded before the start has been started or has failed to (see
    /// [`Engine::restore`]).
    pub fn is_ready(&self) -> bool {
        *self.inner.ready.borrow()
    }

    /// Waits until [`Engine::is_ready`].
    pub async fn until_ready(&self) {
        let mut rx = self.inner.ready.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// Starts pulling `source` (unless something already does) and waits up to `timeout` to learn whether it
    /// exists. `Ok` once it delivers media, or when the wait ends undecided; `Err` with the reason when it ends
    /// with the pull failing. A failed attempt alone decides nothing: the pull is retried meanwhile, so an encoder
    /// that starts publishing with the request (a server answers "not found" until it does) is found. The
    /// returned hold keeps the pull running, so a mix created while it is held reuses it.
    pub async fn probe_source(
        &self,
        source: &Source,
        timeout: std::time::Duration,
    ) -> Result<SourceHold, String> {
        let url = resolve_input(source, &self.inner.config.get().ingest);
        let sub = self
            .inner
            .hub
            .subscribe(&url, Arc::new(input::Discard), None);
        let deadline = tokio::time::Instant::now() + timeout;
        // The last failure seen; a new attempt under way does not make it undecided again.
        let mut failed = None;
        loop {
            let state = sub.state();
            if state == LinkState::Live {
                return Ok(SourceHold(sub));
            }
            if let Some(why) = state.last_error() {
                failed = Some(why.to_string());
            }
            if tokio::time::Instant::now() >= deadline {
                return match failed {
                    Some(why) => Err(why),
                    None => Ok(SourceHold(sub)),
                };
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Pulls `source` (sharing a running pull) and waits up to `timeout` until it delivers media — and, with
    /// `want_video`, until its picture size is known. The hold keeps the pull running for a mix about to use it.
    pub async fn inspect_source(
        &self,
        source: &Source,
        timeout: std::time::Duration,
        want_video: bool,
    ) -> (SourceHold, SourceFacts) {
        let url = resolve_input(source, &self.inner.config.get().ingest);
        let sub = self
            .inner
            .hub
            .subscribe(&url, Arc::new(input::Discard), None);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let live = sub.state() == LinkState::Live;
            let size = sub.video_size();
            let done = live && (size.is_some() || !want_video);
            if done || tokio::time::Instant::now() >= deadline {
                return (
                    SourceHold(sub),
                    SourceFacts {
                        live,
                        video_size: size,
                    },
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// What the operator sees: every mix with its state and counts (none while it is not running), every pulled
    /// input.
    pub fn metrics(&self) -> EngineMetrics {
        type Entry = (String, Phase, Option<Pipe>);
        let mixes: Vec<Entry> = self
            .inner
            .mixes
            .lock()
            .unwrap()
            .iter()
            .map(|(id, m)| (id.clone(), m.phase.clone(), m.pipeline.clone()))
            .collect();
        EngineMetrics {
            processes: mixes
                .iter()
                .filter_map(|(id, _, p)| match p {
                    Some(Pipe::Remote(r)) => Some((id.clone(), r.usage())),
                    _ => None,
                })
                .collect(),
            mixes: mixes
                .into_iter()
                .map(|(id, phase, pipeline)| {
                    let counts = pipeline
                        .filter(|_| phase == Phase::Running)
                        .map(|p| p.metrics());
                    (id, phase_view(&phase).0, counts)
                })
                .collect(),
            inputs: {
                let mut inputs = self.inner.hub.metrics();
                if let Some(w) = &self.inner.workers {
                    inputs.extend(w.inputs());
                }
                inputs
            },
        }
    }

    /// Fault injection for tests: makes mix `id`'s pipeline report an error.
    #[doc(hidden)]
    pub fn inject_failure(&self, id: &str) -> bool {
        self.inject_fault(id, crate::worker::Fault::PipelineError)
    }

    /// Fault injection for tests: `fault` in mix `id`'s pipeline; false when it is not running or (an abort,
    /// an allocation) runs in this process.
    #[doc(hidden)]
    pub fn inject_fault(&self, id: &str, fault: crate::worker::Fault) -> bool {
        let mix = self
            .inner
            .mixes
            .lock()
            .unwrap()
            .get(id)
            .and_then(|m| m.pipeline.clone());
        mix.is_some_and(|m| m.fault(fault))
    }
}

/// What [`Engine::metrics`] reports.
pub struct EngineMetrics {
    pub mixes: Vec<(String, status::MixState, Option<MixMetrics>)>,
    /// The worker process each running mix is in (where mixes run in workers).
    pub processes: Vec<(String, crate::worker::ProcessUsage)>,
    pub inputs: Vec<input::InputMetrics>,
}

/// How a mix that is not running shows in its status.
fn phase_view(phase: &Phase) -> (status::MixState, Option<String>) {
    match phase {
        Phase::Starting => (status::MixState::Starting, None),
        Phase::Running => (status::MixState::Running, None),
        Phase::Failed(why) => (status::MixState::Failed, Some(why.clone())),
    }
}
