//! Reads H.264 SEI `user_data_unregistered` messages from a live FLV stream (RTMP), without decoding pictures.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use gst::prelude::*;

/// One SEI message: its UUID and its data.
pub type SeiMessage = ([u8; 16], Vec<u8>);

/// Removes H.264 emulation prevention bytes (00 00 03 → 00 00).
fn unescape(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// The `user_data_unregistered` messages of one AVC (4-byte length-prefixed) access unit.
pub fn sei_in_access_unit(data: &[u8]) -> Vec<SeiMessage> {
    let mut found = Vec::new();
    let mut at = 0;
    while at + 4 <= data.len() {
        let len = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let Some(nal) = data.get(at + 4..at + 4 + len) else {
            break;
        };
        at += 4 + len;
        if nal.first().map(|h| h & 0x1f) != Some(6) {
            continue;
        }
        let rbsp = unescape(&nal[1..]);
        let mut p = 0;
        while p < rbsp.len() && rbsp[p] != 0x80 {
            let mut ty = 0usize;
            while rbsp.get(p) == Some(&255) {
                ty += 255;
                p += 1;
            }
            ty += *rbsp.get(p).unwrap_or(&0) as usize;
            p += 1;
            let mut size = 0usize;
            while rbsp.get(p) == Some(&255) {
                size += 255;
                p += 1;
            }
            size += *rbsp.get(p).unwrap_or(&0) as usize;
            p += 1;
            let Some(payload) = rbsp.get(p..p + size) else {
                break;
            };
            if ty == 5 && size >= 16 {
                let mut uuid = [0u8; 16];
                uuid.copy_from_slice(&payload[..16]);
                found.push((uuid, payload[16..].to_vec()));
            }
            p += size;
        }
    }
    found
}

/// Pulls `url` for up to `timeout` and returns every SEI message seen, stopping early once `enough` holds.
pub fn collect_sei(
    url: &str,
    timeout: Duration,
    enough: impl Fn(&[SeiMessage]) -> bool,
) -> Vec<SeiMessage> {
    super::init();
    let desc = format!(
        "rtmp2src location={url} ! flvdemux name=d d.video ! queue ! appsink name=v sync=false d.audio ! queue ! fakesink sync=false"
    );
    let deadline = Instant::now() + timeout;
    let seen: Arc<Mutex<Vec<SeiMessage>>> = Arc::default();
    while Instant::now() < deadline {
        let pipeline = gst::parse::launch(&desc)
            .expect("sei pipeline")
            .downcast::<gst::Pipeline>()
            .unwrap();
        let sink = pipeline
            .by_name("v")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let mut last_media = Instant::now();
        while Instant::now() < deadline {
            match sink.try_pull_sample(gst::ClockTime::from_mseconds(200)) {
                Some(sample) => {
                    last_media = Instant::now();
                    if let Some(map) = sample.buffer().and_then(|b| b.map_readable().ok()) {
                        seen.lock().unwrap().extend(sei_in_access_unit(&map));
                    }
                    if enough(&seen.lock().unwrap()) {
                        let _ = pipeline.set_state(gst::State::Null);
                        return seen.lock().unwrap().clone();
                    }
                }
                None if sink.is_eos() => break,
                // Not published yet, the connection dropped, or it delivers nothing: start over.
                None if pipeline
                    .bus()
                    .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
                    .is_some() =>
                {
                    break
                }
                None if last_media.elapsed() > Duration::from_secs(3) => break,
                None => {}
            }
        }
        let _ = pipeline.set_state(gst::State::Null);
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = seen.lock().unwrap().clone();
    out
}
