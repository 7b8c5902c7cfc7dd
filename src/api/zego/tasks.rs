//! ZEGO tasks: who owns each, its last applied Sequence, when it started and its idle time, kept in the dialects'
//! one [`TaskRegistry`] shape (which ends a task once no input has been live for its MaxIdleTime).

use std::{sync::Arc, time::Duration};

use super::codes::*;
use crate::{api::registry::TaskRegistry, engine::Engine, events::TaskRef, store::Store};

/// The engine's id for a ZEGO task's mix (namespaced so native ids cannot clash with it).
pub fn mix_id(task_id: &str) -> String {
    format!("zego-{task_id}")
}

/// What the dialect remembers of a task (its mix is recorded by the engine).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TaskRecord {
    /// The UserId that created it; only it may update or stop the task.
    pub owner: String,
    /// Highest Sequence applied; a lower one is refused.
    pub sequence: i64,
    /// Unix seconds of the start.
    pub started_unix: i64,
    /// The idle time after which the task ends by itself.
    pub max_idle_s: u64,
}

/// The record kind of ZEGO tasks.
const KIND: &str = "zego_task";

pub type Tasks = TaskRegistry<TaskRecord>;

pub fn registry(store: Arc<dyn Store>, engine: Engine) -> Arc<Tasks> {
    TaskRegistry::new("zego task", KIND, store, engine)
}

/// Takes back the tasks recorded before a restart whose mixes the engine knows.
pub async fn restore(tasks: &Tasks, engine: &Engine) {
    tasks
        .restore(
            |id, _| TaskRef::Mix(mix_id(id)),
            |r| Some(Duration::from_secs(r.max_idle_s)),
            |task| engine.get_mix(task.id()).is_some(),
        )
        .await;
}

/// Checks that `user` may update `task` with `sequence`.
pub fn check_update(
    task: Option<&TaskRecord>,
    user: &str,
    sequence: Option<i64>,
) -> Result<(), ZegoError> {
    let Some(task) = task else {
        return Ok(());
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
    Ok(())
}

/// Stops a task on behalf of `user`.
pub async fn stop(
    tasks: &Tasks,
    engine: &Engine,
    task_id: &str,
    user: &str,
) -> Result<(), ZegoError> {
    let _task = tasks.lock(task_id).await;
    let task = tasks.get(task_id).ok_or_else(|| {
        ZegoError::new(TASK_NOT_FOUND, format!("task {task_id:?} does not exist"))
    })?;
    if task.owner != user {
        return Err(ZegoError::new(
            NOT_OWNER,
            "the task belongs to another UserId",
        ));
    }
    match engine.delete_mix_because(&mix_id(task_id), "stopped").await {
        Ok(()) => {}
        Err(e) if e.kind == crate::error::ErrorKind::NotFound => {}
        Err(_) => {
            return Err(ZegoError::new(
                TASK_FAILED,
                "the task could not be stopped; retry later",
            ))
        }
    }
    tasks.remove(task_id).await;
    Ok(())
}

/// How long task `task_id` has run.
pub fn duration(tasks: &Tasks, task_id: &str) -> Option<Duration> {
    let t = tasks.get(task_id)?;
    Some(Duration::from_secs(
        (crate::clock::unix_now() - t.started_unix).max(0) as u64,
    ))
}
