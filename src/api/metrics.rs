//! `GET /metrics`: Prometheus (OpenMetrics) text, through `prometheus-client`. Counters end in `_total`, values
//! are in base units (seconds, bytes), labels are operator-given ids (mix, relay and output ids, stream ids) or
//! URLs without user info or query — never a client's address or a token. Everything is read from the engine
//! and the relays at scrape time, off the async workers; nothing here runs per frame.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::{Registry, Unit},
};

use super::AppState;
use crate::{
    engine::status::MixState,
    events::TaskRef,
    media::cpu::{self, Owner},
    relay::Endpoint,
};

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Upper bounds of the request-duration histogram, seconds.
const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One histogram's requests per bucket (not cumulative), sum of seconds and count.
type Histogram = ([u64; BUCKETS.len()], f64, u64);

/// What the API layer counts of its requests.
#[derive(Default)]
pub struct ApiCounts {
    /// (dialect, action, outcome) → requests.
    requests: Mutex<HashMap<(&'static str, String, &'static str), u64>>,
    /// Dialect → (bucket counts, sum of seconds, count).
    durations: Mutex<HashMap<&'static str, Histogram>>,
}

impl ApiCounts {
    pub fn record(
        &self,
        dialect: &'static str,
        action: String,
        outcome: &'static str,
        took: Duration,
    ) {
        *self
            .requests
            .lock()
            .unwrap()
            .entry((dialect, action, outcome))
            .or_default() += 1;
        let secs = took.as_secs_f64();
        let mut d = self.durations.lock().unwrap();
        let (buckets, sum, count) = d.entry(dialect).or_insert(([0; BUCKETS.len()], 0.0, 0));
        // Each request in its own bucket (the encoder makes them cumulative); beyond the last: only in `count`.
        if let Some(i) = BUCKETS.iter().position(|le| secs <= *le) {
            buckets[i] += 1;
        }
        *sum += secs;
        *count += 1;
    }
}

/// A mix's share of the CPU its shared inputs cost, kept between scrapes: each scrape splits what every input
/// used since the last one between the mixes it feeds now.
#[derive(Default)]
pub struct CpuShares {
    last_input: HashMap<String, f64>,
    mix_share: HashMap<String, f64>,
}

/// The snapshot one scrape encodes.
#[derive(Debug)]
struct Snapshot {
    text: Vec<Family>,
}

/// One metric family: name, help, type, unit, and its samples (labels, value).
#[derive(Debug)]
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    unit: Option<Unit>,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str, kind: MetricType, unit: Option<Unit>) -> Self {
        Self {
            name,
            help,
            kind,
            unit,
            samples: Vec::new(),
        }
    }

    fn add(&mut self, labels: Vec<(&'static str, String)>, value: f64) -> &mut Self {
        self.samples.push((labels, value));
        self
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.text {
            let mut metric = encoder.encode_descriptor(f.name, f.help, f.unit.as_ref(), f.kind)?;
            for (labels, value) in &f.samples {
                let family = metric.encode_family(labels)?;
                match f.kind {
                    MetricType::Counter => ConstCounter::new(*value).encode(family)?,
                    _ => ConstGauge::new(*value).encode(family)?,
                }
            }
        }
        Ok(())
    }
}

/// The output families, shared by mix and relay outputs (labelled `mix` or `relay`, and `output`).
struct Outputs([Family; 3]);

impl Outputs {
    fn new() -> Self {
        Self([
            Family::new(
                "tessera_output_up",
                "Whether an output publishes (1) or not (0)",
                MetricType::Gauge,
                None,
            ),
            Family::new(
                "tessera_output_sent",
                "Bytes an output sent",
                MetricType::Counter,
                Some(Unit::Bytes),
            ),
            Family::new(
                "tessera_output_reconnects",
                "Connections an output tried after its first",
                MetricType::Counter,
                None,
            ),
        ])
    }

    /// One output of the task `(kind, id)`.
    fn add(&mut self, (kind, id): (&'static str, &str), o: &crate::media::push::OutputMetrics) {
        let labels = vec![(kind, id.to_string()), ("output", o.output.clone())];
        let [up, sent, reconnects] = &mut self.0;
        up.add(labels.clone(), if o.up { 1.0 } else { 0.0 });
        sent.add(labels.clone(), o.sent_bytes as f64);
        reconnects.add(labels, o.reconnects as f64);
    }
}

/// Histograms cannot be const metrics: the request durations are encoded on their own.
#[derive(Debug)]
struct Durations(Vec<(&'static str, [u64; BUCKETS.len()], f64, u64)>);

impl Collector for Durations {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(
            "tessera_api_request_duration",
            "How long API requests took, by dialect",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (dialect, buckets, sum, count) in &self.0 {
            let labels = vec![("dialect", dialect.to_string())];
            let family = metric.encode_family(&labels)?;
            let within: u64 = buckets.iter().sum();
            // The encoder writes `+Inf` for f64::MAX.
            let per_bucket: Vec<(f64, u64)> = BUCKETS
                .iter()
                .zip(buckets)
                .map(|(le, n)| (*le, *n))
                .chain(std::iter::once((f64::MAX, count - within)))
                .collect();
            let mut family = family;
            family.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                *sum,
                *count,
                &per_bucket,
                None,
            )?;
        }
        Ok(())
    }
}

/// Prometheus metrics of the node, its mixes, inputs, outputs and relays (docs/operations.md lists them).
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "health",
    responses(
        (status = 200, description = "OpenMetrics text exposition (docs/operations.md lists every metric)",
            body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 429, response = super::error::RateLimited),
    )
)]
pub(super) async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let text = tokio::task::spawn_blocking(move || render(&s))
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}

/// Resident memory, in bytes.
fn resident_bytes() -> f64 {
    let pages: f64 = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as f64;
    pages * page
}

fn open_fds() -> f64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count()) as f64
}

fn state_name(s: MixState) -> &'static str {
    match s {
        MixState::Starting => "starting",
        MixState::Running => "running",
        MixState::Failed => "failed",
    }
}

/// Reads everything and writes the exposition.
fn render(s: &AppState) -> String {
    let began = Instant::now();
    let engine = s.engine.metrics();
    let relays = s.relays.metrics();
    let mut cpu = cpu::by_owner();
    // Mixes in worker processes: their threads are counted there.
    if let Some(w) = s.engine.workers() {
        cpu.extend(w.cpu());
    }
    let mut families = Vec::new();

    let mut build = Family::new(
        "tessera_build_info",
        "The running build",
        MetricType::Gauge,
        None,
    );
    build.add(
        vec![("version", env!("CARGO_PKG_VERSION").to_string())],
        1.0,
    );
    families.push(build);
    let mut f = Family::new(
        "process_cpu",
        "CPU the process used",
        MetricType::Counter,
        Some(Unit::Seconds),
    );
    f.add(vec![], cpu::process());
    families.push(f);
    let mut f = Family::new(
        "process_resident_memory",
        "Resident memory",
        MetricType::Gauge,
        Some(Unit::Bytes),
    );
    f.add(vec![], resident_bytes());
    families.push(f);
    let mut f = Family::new(
        "process_open_fds",
        "Open file descriptors",
        MetricType::Gauge,
        None,
    );
    f.add(vec![], open_fds());
    families.push(f);

    // Mixes and relays by state.
    let mut f = Family::new("tessera_mixes", "Mixes, by state", MetricType::Gauge, None);
    for state in [MixState::Starting, MixState::Running, MixState::Failed] {
        let n = engine
            .mixes
            .iter()
            .filter(|(_, st, _)| *st == state)
            .count();
        f.add(vec![("state", state_name(state).into())], n as f64);
    }
    families.push(f);
    let mut f = Family::new(
        "tessera_relays",
        "Relay projects, by state",
        MetricType::Gauge,
        None,
    );
    for (state, running) in [("running", true), ("idle", false)] {
        let n = relays.iter().filter(|r| r.running == running).count();
        f.add(vec![("state", state.into())], n as f64);
    }
    families.push(f);

    // Per mix.
    let mut frames = Family::new(
        "tessera_mix_output_frames",
        "Frames the mix's compositor produced",
        MetricType::Counter,
        None,
    );
    let mut dropped = Family::new(
        "tessera_mix_frames_dropped",
        "Frames dropped or repeated on the way, by stage: input (an input's queue), compositor (input frames that \
         came too late), encoder (canvas frames dropped or repeated before the encoder)",
        MetricType::Counter,
        None,
    );
    let mut lag = Family::new(
        "tessera_mix_lag",
        "How far the newest output frame runs behind the clock",
        MetricType::Gauge,
        Some(Unit::Seconds),
    );
    let mut outputs = Outputs::new();
    for (id, _, m) in &engine.mixes {
        let Some(m) = m else { continue };
        frames.add(vec![("mix", id.clone())], m.output_frames as f64);
        for (stage, n) in [
            ("input", m.dropped_input),
            ("compositor", m.dropped_compositor),
            ("encoder", m.dropped_encoder),
        ] {
            dropped.add(vec![("mix", id.clone()), ("stage", stage.into())], n as f64);
        }
        lag.add(vec![("mix", id.clone())], m.lag_seconds);
        for o in &m.outputs {
            outputs.add(("mix", id), o);
        }
    }

    // CPU: each mix's own threads, plus its share of the inputs it uses.
    let mut shares = s.cpu_shares.lock().unwrap();
    let mut own: HashMap<String, f64> = HashMap::new();
    let mut relay_cpu: HashMap<String, f64> = HashMap::new();
    let mut input_cpu = Family::new(
        "tessera_input_cpu",
        "CPU an input's pull and decoding used (shared by the mixes it feeds)",
        MetricType::Counter,
        Some(Unit::Seconds),
    );
    for (owner, secs) in &cpu {
        match owner {
            Owner::Task(TaskRef::Mix(id)) => *own.entry(id.clone()).or_default() += secs,
            Owner::Task(TaskRef::Relay(id)) => *relay_cpu.entry(id.clone()).or_default() += secs,
            Owner::Input(url) => {
                input_cpu.add(vec![("input", crate::media::label(url))], *secs);
                let before = shares.last_input.insert(url.clone(), *secs).unwrap_or(0.0);
                let delta = (secs - before).max(0.0);
                let users: Vec<&String> = engine
                    .inputs
                    .iter()
                    .find(|i| &i.url == url)
                    .map(|i| i.mixes.iter().collect())
                    .unwrap_or_default();
                for mix in &users {
                    *shares.mix_share.entry((*mix).clone()).or_default() +=
                        delta / users.len() as f64;
                }
            }
        }
    }
    let mut mix_cpu = Family::new(
        "tessera_mix_cpu",
        "CPU a mix used: its own threads (compositing, encoding, publishing) and its share of the inputs it decodes \
         with other mixes",
        MetricType::Counter,
        Some(Unit::Seconds),
    );
    for (id, _, _) in &engine.mixes {
        let total =
            own.get(id).copied().unwrap_or(0.0) + shares.mix_share.get(id).copied().unwrap_or(0.0);
        mix_cpu.add(vec![("mix", id.clone())], total);
    }
    drop(shares);
    families.extend([frames, dropped, lag, mix_cpu, input_cpu]);

    // Worker processes, and the one each mix runs in.
    let mut workers = Family::new(
        "tessera_workers",
        "Worker processes mixes run in",
        MetricType::Gauge,
        None,
    );
    workers.add(
        vec![],
        s.engine.workers().map_or(0, |w| w.usage().len()) as f64,
    );
    let mut workers_cpu = Family::new(
        "tessera_workers_cpu",
        "CPU the worker processes used (those running, the spare, and those that ended), which process_cpu does \
         not include",
        MetricType::Counter,
        Some(Unit::Seconds),
    );
    workers_cpu.add(vec![], crate::worker::usage::children_cpu_seconds());
    let mut w_cpu = Family::new(
        "tessera_mix_process_cpu_cores",
        "Cores the worker process a mix runs in used over the last second (shared by the mixes in it)",
        MetricType::Gauge,
        None,
    );
    let mut w_mem = Family::new(
        "tessera_mix_process_resident_memory",
        "Resident memory of the worker process a mix runs in (shared by the mixes in it)",
        MetricType::Gauge,
        Some(Unit::Bytes),
    );
    for (id, usage) in &engine.processes {
        let labels = vec![("mix", id.clone()), ("pid", usage.pid.to_string())];
        w_cpu.add(labels.clone(), usage.cpu_cores);
        w_mem.add(labels, usage.memory_bytes as f64);
    }
    families.extend([workers, workers_cpu, w_cpu, w_mem]);

    // Per input.
    let mut up = Family::new(
        "tessera_input_up",
        "Whether an input delivers media (1) or not (0)",
        MetricType::Gauge,
        None,
    );
    let mut received = Family::new(
        "tessera_input_received",
        "Bytes read from an input",
        MetricType::Counter,
        Some(Unit::Bytes),
    );
    let mut in_frames = Family::new(
        "tessera_input_frames",
        "Decoded frames of an input, by kind (video, audio)",
        MetricType::Counter,
        None,
    );
    let mut in_reconnects = Family::new(
        "tessera_input_reconnects",
        "Connections an input tried after its first",
        MetricType::Counter,
        None,
    );
    let mut age = Family::new(
        "tessera_input_last_frame_age",
        "Time since an input's newest frame",
        MetricType::Gauge,
        Some(Unit::Seconds),
    );
    for i in &engine.inputs {
        let l = vec![("input", i.input.clone())];
        up.add(l.clone(), if i.up { 1.0 } else { 0.0 });
        received.add(l.clone(), i.received_bytes as f64);
        in_frames.add(
            vec![("input", i.input.clone()), ("kind", "video".into())],
            i.video_frames as f64,
        );
        in_frames.add(
            vec![("input", i.input.clone()), ("kind", "audio".into())],
            i.audio_frames as f64,
        );
        in_reconnects.add(l.clone(), i.reconnects as f64);
        if let Some(a) = i.last_frame_age {
            age.add(l, a);
        }
    }
    families.extend([up, received, in_frames, in_reconnects, age]);

    // Relays.
    let mut failovers = Family::new(
        "tessera_relay_failovers",
        "Input switches of a relay (failovers, returns to main, manual)",
        MetricType::Counter,
        None,
    );
    let mut active = Family::new(
        "tessera_relay_active_source",
        "Which input a relay forwards (1) and which not (0), by role",
        MetricType::Gauge,
        None,
    );
    let mut r_cpu = Family::new(
        "tessera_relay_cpu",
        "CPU a relay project used",
        MetricType::Counter,
        Some(Unit::Seconds),
    );
    for r in &relays {
        r_cpu.add(
            vec![("relay", r.id.clone())],
            relay_cpu.get(&r.id).copied().unwrap_or(0.0),
        );
        if !r.running {
            continue;
        }
        failovers.add(vec![("relay", r.id.clone())], r.switches as f64);
        for role in [Endpoint::Main, Endpoint::Backup] {
            let on = r.active == Some(role);
            active.add(
                vec![("relay", r.id.clone()), ("role", role.as_str().into())],
                if on { 1.0 } else { 0.0 },
            );
        }
        for o in &r.outputs {
            outputs.add(("relay", &r.id), o);
        }
    }
    families.extend(outputs.0);
    families.extend([failovers, active, r_cpu]);

    // The API and webhooks.
    let mut requests = Family::new(
        "tessera_api_requests",
        "API requests, by dialect, action and outcome (ok, refused, error)",
        MetricType::Counter,
        None,
    );
    for ((dialect, action, outcome), n) in s.api_counts.requests.lock().unwrap().iter() {
        requests.add(
            vec![
                ("dialect", dialect.to_string()),
                ("action", action.clone()),
                ("outcome", outcome.to_string()),
            ],
            *n as f64,
        );
    }
    families.push(requests);
    let mut hooks = Family::new(
        "tessera_webhook_deliveries",
        "Webhook deliveries, by outcome (delivered, retried, dropped)",
        MetricType::Counter,
        None,
    );
    for (outcome, n) in [
        ("delivered", &s.webhooks.counts.delivered),
        ("retried", &s.webhooks.counts.retried),
        ("dropped", &s.webhooks.counts.dropped),
    ] {
        hooks.add(
            vec![("outcome", outcome.into())],
            n.load(Ordering::Relaxed) as f64,
        );
    }
    families.push(hooks);
    let durations: Vec<_> = s
        .api_counts
        .durations
        .lock()
        .unwrap()
        .iter()
        .map(|(d, (b, sum, n))| (*d, *b, *sum, *n))
        .collect();

    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot { text: families }));
    registry.register_collector(Box::new(Durations(durations)));
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        tracing::error!("metrics not encoded");
    }
    SCRAPE_NS.fetch_add(began.elapsed().as_nanos() as u64, Ordering::Relaxed);
    text
}

/// Time spent rendering scrapes, for the scrape-cost measurement.
pub static SCRAPE_NS: AtomicU64 = AtomicU64::new(0);

/// Keeps an `Arc` of the shares so the state can hold it.
pub type Shares = Arc<Mutex<CpuShares>>;
