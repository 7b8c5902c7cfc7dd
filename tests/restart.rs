//! Restart recovery with the real binary: mixes (native and ZEGO) and relay projects are running, Tessera is
//! killed with SIGKILL, started again on the same state file, and every output comes back with its layout; the
//! ZEGO task keeps its owner and Sequence; a graceful stop (SIGTERM) keeps the tasks too.

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(25);

/// A 640×360 mix of `left` and `right` side by side on a black canvas, published as `out`.
fn side_by_side(left: &str, right: &str, out: &str) -> Value {
    json!({
        "canvas": {"width": 640, "height": 360, "fps": 30, "background": "#000000"},
        "inputs": [
            {"id": "l", "source": {"stream_id": left}, "rect": rect(0, 0, 320, 360)},
            {"id": "r", "source": {"stream_id": right}, "rect": rect(320, 0, 320, 360)}
        ],
        "outputs": [{"target": {"stream_id": out}, "video": {"bitrate_kbps": 800}}]
    })
}

/// Pixels expected at (x, y) in an output.
type Layout = Vec<(u32, u32, u32)>;

/// Every probe decodes fresh frames that show its layout.
fn all_show(probes: &[(&OutputProbe, Layout)], timeout: Duration) {
    for (probe, checks) in probes {
        let before = probe.frame_count();
        assert!(
            wait_for(timeout, || probe.frame_count() > before + 5),
            "{} has no fresh frames",
            probe.url()
        );
        expect_pixels(probe, checks, timeout);
    }
}

#[test]
fn tasks_resume_after_sigkill_and_after_sigterm() {
    init();
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let (config, port) = write_config(
        dir.path(),
        &nginx,
        &format!(
            "[zego]\napp_id = {ZEGO_APP}\nserver_secret = \"{ZEGO_SECRET}\"\ninput_check_ms = 0"
        ),
    );
    let solid = |stream: &str, rgb: u32| Publisher::solid(&nginx.rtmp_url("live", stream), rgb);
    let (_a, _b) = (solid("a", RED), solid("b", BLUE));

    let server = Server::start(&config, port);
    server.send("PUT", "/v1/mixes/m1", Some(&side_by_side("a", "b", "m1")));
    server.send("PUT", "/v1/mixes/m2", Some(&side_by_side("b", "a", "m2")));
    let zego_task = json!({
        "TaskId": "z1", "Sequence": 5, "UserId": "owner",
        "MixInput": [{"StreamId": "a", "RectInfo": {"Top": 0, "Left": 0, "Bottom": 360, "Right": 640}}],
        "MixOutput": [{"StreamId": "z1", "Width": 640, "Height": 360, "VideoBitrate": 800000, "Fps": 30}]
    });
    let started = server.zego(ZEGO_APP, ZEGO_SECRET, "StartMix", &zego_task);
    assert_eq!(started["Code"], 0, "{started}");
    for (id, input) in [("r1", "a"), ("r2", "b")] {
        server.send(
            "PUT",
            &format!("/v1/relays/{id}"),
            Some(&json!({"main": {"push": input}, "outputs": [{"id": "o", "url": nginx.rtmp_url("mix", id)}]})),
        );
        server.send("POST", &format!("/v1/relays/{id}/start"), None);
    }
    server.send(
        "PUT",
        "/v1/relays/idle",
        Some(&json!({"main": {"push": "a"}, "outputs": [{"id": "o", "url": nginx.rtmp_url("mix", "idle")}]})),
    );

    let probe = |s: &str| OutputProbe::start(&nginx.rtmp_url("mix", s));
    let (m1, m2, z1, r1, r2) = (
        probe("m1"),
        probe("m2"),
        probe("z1"),
        probe("r1"),
        probe("r2"),
    );
    let layouts = |m1, m2, z1, r1, r2| {
        vec![
            (m1, vec![(160, 180, RED), (480, 180, BLUE)]),
            (m2, vec![(160, 180, BLUE), (480, 180, RED)]),
            (z1, vec![(320, 180, RED)]),
            (r1, vec![(160, 90, RED)]),
            (r2, vec![(160, 90, BLUE)]),
        ]
    };
    all_show(&layouts(&m1, &m2, &z1, &r1, &r2), T);

    // SIGKILL: nothing is ended cleanly; the outputs' publishes just drop.
    server.kill();
    assert!(
        wait_for(T, || !nginx.is_publishing("mix", "m1")
            && !nginx.is_publishing("mix", "r1")),
        "outputs still publishing after the kill"
    );
    let restarted = Instant::now();
    let server = Server::start(&config, port);
    all_show(&layouts(&m1, &m2, &z1, &r1, &r2), T);
    eprintln!(
        "restart to all 5 outputs showing their layouts again: {:.2} s",
        restarted.elapsed().as_secs_f64()
    );
    let idle = server.send("GET", "/v1/relays/idle", None);
    assert_eq!(idle["status"]["state"], "idle", "{idle}");
    assert!(!nginx.is_publishing("mix", "idle"));

    // The ZEGO task came back with its owner and Sequence.
    let mut stale = zego_task.clone();
    stale["Sequence"] = json!(4);
    let refused = server.zego(ZEGO_APP, ZEGO_SECRET, "StartMix", &stale);
    assert_eq!(refused["Code"], 110200002, "{refused}");
    let foreign = server.zego(
        ZEGO_APP,
        ZEGO_SECRET,
        "StopMix",
        &json!({"TaskId": "z1", "UserId": "intruder"}),
    );
    assert_eq!(foreign["Code"], 110200160, "{foreign}");

    // SIGTERM: outputs end cleanly, the tasks stay recorded and resume once more.
    server.terminate();
    assert!(
        wait_for(T, || !nginx.is_publishing("mix", "m2")),
        "outputs still publishing after SIGTERM"
    );
    let server = Server::start(&config, port);
    all_show(&layouts(&m1, &m2, &z1, &r1, &r2), T);
    let stopped = server.zego(
        ZEGO_APP,
        ZEGO_SECRET,
        "StopMix",
        &json!({"TaskId": "z1", "UserId": "owner"}),
    );
    assert_eq!(stopped["Code"], 0, "{stopped}");
    server.send("DELETE", "/v1/mixes/m2", None);
    server.send("POST", "/v1/relays/r2/stop", None);

    // What was stopped or deleted stays so across a restart.
    server.kill();
    let server = Server::start(&config, port);
    all_show(&layouts(&m1, &m2, &z1, &r1, &r2)[..1], T);
    let mixes = server.send("GET", "/v1/mixes", None);
    let ids: Vec<&str> = mixes
        .as_array()
        .or_else(|| mixes["mixes"].as_array())
        .expect("a list of mixes")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["m1"], "{mixes}");
    let r2 = server.send("GET", "/v1/relays/r2", None);
    assert_eq!(r2["status"]["state"], "idle", "{r2}");
    let r1 = server.send("GET", "/v1/relays/r1", None);
    assert_eq!(r1["status"]["state"], "working", "{r1}");
}
