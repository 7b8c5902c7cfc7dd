//! Durable records of accepted tasks (mixes, relay projects, and what each dialect remembers of them), so a
//! restart — planned or a crash — resumes every task that was running.
//!
//! A record is a JSON document under a `(kind, id)` key, written before the request that made it is answered.
//! Each owner names its own kinds (the engine `mix`, the relays `relay`, each dialect its own): this module names
//! none. [`Store`] is the interface, asynchronous so that a store on a server (etcd, for a cluster) fits without
//! blocking the runtime; [`sqlite::SqliteStore`] is the embedded default (one file, written on a thread of its
//! own), [`memory::MemoryStore`] keeps records for the life of the process only (tests, and `store.path = ""`).
//! [`Records`] is the typed view an owner keeps of its kind.

pub mod memory;
pub mod sqlite;

use std::{marker::PhantomData, sync::Arc};

use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

/// A store that cannot read or write; the message is for the log, never for clients.
#[derive(Debug, thiserror::Error)]
#[error("state store: {0}")]
pub struct StoreError(pub String);

/// Where records live.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Creates or replaces a record.
    async fn put(&self, kind: &str, id: &str, record: Value) -> Result<(), StoreError>;
    /// Removes a record; removing one that is not there is not an error.
    async fn delete(&self, kind: &str, id: &str) -> Result<(), StoreError>;
    /// One record.
    async fn get(&self, kind: &str, id: &str) -> Result<Option<Value>, StoreError>;
    /// Every record of a kind, in id order.
    async fn load(&self, kind: &str) -> Result<Vec<(String, Value)>, StoreError>;
}

/// Opens the store the configuration names: SQLite at `path`, or memory only when it is empty. Logs where the
/// state lives. Blocking (it opens a file): call it at start.
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

/// The records of one kind, read and written as `T`.
pub struct Records<T> {
    store: Arc<dyn Store>,
    kind: &'static str,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for Records<T> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            kind: self.kind,
            _t: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Records<T> {
    pub fn new(store: Arc<dyn Store>, kind: &'static str) -> Self {
        Self {
            store,
            kind,
            _t: PhantomData,
        }
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub async fn put(&self, id: &str, record: &T) -> Result<(), StoreError> {
        let value = serde_json::to_value(record).map_err(|e| StoreError(e.to_string()))?;
        self.store.put(self.kind, id, value).await
    }

    pub async fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.store.delete(self.kind, id).await
    }

    /// One record; an unreadable one is logged and reads as absent.
    pub async fn get(&self, id: &str) -> Result<Option<T>, StoreError> {
        Ok(self
            .store
            .get(self.kind, id)
            .await?
            .and_then(|v| self.decode(id, v)))
    }

    /// Every record that reads as `T` (others are logged and skipped); nothing when the store cannot be read
    /// (logged).
    pub async fn load(&self) -> Vec<(String, T)> {
        match self.store.load(self.kind).await {
            Ok(records) => records
                .into_iter()
                .filter_map(|(id, v)| self.decode(&id, v).map(|t| (id, t)))
                .collect(),
            Err(e) => {
                tracing::error!(kind = self.kind, error = %e, "records not read");
                Vec::new()
            }
        }
    }

    /// [`Records::put`] for a record whose loss is survivable (a dialect's details of a task whose spec is
    /// recorded already): a failure is logged, not returned.
    pub async fn put_or_log(&self, id: &str, record: &T) {
        if let Err(e) = self.put(id, record).await {
            tracing::error!(kind = self.kind, %id, error = %e, "record not written");
        }
    }

    /// [`Records::delete`], logging a failure (the record is dropped at the next start when its task is gone).
    pub async fn delete_or_log(&self, id: &str) {
        if let Err(e) = self.delete(id).await {
            tracing::error!(kind = self.kind, %id, error = %e, "record not removed");
        }
    }

    fn decode(&self, id: &str, v: Value) -> Option<T> {
        match serde_json::from_value(v) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(kind = self.kind, %id, error = %e, "record unreadable; skipped");
                None
            }
        }
    }
}
