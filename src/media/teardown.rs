//! Stopping pipelines that hold an RTMP connection without leaking it.
//!
//! GStreamer 1.22's `rtmp2src` and `rtmp2sink` leak their connection when they are stopped while it is being
//! set up (TCP connect, handshake, `connect`, `play`/`publish`: about 140 ms on loopback with nginx-rtmp): the
//! pending command keeps the connection alive after the element's main loop has gone, so the socket stays
//! open for the life of the process, with a main context (an eventfd) and its buffers. Stopping an element that
//! is connected, or whose attempt has failed, releases everything. A mix deleted right after it was created, an
//! input whose last mix goes away while it reconnects, an output removed while it retries: each leaked one
//! socket, and a busy API client could exhaust the process's descriptors (tests/fault/storm.rs found it).
//!
//! So a pipeline that is stopped (rather than one whose session failed: its connection attempt is over) is set
//! to NULL through [`stop`], which first lets a connection attempt in progress finish: it waits until every RTMP
//! element has a connection (its `stats` count bytes) or the pipeline reports an error, for at most
//! [`CONNECT_WAIT`] (rtmp2's own connection timeout is 5 s). Pipelines without RTMP elements, and RTMP elements
//! that are connected, are stopped at once.

use std::time::Duration;

use gst::prelude::*;

/// The longest a stopped pipeline waits for its connection attempt to finish.
pub(crate) const CONNECT_WAIT: Duration = Duration::from_secs(6);

/// Whether an rtmp2 element has (or had) a connection: its statistics count bytes only then.
fn connected(element: &gst::Element) -> bool {
    element
        .property::<Option<gst::Structure>>("stats")
        .map(|s| {
            s.get::<u64>("in-bytes-total").unwrap_or(0)
                + s.get::<u64>("out-bytes-total").unwrap_or(0)
                > 0
        })
        .unwrap_or(true)
}

/// Sets `pipeline` to NULL. `stopped`: it is stopped while it may be connecting, so a connection attempt in
/// progress is let finish first (see the module docs) — until the pipeline reports an error (`failed`, set by
/// whoever watches its bus); `false` after its session failed (an error, an end of stream, a stall, a timeout:
/// no attempt is pending). Blocking: call it where blocking is allowed.
pub(crate) fn stop(
    pipeline: &gst::Pipeline,
    stopped: bool,
    failed: &std::sync::atomic::AtomicBool,
) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
    if stopped {
        let rtmp: Vec<gst::Element> = pipeline
            .iterate_recurse()
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| {
                e.factory()
                    .is_some_and(|f| matches!(f.name().as_str(), "rtmp2src" | "rtmp2sink"))
            })
            .collect();
        let deadline = std::time::Instant::now() + CONNECT_WAIT;
        while !rtmp.iter().all(connected) && std::time::Instant::now() < deadline {
            if failed.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    pipeline.set_state(gst::State::Null)
}

/// A session's pipeline, set to NULL when dropped wherever that happens. [`stop`] is the way out of a session;
/// this guard covers the ways around it: a task cancelled while its session runs (a runtime shutting down, an
/// aborted handle, a blocking stop that never got to run). GStreamer aborts the process when a pipeline that is
/// still PLAYING is disposed (seen once in the mix tests, on an output still connecting at shutdown).
pub(crate) struct NullOnDrop(pub gst::Pipeline);

impl std::ops::Deref for NullOnDrop {
    type Target = gst::Pipeline;
    fn deref(&self) -> &gst::Pipeline {
        &self.0
    }
}

impl Drop for NullOnDrop {
    fn drop(&mut self) {
        // A no-op after `stop`.
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// A pipeline being built: set to NULL when dropped unless [`NullUnlessBuilt::built`] was called, so a build that
/// fails half-way (after the pipeline went PLAYING) never disposes a playing pipeline.
pub(crate) struct NullUnlessBuilt(Option<gst::Pipeline>);

impl NullUnlessBuilt {
    pub(crate) fn new(pipeline: &gst::Pipeline) -> Self {
        Self(Some(pipeline.clone()))
    }

    /// The build succeeded: the pipeline's owner takes over.
    pub(crate) fn built(mut self) {
        self.0 = None;
    }
}

impl Drop for NullUnlessBuilt {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = p.set_state(gst::State::Null);
        }
    }
}
