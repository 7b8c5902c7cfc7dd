//! The parts of a mix pipeline that belong to one input or one still picture, added and removed while the mix
//! runs. Each input's video goes appsrc → crop → scale → label → compositor pad (its rounded corners are drawn
//! after the compositor, see `corners`); its audio goes appsrc → audiomixer pad (volume). Geometry that depends
//! on the input's picture size is recomputed whenever that size changes.

use std::sync::{
    atomic::{AtomicU32, AtomicU64, Ordering},
    Arc, Mutex,
};

use gst::prelude::*;

use super::{corners::Corners, input::MediaSink, sei::SeiSource, still::Still};
use crate::model::{geometry, Fit, InputSpec, Label, Rect};

fn make(factory: &str) -> Result<gst::Element, gst::glib::BoolError> {
    gst::ElementFactory::make(factory).build()
}

fn live_appsrc(caps: Option<&gst::Caps>) -> gst_app::AppSrc {
    let mut b = gst_app::AppSrc::builder()
        .is_live(true)
        .format(gst::Format::Time)
        .min_latency(0)
        .max_time(gst::ClockTime::from_mseconds(500))
        .max_bytes(0)
        .max_buffers(0)
        .leaky_type(gst_app::AppLeakyType::Downstream);
    if let Some(caps) = caps {
        b = b.caps(caps);
    }
    b.build()
}

/// Running time of `pipeline` for absolute clock time `clock_time`, if it is running and the time is not before
/// its start.
fn running_time(pipeline: &gst::Pipeline, clock_time: gst::ClockTime) -> Option<gst::ClockTime> {
    pipeline
        .base_time()
        .and_then(|base| clock_time.checked_sub(base))
}

fn current_running_time(pipeline: &gst::Pipeline) -> gst::ClockTime {
    pipeline
        .clock()
        .and_then(|c| running_time(pipeline, c.time()))
        .unwrap_or(gst::ClockTime::ZERO)
}

/// Geometry inputs of a video branch; the picture size arrives with the media.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    rect: Rect,
    crop: Option<Rect>,
    fit: Fit,
    source_size: Option<(u32, u32)>,
    applied: Option<geometry::Placement>,
}

/// The video half of an input branch. Shared with the streaming thread that pushes frames.
pub struct VideoBranch {
    pipeline: gst::glib::WeakRef<gst::Pipeline>,
    appsrc: gst_app::AppSrc,
    crop: gst::Element,
    scale_caps: gst::Element,
    text: gst::Element,
    /// The mix's corner redraw after the compositor, told this layer's radius (per pad).
    corners: Arc<Corners>,
    pad: gst::Pad,
    elements: Vec<gst::Element>,
    layout: Mutex<Layout>,
    last_caps: Mutex<Option<gst::Caps>>,
    /// The mix's SEI: receives the input's own SEI messages when it passes them on.
    sei: Arc<SeiSource>,
    /// Frames handed to the branch, frames its queue let through, frames that reached the compositor.
    pub frames: Arc<BranchFrames>,
}

/// Counts of one input branch's frames (for the mix's drop counts).
#[derive(Debug, Default)]
pub struct BranchFrames {
    pub pushed: AtomicU64,
    pub queued_out: AtomicU64,
    pub arrived: AtomicU64,
}

impl BranchFrames {
    /// Frames the branch's queue dropped (it keeps 500 ms; older frames go first): pushed, less those let
    /// through and those still queued.
    pub fn dropped_in_queue(&self, queued: u64) -> u64 {
        self.pushed
            .load(Ordering::Relaxed)
            .saturating_sub(self.queued_out.load(Ordering::Relaxed))
            .saturating_sub(queued)
    }
}

/// Adds a probe counting the buffers that leave through `pad`.
fn count_buffers(
    pad: &gst::Pad,
    counter: Arc<BranchFrames>,
    which: fn(&BranchFrames) -> &AtomicU64,
) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        which(&counter).fetch_add(1, Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
}

/// The audio half of an input branch.
pub struct AudioBranch {
    pipeline: gst::glib::WeakRef<gst::Pipeline>,
    appsrc: gst_app::AppSrc,
    pad: gst::Pad,
    last_caps: Mutex<Option<gst::Caps>>,
    /// Sound level 0–100 of the latest buffer (before volume), for the sound-level SEI.
    pub level: Arc<AtomicU32>,
}

/// Pushes one input's media into a mix (the hub calls it from its streaming threads).
pub struct BranchSink {
    pub video: Option<Arc<VideoBranch>>,
    pub audio: Option<Arc<AudioBranch>>,
}

impl MediaSink for BranchSink {
    fn video(&self, buffer: &gst::Buffer, caps: &gst::Caps) {
        if let Some(v) = &self.video {
            v.push(buffer, caps);
        }
    }
    fn audio(&self, buffer: &gst::Buffer, caps: &gst::Caps) {
        if let Some(a) = &self.audio {
            a.push(buffer, caps);
        }
    }
}

/// Copies `buffer` with its PTS turned from clock time into `pipeline`'s running time.
fn retime(
    pipeline: &gst::glib::WeakRef<gst::Pipeline>,
    buffer: &gst::Buffer,
) -> Option<gst::Buffer> {
    let pipeline = pipeline.upgrade()?;
    let rt = running_time(&pipeline, buffer.pts()?)?;
    let mut out = buffer.copy();
    out.make_mut().set_pts(rt);
    Some(out)
}

/// Sets caps on `appsrc` when they changed; returns whether they did.
fn update_caps(
    appsrc: &gst_app::AppSrc,
    last: &Mutex<Option<gst::Caps>>,
    caps: &gst::Caps,
) -> bool {
    let mut last = last.lock().unwrap();
    if last.as_ref() == Some(caps) {
        return false;
    }
    *last = Some(caps.clone());
    drop(last);
    appsrc.set_caps(Some(caps));
    true
}

impl VideoBranch {
    /// Builds the branch inside `pipeline` and links it to a new `compositor` pad. The input's own SEI messages
    /// go to `sei` while it asks for them.
    pub fn add(
        pipeline: &gst::Pipeline,
        compositor: &gst::Element,
        input: &InputSpec,
        rect: Rect,
        sei: Arc<SeiSource>,
        corners: Arc<Corners>,
    ) -> Result<Arc<Self>, gst::glib::BoolError> {
        let appsrc = live_appsrc(None);
        let crop = make("videocrop")?;
        let scale = gst::ElementFactory::make("videoscale")
            .property("add-borders", false)
            .build()?;
        let scale_caps = make("capsfilter")?;
        let text = gst::ElementFactory::make("textoverlay")
            .property("silent", true)
            .property("auto-resize", false)
            .property("draw-shadow", false)
            .property("draw-outline", false)
            .property("xpad", 0i32)
            .property("ypad", 0i32)
            .property_from_str("halignment", "left")
            .property_from_str("valignment", "top")
            .build()?;
        let elements: Vec<gst::Element> = vec![
            appsrc.clone().upcast(),
            crop.clone(),
            scale,
            scale_caps.clone(),
            text.clone(),
        ];
        pipeline.add_many(&elements)?;
        gst::Element::link_many(&elements)?;
        let pad = compositor
            .request_pad_simple("sink_%u")
            .ok_or_else(|| gst::glib::bool_error!("compositor refused a pad"))?;
        text.static_pad("src")
            .expect("textoverlay has a src pad")
            .link(&pad)
            .map_err(|e| gst::glib::bool_error!("link to compositor: {e:?}"))?;
        let branch = Arc::new(Self {
            pipeline: pipeline.downgrade(),
            appsrc,
            crop,
            scale_caps,
            text,
            corners,
            pad,
            elements,
            layout: Mutex::new(Layout {
                rect,
                crop: input.crop,
                fit: input.fit,
                source_size: None,
                applied: None,
            }),
            last_caps: Mutex::new(None),
            sei,
            frames: Arc::default(),
        });
        if let Some(src) = branch.appsrc.static_pad("src") {
            count_buffers(&src, branch.frames.clone(), |f| &f.queued_out);
        }
        count_buffers(&branch.pad, branch.frames.clone(), |f| &f.arrived);
        // Until the first frame arrives the pad shows nothing, so the canvas stays visible.
        branch.pad.set_property("width", 0i32);
        branch.pad.set_property("height", 0i32);
        branch.update(input, rect);
        for e in branch.elements.iter().rev() {
            e.sync_state_with_parent()?;
        }
        Ok(branch)
    }

    /// Applies everything of `input` that can change live.
    pub fn update(&self, input: &InputSpec, rect: Rect) {
        {
            let mut l = self.layout.lock().unwrap();
            l.rect = rect;
            l.crop = input.crop;
            l.fit = input.fit;
        }
        self.apply_geometry();
        self.corners.set_radius(&self.pad, input.corner_radius);
        self.apply_label(input.label.as_ref());
    }

    pub fn set_zorder(&self, z: u32) {
        self.pad.set_property("zorder", z);
    }

    fn apply_label(&self, label: Option<&Label>) {
        match label {
            None => self.text.set_property("silent", true),
            Some(l) => {
                let alpha = (u32::from(l.color.a) * l.opacity.min(100) / 100) as u8;
                let color = crate::model::Color {
                    a: alpha,
                    ..l.color
                };
                self.text.set_property("text", &l.text);
                self.text
                    .set_property("font-desc", format!("Sans {}px", l.font_size));
                self.text.set_property("color", color.argb());
                self.text.set_property("deltax", l.x);
                self.text.set_property("deltay", l.y);
                self.text.set_property("silent", false);
            }
        }
    }

    /// Recomputes crop, scale and position from the current layout and picture size.
    fn apply_geometry(&self) {
        let placement = {
            let mut l = self.layout.lock().unwrap();
            let Some((w, h)) = l.source_size else { return };
            let p = geometry::place(w, h, l.crop, l.rect, l.fit);
            if l.applied == Some(p) {
                return;
            }
            l.applied = Some(p);
            p
        };
        self.crop.set_property("left", placement.crop_left as i32);
        self.crop.set_property("right", placement.crop_right as i32);
        self.crop.set_property("top", placement.crop_top as i32);
        self.crop
            .set_property("bottom", placement.crop_bottom as i32);
        self.scale_caps.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("width", placement.width as i32)
                .field("height", placement.height as i32)
                .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                .build(),
        );
        self.pad.set_property("xpos", placement.x);
        self.pad.set_property("ypos", placement.y);
        self.pad.set_property("width", placement.width as i32);
        self.pad.set_property("height", placement.height as i32);
    }

    fn push(&self, buffer: &gst::Buffer, caps: &gst::Caps) {
        let Some(out) = retime(&self.pipeline, buffer) else {
            return;
        };
        if self.sei.passes_input() {
            // The decoder carried the input's SEI over to this frame as metas (see `sei`).
            if let Some(rt) = out.pts() {
                self.sei.pass(rt, super::sei::input_messages(&out));
            }
        }
        if update_caps(&self.appsrc, &self.last_caps, caps) {
            if let Ok(info) = gst_video::VideoInfo::from_caps(caps) {
                self.layout.lock().unwrap().source_size = Some((info.width(), info.height()));
                self.apply_geometry();
            }
        }
        self.frames.pushed.fetch_add(1, Ordering::Relaxed);
        let _ = self.appsrc.push_buffer(out);
    }

    /// Frames this branch dropped in its queue so far.
    pub fn dropped_in_queue(&self) -> u64 {
        self.frames
            .dropped_in_queue(self.appsrc.current_level_buffers())
    }

    /// The compositor pad the branch feeds.
    /// Where the input's decoded frames enter the mix, before crop and scale (snapshots of the input).
    pub fn source_pad(&self) -> Option<gst::Pad> {
        self.appsrc.static_pad("src")
    }

    pub fn pad(&self) -> &gst::Pad {
        &self.pad
    }

    /// Takes the branch out of the running pipeline and releases its compositor pad.
    pub fn remove(&self, pipeline: &gst::Pipeline, compositor: &gst::Element) {
        self.corners.set_radius(&self.pad, 0);
        remove_elements(pipeline, &self.elements);
        compositor.release_request_pad(&self.pad);
    }
}

impl AudioBranch {
    pub fn add(
        pipeline: &gst::Pipeline,
        mixer: &gst::Element,
        volume: u32,
    ) -> Result<Arc<Self>, gst::glib::BoolError> {
        let appsrc = live_appsrc(Some(&super::mix_audio_caps()));
        pipeline.add(&appsrc)?;
        let pad = mixer
            .request_pad_simple("sink_%u")
            .ok_or_else(|| gst::glib::bool_error!("audiomixer refused a pad"))?;
        appsrc
            .static_pad("src")
            .expect("appsrc has a src pad")
            .link(&pad)
            .map_err(|e| gst::glib::bool_error!("link to audiomixer: {e:?}"))?;
        let branch = Arc::new(Self {
            pipeline: pipeline.downgrade(),
            appsrc,
            pad,
            last_caps: Mutex::new(None),
            level: Arc::new(AtomicU32::new(0)),
        });
        branch.set_volume(volume);
        branch.appsrc.sync_state_with_parent()?;
        Ok(branch)
    }

    pub fn set_volume(&self, percent: u32) {
        self.pad.set_property("volume", f64::from(percent) / 100.0);
    }

    fn push(&self, buffer: &gst::Buffer, caps: &gst::Caps) {
        let Some(out) = retime(&self.pipeline, buffer) else {
            return;
        };
        update_caps(&self.appsrc, &self.last_caps, caps);
        // The hub delivers interleaved F32 (see `mix_audio_caps`).
        if let Ok(map) = out.map_readable() {
            let samples: Vec<f32> = map
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            self.level
                .store(super::sei::level_of(&samples), Ordering::Relaxed);
        }
        let _ = self.appsrc.push_buffer(out);
    }

    pub fn remove(&self, pipeline: &gst::Pipeline, mixer: &gst::Element) {
        remove_elements(pipeline, &[self.appsrc.clone().upcast()]);
        mixer.release_request_pad(&self.pad);
    }
}

/// A still picture on its own compositor pad.
///
/// The compositor would repeat a pad's last buffer for as long as no new one arrives, but a live aggregator only
/// produces a frame early when every pad has a buffer queued: a pad fed once would hold every canvas frame until
/// the compositor's latency ran out (measured: each frame left 40 ms + one frame after its time). So after each
/// canvas frame the layer queues its picture again (the same memory, no copy) for the next frame, at that frame's
/// time on the clock: it is never what the compositor waits for once the frame is due, and a frame leaves as soon
/// as the inputs' frames are there; with no input delivering, the compositor still keeps to the clock.
pub struct StillLayer {
    appsrc: gst_app::AppSrc,
    pad: gst::Pad,
    /// The picture and what it is queued for; shared with the probe on the compositor's output.
    shared: Arc<Mutex<StillFeed>>,
    /// That probe on the compositor's src pad, removed with the layer.
    probe: Mutex<Option<gst::PadProbeId>>,
    compositor_src: gst::Pad,
}

struct StillFeed {
    /// The picture and its caps, pushed together (a sample sets both at once, so no buffer is read with another
    /// picture's caps).
    buffer: gst::Buffer,
    caps: gst::Caps,
    /// The timestamp of the latest buffer queued: the next never goes out earlier.
    next_pts: gst::ClockTime,
}

impl StillFeed {
    fn push(&mut self, appsrc: &gst_app::AppSrc, pts: gst::ClockTime) {
        let pts = pts.max(self.next_pts);
        let mut buffer = self.buffer.clone();
        {
            let b = buffer.make_mut();
            b.set_pts(pts);
            b.set_duration(gst::ClockTime::NONE);
        }
        let sample = gst::Sample::builder()
            .buffer(&buffer)
            .caps(&self.caps)
            .build();
        let _ = appsrc.push_sample(&sample);
        self.next_pts = pts;
    }
}

impl StillLayer {
    pub fn add(
        pipeline: &gst::Pipeline,
        compositor: &gst::Element,
        still: &Still,
        x: i32,
        y: i32,
        zorder: u32,
    ) -> Result<Self, gst::glib::BoolError> {
        let appsrc = live_appsrc(Some(&still.caps));
        pipeline.add(&appsrc)?;
        let pad = compositor
            .request_pad_simple("sink_%u")
            .ok_or_else(|| gst::glib::bool_error!("compositor refused a pad"))?;
        appsrc
            .static_pad("src")
            .expect("appsrc has a src pad")
            .link(&pad)
            .map_err(|e| gst::glib::bool_error!("link still to compositor: {e:?}"))?;
        pad.set_property("xpos", x);
        pad.set_property("ypos", y);
        pad.set_property("zorder", zorder);
        appsrc.sync_state_with_parent()?;
        let shared = Arc::new(Mutex::new(StillFeed {
            buffer: still.buffer.clone(),
            caps: still.caps.clone(),
            next_pts: gst::ClockTime::ZERO,
        }));
        shared
            .lock()
            .unwrap()
            .push(&appsrc, current_running_time(pipeline));
        let compositor_src = compositor.static_pad("src").expect("compositor src");
        let probe = {
            let (shared, weak) = (Arc::downgrade(&shared), appsrc.downgrade());
            let compositor = compositor.downgrade();
            compositor_src.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                let (Some(b), Some(compositor)) = (info.buffer(), compositor.upgrade()) else {
                    return gst::PadProbeReturn::Ok;
                };
                let (Some(pts), Some(d)) = (b.pts(), b.duration()) else {
                    return gst::PadProbeReturn::Ok;
                };
                let next = pts + d;
                let (shared, weak) = (shared.clone(), weak.clone());
                let push = move || {
                    if let (Some(shared), Some(appsrc)) = (shared.upgrade(), weak.upgrade()) {
                        shared.lock().unwrap().push(&appsrc, next);
                    }
                };
                // Queued when the next frame is due, not before: with no input delivering, the picture alone
                // would otherwise let the compositor run ahead of the clock.
                match (compositor.clock(), compositor.base_time()) {
                    (Some(clock), Some(base)) => {
                        let id = clock.new_single_shot_id(base + next);
                        let _ = id.wait_async(move |_, _, _| push());
                    }
                    _ => push(),
                }
                gst::PadProbeReturn::Ok
            })
        };
        Ok(Self {
            appsrc,
            pad,
            shared,
            probe: Mutex::new(probe),
            compositor_src,
        })
    }

    /// Replaces the picture (same size and position semantics as when added).
    pub fn show(&self, still: &Still) {
        let mut feed = self.shared.lock().unwrap();
        feed.buffer = still.buffer.clone();
        feed.caps = still.caps.clone();
        let pts = feed.next_pts;
        feed.push(&self.appsrc, pts);
    }

    pub fn set_position(&self, x: i32, y: i32, zorder: u32) {
        self.pad.set_property("xpos", x);
        self.pad.set_property("ypos", y);
        self.pad.set_property("zorder", zorder);
    }

    pub fn remove(&self, pipeline: &gst::Pipeline, compositor: &gst::Element) {
        if let Some(probe) = self.probe.lock().unwrap().take() {
            self.compositor_src.remove_probe(probe);
        }
        remove_elements(pipeline, &[self.appsrc.clone().upcast()]);
        compositor.release_request_pad(&self.pad);
    }
}

/// Stops elements of a running pipeline and removes them. Stopping first ends their streaming threads, so no
/// buffer is in flight when the downstream pad goes away.
pub fn remove_elements(pipeline: &gst::Pipeline, elements: &[gst::Element]) {
    for e in elements {
        let _ = e.set_state(gst::State::Null);
    }
    let _ = pipeline.remove_many(elements);
}
