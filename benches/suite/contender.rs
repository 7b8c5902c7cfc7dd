//! The contenders: Tessera (the real binary, one process for every mix of a run, driven through its native API),
//! and the plain references from `pipelines/` (one gst-launch-1.0 or ffmpeg process per mix or relay). Each is
//! measured from `/proc`: CPU time of its processes per wall second, and their resident memory.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::scene::{MixPlan, Scene, StampSpot};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Tessera,
    Gst,
    Ffmpeg,
    /// Not a mixer: the decodes and the one encode every mixer must do (`pipelines/floor-mix.sh`); what the
    /// others cost above it is what their mixing costs. Mix scenes only.
    Floor,
}

impl Kind {
    pub fn parse(s: &str) -> Result<Kind, String> {
        match s {
            "tessera" => Ok(Kind::Tessera),
            "gst" => Ok(Kind::Gst),
            "ffmpeg" => Ok(Kind::Ffmpeg),
            "floor" => Ok(Kind::Floor),
            _ => Err(format!("contender {s:?}: tessera, gst, ffmpeg or floor")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Tessera => "tessera",
            Kind::Gst => "gst",
            Kind::Ffmpeg => "ffmpeg",
            Kind::Floor => "floor",
        }
    }
}

extern "C" {
    // From the C library std already links.
    fn kill(pid: i32, sig: i32) -> i32;
    fn sysconf(name: i32) -> i64;
}
const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;
const SC_CLK_TCK: i32 = 2;

/// One output of a run and, for the first one, where the inputs' stamps are in it.
pub struct Output {
    pub stream: String,
    pub stamps: Option<Vec<StampSpot>>,
}

pub struct Running {
    children: Vec<Child>,
    /// Resident memory before any mix started (Tessera: the server alone, shared by all its mixes), MiB; 0 for
    /// the references, which start one process per mix.
    pub idle_rss_mib: f64,
    /// The same in PSS.
    pub idle_pss_mib: f64,
    /// Logs and configuration of this run.
    pub dir: tempfile::TempDir,
    /// Tessera's API (`http://127.0.0.1:PORT`); `None` for the references.
    pub api: Option<String>,
    /// Tessera's ids of the mixes started, in the order of the outputs.
    pub mix_ids: Vec<String>,
    /// Tessera: per mix, from its create request being sent to its first video frame at the RTMP server.
    pub first_frames: std::sync::Arc<std::sync::Mutex<Vec<Duration>>>,
}

impl Running {
    /// CPU seconds used so far by the contender's processes (all threads), their worker processes (Tessera's
    /// `tessera worker`s) included: those alive now, and those that ended and were waited for.
    pub fn cpu_seconds(&self) -> f64 {
        // SAFETY: sysconf has no preconditions.
        let tck = unsafe { sysconf(SC_CLK_TCK) }.max(1) as f64;
        let procs = descendants(self.children.iter().map(|c| c.id()).collect());
        self.children
            .iter()
            .map(|c| c.id())
            .chain(procs)
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
            .map(|stat| {
                // Fields after the command name (which may contain spaces): utime is the 14th field overall,
                // then stime, cutime and cstime (the children waited for).
                let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
                let f: Vec<&str> = rest.split_whitespace().collect();
                let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
                (num(11) + num(12) + num(13) + num(14)) / tck
            })
            .sum()
    }

    /// Resident memory of the contender's processes and their worker processes, MiB.
    pub fn rss_mib(&self) -> f64 {
        let roots: Vec<u32> = self.children.iter().map(|c| c.id()).collect();
        roots
            .iter()
            .copied()
            .chain(descendants(roots.clone()))
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .filter_map(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .sum::<f64>()
            / 1024.0
    }

    /// Proportional memory (PSS) of the same processes, MiB: shared pages (libraries, mapped alike in every
    /// worker) are split between the processes that map them instead of counted in each, so a tree of
    /// processes is not charged the same library twice.
    pub fn pss_mib(&self) -> f64 {
        let roots: Vec<u32> = self.children.iter().map(|c| c.id()).collect();
        roots
            .iter()
            .copied()
            .chain(descendants(roots.clone()))
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
            .filter_map(|s| {
                s.lines()
                    .find(|l| l.starts_with("Pss:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .sum::<f64>()
            / 1024.0
    }

    /// Processes the contender runs besides the ones it started itself (Tessera's workers).
    pub fn workers(&self) -> usize {
        descendants(self.children.iter().map(|c| c.id()).collect()).len()
    }

    /// Whether every process is still running (a reference that exits has failed).
    pub fn all_alive(&mut self) -> bool {
        self.children
            .iter_mut()
            .all(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The tail of the first log that mentions something, for failure reports.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for e in entries.flatten() {
                if e.path().extension().is_some_and(|x| x == "log") {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(5).collect();
                    if !tail.is_empty() {
                        out += &format!(
                            "{}: {}\n",
                            e.file_name().to_string_lossy(),
                            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                        );
                    }
                }
            }
        }
        out
    }
}

/// Every process below `roots` (not `roots` themselves), from `/proc`.
fn descendants(roots: Vec<u32>) -> Vec<u32> {
    let mut parent: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                parent.push((pid, ppid));
            }
        }
    }
    let mut found = Vec::new();
    let mut frontier = roots;
    while let Some(p) = frontier.pop() {
        for &(pid, ppid) in &parent {
            if ppid == p && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

impl Drop for Running {
    fn drop(&mut self) {
        for c in &self.children {
            // SAFETY: plain syscall on a pid we spawned and have not reaped yet.
            unsafe { kill(c.id() as i32, SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for c in &mut self.children {
            while Instant::now() < deadline && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            if matches!(c.try_wait(), Ok(None)) {
                // SAFETY: as above.
                unsafe { kill(c.id() as i32, SIGKILL) };
            }
            let _ = c.wait();
        }
    }
}

pub struct Launch<'a> {
    pub root: &'a Path,
    pub tessera_bin: &'a Path,
    pub tessera_set: &'a [String],
    pub base: &'a str,
    pub scene: &'a Scene,
    pub copies: usize,
}

fn spawn(cmd: &mut Command, log: PathBuf) -> Result<Child, String> {
    let file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))
}

/// Starts `kind` running `copies` copies of the scene; returns it with the outputs to watch.
pub fn start(kind: Kind, l: &Launch) -> Result<(Running, Vec<Output>), String> {
    let dir = tempfile::Builder::new()
        .prefix("tessera-bench-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let mut running = Running {
        children: Vec::new(),
        idle_rss_mib: 0.0,
        idle_pss_mib: 0.0,
        first_frames: Default::default(),
        dir,
        api: None,
        mix_ids: Vec::new(),
    };
    let mut outputs = Vec::new();
    let tag = kind.name();
    if kind == Kind::Tessera {
        let api = start_tessera(&mut running, l)?;
        running.api = Some(api.clone());
        running.idle_rss_mib = running.rss_mib();
        running.idle_pss_mib = running.pss_mib();
        let client = reqwest::blocking::Client::new();
        for k in 0..l.copies {
            if l.scene.is_relay() {
                let (json, _, outs) = l.scene.relay_plan(k, tag, l.base);
                let id = format!("{}-{k}", l.scene.name);
                put(&client, &format!("{api}/v1/relays/{id}"), &json)?;
                post(&client, &format!("{api}/v1/relays/{id}/start"))?;
                outputs.extend(outs.into_iter().map(|stream| Output {
                    stream,
                    stamps: None,
                }));
            } else {
                for (m, plan) in l.scene.mix_plans(k, tag).into_iter().enumerate() {
                    let id = format!("{}-{m}-{k}", l.scene.name);
                    let sent = first_frame(
                        format!("{}/mix/{}", l.base, plan.output_stream),
                        running.first_frames.clone(),
                    );
                    // Its player starts trying (a few ms on loopback).
                    std::thread::sleep(Duration::from_millis(100));
                    let _ = sent.set(Instant::now());
                    put(&client, &format!("{api}/v1/mixes/{id}"), &plan.tessera)?;
                    running.mix_ids.push(id);
                    outputs.push(mix_output(plan));
                }
            }
        }
    } else {
        let ffmpeg = if kind == Kind::Ffmpeg { "-ffmpeg" } else { "" };
        for k in 0..l.copies {
            if l.scene.is_relay() && kind == Kind::Floor {
                return Err("the floor is a mix scene's; a relay has no decode or encode".into());
            } else if l.scene.is_relay() {
                let (_, input, outs) = l.scene.relay_plan(k, tag, l.base);
                let script = l.root.join(format!("pipelines/reference-relay{ffmpeg}.sh"));
                let mut cmd = Command::new("bash");
                cmd.arg(script).arg(format!("{}/live/{input}", l.base));
                for o in &outs {
                    cmd.arg(format!("{}/mix/{o}", l.base));
                }
                let log = running.dir.path().join(format!("relay-{k}.log"));
                running.children.push(spawn(&mut cmd, log)?);
                outputs.extend(outs.into_iter().map(|stream| Output {
                    stream,
                    stamps: None,
                }));
            } else {
                for (m, plan) in l.scene.mix_plans(k, tag).into_iter().enumerate() {
                    let script = match kind {
                        Kind::Floor => l.root.join("pipelines/floor-mix.sh"),
                        _ => l.root.join(format!("pipelines/reference-mix{ffmpeg}.sh")),
                    };
                    let mut cmd = Command::new("bash");
                    cmd.arg(script)
                        .arg(l.base)
                        .arg(format!("{}/mix/{}", l.base, plan.output_stream))
                        .args(&plan.reference_args)
                        .env("REF_VIDEO_KBPS", plan.video_kbps.to_string());
                    let log = running.dir.path().join(format!("mix-{m}-{k}.log"));
                    running.children.push(spawn(&mut cmd, log)?);
                    let mut output = mix_output(plan);
                    if kind == Kind::Floor {
                        // Only the host is in its picture: no stamps of the others to read.
                        output.stamps = None;
                    }
                    outputs.push(output);
                }
            }
        }
    }
    // Stamps are read from the first output only.
    for o in outputs.iter_mut().skip(1) {
        o.stamps = None;
    }
    if let (Some(first), true) = (outputs.first_mut(), l.scene.is_relay()) {
        let (_, input, _) = l.scene.relay_plan(0, tag, l.base);
        let size = l
            .scene
            .streams
            .values()
            .next()
            .copied()
            .expect("a relay input");
        let points = crate::media::stamp_points(size)
            .into_iter()
            .map(|(x, y)| (x as u32, y as u32))
            .collect();
        first.stamps = Some(vec![StampSpot {
            input: "main".to_string(),
            stream: input,
            points,
        }]);
    }
    Ok((running, outputs))
}

/// Plays `url` (again and again until the stream is published) and records, in `into`, the time from
/// the moment the caller puts in the returned cell (just before it creates the mix) to the first video frame that
/// is not a sequence header. Gives up after 60 s.
fn first_frame(
    url: String,
    into: std::sync::Arc<std::sync::Mutex<Vec<Duration>>>,
) -> std::sync::Arc<std::sync::OnceLock<Instant>> {
    let sent = std::sync::Arc::new(std::sync::OnceLock::<Instant>::new());
    let asked = sent.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            let opts = tessera::rtmp::Options {
                connect_timeout: Duration::from_secs(60),
                io_timeout: Duration::from_secs(60),
                ..Default::default()
            };
            // nginx answers "not found" (idle_streams off) until the mix publishes: asked again every 5 ms.
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut player = loop {
                match tessera::rtmp::play(&url, &opts).await {
                    Ok(p) => break p,
                    Err(_) if Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(5)).await
                    }
                    Err(_) => return,
                }
            };
            while let Ok(tag) = player.next_tag().await {
                if tag.kind == tessera::flv::TagKind::Video && tag.data.get(1) == Some(&1) {
                    if let Some(at) = asked.get() {
                        into.lock().unwrap().push(at.elapsed());
                    }
                    return;
                }
            }
        });
    });
    sent
}

fn mix_output(plan: MixPlan) -> Output {
    Output {
        stream: plan.output_stream,
        stamps: Some(plan.stamps),
    }
}

fn start_tessera(running: &mut Running, l: &Launch) -> Result<String, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let conf = running.dir.path().join("tessera.toml");
    let mut sections: Vec<(String, Vec<String>)> = vec![
        (
            "server".into(),
            vec![format!("listen = \"127.0.0.1:{port}\"")],
        ),
        (
            "ingest".into(),
            vec![format!("pull_url = \"{}/live/{{stream_id}}\"", l.base)],
        ),
        (
            "egress".into(),
            vec![format!("push_url = \"{}/mix/{{stream_id}}\"", l.base)],
        ),
        ("engine".into(), vec!["max_mixes = 256".into()]),
        ("store".into(), vec!["path = \"\"".into()]),
    ];
    for set in l.tessera_set {
        let (key, value) = set
            .split_once('=')
            .ok_or_else(|| format!("--tessera-set {set:?}: want section.key=value"))?;
        let (section, key) = key
            .split_once('.')
            .ok_or_else(|| format!("--tessera-set {set:?}: want section.key=value"))?;
        let line = format!("{} = {}", key.trim(), value.trim());
        match sections.iter_mut().find(|(s, _)| s == section.trim()) {
            Some((_, lines)) => lines.push(line),
            None => sections.push((section.trim().into(), vec![line])),
        }
    }
    let toml: String = sections
        .iter()
        .map(|(s, lines)| format!("[{s}]\n{}\n", lines.join("\n")))
        .collect();
    std::fs::write(&conf, toml).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(l.tessera_bin);
    cmd.arg("serve")
        .arg("--config")
        .arg(&conf)
        .env("RUST_LOG", "warn");
    let log = running.dir.path().join("tessera.log");
    running.children.push(spawn(&mut cmd, log)?);
    let api = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if client
            .get(format!("{api}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(api);
        }
        if !running.all_alive() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("tessera did not start:\n{}", running.log_tail()))
}

fn put(
    client: &reqwest::blocking::Client,
    url: &str,
    body: &serde_json::Value,
) -> Result<(), String> {
    let r = client
        .put(url)
        .json(body)
        .send()
        .map_err(|e| format!("PUT {url}: {e}"))?;
    if !r.status().is_success() {
        let status = r.status();
        return Err(format!(
            "PUT {url}: {status} {}",
            r.text().unwrap_or_default()
        ));
    }
    Ok(())
}

fn post(client: &reqwest::blocking::Client, url: &str) -> Result<(), String> {
    let r = client
        .post(url)
        .send()
        .map_err(|e| format!("POST {url}: {e}"))?;
    if !r.status().is_success() {
        let status = r.status();
        return Err(format!(
            "POST {url}: {status} {}",
            r.text().unwrap_or_default()
        ));
    }
    Ok(())
}
