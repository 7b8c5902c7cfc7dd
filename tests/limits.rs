//! Limits and admission, per dialect, in-process: request rates per credential, the node's mix capacity, field
//! and body caps, the private-source policy, and the signature checked before the body. Each refusal must come
//! in the dialect's own envelope with its own code, and start nothing.

#[path = "inproc/mod.rs"]
mod inproc;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use inproc::*;
use serde_json::json;

/// Sends `n` accepted-past-authentication requests of each dialect, then one more: the last must be refused
/// with the dialect's overload code, and the first `n` must not be.
#[tokio::test]
async fn each_dialect_answers_its_overload_code_above_its_rate() {
    const RATE: u32 = 3;
    let (app, engine) = app(|c| {
        c.zego.max_requests_per_s = RATE;
        c.tencent.max_requests_per_s = RATE;
        c.tencentcloud.max_requests_per_s = RATE;
        c.server.max_requests_per_s = RATE;
    });

    // Forged requests do not spend the credential's budget: the signature is checked first.
    for _ in 0..10 {
        let query = zego_query("GetMixTaskInfo").replace("Signature=", "Signature=0");
        let a = send(&app, zego_request("GET", &query, vec![])).await;
        assert_eq!(assert_zego_envelope(&a, "forged"), 100000005);
    }
    for i in 0..RATE {
        let a = zego(&app, "GetMixTaskInfo", &json!({})).await;
        assert_eq!(assert_zego_envelope(&a, "zego"), 110209001, "request {i}");
    }
    let a = zego(&app, "GetMixTaskInfo", &json!({})).await;
    assert_eq!(assert_zego_envelope(&a, "zego over rate"), 7);
    assert!(a.json["Message"].as_str().unwrap().contains("per second"));

    let cancel = json!({"interface": "mix_streamv2.cancel_mix_stream", "mix_stream_session_id": "none",
                        "output_stream_id": "none"});
    for i in 0..RATE {
        let a = cgi(&app, cancel.clone()).await;
        assert_eq!(assert_cgi_envelope(&a, "cgi"), -30300, "request {i}");
    }
    let a = cgi(&app, cancel.clone()).await;
    assert_eq!(assert_cgi_envelope(&a, "cgi over rate"), -10031);
    assert!(a.json["message"].as_str().unwrap().contains("per second"));

    let cancel = json!({"MixStreamSessionId": "none"});
    for i in 0..RATE {
        let a = tc3(&app, "CancelCommonMixStream", &cancel).await;
        assert_eq!(
            assert_tc3_envelope(&a, "tc3"),
            "FailedOperation.CancelSessionNotExist",
            "request {i}"
        );
    }
    let a = tc3(&app, "CancelCommonMixStream", &cancel).await;
    assert_eq!(
        assert_tc3_envelope(&a, "tc3 over rate"),
        "RequestLimitExceeded"
    );

    for i in 0..RATE {
        let a = native(&app, "GET", "/v1/mixes", &serde_json::Value::Null).await;
        assert_eq!(a.status, StatusCode::OK, "request {i}");
    }
    let a = native(&app, "GET", "/v1/relays", &serde_json::Value::Null).await;
    assert_eq!(
        assert_native_envelope(&a, "native over rate"),
        "rate_limited"
    );
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.headers["retry-after"], "1");
    // Health checks are not rate limited.
    let a = native(&app, "GET", "/healthz", &serde_json::Value::Null).await;
    assert_eq!(a.status, StatusCode::OK);

    // A second later each bucket has refilled.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let a = zego(&app, "GetMixTaskInfo", &json!({})).await;
    assert_eq!(assert_zego_envelope(&a, "zego refilled"), 110209001);
    let a = tc3(&app, "CancelCommonMixStream", &cancel).await;
    assert_eq!(
        assert_tc3_envelope(&a, "tc3 refilled"),
        "FailedOperation.CancelSessionNotExist"
    );
    assert!(engine.list().is_empty());
}

/// With the default configuration, vendor requests are limited at the vendors' rates and the native API not at
/// all.
#[tokio::test]
async fn default_rates_are_the_vendors() {
    let config = tessera::Config::default();
    assert_eq!(config.zego.max_requests_per_s, 100);
    assert_eq!(config.tencent.max_requests_per_s, 200);
    assert_eq!(config.tencentcloud.max_requests_per_s, 200);
    assert_eq!(config.server.max_requests_per_s, 0);
    let (app, _) = app(|c| {
        c.zego.max_requests_per_s = 100;
        c.server.max_requests_per_s = 0;
    });
    let began = Instant::now();
    let mut refused = Vec::new();
    for i in 0..150 {
        let a = zego(&app, "GetMixTaskInfo", &json!({})).await;
        if assert_zego_envelope(&a, "zego") == 7 {
            refused.push(i);
        }
    }
    // 100 at once, then one more per 10 ms.
    let refilled = (began.elapsed().as_secs_f64() * 100.0).ceil() as usize;
    assert!(refused.iter().all(|&i| i >= 100), "{refused:?}");
    assert!(
        refused.len() + refilled >= 50 && refused.len() <= 50,
        "{} refused, {refilled} refilled",
        refused.len()
    );
    for _ in 0..500 {
        let a = native(&app, "GET", "/v1/mixes", &serde_json::Value::Null).await;
        assert_eq!(a.status, StatusCode::OK);
    }
}

/// A full node refuses at once (no input is probed) with each dialect's code for it.
#[tokio::test]
async fn a_full_node_refuses_every_dialect_before_probing() {
    let (app, engine) = app(|c| {
        // Probing would take this long: the refusal must come first.
        c.zego.input_check_ms = 5_000;
        c.tencent.input_check_ms = 5_000;
    });
    let began = Instant::now();
    let a = zego(&app, "StartMix", &zego_start("full")).await;
    assert_eq!(assert_zego_envelope(&a, "zego"), 110200151);
    assert!(a.json["Message"]
        .as_str()
        .unwrap()
        .contains("at most 0 mixes"));

    let a = cgi(&app, cgi_start("full", 2)).await;
    assert_eq!(assert_cgi_envelope(&a, "cgi"), -10031);
    assert!(a.json["message"]
        .as_str()
        .unwrap()
        .contains("at most 0 mixes"));

    let a = tc3(&app, "CreateCommonMixStream", &tc3_create("full", 2)).await;
    assert_eq!(assert_tc3_envelope(&a, "tc3"), "LimitExceeded");

    let a = native(&app, "PUT", "/v1/mixes/full", &native_spec(1)).await;
    assert_eq!(a.status, StatusCode::CONFLICT);
    assert_eq!(assert_native_envelope(&a, "native"), "limit_exceeded");

    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    assert!(engine.list().is_empty());
    assert_eq!(engine.active_pulls(), 0);
}

/// Counts and lengths over each dialect's caps, with each dialect's code; nothing starts.
#[tokio::test]
async fn field_and_count_caps_per_dialect() {
    let (app, engine) = app(|_| {});

    let mut many = zego_start("caps");
    many["MixInput"] = json!((0..10)
        .map(|i| json!({"StreamId": format!("s{i}"), "RectInfo": {"Top": 0, "Bottom": 10, "Left": 0, "Right": 10}}))
        .collect::<Vec<_>>());
    let a = zego(&app, "StartMix", &many).await;
    assert_eq!(assert_zego_envelope(&a, "zego inputs"), 110200158);
    let mut many = zego_start("caps");
    many["MixOutput"] = json!((0..4)
        .map(|i| json!({"StreamId": format!("o{i}"), "Width": 360, "Height": 360}))
        .collect::<Vec<_>>());
    let a = zego(&app, "StartMix", &many).await;
    assert_eq!(assert_zego_envelope(&a, "zego outputs"), 110200178);
    for (field, value) in [
        ("TaskId", "t".repeat(129)),
        ("UserId", "u".repeat(129)),
        ("RoomId", "r".repeat(129)),
    ] {
        let mut body = zego_start("caps");
        body[field] = value.into();
        let a = zego(&app, "StartMix", &body).await;
        assert_eq!(assert_zego_envelope(&a, field), 110200002);
        assert!(a.json["Message"].as_str().unwrap().contains(field));
    }
    let mut body = zego_start("caps");
    body["MixInput"][0]["StreamId"] = "s".repeat(129).into();
    let a = zego(&app, "StartMix", &body).await;
    assert_eq!(assert_zego_envelope(&a, "zego stream id"), 110200002);
    let mut body = zego_start("caps");
    body["MixInput"][0]["Label"] = json!({"Text": "x".repeat(301)});
    let a = zego(&app, "StartMix", &body).await;
    assert_eq!(assert_zego_envelope(&a, "zego label"), 110200179);

    let a = cgi(&app, cgi_start("caps", 17)).await;
    assert_eq!(assert_cgi_envelope(&a, "cgi inputs"), -3);
    let a = cgi(&app, cgi_start(&"s".repeat(81), 2)).await;
    assert_eq!(assert_cgi_envelope(&a, "cgi session id"), -2);

    let a = tc3(&app, "CreateCommonMixStream", &tc3_create("caps", 17)).await;
    assert_eq!(
        assert_tc3_envelope(&a, "tc3 inputs"),
        "InvalidParameter.InputNumLimitExceeded"
    );
    let a = tc3(
        &app,
        "CreateCommonMixStream",
        &tc3_create(&"s".repeat(81), 2),
    )
    .await;
    assert_eq!(
        assert_tc3_envelope(&a, "tc3 session id"),
        "InvalidParameter"
    );

    let a = native(&app, "PUT", "/v1/mixes/caps", &native_spec(17)).await;
    assert_eq!(assert_native_envelope(&a, "native inputs"), "invalid_spec");
    assert_eq!(a.json["error"]["details"][0]["field"], "inputs");
    let mut spec = native_spec(1);
    spec["outputs"] = json!((0..9)
        .map(|i| json!({"target": {"stream_id": format!("o{i}")}}))
        .collect::<Vec<_>>());
    let a = native(&app, "PUT", "/v1/mixes/caps", &spec).await;
    assert_eq!(a.json["error"]["details"][0]["field"], "outputs");
    let relay = json!({"main": {"url": format!("rtmp://h/{}", "a".repeat(2048))}});
    let a = native(&app, "PUT", "/v1/relays/caps", &relay).await;
    assert_eq!(assert_native_envelope(&a, "relay url"), "invalid_spec");
    assert_eq!(a.json["error"]["details"][0]["field"], "main.url");

    assert!(engine.list().is_empty());
    assert_eq!(engine.active_pulls(), 0);
}

/// A body over `server.max_body_bytes` is refused in each dialect's envelope.
#[tokio::test]
async fn oversized_bodies_per_dialect() {
    let (app, _) = app(|c| c.server.max_body_bytes = 1024);
    let mut big = zego_start("big");
    big["Padding"] = "x".repeat(2048).into();
    let a = zego(&app, "StartMix", &big).await;
    assert_eq!(assert_zego_envelope(&a, "zego"), 110200002);
    let mut para = cgi_start("big", 2);
    para["padding"] = "x".repeat(2048).into();
    let a = cgi(&app, para).await;
    assert_eq!(assert_cgi_envelope(&a, "cgi"), -1);
    let mut body = tc3_create("big", 2);
    body["Padding"] = "x".repeat(2048).into();
    let a = tc3(&app, "CreateCommonMixStream", &body).await;
    assert_eq!(assert_tc3_envelope(&a, "tc3"), "InvalidParameter");
    let mut spec = native_spec(1);
    spec["padding"] = "x".repeat(2048).into();
    let a = native(&app, "PUT", "/v1/mixes/big", &spec).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(assert_native_envelope(&a, "native"), "body_too_large");
}

/// A forged request with a body that does not parse gets the signature's code, never the parser's: the body is
/// read only once the signature holds.
#[tokio::test]
async fn the_signature_is_checked_before_the_body_is_parsed() {
    let (app, _) = app(|_| {});
    let garbage = b"{not json".to_vec();

    let query = zego_query("StartMix").replace("Signature=", "Signature=0");
    let a = send(&app, zego_request("POST", &query, garbage.clone())).await;
    assert_eq!(assert_zego_envelope(&a, "zego"), 100000005);
    let a = send(
        &app,
        zego_request("POST", &zego_query("StartMix"), garbage.clone()),
    )
    .await;
    assert_eq!(assert_zego_envelope(&a, "zego signed"), 110200004);

    let query = cgi_query().replace("sign=", "sign=0");
    let a = send(&app, cgi_request(&query, garbage.clone())).await;
    assert_eq!(assert_cgi_envelope(&a, "cgi"), -40003);
    let a = send(&app, cgi_request(&cgi_query(), garbage.clone())).await;
    assert_eq!(assert_cgi_envelope(&a, "cgi signed"), -1);

    // API 3.0 signs the body: signed over another body, this one is a signature failure.
    let headers = tc3_headers("CreateCommonMixStream", "live", "2018-08-01", b"{}");
    let a = send(&app, tc3_request(&headers, garbage.clone())).await;
    assert_eq!(
        assert_tc3_envelope(&a, "tc3"),
        "AuthFailure.SignatureFailure"
    );
    let headers = tc3_headers("CreateCommonMixStream", "live", "2018-08-01", &garbage);
    let a = send(&app, tc3_request(&headers, garbage.clone())).await;
    assert_eq!(assert_tc3_envelope(&a, "tc3 signed"), "InvalidParameter");
}

/// `ingest.forbid_private_sources`: caller-given URLs that name or resolve to non-public addresses are parameter
/// errors, checked before anything is probed; stream ids (the operator's pull URL) are not affected; off by
/// default.
#[tokio::test]
async fn private_sources_are_refused_when_forbidden() {
    let mut private_input = zego_start("priv");
    private_input["MixInput"][1] = json!({"StreamUrl": "rtmp://localhost:1935/live/b",
        "RectInfo": {"Top": 200, "Bottom": 290, "Left": 100, "Right": 260}});
    let mut private_image = zego_start("priv");
    private_image["BackgroundImage"] = "http://169.254.169.254/latest/bg.png".into();
    let mut native_private = native_spec(1);
    native_private["inputs"][0]["source"] = json!({"url": "rtmp://[::ffff:10.0.0.1]/live/a"});
    let relay_private = json!({"main": {"url": "rtmp://192.168.1.20/live/a"},
                               "backup": {"vod": {"urls": ["http://127.0.0.1/a.flv"]}}});

    // Off (the default): the same requests reach the capacity check (the node is full).
    let (open, _) = app(|c| c.zego.input_check_ms = 5_000);
    for body in [&private_input, &private_image] {
        let a = zego(&open, "StartMix", body).await;
        assert_eq!(assert_zego_envelope(&a, "zego allowed"), 110200151);
    }
    let a = native(&open, "PUT", "/v1/mixes/p", &native_private).await;
    assert_eq!(
        assert_native_envelope(&a, "native allowed"),
        "limit_exceeded"
    );
    let a = native(&open, "PUT", "/v1/relays/p", &relay_private).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);

    let (app, engine) = app(|c| {
        c.ingest.forbid_private_sources = true;
        c.zego.input_check_ms = 5_000;
    });
    let began = Instant::now();
    for (body, field) in [
        (&private_input, "MixInput[1].StreamUrl"),
        (&private_image, "BackgroundImage"),
    ] {
        let a = zego(&app, "StartMix", body).await;
        assert_eq!(assert_zego_envelope(&a, field), 110200002);
        assert!(
            a.json["Message"].as_str().unwrap().contains(field),
            "{}",
            a.json
        );
    }
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    let a = native(&app, "PUT", "/v1/mixes/p", &native_private).await;
    assert_eq!(assert_native_envelope(&a, "native"), "invalid_spec");
    assert_eq!(
        a.json["error"]["details"][0]["field"],
        "inputs[0].source.url"
    );
    let a = native(&app, "PUT", "/v1/relays/p", &relay_private).await;
    assert_eq!(assert_native_envelope(&a, "relay"), "invalid_spec");
    let fields: Vec<&str> = a.json["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["main.url", "backup.vod.urls[0]"]);
    // Stream ids go through the operator's pull URL (loopback here) and stay allowed.
    let a = zego(&app, "StartMix", &zego_start("ids")).await;
    assert_eq!(assert_zego_envelope(&a, "stream ids"), 110200151);
    let a = native(&app, "PUT", "/v1/mixes/ids", &native_spec(2)).await;
    assert_eq!(assert_native_envelope(&a, "native ids"), "limit_exceeded");
    assert_eq!(engine.active_pulls(), 0);
}

/// Over a real socket the native limit is per client address: one client over its rate does not slow another.
#[tokio::test]
async fn the_native_limit_is_per_client_address() {
    tessera::server::init_media().unwrap();
    let mut config = tessera::Config::default();
    config.store.path = String::new();
    config.server.max_requests_per_s = 2;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = tessera::api::AppState::in_memory(config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tessera::server::serve_state(listener, state, async move {
        let _ = stopped.await;
    }));
    let client = |local: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(local))
            .build()
            .unwrap()
    };
    let (a, b) = (client([127, 0, 0, 1]), client([127, 0, 0, 2]));
    let url = format!("http://{addr}/v1/mixes");
    for _ in 0..2 {
        assert_eq!(a.get(&url).send().await.unwrap().status(), 200);
    }
    let refused = a.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(b.get(&url).send().await.unwrap().status(), 200);
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// `ingest.forbid_private_sources` covers every address a caller gives the node, not only what it pulls: mix
/// output URLs, relay outputs and status callbacks, ZEGO `MixOutput.StreamUrl`, CME `PushUrl`s.
#[tokio::test]
async fn private_outputs_and_callbacks_are_refused_when_forbidden() {
    let (app, engine) = app(|c| c.ingest.forbid_private_sources = true);
    let mut spec = native_spec(1);
    spec["outputs"] = json!([{"target": {"url": "rtmp://127.0.0.1/mix/o"}}]);
    let a = native(&app, "PUT", "/v1/mixes/p", &spec).await;
    assert_eq!(assert_native_envelope(&a, "native output"), "invalid_spec");
    assert_eq!(detail_fields(&a), ["outputs[0].target.url"]);

    let relay = json!({"main": {"push": "studio"},
                       "outputs": [{"id": "a", "url": "rtmp://10.0.0.1/app/key"}],
                       "callback_url": "http://169.254.169.254/hook"});
    let a = native(&app, "PUT", "/v1/relays/p", &relay).await;
    assert_eq!(assert_native_envelope(&a, "relay"), "invalid_spec");
    assert_eq!(detail_fields(&a), ["outputs[0].url", "callback_url"]);

    let mut body = zego_start("priv-out");
    body["MixOutput"][0]["StreamUrl"] = "rtmp://192.168.0.9/live/o".into();
    let a = zego(&app, "StartMix", &body).await;
    assert_eq!(assert_zego_envelope(&a, "zego output"), 110200002);
    assert!(
        a.json["Message"]
            .as_str()
            .unwrap()
            .contains("MixOutput[0].StreamUrl"),
        "{}",
        a.json
    );

    let a = cme(
        &app,
        "CreateProject",
        &cme_create("rtmp://8.8.8.8/live/x", "rtmp://[::1]/mix/y"),
    )
    .await;
    assert_eq!(
        assert_tc3_envelope(&a, "cme output"),
        "InvalidParameterValue.StreamConnectOutputInvalid"
    );
    // Public addresses (IP literals, no lookup needed) still pass to the next check.
    let relay = json!({"main": {"push": "studio"},
                       "outputs": [{"id": "a", "url": "rtmp://8.8.8.8/app/key"}],
                       "callback_url": "http://8.8.4.4/hook"});
    let a = native(&app, "PUT", "/v1/relays/p", &relay).await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.json);
    assert!(engine.list().is_empty());
}

/// CME `DescribeProjects` refuses a negative `Offset` or `Limit` instead of reading it as 0.
#[tokio::test]
async fn cme_describe_refuses_negative_paging() {
    let (app, _) = app(|_| {});
    for body in [
        json!({"Platform": "tessera", "Offset": -1}),
        json!({"Platform": "tessera", "Limit": -5}),
    ] {
        let a = cme(&app, "DescribeProjects", &body).await;
        assert_eq!(
            assert_tc3_envelope(&a, &body.to_string()),
            "InvalidParameterValue",
            "{}",
            a.json
        );
    }
    let a = cme(&app, "DescribeProjects", &json!({"Platform": "tessera"})).await;
    assert_eq!(assert_tc3_envelope(&a, "paging by default"), "");
}

/// A line break (or any control character) in a URL would split log lines and name streams with it: every
/// URL and file path a caller gives is refused with the dialect's parameter error.
#[tokio::test]
async fn control_characters_in_urls_are_refused() {
    let (app, engine) = app(|_| {});
    let mut spec = native_spec(1);
    spec["outputs"] = json!([{"target": {"url": "rtmp://8.8.8.8/mix/o\nforged log line"}}]);
    spec["inputs"][0]["source"] = json!({"url": "rtmp://8.8.8.8/live/a\tb"});
    spec["overlays"] = json!([{"id": "o", "image": "/srv/logo\r.png", "rect": {"x": 0, "y": 0, "width": 10, "height": 10}}]);
    let a = native(&app, "PUT", "/v1/mixes/ctl", &spec).await;
    assert_eq!(assert_native_envelope(&a, "native"), "invalid_spec");
    assert_eq!(
        detail_fields(&a),
        [
            "inputs[0].source.url",
            "overlays[0].image",
            "outputs[0].target.url"
        ]
    );

    let relay = json!({"main": {"url": "rtmp://8.8.8.8/live/a\u{7f}"},
                       "outputs": [{"id": "a", "url": "rtmp://8.8.8.8/app/k\ney"}],
                       "callback_url": "http://8.8.4.4/ho\nok"});
    let a = native(&app, "PUT", "/v1/relays/ctl", &relay).await;
    assert_eq!(assert_native_envelope(&a, "relay"), "invalid_spec");
    assert_eq!(
        detail_fields(&a),
        ["main.url", "outputs[0].url", "callback_url"]
    );

    let mut body = zego_start("ctl");
    body["MixOutput"][0]["StreamUrl"] = "rtmp://8.8.8.8/live/o\n".into();
    let a = zego(&app, "StartMix", &body).await;
    assert_eq!(assert_zego_envelope(&a, "zego output url"), 110200002);
    for field in ["UserId", "RoomId"] {
        let mut body = zego_start("ctl");
        body[field] = "a\nb".into();
        let a = zego(&app, "StartMix", &body).await;
        assert_eq!(assert_zego_envelope(&a, field), 110200002);
    }

    let a = cme(
        &app,
        "CreateProject",
        &cme_create("rtmp://8.8.8.8/live/x", "rtmp://8.8.8.8/mix/y\n"),
    )
    .await;
    assert_eq!(
        assert_tc3_envelope(&a, "cme output"),
        "InvalidParameterValue.StreamConnectOutputInvalid"
    );
    assert!(engine.list().is_empty());
}

/// A method a native route does not take is answered 405 with the native JSON error, not an empty body.
#[tokio::test]
async fn method_not_allowed_is_a_native_json_error() {
    let (app, _) = app(|_| {});
    for (method, uri) in [
        ("POST", "/v1/mixes/m"),
        ("PATCH", "/v1/mixes"),
        ("POST", "/v1/relays/r"),
        ("POST", "/v1/pictures/p"),
        ("DELETE", "/healthz"),
    ] {
        let a = native(&app, method, uri, &serde_json::Value::Null).await;
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_eq!(
            assert_native_envelope(&a, &format!("{method} {uri}")),
            "method_not_allowed"
        );
        assert!(a.headers.contains_key("allow"), "{method} {uri}");
    }
}

/// ZEGO's parameter errors name ZEGO's fields (`MixInput[0].StreamId`), never the native model's paths.
#[tokio::test]
async fn zego_parameter_errors_name_zego_fields() {
    let (app, _) = app(|_| {});
    let mut body = zego_start("names");
    body["MixInput"][0]["StreamId"] = "s".repeat(129).into();
    let a = zego(&app, "StartMix", &body).await;
    assert_eq!(assert_zego_envelope(&a, "stream id"), 110200002);
    let message = a.json["Message"].as_str().unwrap();
    assert!(message.contains("MixInput[0].StreamId"), "{message}");
    assert!(!message.contains("inputs["), "{message}");

    let mut body = zego_start("names");
    body["MixOutput"][0]["StreamUrl"] = format!("rtmp://h/{}", "a".repeat(2048)).into();
    body["MixInput"][1]["StreamId"] = "bad id".into();
    let a = zego(&app, "StartMix", &body).await;
    assert_eq!(assert_zego_envelope(&a, "two fields"), 110200002);
    let message = a.json["Message"].as_str().unwrap();
    for want in ["MixInput[1].StreamId", "MixOutput[0].StreamUrl"] {
        assert!(message.contains(want), "{want}: {message}");
    }
    assert!(
        !message.contains("outputs[") && !message.contains("inputs["),
        "{message}"
    );
}

/// `.` and `..` are refused as ids everywhere: ordinary HTTP clients cannot reach `/v1/mixes/..`.
#[tokio::test]
async fn dot_ids_are_refused() {
    let (app, engine) = app(|_| {});
    for id in ["%2E", "%2E%2E"] {
        let a = native(&app, "PUT", &format!("/v1/mixes/{id}"), &native_spec(1)).await;
        assert_eq!(assert_native_envelope(&a, id), "invalid_id");
        let a = native(
            &app,
            "PUT",
            &format!("/v1/relays/{id}"),
            &json!({"main": {"push": "studio"}}),
        )
        .await;
        assert_eq!(assert_native_envelope(&a, id), "invalid_id");
        let a = send(
            &app,
            native_request("PUT", &format!("/v1/pictures/{id}"), b"GIF89a".to_vec()),
        )
        .await;
        assert_eq!(assert_native_envelope(&a, id), "invalid_id");
    }
    for id in [".", ".."] {
        let mut body = native_spec(1);
        body["id"] = id.into();
        let a = native(&app, "POST", "/v1/mixes", &body).await;
        assert_eq!(assert_native_envelope(&a, id), "invalid_id");

        let mut spec = native_spec(1);
        spec["inputs"][0]["id"] = id.into();
        spec["inputs"][0]["source"] = json!({"stream_id": id});
        spec["outputs"][0]["target"] = json!({"stream_id": id});
        let a = native(&app, "PUT", "/v1/mixes/dots", &spec).await;
        assert_eq!(assert_native_envelope(&a, id), "invalid_spec");
        assert_eq!(
            detail_fields(&a),
            [
                "inputs[0].id",
                "inputs[0].source.stream_id",
                "outputs[0].target.stream_id"
            ]
        );

        let relay =
            json!({"main": {"push": id}, "outputs": [{"id": id, "url": "rtmp://8.8.8.8/a/b"}]});
        let a = native(&app, "PUT", "/v1/relays/dots", &relay).await;
        assert_eq!(assert_native_envelope(&a, id), "invalid_spec");
        assert_eq!(detail_fields(&a), ["main.push", "outputs[0].id"]);

        let a = zego(&app, "StartMix", &zego_start(id)).await;
        assert_eq!(assert_zego_envelope(&a, id), 110200002);
    }
    assert!(engine.list().is_empty());
}
