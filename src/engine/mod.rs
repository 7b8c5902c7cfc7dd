//! The mixing engine: GStreamer pipelines behind a small async API. See the crate docs for the layout.

pub(crate) mod backoff;
mod branch;
mod corners;
pub mod input;
mod meter;
mod mix;
mod output;
pub mod sei;
pub mod status;
mod still;
pub(crate) mod teardown;
mod timing;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

use serde::Serialize;

use crate::{
    config::{Config, EgressConfig, IngestConfig},
    error::{Error, ErrorKind},
    model::{Limits, MixSpec, Source, Target},
    store::{kind, memory::MemoryStore, Store},
};
pub use input::InputHub;
use mix::MixPipeline;
pub(crate) use output::rtmp_sink;
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
            "flvmux",
            "rtmp2src",
            "rtmp2sink",
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

/// Restarts failed mix `id` with its spec after a backoff (1 s doubling to 30 s); "live means live".
async fn recover(weak: std::sync::Weak<EngineInner>, id: String) {
    let attempt = {
        let Some(inner) = weak.upgrade() else { return };
        let mut r = inner.recoveries.lock().unwrap();
        let n = r.entry(id.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let delay = std::time::Duration::from_secs(1 << (attempt - 1).min(5))
        .min(std::time::Duration::from_secs(30));
    tracing::warn!(mix = %id, attempt, ?delay, "mix failed; restarting it");
    tokio::time::sleep(delay).await;
    let Some(inner) = weak.upgrade() else { return };
    let engine = Engine { inner };
    let _guard = engine.inner.control.lock().await;
    let Some(mix) = engine.inner.mixes.lock().unwrap().get(&id).cloned() else {
        return;
    };
    let spec = {
        let m = mix.lock().unwrap();
        if !m.failed() {
            return;
        }
        m.spec().clone()
    };
    let limits = crate::image::ImageLimits::of(&engine.inner.config.engine);
    let stills = match mix::prepare_stills(&spec, None, &limits).await {
        Ok(stills) => stills,
        Err(e) => {
            tracing::error!(error = %e, "mix restart failed");
            return;
        }
    };
    let rt = tokio::runtime::Handle::current();
    let worker = engine.clone();
    let restarted = tokio::task::spawn_blocking(move || {
        let _rt = rt.enter();
        let engine = worker;
        let mut m = mix.lock().unwrap();
        let rebuilt = engine.rebuild(&id, &mut m, &spec, stills);
        match &rebuilt {
            Ok(()) => tracing::info!(mix = %id, "mix restarted after a failure"),
            // Try again later; the stopped pipeline stays marked failed.
            Err(_) => (engine.on_failure(&id))(),
        }
        rebuilt
    })
    .await;
    if let Ok(Err(e)) = restarted {
        tracing::error!(error = %e, "mix restart failed");
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
    /// Applied by restarting the mix's pipeline (canvas size/rate or an output encoding changed).
    Restarted,
}

/// A mix as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MixView {
    pub id: String,
    pub spec: MixSpec,
    pub status: MixStatus,
}

/// The engine: every running mix, and the shared input hub.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    config: Config,
    hub: InputHub,
    mixes: Mutex<HashMap<String, Arc<Mutex<MixPipeline>>>>,
    /// Serialises create/update/delete so that two requests for one mix cannot interleave.
    control: tokio::sync::Mutex<()>,
    /// Automatic restarts of each failed mix since its last accepted request (backoff).
    recoveries: Mutex<HashMap<String, u32>>,
    /// Where each accepted mix's spec is recorded before the request is answered, so a restart resumes it.
    store: Arc<dyn Store>,
}

/// A mix's durable record.
#[derive(serde::Serialize, serde::Deserialize)]
struct MixRecord {
    spec: MixSpec,
}

impl Engine {
    /// Must be called inside a Tokio runtime (supervisors are tasks). Mixes are recorded in memory only.
    pub fn new(config: Config) -> Self {
        Self::with_store(config, Arc::new(MemoryStore::default()))
    }

    /// An engine that records every accepted mix in `store` (see [`Engine::restore`]).
    pub fn with_store(config: Config, store: Arc<dyn Store>) -> Self {
        Self {
            inner: Arc::new(EngineInner {
                hub: InputHub::new(config.ingest.clone()),
                config,
                mixes: Mutex::new(HashMap::new()),
                control: tokio::sync::Mutex::new(()),
                recoveries: Mutex::new(HashMap::new()),
                store,
            }),
        }
    }

    /// Starts every mix recorded in the store (at process start), all at once; returns how many came back.
    /// A mix that cannot start now (a stricter config, a picture that cannot be fetched) is logged and its
    /// record kept, so a later start can try again; a request for it or a delete replaces or removes it.
    pub async fn restore(&self) -> usize {
        let records = match self.inner.store.load(kind::MIX) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the recorded mixes");
                return 0;
            }
        };
        let starts = records.into_iter().map(|(id, record)| async move {
            let spec = match serde_json::from_value::<MixRecord>(record) {
                Ok(r) => r.spec,
                Err(e) => {
                    tracing::error!(mix = %id, error = %e, "recorded mix unreadable; not restored");
                    return false;
                }
            };
            let max_image_bytes = self.inner.config.engine.max_image_bytes;
            match self.apply(&id, spec, max_image_bytes, false).await {
                Ok(_) => {
                    tracing::info!(mix = %id, "mix restored");
                    true
                }
                Err(e) => {
                    tracing::error!(mix = %id, error = %e, "recorded mix not restored");
                    false
                }
            }
        });
        futures::future::join_all(starts)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count()
    }

    fn record(&self, id: &str, spec: &MixSpec) -> Result<(), Error> {
        let record =
            serde_json::to_value(MixRecord { spec: spec.clone() }).map_err(Error::internal)?;
        self.inner.store.put(kind::MIX, id, &record).map_err(|e| {
            tracing::error!(mix = %id, error = %e, "mix not recorded; request refused");
            Error::new(ErrorKind::Internal, "the mix could not be recorded")
        })
    }

    fn forget(&self, id: &str) {
        if let Err(e) = self.inner.store.delete(kind::MIX, id) {
            tracing::error!(mix = %id, error = %e, "mix record not removed; it will come back on restart");
        }
    }

    /// Whether mix `id` has a record (running or not: a restore that failed keeps it).
    pub fn is_recorded(&self, id: &str) -> bool {
        self.inner
            .store
            .load(kind::MIX)
            .is_ok_and(|records| records.iter().any(|(r, _)| r == id))
    }

    /// Where this engine records mixes (relay projects share it).
    pub fn store(&self) -> Arc<dyn Store> {
        self.inner.store.clone()
    }

    pub fn limits(&self) -> Limits {
        let e = &self.inner.config.engine;
        Limits {
            max_inputs: e.max_inputs,
            max_overlays: e.max_overlays,
            max_outputs: e.max_outputs,
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Whether mix `id` fits on this node: it runs already, or fewer than `engine.max_mixes` do. Dialects ask
    /// before they probe inputs, so a full node answers at once; [`Engine::put_mix`] asks again.
    pub fn check_capacity(&self, id: &str) -> Result<(), Error> {
        let max = self.inner.config.engine.max_mixes();
        let mixes = self.inner.mixes.lock().unwrap();
        if mixes.contains_key(id) || mixes.len() < max {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::LimitExceeded,
            format!("this node runs at most {max} mixes at once; stop one or retry later"),
        ))
    }

    /// Creates mix `id`, or applies `spec` to it when it runs. Validates and renders still pictures first: a
    /// refused request changes nothing.
    pub async fn put_mix(&self, id: &str, spec: MixSpec) -> Result<PutOutcome, Error> {
        self.put_mix_with(id, spec, self.inner.config.engine.max_image_bytes)
            .await
    }

    /// [`Engine::put_mix`] with a dialect's own limit on image size (ZEGO: 1 MB); never above the node's limit.
    pub async fn put_mix_with(
        &self,
        id: &str,
        spec: MixSpec,
        max_image_bytes: u64,
    ) -> Result<PutOutcome, Error> {
        self.apply(id, spec, max_image_bytes, true).await
    }

    /// Creates or updates a mix; `record`: write it to the store first (a request), or not (a restore, whose
    /// record is already there and must survive a failure).
    async fn apply(
        &self,
        id: &str,
        spec: MixSpec,
        max_image_bytes: u64,
        record: bool,
    ) -> Result<PutOutcome, Error> {
        let limits = crate::image::ImageLimits::of(&self.inner.config.engine)
            .with_max_bytes(max_image_bytes);
        spec.validate(&self.limits()).map_err(Error::invalid)?;
        let _guard = self.inner.control.lock().await;
        let existing = self.inner.mixes.lock().unwrap().get(id).cloned();
        self.check_capacity(id)?;
        self.check_targets_free(id, &spec)?;
        // Recorded before it is applied: what is acknowledged is durable. A refusal below puts the old record
        // back (or removes the new one), so a refused request leaves the store as it found it.
        if record {
            self.record(id, &spec)?;
        }
        let old_spec = existing.as_ref().map(|m| m.lock().unwrap().spec().clone());
        let live = existing
            .as_ref()
            .is_some_and(|m| m.lock().unwrap().can_update_live(&spec));
        self.inner.recoveries.lock().unwrap().remove(id);
        let engine = self.clone();
        let owned_id = id.to_string();
        let rt = tokio::runtime::Handle::current();
        // Pictures are fetched and rendered without holding the mix, so status reads are never held up by them;
        // the control lock keeps the spec from changing meanwhile.
        let result = async {
            let stills =
                mix::prepare_stills(&spec, old_spec.as_ref().filter(|_| live), &limits).await?;
            tokio::task::spawn_blocking(move || {
                let _rt = rt.enter();
                engine.put_blocking(&owned_id, spec, existing, live, stills)
            })
            .await
            .map_err(Error::internal)
            .and_then(|r| r)
        }
        .await;
        if record && result.is_err() {
            let running = self.inner.mixes.lock().unwrap().get(id).cloned();
            match (running, old_spec) {
                (Some(_), Some(old)) => {
                    let _ = self.record(id, &old);
                }
                _ => self.forget(id),
            }
        }
        result
    }

    /// Applies `spec` with the `stills` [`mix::prepare_stills`] rendered for it (against the running spec when
    /// `live`, else from scratch).
    fn put_blocking(
        &self,
        id: &str,
        spec: MixSpec,
        existing: Option<Arc<Mutex<MixPipeline>>>,
        live: bool,
        stills: mix::PreparedStills,
    ) -> Result<PutOutcome, Error> {
        let config = &self.inner.config;
        let Some(mix) = existing else {
            let mix = MixPipeline::start(
                id,
                &spec,
                stills,
                config,
                &self.inner.hub,
                self.on_failure(id),
            )?;
            self.inner
                .mixes
                .lock()
                .unwrap()
                .insert(id.to_string(), Arc::new(Mutex::new(mix)));
            tracing::info!(mix = %id, "mix created");
            return Ok(PutOutcome::Created);
        };
        if live {
            mix.lock()
                .unwrap()
                .update(&spec, stills, config, &self.inner.hub)?;
            tracing::info!(mix = %id, "mix updated live");
            return Ok(PutOutcome::UpdatedLive);
        }
        let mut mix = mix.lock().unwrap();
        match self.rebuild(id, &mut mix, &spec, stills) {
            Ok(()) => {
                tracing::info!(mix = %id, "mix restarted with a new canvas or encoding");
                Ok(PutOutcome::Restarted)
            }
            Err(e) => {
                drop(mix);
                self.inner.mixes.lock().unwrap().remove(id);
                Err(e)
            }
        }
    }

    /// Replaces `mix`'s pipeline by a fresh one for `spec`. The old publish ends first: RTMP servers refuse a
    /// second publisher of the same stream.
    fn rebuild(
        &self,
        id: &str,
        mix: &mut MixPipeline,
        spec: &MixSpec,
        stills: mix::PreparedStills,
    ) -> Result<(), Error> {
        // Hold the inputs' pulls meanwhile, so they do not reconnect for the new pipeline.
        let holds: Vec<input::Subscription> = spec
            .inputs
            .iter()
            .map(|i| {
                let url = resolve_input(&i.source, &self.inner.config.ingest);
                self.inner.hub.subscribe(&url, Arc::new(input::Discard))
            })
            .collect();
        mix.stop();
        *mix = MixPipeline::start(
            id,
            spec,
            stills,
            &self.inner.config,
            &self.inner.hub,
            self.on_failure(id),
        )?;
        drop(holds);
        Ok(())
    }

    /// What a mix pipeline calls when it fails: a restart of that mix with its spec, after a backoff.
    fn on_failure(&self, id: &str) -> mix::OnFailure {
        let weak = Arc::downgrade(&self.inner);
        let id = id.to_string();
        Box::new(move || {
            tokio::spawn(recover(weak.clone(), id.clone()));
        })
    }

    /// Fault injection for tests: makes mix `id`'s pipeline report an error.
    #[doc(hidden)]
    pub fn inject_failure(&self, id: &str) -> bool {
        let mix = self.inner.mixes.lock().unwrap().get(id).cloned();
        mix.map(|m| m.lock().unwrap().inject_failure()).is_some()
    }

    /// Refuses outputs another mix already publishes to: two publishers of one stream would fight over it.
    fn check_targets_free(&self, id: &str, spec: &MixSpec) -> Result<(), Error> {
        let egress = &self.inner.config.egress;
        let others: Vec<(String, Arc<Mutex<MixPipeline>>)> = self
            .inner
            .mixes
            .lock()
            .unwrap()
            .iter()
            .filter(|(other, _)| other.as_str() != id)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (other, mix) in others {
            let used = mix.lock().unwrap().spec().outputs.clone();
            let clash = spec.outputs.iter().find(|o| {
                used.iter()
                    .any(|u| resolve_output(&u.target, egress) == resolve_output(&o.target, egress))
            });
            if let Some(o) = clash {
                // Name the target as the caller wrote it: the resolved URL would expose the egress config.
                let target = match &o.target {
                    Target::StreamId(id) => format!("stream {id:?}"),
                    Target::Url(u) => format!("URL {u:?}"),
                };
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!("output {target} is already published by mix {other:?}"),
                ));
            }
        }
        Ok(())
    }

    /// Stops mix `id`, releases everything it held and removes its record.
    pub async fn delete_mix(&self, id: &str) -> Result<(), Error> {
        self.remove_mix(id, true).await
    }

    async fn remove_mix(&self, id: &str, forget: bool) -> Result<(), Error> {
        let _guard = self.inner.control.lock().await;
        let mix =
            self.inner.mixes.lock().unwrap().remove(id).ok_or_else(|| {
                Error::new(ErrorKind::NotFound, format!("mix {id:?} does not exist"))
            })?;
        if forget {
            self.forget(id);
        }
        tokio::task::spawn_blocking(move || mix.lock().unwrap().stop())
            .await
            .map_err(Error::internal)?;
        tracing::info!(mix = %id, "mix deleted");
        Ok(())
    }

    pub fn get_mix(&self, id: &str) -> Option<MixView> {
        let mix = self.inner.mixes.lock().unwrap().get(id).cloned()?;
        let mix = mix.lock().unwrap();
        Some(MixView {
            id: id.to_string(),
            spec: mix.spec().clone(),
            status: mix.status(),
        })
    }

    pub fn list(&self) -> Vec<MixView> {
        let mut ids: Vec<String> = self.inner.mixes.lock().unwrap().keys().cloned().collect();
        ids.sort();
        ids.iter().filter_map(|id| self.get_mix(id)).collect()
    }

    /// Number of sources currently pulled (shared between mixes).
    pub fn active_pulls(&self) -> usize {
        self.inner.hub.active_pulls()
    }

    /// Starts pulling `source` (unless something already does) and waits up to `timeout` to learn whether it
    /// exists. `Ok` once it delivers media, or when the wait ends undecided; `Err` with the reason when pulling it
    /// failed. The returned hold keeps the pull running, so a mix created while it is held reuses it.
    pub async fn probe_source(
        &self,
        source: &Source,
        timeout: std::time::Duration,
    ) -> Result<SourceHold, String> {
        let url = resolve_input(source, &self.inner.config.ingest);
        let sub = self.inner.hub.subscribe(&url, Arc::new(input::Discard));
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match sub.state() {
                status::InputState::Live => return Ok(SourceHold(sub)),
                status::InputState::Retrying { last_error, .. }
                | status::InputState::Lost { reason: last_error } => return Err(last_error),
                status::InputState::Connecting { .. }
                    if tokio::time::Instant::now() >= deadline =>
                {
                    return Ok(SourceHold(sub))
                }
                status::InputState::Connecting { .. } => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await
                }
            }
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
        let url = resolve_input(source, &self.inner.config.ingest);
        let sub = self.inner.hub.subscribe(&url, Arc::new(input::Discard));
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let live = sub.state() == status::InputState::Live;
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

    /// Stops every mix, ending each output cleanly; their records stay, so the next start resumes them.
    pub async fn shutdown(&self) {
        let ids: Vec<String> = self.inner.mixes.lock().unwrap().keys().cloned().collect();
        for id in ids {
            let _ = self.remove_mix(&id, false).await;
        }
    }
}
