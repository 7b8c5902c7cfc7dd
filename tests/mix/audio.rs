//! What the output sound contains: each input's tone at its volume.

use std::time::Duration;

use serde_json::json;

use super::*;

#[test]
fn each_tone_at_its_volume() {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, Some(440.0));
    let _b = rig.solid("b", GREEN, Some(660.0));
    let _c = rig.solid("c", BLUE, Some(880.0));
    let probe = rig.probe("out");
    let inputs = |vb: u32| {
        vec![
            json!({"id": "a", "source": {"stream_id": "a"}, "rect": rect(0, 0, 200, 120), "volume": 100}),
            json!({"id": "b", "source": {"stream_id": "b"}, "rect": rect(200, 0, 200, 120), "volume": vb}),
            json!({"id": "c", "source": {"stream_id": "c"}, "rect": rect(400, 0, 200, 120), "volume": 200}),
        ]
    };
    rig.put("m", &spec("#000000", inputs(0)));
    // 440 Hz present; 660 Hz (volume 0) absent; 880 Hz at 200 % about twice as loud as 440 Hz at 100 %.
    let levels = wait_steady_levels(
        &probe,
        &[440.0, 660.0, 880.0],
        Duration::from_secs(25),
        |l| l[0] > 0.02 && l[2] > 0.02 && l[1] < 0.1 * l[0],
    );
    let ratio = levels[2] / levels[0];
    assert!(
        (1.6..=2.4).contains(&ratio),
        "200 % vs 100 %: ratio {ratio} from {levels:?}"
    );
    // Raising B's volume live makes its tone appear at the level of A's.
    rig.put("m", &spec("#000000", inputs(100)));
    let levels = wait_steady_levels(&probe, &[440.0, 660.0], Duration::from_secs(5), |l| {
        l[1] > 0.5 * l[0]
    });
    let ratio = levels[1] / levels[0];
    assert!(
        (0.7..=1.4).contains(&ratio),
        "equal volumes: ratio {ratio} from {levels:?}"
    );
}

#[test]
fn audio_only_and_video_only_inputs() {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, Some(440.0));
    let _b = rig.solid("b", GREEN, Some(660.0));
    let probe = rig.probe("out");
    rig.put(
        "m",
        &spec(
            "#0000FF",
            vec![
                json!({"id": "a", "source": {"stream_id": "a"}, "content": "audio", "rect": rect(0, 0, 320, 180)}),
                json!({"id": "b", "source": {"stream_id": "b"}, "content": "video", "rect": rect(320, 0, 320, 180)}),
            ],
        ),
    );
    // A is heard but not seen; B is seen but not heard.
    expect_pixels(
        &probe,
        &[(100, 100, BLUE), (480, 90, GREEN)],
        Duration::from_secs(25),
    );
    wait_levels(&probe, &[440.0, 660.0], Duration::from_secs(10), |l| {
        l[0] > 0.02 && l[1] < 0.1 * l[0]
    });
}

#[test]
fn audio_only_output() {
    let rig = Rig::start();
    let _a = rig.solid("a", RED, Some(440.0));
    let _b = rig.solid("b", GREEN, Some(660.0));
    let probe = rig.probe("out");
    let mut mix = spec(
        "#0000FF",
        vec![
            json!({"id": "a", "source": {"stream_id": "a"}, "rect": rect(0, 0, 320, 180), "volume": 100}),
            json!({"id": "b", "source": {"stream_id": "b"}, "rect": rect(320, 0, 320, 180), "volume": 200}),
        ],
    );
    mix["outputs"][0]["video"] = Value::Null;
    let body = rig.put("m", &mix);
    assert_eq!(body["spec"]["outputs"][0]["video"], Value::Null, "{body}");
    // Both tones, each at its volume: the publishers' sine has amplitude 0.1.
    let levels = wait_steady_levels(&probe, &[440.0, 660.0], Duration::from_secs(25), |l| {
        l[0] > 0.02 && l[1] > 0.02
    });
    assert!(
        (0.08..=0.12).contains(&levels[0]),
        "440 Hz at 100 %: {levels:?}"
    );
    let ratio = levels[1] / levels[0];
    assert!(
        (1.6..=2.4).contains(&ratio),
        "200 % vs 100 %: ratio {ratio} from {levels:?}"
    );
    // No video track at all, not merely no frame yet.
    assert_eq!(
        probe.wait_streams(Duration::from_secs(20)),
        Some(vec!["audio/x-raw".to_string()]),
        "errors: {:?}",
        probe.errors()
    );
    assert_eq!(probe.frame_count(), 0);
    let status = rig.wait_status("m", Duration::from_secs(10), |s| {
        s["outputs"][0]["state"] == "live"
    });
    assert_eq!(status["output_fps"], 0.0, "{status}");

    // Giving the output a video track restarts the mix, which now has a picture.
    mix["outputs"][0].as_object_mut().unwrap().remove("video");
    assert_eq!(rig.put("m", &mix)["applied"], "restarted");
    expect_pixels(
        &probe,
        &[(100, 90, RED), (480, 90, GREEN), (320, 300, BLUE)],
        Duration::from_secs(25),
    );
}
