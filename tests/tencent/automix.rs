//! Push-URL auto-mix through nginx-rtmp's real `on_publish` / `on_publish_done` callbacks.

use super::*;

#[test]
fn streams_published_with_mixv2_are_mixed_until_one_stops() {
    init();
    let port = free_port();
    let nginx = Nginx::start_with_callbacks(port);
    let mut config = Tessera::config_for(&nginx);
    config.tencent.input_check_ms = 3_000;
    let tessera = Tessera::start_at(config, port);
    let rig = Rig { tessera, nginx };

    let publish = |stream: &str, query: &str, rgb: u32, tone: f64, w: u32, h: u32| {
        Publisher::start(
            &format!("{}?{query}", rig.nginx.rtmp_url("live", stream)),
            PublishOpts {
                pattern: Pattern::Solid(rgb),
                tone_hz: Some(tone),
                width: w,
                height: h,
                ..PublishOpts::default()
            },
        )
    };
    let probe = rig.probe("anchor");
    let big = publish(
        "anchor",
        "mixv2=t_id:1;session_id:room_7;layer:b",
        RED,
        440.0,
        640,
        360,
    );
    // A stream without auto-mix parameters changes nothing.
    let _other = publish("bystander", "foo=bar", BLUE, 660.0, 320, 180);
    // The older spelling for the small one.
    let small = publish(
        "guest",
        "mix=layer:s;session_id:room_7;t_id:1",
        GREEN,
        1000.0,
        320,
        180,
    );

    // Template 10 on the big stream's 640×360: the small one at the bottom right.
    let cell = tessera::api::tencent::templates::place(10, 640, 360).unwrap()[1];
    let (cx, cy) = (
        cell.x as u32 + cell.width / 2,
        cell.y as u32 + cell.height / 2,
    );
    expect_pixels(&probe, &[(100, 100, RED), (cx, cy, GREEN)], T);
    // Both tones, over a second in which they are heard: the bystander's is not.
    let levels = wait_steady_levels(&probe, &[440.0, 1000.0, 660.0], T, |l| {
        l[0] > 0.01 && l[1] > 0.01
    });
    assert!(levels[2] < 0.003, "the bystander is heard: {levels:?}");
    assert!(rig.session_spec("room_7").is_some());

    // Either stream stopping ends the session.
    small.stop();
    assert!(
        wait_for(T, || rig.session_spec("room_7").is_none()),
        "the auto-mix did not end"
    );
    assert!(wait_for(T, || !rig.nginx.is_publishing("mix", "anchor")));
    drop(big);
}

/// SRS's hooks (JSON, answered `{"code":0}`), here posted as SRS would, with `t_id:2`: sound only.
#[test]
fn srs_hooks_start_and_end_an_audio_only_auto_mix() {
    let rig = rig();
    let _a = rig.live("srs_big", RED, Some(440.0));
    let _b = rig.live("srs_small", GREEN, Some(1000.0));
    let probe = rig.probe("srs_big");
    let hook = |path: &str, stream: &str, param: &str| {
        let body = serde_json::json!({
            "server_id": "vid-0xk989d", "action": path.rsplit('/').next().unwrap(), "client_id": "341w361a",
            "ip": "127.0.0.1", "vhost": "__defaultVhost__", "app": "live", "tcUrl": "rtmp://127.0.0.1/live",
            "stream": stream, "param": param, "stream_url": format!("/live/{stream}"), "stream_id": "vid-124q9y3"
        });
        let (status, answer) = rig.tessera.post(path, &body);
        assert_eq!(
            (status, answer.clone()),
            (200, serde_json::json!({"code": 0}))
        );
    };
    hook(
        "/callbacks/srs/on_publish",
        "srs_big",
        "?mixv2=t_id:2;session_id:srs_1;layer:b",
    );
    hook(
        "/callbacks/srs/on_publish",
        "srs_small",
        "?mixv2=t_id:2;session_id:srs_1;layer:s",
    );
    assert!(wait_for(T, || rig.session_spec("srs_1").is_some()));
    assert!(rig.session_spec("srs_1").unwrap()["outputs"][0]["video"].is_null());
    wait_levels(&probe, &[440.0, 1000.0], T, |l| l[0] > 0.01 && l[1] > 0.01);
    assert_eq!(
        probe.frame_count(),
        0,
        "an audio-only auto-mix has no video"
    );
    hook("/callbacks/srs/on_unpublish", "srs_small", "");
    assert!(wait_for(T, || rig.session_spec("srs_1").is_none()));
}
