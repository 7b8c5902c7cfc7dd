//! Integration-test harness: nginx-rtmp, synthetic publishers, output probes, Tessera in-process and a WebDriver
//! client for a headless Chromium; for the cluster, real etcd, a recorder of nginx-rtmp's publishers and a rig of
//! `tessera serve` nodes.
//!
//! Submodules are self-contained (they refer to each other via `super::`), so a test file that must not
//! depend on the tessera crate can include a subset (see `tests/harness.rs`): all but `rig`, `server`,
//! `process` and `cluster` do without it.
#![allow(dead_code, unused_imports)]

mod checks;
mod cluster;
mod etcd;
mod hevc;
mod metrics;
mod nginx;
mod probe;
mod process;
mod publisher;
mod publishes;
mod rig;
mod sei;
mod server;
mod sign;
mod slow_http;
mod util;
mod webdriver;

pub use checks::*;
pub use cluster::*;
pub use etcd::*;
pub use hevc::*;
pub use metrics::*;
pub use nginx::*;
pub use probe::*;
pub use process::*;
pub use publisher::*;
pub use publishes::*;
pub use rig::*;
pub use sei::*;
pub use server::*;
pub use sign::*;
pub use slow_http::*;
pub use util::*;
pub use webdriver::*;
