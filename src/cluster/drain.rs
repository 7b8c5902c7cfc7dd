//! A drain: this node takes no new task and hands its tasks to other nodes one at a time, each stopped here
//! before it starts there (one publisher at a time): the task is let go here, then its owner key is moved onto
//! the new node's lease in a transaction on this node's, and the next task waits until the new node runs it.
//! The process ends once nothing is left (or, for SIGTERM, when its time is up).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    view::{place, record_of},
    Cluster, Tasks,
};
use crate::events::TaskRef;

/// How long a hand-over waits for the new node to run the task before the next one goes.
const HANDED_OVER: Duration = Duration::from_secs(10);

/// Hands every task over, until none is left or `deadline`. Returns how many are left.
pub async fn drain(cluster: &Arc<Cluster>, tasks: &Arc<dyn Tasks>, deadline: Instant) -> usize {
    if let Err(e) = cluster.member.start_draining().await {
        tracing::warn!(error = %e, "draining not recorded in etcd; placement may still send tasks here");
    }
    tracing::info!(node = %cluster.node_id(), tasks = tasks.local().len(), "draining");
    loop {
        let mut left: Vec<TaskRef> = tasks.local();
        left.sort_by(|a, b| a.id().cmp(b.id()));
        let Some(task) = left.first().cloned() else {
            tracing::info!(node = %cluster.node_id(), "drained: no task left");
            return 0;
        };
        if Instant::now() >= deadline {
            tracing::warn!(node = %cluster.node_id(), left = left.len(), "drain time is up");
            return left.len();
        }
        if !hand_over(cluster, tasks, &task).await {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Moves one task to the node placement picks. `false` when it could not (no room, or etcd trouble).
async fn hand_over(cluster: &Arc<Cluster>, tasks: &Arc<dyn Tasks>, task: &TaskRef) -> bool {
    let view = match cluster.refresh().await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "cluster not read; hand-over waits");
            return false;
        }
    };
    let me = cluster.node_id().to_string();
    let mut demand = cluster.ledger.demand_of(task);
    demand.exclude = Some(me.clone());
    let mut nodes = view.node_views();
    // What this task reserved here does not count against the others.
    for n in nodes.iter_mut().filter(|n| n.id == me) {
        n.release(&demand);
    }
    let Some(target) = place(&nodes, &demand) else {
        tracing::warn!(
            mix = task.mix(),
            relay = task.relay(),
            "no other node has room for the task; it stays for now"
        );
        return false;
    };
    let Some(target_lease) = view.nodes.get(&target).map(|n| n.lease) else {
        return false;
    };
    let busy = cluster.busy(task);
    let began = Instant::now();
    // Stopped here first: its outputs have unpublished before the new owner can start.
    tasks.release(task).await;
    let moved = cluster
        .write_owner(task, &record_of(&target, &demand, false), target_lease)
        .await;
    drop(busy);
    match moved {
        Ok(true) => {}
        other => {
            tracing::warn!(
                mix = task.mix(),
                relay = task.relay(),
                ?other,
                "owner key not moved; the task is placed again as an orphan"
            );
            return true;
        }
    }
    cluster.ledger.release(task);
    tracing::info!(mix = task.mix(), relay = task.relay(), to = %target, "task handed over");
    // The next one waits until this one runs there.
    while began.elapsed() < HANDED_OVER {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Ok(v) = cluster.refresh().await {
            if v.owners
                .get(task)
                .is_none_or(|o| o.record.running || o.record.node != target)
            {
                tracing::info!(
                    mix = task.mix(),
                    relay = task.relay(),
                    ms = began.elapsed().as_millis() as u64,
                    "task runs on its new node"
                );
                return true;
            }
        }
    }
    true
}
