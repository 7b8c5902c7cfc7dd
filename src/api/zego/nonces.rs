//! SignatureNonces seen within the timestamp window, kept in memory for the check and in the store so a replay
//! is refused after a restart too.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use crate::store::Records;

/// The record kind of seen nonces.
const KIND: &str = "zego_nonce";

#[derive(serde::Serialize, serde::Deserialize)]
struct Seen {
    /// Unix seconds.
    at: i64,
}

#[derive(Default)]
pub struct NonceCache {
    /// Nonce → Unix seconds it was seen.
    seen: Mutex<HashMap<String, i64>>,
    /// Where they are recorded; none: memory only (tests).
    records: Option<Records<Seen>>,
    /// Nonces past the window, to be removed from the store.
    expired: Mutex<Vec<String>>,
}

impl NonceCache {
    /// A cache recorded in `store`.
    pub fn recorded(store: std::sync::Arc<dyn crate::store::Store>) -> Self {
        Self {
            records: Some(Records::new(store, KIND)),
            ..Self::default()
        }
    }

    /// Takes back the nonces recorded within `window` of now; forgets the rest.
    pub async fn restore(&self, window: Duration) {
        let Some(records) = &self.records else { return };
        let now = crate::clock::unix_now();
        for (nonce, seen) in records.load().await {
            if now - seen.at <= window.as_secs() as i64 {
                self.seen.lock().unwrap().insert(nonce, seen.at);
            } else {
                records.delete_or_log(&nonce).await;
            }
        }
    }

    /// Records `nonce` in memory; false when it was already seen within `window`.
    pub fn insert(&self, nonce: &str, window: Duration) -> bool {
        let now = crate::clock::unix_now();
        let window = window.as_secs() as i64;
        let mut seen = self.seen.lock().unwrap();
        // Expired entries go in batches, so the map stays bounded by the request rate × window.
        if seen.len() % 1024 == 1023 {
            let mut expired = self.expired.lock().unwrap();
            seen.retain(|n, t| {
                let keep = now - *t <= window;
                if !keep {
                    expired.push(n.clone());
                }
                keep
            });
        }
        match seen.get(nonce) {
            Some(t) if now - *t <= window => false,
            _ => {
                seen.insert(nonce.to_string(), now);
                true
            }
        }
    }

    /// Records `nonce` in the store before its request is acted on; `Err` when it cannot be (the request is
    /// then refused: a replay must never pass because the store was down).
    pub async fn persist(&self, nonce: &str) -> Result<(), crate::store::StoreError> {
        let Some(records) = &self.records else {
            return Ok(());
        };
        let at = self
            .seen
            .lock()
            .unwrap()
            .get(nonce)
            .copied()
            .unwrap_or_else(crate::clock::unix_now);
        records.put(nonce, &Seen { at }).await?;
        let expired = std::mem::take(&mut *self.expired.lock().unwrap());
        for n in expired {
            records.delete_or_log(&n).await;
        }
        Ok(())
    }
}
