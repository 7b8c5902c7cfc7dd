//! In-process requests of every dialect, signed as each vendor's clients sign them, sent through `api::app` with
//! `oneshot` (no media, no sockets). Shared by `tests/limits.rs` and `tests/fuzz.rs`.

#![allow(dead_code)]

// The one signing helper of the tests (tests/common/sign.rs); this module is included without the rest of
// tests/common (no media).
#[path = "../common/sign.rs"]
mod sign;

use axum::{
    body::Body,
    http::{HeaderMap, Request, StatusCode},
    Router,
};
use serde_json::{json, Value};
use tower::ServiceExt;

use tessera::{api, engine::Engine, Config};

pub use sign::{CGI_APPID, CGI_KEY, ZEGO_APP, ZEGO_SECRET};
pub const TC_ID: &str = "AKIDinproc0000000000000000000000";
pub const TC_KEY: &str = "inproc-secret-key-0000000000000";
pub const TC_HOST: &str = "127.0.0.1:8080";
/// Every secret above: no answer may contain one.
pub const SECRETS: [&str; 3] = [ZEGO_SECRET, CGI_KEY, TC_KEY];

/// An app with every dialect on, rate limits off, input checks off, and no room for any mix (so no request
/// starts a pipeline), adjusted by `adjust`.
pub fn app(adjust: impl FnOnce(&mut Config)) -> (Router, Engine) {
    tessera::server::init_media().unwrap();
    let mut config = Config::default();
    config.store.path = String::new();
    config.server.max_body_bytes = 64 * 1024;
    config.engine.max_mixes = Some(0);
    config.zego.app_id = ZEGO_APP;
    config.zego.server_secret = ZEGO_SECRET.into();
    config.zego.input_check_ms = 0;
    config.zego.max_requests_per_s = 0;
    config.tencent.appid = CGI_APPID;
    config.tencent.key = CGI_KEY.into();
    config.tencent.input_check_ms = 0;
    config.tencent.max_requests_per_s = 0;
    config.tencentcloud.secret_id = TC_ID.into();
    config.tencentcloud.secret_key = TC_KEY.into();
    config.tencentcloud.max_requests_per_s = 0;
    adjust(&mut config);
    let state = api::AppState::in_memory(config);
    let engine = state.engine.clone();
    (api::app(state), engine)
}

pub fn now() -> i64 {
    sign::unix_now() as i64
}

/// An answer: status, headers, raw body and the body as JSON (`Null` when it is not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
    pub json: Value,
}

pub async fn send(app: &Router, req: Request<Body>) -> Answer {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        bytes,
        json,
    }
}

/// ZEGO's signed common query for `action`, with a fresh nonce.
pub fn zego_query(action: &str) -> String {
    sign::zego_query(ZEGO_APP, ZEGO_SECRET, action)
}

pub fn zego_request(method: &str, query: &str, body: Vec<u8>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(format!("/?{query}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

pub async fn zego(app: &Router, action: &str, body: &Value) -> Answer {
    let method = if action == "GetMixTaskInfo" {
        "GET"
    } else {
        "POST"
    };
    send(
        app,
        zego_request(method, &zego_query(action), body.to_string().into_bytes()),
    )
    .await
}

/// A valid StartMix of ZEGO's samples: two inputs, one output.
pub fn zego_start(task: &str) -> Value {
    json!({
        "TaskId": task, "Sequence": 1, "UserId": "123",
        "MixInput": [
            {"StreamId": "stream1", "RectInfo": {"Top": 70, "Bottom": 160, "Left": 100, "Right": 260}},
            {"StreamId": "stream2", "RectInfo": {"Top": 200, "Bottom": 290, "Left": 100, "Right": 260}}
        ],
        "MixOutput": [{"StreamId": "stream3", "Width": 360, "Height": 360, "VideoBitrate": 12000, "Fps": 15}]
    })
}

/// The legacy CGI's signed query, valid for a minute.
pub fn cgi_query() -> String {
    sign::cgi_query(CGI_APPID, CGI_KEY)
}

pub fn cgi_request(query: &str, body: Vec<u8>) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(format!("/common_access?{query}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

pub async fn cgi(app: &Router, para: Value) -> Answer {
    send(
        app,
        cgi_request(&cgi_query(), cgi_body(para).to_string().into_bytes()),
    )
    .await
}

/// The CGI envelope around `para`.
pub fn cgi_body(mut para: Value) -> Value {
    if para.get("app_id").is_none() {
        para["app_id"] = json!(CGI_APPID);
    }
    json!({"timestamp": now(), "eventId": 7, "interface": {"interfaceName": "Mix_StreamV2", "para": para}})
}

/// A valid `start_mix_stream_advanced` with `inputs` streams (the first is the background).
pub fn cgi_start(session: &str, inputs: usize) -> Value {
    let list: Vec<Value> = (0..inputs)
        .map(|i| {
            json!({"input_stream_id": format!("in{i}"), "layout_params": {
                "image_layer": i + 1, "image_width": 160, "image_height": 90, "location_x": 0, "location_y": 0}})
        })
        .collect();
    json!({
        "interface": "mix_streamv2.start_mix_stream_advanced",
        "mix_stream_session_id": session,
        "output_stream_id": format!("{session}_out"),
        "output_stream_type": 1,
        "input_stream_list": list
    })
}

/// The headers of an API 3.0 request, `Authorization` included, signed over `body`.
pub fn tc3_headers(
    action: &str,
    service: &str,
    version: &str,
    body: &[u8],
) -> Vec<(String, String)> {
    sign::tc3_headers(TC_ID, TC_KEY, TC_HOST, action, service, version, body)
}

pub fn tc3_request(headers: &[(String, String)], body: Vec<u8>) -> Request<Body> {
    let mut req = Request::builder().method("POST").uri("/");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_bytes());
    }
    req.body(Body::from(body)).unwrap()
}

pub async fn tc3(app: &Router, action: &str, body: &Value) -> Answer {
    let bytes = body.to_string().into_bytes();
    let headers = tc3_headers(action, "live", "2018-08-01", &bytes);
    send(app, tc3_request(&headers, bytes)).await
}

/// A valid `CreateCommonMixStream` with `inputs` streams.
pub fn tc3_create(session: &str, inputs: usize) -> Value {
    let list: Vec<Value> = (0..inputs)
        .map(|i| {
            json!({"InputStreamName": format!("in{i}"), "LayoutParams": {
                "ImageLayer": i + 1, "ImageWidth": 160, "ImageHeight": 90, "LocationX": 0, "LocationY": 0}})
        })
        .collect();
    json!({
        "MixStreamSessionId": session,
        "InputStreamList": list,
        "OutputParams": {"OutputStreamName": format!("{session}_out"), "OutputStreamType": 1}
    })
}

pub fn native_request(method: &str, uri: &str, body: Vec<u8>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

pub async fn native(app: &Router, method: &str, uri: &str, body: &Value) -> Answer {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    send(app, native_request(method, uri, bytes)).await
}

/// A valid native mix spec with `inputs` inputs given by stream id.
pub fn native_spec(inputs: usize) -> Value {
    let list: Vec<Value> = (0..inputs)
        .map(|i| json!({"id": format!("i{i}"), "source": {"stream_id": format!("s{i}")}}))
        .collect();
    json!({
        "canvas": {"width": 640, "height": 360},
        "inputs": list,
        "outputs": [{"target": {"stream_id": "out"}}]
    })
}

/// ZEGO's envelope: `{"Code","Message","RequestId","Data"}` with HTTP 200.
pub fn assert_zego_envelope(a: &Answer, context: &str) -> u64 {
    assert_eq!(a.status, StatusCode::OK, "{context}: {}", a.json);
    let j = &a.json;
    assert!(
        j["Code"].is_u64()
            && j["Message"].is_string()
            && j["RequestId"].is_string()
            && j.get("Data").is_some(),
        "{context}: not ZEGO's envelope: {}",
        String::from_utf8_lossy(&a.bytes)
    );
    j["Code"].as_u64().unwrap()
}

/// The CGI's envelope: `{"code","message","event_id","timestamp"}` with HTTP 200.
pub fn assert_cgi_envelope(a: &Answer, context: &str) -> i64 {
    assert_eq!(a.status, StatusCode::OK, "{context}: {}", a.json);
    let j = &a.json;
    assert!(
        j["code"].is_i64()
            && j["message"].is_string()
            && j["event_id"].is_i64()
            && j["timestamp"].is_i64(),
        "{context}: not the CGI's envelope: {}",
        String::from_utf8_lossy(&a.bytes)
    );
    j["code"].as_i64().unwrap()
}

/// API 3.0's envelope: HTTP 200, `{"Response":{…,"RequestId"}}`, errors in `Response.Error.{Code,Message}`.
/// The error code, or "" on success.
pub fn assert_tc3_envelope(a: &Answer, context: &str) -> String {
    assert_eq!(a.status, StatusCode::OK, "{context}: {}", a.json);
    let r = &a.json["Response"];
    assert!(
        r["RequestId"].is_string(),
        "{context}: not API 3.0's envelope: {}",
        String::from_utf8_lossy(&a.bytes)
    );
    match r.get("Error") {
        None => String::new(),
        Some(e) => {
            assert!(
                e["Code"].is_string() && e["Message"].is_string(),
                "{context}: malformed Error: {r}"
            );
            e["Code"].as_str().unwrap().to_string()
        }
    }
}

/// The native shape: an error is `{"error":{"code","message"}}` with a 4xx status; success is 2xx (JSON or
/// empty). The error code, or "" on success.
pub fn assert_native_envelope(a: &Answer, context: &str) -> String {
    let s = a.status.as_u16();
    if (200..300).contains(&s) {
        assert!(
            a.bytes.is_empty() || !a.json.is_null(),
            "{context}: {s} without JSON: {}",
            String::from_utf8_lossy(&a.bytes)
        );
        return String::new();
    }
    assert!((400..500).contains(&s), "{context}: status {s}: {}", a.json);
    let e = &a.json["error"];
    assert!(
        e["code"].is_string() && e["message"].is_string(),
        "{context}: not the native error shape ({s}): {}",
        String::from_utf8_lossy(&a.bytes)
    );
    e["code"].as_str().unwrap().to_string()
}

/// No answer tells a secret.
pub fn assert_no_secret(a: &Answer, context: &str) {
    let text = String::from_utf8_lossy(&a.bytes);
    for s in SECRETS {
        assert!(
            !text.contains(s),
            "{context}: an answer carries a secret: {text}"
        );
    }
}

/// A Tencent CME (API 3.0, service `cme`, version 2019-10-29) request.
pub async fn cme(app: &Router, action: &str, body: &Value) -> Answer {
    let bytes = body.to_string().into_bytes();
    let headers = tc3_headers(action, "cme", "2019-10-29", &bytes);
    send(app, tc3_request(&headers, bytes)).await
}

/// A valid CME `CreateProject` pulling `input` and pushing to `output`.
pub fn cme_create(input: &str, output: &str) -> Value {
    json!({
        "Platform": "tessera", "Name": "p", "Category": "STREAM_CONNECT", "Owner": {"Type": "PERSON", "Id": "u"},
        "StreamConnectProjectInput": {
            "MainInput": {"InputType": "LivePull", "LivePullInputInfo": {"InputUrl": input}},
            "Outputs": [{"Id": "1", "PushUrl": output}]
        }
    })
}

/// The `field`s of a native error's details.
pub fn detail_fields(a: &Answer) -> Vec<String> {
    a.json["error"]["details"]
        .as_array()
        .map(|d| {
            d.iter()
                .map(|v| v["field"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}
