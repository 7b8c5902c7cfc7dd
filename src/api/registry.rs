//! The one shape every dialect keeps its tasks in (ZEGO tasks, Tencent mix sessions, CME projects): per task
//! id, the dialect's record (owner and vendor details, recorded in the store under the dialect's own kind), the
//! engine task it drives, and its idle rule.
//!
//! The registry follows the engine's event stream instead of polling: a task whose mix or relay project was
//! removed by other means (the native API) is forgotten, and a task whose inputs have all been gone for its
//! idle time (ZEGO's MaxIdleTime, Tencent's 15 minutes) is ended. Changes to one task happen under that task's
//! lock only.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::{broadcast::error::RecvError, OwnedMutexGuard};

use crate::{
    control::KeyedLocks,
    engine::Engine,
    events::{Event, EventKind, TaskRef},
    media::LinkState,
    store::{Records, Store},
};

/// How often idle tasks are looked at.
const IDLE_TICK: Duration = Duration::from_secs(1);

struct Entry<R> {
    record: R,
    /// The engine task this dialect task drives.
    task: TaskRef,
    /// `Some` for tasks that end when idle: how long they may be, and since when they are.
    idle: Option<Idle>,
}

#[derive(Clone, Copy)]
struct Idle {
    max: Duration,
    since: Option<Instant>,
}

pub struct TaskRegistry<R> {
    /// What the log calls these tasks ("zego task", …).
    name: &'static str,
    records: Records<R>,
    entries: Mutex<HashMap<String, Entry<R>>>,
    locks: KeyedLocks,
    engine: Engine,
}

impl<R> TaskRegistry<R>
where
    R: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A registry whose records are of `kind` in `store`; it starts following the engine's events.
    pub fn new(
        name: &'static str,
        kind: &'static str,
        store: Arc<dyn Store>,
        engine: Engine,
    ) -> Arc<Self> {
        let registry = Arc::new(Self {
            name,
            records: Records::new(store, kind),
            entries: Mutex::new(HashMap::new()),
            locks: KeyedLocks::default(),
            engine,
        });
        tokio::spawn(follow(Arc::downgrade(&registry)));
        registry
    }

    /// The lock of task `id`: checks and changes of one task happen under it, never across its preparation.
    pub async fn lock(&self, id: &str) -> OwnedMutexGuard<()> {
        self.locks.lock(id).await
    }

    pub fn get(&self, id: &str) -> Option<R> {
        self.entries
            .lock()
            .unwrap()
            .get(id)
            .map(|e| e.record.clone())
    }

    /// The first task for which `pred` holds.
    pub fn find(&self, pred: impl Fn(&str, &R) -> bool) -> Option<(String, R)> {
        self.entries
            .lock()
            .unwrap()
            .iter()
            .find(|(id, e)| pred(id, &e.record))
            .map(|(id, e)| (id.clone(), e.record.clone()))
    }

    /// Every task, sorted by id.
    pub fn all(&self) -> Vec<(String, R)> {
        let mut all: Vec<_> = self
            .entries
            .lock()
            .unwrap()
            .iter()
            .map(|(id, e)| (id.clone(), e.record.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Keeps (and records) task `id` driving `task`; `max_idle`: it ends once no input has been live that long.
    /// Its record is a dialect's detail of a task the engine recorded already: a store failure is logged.
    /// Call under the task's lock.
    pub async fn put(&self, id: &str, record: R, task: TaskRef, max_idle: Option<Duration>) {
        self.records.put_or_log(id, &record).await;
        let idle = max_idle.map(|max| Idle {
            max,
            since: (!self.any_input_live(&task)).then(Instant::now),
        });
        let mut entries = self.entries.lock().unwrap();
        match entries.get_mut(id) {
            Some(e) => {
                e.record = record;
                e.task = task;
                if let (Some(new), Some(old)) = (idle, e.idle.as_mut()) {
                    old.max = new.max;
                } else {
                    e.idle = idle;
                }
            }
            None => {
                entries.insert(id.to_string(), Entry { record, task, idle });
            }
        }
    }

    /// Forgets task `id` and its record. Call under the task's lock.
    pub async fn remove(&self, id: &str) -> Option<R> {
        let entry = self.entries.lock().unwrap().remove(id);
        self.records.delete_or_log(id).await;
        entry.map(|e| e.record)
    }

    /// Takes back the tasks recorded before a restart; `task_of` names the engine task each drives and
    /// `max_idle` its idle rule. A task whose engine task is gone is forgotten.
    pub async fn restore(
        &self,
        task_of: impl Fn(&str, &R) -> TaskRef,
        max_idle: impl Fn(&R) -> Option<Duration>,
        exists: impl Fn(&TaskRef) -> bool,
    ) {
        for (id, record) in self.records.load().await {
            let task = task_of(&id, &record);
            if !exists(&task) {
                tracing::info!(kind = self.name, %id, mix = task.mix(), relay = task.relay(), "recorded task's engine task is gone; forgotten");
                self.records.delete_or_log(&id).await;
                continue;
            }
            self.keep_recorded(id, record, task, &max_idle);
        }
    }

    /// Keeps a task taken back from its record; its idle time counts from now.
    fn keep_recorded(
        &self,
        id: String,
        record: R,
        task: TaskRef,
        max_idle: &impl Fn(&R) -> Option<Duration>,
    ) {
        let idle = max_idle(&record).map(|max| Idle {
            max,
            since: Some(Instant::now()),
        });
        self.entries
            .lock()
            .unwrap()
            .insert(id, Entry { record, task, idle });
    }

    /// Takes task `id` over from its record (a cluster node that now owns its engine task `task`). `false`:
    /// nothing is recorded under `id`.
    pub async fn adopt(
        &self,
        id: &str,
        task: TaskRef,
        max_idle: impl Fn(&R) -> Option<Duration>,
    ) -> bool {
        let _guard = self.lock(id).await;
        let record = match self.records.get(id).await {
            Ok(Some(r)) => r,
            Ok(None) => return false,
            Err(e) => {
                tracing::error!(kind = self.name, %id, error = %e, "task record not read; not taken over");
                return false;
            }
        };
        self.keep_recorded(id.to_string(), record, task, &max_idle);
        true
    }

    /// Forgets the tasks driving `task` without touching their records (another node of the cluster owns the
    /// engine task now).
    pub fn release(&self, task: &TaskRef) {
        self.entries.lock().unwrap().retain(|_, e| &e.task != task);
    }

    fn any_input_live(&self, task: &TaskRef) -> bool {
        match task {
            TaskRef::Mix(mix) => self
                .engine
                .get_mix(mix)
                .is_some_and(|v| v.status.inputs.iter().any(|i| i.state == LinkState::Live)),
            TaskRef::Relay(_) => true,
        }
    }

    /// The dialect task driving `task`.
    fn owner_of(&self, task: &TaskRef) -> Option<String> {
        self.entries
            .lock()
            .unwrap()
            .iter()
            .find(|(_, e)| &e.task == task)
            .map(|(id, _)| id.clone())
    }

    /// Looks again at whether the inputs of `task` (all tasks for `None`) are live.
    fn refresh_idle(&self, task: Option<&TaskRef>) {
        let tasks: Vec<TaskRef> = self
            .entries
            .lock()
            .unwrap()
            .values()
            .filter(|e| e.idle.is_some() && task.is_none_or(|t| &e.task == t))
            .map(|e| e.task.clone())
            .collect();
        for t in tasks {
            let live = self.any_input_live(&t);
            let mut entries = self.entries.lock().unwrap();
            for e in entries.values_mut().filter(|e| e.task == t) {
                if let Some(idle) = e.idle.as_mut() {
                    match (live, idle.since) {
                        (true, _) => idle.since = None,
                        (false, None) => idle.since = Some(Instant::now()),
                        (false, Some(_)) => {}
                    }
                }
            }
        }
    }

    /// Tasks idle for longer than their rule allows.
    fn expired(&self) -> Vec<(String, TaskRef, Duration)> {
        self.entries
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(id, e)| {
                let idle = e.idle?;
                (idle.since?.elapsed() >= idle.max).then(|| (id.clone(), e.task.clone(), idle.max))
            })
            .collect()
    }

    /// Ends an idle task: its record and its mix.
    async fn end_idle(self: Arc<Self>, id: String, task: TaskRef, max_idle: Duration) {
        let _guard = self.lock(&id).await;
        // Looked at again under the lock: a request may have changed it meanwhile.
        self.refresh_idle(Some(&task));
        let still = self.expired().into_iter().any(|(i, _, _)| i == id);
        if !still {
            return;
        }
        tracing::info!(kind = self.name, %id, mix = task.mix(), relay = task.relay(), ?max_idle, "task idle; ending it");
        self.remove(&id).await;
        if let TaskRef::Mix(mix) = &task {
            let _ = self.engine.delete_mix_because(mix, "idle").await;
        }
    }

    /// A task whose engine task was removed elsewhere is forgotten.
    async fn forget(self: Arc<Self>, task: TaskRef) {
        let Some(id) = self.owner_of(&task) else {
            return;
        };
        let _guard = self.lock(&id).await;
        let same = self
            .entries
            .lock()
            .unwrap()
            .get(&id)
            .is_some_and(|e| e.task == task);
        if same {
            tracing::info!(kind = self.name, %id, mix = task.mix(), relay = task.relay(), "its engine task was removed; task forgotten");
            self.remove(&id).await;
        }
    }
}

/// Whether an event says the engine task is gone for good (a shutdown is not: the task resumes on restart; nor
/// is a move to another node of a cluster).
fn removed(event: &Event) -> bool {
    match (&event.task, &event.kind) {
        (TaskRef::Mix(_), EventKind::MixStopped { reason }) => {
            reason != "shutdown" && reason != "moved"
        }
        (TaskRef::Relay(_), EventKind::RelayStopped { reason }) => reason == "deleted",
        _ => false,
    }
}

/// Follows the engine's events for `registry` until it is dropped.
async fn follow<R>(registry: Weak<TaskRegistry<R>>)
where
    R: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let mut events = match registry.upgrade() {
        Some(r) => r.engine.events().subscribe(),
        None => return,
    };
    let mut tick = tokio::time::interval(IDLE_TICK);
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(registry) = registry.upgrade() else { return };
                match event {
                    Ok(event) if removed(&event) => {
                        tokio::spawn(registry.forget(event.task));
                    }
                    Ok(Event { task, kind: EventKind::InputLive { .. } | EventKind::InputLost { .. }
                        | EventKind::InputConnecting { .. } | EventKind::MixStarted | EventKind::MixFailed { .. }, .. }) => {
                        registry.refresh_idle(Some(&task));
                    }
                    Ok(_) => {}
                    // Fell behind: look at every task again.
                    Err(RecvError::Lagged(_)) => registry.refresh_idle(None),
                    Err(RecvError::Closed) => return,
                }
            }
            _ = tick.tick() => {
                let Some(registry) = registry.upgrade() else { return };
                for (id, task, max) in registry.expired() {
                    tokio::spawn(registry.clone().end_idle(id, task, max));
                }
            }
        }
    }
}
