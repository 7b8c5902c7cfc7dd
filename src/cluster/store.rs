//! The records of a cluster's tasks in etcd (`records/{kind}/{id}`), behind the same [`Store`] the single node
//! keeps in SQLite. A write goes through only while this node's lease holds (a transaction on the lease of its
//! own node key), so a node that was fenced, or frozen past its lease, cannot overwrite what the new owner of
//! a task wrote.

use std::sync::Arc;

use etcd_client::{Compare, CompareOp, GetOptions, Txn, TxnOp};
use serde_json::Value;

use super::member::{timed, Member};
use crate::store::{Store, StoreError};

pub struct EtcdStore {
    member: Arc<Member>,
}

impl EtcdStore {
    pub fn new(member: Arc<Member>) -> Self {
        Self { member }
    }

    async fn guarded(&self, op: TxnOp) -> Result<(), StoreError> {
        let lease = self.member.lease();
        if lease == 0 || !crate::media::fence::open() {
            return Err(StoreError(
                "this node holds no cluster lease now; not written".into(),
            ));
        }
        let txn = Txn::new()
            .when([Compare::lease(
                self.member.keys.node(&self.member.node_id),
                CompareOp::Equal,
                lease,
            )])
            .and_then([op]);
        let mut client = self.member.client.clone();
        let done = timed(client.txn(txn)).await.map_err(StoreError)?;
        if done.succeeded() {
            Ok(())
        } else {
            Err(StoreError(
                "this node's cluster lease has ended; not written".into(),
            ))
        }
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn put(&self, kind: &str, id: &str, record: Value) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(&record).map_err(|e| StoreError(e.to_string()))?;
        self.guarded(TxnOp::put(self.member.keys.record(kind, id), bytes, None))
            .await
    }

    async fn delete(&self, kind: &str, id: &str) -> Result<(), StoreError> {
        self.guarded(TxnOp::delete(self.member.keys.record(kind, id), None))
            .await
    }

    async fn get(&self, kind: &str, id: &str) -> Result<Option<Value>, StoreError> {
        let mut client = self.member.client.clone();
        let got = timed(client.get(self.member.keys.record(kind, id), None))
            .await
            .map_err(StoreError)?;
        got.kvs()
            .first()
            .map(|kv| serde_json::from_slice(kv.value()).map_err(|e| StoreError(e.to_string())))
            .transpose()
    }

    async fn load(&self, kind: &str) -> Result<Vec<(String, Value)>, StoreError> {
        let prefix = self.member.keys.records(kind);
        let mut client = self.member.client.clone();
        let got = timed(client.get(prefix.clone(), Some(GetOptions::new().with_prefix())))
            .await
            .map_err(StoreError)?;
        let mut out = Vec::new();
        for kv in got.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            let Some(id) = key.strip_prefix(&prefix) else {
                continue;
            };
            match serde_json::from_slice(kv.value()) {
                Ok(v) => out.push((id.to_string(), v)),
                Err(e) => tracing::error!(%kind, %id, error = %e, "record unreadable; skipped"),
            }
        }
        Ok(out)
    }
}
