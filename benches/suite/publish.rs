//! The cheap publisher: sends an input file's FLV tags to an RTMP URL at real speed, in a loop, with timestamps
//! that keep growing across loops. No decoding or encoding, so every contender gets the same bytes and the
//! publishers cost next to nothing. The publisher knows when it sent each frame (`anchor` + the frame's
//! timestamp in the stream), which is what the latency probe compares against.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use gst::prelude::*;
use tessera::flv::{self, Item, Tag, TagKind};

use crate::media::{InputFile, FPS};

/// An input file split into what a player needs first and the frames to loop.
struct Tags {
    /// Sequence headers (AVC and AAC configuration), sent at the start of every connection.
    headers: Vec<Tag>,
    /// Audio and video frames in file order, timestamps from 0.
    frames: Vec<Tag>,
    /// Timestamp of each video frame, indexed by the frame's number in the file (its stamp).
    video_ts: Vec<u32>,
    loop_ms: u32,
}

fn load(file: &InputFile) -> Result<Tags, String> {
    let bytes = std::fs::read(&file.path).map_err(|e| format!("{}: {e}", file.path.display()))?;
    let mut parser = flv::Parser::new();
    parser.push(&bytes);
    let (mut headers, mut frames) = (Vec::new(), Vec::new());
    while let Some(item) = parser.next_item() {
        let Item::Tag(tag) = item else { continue };
        match tag.kind {
            TagKind::Script => {}
            _ if flv::is_sequence_header(&tag) => headers.push(tag),
            _ => frames.push(tag),
        }
    }
    let first = frames.iter().map(|t| t.timestamp).min().unwrap_or(0);
    let video_count = frames.iter().filter(|t| t.kind == TagKind::Video).count() as u32;
    let loop_ms = video_count * 1000 / FPS;
    for t in &mut frames {
        t.timestamp -= first;
    }
    // Audio running past the last picture would overlap the next loop's first tags.
    frames.retain(|t| t.timestamp < loop_ms);
    frames.sort_by_key(|t| t.timestamp);
    let video_ts = frames
        .iter()
        .filter(|t| t.kind == TagKind::Video)
        .map(|t| t.timestamp)
        .collect::<Vec<_>>();
    if headers.len() < 2 || video_ts.is_empty() {
        return Err(format!(
            "{}: not an H.264 + AAC FLV file",
            file.path.display()
        ));
    }
    Ok(Tags {
        headers,
        frames,
        video_ts,
        loop_ms,
    })
}

pub struct Publisher {
    pub stream: String,
    /// When the first loop's timestamp 0 was due.
    anchor: Instant,
    video_ts: Vec<u32>,
    loop_ms: u32,
    stop: Arc<AtomicBool>,
    /// Last connection error, for the report when a scene produces nothing.
    error: Arc<Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Publisher {
    pub fn start(file: &InputFile, url: &str, stream: &str) -> Result<Publisher, String> {
        let tags = load(file)?;
        let anchor = Instant::now() + Duration::from_millis(200);
        let stop = Arc::new(AtomicBool::new(false));
        let error = Arc::new(Mutex::new(None));
        let video_ts = tags.video_ts.clone();
        let loop_ms = tags.loop_ms;
        let thread = {
            let (stop, error, url) = (stop.clone(), error.clone(), url.to_string());
            std::thread::Builder::new()
                .name(format!("publish-{stream}"))
                .spawn(move || run(&tags, &url, anchor, &stop, &error))
                .map_err(|e| e.to_string())?
        };
        Ok(Publisher {
            stream: stream.to_string(),
            anchor,
            video_ts,
            loop_ms,
            stop,
            error,
            thread: Some(thread),
        })
    }

    /// Age of frame `index` (its stamp) when it was seen at `seen`, in seconds: the loop is the one that makes
    /// the age fall in [-0.5 s, loop length - 0.5 s).
    pub fn age(&self, index: u32, seen: Instant) -> Option<f64> {
        let ts = f64::from(*self.video_ts.get(index as usize)?) / 1000.0;
        let raw = seen.checked_duration_since(self.anchor)?.as_secs_f64() - ts;
        let period = f64::from(self.loop_ms) / 1000.0;
        Some(raw - ((raw + 0.5) / period).floor() * period)
    }

    pub fn error(&self) -> Option<String> {
        self.error.lock().unwrap().clone()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn connect(url: &str, tags: &Tags) -> Result<(gst::Pipeline, gst_app::AppSrc), String> {
    let pipeline = gst::Pipeline::new();
    let appsrc = gst_app::AppSrc::builder()
        .caps(&gst::Caps::new_empty_simple("video/x-flv"))
        .is_live(true)
        .format(gst::Format::Time)
        .max_bytes(0)
        .block(false)
        .build();
    let sink = gst::ElementFactory::make("rtmp2sink")
        .property("location", url)
        .property("sync", false)
        .property("async", false)
        .build()
        .map_err(|e| e.to_string())?;
    pipeline
        .add_many([appsrc.upcast_ref(), &sink])
        .map_err(|e| e.to_string())?;
    appsrc.link(&sink).map_err(|e| e.to_string())?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    flv::write_header(&mut head, true, true);
    let _ = appsrc.push_buffer(gst::Buffer::from_slice(head));
    for h in &tags.headers {
        if let Some(bytes) = h.encode_at(0) {
            let _ = appsrc.push_buffer(gst::Buffer::from_slice(bytes));
        }
    }
    Ok((pipeline, appsrc))
}

fn run(tags: &Tags, url: &str, anchor: Instant, stop: &AtomicBool, error: &Mutex<Option<String>>) {
    let mut conn: Option<(gst::Pipeline, gst_app::AppSrc)> = None;
    let mut base_ms: u64 = 0;
    'outer: loop {
        for tag in &tags.frames {
            let ts = base_ms + u64::from(tag.timestamp);
            let due = anchor + Duration::from_millis(ts);
            loop {
                if stop.load(Ordering::SeqCst) {
                    break 'outer;
                }
                let now = Instant::now();
                if now >= due {
                    break;
                }
                std::thread::sleep((due - now).min(Duration::from_millis(100)));
            }
            if let Some((p, _)) = &conn {
                let failed = p.bus().and_then(|b| {
                    b.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos])
                });
                if let Some(msg) = failed {
                    *error.lock().unwrap() = Some(format!("{url}: {msg:?}"));
                    let _ = p.set_state(gst::State::Null);
                    conn = None;
                }
            }
            if conn.is_none() {
                match connect(url, tags) {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        *error.lock().unwrap() = Some(format!("{url}: {e}"));
                        continue;
                    }
                }
            }
            // Timestamps wrap after 2^32 ms (49 days): far beyond any run.
            if let (Some((_, src)), Some(bytes)) = (&conn, tag.encode_at(ts as u32)) {
                let _ = src.push_buffer(gst::Buffer::from_slice(bytes));
            }
        }
        base_ms += u64::from(tags.loop_ms);
    }
    if let Some((p, _)) = conn {
        let _ = p.set_state(gst::State::Null);
    }
}
