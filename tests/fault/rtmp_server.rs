//! The RTMP server crashes (SIGKILL, every connection drops) under three running mixes and comes back on the same
//! ports: nobody touches Tessera, and every output and every input reconnects by itself, the mixes never stopped
//! compositing meanwhile and none was restarted.

use std::time::Duration;

use super::*;

#[test]
fn outputs_and_inputs_of_every_mix_come_back_after_the_rtmp_server_is_killed() {
    let mut rig = quick_rig(|_| {});
    let sid = |s: &str| json!({"stream_id": s});
    let (a, b) = (rig.solid("a", RED, None), rig.solid("b", GREEN, None));
    let outs = ["o1", "o2", "o3"];
    let probes: Vec<OutputProbe> = outs.iter().map(|o| rig.probe(o)).collect();
    rig.put("m1", &two_up(sid("a"), sid("b"), "o1"));
    rig.put("m2", &two_up(sid("b"), sid("a"), "o2"));
    // The third mix has one input and a target given by URL.
    let mut m3 = two_up(sid("a"), sid("nobody"), "o3");
    m3["inputs"].as_array_mut().unwrap().pop();
    m3["outputs"][0]["target"] = json!({"url": rig.nginx.rtmp_url("mix", "o3")});
    rig.put("m3", &m3);
    let layouts = |a: u32, b: u32| {
        [
            vec![(160, 90, a), (480, 90, b)],
            vec![(160, 90, b), (480, 90, a)],
            vec![(160, 90, a), (480, 90, BLUE)],
        ]
    };
    for (probe, layout) in probes.iter().zip(layouts(RED, GREEN)) {
        expect_pixels(probe, &layout, T);
    }
    let published: Vec<usize> = outs
        .iter()
        .map(|o| rig.nginx.publish_count_of("mix", o))
        .collect();

    rig.nginx.kill();
    drop((a, b));
    // While the server is gone, every mix keeps compositing (nothing waits on the dead connections), and says
    // that its output and inputs are down.
    std::thread::sleep(Duration::from_secs(3));
    for id in ["m1", "m2", "m3"] {
        let s = rig.wait_status(id, T, |s| {
            s["outputs"][0]["state"] != "live" && s["inputs"][0]["state"] != "live"
        });
        assert_eq!(s["state"], "running", "{id}: {s}");
        assert!(
            s["output_fps"].as_f64().unwrap() >= 10.0,
            "{id} stopped compositing while the RTMP server was down: {s}"
        );
    }
    rig.nginx.restart();
    // The encoders in the field publish again, in other colours; Tessera is not told anything.
    let (_a, _b) = (rig.solid("a", YELLOW, None), rig.solid("b", MAGENTA, None));
    for (probe, layout) in probes.iter().zip(layouts(YELLOW, MAGENTA)) {
        expect_pixels(probe, &layout, Duration::from_secs(40));
    }
    for (id, out) in ["m1", "m2", "m3"].iter().zip(outs) {
        let s = rig.wait_status(id, T, |s| {
            s["outputs"][0]["state"] == "live" && s["inputs"][0]["state"] == "live"
        });
        assert!(
            s["uptime_s"].as_u64().unwrap() >= 5,
            "{id} was restarted instead of reconnecting: {s}"
        );
        assert_eq!(s["state"], "running", "{s}");
        // One new publish per output: it reconnected once, it does not flap.
        let now = rig.nginx.publish_count_of("mix", out);
        let before = published[outs.iter().position(|o| *o == out).unwrap()];
        assert_eq!(now, before + 1, "{out} published {} times", now - before);
    }
    // And the output runs at its rate again.
    for probe in &probes {
        let since = std::time::Instant::now();
        std::thread::sleep(Duration::from_secs(2));
        Window::since(probe, since).assert_kept_rate("after the restart");
    }
}
