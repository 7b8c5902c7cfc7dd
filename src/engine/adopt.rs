//! A mix moving between the nodes of a cluster: taken over from its record by the node that now owns it
//! ([`Engine::adopt_mix`]), and let go by the node that no longer does ([`Engine::release_mix`]), which stops it
//! and leaves its record for the new owner. A shutdown lets every mix go the same way.

use super::{Engine, MixRecord};
use crate::{
    error::{Error, ErrorKind},
    events::{EventKind, TaskRef},
};

impl Engine {
    /// Takes mix `id` over from its record: known at once, its pipeline started (a start that fails is
    /// retried with backoff, as after a restart). `Ok(false)`: there is no record (the mix was deleted).
    pub async fn adopt_mix(&self, id: &str) -> Result<bool, Error> {
        let record = self.inner.records.get(id).await.map_err(|e| {
            tracing::error!(mix = %id, error = %e, "mix record not read; not taken over");
            Error::new(ErrorKind::Internal, "the mix record could not be read")
        })?;
        let Some(MixRecord { spec }) = record else {
            return Ok(false);
        };
        let task = TaskRef::Mix(id.to_string());
        let claimed = {
            let _guard = self.inner.locks.lock(id).await;
            if self.inner.mixes.lock().unwrap().contains_key(id) {
                return Ok(true);
            }
            if let Some(ledger) = &self.inner.ledger {
                let ingest = &self.inner.config.get().ingest;
                ledger.force(&task, crate::cluster::ledger::mix_demand(&spec, ingest));
            }
            self.know_recorded(id, spec)
        };
        tracing::info!(mix = %id, "mix taken over from its record");
        if claimed {
            self.start_recorded(id, 1).await;
        }
        Ok(true)
    }

    /// Stops mix `id` here and forgets it, leaving its record (another node owns it now); its outputs end
    /// cleanly. `false` when it was not here.
    pub async fn release_mix(&self, id: &str) -> bool {
        self.let_go(id, "moved").await
    }

    /// Stops mix `id` and forgets it without touching its record; `reason` goes into the event.
    pub(super) async fn let_go(&self, id: &str, reason: &str) -> bool {
        let _guard = self.inner.locks.lock(id).await;
        let Some(mix) = self.inner.mixes.lock().unwrap().remove(id) else {
            return false;
        };
        let task = TaskRef::Mix(id.to_string());
        self.inner.claims.release(&task);
        if let Some(ledger) = &self.inner.ledger {
            ledger.release(&task);
        }
        if let Some(p) = mix.pipeline {
            self.stop_pipeline(p).await;
        }
        self.inner.events.publish(
            task,
            EventKind::MixStopped {
                reason: reason.to_string(),
            },
        );
        true
    }

    /// The ids of every mix this node holds.
    pub fn mix_ids(&self) -> Vec<String> {
        self.inner.mixes.lock().unwrap().keys().cloned().collect()
    }

    /// Says the node is ready without a restore (a cluster node takes its tasks through its reconcile loop).
    pub fn mark_ready(&self) {
        self.inner.ready.send_replace(true);
    }
}
