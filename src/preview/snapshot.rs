//! Snapshots: one frame, when someone asks.
//!
//! [`grab`] puts a one-shot probe on a pad: the next buffer that passes is kept (a reference, no copy) and the
//! probe removes itself, so a mix nobody looks at does no work for snapshots. [`to_jpeg`] scales and encodes
//! that frame with GStreamer's own converter (`gst_video_convert_sample`) on a blocking thread, never on a
//! streaming thread of the mix. [`decode_flv_keyframe`] decodes one keyframe of an encoded stream (a relay
//! input's sequence header and its latest keyframe) through the same FLV demuxer the inputs use.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use gst::prelude::*;

/// Why there is no snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum SnapshotError {
    /// No frame passed within the wait: the pipeline is not producing (an input not live, a mix stalled).
    #[error("no frame arrived within {0:?}")]
    NoFrame(Duration),
    /// The frame could not be converted or decoded (logged with the detail).
    #[error("the frame could not be converted: {0}")]
    Convert(String),
    /// [`MAX_AT_ONCE`] snapshots were being made for longer than the wait.
    #[error("the node is busy making other snapshots")]
    Busy,
}

/// Snapshots converted or decoded at once, node-wide: a flood of requests costs at most this many threads' CPU,
/// never the mixes' (the others wait, then are refused).
pub const MAX_AT_ONCE: usize = 2;
/// How long a snapshot waits for its turn.
const TURN_WAIT: Duration = Duration::from_secs(2);

static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_AT_ONCE);

/// Runs `work` on a blocking thread once one of the [`MAX_AT_ONCE`] turns is free.
async fn in_turn<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SnapshotError> + Send + 'static,
) -> Result<T, SnapshotError> {
    in_turn_of(&TURNS, TURN_WAIT, work).await
}

/// Runs `work` on a blocking thread once `turns` has a permit, waiting at most `wait` for it.
async fn in_turn_of<T: Send + 'static>(
    turns: &tokio::sync::Semaphore,
    wait: Duration,
    work: impl FnOnce() -> Result<T, SnapshotError> + Send + 'static,
) -> Result<T, SnapshotError> {
    let _turn = tokio::time::timeout(wait, turns.acquire())
        .await
        .map_err(|_| SnapshotError::Busy)?
        .map_err(|_| SnapshotError::Busy)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SnapshotError::Convert(e.to_string()))?
}

/// How long a snapshot waits for a frame.
pub const FRAME_WAIT: Duration = Duration::from_secs(2);

/// Smallest and largest width a snapshot is scaled to.
pub const MIN_WIDTH: u32 = 16;
pub const MAX_WIDTH: u32 = 3840;

/// The next buffer that passes `pad`, with the pad's caps, or an error after `wait`.
pub async fn grab(pad: &gst::Pad, wait: Duration) -> Result<gst::Sample, SnapshotError> {
    let (tx, rx) = tokio::sync::oneshot::channel::<gst::Sample>();
    // Shared with the probe: whoever takes the sender first wins. A probe that fires after the wait ended finds
    // it gone and just removes itself; one that never fires (the pipeline stopped) goes with the pad.
    let slot = Arc::new(Mutex::new(Some(tx)));
    let probe_slot = slot.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        let Some(tx) = probe_slot.lock().unwrap().take() else {
            return gst::PadProbeReturn::Remove;
        };
        if let Some(gst::PadProbeData::Buffer(buffer)) = &info.data {
            let mut sample = gst::Sample::builder().buffer(buffer);
            let caps = pad.current_caps();
            if let Some(caps) = caps.as_ref() {
                sample = sample.caps(caps);
            }
            let _ = tx.send(sample.build());
        }
        gst::PadProbeReturn::Remove
    });
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(sample)) => Ok(sample),
        _ => {
            slot.lock().unwrap().take();
            Err(SnapshotError::NoFrame(wait))
        }
    }
}

/// `sample` (raw video of any format) as a JPEG `width` pixels wide (never wider than the frame), its height
/// keeping the picture's shape. Runs on a blocking thread.
pub async fn to_jpeg(sample: gst::Sample, width: u32) -> Result<Vec<u8>, SnapshotError> {
    in_turn(move || jpeg_now(&sample, width)).await
}

fn jpeg_now(sample: &gst::Sample, width: u32) -> Result<Vec<u8>, SnapshotError> {
    let caps = sample
        .caps()
        .ok_or_else(|| SnapshotError::Convert("the frame has no caps".into()))?;
    let info = gst_video::VideoInfo::from_caps(caps)
        .map_err(|e| SnapshotError::Convert(format!("caps {caps}: {e}")))?;
    let (w, h) = scaled(info.width(), info.height(), width);
    let to = gst::Caps::builder("image/jpeg")
        .field("width", w as i32)
        .field("height", h as i32)
        .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
        .build();
    let jpeg = gst_video::convert_sample(sample, &to, Some(gst::ClockTime::from_seconds(5)))
        .map_err(|e| SnapshotError::Convert(e.to_string()))?;
    let buffer = jpeg
        .buffer()
        .ok_or_else(|| SnapshotError::Convert("the encoder returned no data".into()))?;
    let map = buffer
        .map_readable()
        .map_err(|e| SnapshotError::Convert(e.to_string()))?;
    Ok(map.to_vec())
}

/// The size a `src_w`×`src_h` picture is scaled to for a snapshot `want` wide: never wider than the source,
/// within [`MIN_WIDTH`, `MAX_WIDTH`], the height in proportion; both even (for 4:2:0 conversions).
pub fn scaled(src_w: u32, src_h: u32, want: u32) -> (u32, u32) {
    let w = want.clamp(MIN_WIDTH, MAX_WIDTH).min(src_w.max(2));
    let h = ((src_h as u64 * w as u64 + src_w as u64 / 2) / src_w.max(1) as u64) as u32;
    (w & !1, (h & !1).max(2))
}

/// Decodes the one keyframe in `flv` (a file header, the video sequence header, the keyframe; see
/// [`crate::flv`]) to a raw frame. For encoded streams nothing else decodes (relay inputs). Runs on a blocking
/// thread; gives up after `wait`.
pub async fn decode_flv_keyframe(
    flv: Vec<u8>,
    wait: Duration,
) -> Result<gst::Sample, SnapshotError> {
    in_turn(move || decode_now(flv, wait)).await
}

fn decode_now(flv: Vec<u8>, wait: Duration) -> Result<gst::Sample, SnapshotError> {
    let fail = |e: &dyn std::fmt::Display| SnapshotError::Convert(e.to_string());
    let pipeline = gst::Pipeline::with_name("snapshot-decode");
    let src = gst_app::AppSrc::builder()
        .caps(&gst::Caps::new_empty_simple("video/x-flv"))
        .format(gst::Format::Bytes)
        .build();
    let sink = gst_app::AppSink::builder().sync(false).build();
    // The decoder is linked to it only once the bytes have been demuxed, which happens in PLAYING: waiting for
    // it to preroll first would wait forever.
    sink.set_property("async", false);
    pipeline
        .add_many([src.upcast_ref::<gst::Element>(), sink.upcast_ref()])
        .map_err(|e| fail(&e))?;
    let video_sink = sink.clone();
    let on_decoded: crate::flv::demux::OnDecoded =
        Arc::new(move |pipeline, pad, track| match track {
            crate::flv::demux::Track::Video => {
                if let Some(sinkpad) = video_sink.static_pad("sink") {
                    let _ = pad.link(&sinkpad);
                }
            }
            crate::flv::demux::Track::Audio => {
                if let Ok(fake) = gst::ElementFactory::make("fakesink").build() {
                    let _ = pipeline.add(&fake);
                    let _ = fake.sync_state_with_parent();
                    if let Some(sinkpad) = fake.static_pad("sink") {
                        let _ = pad.link(&sinkpad);
                    }
                }
            }
        });
    crate::flv::demux::attach(&pipeline, src.upcast_ref(), 1, on_decoded).map_err(|e| fail(&e))?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| fail(&e))?;
    let _ = src.push_buffer(gst::Buffer::from_mut_slice(flv));
    let _ = src.end_of_stream();
    let sample = sink.try_pull_sample(gst::ClockTime::from_nseconds(wait.as_nanos() as u64));
    let _ = pipeline.set_state(gst::State::Null);
    match sample {
        Some(s) => Ok(s),
        None => {
            // What the demuxer or decoder said (a broken or unsupported stream), for the log.
            let bus = pipeline.bus().expect("a pipeline has a bus");
            while let Some(m) = bus.pop() {
                if let gst::MessageView::Error(e) = m.view() {
                    return Err(SnapshotError::Convert(e.error().to_string()));
                }
            }
            Err(SnapshotError::NoFrame(wait))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_keep_the_shape_and_never_upscale() {
        assert_eq!(scaled(1280, 720, 640), (640, 360));
        assert_eq!(scaled(640, 360, 1280), (640, 360));
        assert_eq!(scaled(720, 1280, 360), (360, 640));
        assert_eq!(scaled(1280, 720, 1), (16, 8));
        assert_eq!(scaled(1279, 719, 641), (640, 360));
    }

    /// One red 320×180 frame encoded as H.264 (avc): its decoder configuration and its access unit.
    fn red_keyframe() -> (Vec<u8>, Vec<u8>) {
        let pipeline = gst::parse::launch(
            "videotestsrc num-buffers=1 pattern=red ! video/x-raw,width=320,height=180 ! x264enc ! \
             video/x-h264,stream-format=avc,alignment=au ! appsink name=s sync=false",
        )
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let sink = pipeline
            .by_name("s")
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        let sample = sink.pull_sample().unwrap();
        pipeline.set_state(gst::State::Null).unwrap();
        let record = sample
            .caps()
            .unwrap()
            .structure(0)
            .unwrap()
            .get::<gst::Buffer>("codec_data")
            .unwrap();
        let record = record.map_readable().unwrap().to_vec();
        let frame = sample.buffer().unwrap().map_readable().unwrap().to_vec();
        (record, frame)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_keyframe_in_flv_decodes_to_a_jpeg_of_its_picture() {
        use crate::flv::{self, codec};
        gst::init().unwrap();
        let (record, frame) = red_keyframe();
        let mut file = Vec::new();
        flv::write_header(&mut file, false, true);
        for data in [
            codec::video_config_tag(codec::VideoCodec::H264, codec::VideoForm::Legacy, &record),
            codec::video_frame_tag(
                codec::VideoCodec::H264,
                codec::VideoForm::Legacy,
                true,
                0,
                &frame,
            ),
        ] {
            file.extend(
                flv::Tag::new(flv::TagKind::Video, 0, data)
                    .encode_at(0)
                    .unwrap(),
            );
        }
        let sample = decode_flv_keyframe(file, Duration::from_secs(10))
            .await
            .unwrap();
        let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
        assert_eq!((info.width(), info.height()), (320, 180));
        let jpeg = to_jpeg(sample, 160).await.unwrap();
        assert_eq!(&jpeg[..2], [0xFF, 0xD8], "a JPEG");
        assert!(
            decode_flv_keyframe(b"FLV nonsense".to_vec(), Duration::from_secs(2))
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn snapshots_wait_for_a_turn_and_are_refused_when_none_comes() {
        let turns = tokio::sync::Semaphore::new(1);
        let wait = Duration::from_millis(100);
        let held = turns.acquire().await.unwrap();
        let refused = in_turn_of(&turns, wait, || Ok(1)).await;
        assert_eq!(refused, Err(SnapshotError::Busy));
        drop(held);
        assert_eq!(in_turn_of(&turns, wait, || Ok(2)).await, Ok(2));
    }
}
