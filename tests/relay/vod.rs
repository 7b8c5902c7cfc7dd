//! `vod` inputs: a playlist of FLV files played as one live input, in order, looped, then ended.

use std::time::Duration;

use serde_json::json;

use super::*;

/// The colour at the centre of each watched frame, as runs: (label, frames). Frames matching none of
/// `colours` are left out; runs shorter than 5 frames (a transition) are dropped.
fn colour_runs(probe: &OutputProbe, colours: &[(&'static str, u32)]) -> Vec<(&'static str, usize)> {
    let mut runs: Vec<(&'static str, usize)> = Vec::new();
    for (_, px) in probe.watched() {
        let Some(&(label, _)) = colours
            .iter()
            .find(|(_, rgb)| color_close(px[0], *rgb, TOL))
        else {
            continue;
        };
        match runs.last_mut() {
            Some((l, n)) if *l == label => *n += 1,
            _ => runs.push((label, 1)),
        }
    }
    runs.retain(|(_, n)| *n >= 5);
    runs.dedup_by(|b, a| {
        let same = a.0 == b.0;
        if same {
            a.1 += b.1;
        }
        same
    });
    runs
}

#[test]
fn vod_playlist_plays_in_order_loops_and_ends() {
    let rig = rig();
    for (file, rgb) in [("a.flv", YELLOW), ("b.flv", BLUE)] {
        let opts = PublishOpts {
            pattern: Pattern::Solid(rgb),
            tone_hz: Some(440.0),
            ..PublishOpts::default()
        };
        write_flv(&rig.nginx.http_dir().join(file), &opts, 3);
    }
    let urls = [rig.nginx.http_url("a.flv"), rig.nginx.http_url("b.flv")];
    // The output is already pushing (a live input) when the playlist replaces it, so the probe sees all of
    // it: a playlist is read up to 3 s ahead of real time, the start of its first file at once.
    let _live = rig.solid("main", GREEN, Some(440.0));
    let probe = rig.probe("o1");
    rig.put_relay("v", &spec(&rig, false, &["o1"]));
    rig.start_relay("v");
    expect_colour(&probe, GREEN, Duration::from_secs(15));
    probe.watch(&[CENTRE]);
    let mut s = spec(&rig, false, &["o1"]);
    s["main"] = json!({"vod": {"urls": urls, "loop_times": 1}});
    rig.put_relay("v", &s);

    // The position: the first file, then the second one of the second play.
    let st = rig.wait_relay("v", Duration::from_secs(8), |s| {
        s["main"]["vod"]["index"] == 0 && s["main"]["vod"]["pass"] == 1
    });
    assert_eq!(st["main"]["url"], urls[0]);
    assert_eq!(st["main"]["vod"]["url"], urls[0]);
    assert!(
        st["main"]["vod"]["seconds"].as_f64().unwrap() < 3.0,
        "{st:#}"
    );
    let st = rig.wait_relay("v", Duration::from_secs(15), |s| {
        s["main"]["vod"]["index"] == 1 && s["main"]["vod"]["pass"] == 2
    });
    assert_eq!(st["main"]["url"], urls[1]);

    // The playlist ends: the input goes absent (nothing else to fail over to), the position goes.
    let st = rig.wait_relay("v", Duration::from_secs(10), |s| {
        s["main"]["state"] == "absent" && s["main"].get("vod").is_none()
    });
    assert!(
        st["main"]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("playlist finished"),
        "{st:#}"
    );
    assert_eq!(st["state"], "working");
    std::thread::sleep(Duration::from_millis(500));

    // A, B, A, B after the live input (of which only a few frames may be watched), each file whole; one RTMP
    // session; time never goes back.
    let mut runs = colour_runs(&probe, &[("live", GREEN), ("a", YELLOW), ("b", BLUE)]);
    if runs.first().is_some_and(|r| r.0 == "live") {
        runs.remove(0);
    }
    let labels: Vec<&str> = runs.iter().map(|r| r.0).collect();
    assert_eq!(labels, ["a", "b", "a", "b"], "{runs:?}");
    for (label, frames) in &runs {
        assert!(
            (75..=100).contains(frames),
            "{label}: {frames} frames, a 3 s file has 90: {runs:?}"
        );
    }
    let pts: Vec<u64> = probe
        .watched()
        .iter()
        .filter_map(|(p, _)| p.map(|p| p.mseconds()))
        .collect();
    assert!(
        pts.windows(2).all(|w| w[1] >= w[0]),
        "output time went back"
    );
    assert_pts_continuous(&probe, Duration::from_millis(700));
    assert_eq!(rig.nginx.publish_count_of("mix", "o1"), 1);
    assert_eq!(probe.sessions(), 1);
}
