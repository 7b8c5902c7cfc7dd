//! Request tickets: every change to a task takes a number when it arrives; a change that is ready to be applied
//! after a newer one for the same task was applied is refused instead of undoing it. Requests prepare (fetch
//! pictures, probe inputs) before they take the task's lock, so they can finish out of order; the tickets put
//! them back in arrival order.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

/// How long an applied ticket is remembered: longer than any request prepares.
const KEEP: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct Tickets {
    next: AtomicU64,
    /// The newest ticket applied per task, deletes included, and when.
    applied: Mutex<HashMap<String, (u64, Instant)>>,
}

impl Tickets {
    /// A ticket for a request arriving now.
    pub fn take(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Whether a newer request than `ticket` was applied to `task`. Call under the task's lock.
    pub fn superseded(&self, task: &str, ticket: u64) -> bool {
        self.applied
            .lock()
            .unwrap()
            .get(task)
            .is_some_and(|(t, _)| *t > ticket)
    }

    /// Records that `ticket` was applied to `task`. Call under the task's lock.
    pub fn applied(&self, task: &str, ticket: u64) {
        let mut applied = self.applied.lock().unwrap();
        let now = Instant::now();
        if applied.len() > 256 {
            applied.retain(|_, (_, at)| now.duration_since(*at) < KEEP);
        }
        let entry = applied.entry(task.to_string()).or_insert((0, now));
        if ticket >= entry.0 {
            *entry = (ticket, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_request_is_superseded_by_a_newer_one_applied_first() {
        let t = Tickets::default();
        let older = t.take();
        let newer = t.take();
        assert!(newer > older);
        assert!(!t.superseded("m", older));
        t.applied("m", newer);
        assert!(t.superseded("m", older));
        assert!(!t.superseded("m", newer));
        assert!(!t.superseded("other", older));
        // Applying an older one (a rollback, say) never lowers the mark.
        t.applied("m", older);
        assert!(t.superseded("m", older));
    }
}
