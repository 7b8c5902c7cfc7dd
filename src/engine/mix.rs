//! One mix = one pipeline: still layers (canvas colour, background image, watermarks) and input branches on a
//! compositor, input audio on an audiomixer, then one encoder branch per distinct output encoding.
//!
//! The compositor and audiomixer are forced live: they produce a frame (and a block of samples) on every clock
//! tick whatever their inputs do, so a missing, late or dead input never stalls the output. Inputs are pushed
//! with timestamps taken from the shared clock when their media arrived (see `timing`).
//!
//! A mix whose outputs are all audio-only builds no picture at all: no compositor, no still layers, no input
//! video branches (so it costs no blending or scaling); only the audiomixer and the audio encoders run. Its
//! status reports `output_fps` 0.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use gst::prelude::*;
use gst_base::prelude::*;

use super::{
    branch::{AudioBranch, BranchSink, StillLayer, VideoBranch},
    corners::Corners,
    input::{InputHub, InputTag, Subscription},
    output::{EncodeKey, Encoder},
    sei::SeiSource,
    status::{InputStatus, MixState, MixStatus, OutputStatus},
    still::{self, Still, ALPHA_CANVAS, OPAQUE_CANVAS},
};
use crate::{
    config::Config,
    error::{Error, ErrorKind},
    events::{EventBus, EventKind, TaskRef},
    image::ImageLimits,
    media::{meter::RateMeter, push::Observer, Handle},
    model::{Canvas, ImageOverlay, InputSpec, MixSpec, OutputSpec, Target},
};

/// Called once when the pipeline fails, from the bus watch (a Tokio task), with the reason.
pub type OnFailure = Box<dyn Fn(String) + Send + Sync>;

/// Compositor z-order of the canvas colour and the background image; inputs and overlays are above.
const Z_BACKGROUND: u32 = 0;
const Z_BACKGROUND_IMAGE: u32 = 1;
const Z_FIRST_LAYER: u32 = 10;
/// Room per layer number for list order among equal layers (inputs + overlays per mix stay below this).
const Z_PER_LAYER: u32 = 64;

/// Still pictures an update needs, rendered before anything is changed so a failure changes nothing.
pub struct PreparedStills {
    background: Option<Still>,
    background_image: Option<Option<Still>>,
    overlays: HashMap<String, Still>,
    /// The image files they were rendered from, by location: a mix in a worker process renders them again
    /// there (rendered here first, so a picture that cannot be decoded refuses the request before anything
    /// changes).
    pub images: HashMap<String, Vec<u8>>,
}

struct InputBranch {
    spec: InputSpec,
    url: String,
    video: Option<Arc<VideoBranch>>,
    audio: Option<Arc<AudioBranch>>,
    subscription: Subscription,
}

struct OverlayLayer {
    spec: ImageOverlay,
    layer: StillLayer,
}

/// The picture half of a mix; only built when an output carries video.
struct Picture {
    compositor: gst::Element,
    /// Fixes the compositor's output caps; changed live when the canvas is resized.
    canvas_filter: gst::Element,
    background: StillLayer,
    /// Draws inputs' rounded corners on the compositor's output.
    corners: Arc<Corners>,
    /// The compositor's output format: I420 unless a still picture has transparent parts.
    format: &'static str,
}

/// A running mix pipeline.
pub struct MixPipeline {
    /// The mix's id, named in the events its inputs and outputs raise.
    id: String,
    events: EventBus,
    spec: MixSpec,
    pipeline: gst::Pipeline,
    /// `None` when every output is audio-only (then there are no still layers and no input video branches
    /// either). Going from audio-only outputs to video ones changes the encodings, so it restarts the mix.
    picture: Option<Picture>,
    audiomixer: gst::Element,
    background_image: Option<StillLayer>,
    overlays: HashMap<String, OverlayLayer>,
    /// Still layers with transparent parts ("background", "background_image", "overlay:ID"); while there is one,
    /// the compositor blends in an alpha format.
    translucent: HashSet<String>,
    inputs: HashMap<String, InputBranch>,
    encoders: Vec<Encoder>,
    started: Instant,
    fps: Arc<RateMeter>,
    /// Frames produced, lag, and what the compositor used (metrics).
    counts: Arc<MixCounts>,
    /// Names the mix's threads ([`crate::media::cpu`]).
    tag: String,
    /// Where outputs given by stream id are published (to find each output's target).
    egress: crate::config::EgressConfig,
    failed: Arc<AtomicBool>,
    watch: tokio::task::JoinHandle<()>,
    /// Set once [`MixPipeline::stop`] ran.
    stopped: bool,
    /// What the encoders put into the video as SEI.
    sei: Arc<SeiSource>,
}

/// Which still pictures of a spec differ from the running one's (all of them when there is none).
struct Changed {
    background: bool,
    background_image: bool,
    /// Indexes into the spec's overlays.
    overlays: Vec<usize>,
}

fn changed(spec: &MixSpec, old: Option<&MixSpec>) -> Changed {
    let cv = &spec.canvas;
    let same_canvas_size =
        old.is_some_and(|o| o.canvas.width == cv.width && o.canvas.height == cv.height);
    let overlays = spec
        .overlays
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            !old.is_some_and(|old| {
                old.overlays.iter().any(|p| {
                    p.id == o.id
                        && p.image == o.image
                        && p.color == o.color
                        && p.opaque == o.opaque
                        && p.rect.width == o.rect.width
                        && p.rect.height == o.rect.height
                })
            })
        })
        .map(|(i, _)| i)
        .collect();
    Changed {
        background: !(same_canvas_size
            && old.is_some_and(|o| o.canvas.background == cv.background)),
        background_image: !(same_canvas_size
            && old.is_some_and(|o| o.canvas.background_image == cv.background_image)),
        overlays,
    }
}

/// Renders the still pictures of `spec` that differ from `old` (all of them when `old` is `None`). Nothing when no
/// output carries video: the mix has no picture to put them on. Every picture needed is loaded first, all at once
/// and under `limits` ([`crate::image::load`]); only then is anything decoded (on a blocking thread).
pub async fn prepare_stills(
    spec: &MixSpec,
    old: Option<&MixSpec>,
    limits: &ImageLimits,
) -> Result<PreparedStills, Error> {
    if !spec.has_video_output() {
        return Ok(PreparedStills {
            background: None,
            background_image: None,
            overlays: HashMap::new(),
            images: HashMap::new(),
        });
    }
    let changed = changed(spec, old);
    let mut locations: Vec<&str> = Vec::new();
    if changed.background_image {
        locations.extend(spec.canvas.background_image.as_deref());
    }
    for &i in &changed.overlays {
        let o = &spec.overlays[i];
        if o.color.is_none() {
            locations.push(&o.image);
        }
    }
    locations.sort_unstable();
    locations.dedup();
    let loaded =
        futures::future::try_join_all(locations.iter().map(|l| crate::image::load(l, limits)))
            .await?;
    let images: HashMap<String, Vec<u8>> = locations
        .into_iter()
        .map(String::from)
        .zip(loaded)
        .collect();
    let spec = spec.clone();
    tokio::task::spawn_blocking(move || {
        let mut stills = render_stills(&spec, &changed, &images)?;
        stills.images = images;
        Ok(stills)
    })
    .await
    .map_err(Error::internal)?
}

/// [`prepare_stills`] from image files already loaded (a worker process, from what its parent loaded). Blocking.
pub fn render_loaded(
    spec: &MixSpec,
    old: Option<&MixSpec>,
    images: &HashMap<String, Vec<u8>>,
) -> Result<PreparedStills, Error> {
    if !spec.has_video_output() {
        return Ok(PreparedStills {
            background: None,
            background_image: None,
            overlays: HashMap::new(),
            images: HashMap::new(),
        });
    }
    render_stills(spec, &changed(spec, old), images)
}

/// Renders what [`changed`] found, from the loaded `images` (by location). Blocking.
fn render_stills(
    spec: &MixSpec,
    changed: &Changed,
    images: &HashMap<String, Vec<u8>>,
) -> Result<PreparedStills, Error> {
    let cv = &spec.canvas;
    let picture = |location: &str, w: u32, h: u32, opaque: bool| -> Result<Still, Error> {
        let bytes = images
            .get(location)
            .ok_or_else(|| Error::internal(format!("picture {location:?} was not loaded")))?;
        still::image(bytes, w, h, cv.height, opaque).map_err(|e| match e.kind {
            ErrorKind::Unavailable => Error::new(
                ErrorKind::Unavailable,
                format!("image {location:?} cannot be decoded"),
            ),
            _ => e,
        })
    };
    let background = match changed.background {
        true => Some(still::solid(cv.background, cv.width, cv.height, cv.height)?),
        false => None,
    };
    let background_image = match (changed.background_image, &cv.background_image) {
        (false, _) => None,
        (true, Some(loc)) => Some(Some(picture(loc, cv.width, cv.height, false)?)),
        (true, None) => Some(None),
    };
    let mut overlays = HashMap::new();
    for &i in &changed.overlays {
        let o = &spec.overlays[i];
        let (w, h) = (o.rect.width, o.rect.height);
        let still = match &o.color {
            Some(color) => still::solid(*color, w, h, cv.height)?,
            None => picture(&o.image, w, h, o.opaque)?,
        };
        overlays.insert(o.id.clone(), still);
    }
    Ok(PreparedStills {
        background,
        background_image,
        overlays,
        images: HashMap::new(),
    })
}

/// Records which of the freshly rendered `stills` have transparent parts (those not rendered are unchanged).
fn note_translucent(translucent: &mut HashSet<String>, stills: &PreparedStills) {
    let mut note = |key: String, still: Option<&Still>| {
        if still.is_some_and(|s| !s.opaque) {
            translucent.insert(key);
        } else {
            translucent.remove(&key);
        }
    };
    if let Some(bg) = &stills.background {
        note("background".into(), Some(bg));
    }
    if let Some(img) = &stills.background_image {
        note("background_image".into(), img.as_ref());
    }
    for (id, still) in &stills.overlays {
        note(format!("overlay:{id}"), Some(still));
    }
}

/// The compositor's output format: an alpha format only while some still layer needs it.
fn canvas_format(translucent: &HashSet<String>) -> &'static str {
    if translucent.is_empty() {
        OPAQUE_CANVAS
    } else {
        ALPHA_CANVAS
    }
}

/// Caps of the compositor's output in `format`.
fn canvas_caps(c: &Canvas, format: &str) -> gst::Caps {
    let (colorimetry, chroma_site) = still::canvas_colorimetry(c.height);
    gst::Caps::builder("video/x-raw")
        .field("format", format)
        .field("colorimetry", colorimetry)
        .field("chroma-site", chroma_site)
        .field("width", c.width as i32)
        .field("height", c.height as i32)
        .field("framerate", gst::Fraction::new(c.fps as i32, 1))
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build()
}

impl MixPipeline {
    /// Builds and starts the pipeline. `stills` must come from [`prepare_stills`] with `old = None`.
    pub fn start(
        id: &str,
        spec: &MixSpec,
        stills: PreparedStills,
        config: &Config,
        hub: &InputHub,
        events: &EventBus,
        on_failure: OnFailure,
    ) -> Result<Self, Error> {
        let latency = gst::ClockTime::from_mseconds(config.engine.latency_ms);
        let mut translucent = HashSet::new();
        note_translucent(&mut translucent, &stills);
        let tag =
            crate::media::cpu::tag(crate::media::cpu::Owner::Task(TaskRef::Mix(id.to_string())));
        let pipeline =
            gst::Pipeline::with_name(&crate::media::gstlog::pipeline_name("mix", Some(&tag)));
        // Whatever fails half-way, the pipeline must not be disposed while it plays (GStreamer aborts).
        let building = crate::media::teardown::NullUnlessBuilt::new(&pipeline);
        pipeline.use_clock(Some(&gst::SystemClock::obtain()));
        let build_video = || -> Result<_, gst::glib::BoolError> {
            let compositor = gst::ElementFactory::make("compositor")
                .property("force-live", true)
                .property("latency", latency.nseconds())
                .property("ignore-inactive-pads", true)
                .property_from_str("background", "black")
                .build()?;
            let vcaps = gst::ElementFactory::make("capsfilter")
                .property(
                    "caps",
                    canvas_caps(&spec.canvas, canvas_format(&translucent)),
                )
                .build()?;
            let video_tee = gst::ElementFactory::make("tee")
                .property("allow-not-linked", true)
                .build()?;
            pipeline.add_many([&compositor, &vcaps, &video_tee])?;
            gst::Element::link_many([&compositor, &vcaps, &video_tee])?;
            Ok((compositor, vcaps, video_tee))
        };
        let build_audio = || -> Result<_, gst::glib::BoolError> {
            let silence = gst::ElementFactory::make("audiotestsrc")
                .property_from_str("wave", "silence")
                .property("is-live", true)
                .build()?;
            let silence_caps = gst::ElementFactory::make("capsfilter")
                .property("caps", super::mix_audio_caps())
                .build()?;
            let audiomixer = gst::ElementFactory::make("audiomixer")
                .property("force-live", true)
                .property("latency", latency.nseconds())
                .property("ignore-inactive-pads", true)
                .build()?;
            let acaps = gst::ElementFactory::make("capsfilter")
                .property("caps", super::mix_audio_caps())
                .build()?;
            let audio_tee = gst::ElementFactory::make("tee")
                .property("allow-not-linked", true)
                .build()?;
            pipeline.add_many([&silence, &silence_caps, &audiomixer, &acaps, &audio_tee])?;
            gst::Element::link_many([&silence, &silence_caps, &audiomixer, &acaps, &audio_tee])?;
            Ok((audiomixer, audio_tee))
        };
        let video = if spec.has_video_output() {
            Some(build_video().map_err(Error::internal)?)
        } else {
            None
        };
        let (audiomixer, audio_tee) = build_audio().map_err(Error::internal)?;

        // Frames leaving the compositor (and how far behind the clock); stays 0 without a picture.
        let fps = Arc::new(RateMeter::new(Duration::from_secs(2)));
        let counts = Arc::new(MixCounts::default());
        if let Some((compositor, _, _)) = &video {
            counts.watch_selection(compositor);
            let (meter, counts) = (fps.clone(), counts.clone());
            let weak = pipeline.downgrade();
            compositor
                .static_pad("src")
                .expect("compositor src")
                .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                    meter.record(1);
                    counts.output_frames.fetch_add(1, Ordering::Relaxed);
                    let pts = info.buffer().and_then(|b| b.pts());
                    if let (Some(pts), Some(p)) = (pts, weak.upgrade()) {
                        if let (Some(clock), Some(base)) = (p.clock(), p.base_time()) {
                            let now = clock.time().saturating_sub(base);
                            let lag = now.nseconds() as i64 - pts.nseconds() as i64;
                            counts.lag_ns.store(lag, Ordering::Relaxed);
                        }
                    }
                    gst::PadProbeReturn::Ok
                });
        }

        let sei = Arc::new(SeiSource::default());
        sei.set_pass_input(spec.sei.pass_input);
        let mut encoders: Vec<Encoder> = Vec::new();
        for o in &spec.outputs {
            let key = EncodeKey::of(o);
            if !encoders.iter().any(|e| e.spec == key) {
                encoders.push(
                    Encoder::add(
                        &pipeline,
                        video.as_ref().map(|(_, _, tee)| tee),
                        &audio_tee,
                        key,
                        spec.canvas.fps,
                        config.engine.encoder_threads,
                        &sei,
                    )
                    .map_err(Error::internal)?,
                );
            }
        }

        for e in &encoders {
            e.fanout.viewers.set_name(&format!("mix {id}"));
        }

        let failed = Arc::new(AtomicBool::new(false));
        let (_, messages) = crate::media::bus::watch(&pipeline, Some(tag.clone()))
            .ok_or_else(|| Error::internal("mix pipeline without bus"))?;
        let watch = tokio::spawn(watch_bus(
            messages,
            id.to_string(),
            pipeline.name().to_string(),
            failed.clone(),
            on_failure,
        ));
        pipeline.set_state(gst::State::Playing).map_err(|e| {
            let _ = pipeline.set_state(gst::State::Null);
            Error::internal(format!("mix {id} cannot start: {e}"))
        })?;

        let picture = match video {
            Some((compositor, canvas_filter, _)) => {
                let background_still = stills
                    .background
                    .ok_or_else(|| Error::internal("background not rendered"))?;
                let background = StillLayer::add(
                    &pipeline,
                    &compositor,
                    &background_still,
                    0,
                    0,
                    Z_BACKGROUND,
                )
                .map_err(Error::internal)?;
                let corners = Corners::attach(&compositor);
                Some(Picture {
                    compositor,
                    canvas_filter,
                    background,
                    corners,
                    format: canvas_format(&translucent),
                })
            }
            None => None,
        };
        let mut mix = Self {
            id: id.to_string(),
            events: events.clone(),
            spec: spec.clone(),
            pipeline,
            picture,
            audiomixer,
            background_image: None,
            overlays: HashMap::new(),
            translucent,
            inputs: HashMap::new(),
            encoders,
            started: Instant::now(),
            fps,
            counts,
            tag: tag.clone(),
            egress: config.egress.clone(),
            failed,
            watch,
            stopped: false,
            sei,
        };
        if let (Some(Some(img)), Some(picture)) = (stills.background_image, &mix.picture) {
            mix.background_image = Some(
                StillLayer::add(
                    &mix.pipeline,
                    &picture.compositor,
                    &img,
                    0,
                    0,
                    Z_BACKGROUND_IMAGE,
                )
                .map_err(Error::internal)?,
            );
        }
        let mut stills_overlays = stills.overlays;
        let overlays = if mix.picture.is_some() {
            spec.overlays.clone()
        } else {
            Vec::new()
        };
        for o in overlays {
            let still = stills_overlays
                .remove(&o.id)
                .ok_or_else(|| Error::internal("overlay not rendered"))?;
            mix.add_overlay(o, &still)?;
        }
        for input in spec.inputs.clone() {
            mix.add_input(input, config, hub)?;
        }
        for o in &spec.outputs {
            let url = super::resolve_output(&o.target, &config.egress);
            let key = EncodeKey::of(o);
            let observer = mix.output_observer(o);
            if let Some(e) = mix.encoders.iter_mut().find(|e| e.spec == key) {
                e.add_target(&url, &config.egress, observer, &tag);
            }
        }
        mix.restack();
        mix.apply_sei();
        building.built();
        Ok(mix)
    }

    /// Whether `new` can be applied to this pipeline without restarting the output.
    pub fn can_update_live(&self, new: &MixSpec) -> bool {
        updates_live(&self.spec, new)
    }

    /// Applies `new` to the running pipeline: same output, same RTMP sessions, continuous timestamps.
    pub fn update(
        &mut self,
        new: &MixSpec,
        stills: PreparedStills,
        config: &Config,
        hub: &InputHub,
    ) -> Result<(), Error> {
        // Without a picture (audio-only outputs) there are no stills to show and nothing to resize.
        let compositor = self.picture.as_ref().map(|p| p.compositor.clone());
        for o in &self.spec.overlays {
            if !new.overlays.iter().any(|n| n.id == o.id) {
                self.translucent.remove(&format!("overlay:{}", o.id));
            }
        }
        note_translucent(&mut self.translucent, &stills);
        let format = canvas_format(&self.translucent);
        if let Some(picture) = &mut self.picture {
            if (new.canvas.width, new.canvas.height)
                != (self.spec.canvas.width, self.spec.canvas.height)
                || format != picture.format
            {
                // The encoders follow the new caps (x264 restarts its stream with new parameter sets and a
                // keyframe on a resize); the RTMP connections stay.
                picture
                    .canvas_filter
                    .set_property("caps", canvas_caps(&new.canvas, format));
                picture.format = format;
            }
            if let Some(bg) = &stills.background {
                picture.background.show(bg);
            }
        }
        if let (Some(image), Some(compositor)) = (stills.background_image, &compositor) {
            if let Some(layer) = self.background_image.take() {
                layer.remove(&self.pipeline, compositor);
            }
            if let Some(img) = image {
                self.background_image = Some(
                    StillLayer::add(&self.pipeline, compositor, &img, 0, 0, Z_BACKGROUND_IMAGE)
                        .map_err(Error::internal)?,
                );
            }
        }

        // Overlays: removed, replaced (new picture) or moved.
        let mut stills_overlays = stills.overlays;
        let wanted: HashMap<&str, &ImageOverlay> =
            new.overlays.iter().map(|o| (o.id.as_str(), o)).collect();
        let gone: Vec<String> = self
            .overlays
            .keys()
            .filter(|id| {
                !wanted.contains_key(id.as_str()) || stills_overlays.contains_key(id.as_str())
            })
            .cloned()
            .collect();
        for id in gone {
            if let (Some(o), Some(compositor)) = (self.overlays.remove(&id), &compositor) {
                o.layer.remove(&self.pipeline, compositor);
            }
        }
        for o in &new.overlays {
            if let Some(still) = stills_overlays.remove(&o.id) {
                self.add_overlay(o.clone(), &still)?;
            } else if let Some(existing) = self.overlays.get_mut(&o.id) {
                existing.spec = o.clone();
            }
        }

        // Inputs: removed, rebuilt (new source or content) or updated in place.
        self.spec.canvas = new.canvas.clone();
        let wanted: HashMap<&str, &InputSpec> =
            new.inputs.iter().map(|i| (i.id.as_str(), i)).collect();
        let rebuild: Vec<String> = self
            .inputs
            .iter()
            .filter(|(id, b)| {
                wanted
                    .get(id.as_str())
                    .is_none_or(|n| n.source != b.spec.source || n.content != b.spec.content)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in rebuild {
            self.remove_input(&id);
        }
        for input in &new.inputs {
            if let Some(branch) = self.inputs.get_mut(&input.id) {
                let rect = new.input_rect(input);
                if let Some(v) = &branch.video {
                    v.update(input, rect);
                }
                if let Some(a) = &branch.audio {
                    a.set_volume(input.volume);
                }
                branch.spec = input.clone();
            } else {
                self.add_input(input.clone(), config, hub)?;
            }
        }

        // Encoders whose bitrate alone changed are retuned in place.
        for enc in &mut self.encoders {
            let shape = enc.spec.without_bitrate();
            if let Some(o) = new
                .outputs
                .iter()
                .find(|o| EncodeKey::of(o).without_bitrate() == shape)
            {
                if let Some(v) = &o.video {
                    enc.set_video_bitrate(v.bitrate_kbps);
                }
            }
        }
        // Targets of each encoding.
        let observers: Vec<(String, Observer)> = new
            .outputs
            .iter()
            .map(|o| {
                (
                    super::resolve_output(&o.target, &config.egress),
                    self.output_observer(o),
                )
            })
            .collect();
        let mut observers: HashMap<String, Observer> = observers.into_iter().collect();
        for enc in &mut self.encoders {
            let urls: Vec<String> = new
                .outputs
                .iter()
                .filter(|o| EncodeKey::of(o) == enc.spec)
                .map(|o| super::resolve_output(&o.target, &config.egress))
                .collect();
            let stale: Vec<String> = enc
                .targets
                .iter()
                .map(|(u, _)| u.clone())
                .filter(|u| !urls.contains(u))
                .collect();
            for u in stale {
                enc.remove_target(&u);
            }
            for u in &urls {
                if let Some(observer) = observers.remove(u) {
                    enc.add_target(u, &config.egress, observer, &self.tag);
                }
            }
        }
        self.spec = new.clone();
        self.restack();
        self.apply_sei();
        Ok(())
    }

    /// Hands the spec's SEI data, the sound-level sources and whether input SEI is passed on to the encoders.
    fn apply_sei(&self) {
        self.sei.set_user_data(self.spec.sei.user_data());
        self.sei.set_pass_input(self.spec.sei.pass_input);
        let levels = self.spec.sei.sound_levels.then(|| {
            self.spec
                .inputs
                .iter()
                .filter_map(|i| {
                    let id = i.sound_level_id?;
                    let audio = self.inputs.get(&i.id)?.audio.as_ref()?;
                    Some((id, audio.level.clone()))
                })
                .collect()
        });
        self.sei.set_levels(levels);
    }

    /// Puts an overlay on the picture (none without a picture: audio-only outputs).
    fn add_overlay(&mut self, o: ImageOverlay, still: &Still) -> Result<(), Error> {
        let Some(picture) = &self.picture else {
            return Ok(());
        };
        let layer = StillLayer::add(
            &self.pipeline,
            &picture.compositor,
            still,
            o.rect.x,
            o.rect.y,
            Z_FIRST_LAYER,
        )
        .map_err(Error::internal)?;
        self.overlays
            .insert(o.id.clone(), OverlayLayer { spec: o, layer });
        Ok(())
    }

    fn add_input(
        &mut self,
        input: InputSpec,
        config: &Config,
        hub: &InputHub,
    ) -> Result<(), Error> {
        let url = super::resolve_input(&input.source, &config.ingest);
        let rect = self.spec.input_rect(&input);
        // Without a picture (audio-only outputs) an input's video is not used.
        let video = match &self.picture {
            Some(picture) if input.content.has_video() => Some(
                VideoBranch::add(
                    &self.pipeline,
                    &picture.compositor,
                    &input,
                    rect,
                    self.sei.clone(),
                    picture.corners.clone(),
                )
                .map_err(Error::internal)?,
            ),
            _ => None,
        };
        let audio = if input.content.has_audio() {
            Some(
                AudioBranch::add(&self.pipeline, &self.audiomixer, input.volume)
                    .map_err(Error::internal)?,
            )
        } else {
            None
        };
        let sink = Arc::new(BranchSink {
            video: video.clone(),
            audio: audio.clone(),
        });
        let tag = InputTag {
            mix: self.id.clone(),
            input: input.id.clone(),
        };
        let subscription = hub.subscribe(&url, sink, Some(tag));
        self.inputs.insert(
            input.id.clone(),
            InputBranch {
                spec: input,
                url,
                video,
                audio,
                subscription,
            },
        );
        Ok(())
    }

    fn remove_input(&mut self, id: &str) {
        if let Some(b) = self.inputs.remove(id) {
            // Unsubscribe first so no streaming thread pushes into elements being removed.
            drop(b.subscription);
            if let (Some(v), Some(picture)) = (b.video, &self.picture) {
                v.remove(&self.pipeline, &picture.compositor);
            }
            if let Some(a) = b.audio {
                a.remove(&self.pipeline, &self.audiomixer);
            }
        }
    }

    /// Sets every layer's z-order and position from the current spec: higher layers on top, list order among
    /// equal layers, inputs before overlays.
    fn restack(&self) {
        let mut order: Vec<(u32, usize)> = Vec::new();
        for (i, input) in self.spec.inputs.iter().enumerate() {
            order.push((input.layer, i));
        }
        let n = self.spec.inputs.len();
        for (i, o) in self.spec.overlays.iter().enumerate() {
            order.push((o.layer, n + i));
        }
        for (layer, idx) in order {
            let z = Z_FIRST_LAYER + layer * Z_PER_LAYER + idx as u32;
            if idx < n {
                if let Some(v) = self
                    .inputs
                    .get(&self.spec.inputs[idx].id)
                    .and_then(|b| b.video.as_ref())
                {
                    v.set_zorder(z);
                }
            } else {
                let o = &self.spec.overlays[idx - n];
                if let Some(layer) = self.overlays.get(&o.id) {
                    layer.layer.set_position(o.rect.x, o.rect.y, z);
                }
            }
        }
    }

    /// The mix's counts so far.
    pub fn metrics(&self) -> MixMetrics {
        let branches = self.inputs.values().filter_map(|b| b.video.as_ref());
        let (mut dropped_input, mut dropped_compositor) = (0, 0);
        for v in branches {
            dropped_input += v.dropped_in_queue();
            let arrived = v.frames.arrived.load(Ordering::Relaxed);
            // One frame may wait at the pad for the next output frame.
            dropped_compositor += arrived
                .saturating_sub(self.counts.used_from(v.pad()))
                .saturating_sub(1);
        }
        let outputs = self
            .spec
            .outputs
            .iter()
            .filter_map(|o| {
                let url = super::resolve_output(&o.target, &self.egress);
                let t = self
                    .encoders
                    .iter()
                    .flat_map(|e| e.targets.iter())
                    .find(|(u, _)| *u == url)?;
                Some(crate::media::push::OutputMetrics {
                    output: output_label(o),
                    up: t.1.link.state().is_live(),
                    sent_bytes: t.1.shared.bytes(),
                    reconnects: t.1.shared.reconnects(),
                })
            })
            .collect();
        MixMetrics {
            output_frames: self.counts.output_frames.load(Ordering::Relaxed),
            lag_seconds: self.counts.lag_ns.load(Ordering::Relaxed) as f64 / 1e9,
            dropped_input,
            dropped_compositor,
            dropped_encoder: self.encoders.iter().map(Encoder::frames_lost).sum(),
            outputs,
        }
    }

    pub fn status(&self) -> MixStatus {
        let inputs = self
            .spec
            .inputs
            .iter()
            .filter_map(|i| self.inputs.get(&i.id))
            .map(|b| InputStatus {
                id: b.spec.id.clone(),
                url: b.url.clone(),
                state: b.subscription.state(),
                video_size: b.subscription.video_size(),
                last_frame_age_ms: b
                    .subscription
                    .last_frame_age()
                    .map(|a| a.as_millis() as u64),
                reconnects: b.subscription.reconnects(),
            })
            .collect();
        let outputs = self
            .encoders
            .iter()
            .flat_map(|e| e.targets.iter())
            .map(|(url, t)| OutputStatus {
                url: url.clone(),
                state: t.link.state(),
                bitrate_kbps: t.shared.bitrate_kbps(),
                reconnects: t.shared.reconnects(),
            })
            .collect();
        MixStatus {
            state: if self.failed.load(Ordering::SeqCst) {
                MixState::Failed
            } else {
                MixState::Running
            },
            error: None,
            uptime_s: self.started.elapsed().as_secs(),
            output_fps: (self.fps.events_per_sec() * 10.0).round() / 10.0,
            output_bitrate_kbps: self
                .encoders
                .first()
                .map(|e| (e.fanout.bitrate.amount_per_sec() / 1000.0) as u64)
                .unwrap_or(0),
            inputs,
            outputs,
            process: None,
        }
    }

    /// Where a snapshot of the composited picture is taken: after the compositor, its rounded corners and the
    /// canvas caps, before every encoder. `None` for a mix without a picture.
    pub fn picture_pad(&self) -> Option<gst::Pad> {
        self.picture.as_ref()?.canvas_filter.static_pad("src")
    }

    /// Where a snapshot of input `id` is taken (its decoded frames as they enter the mix): `None` for an input
    /// the mix does not have, `Some(None)` for one without a picture in it.
    pub fn input_pad(&self, id: &str) -> Option<Option<gst::Pad>> {
        let b = self.inputs.get(id)?;
        Some(b.video.as_ref().and_then(|v| v.source_pad()))
    }

    /// The viewers of the mix's encoded output: its first encoding with video, else its first.
    pub fn viewers(&self) -> Option<Arc<crate::preview::Viewers>> {
        self.encoders
            .iter()
            .find(|e| e.spec.video.is_some())
            .or(self.encoders.first())
            .map(|e| e.fanout.viewers.clone())
    }

    /// Posts an error as if an element had failed (fault-injection for tests).
    pub fn inject_failure(&self) {
        let msg = gst::message::Error::builder(gst::CoreError::Failed, "injected failure")
            .src(&self.pipeline)
            .build();
        let _ = self.pipeline.post_message(msg);
    }

    /// Hears an output's state changes and tells them as events of this mix.
    fn output_observer(&self, o: &OutputSpec) -> Observer {
        let events = self.events.clone();
        let task = TaskRef::Mix(self.id.clone());
        let label = output_label(o);
        Box::new(move |state| {
            if let Some(kind) = EventKind::of_output(&label, state) {
                events.publish(task.clone(), kind);
            }
        })
    }

    /// Stops everything the mix holds: input subscriptions, targets, the pipeline. Returns the output links,
    /// stopping: the caller waits for them where a new publisher of the same streams follows (RTMP servers
    /// refuse a second one). Idempotent.
    pub fn stop(&mut self) -> Vec<Handle> {
        if self.stopped {
            return Vec::new();
        }
        self.stopped = true;
        // Unsubscribing first means no streaming thread pushes into the pipeline while it goes down.
        self.inputs.clear();
        let links: Vec<Handle> = self
            .encoders
            .iter_mut()
            .flat_map(|e| e.take_targets())
            .map(|t| {
                t.link.stop();
                t.link
            })
            .collect();
        self.watch.abort();
        let _ = self.pipeline.set_state(gst::State::Null);
        links
    }
}

/// How events and status name an output: its stream id, or its URL without user info, query or fragment.
pub fn output_label(o: &OutputSpec) -> String {
    match &o.target {
        Target::StreamId(id) => id.clone(),
        Target::Url(u) => crate::media::label(u),
    }
}

impl Drop for MixPipeline {
    /// A pipeline that failed half-way through [`MixPipeline::start`] is torn down too.
    fn drop(&mut self) {
        drop(self.stop());
    }
}

/// What a mix counts as it runs, for the operator: frames produced, how far behind the clock, and the input
/// frames the compositor received but never used (they came too late for their output frame).
#[derive(Default)]
pub struct MixCounts {
    pub output_frames: AtomicU64,
    /// Nanoseconds the newest output frame ran behind the pipeline clock.
    pub lag_ns: std::sync::atomic::AtomicI64,
    /// Per compositor sink pad: the newest frame it used, and how many distinct frames it used.
    used: std::sync::Mutex<HashMap<gst::Pad, (Option<gst::ClockTime>, u64)>>,
}

impl MixCounts {
    /// Follows which input frames the compositor takes for each output frame.
    fn watch_selection(self: &Arc<Self>, compositor: &gst::Element) {
        let Some(agg) = compositor.downcast_ref::<gst_base::Aggregator>() else {
            return;
        };
        agg.set_emit_signals(true);
        let weak = Arc::downgrade(self);
        agg.connect_samples_selected(move |agg, _, _, _, _, _| {
            let Some(me) = weak.upgrade() else { return };
            let mut used = me.used.lock().unwrap();
            for pad in agg.sink_pads() {
                let Some(agg_pad) = pad.downcast_ref::<gst_base::AggregatorPad>() else {
                    continue;
                };
                let pts = agg
                    .peek_next_sample(agg_pad)
                    .and_then(|s| s.buffer().and_then(|b| b.pts()));
                let entry = used.entry(pad.clone()).or_insert((None, 0));
                if pts.is_some() && pts != entry.0 {
                    *entry = (pts, entry.1 + 1);
                }
            }
        });
    }

    /// Distinct frames the compositor used from `pad`.
    fn used_from(&self, pad: &gst::Pad) -> u64 {
        self.used.lock().unwrap().get(pad).map_or(0, |u| u.1)
    }
}

/// A mix's frame counts, read when the operator asks ([`MixPipeline::metrics`]).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct MixMetrics {
    pub output_frames: u64,
    pub lag_seconds: f64,
    /// Input frames dropped by the inputs' queues (they keep 500 ms).
    pub dropped_input: u64,
    /// Input frames that reached the compositor too late to be used.
    pub dropped_compositor: u64,
    /// Canvas frames dropped or repeated on the way to the encoders (an encoder that fell behind).
    pub dropped_encoder: u64,
    /// Per output: its label, whether it is live, bytes sent, reconnects.
    pub outputs: Vec<crate::media::push::OutputMetrics>,
}

/// Whether a pipeline running `old` can take `new` without restarting the output.
pub fn updates_live(old: &MixSpec, new: &MixSpec) -> bool {
    // Without a picture the canvas rate means nothing; with one on either side the encodings differ anyway.
    (old.canvas.fps == new.canvas.fps || !old.has_video_output())
        && live_encoders(old) == live_encoders(new)
}

/// The encodings of `spec` up to their video bitrate (which changes live), if each occurs at one bitrate only.
fn live_encoders(spec: &MixSpec) -> Option<Vec<EncodeKey>> {
    let mut keys: Vec<EncodeKey> = spec.outputs.iter().map(EncodeKey::of).collect();
    keys.sort_by_key(|k| format!("{k:?}"));
    keys.dedup();
    let mut shapes: Vec<EncodeKey> = keys.iter().map(EncodeKey::without_bitrate).collect();
    let n = shapes.len();
    shapes.dedup();
    (shapes.len() == n).then_some(shapes)
}

/// The mix pipeline's bus watch: an error is the mix's failure (reported once); warnings are logged. Each is
/// logged here once, with its details (GStreamer's echo of it is not forwarded again: see `media::gstlog`).
async fn watch_bus(
    mut messages: futures::channel::mpsc::UnboundedReceiver<gst::Message>,
    id: String,
    pipeline: String,
    failed: Arc<AtomicBool>,
    on_failure: OnFailure,
) {
    use crate::media::gstlog::source;
    while let Some(msg) = messages.next().await {
        match msg.view() {
            gst::MessageView::Error(err) => {
                tracing::error!(
                    mix = %id,
                    %pipeline,
                    src = source(&msg).as_deref(),
                    error = %err.error(),
                    debug = err.debug().as_deref(),
                    "mix pipeline error"
                );
                if !failed.swap(true, Ordering::SeqCst) {
                    on_failure(crate::media::pipeline::describe_error(&err.error()));
                }
            }
            gst::MessageView::Warning(w) => {
                tracing::warn!(
                    mix = %id,
                    %pipeline,
                    src = source(&msg).as_deref(),
                    warning = %w.error(),
                    debug = w.debug().as_deref(),
                    "mix pipeline warning"
                );
            }
            _ => {}
        }
    }
}
