//! What the serving process and a worker say to each other over their socket, and how it is framed.
//!
//! A frame is `[head length: u32 LE][body length: u32 LE][head: JSON][body: bytes]`. The head is one of the
//! enums below; the body carries what is better left as bytes (image files, a JPEG, FLV tags). Requests that
//! want an answer carry a `seq` the answer repeats. Every field here is a core type: the worker knows no vendor.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    config::{Config, LogConfig},
    engine::{status::MixStatus, InputMetrics, MixMetrics},
    error::{Error, ErrorKind},
    events::{EventKind, TaskRef},
    media::cpu::Owner,
    model::MixSpec,
    preview::SnapshotError,
};

/// Largest head accepted (a spec with its config is a few KiB).
const MAX_HEAD: u32 = 16 << 20;
/// Largest body accepted (the images of one spec stay far below: `engine.max_image_bytes` each).
const MAX_BODY: u32 = 512 << 20;

/// From the serving process to a worker.
#[derive(Debug, Serialize, Deserialize)]
pub enum ToWorker {
    /// The first frame: how to log and where the fence stands.
    Hello {
        log: LogConfig,
        config: Box<Config>,
        fence: Fence,
    },
    /// Builds and starts mix `id`. The body holds the image files the spec names, in `images` order.
    Start {
        seq: u64,
        id: String,
        run: u64,
        config: Box<Config>,
        spec: Box<MixSpec>,
        images: Vec<Image>,
    },
    /// Applies `spec` to running mix `id` without restarting it (the parent checked it can).
    Update {
        seq: u64,
        id: String,
        config: Box<Config>,
        spec: Box<MixSpec>,
        images: Vec<Image>,
    },
    /// Stops mix `id`; answered once its outputs have unpublished (bounded).
    Stop {
        seq: u64,
        id: String,
    },
    /// Test-only faults.
    Fault {
        id: String,
        fault: Fault,
    },
    /// One frame of the mix's picture (`input: None`) or of one input's, as JPEG `width` wide.
    Snapshot {
        seq: u64,
        id: String,
        input: Option<String>,
        width: u32,
    },
    /// A new live-preview viewer of mix `id`'s output, numbered `stream`.
    Watch {
        seq: u64,
        id: String,
        stream: u64,
    },
    /// The viewer `stream` left.
    Unwatch {
        stream: u64,
    },
    Fence(Fence),
}

/// An image file in a frame's body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Image {
    /// Where the spec names it.
    pub location: String,
    pub len: usize,
}

/// Until when outputs may publish: `None` never fenced; else nanoseconds of CLOCK_MONOTONIC, which every
/// process on the machine shares (0: closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence(pub Option<u64>);

/// Test-only faults a worker can be asked to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// The mix's pipeline reports an error (the mix restarts, the worker stays).
    PipelineError,
    /// The worker aborts inside one of the mix's streaming threads (as a GStreamer assertion would).
    Abort,
    /// The worker allocates memory and keeps it, 64 MiB a second, until it is stopped.
    Grow,
}

/// From a worker to the serving process.
#[derive(Debug, Serialize, Deserialize)]
pub enum FromWorker {
    /// The answer to `Start`, `Update` or `Stop`; with the mix's status when it runs.
    Done {
        seq: u64,
        result: Result<Option<MixReport>, WireError>,
    },
    /// The answer to `Snapshot`; the body holds the JPEG.
    Jpeg {
        seq: u64,
        result: Result<(), Snapshot>,
    },
    /// The answer to `Watch`: whether the viewer was taken (a stream takes at most 32).
    Watching {
        seq: u64,
        result: Result<bool, WireError>,
    },
    /// FLV bytes for viewer `stream` (the body).
    Flv { stream: u64 },
    /// Viewer `stream`'s stream ended (the mix stopped, or the viewer fell behind).
    FlvEnd { stream: u64 },
    /// Mix `id`'s pipeline numbered `run` failed.
    Failed {
        id: String,
        run: u64,
        reason: String,
    },
    /// An event of the worker's mixes or inputs, published again by the serving process.
    Event { task: TaskRef, kind: EventKind },
    /// What the worker's mixes and inputs are doing (every [`REPORT_EVERY`]).
    Report(Box<Report>),
}

/// How often a worker reports.
pub const REPORT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Why a snapshot failed, as [`SnapshotError`] or a core error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Snapshot {
    Failed(SnapshotError),
    Refused(WireError),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub mixes: Vec<MixReport>,
    pub inputs: Vec<InputMetrics>,
    pub pulls: usize,
    /// CPU seconds used per owner, as [`crate::media::cpu::by_owner`] counts them in the worker.
    pub cpu: Vec<(Owner, f64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MixReport {
    pub id: String,
    pub status: MixStatus,
    pub metrics: MixMetrics,
}

/// A core error as it crosses the socket (its text was made safe to show where it was made).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireError {
    pub kind: ErrorKind,
    pub message: String,
}

impl From<Error> for WireError {
    fn from(e: Error) -> Self {
        Self {
            kind: e.kind,
            message: e.message,
        }
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        Error::new(e.kind, e.message)
    }
}

/// One frame, read or to be written.
pub struct Frame<H> {
    pub head: H,
    pub body: Vec<u8>,
}

impl<H> Frame<H> {
    pub fn new(head: H) -> Self {
        Self {
            head,
            body: Vec::new(),
        }
    }

    pub fn with_body(head: H, body: Vec<u8>) -> Self {
        Self { head, body }
    }
}

/// Writes one frame.
pub async fn write<H: Serialize>(
    w: &mut (impl AsyncWriteExt + Unpin),
    frame: &Frame<H>,
) -> std::io::Result<()> {
    let head = serde_json::to_vec(&frame.head).map_err(std::io::Error::other)?;
    let mut prefix = [0u8; 8];
    prefix[..4].copy_from_slice(&(head.len() as u32).to_le_bytes());
    prefix[4..].copy_from_slice(&(frame.body.len() as u32).to_le_bytes());
    w.write_all(&prefix).await?;
    w.write_all(&head).await?;
    w.write_all(&frame.body).await?;
    Ok(())
}

/// Reads one frame; `None` at a clean end of the stream.
pub async fn read<H: serde::de::DeserializeOwned>(
    r: &mut (impl AsyncReadExt + Unpin),
) -> std::io::Result<Option<Frame<H>>> {
    let mut prefix = [0u8; 8];
    match r.read_exact(&mut prefix).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let head_len = u32::from_le_bytes(prefix[..4].try_into().unwrap());
    let body_len = u32::from_le_bytes(prefix[4..].try_into().unwrap());
    if head_len > MAX_HEAD || body_len > MAX_BODY {
        return Err(std::io::Error::other(format!(
            "frame too large: {head_len} + {body_len} bytes"
        )));
    }
    let mut head = vec![0u8; head_len as usize];
    r.read_exact(&mut head).await?;
    let mut body = vec![0u8; body_len as usize];
    r.read_exact(&mut body).await?;
    let head = serde_json::from_slice(&head).map_err(std::io::Error::other)?;
    Ok(Some(Frame { head, body }))
}

/// Images in a body, split back by their lengths.
pub fn split_images(images: &[Image], body: &[u8]) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut at = 0;
    let mut out = Vec::with_capacity(images.len());
    for i in images {
        let end = at + i.len;
        let bytes = body
            .get(at..end)
            .ok_or_else(|| Error::internal("a worker frame's images are shorter than said"))?;
        out.push((i.location.clone(), bytes.to_vec()));
        at = end;
    }
    Ok(out)
}

/// Images as a frame's head list and body.
pub fn join_images(images: &std::collections::HashMap<String, Vec<u8>>) -> (Vec<Image>, Vec<u8>) {
    let mut list = Vec::with_capacity(images.len());
    let mut body = Vec::new();
    for (location, bytes) in images {
        list.push(Image {
            location: location.clone(),
            len: bytes.len(),
        });
        body.extend_from_slice(bytes);
    }
    (list, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_cross_with_their_bodies() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let sent = Frame::with_body(FromWorker::Flv { stream: 7 }, vec![1, 2, 3]);
        write(&mut a, &sent).await.unwrap();
        write(&mut a, &Frame::new(FromWorker::FlvEnd { stream: 7 }))
            .await
            .unwrap();
        drop(a);
        let got: Frame<FromWorker> = read(&mut b).await.unwrap().unwrap();
        assert!(matches!(got.head, FromWorker::Flv { stream: 7 }));
        assert_eq!(got.body, vec![1, 2, 3]);
        let got: Frame<FromWorker> = read(&mut b).await.unwrap().unwrap();
        assert!(matches!(got.head, FromWorker::FlvEnd { stream: 7 }));
        assert!(read::<FromWorker>(&mut b).await.unwrap().is_none());
    }

    #[test]
    fn images_split_as_joined() {
        let mut images = std::collections::HashMap::new();
        images.insert("a.png".to_string(), vec![1u8; 5]);
        images.insert("b.png".to_string(), vec![2u8; 3]);
        let (list, body) = join_images(&images);
        let back: std::collections::HashMap<_, _> =
            split_images(&list, &body).unwrap().into_iter().collect();
        assert_eq!(back, images);
        assert!(split_images(&list, &body[..4]).is_err());
    }
}
