//! Media tests of the relay engine, end to end on real parts: nginx-rtmp on loopback, publishers encoding real
//! H.264/AAC as main and backup inputs, `tessera::relay::Relays` driven directly (in-process, its own tokio
//! runtime), and probes that pull and decode the outputs. Run one at a time:
//! `cargo test --test relay -- --test-threads=1`.

#[path = "../common/mod.rs"]
mod common;

mod api;
mod failover;
mod hooks;
mod lifecycle;
mod outputs;
mod vod;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tessera::relay::{RelaySpec, Relays};

/// One nginx and one `Relays` with its runtime. Drop stops every project before nginx goes.
pub struct Rig {
    pub relays: Relays,
    pub rt: tokio::runtime::Runtime,
    pub nginx: Nginx,
}

impl Rig {
    /// Inputs reconnect within a second, outputs retry from 300 ms: tests need not wait for long backoffs.
    pub fn start() -> Rig {
        Rig::with(|_| {})
    }

    pub fn with(tune: impl FnOnce(&mut tessera::Config)) -> Rig {
        Rig::on(Nginx::start(), tune)
    }

    /// Like [`Rig::with`], on a given nginx.
    pub fn on(nginx: Nginx, tune: impl FnOnce(&mut tessera::Config)) -> Rig {
        init();
        let mut config = Tessera::config_for(&nginx);
        config.ingest.retry_initial_ms = 200;
        config.ingest.retry_max_ms = 1_000;
        config.egress.retry_initial_ms = 300;
        config.egress.retry_max_ms = 2_000;
        tune(&mut config);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let relays = {
            let _rt = rt.enter();
            Relays::in_memory(config)
        };
        Rig { relays, rt, nginx }
    }

    /// A solid-colour publisher (with a tone) to `live/{stream}`, i.e. input `{"push": stream}`.
    pub fn solid(&self, stream: &str, rgb: u32) -> Publisher {
        Publisher::start(
            &self.nginx.rtmp_url("live", stream),
            PublishOpts {
                pattern: Pattern::Solid(rgb),
                tone_hz: Some(440.0),
                ..PublishOpts::default()
            },
        )
    }

    /// Where output `stream` is pushed: `mix/{stream}` on the rig's nginx.
    pub fn out_url(&self, stream: &str) -> String {
        self.nginx.rtmp_url("mix", stream)
    }

    pub fn probe(&self, stream: &str) -> OutputProbe {
        OutputProbe::start(&self.out_url(stream))
    }

    /// Creates or changes project `id` from JSON; panics if refused. `true` when created.
    pub fn put(&self, id: &str, spec: &Value) -> bool {
        let spec: RelaySpec = serde_json::from_value(spec.clone()).expect("a RelaySpec");
        self.rt
            .block_on(self.relays.put(id, spec))
            .unwrap_or_else(|e| panic!("put {id}: {e} {:?}", e.violations))
    }

    pub fn start_project(&self, id: &str) {
        self.rt
            .block_on(self.relays.start(id))
            .unwrap_or_else(|e| panic!("start {id}: {e}"));
    }

    /// The project's status as JSON (as the API will show it).
    pub fn status(&self, id: &str) -> Value {
        let view = self.relays.get(id).expect("project exists");
        serde_json::to_value(view.status).unwrap()
    }

    /// Polls the status until `pred` holds; panics with the last status otherwise.
    pub fn wait_status(&self, id: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status(id);
            if pred(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "status never matched: {s:#}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.rt.block_on(self.relays.shutdown());
    }
}

/// A project pulling `main` (and `backup`) by stream id and pushing to `mix/{o}` for each of `outputs`.
pub fn spec(rig: &Rig, backup: bool, outputs: &[&str]) -> Value {
    let mut s = json!({
        "main": {"push": "main"},
        "outputs": outputs.iter().map(|o| json!({"id": o, "name": format!("platform {o}"), "url": rig.out_url(o)})).collect::<Vec<_>>(),
        "failover": {"stall_ms": 1000, "return_to_main": true, "return_after_ms": 3000},
    });
    if backup {
        s["backup"] = json!({"push": "backup"});
    }
    s
}

/// The state of output `id` in a status.
pub fn output_state(status: &Value, id: &str) -> String {
    status["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["id"] == id))
        .map(|o| o["state"].as_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Centre of the publishers' 320×180 picture.
pub const CENTRE: (u32, u32) = (160, 90);

pub fn expect_colour(probe: &OutputProbe, rgb: u32, timeout: Duration) {
    expect_pixels(probe, &[(CENTRE.0, CENTRE.1, rgb)], timeout);
}

/// Asserts the decoded output's timestamps never went back and never jumped by more than `max_step`.
pub fn assert_pts_continuous(probe: &OutputProbe, max_step: Duration) {
    let pts: Vec<u64> = probe
        .frame_times()
        .iter()
        .filter_map(|(_, p)| p.map(|p| p.mseconds()))
        .collect();
    assert!(pts.len() > 30, "too few frames: {}", pts.len());
    for w in pts.windows(2) {
        assert!(
            w[1] >= w[0] && w[1] - w[0] <= max_step.as_millis() as u64,
            "output timestamps jump: {} → {} ms",
            w[0],
            w[1]
        );
    }
}
