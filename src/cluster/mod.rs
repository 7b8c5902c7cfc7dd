//! Tessera as a cluster: many nodes behind one endpoint, coordinated through etcd (docs/cluster.md).
//!
//! Any node accepts any dialect's request for any task and sends it to the task's owner (`api::cluster`), so
//! the answer is the one a single node gives; a new task is placed by its cost on the node where it fits best
//! and its cost reserved there. Each node keeps an etcd lease: one that dies loses it, and its tasks publish
//! again from other nodes within seconds; one that cannot renew it stops its outputs before it can expire, so no
//! stream ever has two publishers. A draining node hands its tasks over one at a time. Without a `[cluster]`
//! section a node stays the single node it is, with its tasks in SQLite.
//!
//! - [`keys`]: the etcd keys and what they hold; [`member`]: the lease, its renewal and the fence;
//!   [`store`]: task records in etcd, written only while the lease holds.
//! - [`view`]: one read of who is up and who owns what; [`reconcile`]: the loop that makes this node run
//!   exactly what it owns (takes over orphans placed here, lets go of what it lost); [`drain`]: the hand-over.
//! - [`ledger`]: the cost this node reserved, which creates are admitted against.
//! - The pure pieces: [`cost`] (a task's cost in units, calibrated from the benchmark), [`placement`] (where a
//!   task goes) and [`sim`] (placement at scale).

pub mod cost;
pub mod drain;
pub mod keys;
pub mod ledger;
pub mod member;
pub mod placement;
pub mod reconcile;
pub mod sim;
pub mod store;
pub mod view;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp};

use self::{
    keys::OwnerRecord,
    ledger::Ledger,
    member::{timed, Member},
    view::View,
};
use crate::events::TaskRef;

/// What the cluster asks of the node it runs on: the tasks it holds, taking one over, letting one go.
#[async_trait::async_trait]
pub trait Tasks: Send + Sync {
    /// Every task this node holds (running or not).
    fn local(&self) -> Vec<TaskRef>;
    /// Starts `task` from its records. `Ok(false)`: it has none (it was deleted).
    async fn adopt(&self, task: &TaskRef) -> Result<bool, String>;
    /// Stops `task` here and forgets it, leaving its records.
    async fn release(&self, task: &TaskRef);
}

pub struct Cluster {
    pub member: Arc<Member>,
    pub ledger: Arc<Ledger>,
    /// The last view read, for routing requests (a moment old at most; ownership writes check again).
    view: Mutex<Arc<View>>,
    /// Tasks a request or a hand-over is working on here: the reconcile loop leaves them alone.
    busy: Mutex<HashMap<TaskRef, usize>>,
    /// Wakes the reconcile loop.
    pub kick: tokio::sync::Notify,
    /// Set once a drain has handed every task over: the process ends.
    pub drained: tokio::sync::watch::Sender<bool>,
    /// The requests forwarded to owners.
    pub http: reqwest::Client,
}

/// Marks a task busy for as long as it lives.
pub struct Busy {
    cluster: Arc<Cluster>,
    task: TaskRef,
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut busy = self.cluster.busy.lock().unwrap();
        if let Some(n) = busy.get_mut(&self.task) {
            *n -= 1;
            if *n == 0 {
                busy.remove(&self.task);
            }
        }
        drop(busy);
        self.cluster.kick.notify_one();
    }
}

impl Cluster {
    /// Connects to etcd and joins (retrying until etcd answers).
    pub async fn start(config: &crate::config::ClusterConfig) -> Arc<Cluster> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let capacity = cost::node_capacity(cores, config.capacity);
        let member = Arc::new(Member::connect(config, capacity).await);
        while let Err(e) = member.join().await {
            tracing::warn!(error = %e, "cannot join the cluster yet; retrying");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        tracing::info!(node = %member.node_id, capacity, url = %member.url, "cluster node up");
        let http = reqwest::Client::builder()
            .connect_timeout(member::OP_TIMEOUT)
            .build()
            .expect("HTTP client");
        Arc::new(Cluster {
            ledger: Arc::new(Ledger::new(&member.node_id, capacity)),
            member,
            view: Mutex::default(),
            busy: Mutex::default(),
            kick: tokio::sync::Notify::new(),
            drained: tokio::sync::watch::channel(false).0,
            http,
        })
    }

    pub fn node_id(&self) -> &str {
        &self.member.node_id
    }

    pub fn view(&self) -> Arc<View> {
        self.view.lock().unwrap().clone()
    }

    /// Reads the cluster again (and keeps it for routing).
    pub async fn refresh(&self) -> Result<Arc<View>, String> {
        let view = Arc::new(View::read(&self.member.client, &self.member.keys).await?);
        *self.view.lock().unwrap() = view.clone();
        Ok(view)
    }

    pub fn busy(self: &Arc<Self>, task: &TaskRef) -> Busy {
        *self.busy.lock().unwrap().entry(task.clone()).or_insert(0) += 1;
        Busy {
            cluster: self.clone(),
            task: task.clone(),
        }
    }

    pub fn is_busy(&self, task: &TaskRef) -> bool {
        self.busy.lock().unwrap().contains_key(task)
    }

    /// Takes ownership of `task` if nobody has it: `Ok(None)` when this node now owns it, `Ok(Some(node))`
    /// when `node` does.
    pub async fn claim(
        &self,
        task: &TaskRef,
        record: &OwnerRecord,
    ) -> Result<Option<String>, String> {
        let lease = self.member.lease();
        if lease == 0 || !crate::media::fence::open() {
            return Err("this node holds no cluster lease now".into());
        }
        let key = self.member.keys.owner(task);
        let value = serde_json::to_vec(record).map_err(|e| e.to_string())?;
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key, None)]);
        let mut client = self.member.client.clone();
        let done = timed(client.txn(txn)).await?;
        if done.succeeded() {
            return Ok(None);
        }
        let owner = done.op_responses().into_iter().find_map(|r| match r {
            etcd_client::TxnOpResponse::Get(g) => g
                .kvs()
                .first()
                .and_then(|kv| serde_json::from_slice::<OwnerRecord>(kv.value()).ok()),
            _ => None,
        });
        match owner {
            Some(o) if o.node == self.member.node_id => Ok(None),
            Some(o) => Ok(Some(o.node)),
            // Gone between the two reads: try again.
            None => Err("the task's owner changed while it was claimed".into()),
        }
    }

    /// Rewrites the owner key of a task this node owns (its lease must be the key's), putting it on `lease`:
    /// this node's own to update what it reserved, another node's to hand the task over. `false`: the key is
    /// not this node's.
    pub async fn write_owner(
        &self,
        task: &TaskRef,
        record: &OwnerRecord,
        lease: i64,
    ) -> Result<bool, String> {
        let mine = self.member.lease();
        if mine == 0 || !crate::media::fence::open() {
            return Ok(false);
        }
        let key = self.member.keys.owner(task);
        let value = serde_json::to_vec(record).map_err(|e| e.to_string())?;
        let txn = Txn::new()
            .when([Compare::lease(key.clone(), CompareOp::Equal, mine)])
            .and_then([TxnOp::put(
                key,
                value,
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let mut client = self.member.client.clone();
        Ok(timed(client.txn(txn)).await?.succeeded())
    }

    /// Deletes the owner key of a task this node owns (the task is gone).
    pub async fn disown(&self, task: &TaskRef) -> Result<bool, String> {
        let mine = self.member.lease();
        if mine == 0 {
            return Ok(false);
        }
        let key = self.member.keys.owner(task);
        let txn = Txn::new()
            .when([Compare::lease(key.clone(), CompareOp::Equal, mine)])
            .and_then([TxnOp::delete(key, None)]);
        let mut client = self.member.client.clone();
        Ok(timed(client.txn(txn)).await?.succeeded())
    }

    /// Whether `task` has records (it exists, whoever runs it), and if so the demand it makes: its spec read
    /// from its record, or a typical one when that is unreadable. One read of etcd.
    pub async fn recorded_demand(
        &self,
        task: &TaskRef,
        ingest: &crate::config::IngestConfig,
    ) -> Result<Option<placement::Demand>, String> {
        let key = self.member.keys.record(keys::record_kind(task), task.id());
        let mut client = self.member.client.clone();
        let got = timed(client.get(key, None)).await?;
        let Some(kv) = got.kvs().first() else {
            return Ok(None);
        };
        let parsed: Option<serde_json::Value> = serde_json::from_slice(kv.value()).ok();
        let demand = parsed.and_then(|v| {
            let spec = v.get("spec")?.clone();
            match task {
                TaskRef::Mix(_) => serde_json::from_value::<crate::model::MixSpec>(spec)
                    .ok()
                    .map(|s| ledger::mix_demand(&s, ingest)),
                TaskRef::Relay(_) => serde_json::from_value::<crate::relay::RelaySpec>(spec)
                    .ok()
                    .map(|s| ledger::relay_demand(&s)),
            }
        });
        Ok(Some(demand.unwrap_or_else(|| ledger::typical(task))))
    }
}
