//! The switching point of a project: the tags of both inputs come in (from their streaming threads), the tags of
//! the active one go out to every output, once, with rewritten timestamps.
//!
//! A switch (failover, return, manual, or the active input coming back in a new session: a reconnect, or the
//! next file of a playlist) is requested and lands on the next resumption point of the new input (a video
//! keyframe; any audio tag of an input without video): its metadata and sequence headers go out first, then
//! the keyframe. Until then the old input keeps flowing, so a planned switch has no gap. Output timestamps are `in - offset`; the offset is chosen at each landing so
//! that the new input continues one frame after the last timestamp sent, and they never go back.

use std::sync::Arc;

use super::status::Endpoint;
use crate::flv::{self, Tag, TagKind};

/// Why the active input changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SwitchReason {
    /// The active input stopped delivering media.
    Stalled,
    /// The active input's stream ended or could not be pulled.
    Ended,
    /// The main input has been healthy long enough.
    ReturnToMain,
    /// Asked for through the API.
    Manual,
}

impl SwitchReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Stalled => "stalled",
            Self::Ended => "ended",
            Self::ReturnToMain => "return_to_main",
            Self::Manual => "manual",
        }
    }
}

/// One tag as every output gets it: a whole FLV tag (header, data, `PreviousTagSize`) with its output timestamp.
pub(crate) struct OutTag {
    pub buffer: gst::Buffer,
    /// Whether an output may (re)start here (after sending the preamble).
    pub resumption: bool,
}

/// An output as the router sees it. `push` is called under the router's lock: it must not block.
pub(crate) trait TagSink: Send + Sync {
    /// `preamble` (FLV header, metadata, sequence headers) is what an output that (re)starts at `tag` sends first.
    fn push(&self, tag: &OutTag, preamble: &[gst::Buffer]);
}

/// The live preview's viewers get what every output gets.
impl TagSink for crate::preview::Viewers {
    fn push(&self, tag: &OutTag, preamble: &[gst::Buffer]) {
        crate::preview::Viewers::push(self, &tag.buffer, tag.resumption, preamble);
    }
}

/// Told about each switch that lands: from, to, why.
pub(crate) type OnSwitch = Box<dyn Fn(Endpoint, Endpoint, SwitchReason) + Send + Sync>;

/// Assumed frame duration until one is measured, ms.
const DEFAULT_FRAME_MS: u32 = 33;
/// Audio tags seen without any video before an input counts as audio-only.
const AUDIO_ONLY_AFTER: u32 = 50;
/// A jump of the input's own timestamps (within one session) beyond these is a discontinuity: re-anchored.
const JUMP_BACK_MS: i64 = 1_000;
const JUMP_FORWARD_MS: i64 = 10_000;

/// What the router knows of one input's current session.
#[derive(Default)]
struct InputCtx {
    session: Option<u64>,
    video_seq: Option<Tag>,
    audio_seq: Option<Tag>,
    meta: Option<Tag>,
    seen_video: bool,
    audio_tags: u32,
    /// Timestamp of the newest audio or video tag.
    last_ts: Option<u32>,
    /// The newest video keyframe (snapshots of the input decode it on demand).
    last_key: Option<Tag>,
}

impl InputCtx {
    fn observe(&mut self, tag: &Tag) {
        match tag.kind {
            TagKind::Video => {
                self.seen_video = true;
                if flv::is_sequence_header(tag) {
                    self.video_seq = Some(tag.clone());
                } else if flv::is_video_keyframe(tag) {
                    self.last_key = Some(tag.clone());
                }
            }
            TagKind::Audio => {
                self.audio_tags = self.audio_tags.saturating_add(1);
                if flv::is_sequence_header(tag) {
                    self.audio_seq = Some(tag.clone());
                }
            }
            TagKind::Script => {
                if flv::is_metadata(tag) {
                    self.meta = Some(tag.clone());
                }
            }
        }
    }

    /// Whether a decoder can start at `tag` of this input.
    fn is_resumption(&self, tag: &Tag) -> bool {
        flv::is_video_keyframe(tag)
            || (tag.kind == TagKind::Audio
                && !self.seen_video
                && self.audio_tags >= AUDIO_ONLY_AFTER
                && !flv::is_sequence_header(tag))
    }
}

pub(crate) struct Router {
    project: String,
    inputs: [InputCtx; 2],
    /// The input forwarded (or last forwarded).
    active: Option<Endpoint>,
    /// The session of `active` being forwarded; `None` while waiting to rejoin it after it reconnected.
    joined: Option<u64>,
    pending: Option<(Endpoint, SwitchReason)>,
    offset: i64,
    last_out: Option<u32>,
    /// Input timestamp of the last forwarded video frame, for the frame duration.
    last_video_in: Option<u32>,
    frame_ms: u32,
    /// FLV header, then the metadata and sequence headers as forwarded last.
    preamble: Vec<gst::Buffer>,
    sinks: Arc<Vec<Arc<dyn TagSink>>>,
    switches: u32,
    on_switch: OnSwitch,
}

/// A whole FLV tag at `ts` as a buffer.
fn tag_buffer(tag: &Tag, ts: u32) -> Option<gst::Buffer> {
    let bytes = tag.encode_at(ts)?;
    let mut buffer = gst::Buffer::from_mut_slice(bytes);
    if let Some(b) = buffer.get_mut() {
        let t = gst::ClockTime::from_mseconds(ts as u64);
        b.set_pts(t);
        b.set_dts(t);
    }
    Some(buffer)
}

fn flv_header_buffer() -> gst::Buffer {
    let mut h = Vec::with_capacity(flv::FILE_HEADER_LEN);
    flv::write_header(&mut h, true, true);
    gst::Buffer::from_mut_slice(h)
}

impl Router {
    pub(crate) fn new(project: &str, on_switch: OnSwitch) -> Self {
        Self {
            project: project.to_string(),
            inputs: Default::default(),
            active: None,
            joined: None,
            pending: None,
            offset: 0,
            last_out: None,
            last_video_in: None,
            frame_ms: DEFAULT_FRAME_MS,
            preamble: vec![flv_header_buffer()],
            sinks: Arc::new(Vec::new()),
            switches: 0,
            on_switch,
        }
    }

    /// The outputs, in order.
    pub(crate) fn set_sinks(&mut self, sinks: Vec<Arc<dyn TagSink>>) {
        self.sinks = Arc::new(sinks);
    }

    /// Input `e` starts a new session: what it said before no longer applies.
    pub(crate) fn begin_session(&mut self, e: Endpoint, session: u64) {
        self.inputs[e.index()] = InputCtx {
            session: Some(session),
            ..Default::default()
        };
    }

    /// Input `e` is gone (removed from the project): its tags are ignored until it begins a session again.
    pub(crate) fn end_input(&mut self, e: Endpoint) {
        self.inputs[e.index()] = InputCtx::default();
    }

    /// Asks for `to` to become the active input at its next resumption point. Asking for the active input
    /// cancels a pending switch.
    pub(crate) fn request(&mut self, to: Endpoint, reason: SwitchReason) {
        if self.active == Some(to) {
            if self.pending.take().is_some() {
                tracing::info!(relay = %self.project, input = to.as_str(), "switch cancelled");
            }
            return;
        }
        if self.pending.map(|p| p.0) != Some(to) {
            tracing::info!(relay = %self.project, to = to.as_str(), reason = reason.as_str(), "switch requested; waiting for a keyframe");
        }
        self.pending = Some((to, reason));
    }

    /// The input being forwarded.
    pub(crate) fn active(&self) -> Option<Endpoint> {
        self.active
    }

    /// Where the router is headed: the pending switch's input, else the active one.
    pub(crate) fn target(&self) -> Option<Endpoint> {
        self.pending.map(|p| p.0).or(self.active)
    }

    /// Switches that landed.
    /// Input `e`'s newest keyframe as a small FLV file (header, video sequence header, the keyframe), for a
    /// snapshot; `None` before it sent both.
    pub(crate) fn keyframe_flv(&self, e: Endpoint) -> Option<Vec<u8>> {
        let ctx = &self.inputs[e.index()];
        let (seq, key) = (ctx.video_seq.as_ref()?, ctx.last_key.as_ref()?);
        let mut out =
            Vec::with_capacity(flv::FILE_HEADER_LEN + seq.data.len() + key.data.len() + 40);
        flv::write_header(&mut out, false, true);
        out.extend(seq.encode_at(0)?);
        out.extend(key.encode_at(0)?);
        Some(out)
    }

    pub(crate) fn switches(&self) -> u32 {
        self.switches
    }

    /// A tag of input `e`'s session `session`.
    pub(crate) fn on_tag(&mut self, e: Endpoint, session: u64, tag: Tag) {
        let ctx = &mut self.inputs[e.index()];
        if ctx.session != Some(session) {
            return;
        }
        let prev_ts = ctx.last_ts;
        ctx.observe(&tag);
        if tag.kind != TagKind::Script {
            ctx.last_ts = Some(tag.timestamp);
        }
        let is_active = self.active == Some(e);
        let joined = is_active && self.joined == Some(session);
        let join = match self.pending {
            Some((to, _)) => to == e,
            None => is_active && !joined,
        };
        if join {
            if self.inputs[e.index()].is_resumption(&tag) {
                self.land(e, session, &tag);
            }
            return;
        }
        if !joined {
            return;
        }
        if let (Some(prev), true) = (prev_ts, tag.kind != TagKind::Script) {
            let d = tag.timestamp as i64 - prev as i64;
            if !(-JUMP_BACK_MS..=JUMP_FORWARD_MS).contains(&d) {
                tracing::warn!(relay = %self.project, input = e.as_str(), from = prev, to = tag.timestamp, "input timestamps jumped; re-anchoring");
                self.anchor(tag.timestamp);
                self.last_video_in = None;
            }
        }
        self.forward(e, &tag);
    }

    /// Sets the offset so that input time `in_ts` comes out one frame after the last output timestamp.
    fn anchor(&mut self, in_ts: u32) {
        self.offset = match self.last_out {
            None => 0,
            Some(last) => in_ts as i64 - (last as i64 + self.frame_ms as i64),
        };
    }

    fn land(&mut self, e: Endpoint, session: u64, tag: &Tag) {
        let from = self.active;
        let reason = self.pending.take().map(|p| p.1);
        self.active = Some(e);
        self.joined = Some(session);
        self.anchor(tag.timestamp);
        self.last_video_in = None;
        match (from, reason) {
            (Some(from), Some(reason)) if from != e => {
                self.switches += 1;
                tracing::info!(relay = %self.project, from = from.as_str(), to = e.as_str(), reason = reason.as_str(), in_ts = tag.timestamp, offset = self.offset, "input switched");
                (self.on_switch)(from, e, reason);
            }
            (None, _) => {
                tracing::info!(relay = %self.project, input = e.as_str(), in_ts = tag.timestamp, "forwarding input")
            }
            _ => {
                tracing::info!(relay = %self.project, input = e.as_str(), in_ts = tag.timestamp, offset = self.offset, "input rejoined")
            }
        }
        // Headers of the new input, at the keyframe's time, replace the old ones (also for outputs that
        // start later).
        let ts = self.out_ts(tag.timestamp);
        let ctx = &self.inputs[e.index()];
        let headers: Vec<gst::Buffer> = [&ctx.meta, &ctx.video_seq, &ctx.audio_seq]
            .into_iter()
            .flatten()
            .filter_map(|t| tag_buffer(t, ts))
            .collect();
        self.preamble.truncate(1);
        self.preamble.extend(headers.iter().cloned());
        for h in headers {
            self.send(&OutTag {
                buffer: h,
                resumption: false,
            });
        }
        self.forward(e, tag);
    }

    fn out_ts(&mut self, in_ts: u32) -> u32 {
        let floor = self.last_out.map_or(0, |l| l as i64);
        let v = (in_ts as i64 - self.offset).clamp(floor, u32::MAX as i64) as u32;
        self.last_out = Some(v);
        v
    }

    fn forward(&mut self, e: Endpoint, tag: &Tag) {
        let resumption = self.inputs[e.index()].is_resumption(tag);
        let is_header = flv::is_sequence_header(tag) || flv::is_metadata(tag);
        if tag.kind == TagKind::Video && !is_header {
            if let Some(prev) = self.last_video_in {
                let d = tag.timestamp.wrapping_sub(prev);
                if (1..=200).contains(&d) {
                    self.frame_ms = d.min(100);
                }
            }
            self.last_video_in = Some(tag.timestamp);
        }
        let ts = self.out_ts(tag.timestamp);
        let Some(buffer) = tag_buffer(tag, ts) else {
            return;
        };
        if is_header {
            self.replace_header(tag, &buffer);
        }
        self.send(&OutTag { buffer, resumption });
    }

    /// A sequence header or metadata of the active input arrived mid-stream: later starts send it.
    fn replace_header(&mut self, tag: &Tag, buffer: &gst::Buffer) {
        let same_slot = |b: &gst::Buffer| {
            let Ok(map) = b.map_readable() else {
                return false;
            };
            let Some(kind) = map.first().and_then(|&t| flv::TagKind::from_type(t)) else {
                return false;
            };
            kind == tag.kind
        };
        let old = self.preamble.iter().skip(1).position(same_slot);
        match old {
            Some(i) => self.preamble[i + 1] = buffer.clone(),
            None => self.preamble.push(buffer.clone()),
        }
    }

    fn send(&self, tag: &OutTag) {
        for s in self.sinks.iter() {
            s.push(tag, &self.preamble);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Decodes the single FLV tag (or file header) in a buffer.
    pub(crate) fn decode(b: &gst::Buffer) -> Option<Tag> {
        let map = b.map_readable().ok()?;
        let mut p = flv::Parser::new();
        p.push(&map);
        match p.next_item()? {
            flv::Item::Tag(t) => Some(t),
            flv::Item::Header(_) => None,
        }
    }

    /// Records what an output would send: it starts at the first resumption point with the preamble.
    #[derive(Default)]
    pub(crate) struct Recorder {
        pub sent: Mutex<Vec<Tag>>,
        started: Mutex<bool>,
    }

    impl TagSink for Recorder {
        fn push(&self, tag: &OutTag, preamble: &[gst::Buffer]) {
            let mut started = self.started.lock().unwrap();
            let mut sent = self.sent.lock().unwrap();
            if !*started {
                if !tag.resumption {
                    return;
                }
                *started = true;
                sent.extend(preamble.iter().filter_map(decode));
            }
            sent.extend(decode(&tag.buffer));
        }
    }

    fn video(ts: u32, key: bool, marker: u8) -> Tag {
        let b0 = if key { 0x17 } else { 0x27 };
        Tag::new(TagKind::Video, ts, vec![b0, 1, 0, 0, 0, marker])
    }

    fn audio(ts: u32, marker: u8) -> Tag {
        Tag::new(TagKind::Audio, ts, vec![0xAF, 1, marker])
    }

    fn avc_seq(marker: u8) -> Tag {
        Tag::new(TagKind::Video, 0, vec![0x17, 0, 0, 0, 0, marker])
    }

    fn aac_seq(marker: u8) -> Tag {
        Tag::new(TagKind::Audio, 0, vec![0xAF, 0, marker])
    }

    type Switches = Arc<Mutex<Vec<(Endpoint, Endpoint, SwitchReason)>>>;

    fn router() -> (Router, Arc<Recorder>, Switches) {
        gst::init().unwrap();
        let switches: Switches = Arc::default();
        let s = switches.clone();
        let mut r = Router::new(
            "t",
            Box::new(move |a, b, why| s.lock().unwrap().push((a, b, why))),
        );
        let rec = Arc::new(Recorder::default());
        r.set_sinks(vec![rec.clone()]);
        (r, rec, switches)
    }

    /// Feeds `secs` seconds of 30 fps video (keyframe each second) and 50 audio tags per second, from `start`.
    fn feed(r: &mut Router, e: Endpoint, session: u64, start: u32, ms: u32, marker: u8) {
        let mut t = 0;
        while t < ms {
            let ts = start + t;
            if t % 33 == 0 {
                r.on_tag(e, session, video(ts, t % 990 == 0, marker));
            }
            if t % 20 == 0 {
                r.on_tag(e, session, audio(ts, marker));
            }
            t += 1;
        }
    }

    fn open(r: &mut Router, e: Endpoint, session: u64, marker: u8) {
        r.begin_session(e, session);
        r.on_tag(e, session, avc_seq(marker));
        r.on_tag(e, session, aac_seq(marker));
    }

    fn assert_monotonic(tags: &[Tag]) {
        for w in tags.windows(2) {
            assert!(
                w[1].timestamp >= w[0].timestamp,
                "{:?} then {:?}",
                w[0],
                w[1]
            );
        }
    }

    #[test]
    fn forwards_from_the_first_keyframe_with_headers_first() {
        let (mut r, rec, _) = router();
        open(&mut r, Endpoint::Main, 1, 1);
        r.request(Endpoint::Main, SwitchReason::Manual);
        // Inter frames before the first keyframe are not forwarded.
        r.on_tag(Endpoint::Main, 1, video(5000, false, 1));
        r.on_tag(Endpoint::Main, 1, audio(5010, 1));
        r.on_tag(Endpoint::Main, 1, video(5033, true, 1));
        r.on_tag(Endpoint::Main, 1, audio(5040, 1));
        let sent = rec.sent.lock().unwrap().clone();
        assert!(flv::is_sequence_header(&sent[0]) && sent[0].kind == TagKind::Video);
        assert!(flv::is_sequence_header(&sent[1]) && sent[1].kind == TagKind::Audio);
        assert!(flv::is_video_keyframe(&sent[2]));
        // The first input's timestamps pass through.
        assert_eq!(sent[2].timestamp, 5033);
        assert_eq!(sent[3].timestamp, 5040);
        assert_eq!(r.active(), Some(Endpoint::Main));
        assert_eq!(r.switches(), 0);
    }

    #[test]
    fn switch_lands_on_keyframe_and_continues_timestamps() {
        let (mut r, rec, switches) = router();
        open(&mut r, Endpoint::Main, 1, 1);
        open(&mut r, Endpoint::Backup, 2, 2);
        r.request(Endpoint::Main, SwitchReason::Manual);
        feed(&mut r, Endpoint::Main, 1, 100_000, 3000, 1);
        let last_main = rec.sent.lock().unwrap().last().unwrap().timestamp;
        // The backup's clock is far away; the switch waits for its keyframe.
        r.request(Endpoint::Backup, SwitchReason::Ended);
        r.on_tag(Endpoint::Backup, 2, video(7_000_010, false, 2));
        assert_eq!(r.active(), Some(Endpoint::Main));
        r.on_tag(Endpoint::Backup, 2, video(7_000_043, true, 2));
        assert_eq!(r.active(), Some(Endpoint::Backup));
        feed(&mut r, Endpoint::Backup, 2, 7_000_076, 2000, 2);
        // Late main tags are dropped now.
        r.on_tag(Endpoint::Main, 1, video(103_100, true, 1));
        let sent = rec.sent.lock().unwrap().clone();
        assert_monotonic(&sent);
        let first_backup = sent.iter().position(|t| t.data.last() == Some(&2)).unwrap();
        // Headers of the backup, then its keyframe, one frame after main's last timestamp.
        assert!(flv::is_sequence_header(&sent[first_backup]));
        assert!(flv::is_sequence_header(&sent[first_backup + 1]));
        let kf = &sent[first_backup + 2];
        assert!(flv::is_video_keyframe(kf));
        assert_eq!(kf.timestamp, last_main + 33);
        assert!(sent[first_backup..]
            .iter()
            .all(|t| t.data.last() == Some(&2)));
        assert_eq!(
            *switches.lock().unwrap(),
            vec![(Endpoint::Main, Endpoint::Backup, SwitchReason::Ended)]
        );
        assert_eq!(r.switches(), 1);
    }

    #[test]
    fn active_input_reconnecting_is_rejoined_without_a_switch() {
        let (mut r, rec, switches) = router();
        open(&mut r, Endpoint::Main, 1, 1);
        r.request(Endpoint::Main, SwitchReason::Manual);
        feed(&mut r, Endpoint::Main, 1, 50_000, 2000, 1);
        let last = rec.sent.lock().unwrap().last().unwrap().timestamp;
        // A new session restarts its clock at 0: its tags continue after the last ones sent.
        open(&mut r, Endpoint::Main, 3, 3);
        r.on_tag(Endpoint::Main, 1, video(52_100, true, 1)); // stale session
        feed(&mut r, Endpoint::Main, 3, 0, 2000, 3);
        let sent = rec.sent.lock().unwrap().clone();
        assert_monotonic(&sent);
        let k = sent
            .iter()
            .position(|t| t.data.last() == Some(&3) && flv::is_video_keyframe(t))
            .unwrap();
        assert_eq!(sent[k].timestamp, last + 33);
        // The new session's sequence headers (a playlist's next file) go out first, at the keyframe's time.
        assert_eq!(sent[k - 2].data, avc_seq(3).data);
        assert_eq!(sent[k - 1].data, aac_seq(3).data);
        assert_eq!(sent[k - 1].timestamp, last + 33);
        assert!(!sent.iter().any(|t| t.timestamp == 52_100));
        assert!(switches.lock().unwrap().is_empty());
    }

    #[test]
    fn timestamp_jump_within_a_session_is_re_anchored() {
        let (mut r, rec, _) = router();
        open(&mut r, Endpoint::Main, 1, 1);
        r.request(Endpoint::Main, SwitchReason::Manual);
        feed(&mut r, Endpoint::Main, 1, 10_000, 1000, 1);
        let last = rec.sent.lock().unwrap().last().unwrap().timestamp;
        feed(&mut r, Endpoint::Main, 1, 0, 500, 1);
        feed(&mut r, Endpoint::Main, 1, 900_000, 500, 1);
        let sent = rec.sent.lock().unwrap().clone();
        assert_monotonic(&sent);
        let end = sent.last().unwrap().timestamp;
        assert!(end > last && end < last + 1200, "{last} .. {end}");
    }

    #[test]
    fn request_for_the_active_input_cancels_a_pending_switch() {
        let (mut r, _rec, switches) = router();
        open(&mut r, Endpoint::Main, 1, 1);
        open(&mut r, Endpoint::Backup, 2, 2);
        r.request(Endpoint::Main, SwitchReason::Manual);
        feed(&mut r, Endpoint::Main, 1, 0, 100, 1);
        r.request(Endpoint::Backup, SwitchReason::Stalled);
        assert_eq!(r.target(), Some(Endpoint::Backup));
        r.request(Endpoint::Main, SwitchReason::Manual);
        assert_eq!(r.target(), Some(Endpoint::Main));
        feed(&mut r, Endpoint::Backup, 2, 0, 2000, 2);
        assert_eq!(r.active(), Some(Endpoint::Main));
        assert!(switches.lock().unwrap().is_empty());
    }

    #[test]
    fn late_output_gets_current_headers_then_starts_at_keyframe() {
        let (mut r, _rec, _) = router();
        open(&mut r, Endpoint::Main, 1, 1);
        open(&mut r, Endpoint::Backup, 2, 2);
        r.request(Endpoint::Main, SwitchReason::Manual);
        feed(&mut r, Endpoint::Main, 1, 0, 1500, 1);
        r.request(Endpoint::Backup, SwitchReason::Ended);
        feed(&mut r, Endpoint::Backup, 2, 0, 1500, 2);
        let late = Arc::new(Recorder::default());
        r.set_sinks(vec![late.clone()]);
        feed(&mut r, Endpoint::Backup, 2, 1500, 1500, 2);
        let sent = late.sent.lock().unwrap().clone();
        assert!(sent.len() > 10);
        assert_eq!(sent[0].data, avc_seq(2).data);
        assert_eq!(sent[1].data, aac_seq(2).data);
        assert!(flv::is_video_keyframe(&sent[2]));
        assert_monotonic(&sent);
    }

    #[test]
    fn audio_only_input_resumes_on_audio() {
        let (mut r, rec, _) = router();
        r.begin_session(Endpoint::Main, 1);
        r.on_tag(Endpoint::Main, 1, aac_seq(1));
        r.request(Endpoint::Main, SwitchReason::Manual);
        for i in 0..100 {
            r.on_tag(Endpoint::Main, 1, audio(i * 20, 1));
        }
        let sent = rec.sent.lock().unwrap().clone();
        assert!(sent.len() > 40, "{}", sent.len());
        assert_eq!(sent[0].data, aac_seq(1).data);
    }

    #[test]
    fn ended_input_is_ignored() {
        let (mut r, rec, _) = router();
        open(&mut r, Endpoint::Main, 1, 1);
        r.request(Endpoint::Main, SwitchReason::Manual);
        r.end_input(Endpoint::Main);
        feed(&mut r, Endpoint::Main, 1, 0, 2000, 1);
        assert!(rec.sent.lock().unwrap().is_empty());
    }
}
