//! Tessera's own RTMP client (issue 18), which replaced GStreamer 1.22's leaking `rtmp2src`/`rtmp2sink`, on real
//! nginx-rtmp: the client itself (`client.rs`: play, publish, refusals, a silent server, and thousands of failed
//! connections without a leak) and the supervised links built on it (`links.rs`).

#[path = "../common/mod.rs"]
mod common;

mod client;
mod leak;
mod links;
mod server;
