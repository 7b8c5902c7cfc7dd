//! Media tests of the relay engine, end to end on real parts: nginx-rtmp on loopback, publishers encoding real
//! H.264/AAC as main and backup inputs, the relay projects of an in-process Tessera driven directly
//! (`tessera::relay::Relays`, on the server's runtime), and probes that pull and decode the outputs. Run one at a
//! time:
//! `cargo test --test relay -- --test-threads=1`.

#[path = "../common/mod.rs"]
mod common;

mod api;
mod failover;
mod hooks;
mod lifecycle;
mod outputs;
mod preview;
mod vod;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tessera::relay::RelaySpec;

/// A rig whose inputs reconnect within a second and outputs retry from 300 ms: tests need not wait for long
/// backoffs.
pub fn rig() -> Rig {
    rig_with(|_| {})
}

pub fn rig_with(tune: impl FnOnce(&mut tessera::Config)) -> Rig {
    rig_on(Nginx::start(), tune)
}

/// Like [`rig_with`], on a given nginx.
pub fn rig_on(nginx: Nginx, tune: impl FnOnce(&mut tessera::Config)) -> Rig {
    Rig::on(nginx, |c| {
        quick_retries(c);
        tune(c);
    })
}

/// The server's relay projects, driven directly (`tessera::relay::Relays`, on the server's runtime).
impl Rig {
    /// Creates or changes project `id` from JSON; panics if refused. `true` when created.
    pub fn put_relay(&self, id: &str, spec: &Value) -> bool {
        let spec: RelaySpec = serde_json::from_value(spec.clone()).expect("a RelaySpec");
        self.tessera
            .block_on(self.tessera.relays.put(id, spec))
            .unwrap_or_else(|e| panic!("put {id}: {e} {:?}", e.violations))
    }

    pub fn start_relay(&self, id: &str) {
        self.tessera
            .block_on(self.tessera.relays.start(id))
            .unwrap_or_else(|e| panic!("start {id}: {e}"));
    }

    /// The project's status as JSON (as the API will show it).
    pub fn relay_status(&self, id: &str) -> Value {
        let view = self.tessera.relays.get(id).expect("project exists");
        serde_json::to_value(view.status).unwrap()
    }

    /// Polls the project's status until `pred` holds; panics with the last status otherwise.
    pub fn wait_relay(&self, id: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        wait_value(
            &format!("the status of relay {id}"),
            timeout,
            Duration::from_millis(50),
            || self.relay_status(id),
            pred,
        )
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
