//! The network ends every link shares: the live source an input is pulled with and the RTMP sink an output
//! publishes with.

use gst::prelude::*;

use crate::config::EgressConfig;

/// The source of a live FLV stream: `rtmp2src` for rtmp(s)://, `souphttpsrc` (marked live, so the pipeline
/// runs on the clock instead of prerolling) for http(s)://.
pub fn live_source(url: &str) -> Result<gst::Element, gst::glib::BoolError> {
    if url.starts_with("rtmp") {
        gst::ElementFactory::make("rtmp2src")
            .property("location", url)
            .build()
    } else {
        gst::ElementFactory::make("souphttpsrc")
            .property("location", url)
            .property("is-live", true)
            .build()
    }
}

/// An `rtmp2sink` publishing to `url` (rtmp:// or rtmps://) as fast as it is fed: every output of a mix and of
/// a relay is one.
pub fn rtmp_sink(url: &str, config: &EgressConfig) -> Result<gst::Element, gst::glib::BoolError> {
    let mut sink = gst::ElementFactory::make("rtmp2sink")
        .property("location", url)
        .property("sync", false)
        .property("async", false);
    if !config.rtmps_verify {
        sink = sink.property_from_str("tls-validation-flags", "no-flags");
    }
    sink.build()
}

/// Bytes an `rtmp2sink` has written to its socket; 0 until it publishes (its connection exists only then).
pub fn sent_bytes(sink: &gst::Element) -> u64 {
    sink.property::<Option<gst::Structure>>("stats")
        .and_then(|s| s.get::<u64>("out-bytes-total").ok())
        .unwrap_or(0)
}
