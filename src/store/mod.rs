//! Durable records of accepted tasks (mixes, relay projects, and what each dialect remembers of them), so a
//! restart — planned or a crash — resumes every task that was running.
//!
//! A record is a JSON document under a `(kind, id)` key, written before the request that made it is answered.
//! [`Store`] is the small interface the rest of Tessera sees; [`sqlite::SqliteStore`] is the embedded default
//! (one file, no server), [`memory::MemoryStore`] keeps records for the life of the process only (tests, and
//! `store.path = ""`). A networked store can implement the same trait later.

pub mod memory;
pub mod sqlite;

use std::sync::Arc;

use serde_json::Value;

/// The kinds of record, one per owner.
pub mod kind {
    /// A mix: its spec (`engine`).
    pub const MIX: &str = "mix";
    /// A relay project: its spec and whether it runs (`relay`).
    pub const RELAY: &str = "relay";
    /// A ZEGO task: owner, last applied Sequence, start time (`api::zego`); its mix is a [`MIX`].
    pub const ZEGO_TASK: &str = "zego_task";
    /// A Tencent mix session: owner and output id (`api::tencent`); its mix is a [`MIX`].
    pub const TENCENT_SESSION: &str = "tencent_session";
    /// A CME stream-connect project's metadata (`api::tencent::cme`); its relay is a [`RELAY`].
    pub const CME_PROJECT: &str = "cme_project";
}

/// Writes a dialect's record of a task. The task's spec is already durable (the engine recorded it first), so
/// a failure here is logged, not returned: after a restart the task still runs, only its dialect details
/// (owner, sequence) are missing.
pub fn put_or_log(store: &dyn Store, kind: &str, id: &str, record: &impl serde::Serialize) {
    let result = serde_json::to_value(record)
        .map_err(|e| StoreError(e.to_string()))
        .and_then(|v| store.put(kind, id, &v));
    if let Err(e) = result {
        tracing::error!(%kind, %id, error = %e, "record not written");
    }
}

/// Removes a dialect's record of a task; a failure is logged (the record is dropped at the next start when its
/// task is gone).
pub fn delete_or_log(store: &dyn Store, kind: &str, id: &str) {
    if let Err(e) = store.delete(kind, id) {
        tracing::error!(%kind, %id, error = %e, "record not removed");
    }
}

/// Every record of `kind` that reads as `T` (others are logged and skipped).
pub fn load_as<T: serde::de::DeserializeOwned>(store: &dyn Store, kind: &str) -> Vec<(String, T)> {
    match store.load(kind) {
        Ok(records) => records
            .into_iter()
            .filter_map(|(id, v)| match serde_json::from_value(v) {
                Ok(t) => Some((id, t)),
                Err(e) => {
                    tracing::error!(%kind, %id, error = %e, "record unreadable; skipped");
                    None
                }
            })
            .collect(),
        Err(e) => {
            tracing::error!(%kind, error = %e, "records not read");
            Vec::new()
        }
    }
}

/// A store that cannot read or write; the message is for the log, never for clients.
#[derive(Debug, thiserror::Error)]
#[error("state store: {0}")]
pub struct StoreError(pub String);

/// Where records live. Calls are short and synchronous (a local write); a networked implementation would
/// still have to answer before the request it records is acknowledged.
pub trait Store: Send + Sync {
    /// Creates or replaces a record.
    fn put(&self, kind: &str, id: &str, record: &Value) -> Result<(), StoreError>;
    /// Removes a record; removing one that is not there is not an error.
    fn delete(&self, kind: &str, id: &str) -> Result<(), StoreError>;
    /// Every record of a kind, in id order.
    fn load(&self, kind: &str) -> Result<Vec<(String, Value)>, StoreError>;
}

/// Opens the store the configuration names: SQLite at `path`, or memory only when it is empty. Logs where the
/// state lives.
pub fn open(config: &crate::config::StoreConfig) -> Result<Arc<dyn Store>, StoreError> {
    if config.path.is_empty() {
        tracing::info!(
            "state store: memory only (store.path is empty; a restart starts with no tasks)"
        );
        return Ok(Arc::new(memory::MemoryStore::default()));
    }
    let path = std::path::Path::new(&config.path);
    let store = sqlite::SqliteStore::open(path)?;
    let shown = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    tracing::info!("state store: {}", shown.display());
    Ok(Arc::new(store))
}
