//! The node's fence: until when this process may publish. In a cluster the node's etcd lease says how long its
//! tasks are its own; the membership loop moves the deadline on with every renewal it is sure of, and once the
//! deadline passes no output sends another tag or opens another connection, whatever else is happening (a
//! process resumed after SIGSTOP runs its streaming threads before any loop notices). A single node is never
//! fenced.
//!
//! The deadline is kept on the monotonic clock, which goes on while the process is stopped, so a frozen node
//! wakes up fenced.

use gst::prelude::*;
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        OnceLock,
    },
    time::{Duration, Instant},
};

/// Milliseconds since [`epoch`] until which outputs may publish; `u64::MAX`: no fence (a single node).
static DEADLINE_MS: AtomicU64 = AtomicU64::new(u64::MAX);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn ms_of(at: Instant) -> u64 {
    at.saturating_duration_since(epoch()).as_millis() as u64
}

/// Bumped at every change of the deadline, so a worker pool passes it on at once (a renewal that comes just
/// before the old deadline must reach the workers before it passes).
fn changes() -> &'static tokio::sync::watch::Sender<u64> {
    static C: OnceLock<tokio::sync::watch::Sender<u64>> = OnceLock::new();
    C.get_or_init(|| tokio::sync::watch::channel(0).0)
}

fn changed() {
    changes().send_modify(|v| *v = v.wrapping_add(1));
}

/// Wakes when the deadline changes.
pub fn subscribe() -> tokio::sync::watch::Receiver<u64> {
    changes().subscribe()
}

/// Whether outputs may publish now.
pub fn open() -> bool {
    let deadline = DEADLINE_MS.load(Ordering::Acquire);
    deadline == u64::MAX || ms_of(Instant::now()) < deadline
}

/// Outputs may publish until `until` (a lease renewal that was answered moves it on).
pub fn hold_until(until: Instant) {
    // The epoch is taken before the first deadline, so every deadline is after it.
    let _ = epoch();
    DEADLINE_MS.store(ms_of(until).max(1), Ordering::Release);
    changed();
}

/// Closes the fence now: nothing publishes until [`hold_until`] opens it again.
pub fn close() {
    let _ = epoch();
    DEADLINE_MS.store(0, Ordering::Release);
    changed();
}

/// Never fenced again (a worker told so by its parent, which is a single node).
pub fn unfence() {
    DEADLINE_MS.store(u64::MAX, Ordering::Release);
    changed();
}

/// Nanoseconds of CLOCK_MONOTONIC now. `Instant` reads the same clock on Linux, and every process on the
/// machine shares it, so a deadline in these units means the same moment in a worker as in its parent.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The fence as a moment of CLOCK_MONOTONIC (for a worker process): `None` when there is none, 0 when closed.
pub fn deadline_monotonic_ns() -> Option<u64> {
    let deadline = DEADLINE_MS.load(Ordering::Acquire);
    if deadline == u64::MAX {
        return None;
    }
    if deadline == 0 {
        return Some(0);
    }
    let left = deadline.saturating_sub(ms_of(Instant::now()));
    Some((monotonic_ns() + left * 1_000_000).max(1))
}

/// Outputs may publish until the CLOCK_MONOTONIC moment `ns` (what [`deadline_monotonic_ns`] gave the parent).
pub fn hold_until_monotonic_ns(ns: u64) {
    if ns == 0 {
        return close();
    }
    let left = Duration::from_nanos(ns.saturating_sub(monotonic_ns()));
    let now = Instant::now();
    match left.is_zero() {
        true => close(),
        false => hold_until(now + left),
    }
}

/// How long until the fence closes by itself; `None` when there is no fence.
pub fn remaining() -> Option<Duration> {
    let deadline = DEADLINE_MS.load(Ordering::Acquire);
    (deadline != u64::MAX)
        .then(|| Duration::from_millis(deadline.saturating_sub(ms_of(Instant::now()))))
}

/// A pad probe for an output's FLV stream: drops every buffer once the fence is closed.
pub fn guard_pad(pad: &gst::Pad) {
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::BUFFER_LIST,
        |_, _| {
            if open() {
                gst::PadProbeReturn::Ok
            } else {
                gst::PadProbeReturn::Drop
            }
        },
    );
}
