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
    /// Inputs already checked for existence.
    pub sources: HashSet<Source>,
    /// Ends the idle watcher when the task goes.
    watcher: Arc<tokio::task::AbortHandle>,
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
        match tasks.get_mut(&req.task_id) {
            Some(t) => {
                t.sequence = t.sequence.max(sequence);
                t.sources = sources;
            }
            None => {
                let watcher =
                    tokio::spawn(watch_idle(state.clone(), req.task_id.clone(), max_idle));
                tasks.insert(
                    req.task_id.clone(),
                    Task {
                        owner: req.user_id.clone(),
                        sequence,
                        started: Instant::now(),
                        sources,
                        watcher: Arc::new(watcher.abort_handle()),
                    },
                );
            }
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
    let _ = state.engine.delete_mix(&mix_id(&task_id)).await;
}
