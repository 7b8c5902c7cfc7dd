//! The network ends every link shares: the live source an input is pulled with, and the options every RTMP
//! connection (pull or push) is made with.
//!
//! RTMP is Tessera's own client ([`crate::rtmp`]), not GStreamer 1.22's `rtmp2src`/`rtmp2sink`, which leak a
//! connection when stopped while connecting, when a publish is refused and on some "stream not found" answers.
//! An RTMP input is an `appsrc` of FLV bytes fed by a [`crate::rtmp::Player`] on the runtime: whatever becomes of
//! the pipeline (stopped, failed, dropped), the feeder notices within [`GONE_CHECK`] and drops its connection.

use std::time::Duration;

use gst::prelude::*;

use crate::rtmp::{self, Options, RtmpError};

/// How often a feeder looks whether its pipeline is still there.
const GONE_CHECK: Duration = Duration::from_millis(200);
/// FLV bytes an input's appsrc holds before its feeder stops reading the socket (back-pressure, as a source
/// element blocked by its downstream would).
const MAX_QUEUED_BYTES: u64 = 4 << 20;
/// The FLV file header (audio and video flagged, as `rtmp2src` did) with `PreviousTagSize0`.
const FLV_HEADER: [u8; 13] = *b"FLV\x01\x05\0\0\0\x09\0\0\0\0";

/// How Tessera connects over RTMP: `tls_verify` for rtmps:// (outputs follow `egress.rtmps_verify`).
pub fn options(tls_verify: bool) -> Options {
    Options {
        tls_verify,
        ..Options::default()
    }
}

/// The source of a live FLV stream: for rtmp(s)://, an appsrc fed by Tessera's RTMP player; `souphttpsrc`
/// (marked live, so the pipeline runs on the clock instead of prerolling) for http(s)://. Call it inside the
/// runtime (the feeder is a task).
pub fn live_source(url: &str) -> Result<gst::Element, gst::glib::BoolError> {
    if url.starts_with("rtmp") {
        let appsrc = gst_app::AppSrc::builder()
            .caps(&gst::Caps::new_empty_simple("video/x-flv"))
            .is_live(true)
            .format(gst::Format::Bytes)
            .max_bytes(0)
            .block(false)
            .build();
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| gst::glib::bool_error!("an RTMP source needs the runtime"))?;
        runtime.spawn(feed(url.to_string(), appsrc.downgrade()));
        Ok(appsrc.upcast())
    } else {
        gst::ElementFactory::make("souphttpsrc")
            .property("location", url)
            .property("is-live", true)
            .build()
    }
}

/// Pulls `url` into `appsrc` until the stream ends (end of stream), fails (an error on the pipeline's bus) or
/// the pipeline goes away (nothing: the connection is simply dropped).
async fn feed(url: String, appsrc: gst::glib::WeakRef<gst_app::AppSrc>) {
    // Not before the pipeline runs: what is posted on the bus of a pipeline in NULL is dropped, so an error found
    // sooner (a connection refused at once) would be lost and the attempt would wait for its connect timeout.
    if !started(&appsrc).await {
        return;
    }
    let result = tokio::select! {
        r = pull(&url, &appsrc) => r,
        _ = gone(&appsrc) => return,
    };
    let Some(src) = appsrc.upgrade() else { return };
    match result {
        Ok(()) => {
            let _ = src.end_of_stream();
        }
        Err(why) => {
            tracing::debug!(url = %super::redact(&url), error = %why, "RTMP pull ended");
            gst::element_error!(src, gst::ResourceError::Read, ("{}", why));
        }
    }
}

/// Moves the stream's tags into the appsrc as FLV. `Ok` when the publisher ended the stream or the pipeline
/// stopped taking data; `Err` with a reason fit for a status view.
async fn pull(url: &str, appsrc: &gst::glib::WeakRef<gst_app::AppSrc>) -> Result<(), String> {
    let mut player = rtmp::play(url, &options(true))
        .await
        .map_err(|e| e.to_string())?;
    if !push(appsrc, FLV_HEADER.to_vec()).await {
        return Ok(());
    }
    loop {
        let tag = match player.next_tag().await {
            Ok(tag) => tag,
            Err(RtmpError::Closed) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        };
        let Some(bytes) = tag.encode_at(tag.timestamp) else {
            continue;
        };
        if !push(appsrc, bytes).await {
            return Ok(());
        }
    }
}

/// Pushes one buffer once the appsrc has room; `false` once the pipeline takes no more (stopped or gone).
async fn push(appsrc: &gst::glib::WeakRef<gst_app::AppSrc>, bytes: Vec<u8>) -> bool {
    loop {
        let Some(src) = appsrc.upgrade() else {
            return false;
        };
        if src.current_level_bytes() < MAX_QUEUED_BYTES {
            return src.push_buffer(gst::Buffer::from_mut_slice(bytes)).is_ok();
        }
        drop(src);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether the appsrc is in NULL, with no change under way.
fn is_null(src: &gst_app::AppSrc) -> bool {
    let (_, current, pending) = src.state(gst::ClockTime::ZERO);
    current == gst::State::Null && pending == gst::State::VoidPending
}

/// Waits until the appsrc's pipeline has been started; `false` when the appsrc went away first.
async fn started(appsrc: &gst::glib::WeakRef<gst_app::AppSrc>) -> bool {
    loop {
        match appsrc.upgrade() {
            None => return false,
            Some(src) if !is_null(&src) => return true,
            Some(_) => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
}

/// Resolves once the appsrc is gone, or its pipeline was set to NULL (it had started: see [`started`]).
async fn gone(appsrc: &gst::glib::WeakRef<gst_app::AppSrc>) {
    loop {
        tokio::time::sleep(GONE_CHECK).await;
        match appsrc.upgrade() {
            Some(src) if !is_null(&src) => {}
            _ => return,
        }
    }
}
