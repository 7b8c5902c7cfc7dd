//! One RTMP connection: the socket (TCP or TLS), `rml_rtmp`'s handshake and chunk (de)serializers, the
//! protocol-control messages (chunk size, acknowledgements, pings) and the `connect` / `createStream` exchange.
//!
//! Nothing here spawns: the connection is driven by whoever awaits it, and dropping it closes the socket.
//! Reads and writes are cancel-safe (bytes read are kept in `inbound`, bytes to write in `out` with a
//! position), so a dropped `Player::next_tag` future loses nothing.

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use rml_rtmp::chunk_io::{ChunkDeserializer, ChunkSerializer};
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::{MessagePayload, RtmpMessage};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

use super::{printable, tls, Options, RtmpError, RtmpUrl};

pub(crate) const TYPE_SET_CHUNK_SIZE: u8 = 1;
pub(crate) const TYPE_USER_CONTROL: u8 = 4;
pub(crate) const TYPE_WINDOW_ACK_SIZE: u8 = 5;
pub(crate) const TYPE_AUDIO: u8 = 8;
pub(crate) const TYPE_VIDEO: u8 = 9;
pub(crate) const TYPE_DATA_AMF3: u8 = 15;
pub(crate) const TYPE_DATA_AMF0: u8 = 18;
pub(crate) const TYPE_COMMAND_AMF0: u8 = 20;
pub(crate) const TYPE_AGGREGATE: u8 = 22;

/// Chunk size we send with (the server is told with Set Chunk Size right after `connect`).
const OUT_CHUNK_SIZE: u32 = 4096;
/// Window acknowledgement size we announce.
const OUR_WINDOW: u32 = 2_500_000;
/// While a write is blocked we keep reading, up to this many unprocessed bytes.
const MAX_INBOUND: usize = 1 << 20;

pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Play,
    Publish,
}

/// An AMF0 command as received.
pub(crate) struct Command {
    pub name: String,
    pub tid: f64,
    pub args: Vec<Amf0Value>,
}

impl Command {
    pub fn from_payload(p: &MessagePayload) -> Option<Command> {
        if p.type_id != TYPE_COMMAND_AMF0 {
            return None;
        }
        match p.to_rtmp_message() {
            Ok(RtmpMessage::Amf0Command {
                command_name,
                transaction_id,
                additional_arguments,
                ..
            }) => Some(Command {
                name: command_name,
                tid: transaction_id,
                args: additional_arguments,
            }),
            _ => None,
        }
    }

    /// `(level, code)` of the first info object among the arguments (onStatus, _result, _error).
    pub fn status(&self) -> Option<(String, String)> {
        self.args.iter().find_map(|a| match a {
            Amf0Value::Object(props) => {
                let get = |k: &str| match props.get(k) {
                    Some(Amf0Value::Utf8String(s)) => printable(s),
                    _ => String::new(),
                };
                Some((get("level"), get("code")))
            }
            _ => None,
        })
    }
}

pub(crate) struct Conn {
    io: Box<dyn Io>,
    ser: ChunkSerializer,
    de: ChunkDeserializer,
    /// Bytes to write; `out[out_pos..]` are not written yet.
    out: Vec<u8>,
    out_pos: usize,
    /// Bytes read and not yet given to the deserializer.
    inbound: Vec<u8>,
    received: u64,
    acked: u64,
    peer_window: Option<u32>,
    sent: u64,
    eof: bool,
    io_timeout: Duration,
    /// While setting up: the end of `connect_timeout`, bounding every wait. Afterwards `None`.
    pub deadline: Option<Instant>,
    /// What is being waited for, as reported by `RtmpError::Timeout`.
    pub stage: &'static str,
    next_tid: f64,
}

fn closed(e: std::io::Error) -> RtmpError {
    tracing::debug!("rtmp: connection error: {e}");
    RtmpError::Closed
}

fn protocol(e: impl std::fmt::Display) -> RtmpError {
    RtmpError::Protocol(printable(&e.to_string()))
}

impl Conn {
    /// TCP (and TLS), handshake and `connect`, all within `opts.connect_timeout`.
    pub async fn open(url: &RtmpUrl, opts: &Options, mode: Mode) -> Result<Conn, RtmpError> {
        let deadline = Instant::now() + opts.connect_timeout;
        let tcp = timeout_at(deadline, TcpStream::connect((url.host.as_str(), url.port)))
            .await
            .map_err(|_| RtmpError::Timeout("tcp connect"))?
            .map_err(RtmpError::Connect)?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = if url.tls {
            let tls = timeout_at(deadline, tls::connect(tcp, &url.host, opts.tls_verify))
                .await
                .map_err(|_| RtmpError::Timeout("tls handshake"))??;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let mut conn = Conn {
            io,
            ser: ChunkSerializer::new(),
            de: ChunkDeserializer::new(),
            out: Vec::new(),
            out_pos: 0,
            inbound: Vec::new(),
            received: 0,
            acked: 0,
            peer_window: None,
            sent: 0,
            eof: false,
            io_timeout: opts.io_timeout,
            deadline: Some(deadline),
            stage: "handshake",
            next_tid: 1.0,
        };
        conn.handshake().await?;
        conn.stage = "connect";
        conn.connect_app(url, mode).await?;
        Ok(conn)
    }

    /// Bytes written to the socket so far.
    pub fn bytes_sent(&self) -> u64 {
        self.sent
    }

    /// Ends setup: from now on waits are bounded by `io_timeout` each.
    pub fn started(&mut self) {
        self.deadline = None;
        self.stage = "read";
    }

    fn wait_until(&self) -> Instant {
        self.deadline
            .unwrap_or_else(|| Instant::now() + self.io_timeout)
    }

    async fn handshake(&mut self) -> Result<(), RtmpError> {
        let hs_err = |e: rml_rtmp::handshake::HandshakeError| RtmpError::Handshake(e.to_string());
        let mut hs = Handshake::new(PeerType::Client);
        let c0c1 = hs.generate_outbound_p0_and_p1().map_err(hs_err)?;
        self.out.extend_from_slice(&c0c1);
        self.flush().await?;
        loop {
            self.fill().await?;
            let input = std::mem::take(&mut self.inbound);
            match hs.process_bytes(&input).map_err(hs_err)? {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    self.out.extend_from_slice(&response_bytes);
                    self.flush().await?;
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    // C2 goes out with the connect command.
                    self.out.extend_from_slice(&response_bytes);
                    self.inbound = remaining_bytes;
                    return Ok(());
                }
            }
        }
    }

    async fn connect_app(&mut self, url: &RtmpUrl, mode: Mode) -> Result<(), RtmpError> {
        let s = |v: &str| Amf0Value::Utf8String(v.to_string());
        let mut props = HashMap::new();
        props.insert("app".to_string(), s(&url.app));
        props.insert("type".to_string(), s("nonprivate"));
        props.insert("tcUrl".to_string(), s(&url.tc_url));
        match mode {
            Mode::Publish => {
                props.insert("flashVer".to_string(), s("FMLE/3.0 (compatible; Tessera)"));
            }
            Mode::Play => {
                props.insert("flashVer".to_string(), s("LNX 9,0,124,2"));
                props.insert("fpad".to_string(), Amf0Value::Boolean(false));
                props.insert("capabilities".to_string(), Amf0Value::Number(15.0));
                props.insert("audioCodecs".to_string(), Amf0Value::Number(3191.0));
                props.insert("videoCodecs".to_string(), Amf0Value::Number(252.0));
                props.insert("videoFunction".to_string(), Amf0Value::Number(1.0));
            }
        }
        // Enhanced RTMP: the codecs we carry beyond the legacy ids.
        props.insert(
            "fourCcList".to_string(),
            Amf0Value::StrictArray(vec![s("hvc1"), s("av01"), s("vp09")]),
        );
        props.insert("objectEncoding".to_string(), Amf0Value::Number(0.0));
        let tid = self.next_tid();
        self.command("connect", tid, Amf0Value::Object(props), vec![], 0)?;
        self.flush().await?;
        loop {
            let p = self.recv().await?;
            let Some(cmd) = Command::from_payload(&p) else {
                continue;
            };
            let (level, code) = cmd.status().unwrap_or_default();
            match cmd.name.as_str() {
                "_result" if cmd.tid == tid => {
                    if level == "error" {
                        return Err(RtmpError::Rejected(code));
                    }
                    break;
                }
                "_error" if cmd.tid == tid => {
                    return Err(refusal(code, "NetConnection.Connect.Rejected"));
                }
                "close" => return Err(RtmpError::Closed),
                _ => {}
            }
        }
        self.queue(RtmpMessage::WindowAcknowledgement { size: OUR_WINDOW }, 0)?;
        let packet = self
            .ser
            .set_max_chunk_size(OUT_CHUNK_SIZE, RtmpTimestamp::new(0))
            .map_err(protocol)?;
        self.out.extend_from_slice(&packet.bytes);
        Ok(())
    }

    /// `createStream`; the stream id the server gave.
    pub async fn create_stream(&mut self) -> Result<u32, RtmpError> {
        self.stage = "createStream";
        let tid = self.next_tid();
        self.command("createStream", tid, Amf0Value::Null, vec![], 0)?;
        self.flush().await?;
        loop {
            let p = self.recv().await?;
            let Some(cmd) = Command::from_payload(&p) else {
                continue;
            };
            if cmd.tid != tid {
                continue;
            }
            match cmd.name.as_str() {
                "_result" => {
                    return cmd
                        .args
                        .iter()
                        .find_map(|a| match a {
                            Amf0Value::Number(n) if *n >= 0.0 && *n < u32::MAX as f64 => {
                                Some(*n as u32)
                            }
                            _ => None,
                        })
                        .ok_or_else(|| {
                            RtmpError::Protocol("createStream without a stream id".into())
                        })
                }
                "_error" => {
                    let (_, code) = cmd.status().unwrap_or_default();
                    return Err(refusal(code, "createStream failed"));
                }
                _ => {}
            }
        }
    }

    pub fn next_tid(&mut self) -> f64 {
        let t = self.next_tid;
        self.next_tid += 1.0;
        t
    }

    /// Queues an AMF0 command.
    pub fn command(
        &mut self,
        name: &str,
        tid: f64,
        object: Amf0Value,
        args: Vec<Amf0Value>,
        stream_id: u32,
    ) -> Result<(), RtmpError> {
        self.queue(
            RtmpMessage::Amf0Command {
                command_name: name.to_string(),
                transaction_id: tid,
                command_object: object,
                additional_arguments: args,
            },
            stream_id,
        )
    }

    /// Queues a message with timestamp 0.
    pub fn queue(&mut self, msg: RtmpMessage, stream_id: u32) -> Result<(), RtmpError> {
        let p = msg
            .into_message_payload(RtmpTimestamp::new(0), stream_id)
            .map_err(protocol)?;
        self.queue_payload(&p, false)
    }

    /// Queues a message as is. `absolute` forces a full chunk header (a timestamp that went backwards).
    pub fn queue_payload(&mut self, p: &MessagePayload, absolute: bool) -> Result<(), RtmpError> {
        let packet = self.ser.serialize(p, absolute, false).map_err(protocol)?;
        self.out.extend_from_slice(&packet.bytes);
        Ok(())
    }

    /// Queues a raw message of `type_id` (user control events and the like).
    pub fn queue_raw(
        &mut self,
        type_id: u8,
        stream_id: u32,
        data: Vec<u8>,
    ) -> Result<(), RtmpError> {
        let p = MessagePayload {
            timestamp: RtmpTimestamp::new(0),
            type_id,
            message_stream_id: stream_id,
            data: Bytes::from(data),
        };
        self.queue_payload(&p, false)
    }

    /// Writes everything queued, reading what the server sends meanwhile. Each wait for the socket is bounded.
    pub async fn flush(&mut self) -> Result<(), RtmpError> {
        while self.out_pos < self.out.len() {
            let (until, stage) = (self.wait_until(), self.write_stage());
            timeout_at(until, poll_fn(|cx| self.poll_write_some(cx)))
                .await
                .map_err(|_| RtmpError::Timeout(stage))??;
        }
        self.out.clear();
        self.out_pos = 0;
        let (until, stage) = (self.wait_until(), self.write_stage());
        timeout_at(until, poll_fn(|cx| Pin::new(&mut self.io).poll_flush(cx)))
            .await
            .map_err(|_| RtmpError::Timeout(stage))?
            .map_err(closed)
    }

    fn write_stage(&self) -> &'static str {
        if self.deadline.is_some() {
            self.stage
        } else {
            "write"
        }
    }

    /// Writes some of `out`; while the socket is not writable, reads into `inbound` so that a server waiting
    /// for us to read cannot stall us.
    fn poll_write_some(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RtmpError>> {
        match Pin::new(&mut self.io).poll_write(cx, &self.out[self.out_pos..]) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(RtmpError::Closed)),
            Poll::Ready(Ok(n)) => {
                self.out_pos += n;
                self.sent += n as u64;
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(closed(e))),
            Poll::Pending => {}
        }
        while !self.eof && self.inbound.len() < MAX_INBOUND {
            match self.poll_read_some(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => break,
            }
        }
        Poll::Pending
    }

    /// One read into `inbound`; EOF sets `eof`.
    fn poll_read_some(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RtmpError>> {
        let mut buf = [0u8; 16384];
        let mut rb = ReadBuf::new(&mut buf);
        match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                if rb.filled().is_empty() {
                    self.eof = true;
                } else {
                    self.inbound.extend_from_slice(rb.filled());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(closed(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Takes whatever the socket has right now without waiting; `Err(Closed)` at EOF.
    pub fn read_ready(&mut self) -> Result<(), RtmpError> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        while !self.eof && self.inbound.len() < MAX_INBOUND {
            match self.poll_read_some(&mut cx) {
                Poll::Ready(r) => r?,
                Poll::Pending => break,
            }
        }
        if self.eof && self.inbound.is_empty() {
            return Err(RtmpError::Closed);
        }
        Ok(())
    }

    /// Waits, unbounded, until the socket has something to read (or is closed) and reads it into `inbound`.
    /// Cancel-safe.
    pub async fn readable(&mut self) -> Result<(), RtmpError> {
        if self.eof {
            return Err(RtmpError::Closed);
        }
        poll_fn(|cx| self.poll_read_some(cx)).await
    }

    /// Waits until `inbound` holds bytes.
    async fn fill(&mut self) -> Result<(), RtmpError> {
        while self.inbound.is_empty() {
            if self.eof {
                return Err(RtmpError::Closed);
            }
            let (until, stage) = (self.wait_until(), self.stage);
            timeout_at(until, poll_fn(|cx| self.poll_read_some(cx)))
                .await
                .map_err(|_| RtmpError::Timeout(stage))??;
        }
        Ok(())
    }

    /// The next message that is not protocol control, waiting for it (control messages are answered here).
    pub async fn recv(&mut self) -> Result<MessagePayload, RtmpError> {
        loop {
            if let Some(p) = self.next_buffered()? {
                return Ok(p);
            }
            self.flush().await?;
            self.fill().await?;
        }
    }

    /// The next complete non-control message among the bytes already read, if any.
    pub fn next_buffered(&mut self) -> Result<Option<MessagePayload>, RtmpError> {
        loop {
            let input = std::mem::take(&mut self.inbound);
            if !input.is_empty() {
                self.received += input.len() as u64;
                self.maybe_ack()?;
            }
            let Some(p) = self.de.get_next_message(&input).map_err(protocol)? else {
                return Ok(None);
            };
            if !self.handle_control(&p)? {
                return Ok(Some(p));
            }
        }
    }

    /// Acknowledges what was received once a window's worth is unacknowledged (sequence number = total bytes
    /// received, modulo 2^32).
    fn maybe_ack(&mut self) -> Result<(), RtmpError> {
        if let Some(w) = self.peer_window.filter(|w| *w > 0) {
            if self.received - self.acked >= w as u64 {
                self.acked = self.received;
                self.queue(
                    RtmpMessage::Acknowledgement {
                        sequence_number: self.received as u32,
                    },
                    0,
                )?;
            }
        }
        Ok(())
    }

    /// Protocol control and user control messages. `true` when `p` was one of them.
    fn handle_control(&mut self, p: &MessagePayload) -> Result<bool, RtmpError> {
        let d = &p.data;
        let u32_at = |i: usize| {
            d.get(i..i + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        match p.type_id {
            TYPE_SET_CHUNK_SIZE => {
                let size = u32_at(0).unwrap_or(0) & 0x7FFF_FFFF;
                if size == 0 {
                    return Err(RtmpError::Protocol("bad chunk size".into()));
                }
                self.de
                    .set_max_chunk_size(size as usize)
                    .map_err(protocol)?;
            }
            TYPE_WINDOW_ACK_SIZE => {
                self.peer_window = u32_at(0);
                self.maybe_ack()?;
            }
            TYPE_USER_CONTROL => {
                // Ping request (6): answer with a ping response (7) carrying the same timestamp.
                // Other events (Stream Begin/EOF, ...) go to the caller.
                if d.len() < 6 || d[..2] != [0, 6] {
                    return Ok(false);
                }
                let mut pong = vec![0, 7];
                pong.extend_from_slice(&d[2..6]);
                self.queue_raw(TYPE_USER_CONTROL, 0, pong)?;
            }
            // Abort, Acknowledgement, Set Peer Bandwidth: nothing to do.
            2 | 3 | 6 => {}
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Shuts the socket down (TLS close_notify, TCP FIN), bounded by `limit`.
    pub async fn shutdown(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            let _ = self.flush().await;
            let _ = poll_fn(|cx| Pin::new(&mut self.io).poll_shutdown(cx)).await;
        })
        .await;
    }
}

/// What an `_error` answer to a command means: a refusal with the server's status code, or with `otherwise`
/// when it gave none.
pub fn refusal(code: String, otherwise: &str) -> RtmpError {
    RtmpError::Rejected(if code.is_empty() {
        otherwise.into()
    } else {
        code
    })
}
