//! The report: a Markdown table per scene with ratios to the references, the targets checked, the same
//! as JSON, and a PNG chart (SVG drawn here, rasterised by GStreamer's rsvgdec + pngenc).

use std::{fmt::Write as _, path::Path};

use crate::{
    contender::Kind,
    run::{Capacity, Measurement},
};

/// One figure of a run, for a chart panel.
type Metric = fn(&Measurement) -> f64;

#[derive(Debug, Clone, serde::Serialize)]
pub struct TargetCheck {
    pub target: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub full_run: bool,
    pub machine: String,
    /// What the inputs showed.
    pub content: crate::media::Content,
    /// Cores of other work kept busy during the runs (`--background-load`).
    pub background_load: f64,
    /// (scene, what it is) of the scenes run.
    pub scenes: Vec<(String, String)>,
    pub runs: Vec<Measurement>,
    pub capacity: Vec<Capacity>,
    pub targets: Vec<TargetCheck>,
}

/// Input frames repeated / skipped in the output, as percentages of output frames (worst input).
fn continuity(l: &crate::probe::LatencyStats) -> String {
    format!("{:.1} % / {:.1} %", l.repeated * 100.0, l.skipped * 100.0)
}

pub fn one_line(m: &Measurement) -> String {
    let lat = m
        .latency
        .as_ref()
        .and_then(|l| l.worst())
        .map_or("-".into(), |(p50, p95)| {
            format!("{:.0}/{:.0} ms", p50 * 1e3, p95 * 1e3)
        });
    let cont = m.latency.as_ref().map_or("-".into(), continuity);
    format!(
        "{:<5} {:<8} x{}: {:.3} cores/{} ({:.3} total), {:.1} fps, gaps ts {:.0} / arrival {:.0} ms, audio gaps {} ({:.0} ms silent), latency p50/p95 {lat}, input frames repeated/skipped {cont}, RSS {:.0} MiB (+{:.0} per copy, PSS +{:.0}){}{}{}",
        m.scene,
        m.contender.name(),
        m.copies,
        m.cpu_per_unit,
        if m.units_per_copy > 1 && m.scene == "r5" { "output" } else { "mix" },
        m.cpu_cores,
        m.flow.fps,
        m.flow.worst_ts_gap_ms,
        m.flow.worst_arrival_gap_ms,
        m.flow.audio_gaps,
        m.flow.silent_ms,
        m.rss_mib,
        m.rss_added_per_copy_mib,
        m.pss_added_per_copy_mib,
        match (m.first_frame_ms, m.workers) {
            (Some(ms), w) => format!(", first frame {ms:.0} ms after create, {w} workers"),
            (None, _) => String::new(),
        },
        if m.healthy { "" } else { "  UNHEALTHY" },
        m.problem.as_ref().map_or(String::new(), |p| format!("\n    {p}")),
    )
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':').map(|(_, v)| v.trim().to_string()))
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cores} cores, {cpu}")
}

fn ms(v: f64) -> String {
    if v.is_finite() {
        format!("{:.0}", v * 1e3)
    } else {
        "-".into()
    }
}

/// `a` above the floor `b`, in cores and as a share of the floor.
fn above(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:+.3} ({:+.0} %)", a - b, (a - b) / b * 100.0)
    } else {
        "-".into()
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

impl Report {
    pub fn new(full_run: bool, content: crate::media::Content) -> Self {
        Self {
            full_run,
            content,
            background_load: 0.0,
            machine: machine(),
            scenes: Vec::new(),
            runs: Vec::new(),
            capacity: Vec::new(),
            targets: Vec::new(),
        }
    }

    fn single(&self, scene: &str, kind: Kind) -> Option<&Measurement> {
        self.runs
            .iter()
            .find(|m| m.scene == scene && m.contender == kind && m.copies == 1)
    }

    fn cap(&self, scene: &str, kind: Kind) -> Option<usize> {
        self.capacity
            .iter()
            .find(|c| c.scene == scene && c.contender == kind)
            .map(|c| c.capacity)
    }

    /// The targets, for those whose figures this run has.
    pub fn check_targets(&mut self) {
        let mut t = Vec::new();
        let tess = |s| {
            self.single(s, Kind::Tessera)
                .filter(|m| m.problem.is_none())
        };
        let refs = |s, k| self.single(s, k).filter(|m| m.problem.is_none());
        if let Some(s4) = tess("s4") {
            for (kind, limit) in [(Kind::Ffmpeg, 0.9), (Kind::Gst, 0.7)] {
                if let Some(r) = refs("s4", kind) {
                    let q = s4.cpu_per_unit / r.cpu_per_unit;
                    t.push(TargetCheck {
                        target: format!("S4 CPU per mix ≤ {limit} × {}", kind.name()),
                        measured: format!(
                            "{:.3} / {:.3} = {q:.2}",
                            s4.cpu_per_unit, r.cpu_per_unit
                        ),
                        met: q <= limit,
                    });
                }
            }
            if let Some(l) = &s4.latency {
                let relay = tess("r5")
                    .and_then(|r| r.latency.as_ref())
                    .and_then(|l| l.worst());
                if let (Some((_, p95)), Some((_, r95))) = (l.worst(), relay) {
                    t.push(TargetCheck {
                        target: "S4 latency p95 ≤ 1.5 × the relay-only path (R5's)".into(),
                        measured: format!("{} ms / {} ms = {:.2}", ms(p95), ms(r95), p95 / r95),
                        met: p95 <= 1.5 * r95,
                    });
                }
                if l.skew_p95.is_finite() {
                    t.push(TargetCheck {
                        target: "S4 skew between inputs ≤ 50 ms (p95)".into(),
                        measured: format!("{} ms", ms(l.skew_p95)),
                        met: l.skew_p95 <= 0.050,
                    });
                }
            }
            let mb = s4.rss_per_copy_mib * 1.048_576;
            let added = s4.rss_added_per_copy_mib * 1.048_576;
            t.push(TargetCheck {
                target: "RSS ≤ 120 MB per S4 mix (what a mix adds to the server; whole process in brackets; PSS added after the semicolon)"
                    .into(),
                measured: format!(
                    "{added:.0} MB ({mb:.0} MB); PSS {:.0} MB",
                    s4.pss_added_per_copy_mib * 1.048_576
                ),
                met: added <= 120.0,
            });
        }
        if let Some(c) = self.cap("s4", Kind::Tessera) {
            t.push(TargetCheck {
                target: "capacity ≥ 5 concurrent S4 mixes".into(),
                measured: c.to_string(),
                met: c >= 5,
            });
        }
        if let (Some(pk2), Some(pk1)) = (tess("pk2"), tess("pk1")) {
            let q = pk2.cpu_per_copy / pk1.cpu_per_copy;
            t.push(TargetCheck {
                target: "PK2 (two mixes) ≤ 1.6 × one mix".into(),
                measured: format!("{:.3} / {:.3} = {q:.2}", pk2.cpu_per_copy, pk1.cpu_per_copy),
                met: q <= 1.6,
            });
        }
        if let Some(r5) = tess("r5") {
            t.push(TargetCheck {
                target: "R5 ≤ 0.02 cores per relayed output".into(),
                measured: format!("{:.4}", r5.cpu_per_unit),
                met: r5.cpu_per_unit <= 0.02,
            });
        }
        self.targets = t;
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# Tessera benchmark{}\n\nMachine: {}. Inputs: {:?} pictures. Background load: {} cores. CPU is cores used by the contender's processes (CPU time ÷ wall \
             time); per mix (per relayed output for R5). Latency is publisher → RTMP server → contender → RTMP \
             server → decoded by a viewer, worst input, p50/p95. Gaps are the worst step between video timestamps \
             and between arrivals. Capacity: the largest N copies that all keep ≥ 29.5 fps with no timestamp gap \
             over 100 ms.\n",
            if self.full_run { "" } else { " (smoke run: figures mean nothing)" },
            self.machine,
            self.content,
            self.background_load
        );
        let mut scenes: Vec<&str> = Vec::new();
        for m in &self.runs {
            if !scenes.contains(&m.scene.as_str()) {
                scenes.push(&m.scene);
            }
        }
        for scene in scenes {
            let about = self
                .scenes
                .iter()
                .find(|(s, _)| s == scene)
                .map_or("", |(_, a)| a.as_str());
            let _ = writeln!(
                md,
                "## {scene}\n\n{about}\n\n| contender | CPU/mix | above the floor | ÷ gst | ÷ ffmpeg | fps | gap ts/arrival ms | audio gaps (silent ms) | latency p50/p95 ms | skew p95 ms | input frames repeated / skipped | RSS MiB/copy | capacity |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
            );
            let floor = self
                .single(scene, Kind::Floor)
                .map_or(f64::NAN, |m| m.cpu_per_unit);
            let gst = self
                .single(scene, Kind::Gst)
                .map_or(f64::NAN, |m| m.cpu_per_unit);
            let ff = self
                .single(scene, Kind::Ffmpeg)
                .map_or(f64::NAN, |m| m.cpu_per_unit);
            for m in self
                .runs
                .iter()
                .filter(|m| m.scene == scene && m.copies == 1)
            {
                let (lat, skew, cont) =
                    m.latency
                        .as_ref()
                        .map_or(("-".into(), "-".into(), "-".into()), |l| {
                            (
                                l.worst()
                                    .map_or("-".into(), |(a, b)| format!("{} / {}", ms(a), ms(b))),
                                ms(l.skew_p95),
                                continuity(l),
                            )
                        });
                let _ = writeln!(
                    md,
                    "| {}{} | {:.3} | {} | {} | {} | {:.1} | {:.0} / {:.0} | {} ({:.0}) | {lat} | {skew} | {cont} | {:.0} | {} |",
                    m.contender.name(),
                    if m.problem.is_some() { " (failed)" } else { "" },
                    m.cpu_per_unit,
                    above(m.cpu_per_unit, floor),
                    ratio(m.cpu_per_unit, gst),
                    ratio(m.cpu_per_unit, ff),
                    m.flow.fps,
                    m.flow.worst_ts_gap_ms,
                    m.flow.worst_arrival_gap_ms,
                    m.flow.audio_gaps,
                    m.flow.silent_ms,
                    m.rss_per_copy_mib,
                    self.cap(scene, m.contender)
                        .map_or("-".into(), |c| c.to_string()),
                );
            }
            md.push('\n');
        }
        if !self.targets.is_empty() {
            let _ = writeln!(
                md,
                "## Targets\n\n| target | measured | met |\n|---|---|---|"
            );
            for t in &self.targets {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} |",
                    t.target,
                    t.measured,
                    if t.met { "yes" } else { "**no**" }
                );
            }
            md.push('\n');
        }
        let problems: Vec<_> = self
            .runs
            .iter()
            .filter_map(|m| m.problem.as_ref().map(|p| (m, p)))
            .collect();
        if !problems.is_empty() {
            let _ = writeln!(md, "## Problems\n");
            for (m, p) in problems {
                let _ = writeln!(
                    md,
                    "- {} {} x{}: {}",
                    m.scene,
                    m.contender.name(),
                    m.copies,
                    p.replace('\n', " ")
                );
            }
        }
        md
    }

    /// Grouped bars: CPU per mix and latency p95 per scene, one colour per contender.
    pub fn svg(&self) -> String {
        let mut scenes: Vec<&str> = Vec::new();
        for m in &self.runs {
            if !scenes.contains(&m.scene.as_str()) {
                scenes.push(&m.scene);
            }
        }
        let kinds = [
            (Kind::Tessera, "#d9480f"),
            (Kind::Gst, "#1c7ed6"),
            (Kind::Ffmpeg, "#5c940d"),
            (Kind::Floor, "#868e96"),
        ];
        let (w, h) = (1000.0, 440.0);
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"13\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n"
        );
        let panels: [(&str, Metric); 2] = [
            ("CPU cores per mix (per output for r5)", |m| m.cpu_per_unit),
            ("latency p95, s (worst input)", |m| {
                m.latency
                    .as_ref()
                    .and_then(|l| l.worst())
                    .map_or(f64::NAN, |(_, p95)| p95)
            }),
        ];
        for (p, (title, value)) in panels.iter().enumerate() {
            let (x0, y0, pw, ph) = (60.0 + p as f64 * 480.0, 50.0, 400.0, 320.0);
            let max = self
                .runs
                .iter()
                .filter(|m| m.copies == 1)
                .map(value)
                .filter(|v| v.is_finite())
                .fold(0.0, f64::max)
                .max(1e-3)
                * 1.15;
            let _ = writeln!(
                svg,
                "<text x=\"{x0}\" y=\"30\" font-size=\"15\" font-weight=\"bold\">{title}</text>\n<line x1=\"{x0}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
                y0 + ph,
                x0 + pw,
                y0 + ph
            );
            for tick in 0..=4 {
                let v = max * f64::from(tick) / 4.0;
                let y = y0 + ph - ph * f64::from(tick) / 4.0;
                let _ = writeln!(
                    svg,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"11\">{v:.3}</text><line x1=\"{x0}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/>",
                    x0 - 4.0,
                    y + 4.0,
                    x0 + pw
                );
            }
            let group = pw / scenes.len().max(1) as f64;
            let bar = group * 0.8 / kinds.len() as f64;
            for (s, scene) in scenes.iter().enumerate() {
                let gx = x0 + s as f64 * group + group * 0.1;
                let _ = writeln!(
                    svg,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{scene}</text>",
                    gx + group * 0.4,
                    y0 + ph + 18.0
                );
                for (k, (kind, colour)) in kinds.iter().enumerate() {
                    let v = self.single(scene, *kind).map_or(f64::NAN, value);
                    if !v.is_finite() {
                        continue;
                    }
                    let bh = ph * v / max;
                    let bx = gx + k as f64 * bar;
                    let _ = writeln!(
                        svg,
                        "<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{v:.3}</text>",
                        y0 + ph - bh,
                        bar - 2.0,
                        bx + bar / 2.0 - 1.0,
                        y0 + ph - bh - 3.0
                    );
                }
            }
        }
        for (k, (kind, colour)) in kinds.iter().enumerate() {
            let x = 60.0 + k as f64 * 160.0;
            let _ = writeln!(
                svg,
                "<rect x=\"{x}\" y=\"{}\" width=\"14\" height=\"14\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\">{}</text>",
                h - 36.0,
                x + 20.0,
                h - 24.0,
                kind.name()
            );
        }
        svg.push_str("</svg>\n");
        svg
    }

    /// Writes report.md, report.json, chart.svg and chart.png into `dir`; returns their paths.
    pub fn write(&self, dir: &Path) -> Result<Vec<String>, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let md = dir.join("report.md");
        let json = dir.join("report.json");
        let svg = dir.join("chart.svg");
        let png = dir.join("chart.png");
        let write =
            |p: &Path, s: &str| std::fs::write(p, s).map_err(|e| format!("{}: {e}", p.display()));
        write(&md, &self.markdown())?;
        write(
            &json,
            &serde_json::to_string_pretty(self).map_err(|e| e.to_string())?,
        )?;
        write(&svg, &self.svg())?;
        rasterise(&svg, &png)?;
        Ok([md, json, png]
            .iter()
            .map(|p| p.display().to_string())
            .collect())
    }

    /// What the smoke run insists on: every contender of every scene produced output; Tessera's stamps were
    /// read back.
    pub fn check_smoke(&self) -> Result<(), String> {
        for m in &self.runs {
            if let Some(p) = &m.problem {
                return Err(format!("{} {}: {p}", m.scene, m.contender.name()));
            }
            if !(m.flow.fps > 0.0 && m.cpu_cores > 0.0) {
                return Err(format!(
                    "{} {}: no output or no CPU figure",
                    m.scene,
                    m.contender.name()
                ));
            }
            if m.contender == Kind::Tessera && m.latency.as_ref().and_then(|l| l.worst()).is_none()
            {
                return Err(format!("{} tessera: no stamp read back", m.scene));
            }
        }
        Ok(())
    }
}

fn rasterise(svg: &Path, png: &Path) -> Result<(), String> {
    let desc = format!(
        "filesrc location={} ! rsvgdec ! videoconvert ! pngenc snapshot=true ! filesink location={}",
        svg.display(),
        png.display()
    );
    let pipeline = gst::parse::launch(&desc).map_err(|e| format!("chart: {e}"))?;
    crate::media::run_to_eos(&pipeline, 30, "chart")
}
