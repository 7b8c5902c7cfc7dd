//! Where the cluster keeps what in etcd, all under `cluster.prefix`:
//! - `nodes/{node}`: a node that is up ([`NodeRecord`]), on the node's lease: it vanishes when the node dies.
//! - `owners/{mix|relay}/{id}`: which node runs a task and what it reserved for it ([`OwnerRecord`]), on the
//!   owner's lease, so a dead node's tasks are orphaned when its lease ends. Created only if absent (one owner),
//!   changed only by a transaction on the key's lease (a stale node cannot write it).
//! - `records/{kind}/{id}`: the durable records of every task (the store's records; specs and what each
//!   dialect remembers), written only while the writer's lease holds.

use serde::{Deserialize, Serialize};

use crate::events::TaskRef;

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_string(),
        }
    }

    pub fn node(&self, id: &str) -> String {
        format!("{}/nodes/{id}", self.prefix)
    }

    pub fn nodes(&self) -> String {
        format!("{}/nodes/", self.prefix)
    }

    pub fn owner(&self, task: &TaskRef) -> String {
        format!("{}/owners/{}", self.prefix, task_path(task))
    }

    pub fn owners(&self) -> String {
        format!("{}/owners/", self.prefix)
    }

    /// The task an owner key names.
    pub fn task_of_owner(&self, key: &[u8]) -> Option<TaskRef> {
        let key = std::str::from_utf8(key).ok()?;
        let rest = key.strip_prefix(&self.owners())?;
        let (kind, id) = rest.split_once('/')?;
        match kind {
            "mix" => Some(TaskRef::Mix(id.to_string())),
            "relay" => Some(TaskRef::Relay(id.to_string())),
            _ => None,
        }
    }

    pub fn record(&self, kind: &str, id: &str) -> String {
        format!("{}/records/{kind}/{id}", self.prefix)
    }

    pub fn records(&self, kind: &str) -> String {
        format!("{}/records/{kind}/", self.prefix)
    }
}

fn task_path(task: &TaskRef) -> String {
    match task {
        TaskRef::Mix(id) => format!("mix/{id}"),
        TaskRef::Relay(id) => format!("relay/{id}"),
    }
}

/// The store's record kind of an engine task (the engine's and the relays' own kinds).
pub fn record_kind(task: &TaskRef) -> &'static str {
    match task {
        TaskRef::Mix(_) => "mix",
        TaskRef::Relay(_) => "relay",
    }
}

/// Whether a node takes new tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Active,
    /// Handing its tasks over; takes none.
    Draining,
}

/// A node that is up.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Where its API is reached (requests for its tasks are forwarded there).
    pub url: String,
    /// Cost units it takes.
    pub capacity: u64,
    pub state: NodeState,
    /// Its lease: a task handed to it is put on this lease, so the task is orphaned if the node dies.
    pub lease: i64,
}

/// Which node runs a task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OwnerRecord {
    pub node: String,
    /// Cost units reserved for it.
    pub cost: u64,
    /// Its sources (resolved URLs) with the part of the cost each takes: placement puts tasks that share them
    /// together.
    #[serde(default)]
    pub inputs: Vec<(String, u64)>,
    /// Whether it runs on its owner (false while it is being taken over or handed over).
    #[serde(default)]
    pub running: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_keys_name_their_task() {
        let k = Keys::new("/t");
        let m = TaskRef::Mix("zego-1".into());
        assert_eq!(k.owner(&m), "/t/owners/mix/zego-1");
        assert_eq!(k.task_of_owner(k.owner(&m).as_bytes()), Some(m));
        let r = TaskRef::Relay("cmepid_1".into());
        assert_eq!(k.task_of_owner(k.owner(&r).as_bytes()), Some(r));
        assert_eq!(k.task_of_owner(b"/t/nodes/a"), None);
    }
}
