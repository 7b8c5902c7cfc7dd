//! The rig of the media suites: one nginx-rtmp and one in-process Tessera pulling its inputs from `live/{stream_id}`
//! and pushing its outputs to `mix/{stream_id}` on it, with the native API's calls and the publishers and probes
//! around them. A suite adds what only it needs (a dialect's signed calls, a relay's calls) in an `impl Rig` of
//! its own.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{
    checks::{BLUE, GREEN, RED, YELLOW},
    nginx::Nginx,
    probe::OutputProbe,
    publisher::{Pattern, PublishOpts, Publisher},
    server::Tessera,
    util::{init, wait_for},
};

/// One nginx, one Tessera. Fields drop in order: Tessera stops before nginx.
pub struct Rig {
    pub tessera: Tessera,
    pub nginx: Nginx,
}

/// A rect as JSON.
pub fn rect(x: i32, y: i32, w: u32, h: u32) -> Value {
    json!({"x": x, "y": y, "width": w, "height": h})
}

/// Short reconnect delays: inputs retry from 200 ms (at most 1 s apart), outputs from 300 ms (at most 2 s), so a
/// test need not wait out long backoffs after a fault.
pub fn quick_retries(config: &mut ::tessera::Config) {
    config.ingest.retry_initial_ms = 200;
    config.ingest.retry_max_ms = 1_000;
    config.egress.retry_initial_ms = 300;
    config.egress.retry_max_ms = 2_000;
}

/// Polls `get` every `every` until `pred` holds for what it returns (→ that); panics after `timeout` with `what`
/// and the last value.
pub fn wait_value(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut get: impl FnMut() -> Value,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let v = get();
        if pred(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never matched within {timeout:?}: {v:#}"
        );
        std::thread::sleep(every);
    }
}

impl Rig {
    /// A fresh nginx and Tessera with the default config.
    pub fn start() -> Rig {
        Rig::start_with(|_| {})
    }

    /// A fresh nginx and Tessera with its config `tune`d.
    pub fn start_with(tune: impl FnOnce(&mut ::tessera::Config)) -> Rig {
        Rig::on(Nginx::start(), tune)
    }

    /// Tessera with its config `tune`d, on a given nginx.
    pub fn on(nginx: Nginx, tune: impl FnOnce(&mut ::tessera::Config)) -> Rig {
        init();
        let mut config = Tessera::config_for(&nginx);
        tune(&mut config);
        let tessera = Tessera::start(config);
        Rig { tessera, nginx }
    }

    /// A publisher to `live/{stream}` (an input `{"stream_id": stream}`), not waited for.
    pub fn publish(&self, stream: &str, opts: PublishOpts) -> Publisher {
        Publisher::start(&self.nginx.rtmp_url("live", stream), opts)
    }

    /// Like [`Rig::publish`], and waits until nginx-rtmp has the stream (what a dialect that checks its inputs
    /// exist needs before a request).
    pub fn published(&self, stream: &str, opts: PublishOpts) -> Publisher {
        let p = self.publish(stream, opts);
        assert!(
            wait_for(Duration::from_secs(25), || self
                .nginx
                .is_publishing("live", stream)),
            "{stream} never published: {:?}",
            p.errors()
        );
        p
    }

    /// A 320×180 solid-colour publisher, with a sine at `tone_hz` (silence otherwise).
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

    /// Where output `stream` is pushed: `mix/{stream}` on the rig's nginx.
    pub fn out_url(&self, stream: &str) -> String {
        self.nginx.rtmp_url("mix", stream)
    }

    /// A probe decoding output `stream`.
    pub fn probe(&self, stream: &str) -> OutputProbe {
        OutputProbe::start(&self.out_url(stream))
    }

    /// PUTs mix `id` and insists it was accepted (200 or 201); the answer.
    pub fn put(&self, id: &str, spec: &Value) -> Value {
        let (status, body) = self.tessera.put(&format!("/v1/mixes/{id}"), spec);
        assert!(
            status == 200 || status == 201,
            "PUT {id} answered {status}: {body}"
        );
        body
    }

    /// Mix `id` as the API shows it, insisting it exists.
    pub fn get(&self, id: &str) -> Value {
        let (status, body) = self.tessera.get(&format!("/v1/mixes/{id}"));
        assert_eq!(status, 200, "GET {id}: {body}");
        body
    }

    /// Deletes mix `id`, insisting it existed (204).
    pub fn delete(&self, id: &str) {
        let (status, body) = self.tessera.delete(&format!("/v1/mixes/{id}"));
        assert_eq!(status, 204, "DELETE {id}: {body}");
    }

    /// The status of mix `id`.
    pub fn status(&self, id: &str) -> Value {
        self.get(id)["status"].clone()
    }

    /// Polls the status of mix `id` until `pred` holds; panics with the last status after `timeout`.
    pub fn wait_status(&self, id: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        wait_value(
            &format!("the status of {id}"),
            timeout,
            Duration::from_millis(200),
            || self.status(id),
            pred,
        )
    }
}
