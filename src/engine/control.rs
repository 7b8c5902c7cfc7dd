//! How a mix changes: requests, restore at start, recovery after a failure.
//!
//! A request is prepared first, with no lock held: validated, its pictures fetched and rendered
//! ([`Engine::prepare_mix`]), and given a ticket (its place in arrival order). It is then applied under the mix's
//! own lock ([`Engine::commit_mix`]): refused if a newer request for the mix was applied meanwhile, prepared again
//! if an older one was; admitted (capacity, output URLs); recorded; run (the pipeline started, updated live or
//! rebuilt, off the async workers). When it cannot run, the record and the output claims are put back, so a
//! refused request changes nothing. The API runs requests detached from their clients, so a client that hangs
//! up never leaves a change half-done.
//!
//! Restore and recovery start a mix from the spec the engine holds, on the same path, and give way to any
//! request that changed the mix meanwhile.

use std::{sync::Arc, time::Duration};

use tokio::sync::OwnedMutexGuard;

use super::{
    mix::{self, MixPipeline, PreparedStills},
    pipe::Pipe,
    resolve_input, resolve_output, Engine, Mix, MixRecord, Phase, PutOutcome,
};
use crate::{
    control::{normalize_url, Conflict},
    error::{Error, ErrorKind},
    events::{EventKind, TaskRef},
    image::ImageLimits,
    media::Handle,
    model::{MixSpec, Target, Violation},
};

/// How long a stopped mix's outputs may take to unpublish before a new publisher of the same streams starts.
const UNPUBLISH_WAIT: Duration = Duration::from_secs(5);
/// The first restart of a mix whose worker process died.
const QUICK_RECOVERY: Duration = Duration::from_millis(100);
/// How long readiness waits for one recorded mix to start after a restart.
const RESTORE_DEADLINE: Duration = Duration::from_secs(30);
/// Recorded mixes started at once after a restart.
const RESTORE_PARALLEL: usize = 4;

/// A change ready to be applied: validated, its pictures rendered, its place in arrival order taken.
pub struct Prepared {
    id: String,
    spec: MixSpec,
    stills: PreparedStills,
    ticket: u64,
    /// The version of the mix the pictures were rendered against; `None`: there was no mix.
    base: Option<u64>,
    max_image_bytes: u64,
}

/// What a change that could not run left running.
enum Left {
    /// Nothing changed: a new pipeline did not start, or an update was refused before it touched anything.
    Unchanged,
    /// The mix's pipeline is down (a rebuild or an update broke half-way): it is restarted from its old spec.
    Stopped,
}

impl Engine {
    /// Prepares `spec` for mix `id`: validates it and renders its pictures (fetching them with a deadline), with
    /// no lock held. `max_image_bytes` is a dialect's own image limit (never above the node's).
    pub async fn prepare_mix(
        &self,
        id: &str,
        spec: MixSpec,
        max_image_bytes: u64,
    ) -> Result<Prepared, Error> {
        let ticket = self.inner.tickets.take();
        let prepared = match spec.validate(&self.limits()) {
            Err(v) => Err(Error::invalid(v)),
            Ok(()) => match self.check_not_self_feeding(&spec) {
                Err(e) => Err(e),
                Ok(()) => {
                    self.prepare_against(id.to_string(), spec, max_image_bytes, ticket)
                        .await
                }
            },
        };
        if let Err(e) = &prepared {
            tracing::info!(mix = %id, error = %e, "mix change refused");
        }
        prepared
    }

    async fn prepare_against(
        &self,
        id: String,
        spec: MixSpec,
        max_image_bytes: u64,
        ticket: u64,
    ) -> Result<Prepared, Error> {
        let limits =
            ImageLimits::of(&self.inner.config.get().engine).with_max_bytes(max_image_bytes);
        // Pictures unchanged from a pipeline that takes the change live are kept, not rendered again; a new
        // pipeline needs them all.
        let (base, running) = {
            let mixes = self.inner.mixes.lock().unwrap();
            match mixes.get(&id) {
                Some(m) => (
                    Some(m.version),
                    m.pipeline
                        .as_ref()
                        .filter(|_| m.phase == Phase::Running && mix::updates_live(&m.spec, &spec))
                        .map(|_| m.spec.clone()),
                ),
                None => (None, None),
            }
        };
        let stills = render_stills(spec.clone(), running, limits).await?;
        Ok(Prepared {
            id,
            spec,
            stills,
            ticket,
            base,
            max_image_bytes,
        })
    }

    /// Applies a prepared change (see the module docs).
    pub async fn commit_mix(&self, prepared: Prepared) -> Result<PutOutcome, Error> {
        let id = prepared.id.clone();
        let result = self.commit(prepared).await;
        if let Err(e) = &result {
            tracing::info!(mix = %id, error = %e, "mix change refused");
        }
        result
    }

    async fn commit(&self, prepared: Prepared) -> Result<PutOutcome, Error> {
        let mut p = prepared;
        loop {
            let guard = self.inner.locks.lock(&p.id).await;
            if self.inner.tickets.superseded(&p.id, p.ticket) {
                return Err(Error::new(
                    ErrorKind::State,
                    format!(
                        "a later request for mix {:?} was applied first; this one was not applied",
                        p.id
                    ),
                ));
            }
            if self.version(&p.id) == p.base {
                return self.apply(p, guard).await;
            }
            // An older request was applied while this one prepared: prepare again against it.
            drop(guard);
            p = self
                .prepare_against(p.id, p.spec, p.max_image_bytes, p.ticket)
                .await?;
        }
    }

    fn version(&self, id: &str) -> Option<u64> {
        self.inner.mixes.lock().unwrap().get(id).map(|m| m.version)
    }

    async fn apply(&self, p: Prepared, _guard: OwnedMutexGuard<()>) -> Result<PutOutcome, Error> {
        let id = p.id.as_str();
        let task = TaskRef::Mix(id.to_string());
        let mut _place: Option<Place> = None;
        let (existing, old_spec, running) = {
            let mixes = self.inner.mixes.lock().unwrap();
            self.admits(&mixes, id)?;
            if let Some(ledger) = &self.inner.ledger {
                let ingest = &self.inner.config.get().ingest;
                ledger.admit(&task, crate::cluster::ledger::mix_demand(&p.spec, ingest))?;
            }
            if !mixes.contains_key(id) {
                // Held until this request is settled, whichever way (and whether or not its client waits).
                _place = Some(Place::take(self, id));
            }
            match mixes.get(id) {
                Some(m) => (
                    Some(m.pipeline.clone()),
                    Some(m.spec.clone()),
                    m.phase == Phase::Running,
                ),
                None => (None, None, false),
            }
        };
        let before = self.claim(&task, &p.spec)?;
        if let Err(e) = self
            .inner
            .records
            .put(
                id,
                &MixRecord {
                    spec: p.spec.clone(),
                },
            )
            .await
        {
            self.inner.claims.set(&task, before);
            tracing::error!(mix = %id, error = %e, "mix not recorded; request refused");
            return Err(Error::new(
                ErrorKind::Internal,
                "the mix could not be recorded",
            ));
        }
        let run = self.next_run();
        let result = match existing.clone().flatten() {
            None => self
                .start_pipeline(id, &p.spec, p.stills, run)
                .await
                .map(|pipeline| {
                    let outcome = match existing {
                        Some(_) => PutOutcome::Restarted,
                        None => PutOutcome::Created,
                    };
                    (pipeline, outcome)
                })
                .map_err(|e| (e, Left::Unchanged)),
            Some(pipeline) if running => {
                self.change_pipeline(id, pipeline, &p.spec, p.stills, run)
                    .await
            }
            // A failed pipeline is replaced.
            Some(pipeline) => {
                self.stop_pipeline(pipeline).await;
                self.start_pipeline(id, &p.spec, p.stills, run)
                    .await
                    .map(|p| (p, PutOutcome::Restarted))
                    .map_err(|e| (e, Left::Stopped))
            }
        };
        match result {
            Ok((pipeline, outcome)) => {
                {
                    let mut mixes = self.inner.mixes.lock().unwrap();
                    let version = mixes.get(id).map_or(0, |m| m.version) + 1;
                    mixes.insert(
                        id.to_string(),
                        Mix {
                            spec: p.spec,
                            pipeline: Some(pipeline),
                            phase: Phase::Running,
                            version,
                            recoveries: 0,
                            run,
                        },
                    );
                }
                self.inner.tickets.applied(id, p.ticket);
                let kind = match outcome {
                    PutOutcome::Created => EventKind::MixStarted,
                    PutOutcome::UpdatedLive => EventKind::MixUpdated { restarted: false },
                    PutOutcome::Restarted => EventKind::MixUpdated { restarted: true },
                };
                self.inner.events.publish(task, kind);
                tracing::info!(mix = %id, ?outcome, "mix applied");
                Ok(outcome)
            }
            Err((error, left)) => {
                // Put back what was there: the record, the claims, and what runs.
                match &old_spec {
                    Some(old) => {
                        if let Err(e) = self
                            .inner
                            .records
                            .put(id, &MixRecord { spec: old.clone() })
                            .await
                        {
                            tracing::error!(mix = %id, error = %e, "old mix record not put back");
                        }
                    }
                    None => self.inner.records.delete_or_log(id).await,
                }
                self.inner.claims.set(&task, before);
                if let Left::Stopped = left {
                    let version = {
                        let mut mixes = self.inner.mixes.lock().unwrap();
                        mixes.get_mut(id).map(|m| {
                            m.pipeline = None;
                            m.phase = Phase::Failed(error.message.clone());
                            m.version += 1;
                            m.version
                        })
                    };
                    if let Some(version) = version {
                        self.inner.events.publish(
                            task,
                            EventKind::MixFailed {
                                reason: error.message.clone(),
                            },
                        );
                        self.schedule_recovery(id, version, false);
                    }
                }
                Err(error)
            }
        }
    }

    /// Applies `spec` to a running pipeline: live when it can, else by rebuilding it (the old outputs unpublish
    /// first: RTMP servers refuse a second publisher of one stream).
    async fn change_pipeline(
        &self,
        id: &str,
        pipeline: Pipe,
        spec: &MixSpec,
        stills: PreparedStills,
        run: u64,
    ) -> Result<(Pipe, PutOutcome), (Error, Left)> {
        let live = pipeline.can_update_live(spec);
        if live {
            let updated = match &pipeline {
                Pipe::Local(p) => {
                    let (engine, p, spec2) = (self.clone(), p.clone(), spec.clone());
                    blocking(move || {
                        let config = &engine.inner.config.get();
                        p.lock()
                            .unwrap()
                            .update(&spec2, stills, config, &engine.inner.hub)
                    })
                    .await
                }
                Pipe::Remote(r) => r.update(spec, &stills.images).await,
            };
            return match updated {
                Ok(()) => Ok((pipeline, PutOutcome::UpdatedLive)),
                Err(e) => {
                    // Half applied: the pipeline no longer matches either spec. It goes, and comes back.
                    self.stop_pipeline(pipeline).await;
                    Err((e, Left::Stopped))
                }
            };
        }
        // Keep the inputs pulled meanwhile, so they do not reconnect for the new pipeline (in this process: a
        // worker has inputs of its own).
        let local = matches!(pipeline, Pipe::Local(_));
        let holds: Vec<_> = spec
            .inputs
            .iter()
            .filter(|_| local)
            .map(|i| {
                let url = resolve_input(&i.source, &self.inner.config.get().ingest);
                self.inner
                    .hub
                    .subscribe(&url, Arc::new(super::input::Discard), None)
            })
            .collect();
        self.stop_pipeline(pipeline).await;
        let started = self.start_pipeline(id, spec, stills, run).await;
        drop(holds);
        started
            .map(|p| (p, PutOutcome::Restarted))
            .map_err(|e| (e, Left::Stopped))
    }

    /// Builds and starts a pipeline for `spec`, off the async workers.
    async fn start_pipeline(
        &self,
        id: &str,
        spec: &MixSpec,
        stills: PreparedStills,
        run: u64,
    ) -> Result<Pipe, Error> {
        if let Some(workers) = &self.inner.workers {
            let ingest = &self.inner.config.get().ingest;
            let inputs = spec
                .inputs
                .iter()
                .map(|i| resolve_input(&i.source, ingest))
                .collect();
            let remote = crate::worker::RemoteMix::start(
                workers,
                id,
                run,
                spec,
                &stills.images,
                inputs,
                self.on_failure(id, run),
                self.on_worker_death(id, run),
            )
            .await?;
            return Ok(Pipe::Remote(Arc::new(remote)));
        }
        let (engine, id, spec) = (self.clone(), id.to_string(), spec.clone());
        blocking(move || {
            let inner = &engine.inner;
            MixPipeline::start(
                &id,
                &spec,
                stills,
                &inner.config.get(),
                &inner.hub,
                &inner.events,
                engine.on_failure(&id, run),
            )
            .map(|p| Pipe::Local(Arc::new(std::sync::Mutex::new(p))))
        })
        .await
    }

    /// Stops a pipeline and waits (bounded) until its outputs have unpublished.
    pub(super) async fn stop_pipeline(&self, pipeline: Pipe) {
        match pipeline {
            Pipe::Local(pipeline) => {
                let links: Vec<Handle> = blocking(move || Ok(pipeline.lock().unwrap().stop()))
                    .await
                    .unwrap_or_default();
                futures::future::join_all(links.into_iter().map(|l| l.shutdown(UNPUBLISH_WAIT)))
                    .await;
            }
            Pipe::Remote(r) => r.stop().await,
        }
    }

    /// Stops mix `id`, releases everything it held and removes its record; `reason` goes into the event
    /// ("deleted", "idle", …). When the record cannot be removed, nothing changes.
    pub async fn delete_mix_because(&self, id: &str, reason: &str) -> Result<(), Error> {
        let ticket = self.inner.tickets.take();
        let _guard = self.inner.locks.lock(id).await;
        if !self.inner.mixes.lock().unwrap().contains_key(id) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("mix {id:?} does not exist"),
            ));
        }
        self.inner.records.delete(id).await.map_err(|e| {
            tracing::error!(mix = %id, error = %e, "mix record not removed; delete refused");
            Error::new(ErrorKind::Internal, "the mix could not be removed")
        })?;
        let mix = self.inner.mixes.lock().unwrap().remove(id);
        let task = TaskRef::Mix(id.to_string());
        self.inner.claims.release(&task);
        self.inner.tickets.applied(id, ticket);
        if let Some(pipeline) = mix.and_then(|m| m.pipeline) {
            self.stop_pipeline(pipeline).await;
        }
        self.inner.events.publish(
            task,
            EventKind::MixStopped {
                reason: reason.to_string(),
            },
        );
        tracing::info!(mix = %id, reason, "mix deleted");
        Ok(())
    }

    /// Takes back every recorded mix (at process start): each is known at once (listed, `starting`, its outputs
    /// claimed) and started in the background, a few at a time; [`Engine::is_ready`] turns true once each has
    /// started or failed to (or its deadline passed). A mix that cannot start stays recorded and listed as
    /// `failed` with the reason, and is retried with backoff; a request for it or a delete replaces or removes
    /// it. Returns how many mixes were recorded.
    pub async fn restore(&self) -> usize {
        let records = self.inner.records.load().await;
        let mut ids = Vec::with_capacity(records.len());
        for (id, MixRecord { spec }) in records {
            if self.know_recorded(&id, spec) {
                ids.push(id);
            }
        }
        let count = self.inner.mixes.lock().unwrap().len();
        let engine = self.clone();
        tokio::spawn(async move {
            use futures::StreamExt;
            let began = std::time::Instant::now();
            let starts = futures::stream::iter(ids.into_iter().map(|id| {
                let engine = engine.clone();
                async move {
                    // The start goes on past the deadline; readiness stops waiting for it.
                    let start = tokio::spawn(async move { engine.start_recorded(&id, 1).await });
                    matches!(
                        tokio::time::timeout(RESTORE_DEADLINE, start).await,
                        Ok(Ok(true))
                    )
                }
            }))
            .buffer_unordered(RESTORE_PARALLEL)
            .collect::<Vec<bool>>()
            .await;
            let started = starts.iter().filter(|ok| **ok).count();
            if count > 0 {
                tracing::info!(
                    recorded = count,
                    started,
                    ms = began.elapsed().as_millis() as u64,
                    "recorded mixes resumed"
                );
            }
            engine.inner.ready.send_replace(true);
        });
        count
    }

    /// Makes mix `id` known from its recorded `spec` (listed at once, version 1): `starting` with its outputs
    /// claimed, or `failed` when another task holds one of them. `true` when claimed (it is to be started).
    pub(super) fn know_recorded(&self, id: &str, spec: MixSpec) -> bool {
        let (phase, claimed) = match self.claim(&TaskRef::Mix(id.to_string()), &spec) {
            Ok(_) => (Phase::Starting, true),
            Err(e) => (Phase::Failed(e.message), false),
        };
        self.inner.mixes.lock().unwrap().insert(
            id.to_string(),
            Mix {
                spec,
                pipeline: None,
                phase,
                version: 1,
                recoveries: 0,
                run: 0,
            },
        );
        claimed
    }

    /// Starts mix `id` from the spec the engine holds (restore, recovery) unless it changed since `version`.
    /// `true` when it runs.
    pub(super) async fn start_recorded(&self, id: &str, version: u64) -> bool {
        let spec = {
            let mixes = self.inner.mixes.lock().unwrap();
            match mixes.get(id) {
                Some(m) if m.version == version && m.phase != Phase::Running => m.spec.clone(),
                _ => return false,
            }
        };
        let limits = ImageLimits::of(&self.inner.config.get().engine);
        let stills = match render_stills(spec.clone(), None, limits).await {
            Ok(s) => s,
            Err(e) => {
                self.mark_failed(id, version, &e.message);
                return false;
            }
        };
        let _guard = self.inner.locks.lock(id).await;
        let old = {
            let mixes = self.inner.mixes.lock().unwrap();
            match mixes.get(id) {
                Some(m) if m.version == version => m.pipeline.clone(),
                _ => return false,
            }
        };
        if let Some(old) = old {
            self.stop_pipeline(old).await;
        }
        let run = self.next_run();
        match self.start_pipeline(id, &spec, stills, run).await {
            Ok(pipeline) => {
                {
                    let mut mixes = self.inner.mixes.lock().unwrap();
                    let Some(m) = mixes.get_mut(id) else {
                        return false;
                    };
                    m.pipeline = Some(pipeline);
                    m.phase = Phase::Running;
                    m.version += 1;
                    m.run = run;
                }
                self.inner
                    .events
                    .publish(TaskRef::Mix(id.to_string()), EventKind::MixStarted);
                tracing::info!(mix = %id, "mix started from its record");
                true
            }
            Err(e) => {
                {
                    // The old pipeline is gone: nothing runs until the next try.
                    let mut mixes = self.inner.mixes.lock().unwrap();
                    if let Some(m) = mixes.get_mut(id) {
                        m.pipeline = None;
                    }
                }
                self.mark_failed(id, version, &e.message);
                false
            }
        }
    }

    /// Notes that mix `id` (still at `version`) failed, tells it, and schedules a restart.
    fn mark_failed(&self, id: &str, version: u64, reason: &str) {
        self.mark_failed_then(id, version, reason, false)
    }

    /// [`Engine::mark_failed`]; `quick`: the first restart follows at once (the worker process died; the
    /// pipeline itself did not fail, so nothing suggests waiting).
    fn mark_failed_then(&self, id: &str, version: u64, reason: &str, quick: bool) {
        let version = {
            let mut mixes = self.inner.mixes.lock().unwrap();
            match mixes.get_mut(id) {
                Some(m) if m.version == version => {
                    m.phase = Phase::Failed(reason.to_string());
                    m.version += 1;
                    m.version
                }
                _ => return,
            }
        };
        tracing::error!(mix = %id, %reason, "mix failed");
        self.inner.events.publish(
            TaskRef::Mix(id.to_string()),
            EventKind::MixFailed {
                reason: reason.to_string(),
            },
        );
        self.schedule_recovery(id, version, quick);
    }

    /// Restarts mix `id` after a backoff (1 s doubling to 30 s per failed attempt since its last request; with
    /// `quick`, the first after [`QUICK_RECOVERY`]), if it is still at `version` then: "live means live".
    fn schedule_recovery(&self, id: &str, version: u64, quick: bool) {
        let attempt = {
            let mut mixes = self.inner.mixes.lock().unwrap();
            let Some(m) = mixes.get_mut(id) else { return };
            m.recoveries += 1;
            m.recoveries
        };
        let delay = match (quick, attempt) {
            (true, 1) => QUICK_RECOVERY,
            _ => Duration::from_secs(1 << (attempt - 1).min(5)).min(Duration::from_secs(30)),
        };
        tracing::warn!(mix = %id, attempt, ?delay, "mix will be restarted");
        let weak = Arc::downgrade(&self.inner);
        let id = id.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Some(inner) = weak.upgrade() {
                Engine { inner }.start_recorded(&id, version).await;
            }
        });
    }

    /// What a worker pool calls when the worker running mix `id` died: the mix is marked failed and restarted
    /// at once.
    fn on_worker_death(&self, id: &str, run: u64) -> mix::OnFailure {
        self.failure_handler(id, run, true)
    }

    /// What a pipeline calls when it fails (from its bus watch): the mix is marked failed and restarted.
    fn on_failure(&self, id: &str, run: u64) -> mix::OnFailure {
        self.failure_handler(id, run, false)
    }

    fn failure_handler(&self, id: &str, run: u64, quick: bool) -> mix::OnFailure {
        let weak = Arc::downgrade(&self.inner);
        let id = id.to_string();
        Box::new(move |reason: String| {
            let Some(inner) = weak.upgrade() else { return };
            let engine = Engine { inner };
            let version = {
                let mixes = engine.inner.mixes.lock().unwrap();
                match mixes.get(&id) {
                    // Only the pipeline running now counts (a replaced one may still report).
                    Some(m) if m.run == run && m.phase == Phase::Running => m.version,
                    _ => return,
                }
            };
            engine.mark_failed_then(&id, version, &reason, quick);
        })
    }

    fn next_run(&self) -> u64 {
        self.inner
            .runs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1
    }

    /// Stops every mix, ending each output cleanly; their records stay, so the next start resumes them.
    pub async fn shutdown(&self) {
        let ids: Vec<String> = self.inner.mixes.lock().unwrap().keys().cloned().collect();
        futures::future::join_all(ids.iter().map(|id| self.let_go(id, "shutdown"))).await;
    }

    /// The resolved output URLs of `spec`.
    fn output_urls(&self, spec: &MixSpec) -> Vec<String> {
        spec.outputs
            .iter()
            .map(|o| resolve_output(&o.target, &self.inner.config.get().egress))
            .collect()
    }

    /// Claims `spec`'s outputs for `task` (see [`crate::control::Claims`]); returns what it held before.
    pub(super) fn claim(&self, task: &TaskRef, spec: &MixSpec) -> Result<Vec<String>, Error> {
        self.inner
            .claims
            .swap(task, &self.output_urls(spec))
            .map_err(|c| self.conflict(spec, c))
    }

    fn conflict(&self, spec: &MixSpec, c: Conflict) -> Error {
        // Name the target as the caller wrote it: the resolved URL would expose the egress config.
        let target = match spec.outputs.get(c.index).map(|o| &o.target) {
            Some(Target::StreamId(id)) => format!("stream {id:?}"),
            Some(Target::Url(u)) => format!("URL {u:?}"),
            None => "an output".into(),
        };
        let holder = match &c.holder {
            TaskRef::Mix(other) => format!("mix {other:?}"),
            TaskRef::Relay(other) => format!("relay project {other:?}"),
        };
        Error::new(
            ErrorKind::Conflict,
            format!("output {target} is already published by {holder}"),
        )
    }

    /// Refuses a mix that would publish to one of its own inputs (it would pull its own output).
    fn check_not_self_feeding(&self, spec: &MixSpec) -> Result<(), Error> {
        let config = &self.inner.config.get();
        let inputs: Vec<(String, &str)> = spec
            .inputs
            .iter()
            .map(|i| {
                (
                    normalize_url(&resolve_input(&i.source, &config.ingest)),
                    i.id.as_str(),
                )
            })
            .collect();
        let violations: Vec<Violation> = spec
            .outputs
            .iter()
            .enumerate()
            .filter_map(|(n, o)| {
                let out = normalize_url(&resolve_output(&o.target, &config.egress));
                let (_, input) = inputs.iter().find(|(url, _)| *url == out)?;
                Some(Violation {
                    field: format!("outputs[{n}].target"),
                    rule: format!(
                        "publishes where input {input:?} is pulled from: the mix would pull its own output"
                    ),
                })
            })
            .collect();
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Error::invalid(violations))
        }
    }
}

/// Loads (each under the image limits and deadline, no lock held) and renders (off the async workers) the
/// pictures of `spec` that differ from `running` (all when `None`).
async fn render_stills(
    spec: MixSpec,
    running: Option<MixSpec>,
    limits: ImageLimits,
) -> Result<PreparedStills, Error> {
    mix::prepare_stills(&spec, running.as_ref(), &limits).await
}

/// Runs blocking GStreamer work on a blocking thread, inside the runtime (pipelines spawn their supervisors).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _rt = rt.enter();
        f()
    })
    .await
    .map_err(Error::internal)?
}

/// A new mix's place under `engine.max_mixes`, from its admission until its request is settled.
struct Place {
    engine: Engine,
    id: String,
}

impl Place {
    fn take(engine: &Engine, id: &str) -> Self {
        engine.inner.creating.lock().unwrap().insert(id.to_string());
        Self {
            engine: engine.clone(),
            id: id.to_string(),
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.engine.inner.creating.lock().unwrap().remove(&self.id);
    }
}
