//! Publishing: send FLV tags to a server as a live stream.

use std::time::Duration;

use bytes::Bytes;
use rml_rtmp::messages::{MessagePayload, RtmpMessage};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;

use super::connect::{refusal, Command, Conn, Mode, TYPE_DATA_AMF0};
use super::play::amf0_string_at;
use super::{parse_url, Options, RtmpError};
use crate::flv::{Tag, TagKind};

/// Longest [`Publisher::close`] waits to say goodbye.
const CLOSE_LIMIT: Duration = Duration::from_secs(1);

/// A publishing stream. Dropping it closes the connection at once; [`Publisher::close`] ends it politely.
pub struct Publisher {
    conn: Conn,
    stream_id: u32,
    key: String,
    /// Last timestamp sent per kind (audio, video, script), to send a full header when one goes backwards.
    last_ts: [Option<u32>; 3],
}

/// Connects, announces the stream (`releaseStream`, `FCPublish`), creates a stream and publishes it live.
/// Resolves on `NetStream.Publish.Start`; a refusal (`NetStream.Publish.BadName`, any status of level
/// `error`) is `Err(Rejected(code))`, a server that hangs up instead is `Err(Closed)`.
pub async fn publish(url: &str, opts: &Options) -> Result<Publisher, RtmpError> {
    let url = parse_url(url)?;
    let mut conn = Conn::open(&url, opts, Mode::Publish).await?;
    let key = Amf0Value::Utf8String(url.stream.clone());
    for name in ["releaseStream", "FCPublish"] {
        let tid = conn.next_tid();
        conn.command(name, tid, Amf0Value::Null, vec![key.clone()], 0)?;
    }
    let stream_id = conn.create_stream().await?;
    conn.stage = "publish";
    let tid = conn.next_tid();
    conn.command(
        "publish",
        tid,
        Amf0Value::Null,
        vec![key, Amf0Value::Utf8String("live".into())],
        stream_id,
    )?;
    conn.flush().await?;
    loop {
        let p = conn.recv().await?;
        let Some(cmd) = Command::from_payload(&p) else {
            continue;
        };
        let (level, code) = cmd.status().unwrap_or_default();
        match cmd.name.as_str() {
            "onStatus" if code == "NetStream.Publish.Start" => break,
            "onStatus" if level == "error" || code.ends_with("BadName") => {
                return Err(RtmpError::Rejected(code))
            }
            "_error" if cmd.tid == tid => return Err(refusal(code, "NetStream.Publish.Rejected")),
            "close" => return Err(RtmpError::Closed),
            _ => {}
        }
    }
    conn.started();
    Ok(Publisher {
        conn,
        stream_id,
        key: url.stream,
        last_ts: [None; 3],
    })
}

impl Publisher {
    /// Sends one tag with its timestamp. Audio and video data go out byte for byte (any codec, enhanced RTMP
    /// included); a script tag holding `onMetaData` goes out as `@setDataFrame` metadata, as ffmpeg and
    /// `rtmp2sink` send it. Returns once the bytes are written to the socket (bounded by `io_timeout`); a
    /// server that hung up or refused the stream since is an error.
    pub async fn send(&mut self, tag: &Tag) -> Result<(), RtmpError> {
        self.check_server()?;
        if tag.data.is_empty() {
            return Ok(());
        }
        let ts = RtmpTimestamp::new(tag.timestamp);
        // What rml_rtmp's ClientSession::publish_{audio,video}_data do: the data as is, can_be_dropped false.
        let (p, slot) = match tag.kind {
            TagKind::Audio | TagKind::Video => {
                let data = Bytes::copy_from_slice(&tag.data);
                let (msg, slot) = if tag.kind == TagKind::Audio {
                    (RtmpMessage::AudioData { data }, 0)
                } else {
                    (RtmpMessage::VideoData { data }, 1)
                };
                let p = msg
                    .into_message_payload(ts, self.stream_id)
                    .map_err(|e| RtmpError::Protocol(e.to_string()))?;
                (p, slot)
            }
            TagKind::Script => {
                let mut data = Vec::with_capacity(tag.data.len() + 16);
                if amf0_string_at(&tag.data).map(|(s, _)| s) == Some(b"onMetaData") {
                    data.extend_from_slice(b"\x02\x00\x0d@setDataFrame");
                }
                data.extend_from_slice(&tag.data);
                let p = MessagePayload {
                    timestamp: ts,
                    type_id: TYPE_DATA_AMF0,
                    message_stream_id: self.stream_id,
                    data: Bytes::from(data),
                };
                (p, 2)
            }
        };
        let backwards = self.last_ts[slot].is_some_and(|last| tag.timestamp < last);
        self.last_ts[slot] = Some(tag.timestamp);
        self.conn.queue_payload(&p, backwards)?;
        self.conn.flush().await?;
        self.check_server()
    }

    /// Bytes written to the socket so far (handshake and commands included).
    pub fn bytes_sent(&self) -> u64 {
        self.conn.bytes_sent()
    }

    /// Ends the stream (`FCUnpublish`, `deleteStream`) and shuts the socket, within about a second.
    pub async fn close(mut self) {
        let key = Amf0Value::Utf8String(self.key.clone());
        let tid = self.conn.next_tid();
        let sid = Amf0Value::Number(self.stream_id as f64);
        let _ = self
            .conn
            .command("FCUnpublish", tid, Amf0Value::Null, vec![key], 0);
        let _ = self
            .conn
            .command("deleteStream", 0.0, Amf0Value::Null, vec![sid], 0);
        self.conn.shutdown(CLOSE_LIMIT).await;
    }

    /// Waits, while there is nothing to send, until the server ends the stream (hangs up, or refuses it after
    /// all), and says why; acknowledgements and pings are answered meanwhile. Cancel-safe, so it can race the
    /// next tag: a publisher that only sends would learn of a hang-up at its next tag, which may never come.
    pub async fn ended(&mut self) -> RtmpError {
        loop {
            if let Err(e) = self.check_server() {
                return e;
            }
            if let Err(e) = self.conn.flush().await {
                return e;
            }
            if let Err(e) = self.conn.readable().await {
                return e;
            }
        }
    }

    /// Handles what the server sent meanwhile (acknowledgements, pings, status) without waiting.
    fn check_server(&mut self) -> Result<(), RtmpError> {
        self.conn.read_ready()?;
        while let Some(p) = self.conn.next_buffered()? {
            if let Some(cmd) = Command::from_payload(&p) {
                let (level, code) = cmd.status().unwrap_or_default();
                if cmd.name == "onStatus" && level == "error" {
                    return Err(RtmpError::Rejected(code));
                }
                if cmd.name == "close" {
                    return Err(RtmpError::Closed);
                }
            }
        }
        Ok(())
    }
}
