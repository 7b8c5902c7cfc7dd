//! Tessera as a cluster: the first, pure pieces.
//!
//! Issue 16 asks for many Tessera nodes behind one endpoint, coordinated through etcd: any node accepts any
//! dialect's request for any task; each task is placed by its cost on the node where it fits best, its cost
//! reserved when it is placed; a node that dies loses its etcd lease and its tasks publish again from another
//! node within seconds, while a node that cannot renew its lease stops its outputs before the lease can expire,
//! so no stream ever has two publishers; a draining node hands its tasks over one at a time. Without a
//! `[cluster]` section a node stays the single node it is today.
//!
//! What exists now is the part with no network in it, tested on its own (docs/cluster.md, "Placement"):
//! - [`cost`]: a task's cost in integer cost units (1000 = one core of the 2-core reference machine the
//!   benchmarks run on), computed from its work (decoded, drawn and encoded pixels per second, audio, outputs)
//!   with coefficients calibrated from the benchmark scenes; a node's capacity from its cores or its configuration.
//! - [`placement`]: the pure, deterministic placement function: which node a task goes to, given every node's
//!   capacity, reserved cost, state and the inputs it already decodes.
//! - [`sim`]: the placement simulation at scale (500 nodes, 20,000 tasks arriving and leaving) that the tests
//!   and `cargo bench --bench placement` run.
//!
//! etcd membership, leases, takeover, fencing and drain are not built yet.

pub mod cost;
pub mod placement;
pub mod sim;
