//! A GStreamer pipeline as a supervised attempt: started by setting it PLAYING (on a blocking thread, never a
//! Tokio worker), ended by an error or an end of stream on its bus, stopped through [`super::teardown`].
//! Sessions wrap a [`PipelineRun`] in their own [`super::Attempt`], adding what counts as progress.

use futures::{future::BoxFuture, FutureExt, StreamExt};
use gst::prelude::*;

use super::{supervisor::End, teardown};

/// One pipeline of an attempt. Dropping it sets the pipeline to NULL wherever that happens.
pub struct PipelineRun {
    pipeline: teardown::NullOnDrop,
    /// An `appsrc` fed by Tessera that ends its stream cleanly on a requested stop: an output that unpublishes
    /// (FCUnpublish, deleteStream) instead of dropping the connection, so the server ends the stream at once.
    unpublish: Option<gst_app::AppSrc>,
}

/// How long a requested stop waits for an output's end of stream to be sent.
const UNPUBLISH_WAIT: gst::ClockTime = gst::ClockTime::from_seconds(1);

impl PipelineRun {
    pub fn new(pipeline: gst::Pipeline) -> Self {
        Self {
            pipeline: teardown::NullOnDrop(pipeline),
            unpublish: None,
        }
    }

    /// An output: on a requested stop, `appsrc` ends the stream before the pipeline goes down.
    pub fn unpublishing(mut self, appsrc: gst_app::AppSrc) -> Self {
        self.unpublish = Some(appsrc);
        self
    }

    pub fn pipeline(&self) -> &gst::Pipeline {
        &self.pipeline
    }

    /// Sets the pipeline PLAYING; the future resolves at its first error or end of stream. Blocking.
    pub fn start(&self) -> Result<BoxFuture<'static, End>, String> {
        let bus = self
            .pipeline
            .bus()
            .ok_or_else(|| "pipeline without bus".to_string())?;
        // Listening before PLAYING: an error while starting is not missed.
        let mut messages = bus.stream();
        let name = self.pipeline.name();
        self.pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| format!("cannot start: {e}"))?;
        Ok(async move {
            while let Some(msg) = messages.next().await {
                match msg.view() {
                    gst::MessageView::Error(err) => {
                        tracing::debug!(pipeline = %name, error = %err.error(), debug = ?err.debug(), src = ?msg.src().map(|s| s.path_string()), "pipeline error");
                        return End::Failed(describe_error(&err.error()));
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
    pub fn stop(self, by_request: bool) {
        if by_request {
            if let Some(appsrc) = &self.unpublish {
                let _ = appsrc.end_of_stream();
                if let Some(bus) = self.pipeline.bus() {
                    // The bus stream of the attempt is gone: its messages queue on the bus again.
                    let _ = bus.timed_pop_filtered(
                        UNPUBLISH_WAIT,
                        &[gst::MessageType::Eos, gst::MessageType::Error],
                    );
                }
            }
        }
        if let Err(e) = teardown::stop(&self.pipeline, by_request) {
            tracing::warn!(pipeline = %self.pipeline.name(), error = %e, "pipeline did not stop cleanly");
        }
    }
}

/// A short, safe description of a GStreamer error for status views (full details go to the log).
pub fn describe_error(err: &gst::glib::Error) -> String {
    err.message().chars().take(200).collect()
}
