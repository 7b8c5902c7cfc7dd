//! Supervised media links, free of mixes, relays and vendors: the one loop that keeps an input pulled or an
//! output published (build an attempt → PLAYING → judge progress → stop → back off → retry), and the pieces every
//! link shares.
//!
//! - [`supervisor`]: the [`Session`] / [`Attempt`] traits, the [`Supervisor`] with its retry [`Policy`] and
//!   liveness rule, and the [`Handle`] that reads a link's [`LinkState`] and stops it.
//! - [`pipeline`]: a GStreamer pipeline as an attempt (PLAYING on a blocking thread, ended by its bus, stopped
//!   through [`teardown`]).
//! - [`push`]: the output target every mix output and relay output is: a bounded queue of FLV tags, its
//!   resumption points, and one RTMP publisher ([`crate::rtmp`]) per attempt.
//! - [`rtmp`]: the live source (an appsrc fed by an RTMP player, or souphttpsrc) and the options every RTMP
//!   connection is made with; [`backoff`], [`meter`]: delays and rates.
//! - [`fence`]: until when this node may publish (a cluster node's lease); outputs neither send nor connect
//!   past it.
//! - [`cpu`]: each pipeline's threads named after its task's tag, and CPU time by task; [`gstlog`]: pipelines
//!   named after the same tags, and GStreamer's own warnings and errors forwarded into the log with their task.
//!
//! The engine's input pulls and outputs and the relay's pulls and pushes are sessions on this layer.

pub mod backoff;
pub mod bus;
pub mod cpu;
pub mod fence;
pub mod gstlog;
pub mod link;
pub mod meter;
pub mod pipeline;
pub mod push;
pub mod rtmp;
pub mod supervisor;
pub mod teardown;

pub use link::LinkState;
pub use supervisor::{Attempt, End, Handle, Liveness, Next, Policy, Retries, Session, Supervisor};

/// How metrics and events name a URL: without user info, query or fragment (a token may live there).
pub fn label(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => String::new(),
    }
}

/// A URL fit for logs: without user info, query or fragment (stream keys and tokens live there), and with a
/// path of more than one segment cut to its first segment (an RTMP stream key is the last one).
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let first = u.path_segments().and_then(|mut s| s.next()).unwrap_or("");
            let more = u.path_segments().is_some_and(|s| s.count() > 1);
            format!(
                "{}://{host}{port}/{first}{}",
                u.scheme(),
                if more { "/…" } else { "" }
            )
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn redacted_urls_keep_no_key_or_token() {
        assert_eq!(
            super::redact("rtmp://user:pw@live.example.com:1935/app/streamkey?token=x"),
            "rtmp://live.example.com:1935/app/…"
        );
        assert_eq!(
            super::redact("https://cdn.example.com/a.flv"),
            "https://cdn.example.com/a.flv"
        );
        assert_eq!(super::redact("not a url"), "(unparsable URL)");
    }
}
