//! H.264 SEI `user_data_unregistered` messages put into the encoded output: the mix's application data (on
//! keyframes and after each change), the inputs' sound levels (every frame) and, when asked, the inputs' own
//! messages. Players read them without decoding anything else (ZEGO's clients get them through their SEI
//! callback).
//!
//! Input messages: `h264parse` (inside the input hub's decodebin) attaches a
//! `GstVideoSEIUserDataUnregisteredMeta` to each access unit carrying one and `avdec_h264` copies it onto the
//! decoded frame, so the video branch finds them on the frames it pushes ([`SeiSource::pass`], with the frame's
//! running time). Each encoder has its own queue of them ([`PassQueue`]) and puts every message in front of
//! the first output frame whose time span reaches the message's running time.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, AtomicU32, Ordering},
        Arc, Mutex, Weak,
    },
};

use gst::prelude::*;
use gst_video::video_meta::VideoSeiUserDataUnregisteredMeta;

/// UUID of the message carrying the mix's application data, as given.
pub const USER_DATA_UUID: [u8; 16] = *b"tessera-userdata";
/// UUID of the message carrying sound levels, as JSON `{"levels":[{"id":1,"level":62}]}` (level 0–100).
pub const SOUND_LEVEL_UUID: [u8; 16] = *b"tessera-soundlvl";

/// One SEI NAL unit (no length prefix): header, `user_data_unregistered` payload, trailing bits, with emulation
/// prevention bytes inserted as H.264 requires.
pub fn sei_nal(uuid: &[u8; 16], data: &[u8]) -> Vec<u8> {
    let mut rbsp = vec![5u8];
    let mut size = uuid.len() + data.len();
    while size >= 255 {
        rbsp.push(255);
        size -= 255;
    }
    rbsp.push(size as u8);
    rbsp.extend_from_slice(uuid);
    rbsp.extend_from_slice(data);
    rbsp.push(0x80);
    let mut nal = vec![0x06];
    let mut zeros = 0;
    for &b in &rbsp {
        if zeros >= 2 && b <= 3 {
            nal.push(3);
            zeros = 0;
        }
        nal.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    nal
}

/// Sound level 0–100 of interleaved float samples: −60 dBFS and below is 0, full scale is 100.
pub fn level_of(samples: &[f32]) -> u32 {
    if samples.is_empty() {
        return 0;
    }
    let rms = (samples
        .iter()
        .map(|s| f64::from(*s) * f64::from(*s))
        .sum::<f64>()
        / samples.len() as f64)
        .sqrt();
    let db = 20.0 * rms.max(1e-9).log10();
    ((db + 60.0) * 100.0 / 60.0).clamp(0.0, 100.0).round() as u32
}

/// Offset of the first slice NAL (types 1–5) of a 4-byte length-prefixed access unit, or its end.
fn first_slice_offset(au: &[u8]) -> usize {
    let mut at = 0;
    while at + 5 <= au.len() {
        let len = u32::from_be_bytes([au[at], au[at + 1], au[at + 2], au[at + 3]]) as usize;
        if (1..=5).contains(&(au[at + 4] & 0x1f)) {
            return at;
        }
        at += 4 + len;
    }
    au.len().min(at)
}

/// Running time of `pts` in the segment that `pad` last sent.
fn running_time(pad: &gst::Pad, pts: gst::ClockTime) -> Option<gst::ClockTime> {
    let event = pad.sticky_event::<gst::event::Segment>(0)?;
    event
        .segment()
        .downcast_ref::<gst::ClockTime>()?
        .to_running_time(pts)
}

/// An input's `sound_level_id` and its live level.
pub type LevelSource = (u32, Arc<AtomicU32>);

/// Most input messages one encoder holds while waiting for their output frame; older ones are dropped beyond.
const PASS_MAX_MESSAGES: usize = 256;
/// Most bytes of input messages one encoder holds (a larger single message is dropped).
const PASS_MAX_BYTES: usize = 1 << 20;

/// The `user_data_unregistered` messages (UUID, payload) that the input's H.264 carried with this decoded frame.
pub fn input_messages(frame: &gst::BufferRef) -> Vec<([u8; 16], Vec<u8>)> {
    frame
        .iter_meta::<VideoSeiUserDataUnregisteredMeta>()
        .map(|m| (m.uuid(), m.data().to_vec()))
        .collect()
}

/// Input messages waiting for the output frame of their moment, for one encoder.
#[derive(Default)]
pub struct PassQueue {
    /// `(running time in ns, SEI NAL)`, in running-time order.
    waiting: VecDeque<(u64, Arc<[u8]>)>,
    bytes: usize,
    /// Whether dropping was logged already (once per encoder).
    warned: bool,
}

impl PassQueue {
    fn push(&mut self, running_time: u64, nal: Arc<[u8]>) {
        let at = self
            .waiting
            .iter()
            .rposition(|(t, _)| *t <= running_time)
            .map_or(0, |i| i + 1);
        self.bytes += nal.len();
        self.waiting.insert(at, (running_time, nal));
        let mut dropped = false;
        while self.waiting.len() > PASS_MAX_MESSAGES || self.bytes > PASS_MAX_BYTES {
            let Some((_, old)) = self.waiting.pop_front() else {
                break;
            };
            self.bytes -= old.len();
            dropped = true;
        }
        if dropped && !self.warned {
            self.warned = true;
            tracing::warn!(
                "input SEI messages dropped: the output does not keep up (logged once per encoder)"
            );
        }
    }

    /// The messages whose moment lies before `end` (running time, ns), oldest first.
    fn take_until(&mut self, end: u64) -> Vec<Arc<[u8]>> {
        let mut due = Vec::new();
        while self.waiting.front().is_some_and(|(t, _)| *t < end) {
            if let Some((_, nal)) = self.waiting.pop_front() {
                self.bytes -= nal.len();
                due.push(nal);
            }
        }
        due
    }

    fn clear(&mut self) {
        self.waiting.clear();
        self.bytes = 0;
    }
}

/// What the mix wants carried; read by the encoder for every frame.
#[derive(Default)]
pub struct SeiSource {
    /// The data and whether it changed since it was last sent.
    user_data: Mutex<Option<(Vec<u8>, bool)>>,
    /// `(sound_level_id, level)` per input, when sound levels are on.
    levels: Mutex<Option<Vec<LevelSource>>>,
    /// Whether the inputs' own messages are carried into the output.
    pass_input: AtomicBool,
    /// One queue of input messages per encoder (see [`SeiSource::attach`]).
    pass_queues: Mutex<Vec<Weak<Mutex<PassQueue>>>>,
}

impl SeiSource {
    /// Turns carrying the inputs' own messages on or off; off forgets what waits.
    pub fn set_pass_input(&self, on: bool) {
        if !self.pass_input.swap(on, Ordering::Relaxed) || on {
            return;
        }
        for q in self.pass_queues.lock().unwrap().iter() {
            if let Some(q) = q.upgrade() {
                q.lock().unwrap().clear();
            }
        }
    }

    /// Whether the inputs' own messages are wanted (one atomic load: the video branches ask for every frame).
    pub fn passes_input(&self) -> bool {
        self.pass_input.load(Ordering::Relaxed)
    }

    /// Hands an input frame's messages to every encoder, to go out on the output frame of `running_time` (the
    /// frame's time in the mix pipeline).
    pub fn pass(&self, running_time: gst::ClockTime, messages: Vec<([u8; 16], Vec<u8>)>) {
        if messages.is_empty() || !self.passes_input() {
            return;
        }
        let nals: Vec<Arc<[u8]>> = messages
            .iter()
            .map(|(uuid, data)| Arc::from(sei_nal(uuid, data)))
            .collect();
        let mut queues = self.pass_queues.lock().unwrap();
        queues.retain(|q| q.strong_count() > 0);
        for q in queues.iter().filter_map(Weak::upgrade) {
            let mut q = q.lock().unwrap();
            for nal in &nals {
                q.push(running_time.nseconds(), nal.clone());
            }
        }
    }

    /// A new encoder's queue of input messages.
    fn pass_queue(&self) -> Arc<Mutex<PassQueue>> {
        let q = Arc::new(Mutex::new(PassQueue::default()));
        self.pass_queues.lock().unwrap().push(Arc::downgrade(&q));
        q
    }

    pub fn set_user_data(&self, data: Option<Vec<u8>>) {
        let mut current = self.user_data.lock().unwrap();
        if current.as_ref().map(|(d, _)| d) != data.as_ref() {
            *current = data.map(|d| (d, true));
        }
    }

    pub fn set_levels(&self, levels: Option<Vec<LevelSource>>) {
        *self.levels.lock().unwrap() = levels;
    }

    /// The NAL units to put in front of the next frame.
    fn nals(&self, keyframe: bool) -> Vec<Vec<u8>> {
        let mut nals = Vec::new();
        if let Some((data, changed)) = self.user_data.lock().unwrap().as_mut() {
            if keyframe || *changed {
                nals.push(sei_nal(&USER_DATA_UUID, data));
                *changed = false;
            }
        }
        if let Some(levels) = self.levels.lock().unwrap().as_ref() {
            let entries: Vec<String> = levels
                .iter()
                .map(|(id, l)| format!("{{\"id\":{id},\"level\":{}}}", l.load(Ordering::Relaxed)))
                .collect();
            let json = format!("{{\"levels\":[{}]}}", entries.join(","));
            nals.push(sei_nal(&SOUND_LEVEL_UUID, json.as_bytes()));
        }
        nals
    }

    /// Puts the pending SEI in front of an AVC (4-byte length-prefixed) access unit from x264enc: the mix's own
    /// messages, then, given `pass` (the encoder's queue and the frame's running time), the input messages whose
    /// moment this frame carries.
    pub fn apply(
        &self,
        buffer: &mut gst::Buffer,
        pass: Option<(&Mutex<PassQueue>, gst::ClockTime)>,
    ) {
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let own = self.nals(keyframe);
        let passed = match pass.filter(|_| self.passes_input()) {
            Some((q, running_time)) => {
                // The frame covers [start, start + duration): a message of that moment or before goes on it.
                let end =
                    running_time.nseconds() + buffer.duration().map_or(1, |d| d.nseconds().max(1));
                q.lock().unwrap().take_until(end)
            }
            None => Vec::new(),
        };
        let nals: Vec<&[u8]> = own
            .iter()
            .map(Vec::as_slice)
            .chain(passed.iter().map(|n| &n[..]))
            .collect();
        if nals.is_empty() {
            return;
        }
        let Ok(map) = buffer.map_readable() else {
            return;
        };
        // SEI goes after the access unit delimiter and parameter sets, right before the first slice.
        let at = first_slice_offset(&map);
        let mut data =
            Vec::with_capacity(map.len() + nals.iter().map(|n| n.len() + 4).sum::<usize>());
        data.extend_from_slice(&map[..at]);
        for nal in &nals {
            data.extend_from_slice(&(nal.len() as u32).to_be_bytes());
            data.extend_from_slice(nal);
        }
        data.extend_from_slice(&map[at..]);
        drop(map);
        let mut out = gst::Buffer::from_mut_slice(data);
        {
            let o = out.get_mut().expect("new buffer is writable");
            o.set_pts(buffer.pts());
            o.set_dts(buffer.dts());
            o.set_duration(buffer.duration());
            o.set_flags(buffer.flags());
        }
        *buffer = out;
    }

    /// Installs the SEI writer on an H.264 encoder's source pad, with the encoder's own queue of input messages.
    pub fn attach(self: &Arc<Self>, encoder: &gst::Element) {
        let weak = Arc::downgrade(self);
        let pass = self.pass_queue();
        if let Some(pad) = encoder.static_pad("src") {
            pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                if let (Some(sei), Some(gst::PadProbeData::Buffer(buffer))) =
                    (weak.upgrade(), info.data.as_mut())
                {
                    // x264enc shifts its timestamps (by 1000 h, so DTS never goes negative) and its segment
                    // with them: the running time is what compares with the inputs' frames.
                    let running_time = sei
                        .passes_input()
                        .then(|| running_time(pad, buffer.pts()?))
                        .flatten();
                    sei.apply(buffer, running_time.map(|rt| (&*pass, rt)));
                }
                gst::PadProbeReturn::Ok
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sei_nal_layout_and_emulation_prevention() {
        let nal = sei_nal(&USER_DATA_UUID, &[0, 0, 1, 7]);
        assert_eq!(&nal[..3], &[0x06, 5, 20]);
        assert_eq!(&nal[3..19], &USER_DATA_UUID);
        // 00 00 01 gets an emulation prevention byte: 00 00 03 01.
        assert_eq!(&nal[19..], &[0, 0, 3, 1, 7, 0x80]);
        let long = sei_nal(&USER_DATA_UUID, &[b'x'; 300]);
        assert_eq!(&long[1..4], &[5, 255, 61]);
    }

    #[test]
    fn sei_lands_after_parameter_sets_before_the_first_slice() {
        let au = [
            0, 0, 0, 2, 9, 0x10, 0, 0, 0, 2, 0x67, 1, 0, 0, 0, 2, 0x65, 7,
        ];
        assert_eq!(first_slice_offset(&au), 12);
        assert_eq!(first_slice_offset(&au[..12]), 12);
    }

    #[test]
    fn levels_map_dbfs_to_0_100() {
        assert_eq!(level_of(&[0.0; 100]), 0);
        let sine: Vec<f32> = (0..4800).map(|i| (i as f32 * 0.0576).sin() * 0.1).collect();
        assert!((55..=68).contains(&level_of(&sine)), "{}", level_of(&sine));
        assert_eq!(level_of(&[1.0, -1.0]), 100);
    }

    #[test]
    fn user_data_goes_on_keyframes_and_after_changes() {
        let s = SeiSource::default();
        s.set_user_data(Some(b"hi".to_vec()));
        assert_eq!(s.nals(false).len(), 1);
        assert_eq!(s.nals(false).len(), 0);
        assert_eq!(s.nals(true).len(), 1);
        s.set_user_data(Some(b"hi".to_vec()));
        assert_eq!(s.nals(false).len(), 0);
        s.set_levels(Some(vec![(7, Arc::new(AtomicU32::new(42)))]));
        let nals = s.nals(false);
        assert!(
            String::from_utf8_lossy(&nals[0]).contains("{\"levels\":[{\"id\":7,\"level\":42}]}")
        );
    }

    /// An access unit of AUD, SPS and one slice at `pts` (ms), 33 ms long.
    fn access_unit(pts_ms: u64) -> gst::Buffer {
        let mut b = gst::Buffer::from_slice([
            0u8, 0, 0, 2, 9, 0x10, 0, 0, 0, 2, 0x67, 1, 0, 0, 0, 2, 0x65, 7,
        ]);
        let m = b.get_mut().unwrap();
        m.set_pts(gst::ClockTime::from_mseconds(pts_ms));
        m.set_duration(gst::ClockTime::from_mseconds(33));
        b
    }

    /// The access unit at `pts_ms` as the encoder of `q` sends it (running time = PTS here).
    fn encode(s: &SeiSource, q: &Mutex<PassQueue>, pts_ms: u64) -> gst::Buffer {
        let mut frame = access_unit(pts_ms);
        s.apply(&mut frame, Some((q, gst::ClockTime::from_mseconds(pts_ms))));
        frame
    }

    #[test]
    fn input_messages_go_on_the_frame_of_their_moment_for_every_encoder() {
        gst::init().unwrap();
        let s = Arc::new(SeiSource::default());
        let (q1, q2) = (s.pass_queue(), s.pass_queue());
        let uuid = *b"input-sei-uuid-1";
        // Off: nothing is queued.
        s.pass(
            gst::ClockTime::from_mseconds(10),
            vec![(uuid, b"off".to_vec())],
        );
        s.set_pass_input(true);
        s.pass(
            gst::ClockTime::from_mseconds(50),
            vec![(uuid, b"later".to_vec())],
        );
        s.pass(
            gst::ClockTime::from_mseconds(10),
            vec![(uuid, b"first".to_vec())],
        );
        let frame = encode(&s, &q1, 0);
        let map = frame.map_readable().unwrap();
        // Right before the slice, after AUD and SPS.
        let nal = sei_nal(&uuid, b"first");
        assert_eq!(&map[12..16], &(nal.len() as u32).to_be_bytes());
        assert_eq!(&map[16..16 + nal.len()], &nal[..]);
        assert_eq!(&map[16 + nal.len()..], &[0, 0, 0, 2, 0x65, 7]);
        drop(map);
        // The 50 ms message waits for the frame covering 33..66 ms.
        let frame = encode(&s, &q1, 33);
        assert!(frame.size() > 18);
        let frame = encode(&s, &q1, 66);
        assert_eq!(frame.size(), 18);
        // The other encoder gets both, on its next frame.
        let frame = encode(&s, &q2, 100);
        assert_eq!(frame.size(), 18 + 2 * (4 + sei_nal(&uuid, b"first").len()));
        // Turning it off forgets what waits.
        s.pass(
            gst::ClockTime::from_mseconds(200),
            vec![(uuid, b"x".to_vec())],
        );
        s.set_pass_input(false);
        s.set_pass_input(true);
        let frame = encode(&s, &q1, 300);
        assert_eq!(frame.size(), 18);
    }

    #[test]
    fn waiting_input_messages_are_bounded_oldest_dropped() {
        let mut q = PassQueue::default();
        for t in 0..PASS_MAX_MESSAGES as u64 + 10 {
            q.push(t, Arc::from(vec![0u8; 8]));
        }
        assert_eq!(q.waiting.len(), PASS_MAX_MESSAGES);
        assert_eq!(q.waiting.front().unwrap().0, 10);
        assert!(q.warned);
        q.push(5, Arc::from(vec![1u8; PASS_MAX_BYTES]));
        assert!(q.bytes <= PASS_MAX_BYTES);
        let due = q.take_until(u64::MAX);
        assert!(due.iter().all(|n| n.len() <= PASS_MAX_BYTES));
        assert_eq!(q.bytes, 0);
    }

    #[test]
    fn decoded_frames_hand_over_their_sei_metas() {
        gst::init().unwrap();
        let mut b = gst::Buffer::new();
        VideoSeiUserDataUnregisteredMeta::add(b.get_mut().unwrap(), b"0123456789abcdef", b"hi");
        assert_eq!(
            input_messages(&b),
            vec![(*b"0123456789abcdef", b"hi".to_vec())]
        );
    }
}
