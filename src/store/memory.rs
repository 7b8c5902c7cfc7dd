//! Records kept in memory: nothing survives the process.

use std::{collections::BTreeMap, sync::Mutex};

use serde_json::Value;

use super::{Store, StoreError};

#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<BTreeMap<(String, String), Value>>,
}

impl Store for MemoryStore {
    fn put(&self, kind: &str, id: &str, record: &Value) -> Result<(), StoreError> {
        self.records
            .lock()
            .unwrap()
            .insert((kind.to_string(), id.to_string()), record.clone());
        Ok(())
    }

    fn delete(&self, kind: &str, id: &str) -> Result<(), StoreError> {
        self.records
            .lock()
            .unwrap()
            .remove(&(kind.to_string(), id.to_string()));
        Ok(())
    }

    fn load(&self, kind: &str) -> Result<Vec<(String, Value)>, StoreError> {
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
