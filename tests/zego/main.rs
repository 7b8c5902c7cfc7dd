//! The ZEGO dialect end to end: requests signed the way ZEGO's samples sign them, the real engine, nginx-rtmp,
//! and the decoded output checked for the picture and sound the request asked for.

#[path = "../common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(25);

/// A rig with ZEGO's dialect on, as the tests sign.
fn rig() -> Rig {
    rig_with(|_| {})
}

fn rig_with(adjust: impl FnOnce(&mut tessera::Config)) -> Rig {
    Rig::start_with(|config| {
        adjust(config);
        config.zego.app_id = ZEGO_APP;
        config.zego.server_secret = ZEGO_SECRET.into();
        config.zego.play_flv_url = "http://127.0.0.1/mix/{stream_id}.flv".into();
    })
}

/// ZEGO's calls, signed as ZEGO's samples sign them (tests/common/sign.rs).
impl Rig {
    /// The signed common query parameters, as ZEGO's samples build them.
    fn query(&self, action: &str, nonce: &str) -> String {
        format!(
            "/?{}&IsTest=false",
            zego_query_with(ZEGO_APP, ZEGO_SECRET, action, nonce)
        )
    }

    /// Sends a signed request and returns ZEGO's envelope (asserting HTTP 200 + JSON).
    fn call(&self, method: &str, action_and_query: &str, body: Option<&Value>) -> Value {
        let nonce = zego_nonce();
        let (action, extra) = action_and_query
            .split_once('&')
            .unwrap_or((action_and_query, ""));
        let mut path = self.query(action, &nonce);
        if !extra.is_empty() {
            path = format!("{path}&{extra}");
        }
        self.raw(
            method,
            &path,
            body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        )
    }

    fn raw(&self, method: &str, path: &str, body: Vec<u8>) -> Value {
        let (status, headers, bytes) =
            self.tessera
                .request_raw(method, path, &[("content-type", "application/json")], body);
        assert_eq!(status, 200, "ZEGO answers are HTTP 200");
        assert!(headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"));
        let v: Value = serde_json::from_slice(&bytes).expect("JSON envelope");
        assert!(
            v["Code"].is_u64() && v["Message"].is_string() && v["RequestId"].is_string(),
            "{v}"
        );
        v
    }

    fn start_mix(&self, body: &Value) -> Value {
        self.call("POST", "StartMix", Some(body))
    }
}

fn code(v: &Value) -> u64 {
    v["Code"].as_u64().unwrap()
}

/// Two inputs and one 360×360 output, as in ZEGO's samples.
fn sample_body(task: &str, sequence: i64) -> Value {
    json!({
        "TaskId": task, "Sequence": sequence, "UserId": "123",
        "MixInput": [
            {"StreamId": "stream1", "RectInfo": {"Top": 70, "Bottom": 160, "Left": 100, "Right": 260}},
            {"StreamId": "stream2", "RectInfo": {"Top": 200, "Bottom": 290, "Left": 100, "Right": 260}}
        ],
        "MixOutput": [{"StreamId": "stream3", "Width": 360, "Height": 360, "VideoBitrate": 12000, "Fps": 15}]
    })
}

#[test]
fn documented_python_sample_gives_its_picture() {
    let rig = rig();
    let _a = rig.solid("stream1", RED, None);
    let _b = rig.solid("stream2", GREEN, None);
    let probe = rig.probe("stream3");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/zego/start_mix_sample.py");
    let out = std::process::Command::new("/usr/bin/python3")
        .arg(&script)
        .arg(format!("{}/", rig.tessera.base))
        .arg(ZEGO_APP.to_string())
        .arg(ZEGO_SECRET)
        .output()
        .expect("run /usr/bin/python3 (scripts/setup installs python3-requests)");
    let text = String::from_utf8_lossy(&out.stdout);
    let resp: Value = serde_json::from_str(text.trim())
        .unwrap_or_else(|_| panic!("{text}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(code(&resp), 0, "{resp}");
    assert_eq!(resp["Data"]["UserId"], "123");
    assert_eq!(resp["Data"]["Sequence"], 123);
    let play = &resp["Data"]["PlayInfo"][0];
    assert_eq!(play["StreamId"], "stream3");
    assert_eq!(play["RTMP"], rig.nginx.rtmp_url("mix", "stream3"));
    assert_eq!(play["FLV"], "http://127.0.0.1/mix/stream3.flv");
    // Each RectInfo is filled by its stream; everything else is black.
    expect_pixels(
        &probe,
        &[
            (180, 115, RED),
            (180, 245, GREEN),
            (50, 50, 0),
            (300, 330, 0),
            (180, 180, 0),
        ],
        T,
    );
}

#[test]
fn update_by_task_id_sequence_owner_stop_and_task_info() {
    let rig = rig();
    let _a = rig.solid("stream1", RED, None);
    let _b = rig.solid("stream2", GREEN, None);
    let probe = rig.probe("stream3");
    assert_eq!(code(&rig.start_mix(&sample_body("t1", 1))), 0);
    expect_pixels(&probe, &[(180, 115, RED)], T);
    // Update by TaskId: stream1 moves to the top-left corner, on the same output.
    let mut moved = sample_body("t1", 2);
    moved["MixInput"][0]["RectInfo"] = json!({"Top": 0, "Bottom": 60, "Left": 0, "Right": 80});
    assert_eq!(code(&rig.start_mix(&moved)), 0);
    expect_pixels(
        &probe,
        &[(40, 30, RED), (180, 115, 0), (180, 245, GREEN)],
        Duration::from_secs(5),
    );
    // A lower Sequence is refused and not applied: the next second of output (15 frames) keeps the layout.
    let stale = sample_body("t1", 1);
    let r = rig.start_mix(&stale);
    assert_eq!(code(&r), 110200002, "{r}");
    probe.watch(&[(40, 30), (180, 115)]);
    probe.let_frames_pass(15, T, "the output stalled after a refused update");
    assert_watched(&probe, &[RED, 0], "after a refused update");
    // Another user may neither update nor stop it.
    let mut other = sample_body("t1", 3);
    other["UserId"] = "456".into();
    assert_eq!(code(&rig.start_mix(&other)), 110200160);
    assert_eq!(
        code(&rig.call(
            "POST",
            "StopMix",
            Some(&json!({"TaskId": "t1", "UserId": "456"}))
        )),
        110200160
    );

    let info = rig.call("GET", "GetMixTaskInfo&TaskId=t1", None);
    assert_eq!(code(&info), 0, "{info}");
    assert_eq!(info["Data"]["TaskId"], "t1");
    assert!(info["Data"]["MixDuration"].as_u64().unwrap() >= 1, "{info}");

    assert_eq!(
        code(&rig.call(
            "POST",
            "StopMix",
            Some(&json!({"TaskId": "t1", "UserId": "123", "Sequence": 4}))
        )),
        0
    );
    assert_eq!(
        code(&rig.call("GET", "GetMixTaskInfo&TaskId=t1", None)),
        110209001
    );
    assert_eq!(
        code(&rig.call(
            "POST",
            "StopMix",
            Some(&json!({"TaskId": "t1", "UserId": "123"}))
        )),
        110209001
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while rig.nginx.is_publishing("mix", "stream3") {
        assert!(
            Instant::now() < deadline,
            "output still published after StopMix"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn corner_radius_render_mode_label_volume_watermark_and_background() {
    let rig = rig();
    let _a = rig.solid("stream1", RED, Some(440.0));
    let _b = rig.solid("stream2", GREEN, Some(660.0));
    let probe = rig.probe("stream3");
    write_png(&rig.nginx.http_dir().join("wm.png"), 0xFFFF00FF, 40, 40);
    let body = json!({
        "TaskId": "t2", "Sequence": 1, "UserId": "u",
        "BackGroundColorHex": "0x0000FF00",
        "WaterMark": {"Image": rig.nginx.http_url("wm.png"), "RectInfo": {"Top": 300, "Left": 300, "Bottom": 350, "Right": 350}},
        "MixInput": [
            {"StreamId": "stream1", "RectInfo": {"Top": 20, "Left": 20, "Bottom": 140, "Right": 180, "CornerRadius": 30},
             "Label": {"Text": "WWWW", "Left": 10, "Top": 10, "Font": {"FontSize": 40, "FontColor": 16777215}}},
            {"StreamId": "stream2", "RenderMode": 1, "Volume": 0,
             "RectInfo": {"Top": 180, "Left": 200, "Bottom": 340, "Right": 280}}
        ],
        "MixOutput": [{"StreamId": "stream3", "Width": 360, "Height": 360, "VideoBitrate": 800000, "Fps": 15, "SoundChannel": 2}]
    });
    assert_eq!(code(&rig.start_mix(&body)), 0);
    let frame = expect_pixels(
        &probe,
        &[
            // Blue background; the corner of stream1's rect is rounded off.
            (5, 5, BLUE),
            (22, 22, BLUE),
            (100, 120, RED),
            // RenderMode 1: 16:9 into 80×160 shows the whole picture, 80×44, centred: background above and below.
            (240, 190, BLUE),
            (240, 260, GREEN),
            (240, 330, BLUE),
            (325, 325, MAGENTA),
        ],
        T,
    );
    // The label: white text inside stream1's rect, near its top-left.
    let white = (30..120)
        .flat_map(|x| (30..75).map(move |y| (x, y)))
        .filter(|&(x, y)| color_close(frame.pixel(x, y), 0xFFFFFF, 60))
        .count();
    assert!(white > 50, "label not visible: {white} white pixels");
    // Volume 0 silences stream2's tone; stream1's is there: judged from a second of audio after the picture on,
    // over a second in which stream1's tone is heard.
    probe.let_audio_pass(Duration::from_secs(1), T);
    let levels = wait_steady_levels(&probe, &[440.0, 660.0], T, |l| l[0] > 0.02);
    let (a, b) = (levels[0], levels[1]);
    assert!(a > 0.02 && b < 0.1 * a, "440 Hz {a}, 660 Hz {b}");
}

#[test]
fn idle_task_ends_by_itself() {
    let rig = rig();
    let a = rig.solid("stream1", RED, None);
    let mut body = sample_body("t3", 1);
    body["MixInput"].as_array_mut().unwrap().truncate(1);
    body["MaxIdleTime"] = 2.into();
    assert_eq!(code(&rig.start_mix(&body)), 0);
    assert_eq!(code(&rig.call("GET", "GetMixTaskInfo&TaskId=t3", None)), 0);
    // The task has its input before it loses it.
    rig.wait_status("zego-t3", T, |s| s["inputs"][0]["state"] == "live");
    a.stop();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let c = code(&rig.call("GET", "GetMixTaskInfo&TaskId=t3", None));
        if c == 110209001 {
            break;
        }
        assert!(Instant::now() < deadline, "idle task still running");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn auth_replay_and_request_errors() {
    let rig = rig();
    let _a = rig.solid("stream1", RED, None);
    // The same signed query twice: the second is a replay.
    let path = rig.query("GetMixTaskInfo", "feedfacecafebeef") + "&TaskId=none";
    assert_eq!(code(&rig.raw("GET", &path, vec![])), 110209001);
    let replay = rig.raw("GET", &path, vec![]);
    assert_eq!(code(&replay), 100000005, "{replay}");
    // Unsigned, wrongly signed, unknown actions.
    assert_eq!(
        code(&rig.raw("GET", "/?Action=GetMixTaskInfo", vec![])),
        100000001
    );
    let bad = rig
        .query("StartMix", "0123456789abcdef")
        .replace("Signature=", "Signature=0");
    assert_eq!(code(&rig.raw("POST", &bad, b"{}".to_vec())), 100000005);
    assert_eq!(code(&rig.call("POST", "Nope", Some(&json!({})))), 100000007);
    assert_eq!(code(&rig.call("POST", "", Some(&json!({})))), 100000006);
    // Bodies.
    let nonce = zego_nonce();
    assert_eq!(
        code(&rig.raw(
            "POST",
            &rig.query("StartMix", &nonce),
            b"{not json".to_vec()
        )),
        110200004
    );
    // An input that cannot be pulled.
    let mut body = sample_body("t4", 1);
    body["MixInput"][1]["StreamId"] = "never-published".into();
    let r = rig.start_mix(&body);
    assert_eq!(code(&r), 110200150, "{r}");
    assert!(r["Message"].as_str().unwrap().contains("never-published"));
    assert_eq!(
        code(&rig.call("GET", "GetMixTaskInfo&TaskId=t4", None)),
        110209001
    );
    // Rules with their own codes reach the caller through HTTP too.
    let mut body = sample_body("t5", 1);
    body["MixOutput"][0]["Width"] = 361.into();
    assert_eq!(code(&rig.start_mix(&body)), 110200161);
    // Images: one that is not there, one over 1 MB (noise does not compress).
    let mut body = sample_body("t5", 1);
    body["MixInput"].as_array_mut().unwrap().truncate(1);
    body["BackgroundImage"] = rig.nginx.http_url("missing.png").into();
    let r = rig.start_mix(&body);
    assert_eq!(code(&r), 110200142, "{r}");
    let big = rig.nginx.http_dir().join("big.png");
    write_png_pattern(&big, "snow", 1600, 1200);
    assert!(std::fs::metadata(&big).unwrap().len() > 1024 * 1024);
    body["BackgroundImage"] = rig.nginx.http_url("big.png").into();
    let r = rig.start_mix(&body);
    assert_eq!(code(&r), 110200142, "{r}");
    assert!(r["Message"].as_str().unwrap().contains("larger"), "{r}");
    assert_eq!(
        code(&rig.call("GET", "GetMixTaskInfo&TaskId=t5", None)),
        110209001
    );
}

#[test]
fn mp3_output_carries_the_mix() {
    let rig = rig();
    let _a = rig.solid("stream1", RED, Some(440.0));
    let probe = rig.probe("stream3");
    let mut body = sample_body("t7", 1);
    body["MixInput"].as_array_mut().unwrap().truncate(1);
    body["MixOutput"][0]["AudioCodec"] = 2.into();
    body["MixOutput"][0]["AudioBitrate"] = 64000.into();
    assert_eq!(code(&rig.start_mix(&body)), 0);
    expect_pixels(&probe, &[(180, 115, RED)], T);
    // The 440 Hz tone in the MP3 output.
    wait_levels(&probe, &[440.0], Duration::from_secs(10), |l| l[0] > 0.02);
}

#[test]
fn user_data_and_sound_levels_are_carried_as_sei() {
    let rig = rig();
    let _a = rig.solid("stream1", RED, Some(440.0));
    let _b = rig.solid("stream2", GREEN, None);
    let mut body = sample_body("t6", 1);
    body["UserData"] = "aGVsbG8gdGVzc2VyYQ==".into(); // "hello tessera"
    body["SoundLevel"] = 1.into();
    body["MixInput"][0]["SoundLevelId"] = 11.into();
    body["MixInput"][1]["SoundLevelId"] = 12.into();
    let r = rig.start_mix(&body);
    assert_eq!(code(&r), 0, "{r}");
    let url = rig.nginx.rtmp_url("mix", "stream3");
    const USER: &[u8; 16] = b"tessera-userdata";
    const LEVELS: &[u8; 16] = b"tessera-soundlvl";
    // Levels settle once both inputs deliver audio: the tone is loud, the silent input is 0.
    let levels_ok = |m: &[SeiMessage]| {
        m.iter()
            .rev()
            .find(|(u, _)| u == LEVELS)
            .is_some_and(|(_, d)| {
                let v: Value = serde_json::from_slice(d).unwrap();
                let level = |id: u64| {
                    v["levels"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|e| e["id"] == id)
                        .map(|e| e["level"].as_u64().unwrap())
                };
                level(11).is_some_and(|l| l > 30) && level(12) == Some(0)
            })
    };
    let seen = collect_sei(&url, T, |m| {
        m.iter().any(|(u, _)| u == USER) && levels_ok(m)
    });
    let user: Vec<&Vec<u8>> = seen
        .iter()
        .filter(|(u, _)| u == USER)
        .map(|(_, d)| d)
        .collect();
    assert!(
        !user.is_empty(),
        "no UserData SEI in {} messages",
        seen.len()
    );
    assert_eq!(user[0].as_slice(), b"hello tessera");
    assert!(
        levels_ok(&seen),
        "sound levels never settled: {:?}",
        seen.iter()
            .rev()
            .find(|(u, _)| u == LEVELS)
            .map(|(_, d)| String::from_utf8_lossy(d).to_string())
    );
    // UserData changes live.
    body["Sequence"] = 2.into();
    body["UserData"] = "Y2hhbmdlZA==".into(); // "changed"
    assert_eq!(code(&rig.start_mix(&body)), 0);
    let seen = collect_sei(&url, Duration::from_secs(10), |m| {
        m.iter().any(|(u, d)| u == USER && d == b"changed")
    });
    let users: Vec<String> = seen
        .iter()
        .filter(|(u, _)| u == USER)
        .map(|(_, d)| String::from_utf8_lossy(d).to_string())
        .collect();
    assert!(
        users.iter().any(|d| d == "changed"),
        "updated UserData not seen in {} messages: {users:?}",
        seen.len()
    );
}

#[test]
fn a_task_the_node_cannot_take_fails_with_110200151() {
    let rig = rig_with(|c| c.engine.max_mixes = Some(1));
    let _a = rig.solid("stream1", RED, None);
    let mut body = sample_body("t8", 1);
    body["MixInput"].as_array_mut().unwrap().truncate(1);
    assert_eq!(code(&rig.start_mix(&body)), 0);
    let mut second = body.clone();
    second["TaskId"] = "t9".into();
    second["MixOutput"][0]["StreamId"] = "stream4".into();
    let r = rig.start_mix(&second);
    assert_eq!(code(&r), 110200151, "{r}");
    assert_eq!(
        code(&rig.call("GET", "GetMixTaskInfo&TaskId=t9", None)),
        110209001
    );
    assert_eq!(code(&rig.call("GET", "GetMixTaskInfo&TaskId=t8", None)), 0);
}

/// Every documented code, through HTTP against the running server: each row changes one thing in a valid request.
#[test]
fn every_error_code_over_http() {
    let rig = rig();
    let _a = rig.solid("stream1", RED, None);
    let _b = rig.solid("stream2", GREEN, None);
    type Edit = fn(&mut Value);
    let rows: Vec<(u64, Edit)> = vec![
        (110200002, |j| j["MixInput"][0]["Volume"] = 300.into()),
        (110200140, |j| {
            j["MixInput"][1]["StreamId"] = "stream3".into()
        }),
        (110200141, |j| j["BackgroundImage"] = "ftp://h/x.png".into()),
        (110200156, |j| j["MixOutput"][0]["VideoEncId"] = 2.into()),
        (110200156, |j| j["MixOutput"][0]["AudioCodec"] = 3.into()),
        (110200158, |j| {
            let i = j["MixInput"][0].clone();
            for n in 0..8 {
                let mut i = i.clone();
                i["StreamId"] = format!("extra{n}").into();
                j["MixInput"].as_array_mut().unwrap().push(i);
            }
        }),
        (110200161, |j| j["MixOutput"][0]["Height"] = 3002.into()),
        (
            110200170,
            |j| {
                j["WaterMark"] =
                    json!({"RectInfo": {"Top": 0, "Left": 0, "Bottom": 10, "Right": 10}})
            },
        ),
        (110200171, |j| {
            j["WaterMark"] = json!({"Image": "http://127.0.0.1:1/w.png"})
        }),
        (110200175, |j| {
            j["MixInput"][1]["StreamId"] = "stream1".into()
        }),
        (110200176, |j| {
            let o = j["MixOutput"][0].clone();
            j["MixOutput"].as_array_mut().unwrap().push(o);
        }),
        (110200178, |j| {
            for s in ["o1", "o2", "o3"] {
                let mut o = j["MixOutput"][0].clone();
                o["StreamId"] = s.into();
                j["MixOutput"].as_array_mut().unwrap().push(o);
            }
        }),
        (110200179, |j| {
            j["MixInput"][0]["Label"] = json!({"Text": "x".repeat(301)})
        }),
    ];
    for (n, (want, edit)) in rows.iter().enumerate() {
        let mut body = sample_body(&format!("e{n}"), 1);
        edit(&mut body);
        let r = rig.start_mix(&body);
        assert_eq!(code(&r), *want, "row {n}: {r}");
        assert!(!r["Message"].as_str().unwrap().is_empty());
    }
    // An output another task already publishes.
    assert_eq!(code(&rig.start_mix(&sample_body("owner", 1))), 0);
    let r = rig.start_mix(&sample_body("intruder", 1));
    assert_eq!(code(&r), 110200176, "{r}");
    assert_eq!(
        code(&rig.call(
            "POST",
            "StopMix",
            Some(&json!({"TaskId": "owner", "UserId": "123"}))
        )),
        0
    );
    // The common parameters, each broken in turn.
    let good = rig.query("GetMixTaskInfo", "00112233aabbccdd") + "&TaskId=x";
    let swap = |key: &str, value: &str| -> String {
        good.split('&')
            .map(|kv| {
                if kv.starts_with(&format!("{key}=")) {
                    format!("{key}={value}")
                } else {
                    kv.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    };
    for (want, path) in [
        (100000001, swap("AppId", "abc")),
        (100000002, swap("Timestamp", "")),
        (100000003, swap("Timestamp", "yesterday")),
        (100000004, swap("Timestamp", "1000")),
        (
            100000005,
            swap("Signature", "0123456789abcdef0123456789abcdef"),
        ),
        (100000006, swap("/?Action", "")),
        (100000008, swap("SignatureNonce", "")),
        (100000009, swap("Signature", "")),
        (100000013, swap("SignatureVersion", "")),
        (100000014, swap("SignatureVersion", "1.0")),
    ] {
        let r = rig.raw("GET", &path, vec![]);
        assert_eq!(code(&r), want, "{path}: {r}");
    }
    // Nothing of the refused requests runs.
    let (_, list) = rig.tessera.get("/v1/mixes");
    assert_eq!(list["mixes"].as_array().unwrap().len(), 0, "{list}");
}
