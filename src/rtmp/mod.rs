//! An RTMP client on tokio: [`play`] a stream into FLV [`Tag`](crate::flv::Tag)s, or [`publish`] tags to a
//! server. Handshake, chunking and message encoding come from `rml_rtmp`; the client side of the command
//! exchange (connect, createStream, play/publish, onStatus) is here, so every byte of audio, video and script
//! data moves untouched (enhanced RTMP, H.265 with codec id 12 or `hvc1` included).
//!
//! Resource rule: a [`Player`] or [`Publisher`] owns its socket and nothing else runs on its behalf. Dropping
//! it, or dropping the future of [`play`]/[`publish`] at any point, closes the connection at once. Every
//! stage is bounded: [`Options::connect_timeout`] covers TCP, TLS, handshake and the server's answers up to
//! play/publish start; [`Options::io_timeout`] bounds each wait for bytes afterwards.

mod connect;
mod play;
mod publish;
mod tls;
mod url;

use std::time::Duration;

pub use play::{play, Player};
pub use publish::{publish, Publisher};
pub use url::{parse_url, RtmpUrl};

/// How a connection behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Bound on everything up to a started stream: TCP connect, TLS, handshake, `connect`, `createStream`
    /// and the server's answer to `play`/`publish`.
    pub connect_timeout: Duration,
    /// Bound on each wait for the peer afterwards: no byte read while one is expected (a player waiting for
    /// media, a close waiting for nothing), no byte written while the socket is blocked.
    pub io_timeout: Duration,
    /// For `rtmps://`: verify the server's certificate against the system's roots.
    pub tls_verify: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(10),
            tls_verify: true,
        }
    }
}

/// Why a connection failed or ended. Messages are short and hold no URL or key.
#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    #[error("bad RTMP URL: {0}")]
    Url(String),
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("timed out during {0}")]
    Timeout(&'static str),
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The server refused: its status code (`NetStream.Publish.BadName`, `NetStream.Play.StreamNotFound`,
    /// `NetConnection.Connect.Rejected`, ...).
    #[error("refused by server: {0}")]
    Rejected(String),
    #[error("connection closed")]
    Closed,
    #[error("RTMP protocol error: {0}")]
    Protocol(String),
}

/// Text from the peer made safe for a log line: printable ASCII, at most 120 characters.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(120)
        .collect()
}
