//! Playing: `play` a stream and read it as FLV tags.

use std::collections::VecDeque;

use rml_rtmp::messages::MessagePayload;
use rml_rtmp::rml_amf0::Amf0Value;

use super::connect::{
    refusal, Command, Conn, Mode, TYPE_AGGREGATE, TYPE_AUDIO, TYPE_DATA_AMF0, TYPE_DATA_AMF3,
    TYPE_USER_CONTROL, TYPE_VIDEO,
};
use super::{parse_url, Options, RtmpError};
use crate::flv::{Tag, TagKind};

/// Buffer length announced to the server (ms).
const BUFFER_MS: u32 = 1000;

/// A playing stream. Dropping it closes the connection.
pub struct Player {
    conn: Conn,
    tags: Tags,
}

/// Turns the messages of a played stream into tags; notes the end of the stream.
struct Tags {
    stream_id: u32,
    queue: VecDeque<Tag>,
    ended: bool,
}

/// Connects, creates a stream and plays the URL's stream key. Resolves once the server answered `play` with
/// `NetStream.Play.Start` (or the first media arrived); a refusal (`NetStream.Play.StreamNotFound`,
/// `NetStream.Play.Failed`, any status of level `error`) is `Err(Rejected(code))`.
pub async fn play(url: &str, opts: &Options) -> Result<Player, RtmpError> {
    let url = parse_url(url)?;
    let mut conn = Conn::open(&url, opts, Mode::Play).await?;
    let sid = conn.create_stream().await?;
    conn.stage = "play";
    let tid = conn.next_tid();
    conn.command(
        "play",
        tid,
        Amf0Value::Null,
        vec![
            Amf0Value::Utf8String(url.stream.clone()),
            // -2000: live if there is one, else recorded (what ffmpeg sends).
            Amf0Value::Number(-2000.0),
        ],
        sid,
    )?;
    // User control "set buffer length" (3): stream id, milliseconds.
    let mut buffer = vec![0, 3];
    buffer.extend_from_slice(&sid.to_be_bytes());
    buffer.extend_from_slice(&BUFFER_MS.to_be_bytes());
    conn.queue_raw(TYPE_USER_CONTROL, 0, buffer)?;
    conn.flush().await?;
    let mut player = Player {
        conn,
        tags: Tags {
            stream_id: sid,
            queue: VecDeque::new(),
            ended: false,
        },
    };
    loop {
        let p = player.conn.recv().await?;
        if let Some(cmd) = Command::from_payload(&p) {
            if cmd.name == "_error" && cmd.tid == tid {
                let (_, code) = cmd.status().unwrap_or_default();
                return Err(refusal(code, "NetStream.Play.Failed"));
            }
            if cmd.name == "onStatus" {
                let (level, code) = cmd.status().unwrap_or_default();
                if code == "NetStream.Play.Start" {
                    break;
                }
                if level == "error"
                    || code.ends_with(".StreamNotFound")
                    || code.ends_with(".Failed")
                {
                    return Err(RtmpError::Rejected(code));
                }
                continue;
            }
        }
        player.tags.take(&p)?;
        if !player.tags.queue.is_empty() {
            break;
        }
        if player.tags.ended {
            return Err(RtmpError::Closed);
        }
    }
    player.conn.started();
    Ok(player)
}

impl Player {
    /// The next audio, video or script tag (script data as an FLV file holds it: `onMetaData` and its array,
    /// without `@setDataFrame`), with the RTMP timestamp. `Err(Closed)` once the server ends the stream
    /// (`NetStream.Play.Stop`, `NetStream.Play.UnpublishNotify`, user control Stream EOF, EOF); `Err(Timeout)` after
    /// `io_timeout` without a byte from the server. Cancel-safe.
    pub async fn next_tag(&mut self) -> Result<Tag, RtmpError> {
        loop {
            if let Some(t) = self.tags.queue.pop_front() {
                return Ok(t);
            }
            if self.tags.ended {
                return Err(RtmpError::Closed);
            }
            let p = self.conn.recv().await?;
            self.tags.take(&p)?;
        }
    }

    /// Bytes this connection wrote (commands, acknowledgements).
    pub fn bytes_sent(&self) -> u64 {
        self.conn.bytes_sent()
    }
}

impl Tags {
    /// Turns one message into tags (or the end of the stream).
    fn take(&mut self, p: &MessagePayload) -> Result<(), RtmpError> {
        let ts = p.timestamp.value;
        match p.type_id {
            TYPE_AUDIO => self.push(TagKind::Audio, ts, &p.data),
            TYPE_VIDEO => self.push(TagKind::Video, ts, &p.data),
            TYPE_DATA_AMF0 => self.push_script(ts, &p.data),
            // AMF3 data: a 0 byte, then AMF0.
            TYPE_DATA_AMF3 if p.data.first() == Some(&0) => self.push_script(ts, &p.data[1..]),
            TYPE_AGGREGATE => self.push_aggregate(ts, &p.data),
            // User control Stream EOF (1) for our stream: the publisher left (nginx-rtmp sends it on unpublish).
            TYPE_USER_CONTROL => {
                let d = &p.data;
                if d.len() >= 6
                    && d[..2] == [0, 1]
                    && u32::from_be_bytes([d[2], d[3], d[4], d[5]]) == self.stream_id
                {
                    self.ended = true;
                }
            }
            _ => {
                if let Some(cmd) = Command::from_payload(p) {
                    if cmd.name == "onStatus" {
                        let (level, code) = cmd.status().unwrap_or_default();
                        match code.as_str() {
                            "NetStream.Play.Stop"
                            | "NetStream.Play.UnpublishNotify"
                            | "NetStream.Play.Complete" => self.ended = true,
                            _ if level == "error" => return Err(RtmpError::Rejected(code)),
                            _ => {}
                        }
                    } else if cmd.name == "close" {
                        self.ended = true;
                    }
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, kind: TagKind, ts: u32, data: &[u8]) {
        if !data.is_empty() {
            self.queue.push_back(Tag::new(kind, ts, data.to_vec()));
        }
    }

    /// Script data: `@setDataFrame` is dropped (as a server stores it), RTMP-only notices
    /// (`|RtmpSampleAccess`, `onStatus`) are skipped.
    fn push_script(&mut self, ts: u32, mut data: &[u8]) {
        if amf0_string_at(data).map(|(s, _)| s) == Some(b"@setDataFrame") {
            let (_, len) = amf0_string_at(data).unwrap_or_default();
            data = &data[len..];
        }
        match amf0_string_at(data) {
            Some((name, _)) if name.starts_with(b"|") || name == b"onStatus" => {}
            _ => self.push(TagKind::Script, ts, data),
        }
    }

    /// An aggregate message: FLV tags back to back, timestamps relative to the message's.
    fn push_aggregate(&mut self, ts: u32, mut d: &[u8]) {
        let mut first_ts: Option<u32> = None;
        while d.len() >= 11 {
            let size = ((d[1] as usize) << 16) | ((d[2] as usize) << 8) | d[3] as usize;
            let sub_ts = u32::from_be_bytes([d[7], d[4], d[5], d[6]]);
            if d.len() < 11 + size {
                break;
            }
            let base = *first_ts.get_or_insert(sub_ts);
            let t = ts.wrapping_add(sub_ts.wrapping_sub(base));
            let body = &d[11..11 + size];
            match d[0] {
                TYPE_AUDIO => self.push(TagKind::Audio, t, body),
                TYPE_VIDEO => self.push(TagKind::Video, t, body),
                TYPE_DATA_AMF0 => self.push_script(t, body),
                _ => {}
            }
            d = d.get(11 + size + 4..).unwrap_or_default();
        }
    }
}

/// An AMF0 string at the start of `d`: its bytes and the bytes it takes.
pub(crate) fn amf0_string_at(d: &[u8]) -> Option<(&[u8], usize)> {
    if d.len() < 3 || d[0] != 0x02 {
        return None;
    }
    let len = ((d[1] as usize) << 8) | d[2] as usize;
    d.get(3..3 + len).map(|s| (s, 3 + len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rml_rtmp::time::RtmpTimestamp;

    fn msg(type_id: u8, ts: u32, data: &[u8]) -> MessagePayload {
        MessagePayload {
            timestamp: RtmpTimestamp::new(ts),
            type_id,
            message_stream_id: 1,
            data: Bytes::copy_from_slice(data),
        }
    }

    fn tags() -> Tags {
        Tags {
            stream_id: 1,
            queue: VecDeque::new(),
            ended: false,
        }
    }

    #[test]
    fn media_and_script_as_in_a_file() {
        let mut t = tags();
        let mut sdf = b"\x02\x00\x0d@setDataFrame".to_vec();
        let meta = b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x00\x00\x00\x09".to_vec();
        sdf.extend_from_slice(&meta);
        t.take(&msg(TYPE_DATA_AMF0, 0, &sdf)).unwrap();
        t.take(&msg(TYPE_DATA_AMF0, 0, &meta)).unwrap();
        t.take(&msg(
            TYPE_DATA_AMF0,
            0,
            b"\x02\x00\x11|RtmpSampleAccess\x01\x00",
        ))
        .unwrap();
        t.take(&msg(TYPE_VIDEO, 0x0100_0000, b"\x90hvc1\x01"))
            .unwrap();
        t.take(&msg(TYPE_AUDIO, 7, b"")).unwrap();
        t.take(&msg(TYPE_AUDIO, 7, b"\xaf\x01")).unwrap();
        let got: Vec<Tag> = t.queue.drain(..).collect();
        assert_eq!(
            got,
            vec![
                Tag::new(TagKind::Script, 0, meta.clone()),
                Tag::new(TagKind::Script, 0, meta),
                Tag::new(TagKind::Video, 0x0100_0000, b"\x90hvc1\x01".to_vec()),
                Tag::new(TagKind::Audio, 7, b"\xaf\x01".to_vec()),
            ]
        );
        assert!(!t.ended);
    }

    #[test]
    fn aggregate_messages_are_split_with_relative_timestamps() {
        let mut agg = Vec::new();
        for (ty, ts, body) in [(9u8, 1000u32, &b"\x17\x01a"[..]), (8, 1020, b"\xaf\x01b")] {
            agg.push(ty);
            agg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
            agg.extend_from_slice(&ts.to_be_bytes()[1..]);
            agg.push((ts >> 24) as u8);
            agg.extend_from_slice(&[0, 0, 0]);
            agg.extend_from_slice(body);
            agg.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
        }
        let mut t = tags();
        t.take(&msg(TYPE_AGGREGATE, 5000, &agg)).unwrap();
        let got: Vec<(TagKind, u32)> = t.queue.iter().map(|t| (t.kind, t.timestamp)).collect();
        assert_eq!(got, vec![(TagKind::Video, 5000), (TagKind::Audio, 5020)]);
    }

    #[test]
    fn end_of_stream_signals() {
        let mut t = tags();
        t.take(&msg(TYPE_USER_CONTROL, 0, &[0, 1, 0, 0, 0, 2]))
            .unwrap();
        assert!(!t.ended, "Stream EOF of another stream");
        t.take(&msg(TYPE_USER_CONTROL, 0, &[0, 1, 0, 0, 0, 1]))
            .unwrap();
        assert!(t.ended);
    }
}
