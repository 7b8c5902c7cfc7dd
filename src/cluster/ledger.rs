//! What this node has promised: the cost reserved for each task it owns, against its capacity. A task is
//! admitted (its cost reserved) before anything of it starts, so two creates racing for the last room cannot
//! both pass; the cluster publishes the reservations in the owner keys, where placement on every node reads
//! them. Costs come from the specs ([`super::cost`]), never from measured CPU, so a burst is not over-admitted.

use std::{collections::HashMap, sync::Mutex};

use super::{
    cost,
    placement::{Demand, DemandInput, InputKey, NodeView},
};
use crate::{
    config::IngestConfig,
    error::{Error, ErrorKind},
    events::TaskRef,
    model::MixSpec,
    relay::RelaySpec,
};

pub struct Ledger {
    inner: Mutex<Book>,
    /// Woken when a reservation changes, so the cluster writes it to etcd soon.
    pub changed: tokio::sync::Notify,
}

struct Book {
    /// This node as placement sees it: capacity, reserved units, the inputs it decodes.
    node: NodeView,
    /// Each owned task's demand (what `node` has reserved for it).
    tasks: HashMap<TaskRef, Demand>,
}

impl Ledger {
    pub fn new(node_id: &str, capacity: u64) -> Self {
        Self {
            inner: Mutex::new(Book {
                node: NodeView::new(node_id, capacity),
                tasks: HashMap::new(),
            }),
            changed: tokio::sync::Notify::new(),
        }
    }

    /// Reserves `demand` for `task` (replacing what it had), or refuses with `LimitExceeded` when it does not
    /// fit in what is left.
    pub fn admit(&self, task: &TaskRef, demand: Demand) -> Result<(), Error> {
        {
            let mut book = self.inner.lock().unwrap();
            let old = book.tasks.remove(task);
            if let Some(old) = &old {
                book.node.release(old);
            }
            let adds = book.node.cost_of(&demand);
            if book.node.reserved + adds > book.node.capacity {
                let free = book.node.capacity.saturating_sub(book.node.reserved);
                if let Some(old) = old {
                    book.node.reserve(&old);
                    book.tasks.insert(task.clone(), old);
                }
                return Err(Error::new(
                    ErrorKind::LimitExceeded,
                    format!(
                        "the cluster has no room for this task now (it needs {adds} cost units; the node chosen has {free} free); retry later"
                    ),
                ));
            }
            book.node.reserve(&demand);
            book.tasks.insert(task.clone(), demand);
        }
        self.changed.notify_one();
        Ok(())
    }

    /// Reserves `demand` for `task` whether or not it fits: a task taken over from a dead node was placed
    /// here by the placement every node computes, and is not refused after the fact.
    pub fn force(&self, task: &TaskRef, demand: Demand) {
        {
            let mut book = self.inner.lock().unwrap();
            if let Some(old) = book.tasks.remove(task) {
                book.node.release(&old);
            }
            book.node.reserve(&demand);
            book.tasks.insert(task.clone(), demand);
        }
        self.changed.notify_one();
    }

    pub fn release(&self, task: &TaskRef) {
        let mut book = self.inner.lock().unwrap();
        if let Some(old) = book.tasks.remove(task) {
            book.node.release(&old);
        }
    }

    /// Drops the reservations of tasks for which `keep` is false (a create that failed after admission).
    pub fn retain(&self, keep: impl Fn(&TaskRef) -> bool) {
        let mut book = self.inner.lock().unwrap();
        let gone: Vec<TaskRef> = book.tasks.keys().filter(|t| !keep(t)).cloned().collect();
        for t in gone {
            if let Some(old) = book.tasks.remove(&t) {
                book.node.release(&old);
            }
        }
    }

    /// What `task` reserved here; a typical demand when it reserved nothing (yet).
    pub fn demand_of(&self, task: &TaskRef) -> Demand {
        self.inner
            .lock()
            .unwrap()
            .tasks
            .get(task)
            .cloned()
            .unwrap_or_else(|| typical(task))
    }

    /// (capacity, reserved units).
    pub fn totals(&self) -> (u64, u64) {
        let book = self.inner.lock().unwrap();
        (book.node.capacity, book.node.reserved)
    }
}

/// A mix's demand: its cost, and the part of it each source's pull and decoding takes (shared by mixes that
/// use the same source on one node, as a PK battle's two mixes do).
pub fn mix_demand(spec: &MixSpec, ingest: &IngestConfig) -> Demand {
    Demand {
        cost: cost::mix_cost(spec, |_| None),
        inputs: cost::mix_input_costs(spec, |_| None)
            .into_iter()
            .map(|(source, cost)| DemandInput {
                key: InputKey::new(crate::engine::resolve_input(&source, ingest)),
                cost,
            })
            .collect(),
        exclude: None,
    }
}

pub fn relay_demand(spec: &RelaySpec) -> Demand {
    Demand {
        cost: cost::relay_cost(spec),
        inputs: Vec::new(),
        exclude: None,
    }
}

/// What a request for a task not yet known is assumed to cost when it is placed (its spec is read by the node
/// it goes to, which reserves the real cost): a co-hosting mix of a 720p host and a guest, or a relay.
pub fn typical(task: &TaskRef) -> Demand {
    Demand {
        cost: match task {
            TaskRef::Mix(_) => 700,
            TaskRef::Relay(_) => 40,
        },
        inputs: Vec::new(),
        exclude: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(cost: u64, inputs: &[(&str, u64)]) -> Demand {
        Demand {
            cost,
            inputs: inputs
                .iter()
                .map(|(u, c)| DemandInput {
                    key: InputKey::new(*u),
                    cost: *c,
                })
                .collect(),
            exclude: None,
        }
    }

    #[test]
    fn admits_until_full_and_shares_inputs() {
        let l = Ledger::new("a", 1000);
        let a = TaskRef::Mix("a".into());
        let b = TaskRef::Mix("b".into());
        let c = TaskRef::Mix("c".into());
        l.admit(&a, demand(600, &[("rtmp://x/1", 300), ("rtmp://x/2", 200)]))
            .unwrap();
        // The PK partner decodes the same two sources: only its own 100 units are added.
        l.admit(&b, demand(600, &[("rtmp://x/1", 300), ("rtmp://x/2", 200)]))
            .unwrap();
        assert_eq!(l.totals(), (1000, 700));
        let e = l.admit(&c, demand(400, &[])).unwrap_err();
        assert_eq!(e.kind, ErrorKind::LimitExceeded);
        // A refused change keeps what the task had.
        let e = l.admit(&a, demand(900, &[])).unwrap_err();
        assert_eq!(e.kind, ErrorKind::LimitExceeded);
        assert_eq!(l.totals(), (1000, 700));
        l.retain(|t| t != &a);
        assert_eq!(l.totals(), (1000, 600));
        l.release(&b);
        assert_eq!(l.totals(), (1000, 0));
    }
}
