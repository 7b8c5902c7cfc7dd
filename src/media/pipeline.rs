//! A GStreamer pipeline as a supervised attempt: started by setting it PLAYING (on a blocking thread, never a
//! Tokio worker), ended by an error or an end of stream on its bus, stopped through [`super::teardown`].
//! Sessions wrap a [`PipelineRun`] in their own [`super::Attempt`], adding what counts as progress.

use std::sync::Arc;

use futures::{future::BoxFuture, FutureExt, StreamExt};
use gst::prelude::*;

use super::{
    bus::{self, Seen},
    gstlog,
    supervisor::End,
    teardown,
};

/// One pipeline of an attempt. Dropping it sets the pipeline to NULL wherever that happens.
pub struct PipelineRun {
    pipeline: teardown::NullOnDrop,
    /// What the bus said, as it said it (the bus watch's record of errors and ends of stream).
    seen: Arc<Seen>,
    /// Names the pipeline's streaming threads after its task (CPU accounting).
    tag: Option<String>,
}

impl PipelineRun {
    /// `tag` ([`super::cpu::tag`]) names the threads that work for it.
    pub fn new(pipeline: gst::Pipeline, tag: Option<String>) -> Self {
        Self {
            pipeline: teardown::NullOnDrop(pipeline),
            seen: Arc::default(),
            tag,
        }
    }

    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.pipeline
    }

    /// Sets the pipeline PLAYING; the future resolves at its first error or end of stream. Blocking.
    pub fn start(&mut self) -> Result<BoxFuture<'static, End>, String> {
        // Listening before PLAYING: an error while starting is not missed.
        let (seen, mut messages) = bus::watch(&self.pipeline, self.tag.clone())
            .ok_or_else(|| "pipeline without bus".to_string())?;
        self.seen = seen;
        let name = self.pipeline.name();
        let task = self
            .tag
            .as_deref()
            .map_or_else(gstlog::Task::default, gstlog::Task::of_tag);
        self.pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("cannot start: {e}"))?;
        Ok(async move {
            // Each error or warning on the bus is logged here, once, with its details and the pipeline's task
            // (GStreamer's echo of it is not forwarded again: see `gstlog`). The link's own line says what follows.
            while let Some(msg) = messages.next().await {
                match msg.view() {
                    gst::MessageView::Error(err) => {
                        tracing::warn!(
                            pipeline = %name,
                            mix = task.mix.as_deref(),
                            relay = task.relay.as_deref(),
                            url = task.url.as_deref(),
                            src = gstlog::source(&msg).as_deref(),
                            error = %err.error(),
                            debug = err.debug().as_deref(),
                            "pipeline error"
                        );
                        return End::Failed(describe_error(&err.error()));
                    }
                    gst::MessageView::Warning(w) => {
                        tracing::warn!(
                            pipeline = %name,
                            mix = task.mix.as_deref(),
                            relay = task.relay.as_deref(),
                            url = task.url.as_deref(),
                            src = gstlog::source(&msg).as_deref(),
                            warning = %w.error(),
                            debug = w.debug().as_deref(),
                            "pipeline warning"
                        );
                    }
                    gst::MessageView::Eos(_) => return End::Finished,
                    _ => {}
                }
            }
            End::Failed("bus closed".into())
        }
        .boxed())
    }

    /// Takes the pipeline down (see [`super::Attempt::stop`]). Blocking.
    pub fn stop(self, _by_request: bool) {
        if let Err(e) = self.pipeline.set_state(gst::State::Null) {
            tracing::warn!(pipeline = %self.pipeline.name(), error = %e, "pipeline did not stop cleanly");
        }
        bus::unwatch(&self.pipeline);
    }
}

/// A short, safe description of a GStreamer error for status views (full details go to the log).
pub fn describe_error(err: &gst::glib::Error) -> String {
    err.message().chars().take(200).collect()
}
