//! The cluster (issue 16) end to end: real etcd, nginx-rtmp reporting every publisher (tests/common/publishes.rs),
//! and several `tessera serve` processes with a `[cluster]` section (tests/common/cluster.rs). Each scenario is one
//! file:
//!
//! - `endpoint`: any node takes any dialect's request and forwards it to the task's owner; `x-tessera-node`;
//!   `GET /v1/cluster` on every node.
//! - `takeover`: SIGKILL the busiest node; its tasks publish again from the others within 10 s (p50/p95
//!   printed), ZEGO's owner and Sequence rules survive, never two publishers.
//! - `fencing`: a node frozen longer than its lease stops for good on the tasks it lost, then rejoins.
//! - `drain`: `POST /v1/cluster/drain`, `tessera drain` and SIGTERM move tasks one at a time and exit 0.
//! - `race`: one ZEGO StartMix sent to two nodes at once makes one task.
//! - `full`: a cluster without room answers the dialect's "full" and keeps nothing of the refused task.
//! - `etcd`: losing etcd's leader moves nothing; etcd paused longer than the lease fences every node, which
//!   rejoin when it is back.
//!
//! `harness` checks the pieces of the rig on their own (etcd, the recorder with nginx-rtmp), without Tessera.
//! Run: `cargo test --test cluster -- --test-threads=2` (needs `/usr/bin/etcd` and nginx with the rtmp module;
//! scripts/setup installs both). `TESSERA_NODE_LOG=tessera=debug` raises the nodes' log level.

#[path = "../common/mod.rs"]
mod common;

mod drain;
mod endpoint;
mod etcd;
mod fencing;
mod full;
mod harness;
mod race;
mod takeover;

use std::time::Duration;

/// How long a task may take to publish after it is created (inputs pulled, pipeline up, RTMP connected).
pub const T: Duration = Duration::from_secs(25);
