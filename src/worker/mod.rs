//! Worker processes: where mixes run, so that a crash, an abort or a runaway allocation in one mix's decoders
//! ends one worker, not the node.
//!
//! # Layout
//! - `wire`: the frames the serving process and a worker exchange over a socket pair (JSON heads, byte bodies).
//! - `pool`: the serving process's side — starting workers (`PROGRAM worker`, the socket on descriptor 3, killed
//!   with their parent), placing mixes (shared inputs together), reading their CPU and memory, enforcing
//!   `engine.max_worker_memory_mb`, passing the cluster fence on as it moves, and failing a dead worker's mixes so the
//!   engine's recovery starts them again.
//! - `remote`: one mix in a worker as the engine holds it (start, update, stop, status, snapshots, preview).
//! - `child`: the worker's side, `tessera worker`: mix pipelines and an input hub of its own.
//! - `usage`: CPU and memory of a process from `/proc`.
//!
//! The API, the dialects, the store, the cluster membership and relays stay in the serving process; the engine
//! keeps every decision (records, claims, phases, recovery) and only the pipelines move.

pub mod child;
pub mod pool;
pub mod remote;
pub mod usage;
pub mod wire;

pub use pool::{ProcessUsage, Workers};
pub use remote::RemoteMix;
pub use wire::Fault;
