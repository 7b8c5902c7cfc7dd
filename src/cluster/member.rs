//! This node's membership: its etcd lease, kept alive, and the fence that follows it.
//!
//! The node registers under `nodes/{id}` on a lease of `lease_ttl_ms` and renews it every quarter TTL. Every
//! renewal etcd answers moves the fence ([`crate::media::fence`]) to the moment the request was sent plus the
//! TTL minus a safety margin: etcd cannot expire the lease before then, so once the fence closes the node's
//! outputs stop before any other node may take its tasks over. A node that cannot renew in time is fenced: its
//! reconcile loop lets every task go, and only then joins again: it revokes the old lease (its tasks are placed
//! anew, possibly back here), registers on a new one and is active again.

use std::{
    sync::{
        atomic::{AtomicI64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use etcd_client::{Client, PutOptions};

use super::keys::{Keys, NodeRecord, NodeState};
use crate::media::fence;

/// What one etcd request may take before it counts as failed.
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// How this node stands in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Registered, its lease renewed: takes and runs tasks.
    Active,
    /// Handing its tasks over; takes none.
    Draining,
    /// Its lease could not be renewed in time: it runs nothing until it has a new one.
    Fenced,
}

pub struct Member {
    pub client: Client,
    pub keys: Keys,
    pub node_id: String,
    pub url: String,
    pub capacity: u64,
    ttl: Duration,
    /// The lease this node's keys are on; 0 while it has none.
    lease: AtomicI64,
    standing: Mutex<Standing>,
    /// Set by a drain: re-registrations keep saying so.
    draining: std::sync::atomic::AtomicBool,
    /// Woken when the standing changes (the reconcile loop acts on it at once).
    pub changed: tokio::sync::Notify,
}

/// Runs `op` against etcd with [`OP_TIMEOUT`].
pub async fn timed<T>(
    op: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(OP_TIMEOUT, op).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("etcd did not answer in time".into()),
    }
}

impl Member {
    /// Connects to etcd (retrying until it answers: a cluster node has nothing to do without it).
    pub async fn connect(config: &crate::config::ClusterConfig, capacity: u64) -> Self {
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(OP_TIMEOUT)
            .with_timeout(OP_TIMEOUT)
            .with_keep_alive(Duration::from_secs(1), OP_TIMEOUT);
        let mut delay = Duration::from_millis(200);
        let client = loop {
            match Client::connect(&config.etcd, Some(options.clone())).await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::warn!(error = %e, endpoints = ?config.etcd, "etcd not reachable; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        Self {
            client,
            keys: Keys::new(&config.prefix),
            node_id: config.node_id.clone(),
            url: config.advertise_url.trim_end_matches('/').to_string(),
            capacity,
            ttl: Duration::from_millis(config.lease_ttl_ms),
            lease: AtomicI64::new(0),
            standing: Mutex::new(Standing::Fenced),
            draining: Default::default(),
            changed: tokio::sync::Notify::new(),
        }
    }

    pub fn lease(&self) -> i64 {
        self.lease.load(Ordering::Acquire)
    }

    pub fn standing(&self) -> Standing {
        *self.standing.lock().unwrap()
    }

    fn set_standing(&self, s: Standing) {
        let old = std::mem::replace(&mut *self.standing.lock().unwrap(), s);
        if old != s {
            tracing::info!(node = %self.node_id, from = ?old, to = ?s, "cluster standing");
            self.changed.notify_waiters();
            self.changed.notify_one();
        }
    }

    /// How long before the lease's end the fence closes: time to stop every output.
    fn safety(&self) -> Duration {
        (self.ttl / 6).max(Duration::from_millis(500))
    }

    fn hold_from(&self, sent: Instant) {
        fence::hold_until(sent + self.ttl.saturating_sub(self.safety()));
    }

    /// Registers on a new lease. Revokes `old` first (best effort), so the tasks it held are placed anew.
    pub async fn join(&self) -> Result<(), String> {
        let mut old = self.lease.swap(0, Ordering::AcqRel);
        let mut client = self.client.clone();
        if old == 0 {
            // A previous run of this node (a crash, a quick restart) may still hold a lease: its tasks are
            // placed anew now rather than when it ends.
            old = self.previous_lease().await;
        }
        if old != 0 {
            let _ = timed(client.lease_revoke(old)).await;
        }
        let sent = Instant::now();
        let ttl_s = self.ttl.as_millis().div_ceil(1000) as i64;
        let grant = timed(client.lease_grant(ttl_s, None)).await?;
        let lease = grant.id();
        self.lease.store(lease, Ordering::Release);
        self.hold_from(sent);
        self.register().await?;
        let standing = if self.draining.load(Ordering::Acquire) {
            Standing::Draining
        } else {
            Standing::Active
        };
        tracing::info!(node = %self.node_id, lease, "joined the cluster");
        self.set_standing(standing);
        Ok(())
    }

    /// The lease of this node id's record when this process holds none (0: none, or unreadable).
    async fn previous_lease(&self) -> i64 {
        let mut client = self.client.clone();
        let Ok(got) = timed(client.get(self.keys.node(&self.node_id), None)).await else {
            return 0;
        };
        let Some(kv) = got.kvs().first() else {
            return 0;
        };
        tracing::warn!(
            node = %self.node_id,
            "this node id is registered already (a previous run, or another node configured with the same id): \
             its lease is revoked and its tasks are placed anew"
        );
        kv.lease()
    }

    /// Writes this node's record on its lease.
    async fn register(&self) -> Result<(), String> {
        let record = NodeRecord {
            url: self.url.clone(),
            capacity: self.capacity,
            state: if self.draining.load(Ordering::Acquire) {
                NodeState::Draining
            } else {
                NodeState::Active
            },
            lease: self.lease(),
        };
        let value = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        let mut client = self.client.clone();
        timed(client.put(
            self.keys.node(&self.node_id),
            value,
            Some(PutOptions::new().with_lease(self.lease())),
        ))
        .await?;
        Ok(())
    }

    /// Marks the node draining (in etcd too, so placement sends it nothing).
    pub async fn start_draining(&self) -> Result<(), String> {
        self.draining.store(true, Ordering::Release);
        if self.standing() == Standing::Active {
            self.set_standing(Standing::Draining);
        }
        self.register().await
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Ends the membership: the lease is revoked, so whatever this node still owned is placed elsewhere at once.
    pub async fn leave(&self) {
        let lease = self.lease.swap(0, Ordering::AcqRel);
        fence::close();
        if lease != 0 {
            let mut client = self.client.clone();
            match timed(client.lease_revoke(lease)).await {
                Ok(_) => tracing::info!(node = %self.node_id, "left the cluster"),
                Err(e) => {
                    tracing::warn!(node = %self.node_id, error = %e, "lease not revoked; it ends by itself")
                }
            }
        }
    }

    /// Keeps the lease alive for the life of the process; joins again after being fenced.
    pub async fn run(&self) {
        let tick = (self.ttl / 4).max(Duration::from_millis(250));
        loop {
            if self.lease() == 0 || self.standing() == Standing::Fenced {
                // The reconcile loop joins again once every task here has stopped.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let lease = self.lease();
            let mut client = self.client.clone();
            let (mut keeper, mut stream) = match timed(client.lease_keep_alive(lease)).await {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(node = %self.node_id, error = %e, "lease keep-alive not opened");
                    tokio::time::sleep(tick).await;
                    continue;
                }
            };
            loop {
                let sent = Instant::now();
                let answer = tokio::time::timeout(tick, async {
                    keeper.keep_alive().await?;
                    stream.message().await
                })
                .await;
                match answer {
                    Ok(Ok(Some(r))) if r.ttl() > 0 => self.hold_from(sent),
                    Ok(Ok(Some(_))) => {
                        tracing::warn!(node = %self.node_id, lease, "lease expired in etcd; fencing");
                        fence::close();
                        self.set_standing(Standing::Fenced);
                        break;
                    }
                    Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
                        tracing::warn!(node = %self.node_id, "lease renewal not answered; renewing on a new stream");
                        break;
                    }
                }
                if self.lease() != lease {
                    break;
                }
                tokio::time::sleep(tick.saturating_sub(sent.elapsed())).await;
            }
        }
    }

    /// Watches the fence: the moment it closes without a renewal, the node is fenced.
    pub async fn watch_fence(&self) {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if !fence::open() && self.standing() != Standing::Fenced && self.lease() != 0 {
                tracing::warn!(node = %self.node_id, "lease not renewed in time: fenced; every output stops");
                self.set_standing(Standing::Fenced);
            }
        }
    }
}
