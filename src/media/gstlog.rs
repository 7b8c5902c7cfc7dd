//! GStreamer's own warnings and errors in Tessera's log, with the pipeline and the task they came from.
//!
//! GStreamer logs through its debug system (`GST_DEBUG`). [`forward`] adds a log function that hands its warnings
//! and errors to `tracing`, target `gstreamer` (GStreamer ERROR → error, WARNING → warn; no other level is ever
//! forwarded), with these fields:
//! - `category`: the GStreamer debug category (`rtmp2sink`, `basesrc`, …);
//! - `object`: the path of the object the message is about (`/GstPipeline:mix-m1/GstX264Enc:x264enc0`);
//! - `pipeline`: the name of that object's top-level pipeline, and the task the pipeline works for: `mix` or
//!   `relay` (the task's id), or `url` for a shared input pull (redacted, see [`super::redact`]);
//! - `file`, `line`: where in GStreamer; `suppressed`, when records were dropped before this one.
//!
//! Without `GST_DEBUG`, GStreamer's own printer is removed and its threshold set to WARNING, so nothing below a
//! warning is even formatted; with `GST_DEBUG` set, GStreamer also prints what it asks for, in its own format.
//!
//! Pipelines are named after their task's tag ([`pipeline_name`], [`super::cpu::tag`]): `mix-m3`, `push-m3`,
//! `pull-i2`, `pull-main-r4`. An element's error or warning *message* is logged by that pipeline's bus watch
//! ([`super::pipeline`], `engine::mix`), once, with its details; GStreamer echoes it into its debug log as
//! `error: …` / `warning: …`, and for a pipeline with a task that echo is not forwarded again. At most
//! [`MAX_PER_SECOND`] records are forwarded per second (an element that warns on every buffer cannot flood the log);
//! the next one forwarded says how many were dropped.
//!
//! The log function runs on streaming threads, often while GStreamer holds locks: it filters by level before
//! anything is formatted, takes no GStreamer lock (names and parents are read as GStreamer's own printer reads them)
//! and holds no lock of its own across anything slow (a read lock on the tag table for one lookup).

use std::{
    ffi::CStr,
    sync::{
        atomic::{AtomicU64, Ordering},
        OnceLock,
    },
    time::Instant,
};

use gst::glib::{self, gobject_ffi};

use super::cpu::{self, Owner};
use crate::events::TaskRef;

/// The `tracing` target of forwarded records.
pub const TARGET: &str = "gstreamer";

/// Most records forwarded per second.
pub const MAX_PER_SECOND: u64 = 50;

/// The name of a pipeline that does `role` for the task tagged `tag` ([`cpu::tag`]): `mix-m3`, `push-m3`,
/// `pull-i2`, `pull-main-r4`; just `role` without a tag. The log maps the tag back to its task ([`Task`]).
pub fn pipeline_name(role: &str, tag: Option<&str>) -> String {
    match tag {
        Some(tag) => format!("{role}-{tag}"),
        None => role.to_string(),
    }
}

/// The task a pipeline works for, as log fields (`None` fields are left out of a line).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Task {
    pub mix: Option<String>,
    pub relay: Option<String>,
    /// A shared input pull: its URL, redacted.
    pub url: Option<String>,
}

impl Task {
    /// The task tagged `tag` ([`cpu::tag`]); empty for a tag nobody made.
    pub fn of_tag(tag: &str) -> Task {
        let shaped = tag.len() > 1
            && tag.starts_with(['m', 'r', 'i'])
            && tag[1..].bytes().all(|b| b.is_ascii_digit());
        if !shaped {
            return Task::default();
        }
        match cpu::owner_of(tag) {
            Some(Owner::Task(TaskRef::Mix(id))) => Task {
                mix: Some(id),
                ..Task::default()
            },
            Some(Owner::Task(TaskRef::Relay(id))) => Task {
                relay: Some(id),
                ..Task::default()
            },
            Some(Owner::Input(url)) => Task {
                url: Some(super::redact(&url)),
                ..Task::default()
            },
            None => Task::default(),
        }
    }

    /// The task of the pipeline named `name` ([`pipeline_name`]).
    pub fn of_pipeline(name: &str) -> Task {
        name.rsplit_once('-')
            .map_or_else(Task::default, |(_, tag)| Task::of_tag(tag))
    }

    /// Whether it names a task.
    pub fn is_known(&self) -> bool {
        self.mix.is_some() || self.relay.is_some() || self.url.is_some()
    }
}

/// The path of the object a bus message came from (`/GstPipeline:push-m3/GstRtmp2Sink:rtmp2sink0`), for a bus
/// watch's log line (not for the log function: it takes the objects' locks).
pub fn source(msg: &gst::Message) -> Option<String> {
    use gst::prelude::*;
    msg.src().map(|s| s.path_string().to_string())
}

/// Forwards GStreamer's warnings and errors to `tracing` from now on (once per process; later calls do nothing).
/// Initialises GStreamer; without it (not installed), nothing is forwarded and the engine's start says why.
pub fn forward() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        if gst::init().is_err() {
            return;
        }
        if std::env::var_os("GST_DEBUG").is_none() {
            // GStreamer's printer would write the same warnings again, in its own format.
            gst::log::remove_default_log_function();
            gst::log::set_default_threshold(gst::DebugLevel::Warning);
        }
        gst::log::add_log_function(log);
    });
}

/// GStreamer's log function.
fn log(
    category: gst::DebugCategory,
    level: gst::DebugLevel,
    file: &glib::GStr,
    _function: &glib::GStr,
    line: u32,
    object: Option<&gst::log::LoggedObject>,
    message: &gst::DebugMessage,
) {
    let error = match level {
        gst::DebugLevel::Error => true,
        gst::DebugLevel::Warning => false,
        _ => return,
    };
    let wanted = if error {
        tracing::enabled!(target: TARGET, tracing::Level::ERROR)
    } else {
        tracing::enabled!(target: TARGET, tracing::Level::WARN)
    };
    if !wanted {
        return;
    }
    let Some(text) = message.get() else {
        return;
    };
    let text = text.as_str();
    // SAFETY: GStreamer calls its log functions with a live object (or none).
    let (path, pipeline) = match object.and_then(|o| unsafe { describe(o.as_ptr()) }) {
        Some((path, pipeline)) => (Some(path), pipeline),
        None => (None, None),
    };
    let task = pipeline
        .as_deref()
        .map_or_else(Task::default, Task::of_pipeline);
    if !error && task.is_known() && is_message_echo(text) {
        return;
    }
    let Some(suppressed) = admit() else {
        return;
    };
    let suppressed = (suppressed > 0).then_some(suppressed);
    macro_rules! emit {
        ($level:expr) => {
            tracing::event!(
                target: TARGET,
                $level,
                category = category.name(),
                object = path.as_deref(),
                pipeline = pipeline.as_deref(),
                mix = task.mix.as_deref(),
                relay = task.relay.as_deref(),
                url = task.url.as_deref(),
                file = file.as_str(),
                line,
                suppressed,
                "{text}"
            )
        };
    }
    if error {
        emit!(tracing::Level::ERROR);
    } else {
        emit!(tracing::Level::WARN);
    }
}

/// Whether `text` is what `GST_ELEMENT_ERROR` / `GST_ELEMENT_WARNING` write into the debug log (at WARNING) as they
/// post the message on the bus.
fn is_message_echo(text: &str) -> bool {
    text.starts_with("error: ") || text.starts_with("warning: ")
}

/// Admits one record within [`MAX_PER_SECOND`]; returns how many were dropped since the last one admitted.
fn admit() -> Option<u64> {
    static START: OnceLock<Instant> = OnceLock::new();
    static SECOND: AtomicU64 = AtomicU64::new(0);
    static COUNT: AtomicU64 = AtomicU64::new(0);
    static DROPPED: AtomicU64 = AtomicU64::new(0);
    let now = START.get_or_init(Instant::now).elapsed().as_secs();
    let second = SECOND.load(Ordering::Relaxed);
    if second != now
        && SECOND
            .compare_exchange(second, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        COUNT.store(0, Ordering::Relaxed);
    }
    if COUNT.fetch_add(1, Ordering::Relaxed) < MAX_PER_SECOND {
        Some(DROPPED.swap(0, Ordering::Relaxed))
    } else {
        DROPPED.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// `object`'s path as `gst_object_get_path_string` writes it (`/GstPipeline:p/GstFlvMux:mux.GstPad:src`) and the
/// name of its top-level object when that is a pipeline; `None` when it is no `GstObject`.
///
/// Parents and names are read without the objects' locks, as GStreamer's own log printer reads them: the log
/// function is often called with one of those locks held, and taking it again would deadlock.
///
/// # Safety
/// `object` must point to a live `GObject`.
unsafe fn describe(object: *mut gobject_ffi::GObject) -> Option<(String, Option<String>)> {
    unsafe {
        let is_a = |o: *mut gst::ffi::GstObject, t: glib::ffi::GType| {
            gobject_ffi::g_type_check_instance_is_a(o as *mut gobject_ffi::GTypeInstance, t)
                != glib::ffi::GFALSE
        };
        let object = object as *mut gst::ffi::GstObject;
        if !is_a(object, gst::ffi::gst_object_get_type()) {
            return None;
        }
        let mut chain = Vec::with_capacity(8);
        let mut at = object;
        // Bounded: a parent cycle cannot exist, but a torn read must not loop.
        while !at.is_null() && chain.len() < 64 {
            chain.push(at);
            at = (*at).parent;
        }
        let text = |p: *const std::ffi::c_char| {
            if p.is_null() {
                "(null)"
            } else {
                CStr::from_ptr(p).to_str().unwrap_or("(invalid)")
            }
        };
        let mut path = String::with_capacity(24 * chain.len());
        for &o in chain.iter().rev() {
            path.push(if is_a(o, gst::ffi::gst_pad_get_type()) {
                '.'
            } else {
                '/'
            });
            path.push_str(text(gobject_ffi::g_type_name_from_instance(
                o as *mut gobject_ffi::GTypeInstance,
            )));
            path.push(':');
            path.push_str(text((*o).name));
        }
        let top = *chain.last()?;
        let pipeline =
            is_a(top, gst::ffi::gst_pipeline_get_type()).then(|| text((*top).name).to_string());
        Some((path, pipeline))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use gst::prelude::*;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// One `gstreamer` record: its level and fields.
    #[derive(Debug, Clone)]
    struct Record {
        level: tracing::Level,
        fields: std::collections::BTreeMap<String, String>,
    }

    /// Keeps the records with target `gstreamer`.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<Record>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct Fields<'a>(&'a mut std::collections::BTreeMap<String, String>);
            impl tracing::field::Visit for Fields<'_> {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                    self.0.insert(f.name().into(), format!("{v:?}"));
                }
                fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                    self.0.insert(f.name().into(), v.into());
                }
            }
            if event.metadata().target() != TARGET {
                return;
            }
            let mut fields = Default::default();
            event.record(&mut Fields(&mut fields));
            self.0.lock().unwrap().push(Record {
                level: *event.metadata().level(),
                fields,
            });
        }
    }

    impl Capture {
        /// The records `f` logged on this thread.
        fn during(f: impl FnOnce()) -> Vec<Record> {
            let capture = Capture::default();
            let subscriber = tracing_subscriber::registry().with(capture.clone());
            tracing::subscriber::with_default(subscriber, f);
            let records = capture.0.lock().unwrap().clone();
            records
        }
    }

    /// `filesrc` on a file that does not exist, in a pipeline called `name`: its error is raised on the thread
    /// that sets the pipeline going.
    fn missing_file(name: &str) -> (gst::Pipeline, gst::Element) {
        let pipeline = gst::Pipeline::with_name(name);
        let src = gst::ElementFactory::make("filesrc")
            .property("location", "/nonexistent/tessera-gstlog-test.flv")
            .build()
            .unwrap();
        let sink = gst::ElementFactory::make("fakesink").build().unwrap();
        pipeline.add_many([&src, &sink]).unwrap();
        src.link(&sink).unwrap();
        (pipeline, src)
    }

    #[test]
    fn pipeline_names_carry_the_task() {
        let tag = cpu::tag(Owner::Task(TaskRef::Mix("gstlog-names".into())));
        let relay = cpu::tag(Owner::Task(TaskRef::Relay("gstlog-relay".into())));
        let input = cpu::tag(Owner::Input("rtmp://u:p@h:1935/live/key?t=1".into()));
        let mix = Task::of_pipeline(&pipeline_name("push", Some(&tag)));
        assert_eq!(mix.mix.as_deref(), Some("gstlog-names"));
        let relay = Task::of_pipeline(&pipeline_name("pull-main", Some(&relay)));
        assert_eq!(relay.relay.as_deref(), Some("gstlog-relay"));
        let input = Task::of_pipeline(&pipeline_name("pull", Some(&input)));
        assert_eq!(input.url.as_deref(), Some("rtmp://h:1935/live/…"));
        for name in [
            "still",
            "mix-",
            "mix-m",
            "pull-x3",
            "mix-m999999",
            "relay-pull-main",
        ] {
            assert!(!Task::of_pipeline(name).is_known(), "{name}");
        }
    }

    /// A real pipeline's GStreamer warning reaches `tracing` with the element's path, the pipeline and its task.
    #[test]
    fn gstreamer_warnings_reach_the_log_with_their_pipeline() {
        gst::init().unwrap();
        forward();
        if gst::log::get_default_threshold() < gst::DebugLevel::Warning {
            // GST_DEBUG=0 or "none" in this environment: GStreamer logs nothing to forward.
            eprintln!("GST_DEBUG silences GStreamer's warnings; skipped");
            return;
        }

        // A pipeline without a task: the filesrc's error is forwarded as GStreamer logs it.
        let (pipeline, _) = missing_file("gstlog-plain");
        let records = Capture::during(|| {
            let _ = pipeline.set_state(gst::State::Paused);
        });
        pipeline.set_state(gst::State::Null).unwrap();
        let record = records
            .iter()
            .find(|r| r.fields["message"].contains("No such file"))
            .unwrap_or_else(|| panic!("no filesrc warning in {records:#?}"));
        assert_eq!(record.level, tracing::Level::WARN);
        assert_eq!(record.fields["category"], "filesrc");
        assert_eq!(record.fields["pipeline"], "gstlog-plain");
        assert!(
            record.fields["object"].starts_with("/GstPipeline:gstlog-plain/GstFileSrc:"),
            "{record:?}"
        );
        assert!(!record.fields.contains_key("mix"), "{record:?}");

        // A mix's pipeline: the element's error is its bus watch's to log, not forwarded again; a warning of its
        // own is forwarded with the mix's id.
        let tag = cpu::tag(Owner::Task(TaskRef::Mix("gstlog-mix".into())));
        let name = pipeline_name("mix", Some(&tag));
        let (pipeline, src) = missing_file(&name);
        let category = gst::DebugCategory::new(
            "tessera-test",
            gst::DebugColorFlags::empty(),
            Some("Tessera's tests"),
        );
        let pad = src.static_pad("src").unwrap();
        let records = Capture::during(|| {
            let _ = pipeline.set_state(gst::State::Paused);
            gst::warning!(category, obj = &src, "something odd");
            gst::error!(category, obj = &pad, "something bad");
        });
        pipeline.set_state(gst::State::Null).unwrap();
        assert!(
            !records
                .iter()
                .any(|r| r.fields["message"].contains("No such file")),
            "{records:#?}"
        );
        let warning = records
            .iter()
            .find(|r| r.fields["message"] == "something odd")
            .unwrap_or_else(|| panic!("no warning in {records:#?}"));
        assert_eq!(warning.level, tracing::Level::WARN);
        assert_eq!(warning.fields["category"], "tessera-test");
        assert_eq!(warning.fields["pipeline"], name);
        assert_eq!(warning.fields["mix"], "gstlog-mix");
        let error = records
            .iter()
            .find(|r| r.fields["message"] == "something bad")
            .unwrap_or_else(|| panic!("no error in {records:#?}"));
        assert_eq!(error.level, tracing::Level::ERROR);
        assert_eq!(error.fields["mix"], "gstlog-mix");
        assert!(
            error.fields["object"].starts_with(&format!("/GstPipeline:{name}/GstFileSrc:"))
                && error.fields["object"].ends_with(".GstPad:src"),
            "{error:?}"
        );

        // Below WARNING nothing is forwarded, whatever GST_DEBUG lets through.
        let records = Capture::during(|| gst::info!(category, obj = &src, "routine"));
        assert!(records.is_empty(), "{records:#?}");
    }
}
