//! What the engine, the relays and the dialects of one node share, built once at start (`server.rs`) and
//! handed to each: where records live, where events go, which outputs are taken.

use std::sync::Arc;

use crate::{
    control::Claims,
    events::EventBus,
    store::{memory::MemoryStore, Store},
};

#[derive(Clone)]
pub struct NodeParts {
    /// Durable records; each owner keeps its own kinds in it.
    pub store: Arc<dyn Store>,
    /// The node's event stream.
    pub events: EventBus,
    /// Output URLs in use, by mixes and relays alike.
    pub claims: Arc<Claims>,
    /// In a cluster: the cost this node has reserved for its tasks, which every create and change is admitted
    /// against. `None`: a single node (only `engine.max_mixes` limits it).
    pub ledger: Option<Arc<crate::cluster::ledger::Ledger>>,
}

impl NodeParts {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            events: EventBus::new(),
            claims: Arc::default(),
            ledger: None,
        }
    }

    /// Records kept in memory only (tests, `store.path = ""`).
    pub fn in_memory() -> Self {
        Self::new(Arc::new(MemoryStore::default()))
    }
}
