//! H.264 SEI `user_data_unregistered` messages put into the encoded output: the mix's application data (on
//! keyframes and after each change) and the inputs' sound levels (every frame). Players read them without
//! decoding anything else (ZEGO's clients get them through their SEI callback).

use std::sync::{
    atomic::{AtomicU32, Ordering},
    Arc, Mutex,
};

use gst::prelude::*;

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

/// An input's `sound_level_id` and its live level.
pub type LevelSource = (u32, Arc<AtomicU32>);

/// What the mix wants carried; read by the encoder for every frame.
#[derive(Default)]
pub struct SeiSource {
    /// The data and whether it changed since it was last sent.
    user_data: Mutex<Option<(Vec<u8>, bool)>>,
    /// `(sound_level_id, level)` per input, when sound levels are on.
    levels: Mutex<Option<Vec<LevelSource>>>,
}

impl SeiSource {
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

    /// Puts the pending SEI in front of an AVC (4-byte length-prefixed) access unit from x264enc.
    pub fn apply(&self, buffer: &mut gst::Buffer) {
        let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let nals = self.nals(keyframe);
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

    /// Installs the SEI writer on an H.264 encoder's source pad.
    pub fn attach(self: &Arc<Self>, encoder: &gst::Element) {
        let weak = Arc::downgrade(self);
        if let Some(pad) = encoder.static_pad("src") {
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let (Some(sei), Some(gst::PadProbeData::Buffer(buffer))) =
                    (weak.upgrade(), info.data.as_mut())
                {
                    sei.apply(buffer);
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
}
