//! One measured run of a scene by one contender, and the capacity search over N concurrent copies.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::{
    contender::{self, Kind, Launch},
    media,
    probe::{FlowStats, LatencyStats, StampProbe, TagProbe, Watch},
    publish::Publisher,
    scene::{self, Scene},
};

/// A viewer-acceptable output: the capacity criterion.
pub const MIN_FPS: f64 = 29.5;
pub const MAX_GAP_MS: f64 = 100.0;

/// Publishers of every stream any run needed so far; they run until the bench ends, so an input's timeline
/// is the same for every contender.
pub struct Publishers {
    cache: PathBuf,
    content: media::Content,
    running: Mutex<HashMap<String, Arc<Publisher>>>,
}

impl Publishers {
    pub fn new(cache: PathBuf, content: media::Content) -> Self {
        Self {
            cache,
            content,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Copy `k`'s streams of `scene`, started if needed. The stream's place in the scene picks the file
    /// variant, so neighbouring inputs differ.
    fn ensure(&self, scene: &Scene, k: usize, base: &str) -> Result<(), String> {
        let mut running = self.running.lock().unwrap();
        for (i, (stream, size)) in scene.streams.iter().enumerate() {
            let name = scene::stream_of(stream, k);
            if running.contains_key(&name) {
                continue;
            }
            let file = media::input_file(&self.cache, self.content, *size, (i % 4) as u32)?;
            let p = Publisher::start(&file, &format!("{base}/live/{name}"), &name)?;
            running.insert(name, Arc::new(p));
        }
        Ok(())
    }

    fn get(&self, stream: &str) -> Option<Arc<Publisher>> {
        self.running.lock().unwrap().get(stream).cloned()
    }

    fn errors(&self) -> Vec<String> {
        self.running
            .lock()
            .unwrap()
            .values()
            .filter_map(|p| p.error().map(|e| format!("{}: {e}", p.stream)))
            .collect()
    }
}

pub struct Bench {
    /// The RTMP server everything publishes to and plays from.
    pub nginx: crate::nginx::Nginx,
    pub root: PathBuf,
    pub tessera_bin: PathBuf,
    /// Extra configuration for Tessera (`section.key=value`).
    pub tessera_set: Vec<String>,
    pub base: String,
    pub publishers: Publishers,
}

/// The figures of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measurement {
    pub scene: String,
    pub contender: Kind,
    pub copies: usize,
    /// Mixes (or relayed outputs) per copy: what "per mix" divides by.
    pub units_per_copy: usize,
    pub cpu_cores: f64,
    pub cpu_per_copy: f64,
    pub cpu_per_unit: f64,
    pub rss_mib: f64,
    pub rss_per_copy_mib: f64,
    /// What each copy adds to the contender's resident memory: for Tessera, above the idle server.
    pub rss_added_per_copy_mib: f64,
    /// The same in proportional memory (PSS: shared library pages split between the processes mapping them).
    pub pss_added_per_copy_mib: f64,
    /// The worst output's figures.
    pub flow: FlowStats,
    pub latency: Option<LatencyStats>,
    /// Every output at ≥ 29.5 fps with no timestamp gap over 100 ms, and every process still running.
    pub healthy: bool,
    /// Tessera: from a mix's create request to its first video frame at the RTMP server, worst of the run's
    /// mixes, ms.
    pub first_frame_ms: Option<f64>,
    /// Tessera: its worker processes during the run.
    pub workers: usize,
    /// Why a run produced nothing useful, when it did not.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Capacity {
    pub scene: String,
    pub contender: Kind,
    pub capacity: usize,
    /// (N, healthy) in the order tried.
    pub steps: Vec<(usize, bool)>,
}

impl Bench {
    pub fn measure(
        &self,
        scene: &Scene,
        kind: Kind,
        copies: usize,
        warmup: Duration,
        secs: Duration,
        latency: bool,
    ) -> Measurement {
        let units_per_copy = if scene.is_relay() {
            scene
                .relay
                .as_ref()
                .map_or(1, |r| r["outputs"].as_array().map_or(1, |a| a.len().max(1)))
        } else {
            scene.mixes.len()
        };
        let mut m = Measurement {
            scene: scene.name.clone(),
            contender: kind,
            copies,
            units_per_copy,
            cpu_cores: f64::NAN,
            cpu_per_copy: f64::NAN,
            cpu_per_unit: f64::NAN,
            rss_mib: f64::NAN,
            rss_per_copy_mib: f64::NAN,
            rss_added_per_copy_mib: f64::NAN,
            pss_added_per_copy_mib: f64::NAN,
            flow: FlowStats::default(),
            latency: None,
            healthy: false,
            first_frame_ms: None,
            workers: 0,
            problem: None,
        };
        if let Err(e) = self.measure_into(&mut m, scene, kind, copies, warmup, secs, latency) {
            m.problem = Some(e);
        }
        m
    }

    #[allow(clippy::too_many_arguments)]
    fn measure_into(
        &self,
        m: &mut Measurement,
        scene: &Scene,
        kind: Kind,
        copies: usize,
        warmup: Duration,
        secs: Duration,
        latency: bool,
    ) -> Result<(), String> {
        let (mut running, outputs, started) = self.launch(scene, kind, copies, warmup)?;
        let probes: Vec<TagProbe> = outputs
            .iter()
            .map(|o| TagProbe::start(&format!("{}/mix/{}", self.base, o.stream)))
            .collect();
        let stamp_probe = match (latency, outputs.first()) {
            (true, Some(first)) => self
                .watches(first)
                .map(|w| StampProbe::start(&format!("{}/mix/{}", self.base, first.stream), w)),
            _ => None,
        };
        // The rest of the warm-up, and at least one GOP for the stamp probe to start decoding.
        std::thread::sleep(
            warmup
                .saturating_sub(started.elapsed())
                .max(Duration::from_secs(3)),
        );
        let (t0, cpu0) = (Instant::now(), running.cpu_seconds());
        std::thread::sleep(secs);
        let (t1, cpu1) = (Instant::now(), running.cpu_seconds());
        m.rss_mib = running.rss_mib();
        m.workers = running.workers();
        m.first_frame_ms = running
            .first_frames
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.as_secs_f64() * 1000.0)
            .reduce(f64::max);
        let alive = running.all_alive();
        let wall = (t1 - t0).as_secs_f64();
        m.cpu_cores = (cpu1 - cpu0) / wall;
        m.cpu_per_copy = m.cpu_cores / copies as f64;
        m.cpu_per_unit = m.cpu_per_copy / m.units_per_copy as f64;
        m.rss_per_copy_mib = m.rss_mib / copies as f64;
        m.rss_added_per_copy_mib = (m.rss_mib - running.idle_rss_mib) / copies as f64;
        m.pss_added_per_copy_mib = (running.pss_mib() - running.idle_pss_mib) / copies as f64;
        let flows: Vec<FlowStats> = probes.iter().map(|p| p.stats(t0, t1)).collect();
        m.flow = FlowStats {
            fps: flows.iter().map(|f| f.fps).fold(f64::INFINITY, f64::min),
            worst_ts_gap_ms: flows.iter().map(|f| f.worst_ts_gap_ms).fold(0.0, f64::max),
            worst_arrival_gap_ms: flows
                .iter()
                .map(|f| f.worst_arrival_gap_ms)
                .fold(0.0, f64::max),
            audio_gaps: flows.iter().map(|f| f.audio_gaps).max().unwrap_or(0),
            silent_ms: flows.iter().map(|f| f.silent_ms).fold(0.0, f64::max),
        };
        m.latency = stamp_probe.as_ref().map(|p| p.stats(t0, t1));
        m.healthy = alive && m.flow.fps >= MIN_FPS && m.flow.worst_ts_gap_ms <= MAX_GAP_MS;
        if !alive {
            m.problem = Some(format!("a process exited:\n{}", running.log_tail()));
        } else if m.flow.fps == 0.0 {
            let pubs = self.publishers.errors();
            m.problem = Some(format!(
                "no output frames{}\n{}",
                if pubs.is_empty() {
                    String::new()
                } else {
                    format!(" (publishers: {})", pubs.join("; "))
                },
                running.log_tail()
            ));
        }
        drop(stamp_probe);
        drop(probes);
        drop(running);
        Ok(())
    }

    /// Starts `copies` copies of `scene` on `kind` once every input publishes, and waits (up to the warm-up,
    /// at least 30 s) until every output publishes. Returns when that wait began: starting up is not measured.
    pub(crate) fn launch(
        &self,
        scene: &Scene,
        kind: Kind,
        copies: usize,
        warmup: Duration,
    ) -> Result<(contender::Running, Vec<contender::Output>, Instant), String> {
        for k in 0..copies {
            self.publishers.ensure(scene, k, &self.base)?;
        }
        // Contenders that find no stream back off and retry; start them only once every input is live.
        let deadline = Instant::now() + Duration::from_secs(10);
        for k in 0..copies {
            for stream in scene.streams.keys() {
                let name = scene::stream_of(stream, k);
                while !self.nginx.is_publishing("live", &name) {
                    if Instant::now() > deadline {
                        return Err(format!("input {name} is not publishing"));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        let launch = Launch {
            root: &self.root,
            tessera_bin: &self.tessera_bin,
            tessera_set: &self.tessera_set,
            base: &self.base,
            scene,
            copies,
        };
        let (running, outputs) = contender::start(kind, &launch)?;
        // Probes start once their output is published: a play refused with "stream not found" now and then
        // leaves GStreamer 1.22's rtmp2src hanging on its way down, and such a probe would never see a frame.
        // Starting up is not measured: ffmpeg opens its inputs one after another (seconds each).
        let started = Instant::now();
        let startup_limit = warmup.max(Duration::from_secs(30));
        for o in &outputs {
            while !self.nginx.is_publishing("mix", &o.stream) && started.elapsed() < startup_limit {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok((running, outputs, started))
    }

    /// Where each input's stamp is in `output`, with its publisher (`None`: the output carries no stamps).
    pub(crate) fn watches(&self, output: &contender::Output) -> Option<Vec<Watch>> {
        output.stamps.as_ref().map(|stamps| {
            stamps
                .iter()
                .filter_map(|spot| {
                    Some(Watch {
                        input: spot.input.clone(),
                        points: spot.points.clone(),
                        publisher: self.publishers.get(&spot.stream)?,
                    })
                })
                .collect()
        })
    }

    /// The largest N ≤ `max_n` whose run is healthy: a first guess from one copy's CPU, then bisection.
    pub fn capacity(
        &self,
        scene: &Scene,
        kind: Kind,
        max_n: usize,
        warmup: Duration,
        secs: Duration,
        cpu_per_copy: Option<f64>,
    ) -> Capacity {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let guess = cpu_per_copy
            .filter(|c| c.is_finite() && *c > 0.0)
            .map_or(2, |c| (cores * 0.95 / c).floor() as usize)
            .clamp(1, max_n);
        // One copy passed already (the caller's run).
        let (mut lo, mut hi) = (1usize, max_n + 1);
        let mut steps = vec![(1, true)];
        let mut n = guess.max(2).min(max_n);
        while lo + 1 < hi && n > lo && n < hi {
            let m = self.measure(scene, kind, n, warmup, secs, false);
            // Each step's figures, so a failed step says why (frame rate or gaps).
            eprintln!("    step {}", crate::report::one_line(&m));
            let ok = m.healthy;
            steps.push((n, ok));
            if ok {
                lo = n;
            } else {
                hi = n;
            }
            n = (lo + hi) / 2;
            if n == lo && hi - lo > 1 {
                n = lo + 1;
            }
        }
        Capacity {
            scene: scene.name.clone(),
            contender: kind,
            capacity: lo,
            steps,
        }
    }
}
