//! One watch per pipeline bus: every message goes to the pipeline's async watcher in order and none stays on
//! the bus; errors and ends are also noted as flags for code that must not wait for a message the watcher
//! took (a stop); and each streaming thread is named after the pipeline's task when it starts working for it
//! ([`super::cpu`]).

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use futures::channel::mpsc;
use gst::prelude::*;

/// Flags set as the bus's messages arrive.
#[derive(Default)]
pub struct Seen {
    pub error: AtomicBool,
    pub eos: AtomicBool,
}

/// Installs the watch on `pipeline`'s bus (replacing any); `tag` names its streaming threads. Returns the flags
/// and the messages.
pub fn watch(
    pipeline: &gst::Pipeline,
    tag: Option<String>,
) -> Option<(Arc<Seen>, mpsc::UnboundedReceiver<gst::Message>)> {
    let bus = pipeline.bus()?;
    let (tx, rx) = mpsc::unbounded::<gst::Message>();
    let seen = Arc::new(Seen::default());
    let flags = seen.clone();
    bus.set_sync_handler(move |_, msg| {
        match msg.view() {
            gst::MessageView::Error(_) => flags.error.store(true, Ordering::SeqCst),
            gst::MessageView::Eos(_) => flags.eos.store(true, Ordering::SeqCst),
            gst::MessageView::StreamStatus(s) => {
                // Posted on the streaming thread itself as it starts a task.
                if let (Some(tag), gst::StreamStatusType::Enter) = (&tag, s.get().0) {
                    super::cpu::enter(tag);
                    // GStreamer names the thread after its task right after this message: the task's name
                    // starts with the tag, so threads that encoders and decoders start from it inherit the tag
                    // (and `top -H` shows whose a thread is).
                    if let Some(task) = s
                        .stream_status_object()
                        .and_then(|v| v.get::<gst::Task>().ok())
                    {
                        let name = format!("{tag}:{}", task.name());
                        if !task.name().starts_with(tag.as_str()) {
                            task.set_property("name", name);
                        }
                    }
                }
                return gst::BusSyncReply::Drop;
            }
            _ => {}
        }
        let _ = tx.unbounded_send(msg.clone());
        gst::BusSyncReply::Drop
    });
    Some((seen, rx))
}

/// Removes the watch (the bus queues messages again).
pub fn unwatch(pipeline: &gst::Pipeline) {
    if let Some(bus) = pipeline.bus() {
        bus.unset_sync_handler();
    }
}
