//! Property tests of every dialect's parser and signature check: random and mutated bodies, query strings and
//! headers, sent in-process through `api::app`. Whatever arrives, the answer must come without a panic, in the
//! envelope of the dialect the request was routed to, with a sane status, and without a secret in it.
//!
//! Requests start signed and valid (so most mutations reach the body parsers and the translations) and are
//! then mutated. The node has room for no mix, so a request that survives everything is refused by capacity and
//! no media pipeline starts. The RNG is seeded: a failure names its seed and case, and
//! `TESSERA_FUZZ_SEED=<seed> TESSERA_FUZZ_CASES=<n>` replays it (or explores further).

#[path = "inproc/mod.rs"]
mod inproc;

use std::{collections::HashMap, time::Instant};

use axum::{body::Body, http::Request};
use fastrand::Rng;
use inproc::*;
use serde_json::{json, Map, Value};

fn seed() -> u64 {
    std::env::var("TESSERA_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x7e55_e7a5)
}

fn cases() -> usize {
    std::env::var("TESSERA_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4_000)
}

/// Values chosen to hit edges: extreme and fractional numbers, digit strings (the lenient number parsers),
/// long, empty, non-ASCII and control-character strings, URLs of every scheme, nested containers.
fn random_value(rng: &mut Rng, depth: u32) -> Value {
    let strings = [
        "",
        "0",
        "-1",
        "1.5",
        "1e400",
        "0x87CEFA00",
        "#FFFFFF",
        "9999999999999999999999",
        "null",
        "中文字符",
        "a\u{0}b",
        "\u{202e}rtl",
        "../../etc/passwd",
        "/etc/passwd",
        "rtmp://127.0.0.1:1935/live/x",
        "rtmps://[::1]/live/x",
        "http://169.254.169.254/latest",
        "https://example.com/a.png",
        "file:///etc/shadow",
        "preset-id://nope",
        "ftp://x/y",
        "mix_streamv2.start_mix_stream_advanced",
        "mix_streamv2.cancel_mix_stream",
        "STREAM_CONNECT",
        "LivePull",
        "RtmpPush",
        "VodPull",
    ];
    match rng.u8(..14) {
        0 => Value::Null,
        1 => Value::Bool(rng.bool()),
        2 => [
            json!(0),
            json!(-1),
            json!(1),
            json!(i64::MAX),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(16),
            json!(17),
            json!(3001),
            json!(4096),
        ][rng.usize(..10)]
        .clone(),
        3 => json!(rng.i64(-100_000..100_000)),
        4 => json!([0.5, -0.0, 1e308, -1e308, 0.999, 1.0000001, 2.5e-9][rng.usize(..7)]),
        5..=7 => json!(strings[rng.usize(..strings.len())]),
        8 => {
            let len = [1, 80, 81, 128, 129, 300, 301, 2049, 5000][rng.usize(..9)];
            json!(std::iter::repeat_n(rng.alphanumeric(), len).collect::<String>())
        }
        9 => json!((0..rng.usize(..12))
            .map(|_| rng.char(..))
            .collect::<String>()),
        10 | 11 if depth < 3 => {
            let n = [0, 1, 2, 3, 9, 10, 17, 40][rng.usize(..8)];
            Value::Array((0..n).map(|_| random_value(rng, depth + 1)).collect())
        }
        12 | 13 if depth < 3 => {
            let mut m = Map::new();
            for _ in 0..rng.usize(..5) {
                m.insert(random_key(rng), random_value(rng, depth + 1));
            }
            Value::Object(m)
        }
        _ => json!(rng.u32(..)),
    }
}

fn random_key(rng: &mut Rng) -> String {
    let keys = [
        "TaskId",
        "UserId",
        "MixInput",
        "MixOutput",
        "StreamId",
        "StreamUrl",
        "RectInfo",
        "Layer",
        "Top",
        "Left",
        "Bottom",
        "Right",
        "Label",
        "Text",
        "Font",
        "WaterMark",
        "Image",
        "UserData",
        "Sequence",
        "interface",
        "para",
        "input_stream_list",
        "layout_params",
        "image_layer",
        "input_type",
        "crop_params",
        "MixStreamSessionId",
        "InputStreamList",
        "LayoutParams",
        "OutputParams",
        "ControlParams",
        "id",
        "inputs",
        "outputs",
        "source",
        "url",
        "stream_id",
        "rect",
        "canvas",
        "overlays",
        "main",
        "backup",
        "vod",
        "urls",
        "Outputs",
        "MainInput",
        "Operation",
        "ProjectId",
        "",
        "unknown_field",
    ];
    if rng.u8(..4) == 0 {
        (0..rng.usize(..10)).map(|_| rng.char(..)).collect()
    } else {
        keys[rng.usize(..keys.len())].to_string()
    }
}

/// One structural change at a random place of `v`: replace, remove, add, or repeat (to cross count limits).
fn mutate_json(rng: &mut Rng, v: &mut Value) {
    // Down to a random node first.
    let descend = rng.u8(..3) > 0;
    match v {
        Value::Object(m) if descend && !m.is_empty() => {
            let k = m.keys().nth(rng.usize(..m.len())).cloned().unwrap();
            return mutate_json(rng, m.get_mut(&k).unwrap());
        }
        Value::Array(a) if descend && !a.is_empty() => {
            let i = rng.usize(..a.len());
            return mutate_json(rng, &mut a[i]);
        }
        _ => {}
    }
    match (rng.u8(..8), v) {
        // A value of the same type: keeps the body parseable, so the translations' rules are reached.
        (5..=7, n @ Value::Number(_)) => {
            *n = [
                json!(rng.i64(-10..20)),
                json!(rng.i64(-5000..5000)),
                json!(rng.f64()),
                json!(i64::MAX),
                json!(-1),
            ][rng.usize(..5)]
            .clone()
        }
        (5..=7, Value::String(t)) => {
            *t = match rng.u8(..3) {
                0 => random_text(rng),
                1 => format!("{t}{}", rng.alphanumeric()),
                _ => t.repeat(rng.usize(2..40)),
            }
        }
        (0, Value::Object(m)) if !m.is_empty() => {
            let k = m.keys().nth(rng.usize(..m.len())).cloned().unwrap();
            m.remove(&k);
        }
        (1, Value::Object(m)) => {
            m.insert(random_key(rng), random_value(rng, 1));
        }
        (0, Value::Array(a)) if !a.is_empty() => {
            a.remove(rng.usize(..a.len()));
        }
        (1, Value::Array(a)) if !a.is_empty() => {
            let item = a[rng.usize(..a.len())].clone();
            for _ in 0..[1, 8, 16, 40][rng.usize(..4)] {
                a.push(item.clone());
            }
        }
        (_, n) => *n = random_value(rng, 1),
    }
}

/// Byte-level damage: flips, insertions, deletions, truncation, splices.
fn mutate_bytes(rng: &mut Rng, b: &mut Vec<u8>) {
    for _ in 0..rng.usize(1..4) {
        let len = b.len();
        match rng.u8(..6) {
            0 if len > 0 => {
                let i = rng.usize(..len);
                b[i] ^= 1 << rng.u8(..8);
            }
            1 => {
                let i = rng.usize(..=len);
                b.insert(i, rng.u8(..));
            }
            2 if len > 0 => {
                let i = rng.usize(..len);
                let j = rng.usize(i..=len.min(i + 16));
                b.drain(i..j);
            }
            3 => b.truncate(rng.usize(..=len)),
            4 => {
                let i = rng.usize(..=len);
                let chunk: &[u8] = [
                    &b"{"[..],
                    b"}",
                    b"[",
                    b"\"",
                    b",",
                    b":",
                    b"\\u0000",
                    b"\xff\xfe",
                    b"1e999",
                ][rng.usize(..9)];
                b.splice(i..i, chunk.iter().copied());
            }
            _ if len > 0 => {
                let i = rng.usize(..len);
                b[i] = rng.u8(..);
            }
            _ => {}
        }
    }
}

/// A body derived from `base`: mostly structural mutations, some byte-level damage, some noise.
fn body_from(rng: &mut Rng, base: &Value) -> Vec<u8> {
    let r = rng.u8(..100);
    if r >= 95 {
        return Vec::new();
    }
    if r >= 88 {
        return (0..rng.usize(..512)).map(|_| rng.u8(..)).collect();
    }
    let mut v = base.clone();
    if r < 78 {
        for _ in 0..rng.usize(1..3) {
            mutate_json(rng, &mut v);
        }
    }
    let mut bytes = v.to_string().into_bytes();
    if r >= 70 {
        mutate_bytes(rng, &mut bytes);
    }
    bytes
}

/// A query string derived from `base`: pairs removed, repeated, replaced or added, or raw junk.
fn query_from(rng: &mut Rng, base: &str) -> String {
    if rng.u8(..100) >= 25 {
        return base.to_string();
    }
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(base.as_bytes())
        .into_owned()
        .collect();
    for _ in 0..rng.usize(1..4) {
        let n = pairs.len();
        match rng.u8(..6) {
            0 if n > 0 => {
                pairs.remove(rng.usize(..n));
            }
            1 if n > 0 => {
                let p = pairs[rng.usize(..n)].clone();
                pairs.push(p);
            }
            2 if n > 0 => {
                let i = rng.usize(..n);
                pairs[i].1 = random_text(rng);
            }
            3 if n > 0 => {
                let i = rng.usize(..n);
                pairs[i].0 = random_text(rng);
            }
            4 => pairs.push((random_text(rng), random_text(rng))),
            _ => {
                let mut raw = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&pairs)
                    .finish();
                raw.push_str(["&&", "%", "%zz", "=&=", "&Action", "#frag", "+%2B"][rng.usize(..7)]);
                return raw;
            }
        }
    }
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&pairs)
        .finish()
}

fn random_text(rng: &mut Rng) -> String {
    match rng.u8(..4) {
        0 => String::new(),
        1 => (0..rng.usize(..40)).map(|_| rng.char(..)).collect(),
        2 => rng.i64(..).to_string(),
        _ => [
            "StartMix",
            "StopMix",
            "GetMixTaskInfo",
            "2.0",
            "1.0",
            "Mix_StreamV2",
            "0",
            "-1",
        ][rng.usize(..8)]
        .to_string(),
    }
}

/// Which dialect `api::app` routes a request to, by the same rules as its router.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Dialect {
    Zego,
    Cgi,
    Cloud,
    Native,
}

fn routed(path: &str, query: &str, headers: &[(String, String)]) -> Dialect {
    if path == "/common_access" {
        return Dialect::Cgi;
    }
    if path != "/" {
        return Dialect::Native;
    }
    if headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("x-tc-action"))
    {
        return Dialect::Cloud;
    }
    let q: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if q.contains_key("Action") {
        Dialect::Zego
    } else {
        Dialect::Native
    }
}

/// Sends one request and checks the answer's envelope against the dialect it was routed to.
async fn check(app: &axum::Router, context: &str, expected: Dialect, req: Request<Body>) -> String {
    let a = send(app, req).await;
    assert_no_secret(&a, context);
    match expected {
        Dialect::Zego => assert_zego_envelope(&a, context).to_string(),
        Dialect::Cgi => assert_cgi_envelope(&a, context).to_string(),
        Dialect::Cloud => assert_tc3_envelope(&a, context),
        Dialect::Native => assert_native_envelope(&a, context),
    }
}

/// Tallies the codes seen, so a run shows which paths the mutations reached.
fn report(name: &str, codes: HashMap<String, usize>, began: Instant) {
    let mut codes: Vec<_> = codes.into_iter().collect();
    codes.sort_by_key(|c| std::cmp::Reverse(c.1));
    eprintln!("{name}: {:?} in {:?}", codes, began.elapsed());
}

#[tokio::test]
async fn zego_requests_always_get_zegos_envelope() {
    let (app, engine) = app(|_| {});
    let mut rng = Rng::with_seed(seed());
    let bases = [
        ("StartMix", zego_start("fuzz")),
        ("StopMix", json!({"TaskId": "fuzz", "UserId": "123"})),
        ("GetMixTaskInfo", json!({})),
    ];
    let began = Instant::now();
    let mut codes = HashMap::new();
    for case in 0..cases() {
        let (action, base) = &bases[rng.usize(..bases.len())];
        let query = query_from(&mut rng, &zego_query(action));
        let body = body_from(&mut rng, base);
        let method = if rng.u8(..10) == 0 { "GET" } else { "POST" };
        let expected = routed("/", &query, &[]);
        let context = format!("seed {} case {case}: {method} /?{query}", seed());
        let code = check(&app, &context, expected, zego_request(method, &query, body)).await;
        *codes.entry(code).or_insert(0) += 1;
    }
    report("zego", codes, began);
    assert!(engine.list().is_empty());
    assert_eq!(engine.active_pulls(), 0);
}

#[tokio::test]
async fn legacy_cgi_requests_always_get_the_cgi_envelope() {
    let (app, engine) = app(|_| {});
    let mut rng = Rng::with_seed(seed() ^ 1);
    let bases = [
        cgi_body(cgi_start("fuzz", 3)),
        cgi_body(json!({"interface": "mix_streamv2.cancel_mix_stream",
                        "mix_stream_session_id": "fuzz", "output_stream_id": "fuzz_out"})),
    ];
    let began = Instant::now();
    let mut codes = HashMap::new();
    for case in 0..cases() {
        let base = &bases[rng.usize(..bases.len())];
        let query = query_from(&mut rng, &cgi_query());
        let body = body_from(&mut rng, base);
        let context = format!("seed {} case {case}: /common_access?{query}", seed() ^ 1);
        let code = check(&app, &context, Dialect::Cgi, cgi_request(&query, body)).await;
        *codes.entry(code).or_insert(0) += 1;
    }
    report("cgi", codes, began);
    assert!(engine.list().is_empty());
    assert_eq!(engine.active_pulls(), 0);
}

/// Mutated headers: one removed, or its value replaced by printable junk or a neighbouring valid value.
fn mutate_headers(rng: &mut Rng, headers: &mut Vec<(String, String)>) {
    let n = headers.len();
    match rng.u8(..5) {
        0 if n > 0 => {
            headers.remove(rng.usize(..n));
        }
        1 if n > 0 => {
            let i = rng.usize(..n);
            headers[i].1 = (0..rng.usize(..60))
                .map(|_| rng.u8(0x20..0x7f) as char)
                .collect();
        }
        2 => {
            let actions = [
                "",
                "CreateCommonMixStream",
                "CancelCommonMixStream",
                "DescribeProjects",
                "CreateProject",
                "HandleStreamConnectProject",
                "DeleteProject",
                "Nope",
            ];
            let v = actions[rng.usize(..actions.len())].to_string();
            match headers.iter_mut().find(|(k, _)| k == "X-TC-Action") {
                Some(h) => h.1 = v,
                None => headers.push(("X-TC-Action".into(), v)),
            }
        }
        3 if n > 0 => {
            // Damage inside the Authorization or Timestamp value, keeping it a valid header value.
            let i = rng.usize(..n);
            let mut bytes = headers[i].1.clone().into_bytes();
            mutate_bytes(rng, &mut bytes);
            headers[i].1 = bytes
                .into_iter()
                .map(|b| {
                    if (0x20..0x7f).contains(&b) {
                        b as char
                    } else {
                        '~'
                    }
                })
                .collect();
        }
        _ => {
            let v = ["2018-08-01", "2019-10-29", "", "2099-01-01"][rng.usize(..4)].to_string();
            match headers.iter_mut().find(|(k, _)| k == "X-TC-Version") {
                Some(h) => h.1 = v,
                None => headers.push(("X-TC-Version".into(), v)),
            }
        }
    }
}

#[tokio::test]
async fn api3_requests_always_get_the_api3_envelope() {
    let (app, engine) = app(|_| {});
    let mut rng = Rng::with_seed(seed() ^ 2);
    let bases = [
        (
            "CreateCommonMixStream",
            "live",
            "2018-08-01",
            tc3_create("fuzz", 3),
        ),
        (
            "CancelCommonMixStream",
            "live",
            "2018-08-01",
            json!({"MixStreamSessionId": "fuzz"}),
        ),
        (
            "CreateProject",
            "cme",
            "2019-10-29",
            json!({
                "Platform": "tessera", "Name": "fuzz", "Category": "STREAM_CONNECT",
                "Owner": {"Type": "PERSON", "Id": "user_1"},
                "StreamConnectProjectInput": {
                    "MainInput": {"InputType": "RtmpPush", "RtmpPushInputInfo": {"ExpiredSecond": 3600}},
                    "Outputs": [{"Id": "1", "Name": "site", "PushUrl": "rtmp://127.0.0.1/mix/fuzz"}]
                }
            }),
        ),
        (
            "DescribeProjects",
            "cme",
            "2019-10-29",
            json!({"Platform": "tessera"}),
        ),
        (
            "HandleStreamConnectProject",
            "cme",
            "2019-10-29",
            json!({"Platform": "tessera", "ProjectId": "none", "Operation": "Stop"}),
        ),
    ];
    let began = Instant::now();
    let mut codes = HashMap::new();
    for case in 0..cases() {
        let (action, service, version, base) = &bases[rng.usize(..bases.len())];
        let body = body_from(&mut rng, base);
        // Mostly signed over the mutated body, so it reaches the parser; sometimes over the original one.
        let signed_body = if rng.u8(..10) < 8 {
            body.clone()
        } else {
            base.to_string().into_bytes()
        };
        let service = if rng.u8(..20) == 0 { "cvm" } else { service };
        let mut headers = tc3_headers(action, service, version, &signed_body);
        if rng.u8(..10) < 3 {
            mutate_headers(&mut rng, &mut headers);
        }
        let expected = routed("/", "", &headers);
        let context = format!("seed {} case {case}: {action} {headers:?}", seed() ^ 2);
        let code = check(&app, &context, expected, tc3_request(&headers, body)).await;
        *codes.entry(code).or_insert(0) += 1;
    }
    report("api3", codes, began);
    assert!(engine.list().is_empty());
    assert_eq!(engine.active_pulls(), 0);
}

#[tokio::test]
async fn native_requests_always_get_the_native_shape() {
    let (app, engine) = app(|_| {});
    let mut rng = Rng::with_seed(seed() ^ 3);
    let mut create = native_spec(2);
    create["id"] = json!("fuzz");
    let relay = json!({
        "main": {"url": "rtmp://127.0.0.1/live/a"},
        "backup": {"vod": {"urls": ["http://127.0.0.1/a.flv"], "loop_times": 1}},
        "outputs": [{"id": "o1", "url": "rtmp://127.0.0.1/mix/r1"}],
        "failover": {"stall_ms": 1000}
    });
    let ids = [
        "fuzz",
        "a-b_c.d~e",
        "%20",
        "..",
        "%ff",
        "%E4%B8%AD",
        "x%2Fy",
    ];
    let began = Instant::now();
    let mut codes = HashMap::new();
    for case in 0..cases() {
        let id = if rng.bool() {
            "fuzz".to_string()
        } else if rng.bool() {
            ids[rng.usize(..ids.len())].to_string()
        } else {
            std::iter::repeat_n('m', [1, 128, 129, 300][rng.usize(..4)]).collect()
        };
        let (method, uri, body) = match rng.u8(..7) {
            0 | 1 => (
                "PUT",
                format!("/v1/mixes/{id}"),
                body_from(&mut rng, &native_spec(2)),
            ),
            2 => (
                "POST",
                "/v1/mixes".to_string(),
                body_from(&mut rng, &create),
            ),
            3 => (
                "PUT",
                format!("/v1/relays/{id}"),
                body_from(&mut rng, &relay),
            ),
            4 => (
                "PUT",
                format!("/v1/pictures/{id}"),
                (0..rng.usize(..256)).map(|_| rng.u8(..)).collect(),
            ),
            5 => ("DELETE", format!("/v1/mixes/{id}"), Vec::new()),
            _ => ["GET", "DELETE"].map(|m| (m, format!("/v1/relays/{id}"), Vec::new()))
                [rng.usize(..2)]
            .clone(),
        };
        let context = format!("seed {} case {case}: {method} {uri}", seed() ^ 3);
        let code = check(
            &app,
            &context,
            Dialect::Native,
            native_request(method, &uri, body),
        )
        .await;
        *codes.entry(code).or_insert(0) += 1;
    }
    report("native", codes, began);
    assert!(engine.list().is_empty());
    assert_eq!(engine.active_pulls(), 0);
}
