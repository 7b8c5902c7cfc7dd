//! One input of a project: pulled as FLV bytes (Tessera's RTMP player, or `souphttpsrc` for HTTP-FLV) into an appsink,
//! parsed into tags on the streaming thread and handed to the project's router. Nothing is decoded.
//!
//! Input that arrives faster than real time (an HTTP-FLV file, a server's burst of its GOP cache beyond
//! [`LEAD`]) is paced by its timestamps on the streaming thread, so outputs never get more than a few seconds
//! ahead of real time.
//!
//! The pull is a session on [`crate::media`]'s supervisor, which rebuilds the pipeline after an error, an end of
//! stream, nothing within `ingest.connect_timeout_ms`, or a silence of `failover.stall_ms +
//! ingest.stall_timeout_ms`, with exponential backoff and jitter (`ingest.retry_initial_ms` .. `retry_max_ms`,
//! reset by a session that delivered media).
//!
//! A playlist (`vod` input) is one pipeline per file, one after the other, each a new router session (so the
//! router lands each file on its first keyframe, its sequence headers first, output timestamps continuing).
//! The pull moves each file's timestamps onto one input time line ([`Timeline`]), so a single pacer holds the
//! whole playlist to real time and the play position can be read from it. A file that cannot be pulled is
//! tried [`FILE_ATTEMPTS`] times, then skipped; after the last play of the list the input ends.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex, Weak,
    },
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use gst::prelude::*;

use super::{
    router::Router,
    status::{Endpoint, InputState, VodPosition},
};
use crate::{
    config::IngestConfig,
    flv,
    media::{
        pipeline::PipelineRun, rtmp, Attempt, End, Handle, Liveness, Next, Policy, Retries,
        Session, Supervisor,
    },
};

/// How far ahead of real time (by its timestamps) an input may be delivered before it is paced.
const LEAD: Duration = Duration::from_millis(3_000);
/// Input this far behind real time (late media, a long hiccup) re-anchors the pacing clock.
const BEHIND: Duration = Duration::from_millis(5_000);
/// Timestamp jumps beyond these re-anchor the pacing clock.
const JUMP_BACK_MS: i64 = 1_000;
const JUMP_FORWARD_MS: i64 = 10_000;
/// Attempts at a playlist file that delivers nothing before it is skipped.
const FILE_ATTEMPTS: u32 = 3;
/// Frame duration assumed between two playlist files until one is measured, ms.
const DEFAULT_FRAME_MS: u32 = 33;
/// File starts remembered for the play position (the pacing lead spans at most a few files).
const MAX_STARTS: usize = 64;

/// What an input pulls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PullSource {
    /// A live stream (rtmp(s):// or http(s):// FLV), pulled again whenever it ends.
    Live(String),
    /// FLV files played in order, `1 + loop_times` times (`-1`: until stopped), then the input ends.
    Vod { urls: Vec<String>, loop_times: i64 },
}

impl PullSource {
    /// The live URL, or the playlist's first file.
    pub(crate) fn first_url(&self) -> &str {
        match self {
            Self::Live(url) => url,
            Self::Vod { urls, .. } => urls.first().map_or("", String::as_str),
        }
    }
}

/// Paces one session's media by its timestamps: `delay` says how long to hold a tag so that media time runs
/// at most [`LEAD`] ahead of wall time since the session's first tag.
#[derive(Default)]
struct Pacer {
    /// Wall time and media time that correspond.
    anchor: Option<(Instant, u32)>,
    last_ts: u32,
}

impl Pacer {
    fn delay(&mut self, ts: u32, now: Instant) -> Duration {
        let jumped = |last: u32| {
            let d = ts as i64 - last as i64;
            !(-JUMP_BACK_MS..=JUMP_FORWARD_MS).contains(&d)
        };
        let anchor = match self.anchor {
            Some(a) if !jumped(self.last_ts) => a,
            _ => (now, ts),
        };
        self.last_ts = ts;
        let media = ts as i64 - anchor.1 as i64;
        let wall = now.duration_since(anchor.0).as_millis() as i64;
        let ahead = media - wall;
        self.anchor = Some(if -ahead > BEHIND.as_millis() as i64 {
            (now, ts)
        } else {
            anchor
        });
        let lead = LEAD.as_millis() as i64;
        if ahead > lead {
            Duration::from_millis((ahead - lead) as u64)
        } else {
            Duration::ZERO
        }
    }
}

/// Where a file of a playlist starts on the input time line.
#[derive(Debug, Clone, Copy)]
struct FileStart {
    at: u32,
    index: usize,
    pass: u64,
}

/// The file being read.
#[derive(Debug, Clone, Copy)]
struct FileAt {
    index: usize,
    pass: u64,
    /// Added to the file's own timestamps; set at its first audio or video tag.
    shift: Option<i64>,
}

/// The input time line of a playlist: each file's timestamps follow on from the previous file's (one frame
/// after its last tag), one pacer runs over all of them, and the files' starts give the play position.
#[derive(Default)]
struct Timeline {
    pacer: Pacer,
    file: Option<FileAt>,
    /// The newest input time of an audio or video tag.
    end: Option<u32>,
    /// Input time of the last video frame of the current file, for the frame duration.
    last_video: Option<u32>,
    frame_ms: Option<u32>,
    starts: std::collections::VecDeque<FileStart>,
    finished: bool,
}

impl Timeline {
    fn begin_file(&mut self, index: usize, pass: u64) {
        self.file = Some(FileAt {
            index,
            pass,
            shift: None,
        });
        self.last_video = None;
    }

    /// Where the next file starts: one frame after the newest tag (0 for the first).
    fn next_start(&self) -> i64 {
        self.end.map_or(0, |e| {
            e as i64 + self.frame_ms.unwrap_or(DEFAULT_FRAME_MS) as i64
        })
    }

    /// Moves `tag` of the current file onto the time line.
    fn place(&mut self, tag: &mut flv::Tag) {
        let next_start = self.next_start();
        let Some(file) = self.file.as_mut() else {
            return;
        };
        let media = tag.kind != flv::TagKind::Script;
        let shift = match file.shift {
            Some(shift) => shift,
            None if media => {
                let at = next_start.min(u32::MAX as i64);
                let shift = at - tag.timestamp as i64;
                file.shift = Some(shift);
                self.starts.push_back(FileStart {
                    at: at as u32,
                    index: file.index,
                    pass: file.pass,
                });
                if self.starts.len() > MAX_STARTS {
                    self.starts.pop_front();
                }
                shift
            }
            // Metadata ahead of the file's first audio or video: at the file's start.
            None => next_start - tag.timestamp as i64,
        };
        let ts = (tag.timestamp as i64 + shift).clamp(0, u32::MAX as i64) as u32;
        tag.timestamp = ts;
        if !media {
            return;
        }
        if tag.kind == flv::TagKind::Video && !flv::is_sequence_header(tag) {
            if let Some(prev) = self.last_video {
                let d = ts.wrapping_sub(prev);
                if (1..=200).contains(&d) {
                    self.frame_ms = Some(d.min(100));
                }
            }
            self.last_video = Some(ts);
        }
        self.end = Some(self.end.map_or(ts, |e| e.max(ts)));
    }

    /// The file playing at `now` (index, pass) and the seconds into it: the pacer's wall clock read as input
    /// time (what a viewer sees, behind what was read by up to the pacing lead), at most the newest tag.
    /// Once the playlist is finished, until that clock has reached its end.
    fn position(&self, now: Instant) -> Option<(usize, u64, f64)> {
        let (wall, media) = self.pacer.anchor?;
        let end = self.end? as i64;
        let clock = media as i64 + now.saturating_duration_since(wall).as_millis() as i64;
        if self.finished && clock >= end {
            return None;
        }
        let playing = clock.min(end);
        let start = self
            .starts
            .iter()
            .rev()
            .find(|s| s.at as i64 <= playing)
            .or(self.starts.front())?;
        let into = (playing - start.at as i64).max(0);
        Some((start.index, start.pass, into as f64 / 1000.0))
    }
}

/// What the pull of one input shares with its streaming thread, its supervisor and status readers.
pub(crate) struct PullShared {
    pub endpoint: Endpoint,
    pub source: PullSource,
    epoch: Instant,
    /// 1 + milliseconds since `epoch` at the newest audio or video tag of the input (live: of its current
    /// session; a playlist: of any of its files until it ends); 0 before any.
    last_media: AtomicU64,
    /// Audio and video tags of the current pipeline: its progress.
    session_tags: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// A playlist's time line (unused for live input).
    timeline: Mutex<Timeline>,
}

impl PullShared {
    pub(crate) fn new(endpoint: Endpoint, source: PullSource) -> Arc<Self> {
        Arc::new(Self {
            endpoint,
            source,
            epoch: Instant::now(),
            last_media: AtomicU64::new(0),
            session_tags: AtomicU64::new(0),
            last_error: Mutex::new(None),
            timeline: Mutex::new(Timeline::default()),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    fn note_media(&self) {
        let now = self.now_ms();
        self.last_media.store(now, Ordering::Relaxed);
        self.session_tags.fetch_add(1, Ordering::Relaxed);
    }

    fn since(&self, at: &AtomicU64) -> Option<Duration> {
        match at.load(Ordering::Relaxed) {
            0 => None,
            t => Some(Duration::from_millis(self.now_ms().saturating_sub(t))),
        }
    }

    /// Time since the input's newest media; `None` before any.
    fn silence(&self) -> Option<Duration> {
        self.since(&self.last_media)
    }

    /// Where a playlist is, while it plays.
    pub(crate) fn vod_position(&self) -> Option<VodPosition> {
        let PullSource::Vod { urls, .. } = &self.source else {
            return None;
        };
        let (index, pass, seconds) = self.timeline.lock().unwrap().position(Instant::now())?;
        Some(VodPosition {
            index,
            url: urls.get(index)?.clone(),
            seconds,
            pass,
        })
    }

    /// `live` while tags arrive, `stalled` once they stop for `stall`, `absent` when the session ended (or
    /// never delivered).
    pub(crate) fn health(&self, stall: Duration) -> InputState {
        match self.silence() {
            Some(s) if s <= stall => InputState::Live,
            Some(_) => InputState::Stalled,
            None => InputState::Absent {
                last_error: self.last_error.lock().unwrap().clone(),
            },
        }
    }
}

/// Everything a pull's session needs.
pub(crate) struct PullContext {
    pub shared: Arc<PullShared>,
    pub router: Weak<Mutex<Router>>,
    /// Session numbers, unique within the project run (so a replaced pull's stragglers are recognised).
    pub sessions: Arc<AtomicU64>,
    pub ingest: IngestConfig,
    /// `failover.stall_ms`, changeable while running.
    pub stall_ms: Arc<AtomicU64>,
    /// The relay project's id (its log lines' `relay` field).
    pub relay: String,
    /// Names the pull's threads after the project ([`crate::media::cpu`]).
    pub tag: String,
}

/// Starts pulling: a session on the media supervisor, retried forever (a playlist ends by itself).
pub(crate) fn start(ctx: PullContext) -> Handle {
    let policy = Policy {
        initial: Duration::from_millis(ctx.ingest.retry_initial_ms),
        max: Duration::from_millis(ctx.ingest.retry_max_ms),
        retries: Retries::Forever,
    };
    let plan = match ctx.shared.source.clone() {
        PullSource::Live(url) => Plan::Live { url },
        PullSource::Vod { urls, loop_times } => Plan::Vod(Playlist {
            urls,
            passes: u64::try_from(loop_times).ok().map(|n| n.saturating_add(1)),
            pass: 1,
            index: 0,
            attempts: 0,
            pass_had_media: false,
        }),
    };
    Supervisor::spawn(RelayPull { ctx, plan }, policy)
}

/// What a pull plays.
enum Plan {
    Live { url: String },
    Vod(Playlist),
}

/// Where a playlist is: each file is one attempt; a file that broke off is not played again from its start, one
/// that never played is tried [`FILE_ATTEMPTS`] times, then skipped.
struct Playlist {
    urls: Vec<String>,
    /// Plays of the whole list (`None`: until stopped).
    passes: Option<u64>,
    /// The play under way, from 1.
    pass: u64,
    index: usize,
    /// Failed attempts at the current file.
    attempts: u32,
    pass_had_media: bool,
}

impl Playlist {
    /// Moves to the next file; `Finish` after the last play of the list.
    fn advance(&mut self, shared: &PullShared, relay: &str) -> Next {
        self.attempts = 0;
        self.index += 1;
        if self.index < self.urls.len() {
            return Next::Now;
        }
        self.index = 0;
        let had_media = std::mem::take(&mut self.pass_had_media);
        if self.passes.is_some_and(|n| self.pass >= n) {
            shared.timeline.lock().unwrap().finished = true;
            shared.last_media.store(0, Ordering::Relaxed);
            let pass = self.pass;
            *shared.last_error.lock().unwrap() = Some(format!(
                "playlist finished ({pass} play{})",
                if pass == 1 { "" } else { "s" }
            ));
            tracing::info!(
                %relay,
                input = shared.endpoint.as_str(),
                passes = pass,
                "relay playlist finished"
            );
            return Next::Finish;
        }
        self.pass += 1;
        // A whole play without media (every file missing): wait before the next one.
        if had_media {
            Next::Now
        } else {
            Next::Retry
        }
    }
}

/// One input of a project as a supervised session.
struct RelayPull {
    ctx: PullContext,
    plan: Plan,
}

/// One pipeline of a pull.
struct PullAttempt {
    run: PipelineRun,
    shared: Arc<PullShared>,
    /// Tells a streaming thread waiting to pace to give up, so the pipeline can stop.
    cancel: Arc<AtomicBool>,
}

impl Session for RelayPull {
    type Attempt = PullAttempt;

    fn build(&mut self, _n: u32) -> Result<PullAttempt, String> {
        let ctx = &self.ctx;
        let session = ctx.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        let router = ctx.router.upgrade().ok_or("the project stopped")?;
        router
            .lock()
            .unwrap()
            .begin_session(ctx.shared.endpoint, session);
        ctx.shared.session_tags.store(0, Ordering::Relaxed);
        let (url, vod) = match &self.plan {
            Plan::Live { url } => {
                ctx.shared.last_media.store(0, Ordering::Relaxed);
                (url.as_str(), false)
            }
            Plan::Vod(p) => {
                ctx.shared
                    .timeline
                    .lock()
                    .unwrap()
                    .begin_file(p.index, p.pass);
                tracing::debug!(relay = %ctx.relay, url = %p.urls[p.index], input = ctx.shared.endpoint.as_str(), index = p.index, pass = p.pass, "relay playlist file");
                (p.urls[p.index].as_str(), true)
            }
        };
        let cancel = Arc::new(AtomicBool::new(false));
        let pipeline = build(
            &ctx.shared,
            &ctx.tag,
            url,
            vod,
            ctx.router.clone(),
            session,
            cancel.clone(),
        )
        .map_err(|e| format!("cannot build the pull pipeline: {e}"))?;
        Ok(PullAttempt {
            run: PipelineRun::new(pipeline, Some(ctx.tag.clone())),
            shared: ctx.shared.clone(),
            cancel,
        })
    }

    fn liveness(&self) -> Liveness {
        let stall = self.ctx.stall_ms.load(Ordering::Relaxed) + self.ctx.ingest.stall_timeout_ms;
        Liveness {
            connect: self.ctx.ingest.connect_timeout(),
            stall: Duration::from_millis(stall),
        }
    }

    fn next(&mut self, end: &End, live: bool) -> Next {
        let shared = &self.ctx.shared;
        let endpoint = shared.endpoint.as_str();
        let relay = self.ctx.relay.as_str();
        match &mut self.plan {
            Plan::Live { url } => {
                let reason = end.reason();
                *shared.last_error.lock().unwrap() = Some(reason.clone());
                shared.last_media.store(0, Ordering::Relaxed);
                tracing::warn!(%relay, url = %crate::media::redact(url), input = endpoint, %reason, "relay input down; will retry");
                Next::Retry
            }
            Plan::Vod(p) => {
                p.pass_had_media |= live;
                let url = p.urls[p.index].clone();
                let reason = match end {
                    End::Finished if live => return p.advance(shared, relay),
                    End::Finished => "the file holds no audio or video".to_string(),
                    End::Failed(reason) => reason.clone(),
                };
                *shared.last_error.lock().unwrap() = Some(format!("{url}: {reason}"));
                p.attempts += 1;
                // A file that broke off is not played again from its start; one that never played is retried.
                if live || p.attempts >= FILE_ATTEMPTS {
                    tracing::warn!(%relay, %url, input = endpoint, %reason, "relay playlist file failed; skipping it");
                    return p.advance(shared, relay);
                }
                tracing::warn!(%relay, %url, input = endpoint, %reason, attempt = p.attempts, "relay playlist file failed; will retry");
                Next::Retry
            }
        }
    }
}

impl Attempt for PullAttempt {
    fn start(&mut self) -> Result<BoxFuture<'static, End>, String> {
        self.run.start()
    }

    fn progress(&self) -> u64 {
        self.shared.session_tags.load(Ordering::Relaxed)
    }

    fn stop(self, by_request: bool) {
        self.cancel.store(true, Ordering::Relaxed);
        self.run.stop(by_request);
    }
}

/// `url` → appsink, whose tags go to the router as `session`. A playlist file (`vod`) is moved onto the
/// playlist's time line and paced by its pacer; live input by a pacer of its own.
fn build(
    shared: &Arc<PullShared>,
    cpu_tag: &str,
    url: &str,
    vod: bool,
    router: Weak<Mutex<Router>>,
    session: u64,
    cancel: Arc<AtomicBool>,
) -> Result<gst::Pipeline, gst::glib::BoolError> {
    let endpoint = shared.endpoint;
    let pipeline = gst::Pipeline::with_name(&crate::media::gstlog::pipeline_name(
        &format!("pull-{}", endpoint.as_str()),
        Some(cpu_tag),
    ));
    let src = rtmp::live_source(url)?;
    let weak_shared = Arc::downgrade(shared);
    let mut parser = flv::Parser::new();
    let mut pacer = Pacer::default();
    let mut tags = Vec::new();
    let sink = gst_app::AppSink::builder()
        .sync(false)
        .callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let (Some(shared), Some(router)) = (weak_shared.upgrade(), router.upgrade())
                    else {
                        return Err(gst::FlowError::Flushing);
                    };
                    if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                        parser.push(&map);
                    }
                    // Tags go to the router in batches; a tag that is ahead of real time first waits (and the
                    // batch before it goes out before the wait).
                    let flush = |tags: &mut Vec<flv::Tag>| {
                        if !tags.is_empty() {
                            let mut r = router.lock().unwrap();
                            for tag in tags.drain(..) {
                                r.on_tag(endpoint, session, tag);
                            }
                        }
                    };
                    while let Some(item) = parser.next_item() {
                        let flv::Item::Tag(mut tag) = item else {
                            continue;
                        };
                        let media = tag.kind != flv::TagKind::Script;
                        let wait = if vod {
                            let mut timeline = shared.timeline.lock().unwrap();
                            timeline.place(&mut tag);
                            media.then(|| timeline.pacer.delay(tag.timestamp, Instant::now()))
                        } else {
                            media.then(|| pacer.delay(tag.timestamp, Instant::now()))
                        };
                        if let Some(wait) = wait {
                            if !wait.is_zero() {
                                flush(&mut tags);
                                let deadline = Instant::now() + wait;
                                while Instant::now() < deadline && !cancel.load(Ordering::Relaxed) {
                                    std::thread::sleep(
                                        (deadline - Instant::now()).min(Duration::from_millis(50)),
                                    );
                                }
                            }
                            shared.note_media();
                        }
                        tags.push(tag);
                    }
                    flush(&mut tags);
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        )
        .build();
    pipeline.add_many([&src, sink.upcast_ref()])?;
    src.link(&sink)?;
    Ok(pipeline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacing_lets_live_input_through_and_holds_a_burst() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut live = Pacer::default();
        // Real-time arrival (with jitter) and a GOP-cache burst within the lead pass at once.
        for i in 0..100u32 {
            assert_eq!(
                live.delay(1_000_000 + i * 40, at(i as u64 * 40 + 30)),
                Duration::ZERO
            );
        }
        let mut burst = Pacer::default();
        assert_eq!(burst.delay(500, at(0)), Duration::ZERO);
        assert_eq!(burst.delay(3_400, at(5)), Duration::ZERO);
        // A file: ten seconds at once are held to real time plus the lead.
        assert_eq!(burst.delay(10_500, at(10)), Duration::from_millis(6_990));
        // A jump (new stream, wrapped clock) re-anchors instead of waiting for hours.
        assert_eq!(burst.delay(90_000_000, at(20)), Duration::ZERO);
        assert_eq!(burst.delay(40, at(30)), Duration::ZERO);
        // Late media (a hiccup) re-anchors too: what follows is not let through in one burst forever.
        let mut late = Pacer::default();
        assert_eq!(late.delay(0, at(0)), Duration::ZERO);
        assert_eq!(late.delay(100, at(8_000)), Duration::ZERO);
        assert_eq!(late.delay(4_600, at(8_010)), Duration::from_millis(1_490));
    }

    #[test]
    fn health_follows_media() {
        let p = PullShared::new(Endpoint::Main, PullSource::Live("rtmp://h/a/b".into()));
        let stall = Duration::from_millis(50);
        assert_eq!(p.health(stall), InputState::Absent { last_error: None });
        p.note_media();
        assert_eq!(p.health(stall), InputState::Live);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(p.health(stall), InputState::Stalled);
        *p.last_error.lock().unwrap() = Some("stream ended".into());
        p.last_media.store(0, Ordering::Relaxed);
        assert_eq!(
            p.health(stall),
            InputState::Absent {
                last_error: Some("stream ended".into())
            }
        );
    }

    /// A file of `ms` milliseconds at 30 fps with audio, its own clock starting at `start`, as flvmux
    /// writes it: metadata, sequence headers, then media.
    fn file(start: u32, ms: u32) -> Vec<flv::Tag> {
        use flv::{Tag, TagKind};
        let mut tags = vec![
            Tag::new(TagKind::Script, 0, vec![2, 0, 10]),
            Tag::new(TagKind::Video, start, vec![0x17, 0, 0, 0, 0]),
            Tag::new(TagKind::Audio, start, vec![0xAF, 0]),
        ];
        let mut t = 0;
        while t < ms {
            if t % 33 == 0 {
                tags.push(Tag::new(TagKind::Video, start + t, vec![0x27, 1, 0, 0, 0]));
            }
            if t % 20 == 0 {
                tags.push(Tag::new(TagKind::Audio, start + t, vec![0xAF, 1]));
            }
            t += 1;
        }
        tags
    }

    #[test]
    fn playlist_files_follow_on_one_time_line() {
        let mut tl = Timeline::default();
        let mut placed = Vec::new();
        for (index, pass, start) in [(0, 1, 0), (1, 1, 90_000), (0, 2, 0)] {
            tl.begin_file(index, pass);
            for mut tag in file(start, 3_000) {
                tl.place(&mut tag);
                placed.push((index, tag));
            }
        }
        // Each file starts one frame after the previous one's newest tag; its metadata and headers at its
        // start; time never goes back.
        let media: Vec<u32> = placed
            .iter()
            .filter(|(_, t)| t.kind != flv::TagKind::Script)
            .map(|(_, t)| t.timestamp)
            .collect();
        assert!(media.windows(2).all(|w| w[1] >= w[0]), "time went back");
        let starts: Vec<u32> = tl.starts.iter().map(|s| s.at).collect();
        let last_of_first = 2_980; // the last audio tag (20 ms grid) of a 3 s file
        assert_eq!(starts, [0, last_of_first + 33, 2 * (last_of_first + 33)]);
        let second = placed
            .iter()
            .position(|(i, t)| *i == 1 && t.kind == flv::TagKind::Script)
            .unwrap();
        assert_eq!(placed[second].1.timestamp, starts[1]);
        assert!(flv::is_sequence_header(&placed[second + 1].1));
        assert_eq!(placed[second + 1].1.timestamp, starts[1]);

        // The play position reads the pacer's clock as input time.
        let t0 = Instant::now();
        tl.pacer.anchor = Some((t0, 0));
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(tl.position(at(1_500)), Some((0, 1, 1.5)));
        assert_eq!(tl.position(at(3_513)), Some((1, 1, 0.5)));
        assert_eq!(tl.position(at(7_026)), Some((0, 2, 1.0)));
        // Not beyond what was read; once finished, until the last file has been seen.
        assert_eq!(tl.position(at(60_000)), Some((0, 2, 2.98)));
        tl.finished = true;
        assert_eq!(tl.position(at(8_000)), Some((0, 2, 1.974)));
        assert_eq!(tl.position(at(9_006)), None);
    }
}
