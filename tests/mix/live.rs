//! Live behaviour: updates without restarting the output, input loss and return, alignment of inputs that
//! join at different times, a dead output target, refused updates, deletion.

use std::time::{Duration, Instant};

use gst::prelude::*;
use serde_json::json;

use super::*;

/// Asserts the output's timestamps run on without going back or jumping: never back, never a gap (a repeated
/// timestamp was seen once in CI right after a live bitrate change (under investigation) and is not a restart).
fn assert_continuous(probe: &OutputProbe) {
    assert_pts_continuous(probe, Duration::from_millis(200));
}

#[test]
fn layout_update_applies_within_a_second_on_the_same_output() {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, None);
    let probe = rig.probe("out");
    let at = |x: i32, y: i32| spec("#0000FF", vec![input("a", rect(x, y, 160, 90))]);
    rig.put("m", &at(0, 0));
    expect_pixels(
        &probe,
        &[(80, 45, RED), (480, 245, BLUE)],
        Duration::from_secs(25),
    );
    std::thread::sleep(Duration::from_secs(2));
    let sent = Instant::now();
    let body = rig.put("m", &at(400, 200));
    assert_eq!(body["applied"], "updated_live");
    expect_pixels(
        &probe,
        &[(80, 45, BLUE), (480, 245, RED)],
        Duration::from_secs(3),
    );
    let took = sent.elapsed();
    // Request → decoded frame at the viewer, including encode and RTMP delivery.
    assert!(
        took < Duration::from_secs(1),
        "update took {took:?} to show"
    );
    // A new video bitrate is applied to the running encoder too.
    let mut slower = at(400, 200);
    slower["outputs"][0]["video"]["bitrate_kbps"] = json!(400);
    assert_eq!(rig.put("m", &slower)["applied"], "updated_live");
    probe.let_frames_pass(30, Duration::from_secs(25), "the output stalled");
    assert_eq!(probe.sessions(), 1, "the output was restarted");
    assert_continuous(&probe);
}

#[test]
fn input_loss_keeps_frame_rate_and_the_input_resumes() {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, None);
    let b = rig.solid("b", GREEN, None);
    let probe = rig.probe("out");
    rig.put("m", &spec("#0000FF", side_by_side()));
    expect_pixels(
        &probe,
        &[(160, 90, RED), (480, 90, GREEN)],
        Duration::from_secs(25),
    );
    b.stop();
    std::thread::sleep(Duration::from_millis(500));
    let before = probe.frame_count();
    std::thread::sleep(Duration::from_secs(3));
    let frames = probe.frame_count() - before;
    assert!(
        frames >= 87,
        "only {frames} frames in 3 s after an input died"
    );
    // The dead input's last frame stays; the status says it is gone.
    expect_pixels(
        &probe,
        &[(160, 90, RED), (480, 90, GREEN)],
        Duration::from_secs(1),
    );
    rig.wait_status("m", Duration::from_secs(10), |s| {
        s["inputs"][1]["state"] != "live" && s["inputs"][0]["state"] == "live"
    });
    // Published again, in another colour and at another resolution: it comes back by itself, still filling its
    // rect exactly.
    let _b2 = rig.publish(
        "b",
        PublishOpts {
            pattern: Pattern::Solid(YELLOW),
            width: 640,
            height: 360,
            ..PublishOpts::default()
        },
    );
    expect_pixels(
        &probe,
        &[
            (160, 90, RED),
            (480, 90, YELLOW),
            (323, 3, YELLOW),
            (636, 176, YELLOW),
            (480, 184, BLUE),
        ],
        Duration::from_secs(20),
    );
    rig.wait_status("m", Duration::from_secs(5), |s| {
        s["inputs"][1]["state"] == "live"
    });
    assert_eq!(probe.sessions(), 1);
}

#[test]
fn inputs_published_seconds_apart_are_in_step() {
    let rig = Rig::start();
    let flip = |a: u32, b: u32| PublishOpts {
        pattern: Pattern::Flip { a, b },
        ..PublishOpts::default()
    };
    let _a = rig.publish("a", flip(RED, GREEN));
    let probe = rig.probe("out");
    rig.put("m", &spec("#0000FF", side_by_side()));
    expect_pixels(&probe, &[(160, 90, RED)], Duration::from_secs(25));
    // B joins three seconds later; both flip colour on the same wall-clock second boundaries.
    std::thread::sleep(Duration::from_secs(3));
    let _b = rig.publish("b", flip(RED, GREEN));
    probe
        .wait_until(Duration::from_secs(20), |f| {
            !color_close(f.pixel(480, 90), BLUE, TOL)
        })
        .expect("B never showed up");
    std::thread::sleep(Duration::from_secs(1));
    probe.watch(&[(160, 90), (480, 90)]);
    std::thread::sleep(Duration::from_secs(6));
    let frames = probe.watched();
    let is_red = |p: [u8; 3]| color_close(p, RED, TOL);
    let flips = |i: usize| -> Vec<usize> {
        frames
            .windows(2)
            .enumerate()
            .filter(|(_, w)| is_red(w[0].1[i]) != is_red(w[1].1[i]))
            .map(|(n, _)| n)
            .collect()
    };
    let (fa, fb) = (flips(0), flips(1));
    assert!(
        fa.len() >= 3 && fb.len() >= 3,
        "not enough flips seen: A {fa:?} B {fb:?}"
    );
    // Pair each of A's flips with B's nearest one: at 30 fps, 3 frames = 100 ms. Flips at the edges of the
    // recording may have their partner just outside it.
    for a in fa.iter().filter(|&&a| a > 3 && a + 4 < frames.len()) {
        let skew = fb.iter().map(|b| a.abs_diff(*b)).min().unwrap();
        assert!(
            skew <= 3,
            "inputs {skew} frames apart; flips A {fa:?} B {fb:?}"
        );
    }
}

#[test]
fn unreachable_target_does_not_stop_another_and_missing_input_is_reported() {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, None);
    let probe = rig.probe("out");
    let dead = format!("rtmp://127.0.0.1:{}/mix/nowhere", free_port());
    let mut s = spec(
        "#0000FF",
        vec![
            input("a", rect(0, 0, 320, 180)),
            json!({"id": "ghost", "source": {"stream_id": "never-published"}, "rect": rect(320, 0, 320, 180)}),
        ],
    );
    s["outputs"] = json!([{"target": {"url": dead}}, {"target": {"stream_id": "out"}}]);
    rig.put("m", &s);
    // The never-published input leaves its rect to the canvas.
    expect_pixels(
        &probe,
        &[(160, 90, RED), (480, 90, BLUE)],
        Duration::from_secs(25),
    );
    let st = rig.wait_status("m", Duration::from_secs(15), |s| {
        s["outputs"][0]["state"] == "retrying"
            && s["outputs"][1]["state"] == "live"
            && s["inputs"][1]["state"] == "retrying"
    });
    assert!(
        st["outputs"][0]["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{st}"
    );
    assert!(
        st["inputs"][1]["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{st}"
    );
    // The frame rate is measured over 2 s: read once the mix has run longer (a mix in a spare worker gets
    // this far within a second of its creation).
    let st = rig.wait_status("m", Duration::from_secs(10), |s| {
        s["uptime_s"].as_u64() >= Some(3)
    });
    assert!(st["output_fps"].as_f64().unwrap() >= 28.0, "{st}");
}

/// With no input delivering, the canvas alone still runs at its frame rate on the clock: the still layers (here
/// the background) queue their picture for each frame when it is due, so the compositor neither waits for them
/// nor, with nothing else to wait for, runs ahead of real time.
#[test]
fn a_mix_without_any_input_delivering_keeps_to_the_clock() {
    let rig = Rig::start();
    let probe = rig.probe("out");
    let s = spec(
        "#00FF00",
        vec![
            json!({"id": "ghost", "source": {"stream_id": "never-published"}, "rect": rect(0, 0, 320, 180)}),
        ],
    );
    rig.put("m", &s);
    expect_pixels(&probe, &[(160, 90, GREEN)], Duration::from_secs(25));
    std::thread::sleep(Duration::from_millis(500));
    let (before, started) = (probe.frame_count(), Instant::now());
    std::thread::sleep(Duration::from_secs(4));
    let frames = (probe.frame_count() - before) as f64 / started.elapsed().as_secs_f64();
    assert!(
        (27.0..=33.0).contains(&frames),
        "{frames:.1} frames a second reached the viewer with no input delivering (canvas 30 fps)"
    );
    let st = rig.wait_status("m", Duration::from_secs(10), |s| {
        s["uptime_s"].as_u64() >= Some(3)
    });
    let fps = st["output_fps"].as_f64().unwrap();
    assert!((28.0..=32.0).contains(&fps), "{st}");
    assert_continuous(&probe);
}

/// A target added to a running encoding starts with a keyframe asked of the encoder, not the next one of the
/// GOP (6 s here): a player that stays on the first output sees a keyframe within 1.5 s of each of two targets
/// being added (without the request, both would by chance about one time in sixteen), and the new targets go
/// live without restarting anything.
#[test]
fn a_target_added_live_gets_a_keyframe_at_once() {
    use std::sync::{Arc, Mutex};
    let rig = Rig::start();
    let _a = rig.solid("a", RED, None);
    let probe = rig.probe("out");
    let output = |stream: &str| json!({"target": {"stream_id": stream}, "video": {"bitrate_kbps": 1500, "gop_s": 6}});
    let mut s = spec("#0000FF", vec![input("a", rect(0, 0, 320, 180))]);
    s["outputs"] = json!([output("out")]);
    rig.put("m", &s);
    expect_pixels(&probe, &[(160, 90, RED)], Duration::from_secs(25));
    // When each keyframe of the first output reached a player that stays on it.
    let keyframes = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let reading = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reader = {
        let (keyframes, reading) = (keyframes.clone(), reading.clone());
        let url = rig.out_url("out");
        std::thread::spawn(move || {
            let pipeline = gst::Pipeline::new();
            let src = make("rtmp2src");
            src.set_property("location", &url);
            let sink = gst_app::AppSink::builder().sync(false).build();
            pipeline.add_many([&src, sink.upcast_ref()]).unwrap();
            src.link(&sink).unwrap();
            pipeline.set_state(gst::State::Playing).unwrap();
            let mut parser = tessera::flv::Parser::new();
            while reading.load(std::sync::atomic::Ordering::Relaxed) {
                let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(100)) else {
                    continue;
                };
                parser.push(&sample.buffer().unwrap().map_readable().unwrap());
                while let Some(item) = parser.next_item() {
                    if let tessera::flv::Item::Tag(t) = item {
                        if tessera::flv::is_video_keyframe(&t)
                            && !tessera::flv::is_sequence_header(&t)
                        {
                            keyframes.lock().unwrap().push(Instant::now());
                        }
                    }
                }
            }
            let _ = pipeline.set_state(gst::State::Null);
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    for (i, stream) in ["late1", "late2"].into_iter().enumerate() {
        s["outputs"].as_array_mut().unwrap().push(output(stream));
        let added = Instant::now();
        rig.put("m", &s);
        rig.wait_status("m", Duration::from_secs(5), |st| {
            st["outputs"][i + 1]["state"] == "live"
        });
        let seen = wait_for(Duration::from_millis(1500), || {
            keyframes.lock().unwrap().iter().any(|t| *t > added)
        });
        assert!(seen, "no keyframe within 1.5 s of adding target {}", i + 2);
        eprintln!(
            "a keyframe reached the player {:?} after target {} was added",
            keyframes
                .lock()
                .unwrap()
                .iter()
                .find(|t| **t > added)
                .unwrap()
                .duration_since(added),
            i + 2
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    reader.join().unwrap();
    // One output session throughout: the targets were added without restarting anything.
    assert_eq!(probe.sessions(), 1);
}

/// An `rtmps://` target: the mix is published over TLS (nginx's stream module in front of nginx-rtmp, a
/// self-signed certificate, so `egress.rtmps_verify = false`) and played back over plain RTMP.
#[test]
fn an_rtmps_target_receives_the_mix() {
    let rig = Rig::on(Nginx::start_with_rtmps(), |c| c.egress.rtmps_verify = false);
    let _a = rig.solid("a", RED, None);
    let probe = rig.probe("tls");
    let mut s = spec("#0000FF", vec![input("a", rect(0, 0, 320, 180))]);
    s["outputs"] = json!([{"target": {"url": rig.nginx.rtmps_url("mix", "tls")}}]);
    rig.put("m", &s);
    expect_pixels(
        &probe,
        &[(160, 90, RED), (480, 90, BLUE)],
        Duration::from_secs(25),
    );
    rig.wait_status("m", Duration::from_secs(10), |s| {
        s["outputs"][0]["state"] == "live"
    });
}

#[test]
fn refused_update_changes_nothing_and_delete_releases_the_output() {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, None);
    let probe = rig.probe("out");
    let good = spec("#0000FF", vec![input("a", rect(0, 0, 320, 180))]);
    rig.put("m", &good);
    expect_pixels(&probe, &[(160, 90, RED)], Duration::from_secs(25));
    let mut bad = good.clone();
    bad["inputs"][0]["rect"] = rect(400, 0, 320, 180);
    bad["inputs"][0]["volume"] = json!(500);
    let (status, body) = rig.tessera.put("/v1/mixes/m", &bad);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_spec");
    let (_, view) = rig.tessera.get("/v1/mixes/m");
    assert_eq!(view["spec"]["inputs"][0]["rect"], good["inputs"][0]["rect"]);
    // The output goes on unchanged: every one of its next 20 frames shows the old layout.
    probe.watch(&[(160, 90), (500, 90)]);
    probe.let_frames_pass(
        20,
        Duration::from_secs(10),
        "output stalled after a refused update",
    );
    assert_watched(&probe, &[RED, BLUE], "after a refused update");

    let (status, _) = rig.tessera.delete("/v1/mixes/m");
    assert_eq!(status, 204);
    let (status, _) = rig.tessera.get("/v1/mixes/m");
    assert_eq!(status, 404);
    // The output stream ends: nothing is published to it any more.
    let deadline = Instant::now() + Duration::from_secs(10);
    while rig.nginx.is_publishing("mix", "out") {
        assert!(
            Instant::now() < deadline,
            "output still published after delete"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn inputs_added_and_removed_live() {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, Some(440.0));
    let _b = rig.solid("b", GREEN, Some(660.0));
    let probe = rig.probe("out");
    let a = input("a", rect(0, 0, 320, 180));
    let b = input("b", rect(320, 180, 320, 180));
    rig.put("m", &spec("#0000FF", vec![a.clone()]));
    expect_pixels(
        &probe,
        &[(160, 90, RED), (480, 270, BLUE)],
        Duration::from_secs(25),
    );
    let body = rig.put("m", &spec("#0000FF", vec![a.clone(), b]));
    assert_eq!(body["applied"], "updated_live");
    expect_pixels(
        &probe,
        &[(160, 90, RED), (480, 270, GREEN)],
        Duration::from_secs(10),
    );
    let body = rig.put("m", &spec("#0000FF", vec![a]));
    assert_eq!(body["applied"], "updated_live");
    expect_pixels(
        &probe,
        &[(160, 90, RED), (480, 270, BLUE)],
        Duration::from_secs(3),
    );
    // B's sound is gone with it: judged from a second of audio after the change on, over a second in which A's
    // tone is heard.
    probe.let_audio_pass(Duration::from_secs(1), Duration::from_secs(25));
    let levels = wait_steady_levels(&probe, &[440.0, 660.0], Duration::from_secs(25), |l| {
        l[0] > 0.02
    });
    let (la, lb) = (levels[0], levels[1]);
    assert!(
        la > 0.02 && lb < 0.1 * la,
        "levels after removal: 440 Hz {la}, 660 Hz {lb}"
    );
    assert_eq!(probe.sessions(), 1);
    assert_continuous(&probe);
}

#[test]
fn output_and_inputs_come_back_after_the_rtmp_server_restarts() {
    let mut rig = Rig::start();
    let a = rig.solid("a", RED, None);
    let probe = rig.probe("out");
    rig.put(
        "m",
        &spec("#0000FF", vec![input("a", rect(0, 0, 320, 180))]),
    );
    expect_pixels(&probe, &[(160, 90, RED)], Duration::from_secs(25));
    rig.nginx.kill();
    a.stop();
    std::thread::sleep(Duration::from_secs(2));
    rig.nginx.restart();
    let _a = rig.solid("a", GREEN, None);
    // Nobody touched the mix: its output target and its input reconnect by themselves.
    expect_pixels(
        &probe,
        &[(160, 90, GREEN), (480, 270, BLUE)],
        Duration::from_secs(40),
    );
    let st = rig.wait_status("m", Duration::from_secs(5), |s| {
        s["outputs"][0]["state"] == "live"
    });
    assert!(
        st["uptime_s"].as_u64().unwrap() >= 4,
        "the mix was restarted: {st}"
    );
}

/// Players (not publishers) of `app/stream`, per nginx-rtmp's statistics.
fn players(nginx: &Nginx, app: &str, stream: &str) -> usize {
    let xml: String = nginx
        .stat_xml()
        .chars()
        .filter(|c| *c != '\n' && *c != '\r')
        .collect();
    let Some(app_at) = xml.find(&format!("<name>{app}</name>")) else {
        return 0;
    };
    let app_xml = &xml[app_at..];
    let app_xml = &app_xml[..app_xml.find("</application>").unwrap_or(app_xml.len())];
    let Some(at) = app_xml.find(&format!("<stream><name>{stream}</name>")) else {
        return 0;
    };
    let s = &app_xml[at..];
    let s = &s[..s.find("</stream>").unwrap_or(s.len())];
    s.split("<client>")
        .skip(1)
        .filter(|c| !c[..c.find("</client>").unwrap_or(c.len())].contains("<publishing/>"))
        .count()
}

#[test]
fn mixes_sharing_an_input_are_independent_and_delete_releases_it() {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, None);
    let _b = rig.solid("b", GREEN, None);
    let (p1, p2) = (rig.probe("out1"), rig.probe("out2"));
    let mix = |out: &str, b_first: bool| {
        let (xa, xb) = if b_first { (320, 0) } else { (0, 320) };
        let mut s = spec(
            "#0000FF",
            vec![
                input("a", rect(xa, 0, 320, 180)),
                input("b", rect(xb, 0, 320, 180)),
            ],
        );
        s["outputs"][0]["target"] = json!({"stream_id": out});
        s
    };
    // A PK pair: both mixes show A and B, mirrored.
    rig.put("m1", &mix("out1", false));
    rig.put("m2", &mix("out2", true));
    expect_pixels(
        &p1,
        &[(160, 90, RED), (480, 90, GREEN)],
        Duration::from_secs(25),
    );
    expect_pixels(
        &p2,
        &[(160, 90, GREEN), (480, 90, RED)],
        Duration::from_secs(25),
    );
    // A third mix may not publish to an output the first one publishes to.
    let (status, body) = rig.tessera.put("/v1/mixes/m3", &mix("out1", false));
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "output_in_use");
    assert!(
        !body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rtmp://"),
        "{body}"
    );
    // Each source is pulled once for both mixes.
    assert_eq!(
        players(&rig.nginx, "live", "a"),
        1,
        "{}",
        rig.nginx.stat_xml()
    );
    // A refused update of one mix and the deletion of the other leave the survivor running.
    let mut bad = mix("out2", true);
    bad["inputs"][0]["corner_radius"] = json!(1000);
    assert_eq!(rig.tessera.put("/v1/mixes/m2", &bad).0, 422);
    assert_eq!(rig.tessera.delete("/v1/mixes/m1").0, 204);
    // Every one of the survivor's next 55 frames shows its layout.
    p2.watch(&[(160, 90), (480, 90)]);
    p2.let_frames_pass(55, Duration::from_secs(10), "the other mix stalled");
    assert_watched(&p2, &[GREEN, RED], "the survivor");
    assert_eq!(players(&rig.nginx, "live", "a"), 1);
    // Deleting the last user of the sources stops pulling them.
    assert_eq!(rig.tessera.delete("/v1/mixes/m2").0, 204);
    let deadline = Instant::now() + Duration::from_secs(10);
    while players(&rig.nginx, "live", "a") + players(&rig.nginx, "live", "b") > 0 {
        assert!(
            Instant::now() < deadline,
            "sources still pulled after delete: {}",
            rig.nginx.stat_xml()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn canvas_resize_applies_live_and_a_new_frame_rate_restarts() {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, None);
    let probe = rig.probe("out");
    let mut s = spec("#0000FF", vec![input("a", rect(0, 0, 160, 90))]);
    rig.put("m", &s);
    expect_pixels(
        &probe,
        &[(80, 45, RED), (400, 300, BLUE)],
        Duration::from_secs(25),
    );
    s["canvas"]["width"] = json!(320);
    s["canvas"]["height"] = json!(180);
    let body = rig.put("m", &s);
    assert_eq!(body["applied"], "updated_live");
    let f = probe
        .wait_until(Duration::from_secs(10), |f| {
            f.width == 320 && f.height == 180
        })
        .expect("output never came at 320x180");
    assert!(color_close(f.pixel(80, 45), RED, TOL) && color_close(f.pixel(250, 150), BLUE, TOL));
    // Same publish on the RTMP server, same session at the viewer.
    assert_eq!(rig.nginx.publish_count_of("mix", "out"), 1);
    assert_eq!(probe.sessions(), 1);
    // A new frame rate rebuilds the pipeline (a new publish).
    s["canvas"]["fps"] = json!(25);
    assert_eq!(rig.put("m", &s)["applied"], "restarted");
    rig.wait_status("m", Duration::from_secs(15), |s| {
        s["outputs"][0]["state"] == "live"
    });
    expect_pixels(
        &probe,
        &[(80, 45, RED), (250, 150, BLUE)],
        Duration::from_secs(15),
    );
}

#[test]
fn a_failed_mix_pipeline_restarts_by_itself() {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, None);
    let probe = rig.probe("out");
    rig.put(
        "m",
        &spec("#0000FF", vec![input("a", rect(0, 0, 320, 180))]),
    );
    expect_pixels(
        &probe,
        &[(160, 90, RED), (480, 270, BLUE)],
        Duration::from_secs(25),
    );
    assert!(rig.tessera.engine.inject_failure("m"));
    rig.wait_status("m", Duration::from_secs(5), |s| s["state"] == "failed");
    // Back within the first backoff step, same layout, publishing again.
    let st = rig.wait_status("m", Duration::from_secs(15), |s| {
        s["state"] == "running"
            && s["outputs"][0]["state"] == "live"
            && s["inputs"][0]["state"] == "live"
            && s["uptime_s"].as_u64() < Some(10)
    });
    assert_eq!(
        st["output_fps"].as_f64().map(|f| f > 0.0),
        Some(true),
        "{st}"
    );
    // The viewer may still be reconnecting to the republished stream (its stall timer is 5 s); the old
    // session's last frame would pass a pixel check, so wait for fresh frames first.
    let before = probe.frame_count();
    assert!(
        wait_for(Duration::from_secs(20), || probe.frame_count()
            > before + 30),
        "no frames after the restart: {:?}",
        probe.errors()
    );
    expect_pixels(
        &probe,
        &[(160, 90, RED), (480, 270, BLUE)],
        Duration::from_secs(10),
    );
}
