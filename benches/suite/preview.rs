//! The operator's view (`--preview`): what snapshots cost a mix, and how far the live preview runs behind.
//!
//! One Tessera mix of a scene, its RTMP output and its live preview (`/v1/mixes/{id}/live.flv`) both decoded by
//! stamp probes for the whole run. CPU is measured over four windows of equal length: nobody asking for
//! snapshots, one `snapshot.jpg` a second, nobody again, ten a second. The difference between one a second and
//! the idle windows is what snapshots at 1/s cost; the ten-a-second window gives the same figure with ten times
//! the signal (CPU per snapshot), as one a second is within the machine's noise. Latency is each input's stamp
//! age in the decoded preview and, beside it, in the decoded RTMP output.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use crate::{
    contender::Kind,
    probe::{LatencyStats, StampProbe},
    run::Bench,
    scene::Scene,
};

/// What one preview run found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Preview {
    pub scene: String,
    /// Tessera's cores with nobody asking for snapshots (the two viewers run throughout).
    pub cpu_idle: f64,
    /// Tessera's cores while one snapshot a second is asked for.
    pub cpu_snapshots: f64,
    /// Tessera's cores while ten snapshots a second are asked for: ten times the signal of one a second.
    pub cpu_snapshots_10: f64,
    /// CPU per snapshot, ms, from the ten-a-second window: what one a second costs, in thousandths of a core.
    pub cpu_ms_per_snapshot: f64,
    /// Snapshots answered in the second window, and their answer time p50 / max, ms.
    pub snapshots: usize,
    pub snapshot_ms_p50: f64,
    pub snapshot_ms_max: f64,
    /// The RTMP output's and the live preview's latency over both windows.
    pub rtmp: LatencyStats,
    pub preview: LatencyStats,
}

impl Preview {
    pub fn line(&self) -> String {
        let (r50, r95) = self.rtmp.worst().unwrap_or((f64::NAN, f64::NAN));
        let (p50, p95) = self.preview.worst().unwrap_or((f64::NAN, f64::NAN));
        format!(
            "preview {}: cpu {:.3} cores idle, {:.3} with a snapshot a second (+{:.3}); {} snapshots, {:.0} ms p50, \\
             {:.0} ms max; latency RTMP output p50 {:.0} ms p95 {:.0} ms, live.flv p50 {:.0} ms p95 {:.0} ms",
            self.scene,
            self.cpu_idle,
            self.cpu_snapshots,
            self.cpu_snapshots - self.cpu_idle,
            self.snapshots,
            self.snapshot_ms_p50,
            self.snapshot_ms_max,
            r50 * 1e3,
            r95 * 1e3,
            p50 * 1e3,
            p95 * 1e3,
        )
    }
}

impl Bench {
    pub fn measure_preview(
        &self,
        scene: &Scene,
        warmup: Duration,
        secs: Duration,
    ) -> Result<Preview, String> {
        let (running, outputs, started) = self.launch(scene, Kind::Tessera, 1, warmup)?;
        let api = running.api.clone().ok_or("Tessera has no API address")?;
        let (first, id) = outputs
            .first()
            .zip(running.mix_ids.first())
            .ok_or("the scene has no mix")?;
        let watches = || self.watches(first).ok_or("the output carries no stamps");
        let rtmp = StampProbe::start(&format!("{}/mix/{}", self.base, first.stream), watches()?);
        let preview = StampProbe::start(&format!("{api}/v1/mixes/{id}/live.flv"), watches()?);
        std::thread::sleep(
            warmup
                .saturating_sub(started.elapsed())
                .max(Duration::from_secs(3)),
        );
        let cpu = |window: Duration| {
            let (t0, c0) = (Instant::now(), running.cpu_seconds());
            std::thread::sleep(window);
            (running.cpu_seconds() - c0) / t0.elapsed().as_secs_f64()
        };
        let url = format!("{api}/v1/mixes/{id}/snapshot.jpg");
        // CPU while `per_s` snapshots a second are asked for, and each one's answer time (ms).
        let asking = |per_s: u32| {
            let stop = Arc::new(AtomicBool::new(false));
            let times = Arc::new(Mutex::new(Vec::<f64>::new()));
            let asker = {
                let (stop, times, url) = (stop.clone(), times.clone(), url.clone());
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    let every = Duration::from_secs(1) / per_s.max(1);
                    while !stop.load(Ordering::SeqCst) {
                        let sent = Instant::now();
                        let ok = client
                            .get(&url)
                            .send()
                            .ok()
                            .filter(|r| r.status().is_success())
                            .and_then(|r| r.bytes().ok())
                            .is_some_and(|b| b.starts_with(&[0xFF, 0xD8]));
                        if ok {
                            times
                                .lock()
                                .unwrap()
                                .push(sent.elapsed().as_secs_f64() * 1e3);
                        }
                        std::thread::sleep(every.saturating_sub(sent.elapsed()));
                    }
                })
            };
            let cores = cpu(secs);
            stop.store(true, Ordering::SeqCst);
            let _ = asker.join();
            let times = times.lock().unwrap().clone();
            (cores, times)
        };
        let t0 = Instant::now();
        // Windows alternate so that drift in the machine's load falls on both sides.
        let idle_a = cpu(secs);
        let (at_1, mut times) = asking(1);
        let idle_b = cpu(secs);
        let (at_10, times_10) = asking(10);
        let t1 = Instant::now();
        let cpu_idle = (idle_a + idle_b) / 2.0;
        let snapshots = times.len();
        let figures = Preview {
            scene: scene.name.clone(),
            cpu_idle,
            cpu_snapshots: at_1,
            cpu_snapshots_10: at_10,
            cpu_ms_per_snapshot: (at_10 - cpu_idle) * secs.as_secs_f64() * 1e3
                / times_10.len().max(1) as f64,
            snapshots,
            snapshot_ms_p50: crate::probe::percentile(&mut times, 0.5),
            snapshot_ms_max: times.iter().copied().fold(f64::NAN, f64::max),
            rtmp: rtmp.stats(t0, t1),
            preview: preview.stats(t0, t1),
        };
        drop((rtmp, preview, running));
        Ok(figures)
    }
}
