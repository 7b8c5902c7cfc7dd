//! The live preview's viewers of one encoded FLV stream (a mix encoder's tags, a relay's forwarded tags).
//!
//! The producer calls [`Viewers::push`] from its streaming thread with every whole FLV tag; with nobody watching
//! that is one atomic load. Each viewer has its own bounded queue: it joins at the next resumption point (a video
//! keyframe; any audio tag in a stream without video) after the stream headers, and a viewer whose queue is full
//! is dropped (its response ends) rather than waited for, so a slow viewer never slows the mix, the other
//! viewers or the outputs. Several viewers share every tag's bytes (one copy per tag, not per viewer).

use std::{
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    task::{Context, Poll},
};

use axum::body::Bytes;
use tokio::sync::mpsc;

/// Tags a viewer may be behind before it is dropped: about three seconds of 30 fps video and AAC audio.
pub const QUEUE_TAGS: usize = 256;
/// Viewers one stream takes at most: the preview is for operators, and each viewer may hold a few seconds of
/// the stream in memory.
pub const MAX_VIEWERS: usize = 32;

/// One viewer as the producer sees it.
struct Viewer {
    tx: mpsc::Sender<Bytes>,
    /// Whether it has had the headers and a resumption point.
    joined: bool,
}

/// The viewers of one stream. Shared by its producer and the API.
#[derive(Default)]
pub struct Viewers {
    list: Mutex<Vec<Viewer>>,
    /// `list.len()`, readable without the lock (the producer's fast path).
    count: AtomicUsize,
    /// What the stream is called in logs (a mix id and its output, a relay id).
    name: Mutex<String>,
}

/// One viewer's stream of FLV bytes; ends when the stream ends (the task stops or restarts) or the viewer was
/// too slow.
pub struct ViewerStream {
    rx: mpsc::Receiver<Bytes>,
}

impl ViewerStream {
    /// A stream fed by someone else (a viewer whose bytes a worker process forwards); `QUEUE_TAGS` deep, as
    /// every viewer's queue.
    pub fn channel() -> (mpsc::Sender<Bytes>, Self) {
        let (tx, rx) = mpsc::channel(QUEUE_TAGS);
        (tx, Self { rx })
    }
}

impl futures::Stream for ViewerStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|b| b.map(Ok))
    }
}

impl Viewers {
    pub fn new(name: &str) -> Arc<Self> {
        let v = Self::default();
        *v.name.lock().unwrap() = name.to_string();
        Arc::new(v)
    }

    /// Names the stream in logs.
    pub fn set_name(&self, name: &str) {
        *self.name.lock().unwrap() = name.to_string();
    }

    /// A new viewer, which gets its first bytes at the next resumption point; `None` when the stream has
    /// [`MAX_VIEWERS`] already.
    pub fn subscribe(&self) -> Option<ViewerStream> {
        let (tx, rx) = mpsc::channel(QUEUE_TAGS);
        let mut list = self.list.lock().unwrap();
        // Viewers that left are forgotten only when a tag comes; count them out here too.
        list.retain(|v| !v.tx.is_closed());
        if list.len() >= MAX_VIEWERS {
            return None;
        }
        list.push(Viewer { tx, joined: false });
        self.count.store(list.len(), Ordering::Relaxed);
        Some(ViewerStream { rx })
    }

    /// Viewers now.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// One whole FLV tag of the stream; `preamble` (FLV header, metadata, sequence headers) is what a viewer
    /// joining at `buffer` gets first. Never blocks.
    /// Returns whether a viewer is waiting for a resumption point (the caller may ask its encoder for a keyframe).
    pub fn push(
        &self,
        buffer: &gst::BufferRef,
        resumption: bool,
        preamble: &[gst::Buffer],
    ) -> bool {
        if self.count.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let Some(tag) = bytes_of(buffer) else {
            return false;
        };
        let mut list = self.list.lock().unwrap();
        let before = list.len();
        let mut waiting = false;
        list.retain_mut(|v| {
            if !v.joined {
                if !resumption {
                    waiting = true;
                    return !v.tx.is_closed();
                }
                let mut head = Vec::new();
                for b in preamble {
                    if let Ok(map) = b.map_readable() {
                        head.extend_from_slice(&map);
                    }
                }
                if v.tx.try_send(Bytes::from(head)).is_err() {
                    return false;
                }
                v.joined = true;
            }
            match v.tx.try_send(tag.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::info!(stream = %self.name.lock().unwrap(), "live preview viewer dropped: it fell more than {QUEUE_TAGS} tags behind");
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        if list.len() != before {
            self.count.store(list.len(), Ordering::Relaxed);
        }
        waiting
    }
}

fn bytes_of(buffer: &gst::BufferRef) -> Option<Bytes> {
    let map = buffer.map_readable().ok()?;
    Some(Bytes::copy_from_slice(&map))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn buf(bytes: &[u8]) -> gst::Buffer {
        gst::Buffer::from_slice(bytes.to_vec())
    }

    #[tokio::test]
    async fn viewers_join_at_a_resumption_point_with_the_headers_first() {
        gst::init().unwrap();
        let v = Viewers::new("t");
        let mut s = v.subscribe().unwrap();
        let preamble = [buf(b"FLV"), buf(b"SEQ")];
        v.push(&buf(b"p1"), false, &preamble);
        v.push(&buf(b"k1"), true, &preamble);
        v.push(&buf(b"p2"), false, &preamble);
        let got: Vec<Bytes> = vec![
            s.next().await.unwrap().unwrap(),
            s.next().await.unwrap().unwrap(),
            s.next().await.unwrap().unwrap(),
        ];
        assert_eq!(got, [&b"FLVSEQ"[..], b"k1", b"p2"]);
        drop(s);
        v.push(&buf(b"p3"), false, &preamble);
        assert_eq!(v.count(), 0, "a closed viewer is forgotten");
    }

    #[tokio::test]
    async fn a_slow_viewer_is_dropped_and_the_others_go_on() {
        gst::init().unwrap();
        let v = Viewers::new("t");
        let mut fast = v.subscribe().unwrap();
        let slow = v.subscribe().unwrap();
        let preamble = [buf(b"H")];
        v.push(&buf(b"k"), true, &preamble);
        for _ in 0..QUEUE_TAGS + 10 {
            v.push(&buf(b"p"), false, &preamble);
            fast.next().await.unwrap().unwrap();
        }
        assert_eq!(v.count(), 1);
        let mut slow = slow;
        let mut n = 0;
        while slow.next().await.is_some() {
            n += 1;
        }
        assert_eq!(
            n, QUEUE_TAGS,
            "it got what fitted in its queue, then its stream ended"
        );
    }

    #[test]
    fn a_stream_takes_a_bounded_number_of_viewers() {
        let v = Viewers::new("t");
        let mut held: Vec<ViewerStream> =
            (0..MAX_VIEWERS).map(|_| v.subscribe().unwrap()).collect();
        assert!(v.subscribe().is_none());
        held.pop();
        assert!(v.subscribe().is_some(), "a viewer that left makes room");
    }
}
