//! Cloud API 3.0 through the official Python SDK (`tencentcloud-sdk-python-live`, installed by scripts/setup).

use serde_json::{json, Value};

use super::*;

/// Runs one SDK call; `{"ok": …}` or `{"error": {"code", "message", "request_id"}}`.
fn sdk(rig: &Rig, action: &str, params: &Value, id: &str, key: &str, skew: Option<i64>) -> Value {
    sdk_product(rig, "live", action, params, id, key, skew)
}

/// Like [`sdk`], with the client of `product` (`live` or `cme`).
pub fn sdk_product(
    rig: &Rig,
    product: &str,
    action: &str,
    params: &Value,
    id: &str,
    key: &str,
    skew: Option<i64>,
) -> Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let endpoint = rig.tessera.base.trim_start_matches("http://").to_string();
    let mut cmd = std::process::Command::new("/usr/bin/python3");
    cmd.env("PYTHONPATH", root.join(".deps/python"))
        .arg(root.join("tests/tencent/sdk_client.py"))
        .args([endpoint.as_str(), id, key, action, &params.to_string()]);
    if let Some(s) = skew {
        cmd.args(["--skew", &s.to_string()]);
    }
    cmd.args(["--product", product]);
    let out = cmd
        .output()
        .expect("run /usr/bin/python3 (scripts/setup installs the SDK into .deps/python)");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|_| panic!("{text}\n{}", String::from_utf8_lossy(&out.stderr)))
}

fn call(rig: &Rig, action: &str, params: &Value) -> Value {
    sdk(rig, action, params, SECRET_ID, SECRET_KEY, None)
}

pub fn error_code(v: &Value) -> String {
    v["error"]["code"]
        .as_str()
        .unwrap_or("(success)")
        .to_string()
}

fn layer(name: &str, layer: i64) -> Value {
    json!({"InputStreamName": name, "LayoutParams": {"ImageLayer": layer}})
}

fn create(session: &str, output: &str, inputs: Value) -> Value {
    json!({
        "MixStreamSessionId": session,
        "InputStreamList": inputs,
        "OutputParams": {"OutputStreamName": output, "OutputStreamType": 1}
    })
}

#[test]
fn the_official_sdk_creates_and_cancels_a_mix_with_every_output_parameter() {
    let rig = rig();
    let _a = rig.live("c_a", RED, Some(440.0));
    let _b = rig.live_sized("c_b", GREEN, None, 320, 180);
    let probe = rig.probe("cloud_out");
    let params = json!({
        "MixStreamSessionId": "cloud1",
        "InputStreamList": [
            layer("c_a", 1),
            {"InputStreamName": "c_b",
             "LayoutParams": {"ImageLayer": 2, "InputType": 5, "ImageWidth": 0.25, "ImageHeight": 0.25, "LocationX": 400, "LocationY": 200},
             "CropParams": {"CropWidth": 160, "CropHeight": 90, "CropStartLocationX": 80, "CropStartLocationY": 45}}
        ],
        "OutputParams": {
            "OutputStreamName": "cloud_out", "OutputStreamType": 1, "OutputStreamBitRate": 1500,
            "OutputStreamGop": 3, "OutputStreamFrameRate": 25, "OutputAudioBitRate": 64,
            "OutputAudioSampleRate": 44100, "OutputAudioChannels": 1, "MixSei": "hello tessera"
        },
        "MixStreamTemplateId": 0,
        "ControlParams": {"UseMixCropCenter": 0, "AllowCopy": 0, "PassInputSei": 1, "UsePictureTransparent": 0}
    });
    let answer = call(&rig, "CreateCommonMixStream", &params);
    assert!(answer["ok"]["RequestId"].is_string(), "{answer}");
    expect_pixels(
        &probe,
        &[(100, 100, RED), (480, 245, GREEN), (620, 340, RED)],
        T,
    );
    let spec = rig.session_spec("cloud1").unwrap();
    let out = &spec["outputs"][0];
    assert_eq!(out["target"]["stream_id"], "cloud_out");
    assert_eq!(out["video"]["bitrate_kbps"], 1500);
    assert_eq!(out["video"]["gop_s"], 3);
    assert_eq!(out["video"]["fps"], 25);
    assert_eq!(out["audio"]["bitrate_kbps"], 64);
    assert_eq!(out["audio"]["sample_rate"], 44100);
    assert_eq!(out["audio"]["channels"], 1);
    assert_eq!(spec["sei"]["user_data_base64"], "aGVsbG8gdGVzc2VyYQ==");
    assert_eq!(spec["sei"]["pass_input"], true);
    assert_eq!(spec["inputs"][1]["content"], "video");
    assert_eq!(
        spec["inputs"][1]["crop"],
        json!({"x": 80, "y": 45, "width": 160, "height": 90})
    );
    // (0.25, 0.25) of the 640×360 background.
    assert_eq!(
        spec["inputs"][1]["rect"],
        json!({"x": 400, "y": 200, "width": 160, "height": 90})
    );
    // The probe resamples to 48 kHz whatever the stream's rate.
    wait_levels(&probe, &[440.0], T, |l| l[0] > 0.01);

    // Same session, another output stream: refused, nothing changes.
    let other = create(
        "cloud1",
        "cloud_out2",
        json!([layer("c_a", 1), layer("c_b", 2)]),
    );
    assert_eq!(
        error_code(&call(&rig, "CreateCommonMixStream", &other)),
        "InvalidParameter.SessionOutputStreamChanged"
    );
    // Another session on the same output stream: refused too.
    let clash = create(
        "cloud2",
        "cloud_out",
        json!([layer("c_a", 1), layer("c_b", 2)]),
    );
    assert_eq!(
        error_code(&call(&rig, "CreateCommonMixStream", &clash)),
        "InvalidParameter.InvalidOutputStreamID"
    );
    assert_eq!(rig.session_spec("cloud1").unwrap(), spec);

    let cancel = json!({"MixStreamSessionId": "cloud1"});
    assert!(call(&rig, "CancelCommonMixStream", &cancel)["ok"]["RequestId"].is_string());
    assert!(rig.session_spec("cloud1").is_none());
    assert!(wait_for(T, || !rig.nginx.is_publishing("mix", "cloud_out")));
    assert_eq!(
        error_code(&call(&rig, "CancelCommonMixStream", &cancel)),
        "FailedOperation.CancelSessionNotExist"
    );
}

#[test]
fn the_official_sdk_gets_each_error_code() {
    let rig = rig_with(|c| c.tencent.input_check_ms = 1_500);
    let _a = rig.live("d_a", RED, None);
    let two = || json!([layer("d_a", 1), layer("d_b", 2)]);
    let with = |mut v: Value, f: &dyn Fn(&mut Value)| {
        f(&mut v);
        v
    };
    let many: Vec<Value> = (1..=17).map(|l| layer(&format!("s{l}"), l)).collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "no OutputParams",
            json!({"MixStreamSessionId": "x", "InputStreamList": two()}),
            "MissingParameter",
        ),
        (
            "layer 17",
            create("x", "o", json!([layer("d_a", 1), layer("d_b", 17)])),
            "InvalidParameter.InvalidLayerParam",
        ),
        (
            "duplicate layer",
            create("x", "o", json!([layer("d_a", 1), layer("d_b", 1)])),
            "InvalidParameter.InvalidLayerParam",
        ),
        (
            "crop beyond 2000",
            create(
                "x",
                "o",
                json!([layer("d_a", 1), {"InputStreamName": "d_b", "LayoutParams": {"ImageLayer": 2}, "CropParams": {"CropWidth": 2001}}]),
            ),
            "InvalidParameter.InvalidCropParam",
        ),
        (
            "type 0, output not an input",
            with(create("x", "o", two()), &|v| {
                v["OutputParams"]["OutputStreamType"] = json!(0)
            }),
            "InvalidParameter.InvalidOutputType",
        ),
        (
            "17 inputs",
            create("x", "o", json!(many)),
            "InvalidParameter.InputNumLimitExceeded",
        ),
        (
            "template 410 with 2 inputs",
            with(create("x", "o", two()), &|v| {
                v["MixStreamTemplateId"] = json!(410)
            }),
            "InvalidParameter.TemplateNotMatchInputNum",
        ),
        (
            "bitrate 10001",
            with(create("x", "o", two()), &|v| {
                v["OutputParams"]["OutputStreamBitRate"] = json!(10001)
            }),
            "InvalidParameter.InvalidBitrate",
        ),
        (
            "input not published",
            create("x", "o", two()),
            "FailedOperation.StreamNotExist",
        ),
        (
            "cancel unknown",
            json!({"MixStreamSessionId": "nope"}),
            "FailedOperation.CancelSessionNotExist",
        ),
    ];
    let mut wrong = Vec::new();
    for (what, params, want) in &cases {
        let action =
            if params.get("InputStreamList").is_some() || params.get("OutputParams").is_some() {
                "CreateCommonMixStream"
            } else {
                "CancelCommonMixStream"
            };
        let got = error_code(&call(&rig, action, params));
        if got != *want {
            wrong.push(format!("{what}: want {want}, got {got}"));
        }
    }
    let params = create("x", "o", two());
    for (what, id, key, skew, want) in [
        (
            "wrong key",
            SECRET_ID,
            "not-the-key",
            None,
            "AuthFailure.SignatureFailure",
        ),
        (
            "unknown SecretId",
            "AKIDsomeoneelse",
            SECRET_KEY,
            None,
            "AuthFailure.SecretIdNotFound",
        ),
        (
            "clock 400 s behind",
            SECRET_ID,
            SECRET_KEY,
            Some(-400),
            "AuthFailure.SignatureExpire",
        ),
    ] {
        let got = error_code(&sdk(&rig, "CreateCommonMixStream", &params, id, key, skew));
        if got != want {
            wrong.push(format!("{what}: want {want}, got {got}"));
        }
    }
    assert!(wrong.is_empty(), "wrong codes:\n{}", wrong.join("\n"));

    // An action that does not exist, signed in Rust: the envelope, HTTP 200, exactly application/json.
    let body = b"{}".to_vec();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let host = rig.tessera.base.trim_start_matches("http://").to_string();
    let headers = [
        ("content-type", "application/json"),
        ("host", host.as_str()),
    ];
    let auth = tessera::api::tencent::cloud::tc3::authorization(
        "POST",
        "/",
        "",
        &headers,
        &["content-type", "host"],
        &body,
        SECRET_ID,
        SECRET_KEY,
        ts,
        "live",
    );
    let ts = ts.to_string();
    let (status, resp_headers, bytes) = rig.tessera.request_raw(
        "POST",
        "/",
        &[
            ("content-type", "application/json"),
            ("x-tc-action", "DescribeLiveStreams"),
            ("x-tc-version", "2018-08-01"),
            ("x-tc-timestamp", &ts),
            ("authorization", &auth),
        ],
        body,
    );
    assert_eq!(status, 200);
    assert_eq!(resp_headers["content-type"], "application/json");
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["Response"]["Error"]["Code"], "InvalidAction", "{v}");
    assert!(v["Response"]["RequestId"].is_string());
}
