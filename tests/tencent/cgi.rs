//! The legacy `Mix_StreamV2` CGI.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;

fn bg(id: &str) -> Value {
    json!({"input_stream_id": id, "layout_params": {"image_layer": 1}})
}

fn small(id: &str, layer: i64, w: f64, h: f64, x: f64, y: f64) -> Value {
    json!({"input_stream_id": id, "layout_params": {
        "image_layer": layer, "image_width": w, "image_height": h, "location_x": x, "location_y": y}})
}

#[test]
fn quickstart_mix_is_drawn_heard_updated_and_cancelled() {
    let rig = rig();
    let _big = rig.live("big", RED, Some(440.0));
    let _green = rig.live_sized("co_a", GREEN, Some(1000.0), 320, 180);
    let _blue = rig.live_sized("co_b", BLUE, None, 320, 180);
    let probe = rig.probe("big");

    // The quickstart's shape: session and output are the big anchor's stream (output type 0 by default); one
    // small window in pixels, one in fractions of the background.
    let body = cgi_body(start_para(
        "big",
        "big",
        json!([
            bg("big"),
            small("co_a", 2, 160.0, 90.0, 400.0, 200.0),
            small("co_b", 3, 0.25, 0.25, 0.05, 0.05)
        ]),
    ));
    let answer = rig.cgi(&body);
    assert_eq!(code(&answer), 0, "{answer}");
    assert_eq!(answer["message"], "Success!");
    assert_eq!(answer["event_id"], body["eventId"]);
    assert_eq!(answer["timestamp"], body["timestamp"]);

    // The canvas is the background stream's size (640×360); (0.05, 0.05, 0.25, 0.25) is (32, 18, 160, 90).
    let frame = expect_pixels(
        &probe,
        &[
            (100, 300, RED),
            (480, 245, GREEN),
            (112, 63, BLUE),
            (620, 20, RED),
        ],
        T,
    );
    assert_eq!((frame.width, frame.height), (640, 360));
    let spec = rig.session_spec("big").unwrap();
    assert_eq!(spec["outputs"][0]["target"]["stream_id"], "big");
    // The background's tone and the co-host's.
    wait_levels(&probe, &[440.0, 1000.0], T, |l| l[0] > 0.01 && l[1] > 0.01);

    // The same session and output id again: the running mix changes layout in place.
    let moved = cgi_body(start_para(
        "big",
        "big",
        json!([
            bg("big"),
            small("co_a", 2, 160.0, 90.0, 40.0, 220.0),
            small("co_b", 3, 0.25, 0.25, 0.05, 0.05)
        ]),
    ));
    assert_eq!(code(&rig.cgi(&moved)), 0);
    expect_pixels(&probe, &[(120, 265, GREEN), (480, 245, RED)], T);

    // Another output id for the session: -508, and the mix is untouched.
    let other = cgi_body(start_para(
        "big",
        "co_a",
        json!([bg("big"), bg_as("co_a", 2)]),
    ));
    assert_eq!(code(&rig.cgi(&other)), -508);
    assert_eq!(
        rig.session_spec("big").unwrap()["inputs"][1]["rect"]["x"],
        40
    );

    // Cancel names the session's output; a wrong one is -31003, a second cancel -30300.
    assert_eq!(
        code(&rig.cgi(&cgi_body(cancel_para("big", "co_a")))),
        -31003
    );
    assert!(rig.session_spec("big").is_some());
    assert_eq!(code(&rig.cgi(&cgi_body(cancel_para("big", "big")))), 0);
    assert!(rig.session_spec("big").is_none());
    assert!(wait_for(T, || !rig.nginx.is_publishing("mix", "big")));
    assert_eq!(code(&rig.cgi(&cgi_body(cancel_para("big", "big")))), -30300);

    // The quickstart's other way to end: a list with only the background.
    assert_eq!(code(&rig.cgi(&body)), 0);
    assert!(rig.session_spec("big").is_some());
    assert_eq!(
        code(&rig.cgi(&cgi_body(start_para("big", "big", json!([bg("big")]))))),
        0
    );
    assert!(rig.session_spec("big").is_none());
}

/// A full-size input at `layer` (no size given: the stream's own size).
fn bg_as(id: &str, layer: i64) -> Value {
    json!({"input_stream_id": id, "layout_params": {"image_layer": layer}})
}

#[test]
fn every_error_code_on_its_trigger_and_a_refusal_changes_nothing() {
    let rig = rig_with(|c| c.tencent.input_check_ms = 1_500);
    let _a = rig.live("e_a", RED, None);
    let _b = rig.live_sized("e_b", GREEN, None, 320, 180);
    let ok = || json!([bg("e_a"), small("e_b", 2, 160.0, 90.0, 400.0, 200.0)]);
    // A running session, which no refusal below may change.
    let run = |inputs: Value| {
        let mut para = start_para("run", "run_out", inputs);
        para["output_stream_type"] = json!(1);
        cgi_body(para)
    };
    assert_eq!(code(&rig.cgi(&run(ok()))), 0);
    let before = rig.session_spec("run").unwrap();

    let start =
        |session: &str, output: &str, inputs: Value| cgi_body(start_para(session, output, inputs));
    let with = |mut body: Value, f: &dyn Fn(&mut Value)| {
        f(&mut body);
        body
    };
    let many: Vec<Value> = (1..=17).map(|l| bg_as(&format!("s{l}"), l)).collect();
    let cases: Vec<(&str, Value, i64)> = vec![
        (
            "wrong interfaceName",
            with(start("x", "e_a", ok()), &|b| {
                b["interface"]["interfaceName"] = json!("Mix_Stream")
            }),
            -1,
        ),
        (
            "wrong para.interface",
            with(start("x", "e_a", ok()), &|b| {
                b["interface"]["para"]["interface"] = json!("mix_streamv2.nope")
            }),
            -1,
        ),
        ("empty input list", start("x", "e_a", json!([])), -1),
        (
            "unknown field",
            with(start("x", "e_a", ok()), &|b| {
                b["interface"]["para"]["output_stream_widht"] = json!(1)
            }),
            -1,
        ),
        (
            "app_id 0",
            with(start("x", "e_a", ok()), &|b| {
                b["interface"]["para"]["app_id"] = json!(0)
            }),
            -2,
        ),
        (
            "eventId 0",
            with(start("x", "e_a", ok()), &|b| b["eventId"] = json!(0)),
            -2,
        ),
        (
            "small window past the background",
            start(
                "x",
                "e_a",
                json!([bg("e_a"), small("e_b", 2, 160.0, 90.0, 600.0, 200.0)]),
            ),
            -2,
        ),
        ("17 inputs", start("x", "e_a", json!(many)), -3),
        (
            "no layout_params",
            start("x", "e_a", json!([bg("e_a"), {"input_stream_id": "e_b"}])),
            -4,
        ),
        (
            "input type 1",
            start(
                "x",
                "e_a",
                json!([bg("e_a"), {"input_stream_id": "e_b", "layout_params": {"image_layer": 2, "input_type": 1}}]),
            ),
            -4,
        ),
        (
            "width 3001",
            start(
                "x",
                "e_a",
                json!([bg("e_a"), small("e_b", 2, 3001.0, 90.0, 0.0, 0.0)]),
            ),
            -4,
        ),
        (
            "bad stream id",
            start("x", "e_a", json!([bg("e_a"), bg_as("e-b", 2)])),
            -4,
        ),
        (
            "duplicate layer",
            start("x", "e_a", json!([bg("e_a"), bg_as("e_b", 1)])),
            -11,
        ),
        (
            "layer 17",
            start("x", "e_a", json!([bg("e_a"), bg_as("e_b", 17)])),
            -11,
        ),
        (
            "no layer",
            start(
                "x",
                "e_a",
                json!([bg("e_a"), {"input_stream_id": "e_b", "layout_params": {}}]),
            ),
            -11,
        ),
        (
            "no background",
            start("x", "e_a", json!([bg_as("e_a", 2), bg_as("e_b", 3)])),
            -11,
        ),
        (
            "template for 2 with 3 inputs",
            with(
                start(
                    "x",
                    "e_a",
                    json!([bg("e_a"), bg_as("e_b", 2), bg_as("e_c", 3)]),
                ),
                &|b| b["interface"]["para"]["mix_stream_template_id"] = json!(10),
            ),
            -20,
        ),
        (
            "unknown template",
            with(start("x", "e_a", ok()), &|b| {
                b["interface"]["para"]["mix_stream_template_id"] = json!(11)
            }),
            -20,
        ),
        (
            "bad colour",
            start(
                "x",
                "e_a",
                json!([{"input_stream_id": "c", "layout_params": {"image_layer": 1, "input_type": 3, "image_width": 640, "image_height": 360, "color": "red"}}, bg_as("e_a", 2)]),
            ),
            -20,
        ),
        (
            "one input, no session",
            start("x", "e_a", json!([bg("e_a")])),
            -21,
        ),
        (
            "canvas without size",
            with(
                start(
                    "x",
                    "c_out",
                    json!([{"input_stream_id": "c", "layout_params": {"image_layer": 1, "input_type": 3}}, bg_as("e_a", 2)]),
                ),
                &|b| b["interface"]["para"]["output_stream_type"] = json!(1),
            ),
            -28,
        ),
        (
            "crop outside",
            start(
                "x",
                "e_a",
                json!([bg("e_a"), {"input_stream_id": "e_b", "layout_params": {"image_layer": 2}, "crop_params": {"crop_x": 200, "crop_width": 200}}]),
            ),
            -29,
        ),
        (
            "picture without id",
            start(
                "x",
                "e_a",
                json!([bg("e_a"), {"input_stream_id": "p", "layout_params": {"image_layer": 2, "input_type": 2}}]),
            ),
            -33,
        ),
        (
            "unknown picture",
            start(
                "x",
                "e_a",
                json!([bg("e_a"), {"input_stream_id": "p", "layout_params": {"image_layer": 2, "input_type": 2, "picture_id": 99}}]),
            ),
            -34,
        ),
        (
            "type 0, output not an input",
            start("x", "new_out", ok()),
            -111,
        ),
        (
            "type 1, output is an input",
            with(start("x", "e_a", ok()), &|b| {
                b["interface"]["para"]["output_stream_type"] = json!(1)
            }),
            -111,
        ),
        (
            "output of another session",
            with(start("other", "run_out", ok()), &|b| {
                b["interface"]["para"]["output_stream_type"] = json!(1)
            }),
            -300,
        ),
        (
            "input not published",
            start("x", "e_a", json!([bg("e_a"), bg_as("nobody", 2)])),
            -505,
        ),
        (
            "session with another output",
            with(start("run", "e_b", ok()), &|_| {}),
            -508,
        ),
        (
            "cancel of an unknown session",
            cgi_body(cancel_para("nope", "e_a")),
            -30300,
        ),
        (
            "cancel naming another output",
            cgi_body(cancel_para("run", "e_b")),
            -31003,
        ),
        (
            "bitrate 0",
            with(start("x", "e_a", ok()), &|b| {
                b["interface"]["para"]["output_stream_bitrate"] = json!(0)
            }),
            -31004,
        ),
        (
            "bitrate 50001",
            with(start("x", "e_a", ok()), &|b| {
                b["interface"]["para"]["output_stream_bitrate"] = json!(50001)
            }),
            -31004,
        ),
        // Refused updates of the running session.
        (
            "update past the background",
            run(json!([
                bg("e_a"),
                small("e_b", 2, 160.0, 90.0, 600.0, 200.0)
            ])),
            -2,
        ),
        (
            "update with a missing input",
            run(json!([bg("e_a"), bg_as("nobody", 2)])),
            -505,
        ),
    ];
    let mut wrong = Vec::new();
    for (what, body, want) in &cases {
        let got = code(&rig.cgi(body));
        if got != *want {
            wrong.push(format!("{what}: want {want}, got {got}"));
        }
    }
    // Not JSON at all.
    let t = (unix_now() + 60).to_string();
    let sign = cgi_sign(CGI_KEY, &t);
    let good_query = cgi_query_at(CGI_APPID, CGI_KEY, &t);
    let body = cgi_body(start_para("x", "e_a", ok()))
        .to_string()
        .into_bytes();
    let auth_cases = [
        ("malformed JSON", good_query.clone(), b"{".to_vec(), -1),
        (
            "no sign",
            format!("appid={CGI_APPID}&interface=Mix_StreamV2&t={t}"),
            body.clone(),
            -40000,
        ),
        (
            "unknown appid",
            format!("appid=1&interface=Mix_StreamV2&t={t}&sign={sign}"),
            body.clone(),
            -40001,
        ),
        (
            "expired",
            cgi_query_at(CGI_APPID, CGI_KEY, "1490858347"),
            body.clone(),
            -40002,
        ),
        (
            "wrong sign",
            format!(
                "appid={CGI_APPID}&interface=Mix_StreamV2&t={t}&sign=7f29ed83c61b77de1b0d66936fd4fd44"
            ),
            body.clone(),
            -40003,
        ),
    ];
    for (what, query, body, want) in auth_cases {
        let answer = rig.cgi_with_query(&query, body);
        let got = code(&answer);
        if got != want {
            wrong.push(format!("{what}: want {want}, got {got} ({answer})"));
        } else if want <= -40000 {
            assert!(
                !answer["message"].as_str().unwrap().contains(CGI_KEY),
                "the key leaked"
            );
        }
    }
    assert!(wrong.is_empty(), "wrong codes:\n{}", wrong.join("\n"));
    assert_eq!(
        rig.session_spec("run").unwrap(),
        before,
        "a refused request changed the mix"
    );
    assert!(rig.session_spec("x").is_none() && rig.session_spec("other").is_none());
}

#[test]
fn canvas_background_picture_canvas_layer_and_crop() {
    let rig = rig();
    let quads = Publisher::start(
        &rig.nginx.rtmp_url("live", "quads"),
        PublishOpts {
            pattern: Pattern::Quadrants([RED, GREEN, BLUE, YELLOW]),
            width: 640,
            height: 360,
            ..PublishOpts::default()
        },
    );
    assert!(wait_for(T, || rig.nginx.is_publishing("live", "quads")));
    // Picture 5, uploaded through the native API: 100×100 of opaque cyan.
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("logo.png");
    write_png(&png, 0xFF00FFFF, 100, 100);
    let (status, _, answer) = rig.tessera.request_raw(
        "PUT",
        "/v1/pictures/5",
        &[("content-type", "image/png")],
        std::fs::read(&png).unwrap(),
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    let probe = rig.probe("pic_out");
    let para = json!({
        "interface": "mix_streamv2.start_mix_stream_advanced",
        "mix_stream_session_id": "pics",
        "output_stream_id": "pic_out",
        "output_stream_type": 1,
        "output_stream_bitrate": 1200,
        "input_stream_list": [
            // A 640×360 magenta canvas is the background.
            {"input_stream_id": "canvas1", "layout_params": {"image_layer": 1, "input_type": 3, "image_width": 640, "image_height": 360, "color": "0xFF00FF"}},
            // The stream's bottom-right (yellow) quadrant, scaled into the top-left 320×180.
            {"input_stream_id": "quads", "layout_params": {"image_layer": 2, "image_width": 320, "image_height": 180, "location_x": 0, "location_y": 0},
             "crop_params": {"crop_x": 320, "crop_y": 180, "crop_width": 320, "crop_height": 180}},
            // The picture at its own size.
            {"input_stream_id": "logo", "layout_params": {"image_layer": 3, "input_type": 2, "picture_id": 5, "location_x": 400, "location_y": 40}},
            // A green canvas rectangle.
            {"input_stream_id": "canvas2", "layout_params": {"image_layer": 4, "input_type": 3, "image_width": 160, "image_height": 90, "location_x": 400, "location_y": 200, "color": "0x00FF00"}}
        ]
    });
    assert_eq!(code(&rig.cgi(&cgi_body(para))), 0);
    expect_pixels(
        &probe,
        &[
            (20, 20, YELLOW),
            (300, 160, YELLOW),
            (450, 90, CYAN),
            (480, 245, GREEN),
            (620, 340, MAGENTA),
            (160, 300, MAGENTA),
        ],
        T,
    );
    drop(quads);
}

#[test]
fn a_dropped_co_host_freezes_then_resumes_and_an_abandoned_session_ends() {
    let rig = rig_with(|c| c.tencent.idle_end_s = 4);
    let big = rig.live("l_big", RED, None);
    let co = rig.live_sized("l_co", GREEN, None, 320, 180);
    let probe = rig.probe("l_out");
    let mut para = start_para(
        "life",
        "l_out",
        json!([bg("l_big"), small("l_co", 2, 160.0, 90.0, 400.0, 200.0)]),
    );
    para["output_stream_type"] = json!(1);
    assert_eq!(code(&rig.cgi(&cgi_body(para))), 0);
    expect_pixels(&probe, &[(480, 245, GREEN), (100, 100, RED)], T);

    // The co-host leaves: its last frame stays and the output keeps going.
    co.stop();
    assert!(wait_for(T, || !rig.nginx.is_publishing("live", "l_co")));
    let count = probe.frame_count();
    assert!(
        wait_for(T, || probe.frame_count() > count + 60),
        "the output stalled"
    );
    expect_pixels(
        &probe,
        &[(480, 245, GREEN), (100, 100, RED)],
        Duration::from_secs(5),
    );
    // It comes back (now blue) under the same stream id: the mix shows it without a new request.
    let _co = rig.live_sized("l_co", BLUE, None, 320, 180);
    expect_pixels(&probe, &[(480, 245, BLUE)], T);

    // Everyone leaves: after idle_end_s without a live input the session ends by itself.
    drop(_co);
    big.stop();
    assert!(
        wait_for(Duration::from_secs(30), || rig
            .session_spec("life")
            .is_none()),
        "the idle session did not end"
    );
    assert_eq!(
        code(&rig.cgi(&cgi_body(cancel_para("life", "l_out")))),
        -30300
    );
}
