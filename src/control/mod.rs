//! Control-plane pieces the engine, the relays and the dialects share: per-task locks ([`KeyedLocks`]), the
//! output URLs tasks publish to ([`Claims`]), and request tickets ([`Tickets`]) that keep an older request from
//! overwriting a newer one that finished first.
//!
//! The rules they serve: no lock is held across network or file I/O (preparation happens before a task's lock
//! is taken); locks are per task, so a slow request for one task never delays another; and every change runs to
//! its end (requests are detached from their clients by the API layer), so what is acknowledged is what is
//! stored and running.

mod claims;
mod locks;
mod tickets;

pub use claims::{normalize_url, Claims, Conflict};
pub use locks::KeyedLocks;
pub use tickets::Tickets;
