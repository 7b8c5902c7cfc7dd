//! Failover: main and backup are both pulled; losing the main moves every output to the backup on the same RTMP
//! session with continuous timestamps; the return to main follows `return_to_main`.

use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

#[test]
fn killing_main_switches_every_output_to_backup_and_back() {
    let rig = rig();
    let main = rig.solid("main", RED, Some(440.0));
    let _backup = rig.solid("backup", BLUE, Some(440.0));
    let (p1, p2) = (rig.probe("o1"), rig.probe("o2"));
    rig.put_relay("r", &spec(&rig, true, &["o1", "o2"]));
    rig.start_relay("r");
    expect_colour(&p1, RED, Duration::from_secs(15));
    expect_colour(&p2, RED, Duration::from_secs(5));
    rig.wait_relay("r", Duration::from_secs(5), |s| {
        s["backup"]["state"] == "live"
    });
    std::thread::sleep(Duration::from_secs(2));

    let killed = Instant::now();
    main.stop();
    expect_colour(&p1, BLUE, Duration::from_secs(5));
    expect_colour(&p2, BLUE, Duration::from_secs(2));
    let took = killed.elapsed();
    eprintln!("failover to backup seen on the outputs after {took:?}");
    let s = rig.wait_relay("r", Duration::from_secs(3), |s| s["active"] == "backup");
    assert_eq!(s["switches"], 1);
    assert_eq!(s["main"]["state"], "absent", "{s:#}");
    assert!(s["main"]["last_error"].as_str().is_some(), "{s:#}");
    for (out, probe) in [("o1", &p1), ("o2", &p2)] {
        probe.let_frames_pass(30, Duration::from_secs(25), out);
        assert_eq!(
            rig.nginx.publish_count_of("mix", out),
            1,
            "{out} published again"
        );
        assert_eq!(probe.sessions(), 1, "{out}'s viewer was disconnected");
        assert_pts_continuous(probe, Duration::from_millis(700));
    }

    // The main comes back: after return_after_ms of health, the outputs go back to it.
    let _main = rig.solid("main", RED, Some(440.0));
    let back = Instant::now();
    expect_colour(&p1, RED, Duration::from_secs(15));
    expect_colour(&p2, RED, Duration::from_secs(2));
    let took = back.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "returned before return_after_ms: {took:?}"
    );
    let s = rig.wait_relay("r", Duration::from_secs(3), |s| s["active"] == "main");
    assert_eq!(s["switches"], 2);
    for (out, probe) in [("o1", &p1), ("o2", &p2)] {
        probe.let_frames_pass(30, Duration::from_secs(25), out);
        assert_eq!(rig.nginx.publish_count_of("mix", out), 1);
        assert_eq!(probe.sessions(), 1);
        assert_pts_continuous(probe, Duration::from_millis(700));
    }
}

#[test]
fn without_return_to_main_the_backup_stays_until_switched_manually() {
    let rig = rig();
    let main = rig.solid("main", RED, Some(440.0));
    let _backup = rig.solid("backup", BLUE, Some(440.0));
    let probe = rig.probe("o1");
    let mut s = spec(&rig, true, &["o1"]);
    s["failover"] = json!({"stall_ms": 1000, "return_to_main": false, "return_after_ms": 1000});
    rig.put_relay("r", &s);
    rig.start_relay("r");
    expect_colour(&probe, RED, Duration::from_secs(15));
    rig.wait_relay("r", Duration::from_secs(5), |s| {
        s["backup"]["state"] == "live"
    });
    main.stop();
    expect_colour(&probe, BLUE, Duration::from_secs(5));

    let _main = rig.solid("main", RED, Some(440.0));
    rig.wait_relay("r", Duration::from_secs(10), |s| {
        s["main"]["state"] == "live"
    });
    std::thread::sleep(Duration::from_secs(3));
    let f = probe.latest().unwrap();
    assert!(
        color_close(f.pixel(CENTRE.0, CENTRE.1), BLUE, TOL),
        "went back to main"
    );
    assert_eq!(rig.relay_status("r")["active"], "backup");

    // A manual switch goes back.
    rig.tessera
        .relays
        .switch("r", tessera::relay::Endpoint::Main)
        .unwrap();
    expect_colour(&probe, RED, Duration::from_secs(3));
    let s = rig.wait_relay("r", Duration::from_secs(2), |s| s["active"] == "main");
    assert_eq!(s["switches"], 2);
    assert_eq!(rig.nginx.publish_count_of("mix", "o1"), 1);
    assert_eq!(probe.sessions(), 1);
    assert_pts_continuous(&probe, Duration::from_millis(700));
}

/// A publisher whose media can be held back while its RTMP session stays open (an encoder that froze).
struct Freezable {
    pipeline: gst::Pipeline,
    valve: gst::Element,
}

impl Freezable {
    fn start(url: &str, rgb: u32) -> Freezable {
        use gst::prelude::*;
        init();
        let desc = format!(
            "videotestsrc is-live=true pattern=solid-color foreground-color={argb} \
             ! video/x-raw,format=I420,width=320,height=180,framerate=30/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=300 ! h264parse ! queue \
             ! flvmux name=mux streamable=true ! valve name=valve drop=false ! rtmp2sink location={url} \
             audiotestsrc is-live=true wave=silence samplesperbuffer=960 ! audio/x-raw,rate=48000,channels=2 \
             ! audioconvert ! avenc_aac ! queue ! mux.",
            argb = 0xFF00_0000u32 | rgb
        );
        let pipeline = gst::parse::launch(&desc)
            .unwrap()
            .downcast::<gst::Pipeline>()
            .unwrap();
        let valve = pipeline.by_name("valve").unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        Freezable { pipeline, valve }
    }

    fn freeze(&self, frozen: bool) {
        use gst::prelude::*;
        self.valve.set_property("drop", frozen);
    }
}

impl Drop for Freezable {
    fn drop(&mut self) {
        use gst::prelude::*;
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[test]
fn a_stalled_main_fails_over_and_returns_when_it_recovers() {
    let rig = rig();
    let main = Freezable::start(&rig.nginx.rtmp_url("live", "main"), RED);
    let _backup = rig.solid("backup", BLUE, Some(440.0));
    let probe = rig.probe("o1");
    rig.put_relay("r", &spec(&rig, true, &["o1"]));
    rig.start_relay("r");
    expect_colour(&probe, RED, Duration::from_secs(15));
    rig.wait_relay("r", Duration::from_secs(5), |s| {
        s["backup"]["state"] == "live"
    });

    // The main's encoder freezes: its session stays open, no media comes.
    main.freeze(true);
    let s = rig.wait_relay("r", Duration::from_secs(5), |s| {
        s["main"]["state"] == "stalled"
    });
    assert_eq!(s["active"], "main");
    expect_colour(&probe, BLUE, Duration::from_secs(4));
    assert_eq!(rig.relay_status("r")["active"], "backup");

    main.freeze(false);
    rig.wait_relay("r", Duration::from_secs(15), |s| {
        s["main"]["state"] == "live"
    });
    expect_colour(&probe, RED, Duration::from_secs(8));
    let s = rig.relay_status("r");
    assert_eq!(s["switches"], 2);
    probe.let_frames_pass(30, Duration::from_secs(25), "o1");
    assert_eq!(rig.nginx.publish_count_of("mix", "o1"), 1);
    assert_eq!(probe.sessions(), 1);
    assert_pts_continuous(&probe, Duration::from_millis(700));
}
