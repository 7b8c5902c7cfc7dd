//! Media tests of the core engine, end to end on real parts: nginx-rtmp on loopback, publishers encoding real
//! H.264/AAC, Tessera in-process, and a probe that pulls and decodes the output to check pixels and tones.

#[path = "../common/mod.rs"]
mod common;

mod audio;
mod hevc;
mod live;
mod metrics;
mod picture;
mod preview;
mod sei;
mod worker;

use common::*;
use serde_json::{json, Value};

/// An input pulled from the stream of the same id, shown in `r`.
pub fn input(id: &str, r: Value) -> Value {
    json!({"id": id, "source": {"stream_id": id}, "rect": r})
}

/// Inputs `a` and `b` side by side across the top half of the canvas.
pub fn side_by_side() -> Vec<Value> {
    vec![
        input("a", rect(0, 0, 320, 180)),
        input("b", rect(320, 0, 320, 180)),
    ]
}

/// A 640×360 mix on `background` with the given inputs, published as stream `out`.
pub fn spec(background: &str, inputs: Vec<Value>) -> Value {
    json!({
        "canvas": {"width": 640, "height": 360, "fps": 30, "background": background},
        "inputs": inputs,
        "outputs": [{"target": {"stream_id": "out"}, "video": {"bitrate_kbps": 1500}}]
    })
}
