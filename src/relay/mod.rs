//! Relaying: one live source pushed to many RTMP targets without re-encoding, with main/backup failover.
//!
//! The FLV tags of the active input are forwarded as they are (only timestamps are rewritten so the outputs see
//! one continuous broadcast across input switches); each target is its own supervised RTMP push with its own
//! bounded queue, so one dead or slow platform never holds back another.
//!
//! # Layout
//! - this module: [`Relays`], every project of the node: create, change, start, stop, delete, switch, views,
//!   restore — each change under the project's own lock, recorded before it is acknowledged.
//! - `run`: what a running project holds — two pulls (`pull`, main and backup, both running all the time: hot
//!   standby), the router (`router`: forwards the active input's tags, lands switches on keyframes, keeps output
//!   timestamps continuous), one push per output (`push`, on [`crate::media::push`]) and a control task applying
//!   the failover policy (`control`) and `stop_at`.
//! - `callback`: status callbacks POSTed to a project's `callback_url`; the node's event stream hears the same.
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
mod run;
pub mod status;

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use crate::{
    config::Config,
    control::{Claims, Conflict, KeyedLocks},
    error::{Error, ErrorKind},
    events::{EventBus, EventKind, TaskRef},
    live::Live,
    media::LinkState,
    model::Violation,
    node::NodeParts,
    store::Records,
};
pub use callback::callback_client;
use callback::unix_now;
use run::{pull_source, Run};

pub use model::{Failover, RelayInput, RelayOutput, RelaySpec};
pub use status::{Endpoint, RelayStatus, VodPosition};
use status::{InputState, InputStatus, OutputStatus, ProjectState};

/// The stop reason of a process shutdown: the project stays recorded as running.
const SHUTDOWN: &str = "shutdown";

/// The record kind of relay projects.
const KIND: &str = "relay";

/// A project's durable record.
#[derive(serde::Serialize, serde::Deserialize)]
struct RelayRecord {
    spec: RelaySpec,
    /// Whether it was started (and not stopped since): a restart starts it again.
    running: bool,
}

/// One project as the operator sees it ([`Relays::metrics`]).
#[derive(Debug, Clone)]
pub struct RelayMetrics {
    pub id: String,
    pub running: bool,
    /// Input switches in this run (failovers, returns to main, manual switches).
    pub switches: u64,
    pub active: Option<Endpoint>,
    /// Per output: id, live, bytes sent, reconnects.
    pub outputs: Vec<crate::media::push::OutputMetrics>,
}

/// A project as the API shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
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
    /// The node's configuration; a reload replaces it.
    config: Live<Config>,
    /// Sends every project's status callbacks (TLS roots and connection pool built at start, and again by a
    /// reload that changes `[callbacks]`).
    http: Live<reqwest::Client>,
    /// Where each project's spec and whether it runs are recorded before a request is answered.
    records: Records<RelayRecord>,
    events: EventBus,
    /// Output URLs in use, shared with the mixes.
    claims: Arc<Claims>,
    projects: Mutex<HashMap<String, Project>>,
    /// One lock per project: put/start/stop/delete (and the stop at `stop_at`) of one project, one at a time.
    locks: KeyedLocks,
    runs: AtomicU64,
    /// In a cluster: the cost reserved for each project, which a create or change is admitted against.
    ledger: Option<Arc<crate::cluster::ledger::Ledger>>,
}

/// A project: its settings, and its run while it runs.
struct Project {
    spec: RelaySpec,
    run: Option<Arc<Run>>,
    started_at: Option<i64>,
    stopped_at: Option<i64>,
}

fn not_found(id: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("relay project {id:?} does not exist"),
    )
}

impl Relays {
    /// `http` is the callback client, built (and its `ca_file` checked) once at start.
    pub fn new(config: Config, parts: NodeParts, http: reqwest::Client) -> Self {
        Self::with_config(Live::new(config), parts, Live::new(http))
    }

    /// Relays reading the node's live configuration (shared with the API, which reloads it).
    pub fn with_config(
        config: Live<Config>,
        parts: NodeParts,
        http: Live<reqwest::Client>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                http,
                ledger: parts.ledger.clone(),
                records: Records::new(parts.store, KIND),
                events: parts.events,
                claims: parts.claims,
                projects: Mutex::new(HashMap::new()),
                locks: KeyedLocks::default(),
                runs: AtomicU64::new(0),
            }),
        }
    }

    /// Projects of their own, recorded in memory only (tests).
    pub fn in_memory(config: Config) -> Self {
        Self::new(config, NodeParts::in_memory(), reqwest::Client::new())
    }

    /// Recreates every recorded project and starts those that were running (at process start); returns how
    /// many were started. Starting only launches the pulls and pushes: nothing here waits on the network.
    pub async fn restore(&self) -> usize {
        let mut started = 0;
        for (id, record) in self.inner.records.load().await {
            if let Err(e) = self.put(&id, record.spec).await {
                tracing::error!(relay = %id, error = %e, "recorded relay project not restored");
                continue;
            }
            if record.running {
                match self.start(&id).await {
                    Ok(()) => started += 1,
                    Err(e) => {
                        tracing::warn!(relay = %id, error = %e, "recorded relay project not started")
                    }
                }
            }
        }
        started
    }

    /// Records project `id`; a failure refuses the request that wanted it.
    async fn record(&self, id: &str, spec: &RelaySpec, running: bool) -> Result<(), Error> {
        let record = RelayRecord {
            spec: spec.clone(),
            running,
        };
        self.inner.records.put(id, &record).await.map_err(|e| {
            tracing::error!(relay = %id, error = %e, "relay project not recorded; request refused");
            Error::new(
                ErrorKind::Internal,
                "the relay project could not be recorded",
            )
        })
    }

    /// Claims the outputs of `spec` for project `id` (no other relay project or mix may push to them);
    /// returns what it held before.
    fn claim(&self, id: &str, spec: &RelaySpec) -> Result<Vec<String>, Error> {
        let urls: Vec<String> = spec.outputs.iter().map(|o| o.url.clone()).collect();
        self.inner
            .claims
            .swap(&TaskRef::Relay(id.to_string()), &urls)
            .map_err(|Conflict { index, holder }| {
                let output = spec.outputs.get(index).map_or("", |o| o.id.as_str());
                let holder = match holder {
                    TaskRef::Relay(other) => format!("relay project {other:?}"),
                    TaskRef::Mix(other) => format!("mix {other:?}"),
                };
                Error::new(
                    ErrorKind::Conflict,
                    format!("output {output:?} pushes to a URL that {holder} already publishes to"),
                )
            })
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
        if violations.is_empty() && self.inner.config.get().ingest.forbid_private_sources {
            if let Err(v) = crate::netpolicy::check_urls(spec.caller_urls()).await {
                violations.extend(v);
            }
        }
        if !violations.is_empty() {
            return Err(Error::invalid(violations));
        }
        let _guard = self.inner.locks.lock(id).await;
        if let Some(ledger) = &self.inner.ledger {
            ledger.admit(
                &TaskRef::Relay(id.to_string()),
                crate::cluster::ledger::relay_demand(&spec),
            )?;
        }
        let run = {
            let projects = self.inner.projects.lock().unwrap();
            projects.get(id).and_then(|p| p.run.clone())
        };
        let before = match &run {
            Some(_) => Some(self.claim(id, &spec)?),
            None => None,
        };
        if let Err(e) = self.record(id, &spec, run.is_some()).await {
            if let Some(before) = before {
                self.inner
                    .claims
                    .set(&TaskRef::Relay(id.to_string()), before);
            }
            return Err(e);
        }
        if let Some(run) = run {
            run.apply(&spec).await;
        }
        let mut projects = self.inner.projects.lock().unwrap();
        match projects.get_mut(id) {
            Some(p) => {
                p.spec = spec;
                tracing::info!(relay = %id, running = p.run.is_some(), "relay project updated");
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
                tracing::info!(relay = %id, "relay project created");
                Ok(true)
            }
        }
    }

    /// Starts pulling and pushing. Starting a running project is a no-op.
    pub async fn start(&self, id: &str) -> Result<(), Error> {
        let _guard = self.inner.locks.lock(id).await;
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
        crate::engine::init()?;
        let task = TaskRef::Relay(id.to_string());
        let before = self.claim(id, &spec)?;
        if let Err(e) = self.record(id, &spec, true).await {
            self.inner.claims.set(&task, before);
            return Err(e);
        }
        let run = Run::launch(
            id,
            self.inner.runs.fetch_add(1, Ordering::Relaxed),
            &spec,
            &self.inner.config.get(),
            (*self.inner.http.get()).clone(),
            self.inner.events.clone(),
            self.on_stop_at(),
        );
        {
            let mut projects = self.inner.projects.lock().unwrap();
            let p = projects.get_mut(id).ok_or_else(|| not_found(id))?;
            p.run = Some(run.clone());
            p.started_at = Some(unix_now());
            p.stopped_at = None;
        }
        run.callbacks.started();
        self.inner.events.publish(task, EventKind::RelayStarted);
        tracing::info!(relay = %id, outputs = spec.outputs.len(), "relay project started");
        Ok(())
    }

    /// What a run calls when it reaches its `stop_at`: a stop of that run (not of a later one).
    fn on_stop_at(&self) -> run::OnStopAt {
        let relays = Arc::downgrade(&self.inner);
        Arc::new(move |id: String, number: u64| {
            let relays = relays.clone();
            tokio::spawn(async move {
                let Some(inner) = relays.upgrade() else {
                    return;
                };
                let relays = Relays { inner };
                let _guard = relays.inner.locks.lock(&id).await;
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
        })
    }

    /// Stops every pull and push; the project stays, idle.
    pub async fn stop(&self, id: &str) -> Result<(), Error> {
        let _guard = self.inner.locks.lock(id).await;
        self.stop_locked(id, "request").await
    }

    /// Stops project `id` (its lock is held by the caller). A shutdown leaves it recorded as running, so the
    /// next start resumes it.
    async fn stop_locked(&self, id: &str, reason: &str) -> Result<(), Error> {
        let (running, spec) = {
            let projects = self.inner.projects.lock().unwrap();
            let p = projects.get(id).ok_or_else(|| not_found(id))?;
            (p.run.is_some(), p.spec.clone())
        };
        if running && reason != SHUTDOWN {
            self.record(id, &spec, false).await?;
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
            let task = TaskRef::Relay(id.to_string());
            self.inner.claims.release(&task);
            run.callbacks.stopped(reason);
            self.inner.events.publish(
                task,
                EventKind::RelayStopped {
                    reason: reason.to_string(),
                },
            );
            tracing::info!(relay = %id, reason, "relay project stopped");
        }
        Ok(())
    }

    /// Stops and forgets the project.
    pub async fn delete(&self, id: &str) -> Result<(), Error> {
        let _guard = self.inner.locks.lock(id).await;
        self.stop_locked(id, "deleted").await?;
        self.inner.records.delete(id).await.map_err(|e| {
            tracing::error!(relay = %id, error = %e, "relay project record not removed; request refused");
            Error::new(ErrorKind::Internal, "the relay project could not be removed")
        })?;
        self.inner.projects.lock().unwrap().remove(id);
        tracing::info!(relay = %id, "relay project deleted");
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
                    ErrorKind::State,
                    format!("relay project {id:?} is not running"),
                )
            })?
        };
        if run.health(to) != Some(InputState::Live) {
            return Err(Error::new(
                ErrorKind::State,
                format!("input {} is not live", to.as_str()),
            ));
        }
        run.switch(to);
        tracing::info!(relay = %id, to = to.as_str(), "manual input switch");
        Ok(())
    }

    fn view(&self, id: &str, p: &Project) -> RelayView {
        let config = &self.inner.config.get();
        let push_urls: Vec<String> = [Some(&p.spec.main), p.spec.backup.as_ref()]
            .into_iter()
            .flatten()
            .filter(|i| matches!(i, RelayInput::Push(_)))
            .map(|i| pull_source(i, config).first_url().to_string())
            .collect();
        let status = match &p.run {
            Some(run) => run.status(p.started_at, p.stopped_at, push_urls),
            None => {
                let idle_input = |i: &RelayInput| InputStatus {
                    url: pull_source(i, config).first_url().to_string(),
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
                            state: LinkState::Idle,
                            bitrate_kbps: 0,
                            bytes: 0,
                            reconnects: 0,
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

    /// Project `id`'s run, if it runs.
    fn running(&self, id: &str) -> Result<Arc<Run>, Error> {
        let projects = self.inner.projects.lock().unwrap();
        let p = projects.get(id).ok_or_else(|| not_found(id))?;
        p.run.clone().ok_or_else(|| {
            Error::new(
                ErrorKind::State,
                format!("relay project {id:?} is not running"),
            )
        })
    }

    /// The viewers of project `id`'s forwarded stream (its live preview).
    pub fn live_viewers(&self, id: &str) -> Result<Arc<crate::preview::Viewers>, Error> {
        Ok(self.running(id)?.viewers.clone())
    }

    /// Input `e` of project `id`: its newest keyframe as a small FLV file, to decode for a snapshot.
    pub fn input_keyframe(&self, id: &str, e: Endpoint) -> Result<Vec<u8>, Error> {
        let run = self.running(id)?;
        if run.health(e).is_none() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("relay project {id:?} has no {} input", e.as_str()),
            ));
        }
        run.keyframe_flv(e).ok_or_else(|| {
            Error::new(
                ErrorKind::State,
                format!(
                    "the {} input of relay project {id:?} has sent no keyframe yet",
                    e.as_str()
                ),
            )
        })
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

    /// What the operator sees of each project: whether it runs, its input switches, its active input, and each
    /// output's label, liveness, bytes sent and reconnects.
    pub fn metrics(&self) -> Vec<RelayMetrics> {
        let projects: Vec<(String, Option<Arc<Run>>)> = self
            .inner
            .projects
            .lock()
            .unwrap()
            .iter()
            .map(|(id, p)| (id.clone(), p.run.clone()))
            .collect();
        projects
            .into_iter()
            .map(|(id, run)| match run {
                Some(run) => {
                    let (switches, active, outputs) = run.metrics();
                    RelayMetrics {
                        id,
                        running: true,
                        switches: switches as u64,
                        active,
                        outputs,
                    }
                }
                None => RelayMetrics {
                    id,
                    running: false,
                    switches: 0,
                    active: None,
                    outputs: Vec::new(),
                },
            })
            .collect()
    }

    /// Takes project `id` over from its record (a cluster node that now owns it): created, and started when it
    /// was running. `Ok(false)`: there is no record (the project was deleted).
    pub async fn adopt(&self, id: &str) -> Result<bool, Error> {
        let record = self.inner.records.get(id).await.map_err(|e| {
            tracing::error!(relay = %id, error = %e, "relay project record not read; not taken over");
            Error::new(ErrorKind::Internal, "the relay project record could not be read")
        })?;
        let Some(record) = record else {
            return Ok(false);
        };
        if let Some(ledger) = &self.inner.ledger {
            // Placed here by the placement every node computes: not refused after the fact.
            ledger.force(
                &TaskRef::Relay(id.to_string()),
                crate::cluster::ledger::relay_demand(&record.spec),
            );
        }
        self.put(id, record.spec).await?;
        if record.running {
            self.start(id).await?;
        }
        tracing::info!(relay = %id, running = record.running, "relay project taken over from its record");
        Ok(true)
    }

    /// Stops project `id` here and forgets it, leaving its record as it is (another node owns it now).
    pub async fn release(&self, id: &str) -> bool {
        let _guard = self.inner.locks.lock(id).await;
        let _ = self.stop_locked(id, SHUTDOWN).await;
        if let Some(ledger) = &self.inner.ledger {
            ledger.release(&TaskRef::Relay(id.to_string()));
        }
        self.inner.projects.lock().unwrap().remove(id).is_some()
    }

    /// The ids of every project this node holds.
    pub fn ids(&self) -> Vec<String> {
        self.inner
            .projects
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    /// Stops every project (shutdown); their records stay as they are.
    pub async fn shutdown(&self) {
        let running: Vec<String> = self
            .inner
            .projects
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, p)| p.run.is_some())
            .map(|(id, _)| id.clone())
            .collect();
        let stops = running.into_iter().map(|id| async move {
            let _guard = self.inner.locks.lock(&id).await;
            let _ = self.stop_locked(&id, SHUTDOWN).await;
        });
        futures::future::join_all(stops).await;
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
        let relays = Relays::in_memory(Config::default());
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
            ErrorKind::State
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
