//! ZEGO tasks: who owns each, its last applied Sequence, when it started, and the watcher that ends it once no
//! input has been live for MaxIdleTime.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{auth::NonceCache, codes::*, wire};
use crate::{
    api::AppState,
    engine::Engine,
    model::{MixSpec, Source},
    store::{self, kind},
};

/// The engine's id for a ZEGO task's mix (namespaced so native ids cannot clash with it).
pub fn mix_id(task_id: &str) -> String {
    format!("zego-{task_id}")
}

/// What the dialect remembers of a running task.
#[derive(Clone)]
pub struct Task {
    /// The UserId that created it; only it may update or stop the task.
    pub owner: String,
    /// Highest Sequence applied; a lower one is refused.
    pub sequence: i64,
    pub started: Instant,
    /// Unix seconds of the start (recorded; `started` is rebuilt from it after a restart).
    started_unix: i64,
    /// The idle time after which the task ends by itself.
    max_idle: Duration,
    /// Inputs already checked for existence.
    pub sources: HashSet<Source>,
    /// Ends the idle watcher when the task goes.
    watcher: Arc<tokio::task::AbortHandle>,
}

/// What is recorded of a task (its mix is recorded by the engine).
#[derive(serde::Serialize, serde::Deserialize)]
struct TaskRecord {
    owner: String,
    sequence: i64,
    started_unix: i64,
    max_idle_s: u64,
}

impl TaskRecord {
    fn of(task: &Task) -> Self {
        Self {
            owner: task.owner.clone(),
            sequence: task.sequence,
            started_unix: task.started_unix,
            max_idle_s: task.max_idle.as_secs(),
        }
    }
}

#[derive(Default)]
pub struct ZegoState {
    tasks: Mutex<HashMap<String, Task>>,
    pub(super) nonces: NonceCache,
    /// Serialises StartMix/StopMix so owner and sequence checks and the engine change happen as one step.
    ops: tokio::sync::Mutex<()>,
}

impl ZegoState {
    pub(super) async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.ops.lock().await
    }

    /// Checks that `user` may update `task_id` with `sequence`; returns the task when it exists.
    pub(super) fn check_update(
        &self,
        task_id: &str,
        user: &str,
        sequence: Option<i64>,
    ) -> Result<Option<Task>, ZegoError> {
        let tasks = self.tasks.lock().unwrap();
        let Some(task) = tasks.get(task_id) else {
            return Ok(None);
        };
        if task.owner != user {
            return Err(ZegoError::new(
                NOT_OWNER,
                "the task belongs to another UserId",
            ));
        }
        if let Some(seq) = sequence {
            if seq < task.sequence {
                return Err(ZegoError::new(
                    PARAMETER,
                    format!(
                        "Sequence {seq} is lower than the last applied {}; not applied",
                        task.sequence
                    ),
                ));
            }
        }
        Ok(Some(task.clone()))
    }

    /// Records an applied StartMix, starting the idle watcher for a new task.
    pub(super) fn record(
        &self,
        state: &AppState,
        req: &wire::StartMix,
        spec: &MixSpec,
        sequence: i64,
        max_idle: Duration,
    ) {
        let mut tasks = self.tasks.lock().unwrap();
        let sources = spec.inputs.iter().map(|i| i.source.clone()).collect();
        let task = match tasks.get_mut(&req.task_id) {
            Some(t) => {
                t.sequence = t.sequence.max(sequence);
                t.sources = sources;
                t
            }
            None => {
                let watcher =
                    tokio::spawn(watch_idle(state.clone(), req.task_id.clone(), max_idle));
                tasks.entry(req.task_id.clone()).or_insert(Task {
                    owner: req.user_id.clone(),
                    sequence,
                    started: Instant::now(),
                    started_unix: crate::clock::unix_now(),
                    max_idle,
                    sources,
                    watcher: Arc::new(watcher.abort_handle()),
                })
            }
        };
        let record = TaskRecord::of(task);
        drop(tasks);
        store::put_or_log(
            &*state.engine.store(),
            kind::ZEGO_TASK,
            &req.task_id,
            &record,
        );
    }

    /// Takes back the tasks recorded before a restart whose mixes the engine resumed.
    pub fn restore(&self, state: &AppState) {
        let store = state.engine.store();
        for (task_id, r) in store::load_as::<TaskRecord>(&*store, kind::ZEGO_TASK) {
            let Some(mix) = state.engine.get_mix(&mix_id(&task_id)) else {
                // Kept while its mix is recorded (a mix that failed to come back now may later).
                if !state.engine.is_recorded(&mix_id(&task_id)) {
                    store::delete_or_log(&*store, kind::ZEGO_TASK, &task_id);
                }
                continue;
            };
            let max_idle = Duration::from_secs(r.max_idle_s);
            let age =
                Duration::from_secs((crate::clock::unix_now() - r.started_unix).max(0) as u64);
            let watcher = tokio::spawn(watch_idle(state.clone(), task_id.clone(), max_idle));
            self.tasks.lock().unwrap().insert(
                task_id,
                Task {
                    owner: r.owner,
                    sequence: r.sequence,
                    started: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
                    started_unix: r.started_unix,
                    max_idle,
                    sources: mix.spec.inputs.iter().map(|i| i.source.clone()).collect(),
                    watcher: Arc::new(watcher.abort_handle()),
                },
            );
        }
    }

    /// Stops a task on behalf of `user`.
    pub(super) async fn stop(
        &self,
        engine: &Engine,
        task_id: &str,
        user: &str,
    ) -> Result<(), ZegoError> {
        let _op = self.lock().await;
        {
            let tasks = self.tasks.lock().unwrap();
            let task = tasks.get(task_id).ok_or_else(|| {
                ZegoError::new(TASK_NOT_FOUND, format!("task {task_id:?} does not exist"))
            })?;
            if task.owner != user {
                return Err(ZegoError::new(
                    NOT_OWNER,
                    "the task belongs to another UserId",
                ));
            }
        }
        self.end(engine, task_id).await;
        Ok(())
    }

    /// Ends a task: its mix, its record, its watcher.
    async fn end(&self, engine: &Engine, task_id: &str) {
        let task = self.tasks.lock().unwrap().remove(task_id);
        if let Some(t) = task {
            t.watcher.abort();
        }
        store::delete_or_log(&*engine.store(), kind::ZEGO_TASK, task_id);
        let _ = engine.delete_mix(&mix_id(task_id)).await;
    }

    pub(super) fn duration(&self, task_id: &str) -> Option<Duration> {
        self.tasks
            .lock()
            .unwrap()
            .get(task_id)
            .map(|t| t.started.elapsed())
    }
}

/// Ends the task once none of its inputs has been live for `max_idle`.
async fn watch_idle(state: AppState, task_id: String, max_idle: Duration) {
    if !crate::api::idle::until_idle(&state.engine, &mix_id(&task_id), max_idle).await {
        return;
    }
    tracing::info!(task = %task_id, ?max_idle, "zego task idle; ending it");
    let _op = state.zego.lock().await;
    let task = state.zego.tasks.lock().unwrap().remove(&task_id);
    drop(task);
    store::delete_or_log(&*state.engine.store(), kind::ZEGO_TASK, &task_id);
    let _ = state.engine.delete_mix(&mix_id(&task_id)).await;
}
