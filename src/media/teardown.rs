//! Pipelines set to NULL whichever way their owner goes: GStreamer aborts the process when a pipeline that is
//! still PLAYING is disposed.
//!
//! (Stopping used to wait for an RTMP connection being set up to finish first, because GStreamer 1.22's
//! `rtmp2src`/`rtmp2sink` leaked it otherwise. RTMP is Tessera's own client now ([`crate::rtmp`]), whose
//! connections close with their task, so a stop is immediate.)

use gst::prelude::*;

/// A session's pipeline, set to NULL when dropped wherever that happens. [`super::pipeline::PipelineRun::stop`]
/// is the way out of a session;
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
