//! What a running project holds — its two pulls, its router, one push per output, its control task — and
//! how it starts, changes live, reports and stops.

use crate::media::push::OutputMetrics;
use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
    time::{Duration, Instant},
};

use tokio::{sync::watch, task::JoinHandle};

use super::{
    callback::Events,
    control::{self, Health},
    model::{Failover, RelayInput, RelayOutput, RelaySpec},
    pull::{self, PullShared, PullSource},
    push,
    router::{Router, SwitchReason, TagSink},
    status::{Endpoint, InputState, InputStatus, OutputStatus, ProjectState, RelayStatus},
};
use crate::{
    config::Config,
    events::{EventBus, EventKind, TaskRef},
    media::Handle,
    model::Source,
};

/// How long a stop waits for one pull or push to wind down before leaving it behind.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// What to pull for `input`: a live URL (a pushed stream through `ingest.pull_url`), or a playlist.
pub(super) fn pull_source(input: &RelayInput, config: &Config) -> PullSource {
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

/// One input being pulled.
struct Pull {
    shared: Arc<PullShared>,
    link: Handle,
}

/// The control task of a run (failover policy, `stop_at`).
struct ControlTask {
    stop_tx: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// Called when a run reaches its `stop_at`: the project's manager stops it (if `number` is still its run).
pub(super) type OnStopAt = Arc<dyn Fn(String, u64) + Send + Sync>;

/// A running project.
pub(super) struct Run {
    pub id: String,
    /// Tells this run from a later one of the same project.
    pub number: u64,
    config: Config,
    router: Arc<Mutex<Router>>,
    sessions: Arc<AtomicU64>,
    pulls: Mutex<[Option<Pull>; 2]>,
    /// In spec order.
    outputs: Mutex<Vec<push::Output>>,
    failover: Mutex<Failover>,
    stop_at: Mutex<Option<i64>>,
    stall_ms: Arc<AtomicU64>,
    callback_url: Arc<Mutex<Option<String>>>,
    manual_hold: AtomicBool,
    pub callbacks: Events,
    bus: EventBus,
    control: Mutex<Option<ControlTask>>,
    /// The live preview's viewers: the router feeds them as one more output.
    pub viewers: Arc<crate::preview::Viewers>,
}

impl Run {
    /// Starts pulling, routing and pushing `spec`.
    pub(super) fn launch(
        id: &str,
        number: u64,
        spec: &RelaySpec,
        config: &Config,
        http: reqwest::Client,
        bus: EventBus,
        on_stop_at: OnStopAt,
    ) -> Arc<Run> {
        let callback_url = Arc::new(Mutex::new(spec.callback_url.clone()));
        let callbacks = Events::start(id, callback_url.clone(), http);
        let on_switch = {
            let callbacks = callbacks.clone();
            let bus = bus.clone();
            let task = TaskRef::Relay(id.to_string());
            Box::new(move |from: Endpoint, to: Endpoint, why: SwitchReason| {
                callbacks.failover(from.as_str(), to.as_str(), why.as_str());
                let (from, to, reason) = (
                    from.as_str().to_string(),
                    to.as_str().to_string(),
                    why.as_str().to_string(),
                );
                let kind = match to.as_str() {
                    "main" => EventKind::RelayFailback { from, to, reason },
                    _ => EventKind::RelayFailover { from, to, reason },
                };
                bus.publish(task.clone(), kind);
            })
        };
        let run = Arc::new(Run {
            id: id.to_string(),
            number,
            config: config.clone(),
            router: Arc::new(Mutex::new(Router::new(id, on_switch))),
            sessions: Arc::new(AtomicU64::new(0)),
            pulls: Mutex::new([None, None]),
            outputs: Mutex::new(Vec::new()),
            failover: Mutex::new(spec.failover.clone()),
            stop_at: Mutex::new(spec.stop_at),
            stall_ms: Arc::new(AtomicU64::new(spec.failover.stall_ms)),
            callback_url,
            manual_hold: AtomicBool::new(false),
            callbacks,
            bus,
            control: Mutex::new(None),
            viewers: crate::preview::Viewers::new(&format!("relay {id}")),
        });
        for (e, input) in [
            (Endpoint::Main, Some(&spec.main)),
            (Endpoint::Backup, spec.backup.as_ref()),
        ] {
            if let Some(input) = input {
                run.start_pull(e, pull_source(input, config));
            }
        }
        let outputs = spec.outputs.iter().map(|o| run.start_output(o)).collect();
        *run.outputs.lock().unwrap() = outputs;
        run.sync_sinks();
        let (stop_tx, stop_rx) = watch::channel(false);
        let handle = tokio::spawn(control_loop(Arc::downgrade(&run), on_stop_at, stop_rx));
        *run.control.lock().unwrap() = Some(ControlTask { stop_tx, handle });
        run
    }

    fn start_pull(&self, e: Endpoint, source: PullSource) {
        let url = crate::media::redact(source.first_url());
        let files = match &source {
            PullSource::Live(_) => 1,
            PullSource::Vod { urls, .. } => urls.len(),
        };
        let shared = PullShared::new(e, source);
        let link = pull::start(pull::PullContext {
            shared: shared.clone(),
            router: Arc::downgrade(&self.router),
            sessions: self.sessions.clone(),
            ingest: self.config.ingest.clone(),
            stall_ms: self.stall_ms.clone(),
            relay: self.id.clone(),
            tag: crate::media::cpu::tag(crate::media::cpu::Owner::Task(TaskRef::Relay(
                self.id.clone(),
            ))),
        });
        tracing::info!(relay = %self.id, input = e.as_str(), %url, files, "relay input pulled");
        self.pulls.lock().unwrap()[e.index()] = Some(Pull { shared, link });
    }

    fn start_output(&self, o: &RelayOutput) -> push::Output {
        tracing::info!(relay = %self.id, output = %o.id, "relay output started");
        push::start(
            &self.id,
            &o.id,
            &o.name,
            &o.url,
            &self.config.egress,
            self.callbacks.clone(),
            self.bus.clone(),
        )
    }

    /// Hands the router the current outputs.
    fn sync_sinks(&self) {
        let sinks: Vec<Arc<dyn TagSink>> = self
            .outputs
            .lock()
            .unwrap()
            .iter()
            .map(|o| o.shared.clone() as Arc<dyn TagSink>)
            .chain(std::iter::once(self.viewers.clone() as Arc<dyn TagSink>))
            .collect();
        self.router.lock().unwrap().set_sinks(sinks);
    }

    /// Input `e`'s newest keyframe as a small FLV file (see [`Router::keyframe_flv`]).
    pub(super) fn keyframe_flv(&self, e: Endpoint) -> Option<Vec<u8>> {
        self.router.lock().unwrap().keyframe_flv(e)
    }

    pub(super) fn health(&self, e: Endpoint) -> Option<InputState> {
        let stall = Duration::from_millis(self.stall_ms.load(Ordering::Relaxed));
        self.pulls.lock().unwrap()[e.index()]
            .as_ref()
            .map(|p| p.shared.health(stall))
    }

    /// Makes `to` the active input now (a manual switch); holds off the automatic return to main after a
    /// switch to the backup.
    pub(super) fn switch(&self, to: Endpoint) {
        self.manual_hold
            .store(to == Endpoint::Backup, Ordering::Relaxed);
        self.router
            .lock()
            .unwrap()
            .request(to, SwitchReason::Manual);
    }

    /// Applies `spec` to the run: settings at once, changed inputs re-pulled, outputs by id.
    pub(super) async fn apply(&self, spec: &RelaySpec) {
        *self.failover.lock().unwrap() = spec.failover.clone();
        self.stall_ms
            .store(spec.failover.stall_ms, Ordering::Relaxed);
        *self.stop_at.lock().unwrap() = spec.stop_at;
        *self.callback_url.lock().unwrap() = spec.callback_url.clone();

        // Inputs: a changed source is a new pull; the outputs stay, the router rejoins at a keyframe. (An
        // unchanged playlist is not played again.)
        for (e, input) in [
            (Endpoint::Main, Some(&spec.main)),
            (Endpoint::Backup, spec.backup.as_ref()),
        ] {
            let source = input.map(|i| pull_source(i, &self.config));
            let current = self.pulls.lock().unwrap()[e.index()]
                .as_ref()
                .map(|p| p.shared.source.clone());
            if source == current {
                continue;
            }
            let old = self.pulls.lock().unwrap()[e.index()].take();
            if let Some(old) = old {
                old.link.shutdown(TEARDOWN_TIMEOUT).await;
                self.router.lock().unwrap().end_input(e);
            }
            if let Some(source) = source {
                self.start_pull(e, source);
            }
            tracing::info!(relay = %self.id, input = e.as_str(), "relay input replaced live");
        }

        // Outputs: same id and URL keep running; others are stopped first (a URL may move between ids), then
        // the new ones start.
        let old: Vec<_> = std::mem::take(&mut *self.outputs.lock().unwrap());
        let (kept, removed): (Vec<_>, Vec<_>) = old.into_iter().partition(|o| {
            spec.outputs
                .iter()
                .any(|s| s.id == o.shared.id && s.url == o.shared.url())
        });
        *self.outputs.lock().unwrap() = kept;
        self.sync_sinks();
        for o in &removed {
            tracing::info!(relay = %self.id, output = %o.shared.id, "relay output removed live");
        }
        shutdown_all(removed.into_iter().map(|o| o.link)).await;
        let mut kept: Vec<_> = std::mem::take(&mut *self.outputs.lock().unwrap());
        let mut next = Vec::with_capacity(spec.outputs.len());
        for o in &spec.outputs {
            match kept.iter().position(|k| k.shared.id == o.id) {
                Some(i) => {
                    let k = kept.swap_remove(i);
                    k.shared.set_name(&o.name);
                    next.push(k);
                }
                None => next.push(self.start_output(o)),
            }
        }
        *self.outputs.lock().unwrap() = next;
        self.sync_sinks();
    }

    pub(super) fn status(
        &self,
        started_at: Option<i64>,
        stopped_at: Option<i64>,
        push_urls: Vec<String>,
    ) -> RelayStatus {
        let (active, switches) = {
            let r = self.router.lock().unwrap();
            (r.active(), r.switches())
        };
        let input = |e: Endpoint| {
            let shared = self.pulls.lock().unwrap()[e.index()]
                .as_ref()
                .map(|p| p.shared.clone())?;
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
            .map(|o| OutputStatus {
                id: o.shared.id.clone(),
                url: o.shared.url().to_string(),
                state: o.link.state(),
                bitrate_kbps: o.shared.target.bitrate_kbps(),
                bytes: o.shared.target.bytes(),
                reconnects: o.shared.target.reconnects(),
            })
            .collect();
        RelayStatus {
            state: ProjectState::Working,
            active,
            started_at,
            stopped_at,
            main: input(Endpoint::Main),
            backup: input(Endpoint::Backup),
            outputs,
            switches,
            push_urls,
        }
    }

    /// Input switches so far, the active input, and each output's label, liveness, bytes and reconnects.
    pub(super) fn metrics(&self) -> (u32, Option<Endpoint>, Vec<OutputMetrics>) {
        let (switches, active) = {
            let r = self.router.lock().unwrap();
            (r.switches(), r.active())
        };
        let outputs = self
            .outputs
            .lock()
            .unwrap()
            .iter()
            .map(|o| OutputMetrics {
                output: o.shared.id.clone(),
                up: o.link.state().is_live(),
                sent_bytes: o.shared.target.bytes(),
                reconnects: o.shared.target.reconnects(),
            })
            .collect();
        (switches, active, outputs)
    }

    /// Stops everything the run started and waits (bounded) for it; outputs unpublish cleanly.
    pub(super) async fn teardown(&self) {
        let control = self.control.lock().unwrap().take();
        if let Some(c) = &control {
            let _ = c.stop_tx.send(true);
        }
        let pulls: Vec<Pull> = self
            .pulls
            .lock()
            .unwrap()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        let outputs: Vec<_> = std::mem::take(&mut *self.outputs.lock().unwrap());
        self.router.lock().unwrap().set_sinks(Vec::new());
        let links = pulls
            .into_iter()
            .map(|p| p.link)
            .chain(outputs.into_iter().map(|o| o.link));
        shutdown_all(links).await;
        if let Some(c) = control {
            if tokio::time::timeout(TEARDOWN_TIMEOUT, c.handle)
                .await
                .is_err()
            {
                tracing::warn!(relay = %self.id, "relay control task did not stop in time");
            }
        }
    }
}

/// Stops links and waits for each, at most [`TEARDOWN_TIMEOUT`].
async fn shutdown_all(links: impl Iterator<Item = Handle>) {
    let waits = links.map(|l| async move {
        if !l.shutdown(TEARDOWN_TIMEOUT).await {
            tracing::warn!("relay link did not stop in time");
        }
    });
    futures::future::join_all(waits).await;
}

/// The control task of a run: failover policy and `stop_at`, every 100 ms.
async fn control_loop(run: Weak<Run>, on_stop_at: OnStopAt, mut stop_rx: watch::Receiver<bool>) {
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
            .map_or(Health::Absent, |s| Health::of(&s));
        let backup = run.health(Endpoint::Backup).map(|s| Health::of(&s));
        if main == Health::Live {
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
            if crate::clock::unix_now() >= t {
                stopping = true;
                tracing::info!(relay = %run.id, stop_at = t, "relay project reached its stop time");
                on_stop_at(run.id.clone(), run.number);
            }
        }
    }
}
