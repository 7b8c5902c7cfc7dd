//! The cluster as one read of etcd shows it: the nodes that are up and who owns which task. Every node reads it
//! on its own (each pass of its reconcile loop, and on every change a watch reports), and routes requests and
//! places tasks by it; what one read shows may be a moment old, so every write that depends on it is a
//! transaction that fails if it changed.

use std::collections::{BTreeMap, HashMap};

use etcd_client::{Client, GetOptions};

use super::{
    keys::{Keys, NodeRecord, NodeState, OwnerRecord},
    member::timed,
    placement::{self, Demand, DemandInput, InputKey, NodeView},
};
use crate::events::TaskRef;

/// An owner key as read.
#[derive(Debug, Clone)]
pub struct Owned {
    pub record: OwnerRecord,
    /// The lease the key is on (its owner's, when the key is current).
    pub lease: i64,
}

#[derive(Debug, Clone, Default)]
pub struct View {
    pub nodes: BTreeMap<String, NodeRecord>,
    pub owners: HashMap<TaskRef, Owned>,
}

impl View {
    pub async fn read(client: &Client, keys: &Keys) -> Result<View, String> {
        let mut client = client.clone();
        let prefix = Some(GetOptions::new().with_prefix());
        let nodes = timed(client.get(keys.nodes(), prefix.clone())).await?;
        let owners = timed(client.get(keys.owners(), prefix)).await?;
        let mut view = View::default();
        for kv in nodes.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            let Some(id) = key.strip_prefix(&keys.nodes()) else {
                continue;
            };
            if let Ok(record) = serde_json::from_slice::<NodeRecord>(kv.value()) {
                view.nodes.insert(id.to_string(), record);
            }
        }
        for kv in owners.kvs() {
            let (Some(task), Ok(record)) = (
                keys.task_of_owner(kv.key()),
                serde_json::from_slice::<OwnerRecord>(kv.value()),
            ) else {
                continue;
            };
            view.owners.insert(
                task,
                Owned {
                    record,
                    lease: kv.lease(),
                },
            );
        }
        Ok(view)
    }

    /// The node that owns `task`, when it is up.
    pub fn owner(&self, task: &TaskRef) -> Option<&str> {
        let owned = self.owners.get(task)?;
        self.nodes
            .contains_key(&owned.record.node)
            .then_some(owned.record.node.as_str())
    }

    /// Every up node as placement sees it: its capacity, what its tasks reserved, the sources they decode.
    pub fn node_views(&self) -> Vec<NodeView> {
        let mut views: BTreeMap<&str, NodeView> = self
            .nodes
            .iter()
            .map(|(id, n)| {
                let mut v = NodeView::new(id.clone(), n.capacity);
                if n.state == NodeState::Draining {
                    v.state = placement::NodeState::Draining;
                }
                (id.as_str(), v)
            })
            .collect();
        for owned in self.owners.values() {
            if let Some(v) = views.get_mut(owned.record.node.as_str()) {
                v.reserve(&demand_of(&owned.record));
            }
        }
        views.into_values().collect()
    }

    /// Tasks per node.
    pub fn counts(&self) -> HashMap<&str, u64> {
        let mut counts = HashMap::new();
        for owned in self.owners.values() {
            *counts.entry(owned.record.node.as_str()).or_insert(0) += 1;
        }
        counts
    }
}

/// The demand an owner record reserves.
pub fn demand_of(record: &OwnerRecord) -> Demand {
    Demand {
        cost: record.cost,
        inputs: record
            .inputs
            .iter()
            .map(|(url, cost)| DemandInput {
                key: InputKey::new(url.clone()),
                cost: *cost,
            })
            .collect(),
        exclude: None,
    }
}

/// The owner record that reserves `demand` on `node`.
pub fn record_of(node: &str, demand: &Demand, running: bool) -> OwnerRecord {
    OwnerRecord {
        node: node.to_string(),
        cost: demand.cost,
        inputs: demand
            .inputs
            .iter()
            .map(|i| (i.key.url().to_string(), i.cost))
            .collect(),
        running,
    }
}

/// Where `demand` goes among `nodes` (placement's rules); `None`: no node has room.
pub fn place(nodes: &[NodeView], demand: &Demand) -> Option<String> {
    placement::place(demand, nodes)
        .ok()
        .map(|i| nodes[i].id.clone())
}

/// Reserves `demand` on node `id` of `nodes` (placing several tasks in one pass).
pub fn reserve(nodes: &mut [NodeView], id: &str, demand: &Demand) {
    if let Some(n) = nodes.iter_mut().find(|n| n.id == id) {
        n.reserve(demand);
    }
}
