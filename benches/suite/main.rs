//! Tessera's benchmark suite: cost, capacity and latency of each scene, side by side with plain gst-launch-1.0
//! and ffmpeg pipelines doing the same job on the same inputs, in the same run.
//!
//! ```sh
//! cargo bench --bench suite                      # every scene, every contender (about 25 minutes)
//! cargo bench --bench suite -- --scenes s4 --contenders tessera,gst --secs 30 --capacity s4
//! cargo bench --bench suite -- --preview --scenes s4 # what snapshots cost, how far the live preview lags
//! ```
//!
//! Without `--bench` on its command line (as `cargo test --all-targets` runs it) it is a smoke run of a few
//! seconds: S4 and R5 once for each contender, every figure computed and the report written to a temp dir, so
//! the suite cannot rot. Figures from a smoke run mean nothing.
//!
//! # Layout
//! - `scene`: the scenes of `benches/scenes/index.toml` and what each contender is given for them.
//! - `media`: the input files (generated once, cached in `target/bench-media/`) and the frame stamp.
//! - `publish`: the cheap publisher that loops an input file to nginx-rtmp at real speed.
//! - `contender`: Tessera and the references as processes, and their CPU and memory from `/proc`.
//! - `probe`: watching outputs: frame rate and gaps from FLV tags; latency and skew from decoded stamps.
//! - `run`: one measured run of a scene, and the capacity search.
//! - `report`: the Markdown table, the JSON file and the PNG chart.
//! - `preview`: the operator's view (`--preview`): snapshot cost and live-preview latency of one Tessera mix.

mod contender;
mod media;
mod preview;
mod probe;
mod publish;
mod report;
mod run;
mod scene;

#[path = "../../tests/common/nginx.rs"]
#[allow(dead_code)]
mod nginx;

use std::{path::PathBuf, time::Duration};

use clap::Parser;

use contender::Kind;

#[derive(Parser, Debug)]
#[command(about = "Tessera's benchmark suite (see benches/README.md)")]
struct Args {
    /// Scenes to run, from benches/scenes/index.toml.
    #[arg(long, value_delimiter = ',', default_value = "s4,s9,s16,pk1,pk2,r5")]
    scenes: Vec<String>,
    /// Contenders: tessera, gst (pipelines/reference-*.sh), ffmpeg (pipelines/reference-*-ffmpeg.sh), floor
    /// (pipelines/floor-mix.sh: the decodes and the one encode, nothing mixed; mix scenes only).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "tessera,gst,ffmpeg,floor"
    )]
    contenders: Vec<String>,
    /// Seconds between starting a contender and measuring it.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 30)]
    secs: u64,
    /// Scenes whose capacity is searched (the largest N copies that all keep ≥ 29.5 fps, no gap > 100 ms).
    #[arg(long, value_delimiter = ',', default_value = "s4,pk2")]
    capacity: Vec<String>,
    /// Seconds warmed up and measured per capacity step.
    #[arg(long, default_value_t = 8)]
    capacity_warmup: u64,
    #[arg(long, default_value_t = 20)]
    capacity_secs: u64,
    /// Largest N tried.
    #[arg(long, default_value_t = 10)]
    max_n: usize,
    /// What the inputs show: `motion` (a scrolling pattern: every pixel changes every frame), `still` (flat
    /// colours, nearly free to decode and encode) or `camera` (colour under a fine moving texture and per-frame
    /// sensor noise, 1.5 Mbps: what webcams in rooms send).
    #[arg(long, value_enum, default_value = "motion")]
    content: media::Content,
    /// Tessera binary to run (default: the one this bench was built with), e.g. an older build to compare.
    #[arg(long)]
    tessera_bin: Option<PathBuf>,
    /// Extra Tessera configuration, `section.key=value` (TOML value), e.g. `engine.encoder_threads=0`;
    /// repeatable.
    #[arg(long = "tessera-set")]
    tessera_set: Vec<String>,
    /// Measure only the operator's view of the scenes: snapshot cost (nobody asking, then one a second) and the
    /// live preview's latency beside the RTMP output's, Tessera alone (`preview.json` in `--out`).
    #[arg(long)]
    preview: bool,
    /// Other work on the machine while every run is measured, in cores (e.g. 0.5): busy threads, each working
    /// in 5 ms slices and resting in between, so sound and pictures are measured under contention.
    #[arg(long, default_value_t = 0.0)]
    background_load: f64,
    /// Where the report goes (report.md, report.json, chart.png).
    #[arg(long, default_value = "target/bench-report")]
    out: PathBuf,
    /// cargo bench passes this; its presence is what tells a real run from the smoke run.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let args = if full {
        Args::parse()
    } else {
        // The smoke: cargo test passes libtest's flags (--test-threads=1, filters), which mean nothing here.
        Args {
            scenes: vec!["s4".into(), "r5".into()],
            contenders: vec![
                "tessera".into(),
                "gst".into(),
                "ffmpeg".into(),
                "floor".into(),
            ],
            warmup: 4,
            secs: 5,
            capacity: vec![],
            capacity_warmup: 0,
            capacity_secs: 0,
            max_n: 1,
            content: media::Content::Motion,
            tessera_bin: None,
            tessera_set: vec![],
            background_load: 0.0,
            out: std::env::temp_dir().join(format!("tessera-bench-smoke-{}", std::process::id())),
            preview: false,
            bench: false,
        }
    };
    gst::init().expect("GStreamer initialises");
    if let Err(e) = run_suite(&args, full) {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

/// Keeps `cores` of CPU busy until dropped: ⌈cores⌉ threads, each busy for its share of every 10 ms.
struct BackgroundLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl BackgroundLoad {
    fn start(cores: f64) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let n = cores.ceil().max(0.0) as usize;
        let duty = if n > 0 { cores / n as f64 } else { 0.0 };
        let slice = Duration::from_millis(10);
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let began = std::time::Instant::now();
                        let busy = slice.mul_f64(duty);
                        while began.elapsed() < busy {
                            std::hint::spin_loop();
                        }
                        std::thread::sleep(slice.saturating_sub(began.elapsed()));
                    }
                })
            })
            .collect();
        Self { stop, threads }
    }
}

impl Drop for BackgroundLoad {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn run_suite(args: &Args, full: bool) -> Result<(), String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let scenes = scene::load_all(&root.join("benches/scenes"))?;
    let contenders = args
        .contenders
        .iter()
        .map(|c| Kind::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    let selected = args
        .scenes
        .iter()
        .map(|name| {
            scenes
                .iter()
                .find(|s| &s.name == name)
                .ok_or_else(|| format!("no scene {name:?} in benches/scenes/index.toml"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !full {
        media::self_check();
    }
    let nginx = nginx::Nginx::start();
    let base = format!("rtmp://127.0.0.1:{}", nginx.rtmp_port);
    let bench = run::Bench {
        nginx,
        root: root.clone(),
        tessera_bin: args
            .tessera_bin
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tessera"))),
        tessera_set: args.tessera_set.clone(),
        base,
        publishers: run::Publishers::new(root.join("target/bench-media"), args.content),
    };
    eprintln!(
        "bench: {} run on {}; scenes {:?}, contenders {:?}, {} s warm-up + {} s measured each",
        if full { "full" } else { "smoke" },
        bench.base,
        args.scenes,
        args.contenders,
        args.warmup,
        args.secs
    );
    if args.preview || !full {
        let (warmup, secs) = if full {
            (args.warmup, args.secs)
        } else {
            (3, 3)
        };
        let mut found = Vec::new();
        for scene in selected.iter().filter(|s| !s.is_relay()) {
            let p = bench.measure_preview(
                scene,
                Duration::from_secs(warmup),
                Duration::from_secs(secs),
            )?;
            eprintln!("  {}", p.line());
            if !full && (p.snapshots == 0 || p.preview.frames == 0) {
                return Err(format!(
                    "preview smoke: no snapshot or no preview frame: {p:?}"
                ));
            }
            found.push(p);
        }
        if args.preview {
            std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
            let path = args.out.join("preview.json");
            let json = serde_json::to_string_pretty(&found).map_err(|e| e.to_string())?;
            std::fs::write(&path, json).map_err(|e| e.to_string())?;
            eprintln!("bench: preview figures in {}", path.display());
            return Ok(());
        }
    }
    let mut report = report::Report::new(full, args.content);
    report.background_load = args.background_load;
    let _load = (args.background_load > 0.0).then(|| BackgroundLoad::start(args.background_load));
    for scene in &selected {
        report
            .scenes
            .push((scene.name.clone(), scene.about.clone()));
        for &kind in &contenders {
            if kind == Kind::Floor && scene.is_relay() {
                continue;
            }
            let m = bench.measure(
                scene,
                kind,
                1,
                Duration::from_secs(args.warmup),
                Duration::from_secs(args.secs),
                true,
            );
            eprintln!("  {}", report::one_line(&m));
            let passed = m.healthy;
            report.runs.push(m);
            if passed && args.capacity.contains(&scene.name) && !scene.is_relay() {
                let cap = bench.capacity(
                    scene,
                    kind,
                    args.max_n,
                    Duration::from_secs(args.capacity_warmup),
                    Duration::from_secs(args.capacity_secs),
                    report.runs.last().map(|m| m.cpu_per_copy),
                );
                eprintln!(
                    "  capacity {} {}: {} (steps {:?})",
                    scene.name,
                    kind.name(),
                    cap.capacity,
                    cap.steps
                );
                report.capacity.push(cap);
            }
        }
    }
    report.check_targets();
    let files = report.write(&args.out)?;
    eprintln!("bench: report in {}", files.join(", "));
    if !full {
        report.check_smoke()?;
        let _ = std::fs::remove_dir_all(&args.out);
    }
    drop(bench);
    Ok(())
}
