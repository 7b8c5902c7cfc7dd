//! The loop that makes this node run exactly what it owns, level-triggered: each pass reads who is up and who
//! owns what, and
//! 1. keeps the owner keys of the tasks it runs current (what it reserved; claims a task it created that has
//!    no owner yet), and lets go of any task another node owns now;
//! 2. starts each task it owns but does not run (handed over by a draining node, or claimed below), and
//!    deletes the owner key of one that has no records left (deleted);
//! 3. places every orphan (recorded, no owner: its node died) by the same placement every node computes, and
//!    claims those placed here (a transaction: one owner). An orphan whose owner this node saw go is placed
//!    at once; one never seen owned (a task being created) after a grace period.
//!
//! A fenced node lets every task go, then joins again on a new lease. Passes run every second, at once on any change a
//! watch of the owner and node keys reports, and whenever this node's standing or reservations change.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use etcd_client::{EventType, GetOptions, WatchOptions};

use super::{
    ledger,
    member::{timed, Standing},
    view::{place, record_of, reserve},
    Cluster, Tasks,
};
use crate::{config::Config, events::TaskRef, live::Live};

/// How long an orphan that was never seen owned waits before it is placed (a create on another node writes
/// its record a moment before it claims the task).
const GRACE: Duration = Duration::from_secs(3);
/// How long an orphan placed on another node may stay unclaimed before any node with room takes it.
const FALLBACK: Duration = Duration::from_secs(4);
/// The slowest pass rate.
const PERIOD: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Memory {
    /// When each current orphan was first seen.
    orphan_since: HashMap<TaskRef, Instant>,
    /// The tasks that had an owner in the last pass.
    owned_before: HashSet<TaskRef>,
}

pub async fn run(cluster: Arc<Cluster>, tasks: Arc<dyn Tasks>, config: Live<Config>) {
    tokio::spawn(watch(cluster.clone()));
    let mut memory = Memory::default();
    loop {
        tokio::select! {
            _ = cluster.kick.notified() => {}
            _ = cluster.member.changed.notified() => {}
            _ = cluster.ledger.changed.notified() => {}
            _ = tokio::time::sleep(PERIOD) => {}
        }
        // Let a burst of changes land in one pass.
        tokio::time::sleep(Duration::from_millis(20)).await;
        pass(&cluster, &tasks, &config, &mut memory).await;
    }
}

async fn pass(
    cluster: &Arc<Cluster>,
    tasks: &Arc<dyn Tasks>,
    config: &Live<Config>,
    memory: &mut Memory,
) {
    let member = &cluster.member;
    if member.standing() == Standing::Fenced || !crate::media::fence::open() {
        for task in tasks.local() {
            tracing::warn!(
                mix = task.mix(),
                relay = task.relay(),
                "fenced: letting the task go"
            );
            tasks.release(&task).await;
        }
        cluster.ledger.retain(|_| false);
        // Nothing runs here any more: join again (on a new lease; the tasks are placed anew).
        if let Err(e) = member.join().await {
            tracing::warn!(error = %e, "cannot join the cluster again yet; retrying");
        }
        return;
    }
    let view = match cluster.refresh().await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "cluster not read; this pass is skipped");
            return;
        }
    };
    let me = member.node_id.as_str();
    let lease = member.lease();
    let mine = |task: &TaskRef| {
        view.owners
            .get(task)
            .is_some_and(|o| o.lease == lease && o.record.node == me)
    };
    let local: HashSet<TaskRef> = tasks.local().into_iter().collect();

    // 1. What runs here.
    for task in &local {
        if cluster.is_busy(task) {
            continue;
        }
        let demand = cluster.ledger.demand_of(task);
        let current = record_of(me, &demand, true);
        match view.owners.get(task) {
            Some(_) if mine(task) => {
                if view.owners[task].record != current {
                    if let Err(e) = cluster.write_owner(task, &current, lease).await {
                        tracing::warn!(mix = task.mix(), relay = task.relay(), error = %e, "owner record not updated");
                    }
                }
            }
            Some(other) => {
                tracing::info!(mix = task.mix(), relay = task.relay(), owner = %other.record.node, "another node owns the task now; letting it go");
                tasks.release(task).await;
            }
            None => match cluster.claim(task, &current).await {
                Ok(None) => {}
                Ok(Some(owner)) => {
                    tracing::info!(mix = task.mix(), relay = task.relay(), %owner, "another node owns the task; letting it go");
                    tasks.release(task).await;
                }
                Err(e) => {
                    tracing::warn!(mix = task.mix(), relay = task.relay(), error = %e, "task not claimed")
                }
            },
        }
    }

    // 2. What this node owns but does not run.
    for task in view.owners.keys() {
        if mine(task) && !local.contains(task) && !cluster.is_busy(task) {
            adopt(cluster, tasks, task.clone());
        }
    }

    // 3. Orphans.
    let recorded = match recorded_tasks(cluster).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "task records not listed; orphans wait for the next pass");
            return;
        }
    };
    let orphans: Vec<TaskRef> = {
        let mut o: Vec<TaskRef> = recorded
            .into_iter()
            .filter(|t| !view.owners.contains_key(t) && !cluster.is_busy(t))
            .collect();
        o.sort_by(|a, b| (a.id(), a.mix().is_some()).cmp(&(b.id(), b.mix().is_some())));
        o
    };
    memory.orphan_since.retain(|t, _| orphans.contains(t));
    if member.standing() == Standing::Active && !orphans.is_empty() {
        let ingest = config.get().ingest.clone();
        let mut nodes = view.node_views();
        for task in orphans {
            let since = *memory
                .orphan_since
                .entry(task.clone())
                .or_insert_with(Instant::now);
            let lost_owner = memory.owned_before.contains(&task);
            if !lost_owner && since.elapsed() < GRACE {
                continue;
            }
            let demand = cluster
                .recorded_demand(&task, &ingest)
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| ledger::typical(&task));
            let target = place(&nodes, &demand);
            let here = match &target {
                Some(node) if node == me => true,
                // Placed on a node that has not taken it: any node with room does.
                Some(_) => since.elapsed() >= FALLBACK && fits_here(&nodes, me, &demand),
                None => {
                    tracing::warn!(
                        mix = task.mix(),
                        relay = task.relay(),
                        cost = demand.cost,
                        "orphaned task: no node has room for it now"
                    );
                    false
                }
            };
            if let Some(node) = &target {
                reserve(&mut nodes, node, &demand);
            }
            if !here {
                continue;
            }
            match cluster.claim(&task, &record_of(me, &demand, false)).await {
                Ok(None) => {
                    tracing::info!(
                        mix = task.mix(),
                        relay = task.relay(),
                        orphaned_ms = since.elapsed().as_millis() as u64,
                        "orphaned task placed here; taking it over"
                    );
                    cluster.ledger.force(&task, demand);
                    adopt(cluster, tasks, task.clone());
                }
                Ok(Some(_)) => {}
                Err(e) => {
                    tracing::warn!(mix = task.mix(), relay = task.relay(), error = %e, "orphan not claimed")
                }
            }
        }
    }
    memory.owned_before = view.owners.keys().cloned().collect();
    cluster
        .ledger
        .retain(|t| local.contains(t) || mine(t) || cluster.is_busy(t));
}

fn fits_here(
    nodes: &[super::placement::NodeView],
    me: &str,
    demand: &super::placement::Demand,
) -> bool {
    nodes.iter().any(|n| {
        n.id == me
            && n.state == super::placement::NodeState::Up
            && n.reserved + n.cost_of(demand) <= n.capacity
    })
}

/// Starts a task this node owns, in the background (marked busy meanwhile), and says so in its owner key.
fn adopt(cluster: &Arc<Cluster>, tasks: &Arc<dyn Tasks>, task: TaskRef) {
    let busy = cluster.busy(&task);
    let (cluster, tasks) = (cluster.clone(), tasks.clone());
    tokio::spawn(async move {
        let began = Instant::now();
        match tasks.adopt(&task).await {
            Ok(true) => {
                let demand = cluster.ledger.demand_of(&task);
                let record = record_of(&cluster.member.node_id, &demand, true);
                let _ = cluster
                    .write_owner(&task, &record, cluster.member.lease())
                    .await;
                tracing::info!(
                    mix = task.mix(),
                    relay = task.relay(),
                    ms = began.elapsed().as_millis() as u64,
                    "task taken over"
                );
            }
            Ok(false) => {
                tracing::info!(
                    mix = task.mix(),
                    relay = task.relay(),
                    "owned task has no records (deleted); disowned"
                );
                let _ = cluster.disown(&task).await;
            }
            Err(e) => {
                tracing::warn!(mix = task.mix(), relay = task.relay(), error = %e, "task not taken over; retried")
            }
        }
        drop(busy);
    });
}

/// Every task that has records: mixes and relay projects.
async fn recorded_tasks(cluster: &Cluster) -> Result<Vec<TaskRef>, String> {
    let keys = &cluster.member.keys;
    let mut out = Vec::new();
    for kind in ["mix", "relay"] {
        let prefix = keys.records(kind);
        let mut client = cluster.member.client.clone();
        let got = timed(client.get(
            prefix.clone(),
            Some(GetOptions::new().with_prefix().with_keys_only()),
        ))
        .await?;
        for kv in got.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            if let Some(id) = key.strip_prefix(&prefix) {
                out.push(match kind {
                    "mix" => TaskRef::Mix(id.to_string()),
                    _ => TaskRef::Relay(id.to_string()),
                });
            }
        }
    }
    Ok(out)
}

/// Wakes the loop on every change of an owner or node key (a node's lease ending deletes both).
async fn watch(cluster: Arc<Cluster>) {
    let keys = cluster.member.keys.clone();
    loop {
        let mut client = cluster.member.client.clone();
        let owners = WatchOptions::new().with_prefix().with_watch_id(1);
        let opened = timed(client.watch(keys.owners(), Some(owners))).await;
        let mut stream = match opened {
            Ok(stream) => stream,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let nodes = WatchOptions::new().with_prefix().with_watch_id(2);
        if timed(stream.watch(keys.nodes(), Some(nodes)))
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        while let Ok(Some(r)) = stream.message().await {
            if r.events()
                .iter()
                .any(|e| matches!(e.event_type(), EventType::Delete | EventType::Put))
            {
                cluster.kick.notify_one();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
