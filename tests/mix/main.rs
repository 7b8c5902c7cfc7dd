//! Media tests of the core engine, end to end on real parts: nginx-rtmp on loopback, publishers encoding real
//! H.264/AAC, Tessera in-process, and a probe that pulls and decodes the output to check pixels and tones.

#[path = "../common/mod.rs"]
mod common;

mod audio;
mod hevc;
mod live;
mod picture;
mod sei;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// One nginx, one Tessera. Fields drop in order: Tessera stops before nginx.
pub struct Rig {
    pub tessera: Tessera,
    pub nginx: Nginx,
}

impl Rig {
    pub fn start() -> Rig {
        init();
        Rig::on(Nginx::start(), |_| {})
    }

    /// Tessera with its config `tune`d, on a given nginx.
    pub fn on(nginx: Nginx, tune: impl FnOnce(&mut tessera::Config)) -> Rig {
        init();
        let mut config = Tessera::config_for(&nginx);
        tune(&mut config);
        let tessera = Tessera::start(config);
        Rig { tessera, nginx }
    }

    pub fn publish(&self, stream: &str, opts: PublishOpts) -> Publisher {
        Publisher::start(&self.nginx.rtmp_url("live", stream), opts)
    }

    pub fn solid(&self, stream: &str, rgb: u32, tone_hz: Option<f64>) -> Publisher {
        self.publish(
            stream,
            PublishOpts {
                pattern: Pattern::Solid(rgb),
                tone_hz,
                ..PublishOpts::default()
            },
        )
    }

    /// A publisher of four coloured quadrants: red, green / blue, yellow.
    pub fn quadrants(&self, stream: &str) -> Publisher {
        self.publish(
            stream,
            PublishOpts {
                pattern: Pattern::Quadrants([RED, GREEN, BLUE, YELLOW]),
                ..PublishOpts::default()
            },
        )
    }

    pub fn probe(&self, out: &str) -> OutputProbe {
        OutputProbe::start(&self.nginx.rtmp_url("mix", out))
    }

    /// PUTs a mix and insists it was accepted.
    pub fn put(&self, id: &str, spec: &Value) -> Value {
        let (status, body) = self.tessera.put(&format!("/v1/mixes/{id}"), spec);
        assert!(
            status == 200 || status == 201,
            "PUT {id} answered {status}: {body}"
        );
        body
    }

    pub fn status(&self, id: &str) -> Value {
        let (status, body) = self.tessera.get(&format!("/v1/mixes/{id}"));
        assert_eq!(status, 200, "{body}");
        body["status"].clone()
    }

    /// Polls the mix status until `pred` holds.
    pub fn wait_status(&self, id: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status(id);
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "status never matched: {s}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A rect as JSON.
pub fn rect(x: i32, y: i32, w: u32, h: u32) -> Value {
    json!({"x": x, "y": y, "width": w, "height": h})
}

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
