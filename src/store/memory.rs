//! Records kept in memory: nothing survives the process.

use std::{collections::BTreeMap, sync::Mutex};

use serde_json::Value;

use super::{Store, StoreError};

#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<BTreeMap<(String, String), Value>>,
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn put(&self, kind: &str, id: &str, record: Value) -> Result<(), StoreError> {
        self.records
            .lock()
            .unwrap()
            .insert((kind.to_string(), id.to_string()), record);
        Ok(())
    }

    async fn delete(&self, kind: &str, id: &str) -> Result<(), StoreError> {
        self.records
            .lock()
            .unwrap()
            .remove(&(kind.to_string(), id.to_string()));
        Ok(())
    }

    async fn get(&self, kind: &str, id: &str) -> Result<Option<Value>, StoreError> {
        Ok(self
            .records
            .lock()
            .unwrap()
            .get(&(kind.to_string(), id.to_string()))
            .cloned())
    }

    async fn load(&self, kind: &str) -> Result<Vec<(String, Value)>, StoreError> {
        Ok(self
            .records
            .lock()
            .unwrap()
            .iter()
            .filter(|((k, _), _)| k == kind)
            .map(|((_, id), v)| (id.clone(), v.clone()))
            .collect())
    }
}
