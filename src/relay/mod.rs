//! Relaying: one live source pushed to many RTMP targets without re-encoding, with main/backup failover.
//!
//! The FLV tags of the active input are forwarded as they are (only timestamps are rewritten so the outputs see
//! one continuous broadcast across input switches); each target is its own supervised RTMP push with its own
//! bounded queue, so one dead or slow platform never holds back another.
//!
//! A running project is:
//! - two pulls (`pull`), main and backup, both running all the time (hot standby), each `rtmp2src` /
//!   `souphttpsrc` → appsink, its bytes parsed into tags ([`crate::flv`]) on the streaming thread (a `vod`
//!   input: one such pipeline per file of its playlist, in turn);
//! - the router (`router`), which the pulls hand their tags to: it forwards the active input's tags, lands
//!   switches on keyframes and keeps output timestamps continuous;
//! - one push per output (`push`): appsrc → rtmp2sink with its own queue and supervisor;
//! - a control task applying the failover policy (`control`) and `stop_at`;
//! - a callback task POSTing events (`callback`).
//!
//! Settings (the spec) live in the project; the run's state lives in `Run`. No lock of ours is held while
//! calling into GStreamer except the router's, whose pushes into appsrc queues never block; callbacks hold weak
//! references only.

mod callback;
mod control;
pub mod model;
mod pull;
mod push;
mod router;
pub mod status;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
    time::{Duration, Instant},
};

use tokio::{sync::watch, task::JoinHandle};

use crate::{
    config::Config,
    error::{Error, ErrorKind},
    model::{Source, Violation},
    store::{kind, memory::MemoryStore, Store},
};
pub use callback::callback_client;
use callback::{unix_now, Events};
use pull::PullSource;
use router::{Router, SwitchReason, TagSink};

pub use model::{Failover, RelayInput, RelayOutput, RelaySpec};
pub use status::{Endpoint, RelayStatus, VodPosition};
use status::{InputState, InputStatus, OutputState, OutputStatus, ProjectState};

/// The stop reason of a process shutdown: the project stays recorded as running.
const SHUTDOWN: &str = "shutdown";

/// A project's durable record.
#[derive(serde::Serialize, serde::Deserialize)]
struct RelayRecord {
    spec: RelaySpec,
    /// Whether it was started (and not stopped since): a restart starts it again.
    running: bool,
}

/// How long a stop waits for one pull or push to wind down before leaving it behind.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// A project as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RelayView {
    pub id: String,
    pub spec: RelaySpec,
    pub status: RelayStatus,
}

/// Every relay project of this node. Cheap to clone.
#[derive(Clone)]
pub struct Relays {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    /// Sends every project's status callbacks (TLS roots and connection pool built once).
    http: reqwest::Client,
    /// Where each project's spec and whether it runs are recorded before a request is answered.
    store: Arc<dyn Store>,
    projects: Mutex<HashMap<String, Project>>,
    /// Serialises put/start/stop/delete (and the automatic stop at `stop_at`).
    control: tokio::sync::Mutex<()>,
    runs: AtomicU64,
}

/// A project: its settings, and its run while it runs.
struct Project {
    spec: RelaySpec,
    run: Option<Arc<Run>>,
    started_at: Option<i64>,
    stopped_at: Option<i64>,
}

/// What a running project holds.
struct Run {
    id: String,
    /// Tells this run from a later one of the same project.
    number: u64,
    router: Arc<Mutex<Router>>,
    sessions: Arc<AtomicU64>,
    pulls: Mutex<[Option<Task<pull::PullShared>>; 2]>,
    /// In spec order.
    outputs: Mutex<Vec<Task<push::OutputShared>>>,
    failover: Mutex<Failover>,
    stop_at: Mutex<Option<i64>>,
    stall_ms: Arc<AtomicU64>,
    callback_url: Arc<Mutex<Option<String>>>,
    manual_hold: AtomicBool,
    events: Events,
    control: Mutex<Option<Task<()>>>,
}

/// A supervised task and what it shares.
struct Task<T> {
    shared: Arc<T>,
    stop_tx: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl<T> Task<T> {
    fn stop(&self) {
        let _ = self.stop_tx.send(true);
    }
}

/// Waits for stopped tasks to end (each at most [`TEARDOWN_TIMEOUT`]).
async fn join_all<T>(tasks: Vec<Task<T>>) {
    let waits = tasks.into_iter().map(|t| async move {
        if tokio::time::timeout(TEARDOWN_TIMEOUT, t.handle)
            .await
            .is_err()
        {
            tracing::warn!("relay task did not stop in time");
        }
    });
    futures::future::join_all(waits).await;
}

/// What to pull for `input`: a live URL (a pushed stream through `ingest.pull_url`), or a playlist.
fn pull_source(input: &RelayInput, config: &Config) -> PullSource {
    let live =
        |source: Source| PullSource::Live(crate::engine::resolve_input(&source, &config.ingest));
    match input {
        RelayInput::Url(u) => live(Source::Url(u.clone())),
        RelayInput::Push(id) => live(Source::StreamId(id.clone())),
        RelayInput::Vod { urls, loop_times } => PullSource::Vod {
            urls: urls.clone(),
            loop_times: *loop_times,
        },
    }
}

fn not_found(id: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("relay project {id:?} does not exist"),
    )
}

impl Run {
    fn start_pull(&self, e: Endpoint, source: PullSource, config: &Config) {
        let url = source.first_url().to_string();
        let files = match &source {
            PullSource::Live(_) => 1,
            PullSource::Vod { urls, .. } => urls.len(),
        };
        let shared = pull::PullShared::new(e, source);
        let (stop_tx, stop_rx) = watch::channel(false);
        let ctx = pull::PullContext {
            shared: shared.clone(),
            router: Arc::downgrade(&self.router),
            sessions: self.sessions.clone(),
            ingest: config.ingest.clone(),
            stall_ms: self.stall_ms.clone(),
        };
        let handle = tokio::spawn(pull::supervise(ctx, stop_rx));
        tracing::info!(project = %self.id, input = e.as_str(), %url, files, "relay input pulled");
        self.pulls.lock().unwrap()[e.index()] = Some(Task {
            shared,
            stop_tx,
            handle,
        });
    }

    fn start_output(&self, o: &RelayOutput, config: &Config) -> Task<push::OutputShared> {
        let shared =
            push::OutputShared::new(&o.id, &o.name, &o.url, &config.egress, self.events.clone());
        let (stop_tx, stop_rx) = watch::channel(false);
        let handle = tokio::spawn(push::supervise(
            shared.clone(),
            config.egress.clone(),
            stop_rx,
        ));
        tracing::info!(project = %self.id, output = %o.id, "relay output started");
        Task {
            shared,
            stop_tx,
            handle,
        }
    }

    /// Hands the router the current outputs.
    fn sync_sinks(&self) {
        let sinks: Vec<Arc<dyn TagSink>> = self
            .outputs
            .lock()
            .unwrap()
            .iter()
            .map(|t| t.shared.clone() as Arc<dyn TagSink>)
            .collect();
        self.router.lock().unwrap().set_sinks(sinks);
    }

    fn health(&self, e: Endpoint) -> Option<InputState> {
        let stall = Duration::from_millis(self.stall_ms.load(Ordering::Relaxed));
        self.pulls.lock().unwrap()[e.index()]
            .as_ref()
            .map(|p| p.shared.health(stall))
    }

    fn status(&self, p: &Project, push_urls: Vec<String>) -> RelayStatus {
        let (active, switches) = {
            let r = self.router.lock().unwrap();
            (r.active(), r.switches())
        };
        let input = |e: Endpoint| {
            let shared = self.pulls.lock().unwrap()[e.index()]
                .as_ref()
                .map(|t| t.shared.clone())?;
            let vod = shared.vod_position();
            Some(InputStatus {
                // A playlist shows the file playing.
                url: vod
                    .as_ref()
                    .map_or_else(|| shared.source.first_url().to_string(), |v| v.url.clone()),
                state: self.health(e)?,
                vod,
            })
        };
        let outputs = self
            .outputs
            .lock()
            .unwrap()
            .iter()
            .map(|t| OutputStatus {
                id: t.shared.id.clone(),
                url: t.shared.url.clone(),
                state: t.shared.state(),
                bitrate_kbps: t.shared.bitrate_kbps(),
                bytes: t.shared.bytes(),
            })
            .collect();
        RelayStatus {
            state: ProjectState::Working,
            active,
            started_at: p.started_at,
            stopped_at: p.stopped_at,
            main: input(Endpoint::Main),
            backup: input(Endpoint::Backup),
            outputs,
            switches,
            push_urls,
        }
    }

    /// Stops everything the run started and waits (bounded) for it.
    async fn teardown(&self) {
        let control = self.control.lock().unwrap().take();
        if let Some(c) = &control {
            c.stop();
        }
        let pulls: Vec<_> = self
            .pulls
            .lock()
            .unwrap()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        let outputs: Vec<_> = std::mem::take(&mut *self.outputs.lock().unwrap());
        self.router.lock().unwrap().set_sinks(Vec::new());
        pulls.iter().for_each(Task::stop);
        outputs.iter().for_each(Task::stop);
        tokio::join!(join_all(pulls), join_all(outputs));
        if let Some(c) = control {
            join_all(vec![c]).await;
        }
    }
}

/// The control task of a run: failover policy and `stop_at`, every 100 ms.
async fn control_loop(run: Weak<Run>, relays: Weak<Inner>, mut stop_rx: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut main_live_since: Option<Instant> = None;
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = stop_rx.changed() => return,
            _ = tick.tick() => {}
        }
        let Some(run) = run.upgrade() else { return };
        let failover = run.failover.lock().unwrap().clone();
        let main = run
            .health(Endpoint::Main)
            .map_or(control::Health::Absent, |s| control::Health::of(&s));
        let backup = run
            .health(Endpoint::Backup)
            .map(|s| control::Health::of(&s));
        if main == control::Health::Live {
            main_live_since.get_or_insert_with(Instant::now);
        } else {
            main_live_since = None;
        }
        let view = control::View {
            target: run.router.lock().unwrap().target(),
            main,
            backup,
            main_live_for: main_live_since.map_or(Duration::ZERO, |t| t.elapsed()),
            manual_hold: run.manual_hold.load(Ordering::Relaxed),
        };
        if let Some((to, why)) = control::decide(&view, &failover) {
            if matches!(why, SwitchReason::Stalled | SwitchReason::Ended) {
                run.manual_hold.store(false, Ordering::Relaxed);
            }
            run.router.lock().unwrap().request(to, why);
        }
        let stop_at = *run.stop_at.lock().unwrap();
        if let (Some(t), false) = (stop_at, stopping) {
            if unix_now() >= t {
                stopping = true;
                tracing::info!(project = %run.id, stop_at = t, "relay project reached its stop time");
                let (relays, id, number) = (relays.clone(), run.id.clone(), run.number);
                tokio::spawn(async move {
                    let Some(inner) = relays.upgrade() else {
                        return;
                    };
                    let relays = Relays { inner };
                    let _guard = relays.inner.control.lock().await;
                    let same_run = relays
                        .inner
                        .projects
                        .lock()
                        .unwrap()
                        .get(&id)
                        .and_then(|p| p.run.as_ref().map(|r| r.number))
                        == Some(number);
                    if same_run {
                        let _ = relays.stop_locked(&id, "stop_at").await;
                    }
                });
            }
        }
    }
}

impl Relays {
    /// Projects recorded in memory only.
    pub fn new(config: Config) -> Self {
        Self::with_store(config, Arc::new(MemoryStore::default()))
    }

    /// Projects recorded in `store` (see [`Relays::restore`]).
    pub fn with_store(config: Config, store: Arc<dyn Store>) -> Self {
        // `Config::validate` built this client once already, so a failure here is not expected.
        let http = callback_client(&config.callbacks).unwrap_or_else(|e| {
            tracing::error!(error = %e, "callback client; using one with the system's CAs only");
            reqwest::Client::new()
        });
        Self {
            inner: Arc::new(Inner {
                config,
                http,
                store,
                projects: Mutex::new(HashMap::new()),
                control: tokio::sync::Mutex::new(()),
                runs: AtomicU64::new(0),
            }),
        }
    }

    /// Recreates every recorded project and starts those that were running (at process start); returns how
    /// many were started.
    pub async fn restore(&self) -> usize {
        let records = match self.inner.store.load(kind::RELAY) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the recorded relay projects");
                return 0;
            }
        };
        let mut started = 0;
        for (id, record) in records {
            let record: RelayRecord = match serde_json::from_value(record) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(project = %id, error = %e, "recorded relay project unreadable");
                    continue;
                }
            };
            if let Err(e) = self.put(&id, record.spec).await {
                tracing::error!(project = %id, error = %e, "recorded relay project not restored");
                continue;
            }
            if record.running {
                match self.start(&id).await {
                    Ok(()) => started += 1,
                    Err(e) => {
                        tracing::warn!(project = %id, error = %e, "recorded relay project not started")
                    }
                }
            }
        }
        started
    }

    /// Records project `id`; a failure refuses the request that wanted it.
    fn record(&self, id: &str, spec: &RelaySpec, running: bool) -> Result<(), Error> {
        let record = serde_json::to_value(RelayRecord {
            spec: spec.clone(),
            running,
        })
        .map_err(Error::internal)?;
        self.inner
            .store
            .put(kind::RELAY, id, &record)
            .map_err(|e| {
                tracing::error!(project = %id, error = %e, "relay project not recorded; request refused");
                Error::new(ErrorKind::Internal, "the relay project could not be recorded")
            })
    }

    fn source(&self, input: &RelayInput) -> PullSource {
        pull_source(input, &self.inner.config)
    }

    /// Refuses outputs that another running project already pushes to: two publishers of one stream fight.
    fn check_outputs_free(&self, id: &str, spec: &RelaySpec) -> Result<(), Error> {
        let projects = self.inner.projects.lock().unwrap();
        for (other, p) in projects.iter() {
            if other == id || p.run.is_none() {
                continue;
            }
            if let Some(o) = spec
                .outputs
                .iter()
                .find(|o| p.spec.outputs.iter().any(|u| u.url == o.url))
            {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "output {:?} pushes to a URL that relay project {other:?} already pushes to",
                        o.id
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Creates a project (stopped) or changes one; a running project applies the change live: outputs added,
    /// removed or changed without touching the others, inputs replaced without dropping the outputs.
    /// `Ok(true)` when created.
    pub async fn put(&self, id: &str, spec: RelaySpec) -> Result<bool, Error> {
        let mut violations = Vec::new();
        if !model::valid_id(id) {
            violations.push(Violation {
                field: "id".into(),
                rule: crate::model::ID_RULE.into(),
            });
        }
        if let Err(v) = spec.validate() {
            violations.extend(v);
        }
        if violations.is_empty() && self.inner.config.ingest.forbid_private_sources {
            if let Err(v) = crate::netpolicy::check_urls(spec.caller_urls()).await {
                violations.extend(v);
            }
        }
        if !violations.is_empty() {
            return Err(Error::invalid(violations));
        }
        let _guard = self.inner.control.lock().await;
        let run = {
            let projects = self.inner.projects.lock().unwrap();
            match projects.get(id) {
                Some(p) => p.run.clone(),
                None => None,
            }
        };
        if run.is_some() {
            self.check_outputs_free(id, &spec)?;
        }
        self.record(id, &spec, run.is_some())?;
        if let Some(run) = run {
            self.apply_live(&run, &spec).await;
        }
        let mut projects = self.inner.projects.lock().unwrap();
        match projects.get_mut(id) {
            Some(p) => {
                p.spec = spec;
                tracing::info!(project = %id, running = p.run.is_some(), "relay project updated");
                Ok(false)
            }
            None => {
                projects.insert(
                    id.to_string(),
                    Project {
                        spec,
                        run: None,
                        started_at: None,
                        stopped_at: None,
                    },
                );
                tracing::info!(project = %id, "relay project created");
                Ok(true)
            }
        }
    }

    /// Applies `spec` to a running project: settings at once, changed inputs re-pulled, outputs by id.
    async fn apply_live(&self, run: &Arc<Run>, spec: &RelaySpec) {
        let config = &self.inner.config;
        *run.failover.lock().unwrap() = spec.failover.clone();
        run.stall_ms
            .store(spec.failover.stall_ms, Ordering::Relaxed);
        *run.stop_at.lock().unwrap() = spec.stop_at;
        *run.callback_url.lock().unwrap() = spec.callback_url.clone();

        // Inputs: a changed source is a new pull; the outputs stay, the router rejoins at a keyframe. (An
        // unchanged playlist is not played again.)
        for (e, input) in [
            (Endpoint::Main, Some(&spec.main)),
            (Endpoint::Backup, spec.backup.as_ref()),
        ] {
            let source = input.map(|i| self.source(i));
            let current = run.pulls.lock().unwrap()[e.index()]
                .as_ref()
                .map(|t| t.shared.source.clone());
            if source == current {
                continue;
            }
            let old = run.pulls.lock().unwrap()[e.index()].take();
            if let Some(old) = old {
                old.stop();
                join_all(vec![old]).await;
                run.router.lock().unwrap().end_input(e);
            }
            if let Some(source) = source {
                run.start_pull(e, source, config);
            }
            tracing::info!(project = %run.id, input = e.as_str(), "relay input replaced live");
        }

        // Outputs: same id and URL keep running; others are stopped first (a URL may move between ids), then
        // the new ones start.
        let old: Vec<_> = std::mem::take(&mut *run.outputs.lock().unwrap());
        let (kept, removed): (Vec<_>, Vec<_>) = old.into_iter().partition(|t| {
            spec.outputs
                .iter()
                .any(|o| o.id == t.shared.id && o.url == t.shared.url)
        });
        *run.outputs.lock().unwrap() = kept;
        run.sync_sinks();
        if !removed.is_empty() {
            for t in &removed {
                tracing::info!(project = %run.id, output = %t.shared.id, "relay output removed live");
            }
            removed.iter().for_each(Task::stop);
            join_all(removed).await;
        }
        let mut kept: Vec<_> = std::mem::take(&mut *run.outputs.lock().unwrap());
        let mut next = Vec::with_capacity(spec.outputs.len());
        for o in &spec.outputs {
            match kept.iter().position(|t| t.shared.id == o.id) {
                Some(i) => {
                    let t = kept.swap_remove(i);
                    t.shared.set_name(&o.name);
                    next.push(t);
                }
                None => next.push(run.start_output(o, config)),
            }
        }
        *run.outputs.lock().unwrap() = next;
        run.sync_sinks();
    }

    /// Starts pulling and pushing. Starting a running project is a no-op.
    pub async fn start(&self, id: &str) -> Result<(), Error> {
        let _guard = self.inner.control.lock().await;
        let spec = {
            let projects = self.inner.projects.lock().unwrap();
            let p = projects.get(id).ok_or_else(|| not_found(id))?;
            if p.run.is_some() {
                return Ok(());
            }
            p.spec.clone()
        };
        if spec.stop_at.is_some_and(|t| t <= unix_now()) {
            return Err(Error::invalid(vec![Violation {
                field: "stop_at".into(),
                rule: "is in the past".into(),
            }]));
        }
        self.check_outputs_free(id, &spec)?;
        crate::engine::init()?;
        self.record(id, &spec, true)?;
        let run = self.launch(id, &spec);
        let mut projects = self.inner.projects.lock().unwrap();
        let p = projects.get_mut(id).ok_or_else(|| not_found(id))?;
        p.run = Some(run.clone());
        p.started_at = Some(unix_now());
        p.stopped_at = None;
        run.events.started();
        tracing::info!(project = %id, outputs = spec.outputs.len(), "relay project started");
        Ok(())
    }

    fn launch(&self, id: &str, spec: &RelaySpec) -> Arc<Run> {
        let config = &self.inner.config;
        let callback_url = Arc::new(Mutex::new(spec.callback_url.clone()));
        let events = Events::start(id, callback_url.clone(), self.inner.http.clone());
        let on_switch = {
            let events = events.clone();
            Box::new(move |from: Endpoint, to: Endpoint, why: SwitchReason| {
                events.failover(from.as_str(), to.as_str(), why.as_str())
            })
        };
        let run = Arc::new(Run {
            id: id.to_string(),
            number: self.inner.runs.fetch_add(1, Ordering::Relaxed),
            router: Arc::new(Mutex::new(Router::new(id, on_switch))),
            sessions: Arc::new(AtomicU64::new(0)),
            pulls: Mutex::new([None, None]),
            outputs: Mutex::new(Vec::new()),
            failover: Mutex::new(spec.failover.clone()),
            stop_at: Mutex::new(spec.stop_at),
            stall_ms: Arc::new(AtomicU64::new(spec.failover.stall_ms)),
            callback_url,
            manual_hold: AtomicBool::new(false),
            events,
            control: Mutex::new(None),
        });
        for (e, input) in [
            (Endpoint::Main, Some(&spec.main)),
            (Endpoint::Backup, spec.backup.as_ref()),
        ] {
            if let Some(input) = input {
                run.start_pull(e, self.source(input), config);
            }
        }
        let outputs = spec
            .outputs
            .iter()
            .map(|o| run.start_output(o, config))
            .collect();
        *run.outputs.lock().unwrap() = outputs;
        run.sync_sinks();
        let (stop_tx, stop_rx) = watch::channel(false);
        let handle = tokio::spawn(control_loop(
            Arc::downgrade(&run),
            Arc::downgrade(&self.inner),
            stop_rx,
        ));
        *run.control.lock().unwrap() = Some(Task {
            shared: Arc::new(()),
            stop_tx,
            handle,
        });
        run
    }

    /// Stops every pull and push; the project stays, idle.
    pub async fn stop(&self, id: &str) -> Result<(), Error> {
        let _guard = self.inner.control.lock().await;
        self.stop_locked(id, "request").await
    }

    /// Stops project `id` (the control lock is held by the caller). A shutdown leaves it recorded as running,
    /// so the next start resumes it.
    async fn stop_locked(&self, id: &str, reason: &str) -> Result<(), Error> {
        let (run, spec) = {
            let projects = self.inner.projects.lock().unwrap();
            let p = projects.get(id).ok_or_else(|| not_found(id))?;
            (p.run.is_some(), p.spec.clone())
        };
        if run && reason != SHUTDOWN {
            self.record(id, &spec, false)?;
        }
        let run = {
            let mut projects = self.inner.projects.lock().unwrap();
            let p = projects.get_mut(id).ok_or_else(|| not_found(id))?;
            let run = p.run.take();
            if run.is_some() {
                p.stopped_at = Some(unix_now());
            }
            run
        };
        if let Some(run) = run {
            run.teardown().await;
            run.events.stopped(reason);
            tracing::info!(project = %id, reason, "relay project stopped");
        }
        Ok(())
    }

    /// Stops and forgets the project.
    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        let _guard = self.inner.control.lock().await;
        self.stop_locked(id, "deleted").await?;
        self.inner.store.delete(kind::RELAY, id).map_err(|e| {
            tracing::error!(project = %id, error = %e, "relay project record not removed; request refused");
            Error::new(ErrorKind::Internal, "the relay project could not be removed")
        })?;
        self.inner.projects.lock().unwrap().remove(id);
        tracing::info!(project = %id, "relay project deleted");
        Ok(())
    }

    /// Makes `to` the active input now (it must exist and be running).
    pub fn switch(&self, id: &str, to: Endpoint) -> Result<(), Error> {
        let run = {
            let projects = self.inner.projects.lock().unwrap();
            let p = projects.get(id).ok_or_else(|| not_found(id))?;
            if to == Endpoint::Backup && p.spec.backup.is_none() {
                return Err(Error::invalid(vec![Violation {
                    field: "to".into(),
                    rule: "the project has no backup input".into(),
                }]));
            }
            p.run.clone().ok_or_else(|| {
                Error::new(
                    ErrorKind::Conflict,
                    format!("relay project {id:?} is not running"),
                )
            })?
        };
        if run.health(to) != Some(InputState::Live) {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("input {} is not live", to.as_str()),
            ));
        }
        run.manual_hold
            .store(to == Endpoint::Backup, Ordering::Relaxed);
        run.router.lock().unwrap().request(to, SwitchReason::Manual);
        tracing::info!(project = %id, to = to.as_str(), "manual input switch");
        Ok(())
    }

    fn view(&self, id: &str, p: &Project) -> RelayView {
        let push_urls: Vec<String> = [Some(&p.spec.main), p.spec.backup.as_ref()]
            .into_iter()
            .flatten()
            .filter(|i| matches!(i, RelayInput::Push(_)))
            .map(|i| self.source(i).first_url().to_string())
            .collect();
        let status = match &p.run {
            Some(run) => run.status(p, push_urls),
            None => {
                let idle_input = |i: &RelayInput| InputStatus {
                    url: self.source(i).first_url().to_string(),
                    state: InputState::Absent { last_error: None },
                    vod: None,
                };
                RelayStatus {
                    state: ProjectState::Idle,
                    active: None,
                    started_at: p.started_at,
                    stopped_at: p.stopped_at,
                    main: Some(idle_input(&p.spec.main)),
                    backup: p.spec.backup.as_ref().map(idle_input),
                    outputs: p
                        .spec
                        .outputs
                        .iter()
                        .map(|o| OutputStatus {
                            id: o.id.clone(),
                            url: o.url.clone(),
                            state: OutputState::Idle,
                            bitrate_kbps: 0,
                            bytes: 0,
                        })
                        .collect(),
                    switches: 0,
                    push_urls,
                }
            }
        };
        RelayView {
            id: id.to_string(),
            spec: p.spec.clone(),
            status,
        }
    }

    pub fn get(&self, id: &str) -> Option<RelayView> {
        let projects = self.inner.projects.lock().unwrap();
        projects.get(id).map(|p| self.view(id, p))
    }

    pub fn list(&self) -> Vec<RelayView> {
        let projects = self.inner.projects.lock().unwrap();
        let mut ids: Vec<&String> = projects.keys().collect();
        ids.sort();
        ids.into_iter()
            .map(|id| self.view(id, &projects[id]))
            .collect()
    }

    /// Stops every project (shutdown).
    pub async fn shutdown(&self) {
        let _guard = self.inner.control.lock().await;
        let running: Vec<String> = self
            .inner
            .projects
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, p)| p.run.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        for id in running {
            let _ = self.stop_locked(&id, SHUTDOWN).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relays_is_shareable_between_threads() {
        fn shareable<T: Clone + Send + Sync + 'static>() {}
        shareable::<Relays>();
    }

    #[tokio::test]
    async fn projects_are_kept_idle_until_started() {
        let relays = Relays::new(Config::default());
        let spec: RelaySpec = serde_json::from_value(serde_json::json!({
            "main": {"push": "cam"},
            "backup": {"url": "http://127.0.0.1:9/b.flv"},
            "outputs": [{"id": "yt", "url": "rtmp://127.0.0.1:9/live/key"}]
        }))
        .unwrap();
        assert!(relays.put("p", spec.clone()).await.unwrap());
        assert!(!relays.put("p", spec).await.unwrap());
        let v = relays.get("p").unwrap();
        let s = serde_json::to_value(&v.status).unwrap();
        assert_eq!(s["state"], "idle");
        assert_eq!(s["main"]["url"], "rtmp://127.0.0.1:1935/live/cam");
        assert_eq!(s["main"]["state"], "absent");
        assert_eq!(s["backup"]["url"], "http://127.0.0.1:9/b.flv");
        assert_eq!(s["outputs"][0]["state"], "idle");
        assert_eq!(
            s["push_urls"],
            serde_json::json!(["rtmp://127.0.0.1:1935/live/cam"])
        );
        assert_eq!(
            relays.switch("p", Endpoint::Backup).unwrap_err().kind,
            ErrorKind::Conflict
        );
        relays.stop("p").await.unwrap();
        relays.delete("p").await.unwrap();
        assert!(relays.list().is_empty());
        assert_eq!(
            relays.stop("p").await.unwrap_err().kind,
            ErrorKind::NotFound
        );
    }
}
