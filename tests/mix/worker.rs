//! Worker processes: a mix's worker that dies (SIGKILL, an abort inside a pipeline, memory over its limit) takes
//! only its own mixes down, and they come back on the same output streams while another mix's output runs on
//! untouched.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tessera::{events::EventKind, worker::Fault};

use super::*;

/// A mix of input `src` alone, published as `out`.
fn one(src: &str, out: &str) -> Value {
    let mut s = spec("#0000FF", vec![input(src, rect(0, 0, 320, 180))]);
    s["outputs"][0]["target"] = json!({ "stream_id": out });
    s
}

fn pid_of(status: &Value) -> u64 {
    status["process"]["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("no worker in the status: {status}"))
}

/// Asserts `probe`'s frames that arrived between `from` and `to` came at the canvas rate (≥ 95 % of 30 fps)
/// and their timestamps never went back nor jumped by more than 100 ms.
fn assert_smooth(probe: &OutputProbe, from: Instant, to: Instant, what: &str) {
    let frames: Vec<u64> = probe
        .frame_times()
        .into_iter()
        .filter(|(at, _)| *at >= from && *at <= to)
        .filter_map(|(_, pts)| pts.map(|p| p.mseconds()))
        .collect();
    let secs = to.duration_since(from).as_secs_f64();
    assert!(
        frames.len() as f64 >= 0.95 * 30.0 * secs,
        "{what}: {} frames in {secs:.1} s",
        frames.len()
    );
    for w in frames.windows(2) {
        assert!(
            w[1] >= w[0] && w[1] - w[0] <= 100,
            "{what}: output timestamps jump {} → {} ms",
            w[0],
            w[1]
        );
    }
}

/// The reasons of `mix.failed` events of mix `id` so far.
fn failures(rig: &Rig, id: &str) -> Vec<String> {
    rig.tessera
        .engine
        .events()
        .since(0)
        .0
        .into_iter()
        .filter(|e| e.task.id() == id)
        .filter_map(|e| match e.kind {
            EventKind::MixFailed { reason } => Some(reason),
            _ => None,
        })
        .collect()
}

/// Kills (or faults) the worker of `victim` while `survivor` runs in another; checks the survivor's output
/// never falters and the victim is back, in a new worker, on the same stream, within 2 s. Returns the
/// victim's `mix.failed` reason.
fn worker_dies(how: impl FnOnce(&Rig, u64)) -> String {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, None);
    let _b = rig.solid("b", GREEN, None);
    let (p1, p2) = (rig.probe("out1"), rig.probe("out2"));
    rig.put("victim", &one("a", "out1"));
    rig.put("survivor", &one("b", "out2"));
    expect_pixels(
        &p1,
        &[(160, 90, RED), (480, 270, BLUE)],
        Duration::from_secs(25),
    );
    expect_pixels(
        &p2,
        &[(160, 90, GREEN), (480, 270, BLUE)],
        Duration::from_secs(25),
    );
    let victim = pid_of(&rig.status("victim"));
    let survivor = pid_of(&rig.status("survivor"));
    assert_ne!(
        victim, survivor,
        "mixes without a shared input share a worker"
    );
    std::thread::sleep(Duration::from_secs(1));
    let before = Instant::now();
    how(&rig, victim);
    let killed = Instant::now();
    let st = rig.wait_status("victim", Duration::from_secs(10), |s| {
        s["state"] == "running"
            && s["outputs"][0]["state"] == "live"
            && s["process"]["pid"].as_u64().is_some_and(|p| p != victim)
    });
    let back = killed.elapsed();
    eprintln!("the victim's mix was back and publishing {back:?} after its worker died");
    assert!(back < Duration::from_secs(2), "back after {back:?}: {st}");
    assert!(
        std::fs::metadata(format!("/proc/{victim}")).is_err(),
        "the dead worker {victim} is still there"
    );
    // Same output stream: the viewer of out1 gets fresh frames of the same picture.
    let count = p1.frame_count();
    assert!(
        wait_for(Duration::from_secs(20), || p1.frame_count() > count + 30),
        "no frames on out1 after the restart: {:?}",
        p1.errors()
    );
    expect_pixels(
        &p1,
        &[(160, 90, RED), (480, 270, BLUE)],
        Duration::from_secs(10),
    );
    // The survivor never noticed: same worker, and every frame on time throughout.
    std::thread::sleep(Duration::from_secs(1));
    assert_smooth(&p2, before, Instant::now(), "the other mix");
    assert_eq!(pid_of(&rig.status("survivor")), survivor);
    let reasons = failures(&rig, "victim");
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(failures(&rig, "survivor").is_empty());
    reasons.into_iter().next().unwrap()
}

#[test]
fn a_killed_worker_restarts_its_mixes_and_the_others_run_on() {
    let reason = worker_dies(|_, pid| {
        // SAFETY: kill(2) of a child process of this test.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    });
    assert!(reason.contains("SIGKILL"), "{reason}");
}

#[test]
fn an_abort_inside_a_pipeline_ends_only_its_worker() {
    let reason = worker_dies(|rig, _| {
        assert!(rig.tessera.engine.inject_fault("victim", Fault::Abort));
    });
    assert!(reason.contains("SIGABRT"), "{reason}");
}

#[test]
fn a_worker_over_its_memory_limit_is_restarted_and_the_event_says_why() {
    let rig = Rig::start_with(|c| c.engine.max_worker_memory_mb = 400);
    let _a = rig.solid("a", RED, None);
    let p1 = rig.probe("out1");
    rig.put("m", &one("a", "out1"));
    expect_pixels(
        &p1,
        &[(160, 90, RED), (480, 270, BLUE)],
        Duration::from_secs(25),
    );
    // Read from /proc every second.
    let st = rig.wait_status("m", Duration::from_secs(5), |s| {
        s["process"]["memory_bytes"].as_u64() > Some(0)
    });
    let pid = pid_of(&st);
    let rss = st["process"]["memory_bytes"].as_u64().unwrap();
    assert!(rss > 10 << 20 && rss < 400 << 20, "{st}");
    assert!(rig.tessera.engine.inject_fault("m", Fault::Grow));
    rig.wait_status("m", Duration::from_secs(30), |s| {
        s["state"] == "running" && s["process"]["pid"].as_u64().is_some_and(|p| p != pid)
    });
    let reasons = failures(&rig, "m");
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].contains("engine.max_worker_memory_mb (400 MiB)"),
        "{reasons:?}"
    );
    // The node itself is fine, and so is the mix.
    let count = p1.frame_count();
    assert!(
        wait_for(Duration::from_secs(20), || p1.frame_count() > count + 30),
        "no frames after the restart: {:?}",
        p1.errors()
    );
    let (code, _) = rig.tessera.get("/v1/mixes");
    assert_eq!(code, 200);
}

#[test]
fn mixes_sharing_an_input_share_a_worker_and_the_metrics_show_it() {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, None);
    let _b = rig.solid("b", GREEN, None);
    let _c = rig.solid("c", YELLOW, None);
    let p3 = rig.probe("out3");
    let mut pk1 = spec("#0000FF", side_by_side());
    pk1["outputs"][0]["target"] = json!({ "stream_id": "out1" });
    let mut pk2 = spec("#0000FF", side_by_side());
    pk2["outputs"][0]["target"] = json!({ "stream_id": "out2" });
    rig.put("pk1", &pk1);
    rig.put("pk2", &pk2);
    rig.put("solo", &one("c", "out3"));
    expect_pixels(&p3, &[(160, 90, YELLOW)], Duration::from_secs(25));
    let st = rig.wait_status("pk1", Duration::from_secs(10), |s| {
        s["process"]["mixes"] == 2
    });
    assert_eq!(pid_of(&st), pid_of(&rig.status("pk2")));
    assert_ne!(pid_of(&st), pid_of(&rig.status("solo")));
    let solo = rig.wait_status("solo", Duration::from_secs(10), |s| {
        s["process"]["cpu_cores"].as_f64().is_some_and(|c| c > 0.0)
    });
    assert_eq!(solo["process"]["mixes"], 1);
    // /metrics (checked by the OpenMetrics parser): each mix's worker, its memory, and the mix's own CPU
    // counter, which its worker's threads now feed.
    let m = Metrics::scrape(&rig.tessera.url("/metrics"), None);
    let pid = pid_of(&solo).to_string();
    let rss = m.value(
        "tessera_mix_process_resident_memory_bytes",
        &[("mix", "solo"), ("pid", &pid)],
    );
    assert!(rss > (10 << 20) as f64, "{rss}");
    assert_eq!(m.value("tessera_workers", &[]), 2.0);
    assert!(m.value("tessera_mix_cpu_seconds_total", &[("mix", "solo")]) > 0.0);
}

/// A mix runs in a worker and its status is the worker's report: whoever reads the status right after an
/// event (a webhook's receiver, the console) must see what the event announces, not the report before it.
#[test]
fn the_status_read_right_after_an_event_shows_what_it_announces() {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, None);
    let mut rx = rig.tessera.engine.events().subscribe();
    rig.put("m", &one("a", "out"));
    let (mut input_live, mut output_live) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(25);
    while !(input_live && output_live) {
        assert!(
            Instant::now() < deadline,
            "input live {input_live}, output live {output_live}"
        );
        let e = match rx.try_recv() {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::TryRecvError::Empty) => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(e) => panic!("events: {e}"),
        };
        if e.task.id() != "m" {
            continue;
        }
        match e.kind {
            EventKind::InputLive { input } => {
                let st = rig.status("m");
                assert_eq!(st["inputs"][0]["id"], input.as_str(), "{st}");
                assert_eq!(
                    st["inputs"][0]["state"], "live",
                    "read right after input.live: {st}"
                );
                input_live = true;
            }
            EventKind::OutputLive { .. } => {
                let st = rig.status("m");
                assert_eq!(
                    st["outputs"][0]["state"], "live",
                    "read right after output.live: {st}"
                );
                output_live = true;
            }
            _ => {}
        }
    }
}
