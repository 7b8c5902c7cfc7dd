//! The control plane under slow, hostile and abandoned requests (issues 14 §1 and 19 §4): no request waits for
//! another task's slow work; a client that hangs up never leaves a change half-done or an older change undoing
//! a newer one; a restart answers at once and says what it could not start; a mix may not feed itself and no
//! two tasks — mixes or relays — publish to one stream; a ZEGO signature is not replayable across a restart.
//!
//! Most run in-process without media servers: outputs point at a closed port and retry, inputs at nothing;
//! pipelines start as they would for a real mix. The crash cases run the real binary.

#[path = "../common/mod.rs"]
mod common;

mod cancel;
mod claims;
mod locks;
mod restore;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Where nothing listens: outputs and inputs there retry, never blocking anything.
pub const NOWHERE: &str = "rtmp://127.0.0.1:1";

/// A PNG of `w`×`h`, opaque yellow.
pub fn png(w: u32, h: u32) -> Vec<u8> {
    init();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.png");
    write_png(&path, 0xFFFFFF00, w, h);
    std::fs::read(&path).unwrap()
}

/// A config for an in-process node whose inputs and outputs lead nowhere, with ZEGO on (no input check).
pub fn config() -> tessera::Config {
    let mut c = tessera::Config::default();
    c.store.path = String::new();
    c.ingest.pull_url = format!("{NOWHERE}/live/{{stream_id}}");
    c.egress.push_url = format!("{NOWHERE}/mix/{{stream_id}}");
    c.engine.max_mixes = Some(10);
    c.zego.app_id = ZEGO_APP;
    c.zego.server_secret = ZEGO_SECRET.into();
    c.zego.input_check_ms = 0;
    c.zego.max_requests_per_s = 0;
    c
}

/// A config for the real binary like [`config`] without ZEGO: inputs and outputs nowhere, state in `dir/state`,
/// then `extra` (TOML sections). The config's path and the API port.
pub fn write_binary_config(dir: &std::path::Path, extra: &str) -> (std::path::PathBuf, u16) {
    write_config_with(
        dir,
        &format!(
            r#"[ingest]
pull_url = "{NOWHERE}/live/{{stream_id}}"
[egress]
push_url = "{NOWHERE}/mix/{{stream_id}}"
[engine]
max_mixes = 10
# Relative to this file's folder: `dir` (local image files named in requests lie there).
pictures_dir = "."
{extra}"#
        ),
    )
}

/// A small mix publishing `out`, with an overlay from `image` if given.
pub fn mix(out: &str, image: Option<&str>) -> Value {
    let mut spec = json!({
        "canvas": {"width": 320, "height": 180, "fps": 15},
        "inputs": [{"id": "a", "source": {"stream_id": "a"}, "rect": {"x": 0, "y": 0, "width": 160, "height": 90}}],
        "outputs": [{"target": {"stream_id": out}, "video": {"bitrate_kbps": 300}}]
    });
    if let Some(image) = image {
        spec["overlays"] = json!([{"id": "logo", "image": image, "rect": {"x": 240, "y": 10, "width": 64, "height": 64}}]);
    }
    spec
}

/// A blocking client for `base`, with a timeout of its own (a client that gives up).
pub fn client(timeout: Duration) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// Sends one request; its status (0 when the client gave up), JSON body, and how long it took.
pub fn timed(
    client: &reqwest::blocking::Client,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> (u16, Value, Duration) {
    let began = Instant::now();
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(b) = body {
        req = req.json(b);
    }
    match req.send() {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let v = resp.json().unwrap_or(Value::Null);
            (status, v, began.elapsed())
        }
        Err(_) => (0, Value::Null, began.elapsed()),
    }
}
