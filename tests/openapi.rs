//! The OpenAPI document that `GET /openapi.json` serves, generated from the Rust types and handlers:
//! - it is valid for the OpenAPI version it states, by `openapi-spec-validator` (Python; `scripts/setup` installs
//!   it into `.deps/python`, and these tests fail, saying so, when it is missing);
//! - it documents every route the native router serves, and nothing else;
//! - its schemas describe what the server really writes (answers of the in-process app and statuses built here
//!   validate against the documented response of their status code) and reads (request bodies serde accepts are
//!   the ones the schema admits, and those it refuses the schema refuses).
//!
//! In-process (`oneshot`): no media, no sockets, no pipeline is started.

mod inproc;

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use axum::{
    body::Body,
    http::{Request, StatusCode},
    Router,
};
use inproc::{send, Answer};
use serde_json::{json, Value};

use tessera::{
    api::native::{Applied, CreateBody, MixAnswer},
    engine::{
        status::{self, InputStatus, LinkState, MixState, OutputStatus},
        MixView,
    },
    model::{Color, MixSpec},
    relay::{
        status::{InputState, ProjectState},
        Endpoint, RelaySpec, RelayStatus, RelayView, VodPosition,
    },
    Config,
};

const SETUP_HINT: &str =
    "openapi-spec-validator is missing: run `bash scripts/setup`, which installs it into .deps/python";

/// Every (method, path) the native router serves, as the document spells them. The vendor dialects' and the RTMP
/// servers' callbacks (`VENDOR_PATHS`) are not part of the native API and not documented.
const ROUTES: [(&str, &str); 29] = [
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/openapi.json"),
    ("get", "/v1/mixes"),
    ("post", "/v1/mixes"),
    ("get", "/v1/mixes/{id}"),
    ("put", "/v1/mixes/{id}"),
    ("delete", "/v1/mixes/{id}"),
    ("get", "/v1/relays"),
    ("get", "/v1/relays/{id}"),
    ("put", "/v1/relays/{id}"),
    ("delete", "/v1/relays/{id}"),
    ("post", "/v1/relays/{id}/start"),
    ("post", "/v1/relays/{id}/stop"),
    ("post", "/v1/relays/{id}/switch"),
    ("get", "/v1/mixes/{id}/snapshot.jpg"),
    ("get", "/v1/mixes/{id}/inputs/{input}/snapshot.jpg"),
    ("get", "/v1/mixes/{id}/live.flv"),
    ("get", "/v1/relays/{id}/inputs/{input}/snapshot.jpg"),
    ("get", "/v1/relays/{id}/live.flv"),
    ("get", "/v1/pictures"),
    ("get", "/v1/pictures/{id}"),
    ("put", "/v1/pictures/{id}"),
    ("delete", "/v1/pictures/{id}"),
    ("get", "/v1/events"),
    ("get", "/metrics"),
    ("post", "/v1/admin/reload"),
    ("get", "/v1/cluster"),
    ("post", "/v1/cluster/drain"),
];

/// Routes of `api::app` that are not the native API: Tencent Cloud API 3.0 and ZEGO (`/`), Tencent's legacy CGI,
/// and the publish notifications of nginx-rtmp and SRS.
const VENDOR_PATHS: [&str; 6] = [
    "/",
    "/common_access",
    "/callbacks/nginx/on_publish",
    "/callbacks/nginx/on_publish_done",
    "/callbacks/srs/on_publish",
    "/callbacks/srs/on_unpublish",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `script` with Debian's Python and `.deps/python` on its path, `input` (JSON) in a file named by
/// `sys.argv[1]`; returns what it printed as JSON. Fails with the setup hint when the validator is not there.
fn python(script: &str, input: &Value) -> Value {
    let deps = root().join(".deps/python");
    let present = Command::new("/usr/bin/python3")
        .env("PYTHONPATH", &deps)
        .args([
            "-c",
            "import openapi_spec_validator, openapi_schema_validator",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run /usr/bin/python3 ({e}): {SETUP_HINT}"));
    assert!(
        present.status.success(),
        "{SETUP_HINT}\n{}",
        String::from_utf8_lossy(&present.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.json");
    std::fs::write(&file, serde_json::to_vec(input).unwrap()).unwrap();
    let out = Command::new("/usr/bin/python3")
        .env("PYTHONPATH", &deps)
        .arg("-c")
        .arg(script)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Python check failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "the Python check printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn app(adjust: impl FnOnce(&mut Config)) -> Router {
    inproc::app(adjust).0
}

async fn call(app: &Router, method: &str, uri: &str, ct: Option<&str>, body: Vec<u8>) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(ct) = ct {
        req = req.header("content-type", ct);
    }
    send(app, req.body(Body::from(body)).unwrap()).await
}

/// The document, as served.
async fn document() -> Value {
    let answer = call(&app(|_| {}), "GET", "/openapi.json", None, vec![]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.headers["content-type"], "application/json",
        "served as JSON"
    );
    assert!(answer.json.is_object(), "the document is a JSON object");
    answer.json
}

const VALIDATE_DOCUMENT: &str = r#"
import copy, json, sys
from openapi_spec_validator import validate
doc = json.load(open(sys.argv[1]))
result = {"openapi": doc.get("openapi")}
try:
    validate(doc)
    result["valid"] = True
except Exception as e:
    result["valid"] = False
    result["error"] = type(e).__name__ + ": " + str(e).splitlines()[0]
# The validator must refuse a broken copy, or its verdict above means nothing.
broken = copy.deepcopy(doc)
broken["components"]["schemas"]["MixSpec"]["type"] = "mix"
try:
    validate(broken)
    result["refuses_broken"] = False
except Exception:
    result["refuses_broken"] = True
print(json.dumps(result))
"#;

#[tokio::test]
async fn document_is_valid_for_the_version_it_states() {
    let doc = document().await;
    let result = python(VALIDATE_DOCUMENT, &doc);
    assert_eq!(result["openapi"], "3.1.0", "{result}");
    assert_eq!(
        result["valid"], true,
        "openapi-spec-validator refuses the document: {}",
        result["error"]
    );
    assert_eq!(
        result["refuses_broken"], true,
        "the validator accepts a broken document"
    );
}

/// The paths of the `.route("...")` calls in a router's source.
fn routes_in(source: &str) -> Vec<String> {
    source
        .match_indices(".route(")
        .filter_map(|(i, _)| {
            let rest = source[i + ".route(".len()..].trim_start();
            let rest = rest.strip_prefix('"')?;
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect()
}

#[tokio::test]
async fn every_native_route_is_documented_and_served() {
    let doc = document().await;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let listed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, listed,
        "the document's operations against ROUTES"
    );

    // Every route in the routers' sources is in ROUTES, or a vendor's.
    let api = root().join("src/api");
    let mut in_source = Vec::new();
    for file in [
        "mod.rs",
        "native.rs",
        "relays.rs",
        "preview.rs",
        "pictures.rs",
        "events.rs",
        "metrics.rs",
        "reload.rs",
        "cluster.rs",
    ] {
        in_source.extend(routes_in(&std::fs::read_to_string(api.join(file)).unwrap()));
    }
    assert!(
        in_source.len() >= 10,
        "the scan finds the routes: {in_source:?}"
    );
    for path in &in_source {
        assert!(
            ROUTES.iter().any(|(_, p)| p == path) || VENDOR_PATHS.contains(&path.as_str()),
            "{path} is routed in src/api but neither documented nor a vendor's"
        );
    }

    // And the router answers exactly ROUTES' methods on each documented path (405 for the others).
    let app = app(|_| {});
    for path in doc["paths"].as_object().unwrap().keys() {
        let uri = path
            .replace("{id}", "openapi-probe")
            .replace("{input}", "main");
        for method in ["get", "post", "put", "delete", "patch"] {
            if (method, uri.as_str()) == ("get", "/v1/events") {
                // A stream that never ends: its status and type say it is served.
                let req = Request::builder().uri(&uri).body(Body::empty()).unwrap();
                let resp = tower::ServiceExt::oneshot(app.clone(), req).await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                assert_eq!(resp.headers()["content-type"], "text/event-stream");
                continue;
            }
            let answer = call(&app, &method.to_uppercase(), &uri, None, vec![]).await;
            let routed = answer.status != StatusCode::METHOD_NOT_ALLOWED
                && answer.json["error"]["message"] != "no such endpoint";
            let documented = ROUTES.contains(&(method, path.as_str()));
            assert_eq!(
                routed, documented,
                "{method} {uri}: answered {} {}",
                answer.status, answer.json
            );
        }
    }
}

/// Validates each instance against a schema of the document: `{"schema": "#/components/..."}`, or the
/// documented `{"response": [path, method, status]}` or `{"request": [path, method]}` body. Prints, for each
/// check, whether the schema admits the instance (or that the response is not documented).
const VALIDATE_INSTANCES: &str = r#"
import json, sys
from openapi_schema_validator import OAS31Validator
data = json.load(open(sys.argv[1]))
doc = data["doc"]

def deref(obj):
    while "$ref" in obj:
        target = doc
        for part in obj["$ref"][2:].split("/"):
            target = target[part]
        obj = target
    return obj

out = []
for check in data["checks"]:
    result = {"name": check["name"]}
    try:
        if "schema" in check:
            schema = {"$ref": check["schema"]}
        elif "response" in check:
            path, method, status = check["response"]
            response = deref(doc["paths"][path][method]["responses"][str(status)])
            schema = response["content"]["application/json"]["schema"]
        else:
            path, method = check["request"]
            body = deref(doc["paths"][path][method]["requestBody"])
            schema = body["content"]["application/json"]["schema"]
    except KeyError as e:
        result["undocumented"] = "no " + str(e)
        out.append(result)
        continue
    root = dict(schema)
    root["components"] = doc["components"]
    errors = sorted(OAS31Validator(root).iter_errors(check["instance"]), key=lambda e: list(e.absolute_path))
    result["admitted"] = not errors
    if errors:
        e = errors[0]
        result["error"] = "/".join(map(str, e.absolute_path)) + ": " + e.message[:300]
    out.append(result)
print(json.dumps(out))
"#;

struct Check {
    name: String,
    target: Value,
    instance: Value,
    /// Whether the schema must admit the instance.
    admitted: bool,
}

fn schema(name: &str) -> Value {
    json!({ "schema": format!("#/components/schemas/{name}") })
}

/// Runs every check in one Python process; fails listing each disagreement.
async fn run_checks(checks: Vec<Check>) {
    assert!(!checks.is_empty());
    let doc = document().await;
    let input = json!({
        "doc": doc,
        "checks": checks.iter().map(|c| {
            let mut v = c.target.clone();
            v["name"] = json!(c.name);
            v["instance"] = c.instance.clone();
            v
        }).collect::<Vec<_>>(),
    });
    let results = python(VALIDATE_INSTANCES, &input);
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), checks.len());
    let mut wrong = Vec::new();
    for (check, result) in checks.iter().zip(results) {
        if let Some(missing) = result.get("undocumented") {
            wrong.push(format!("{}: not documented ({missing})", check.name));
        } else if result["admitted"] != check.admitted {
            let said = if check.admitted { "refuses" } else { "admits" };
            let mut instance: String = check.instance.to_string().chars().take(300).collect();
            if instance.len() < check.instance.to_string().len() {
                instance.push_str("...");
            }
            wrong.push(format!(
                "{}: the schema {said} {instance} ({})",
                check.name, result["error"]
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} checks disagree:\n{}",
        wrong.len(),
        checks.len(),
        wrong.join("\n")
    );
}

/// A 2×2 RGBA PNG, written by hand (stored deflate block, CRC-32, Adler-32).
fn tiny_png() -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(png: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        png.extend((data.len() as u32).to_be_bytes());
        let start = png.len();
        png.extend(kind);
        png.extend(data);
        let crc = crc32(&png[start..]);
        png.extend(crc.to_be_bytes());
    }
    let (w, h) = (2u32, 2u32);
    // Each row: filter type 0 (none), then its RGBA pixels.
    let row: Vec<u8> = std::iter::once(0)
        .chain([0x20, 0x20, 0x40, 0xFF].repeat(w as usize))
        .collect();
    let raw = row.repeat(h as usize);
    let (mut a, mut b) = (1u32, 0u32);
    for &x in &raw {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend((raw.len() as u16).to_le_bytes());
    zlib.extend((!(raw.len() as u16)).to_le_bytes());
    zlib.extend(&raw);
    zlib.extend(((b << 16) | a).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 6, 0, 0, 0]); // 8-bit RGBA
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &zlib);
    chunk(&mut png, b"IEND", &[]);
    png
}

fn valid_spec() -> Value {
    json!({
        "canvas": {"width": 640, "height": 360},
        "inputs": [{"id": "a", "source": {"stream_id": "a"}, "rect": {"x": 0, "y": 0, "width": 320, "height": 180}}],
        "outputs": [{"target": {"stream_id": "out"}}]
    })
}

/// A request: method, path as documented, URI, content type, body.
type Exchange = (
    &'static str,
    &'static str,
    String,
    Option<&'static str>,
    Vec<u8>,
);

#[tokio::test]
async fn answers_of_every_status_match_their_documented_schema() {
    let app = app(|c| {
        c.pictures
            .insert("cfg".into(), "/nonexistent/cfg.png".into());
    });
    let exchanges: Vec<Exchange> = vec![
        ("get", "/readyz", "/readyz".into(), None, vec![]),
        ("get", "/v1/mixes", "/v1/mixes".into(), None, vec![]),
        (
            "post",
            "/v1/mixes",
            "/v1/mixes".into(),
            Some("application/json"),
            {
                let mut body = valid_spec();
                body["id"] = json!("m1");
                body.to_string().into_bytes()
            },
        ),
        (
            "put",
            "/v1/mixes/{id}",
            "/v1/mixes/m1".into(),
            Some("application/json"),
            json!({"canvas": {"width": 641}, "outputs": []})
                .to_string()
                .into_bytes(),
        ),
        (
            "put",
            "/v1/mixes/{id}",
            "/v1/mixes/m1".into(),
            Some("application/json"),
            br#"{"canvas": {"width": 640}, "bogus": 1}"#.to_vec(),
        ),
        (
            "put",
            "/v1/mixes/{id}",
            "/v1/mixes/m1".into(),
            Some("application/json"),
            b"{not json".to_vec(),
        ),
        (
            "put",
            "/v1/mixes/{id}",
            "/v1/mixes/m1".into(),
            None,
            valid_spec().to_string().into_bytes(),
        ),
        (
            "put",
            "/v1/mixes/{id}",
            "/v1/mixes/m1".into(),
            Some("application/json"),
            vec![b' '; 65 * 1024],
        ),
        (
            "put",
            "/v1/mixes/{id}",
            "/v1/mixes/bad%20id".into(),
            Some("application/json"),
            valid_spec().to_string().into_bytes(),
        ),
        (
            "get",
            "/v1/mixes/{id}",
            "/v1/mixes/nope".into(),
            None,
            vec![],
        ),
        (
            "delete",
            "/v1/mixes/{id}",
            "/v1/mixes/nope".into(),
            None,
            vec![],
        ),
        (
            "put",
            "/v1/relays/{id}",
            "/v1/relays/r1".into(),
            Some("application/json"),
            json!({
                "main": {"push": "studio"},
                "backup": {"vod": {"urls": ["http://127.0.0.1:1/a.flv"], "loop_times": -1}},
                "outputs": [{"id": "a", "name": "A", "url": "rtmp://127.0.0.1:1/app/key"}],
                "stop_at": 1
            })
            .to_string()
            .into_bytes(),
        ),
        (
            "put",
            "/v1/relays/{id}",
            "/v1/relays/r1".into(),
            Some("application/json"),
            json!({"main": {"push": "studio"}, "stop_at": 1})
                .to_string()
                .into_bytes(),
        ),
        (
            "put",
            "/v1/relays/{id}",
            "/v1/relays/r2".into(),
            Some("application/json"),
            json!({"main": {"url": "ftp://x/y"}})
                .to_string()
                .into_bytes(),
        ),
        ("get", "/v1/relays", "/v1/relays".into(), None, vec![]),
        (
            "get",
            "/v1/relays/{id}",
            "/v1/relays/r1".into(),
            None,
            vec![],
        ),
        (
            "get",
            "/v1/relays/{id}",
            "/v1/relays/nope".into(),
            None,
            vec![],
        ),
        // stop_at is in the past: refused before anything starts.
        (
            "post",
            "/v1/relays/{id}/start",
            "/v1/relays/r1/start".into(),
            None,
            vec![],
        ),
        (
            "post",
            "/v1/relays/{id}/start",
            "/v1/relays/nope/start".into(),
            None,
            vec![],
        ),
        (
            "post",
            "/v1/relays/{id}/stop",
            "/v1/relays/r1/stop".into(),
            None,
            vec![],
        ),
        (
            "post",
            "/v1/relays/{id}/switch",
            "/v1/relays/r1/switch".into(),
            Some("application/json"),
            br#"{"input": "backup"}"#.to_vec(),
        ),
        (
            "post",
            "/v1/relays/{id}/switch",
            "/v1/relays/r1/switch".into(),
            Some("application/json"),
            br#"{"input": "sideways"}"#.to_vec(),
        ),
        (
            "delete",
            "/v1/relays/{id}",
            "/v1/relays/r1".into(),
            None,
            vec![],
        ),
        (
            "delete",
            "/v1/relays/{id}",
            "/v1/relays/r1".into(),
            None,
            vec![],
        ),
        (
            "put",
            "/v1/pictures/{id}",
            "/v1/pictures/logo".into(),
            Some("image/png"),
            tiny_png(),
        ),
        (
            "put",
            "/v1/pictures/{id}",
            "/v1/pictures/logo".into(),
            Some("image/png"),
            tiny_png(),
        ),
        (
            "put",
            "/v1/pictures/{id}",
            "/v1/pictures/gif".into(),
            None,
            b"GIF89a....".to_vec(),
        ),
        (
            "put",
            "/v1/pictures/{id}",
            "/v1/pictures/cfg".into(),
            None,
            tiny_png(),
        ),
        (
            "put",
            "/v1/pictures/{id}",
            "/v1/pictures/big".into(),
            None,
            vec![0u8; 4 * 1024 * 1024 + 1],
        ),
        (
            "put",
            "/v1/pictures/{id}",
            "/v1/pictures/bad%20id".into(),
            None,
            tiny_png(),
        ),
        ("get", "/v1/pictures", "/v1/pictures".into(), None, vec![]),
        (
            "get",
            "/v1/pictures/{id}",
            "/v1/pictures/logo".into(),
            None,
            vec![],
        ),
        (
            "get",
            "/v1/pictures/{id}",
            "/v1/pictures/cfg".into(),
            None,
            vec![],
        ),
        (
            "delete",
            "/v1/pictures/{id}",
            "/v1/pictures/cfg".into(),
            None,
            vec![],
        ),
        (
            "delete",
            "/v1/pictures/{id}",
            "/v1/pictures/logo".into(),
            None,
            vec![],
        ),
        (
            "get",
            "/v1/pictures/{id}",
            "/v1/pictures/logo".into(),
            None,
            vec![],
        ),
    ];
    let doc = document().await;
    let mut checks = Vec::new();
    let mut statuses = BTreeSet::new();
    for (method, path, uri, ct, body) in exchanges {
        let answer = call(&app, &method.to_uppercase(), &uri, ct, body).await;
        let status = answer.status.as_u16();
        statuses.insert(status);
        let name = format!("{} {uri} -> {status}", method.to_uppercase());
        if answer.bytes.is_empty() {
            assert_eq!(status, 204, "{name}: only 204 has no body");
            let documented = &doc["paths"][path][method]["responses"]["204"];
            assert!(documented.is_object(), "{name}: not documented");
            assert!(
                documented.get("content").is_none(),
                "{name}: documented with a body"
            );
            continue;
        }
        assert!(answer.json.is_object(), "{name}: not JSON");
        checks.push(Check {
            name,
            target: json!({"response": [path, method, status]}),
            instance: answer.json,
            admitted: true,
        });
    }
    // The answers cover successes and each kind of refusal the document lists.
    for status in [200, 201, 204, 400, 404, 409, 413, 415, 422] {
        assert!(
            statuses.contains(&status),
            "no answer was {status}: {statuses:?}"
        );
    }

    // The rate limit's answer, with its Retry-After.
    let limited = app_limited().await;
    assert!(limited.headers.contains_key("retry-after"));
    checks.push(Check {
        name: "GET /v1/mixes -> 429".into(),
        target: json!({"response": ["/v1/mixes", "get", 429]}),
        instance: limited.json,
        admitted: true,
    });

    run_checks(checks).await;

    // /healthz answers plain text.
    let health = call(&app, "GET", "/healthz", None, vec![]).await;
    assert_eq!(health.bytes, b"ok");
    assert!(
        doc["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["text/plain"].is_object()
    );
}

/// An answer of the native rate limit (`server.max_requests_per_s`).
async fn app_limited() -> Answer {
    let app = app(|c| c.server.max_requests_per_s = 1);
    for _ in 0..10 {
        let answer = call(&app, "GET", "/v1/mixes", None, vec![]).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            return answer;
        }
    }
    panic!("the rate limit never answered 429");
}

fn link_states() -> Vec<LinkState> {
    vec![
        LinkState::Idle,
        LinkState::Connecting { attempt: 0 },
        LinkState::Live,
        LinkState::Retrying {
            attempt: 3,
            last_error: "connection refused".into(),
            retry_in_ms: 4000,
        },
        LinkState::Failed {
            last_error: "retry budget spent".into(),
        },
    ]
}

/// Mix views in every state a status can take.
fn mix_views() -> Vec<MixView> {
    let config = Config::default();
    let spec: MixSpec = serde_json::from_value(valid_spec()).unwrap();
    let mut views = Vec::new();
    for (state, error) in [
        (MixState::Starting, None),
        (MixState::Running, None),
        (MixState::Failed, Some("x264enc is missing".to_string())),
    ] {
        let status = status::not_running(&spec, state, error, &config);
        views.push(MixView {
            id: "m1".into(),
            spec: spec.clone(),
            status,
        });
    }
    let running = views[1].status.clone();
    for (i, state) in link_states().into_iter().enumerate() {
        let mut status = running.clone();
        status.output_fps = 29.97;
        status.inputs.push(InputStatus {
            id: format!("extra{i}"),
            url: "rtmp://h/live/x".into(),
            state: state.clone(),
            video_size: (i % 2 == 0).then_some((1280, 720)),
            last_frame_age_ms: (i % 2 == 0).then_some(33),
            reconnects: i as u64,
        });
        status.outputs.push(OutputStatus {
            url: "rtmp://h/live/out".into(),
            state,
            bitrate_kbps: 2480,
            reconnects: 1,
        });
        views.push(MixView {
            id: format!("m{i}"),
            spec: spec.clone(),
            status,
        });
    }
    views
}

/// Relay views: idle, and working with every input and output state.
fn relay_views() -> Vec<RelayView> {
    let spec: RelaySpec = serde_json::from_value(json!({
        "main": {"url": "rtmp://h/live/main"},
        "backup": {"vod": {"urls": ["http://h/a.flv", "http://h/b.flv"]}},
        "outputs": [{"id": "a", "url": "rtmp://h/app/a"}]
    }))
    .unwrap();
    let idle = RelayStatus {
        state: ProjectState::Idle,
        active: None,
        started_at: None,
        stopped_at: Some(1_700_000_000),
        main: None,
        backup: None,
        outputs: vec![],
        switches: 0,
        push_urls: vec![],
    };
    let mut views = vec![RelayView {
        id: "r1".into(),
        spec: spec.clone(),
        status: idle,
    }];
    let inputs = [
        InputState::Live,
        InputState::Stalled,
        InputState::Absent { last_error: None },
        InputState::Absent {
            last_error: Some("404".into()),
        },
    ];
    for (i, (input, output)) in inputs
        .into_iter()
        .zip(link_states().into_iter().cycle())
        .enumerate()
    {
        let status = RelayStatus {
            state: ProjectState::Working,
            active: Some(if i % 2 == 0 {
                Endpoint::Main
            } else {
                Endpoint::Backup
            }),
            started_at: Some(1_700_000_000),
            stopped_at: None,
            main: Some(tessera::relay::status::InputStatus {
                url: "rtmp://h/live/main".into(),
                state: input.clone(),
                vod: None,
            }),
            backup: Some(tessera::relay::status::InputStatus {
                url: "http://h/a.flv".into(),
                state: input,
                vod: Some(VodPosition {
                    index: 0,
                    url: "http://h/a.flv".into(),
                    seconds: 12.5,
                    pass: 1,
                }),
            }),
            outputs: vec![tessera::relay::status::OutputStatus {
                id: "a".into(),
                url: "rtmp://h/app/a".into(),
                state: output,
                bitrate_kbps: 2000,
                bytes: 123_456,
                reconnects: 3,
            }],
            switches: 2,
            push_urls: vec!["rtmp://h/live/studio".into()],
        };
        views.push(RelayView {
            id: format!("r{i}"),
            spec: spec.clone(),
            status,
        });
    }
    views
}

/// The schema `v` stands for: through `$ref`s.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    while let Some(r) = v.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/components/schemas/").unwrap();
        v = &doc["components"]["schemas"][name];
    }
    v
}

/// Every property the schema requires is in `value`, at every depth (statuses' `oneOf` by their `state`).
fn required_present(
    doc: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    missing: &mut Vec<String>,
) {
    let schema = resolve(doc, schema);
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        for part in parts {
            required_present(doc, part, value, at, missing);
        }
    }
    if let Some(branches) = schema.get("oneOf").and_then(Value::as_array) {
        if value.is_null() {
            return;
        }
        // The branch of its `state` (a status), or the one whose required fields are there (a variant).
        let candidates: Vec<&Value> = branches
            .iter()
            .map(|b| resolve(doc, b))
            .filter(|b| b["type"] != "null")
            .collect();
        let fits = |b: &&Value| match value.get("state") {
            Some(state) => b["properties"]["state"]["enum"]
                .as_array()
                .is_none_or(|e| e.contains(state)),
            None => b["required"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|r| value.get(r.as_str().unwrap()).is_some()),
        };
        let branch = candidates.into_iter().find(fits);
        match branch {
            Some(b) => required_present(doc, b, value, at, missing),
            None => missing.push(format!("{at}: no branch of its oneOf fits {value}")),
        }
    }
    if let Some(fields) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap();
            if !fields.contains_key(name) {
                missing.push(format!("{at}.{name}"));
            }
        }
        if let Some(properties) = schema["properties"].as_object() {
            for (name, field) in fields {
                if let Some(s) = properties.get(name) {
                    required_present(doc, s, field, &format!("{at}.{name}"), missing);
                }
            }
        }
    }
    if let (Some(items), Some(list)) = (schema.get("items"), value.as_array()) {
        for (i, item) in list.iter().enumerate() {
            required_present(doc, items, item, &format!("{at}[{i}]"), missing);
        }
    }
}

#[tokio::test]
async fn statuses_in_every_state_match_their_schemas() {
    let doc = document().await;
    let mut checks = Vec::new();
    let mut missing = Vec::new();
    let mut add = |name: String, schema_name: &str, value: Value| {
        required_present(
            &doc,
            &json!({"$ref": format!("#/components/schemas/{schema_name}")}),
            &value,
            &name,
            &mut missing,
        );
        checks.push(Check {
            name,
            target: schema(schema_name),
            instance: value,
            admitted: true,
        });
    };
    for (i, view) in mix_views().into_iter().enumerate() {
        add(
            format!("mix view {i}"),
            "MixView",
            serde_json::to_value(&view).unwrap(),
        );
        for applied in [Applied::Created, Applied::UpdatedLive, Applied::Restarted] {
            let answer = MixAnswer {
                view: view.clone(),
                applied,
            };
            add(
                format!("mix answer {i}"),
                "MixAnswer",
                serde_json::to_value(&answer).unwrap(),
            );
        }
    }
    for (i, view) in relay_views().into_iter().enumerate() {
        add(
            format!("relay view {i}"),
            "RelayView",
            serde_json::to_value(&view).unwrap(),
        );
    }
    assert!(
        missing.is_empty(),
        "required by the schema, absent from the value:\n{}",
        missing.join("\n")
    );

    // The checks can fail: a view without its status, an unknown state, a status that lost a field.
    // mix_views()[4]: its second input and output are `connecting`.
    let mut view = serde_json::to_value(&mix_views()[4]).unwrap();
    let mut no_status = view.clone();
    no_status.as_object_mut().unwrap().remove("status");
    let mut bad_state = view.clone();
    bad_state["status"]["inputs"][1]["state"] = json!("lost");
    view["status"]["outputs"][1]
        .as_object_mut()
        .unwrap()
        .remove("attempt");
    for (name, value) in [
        ("no status", no_status),
        ("unknown link state", bad_state),
        ("connecting without attempt", view),
    ] {
        let mut gaps = Vec::new();
        required_present(
            &doc,
            &json!({"$ref": "#/components/schemas/MixView"}),
            &value,
            name,
            &mut gaps,
        );
        checks.push(Check {
            name: name.into(),
            target: schema("MixView"),
            instance: value,
            admitted: false,
        });
        assert!(!gaps.is_empty(), "{name}: the required check sees nothing");
    }
    run_checks(checks).await;
}

/// serde's verdict on `value` as a `T`.
fn reads<T: serde::de::DeserializeOwned>(value: &Value) -> bool {
    serde_json::from_value::<T>(value.clone()).is_ok()
}

/// `base` with `edit` applied.
fn with(base: &Value, edit: impl FnOnce(&mut Value)) -> Value {
    let mut v = base.clone();
    edit(&mut v);
    v
}

#[tokio::test]
async fn request_schemas_admit_exactly_what_serde_reads() {
    let spec = json!({
        "canvas": {"width": 1280, "height": 720, "fps": 30, "background": "#202040", "background_image": "bg.png"},
        "inputs": [{
            "id": "a", "source": {"stream_id": "a"}, "content": "video", "layer": 2,
            "rect": {"x": 0, "y": 0, "width": 640, "height": 360},
            "crop": {"x": 10, "y": 10, "width": 320, "height": 180},
            "fit": "crop_to_fill", "corner_radius": 10, "volume": 150,
            "label": {"text": "A", "font_size": 24, "color": "#FFFFFF80", "opacity": 90, "x": 4, "y": 4},
            "sound_level_id": 7
        }],
        "overlays": [
            {"id": "logo", "image": "https://h/logo.png", "opaque": true, "rect": {"x": 10, "y": 10, "width": 100, "height": 50}},
            {"id": "bar", "color": "0x00000080", "rect": {"x": 0, "y": 600, "width": 1280, "height": 120}, "layer": 5}
        ],
        "outputs": [
            {"target": {"stream_id": "out"}, "video": {"codec": "h265", "flv_form": "codec_id_12", "bitrate_kbps": 2500, "fps": 25, "gop_s": 2},
             "audio": {"codec": "mp3", "bitrate_kbps": 128, "sample_rate": 44100, "channels": 1}},
            {"target": {"url": "rtmp://h/live/audio"}, "video": null}
        ],
        "sei": {"user_data_base64": "aGVsbG8=", "sound_levels": true, "pass_input": true}
    });
    let mix_cases: Vec<(&str, Value)> = vec![
        ("minimal", valid_spec()),
        ("every field", spec.clone()),
        ("empty", json!({})),
        ("unknown field", with(&spec, |v| v["bogus"] = json!(1))),
        (
            "unknown canvas field",
            with(&spec, |v| v["canvas"]["depth"] = json!(8)),
        ),
        (
            "null rect",
            with(&spec, |v| v["inputs"][0]["rect"] = Value::Null),
        ),
        (
            "null label",
            with(&spec, |v| v["inputs"][0]["label"] = Value::Null),
        ),
        ("null canvas", with(&spec, |v| v["canvas"] = Value::Null)),
        (
            "null audio",
            with(&spec, |v| v["outputs"][0]["audio"] = Value::Null),
        ),
        (
            "source with both keys",
            with(&spec, |v| {
                v["inputs"][0]["source"] = json!({"stream_id": "a", "url": "rtmp://h/a"})
            }),
        ),
        (
            "source with an extra key",
            with(&spec, |v| {
                v["inputs"][0]["source"] = json!({"stream_id": "a", "x": 1})
            }),
        ),
        (
            "empty source",
            with(&spec, |v| v["inputs"][0]["source"] = json!({})),
        ),
        (
            "source as a string",
            with(&spec, |v| v["inputs"][0]["source"] = json!("a")),
        ),
        (
            "target url",
            with(&spec, |v| {
                v["outputs"][0]["target"] = json!({"url": "rtmps://h/live/x"})
            }),
        ),
        (
            "unknown content",
            with(&spec, |v| v["inputs"][0]["content"] = json!("both")),
        ),
        (
            "unknown fit",
            with(&spec, |v| v["inputs"][0]["fit"] = json!("cover")),
        ),
        (
            "unknown codec",
            with(&spec, |v| v["outputs"][0]["video"]["codec"] = json!("vp9")),
        ),
        (
            "unknown flv form",
            with(&spec, |v| {
                v["outputs"][0]["video"]["flv_form"] = json!("codec_id_13")
            }),
        ),
        (
            "named colour",
            with(&spec, |v| v["canvas"]["background"] = json!("red")),
        ),
        (
            "input without id",
            with(&spec, |v| {
                v["inputs"][0].as_object_mut().unwrap().remove("id");
            }),
        ),
        (
            "label without text",
            with(&spec, |v| {
                v["inputs"][0]["label"]
                    .as_object_mut()
                    .unwrap()
                    .remove("text");
            }),
        ),
        (
            "overlay without rect",
            with(&spec, |v| {
                v["overlays"][0].as_object_mut().unwrap().remove("rect");
            }),
        ),
        (
            "width as a string",
            with(&spec, |v| v["canvas"]["width"] = json!("1280")),
        ),
        (
            "fractional volume",
            with(&spec, |v| v["inputs"][0]["volume"] = json!(99.5)),
        ),
        (
            "null fps",
            with(&spec, |v| v["outputs"][0]["video"]["fps"] = Value::Null),
        ),
        (
            "null user data",
            with(&spec, |v| v["sei"]["user_data_base64"] = Value::Null),
        ),
        (
            "rect with an extra field",
            with(&spec, |v| v["inputs"][0]["rect"]["z"] = json!(0)),
        ),
    ];
    let mut checks = Vec::new();
    let mut check = |name: String, target: Value, instance: Value, admitted: bool| {
        checks.push(Check {
            name,
            target,
            instance,
            admitted,
        })
    };
    for (name, value) in &mix_cases {
        let ok = reads::<MixSpec>(value);
        check(
            format!("MixSpec: {name}"),
            json!({"request": ["/v1/mixes/{id}", "put"]}),
            value.clone(),
            ok,
        );
        let mut create = value.clone();
        if let Some(o) = create.as_object_mut() {
            o.insert("id".into(), json!("m1"));
        }
        check(
            format!("MixCreate: {name}"),
            json!({"request": ["/v1/mixes", "post"]}),
            create.clone(),
            reads::<CreateBody>(&create),
        );
    }
    // In the shipped scenes too.
    let scenes: Vec<PathBuf> = std::iter::once(root().join("pipelines/demo-mix.json"))
        .chain(
            std::fs::read_dir(root().join("benches/scenes"))
                .unwrap()
                .map(|e| e.unwrap().path()),
        )
        .collect();
    for file in scenes {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".json") {
            continue;
        }
        let value: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let (target, ok) = if name.ends_with(".relay.json") {
            (schema("RelaySpec"), reads::<RelaySpec>(&value))
        } else {
            (schema("MixSpec"), reads::<MixSpec>(&value))
        };
        assert!(ok, "{name} is read");
        check(format!("scene {}", display(&file)), target, value, true);
    }
    for (name, value) in [
        ("without id", with(&valid_spec(), |_| {})),
        ("numeric id", with(&valid_spec(), |v| v["id"] = json!(5))),
    ] {
        check(
            format!("MixCreate: {name}"),
            json!({"request": ["/v1/mixes", "post"]}),
            value.clone(),
            reads::<CreateBody>(&value),
        );
    }

    let relay = json!({
        "main": {"url": "rtmp://h/live/main"},
        "backup": {"vod": {"urls": ["http://h/a.flv"], "loop_times": 2}},
        "outputs": [{"id": "a", "name": "A", "url": "rtmp://h/app/a"}],
        "failover": {"stall_ms": 3000, "return_to_main": false, "return_after_ms": 0},
        "stop_at": 1_900_000_000,
        "callback_url": "https://h/cb"
    });
    for (name, value) in [
        ("every field", relay.clone()),
        ("main only", json!({"main": {"push": "studio"}})),
        ("no main", json!({"outputs": []})),
        ("null backup", with(&relay, |v| v["backup"] = Value::Null)),
        ("null main", with(&relay, |v| v["main"] = Value::Null)),
        (
            "null stop_at and callback",
            with(&relay, |v| {
                v["stop_at"] = Value::Null;
                v["callback_url"] = Value::Null;
            }),
        ),
        (
            "vod without loop_times",
            with(&relay, |v| {
                v["backup"] = json!({"vod": {"urls": ["http://h/a.flv"]}})
            }),
        ),
        (
            "vod with an unknown field",
            with(&relay, |v| v["backup"]["vod"]["loops"] = json!(1)),
        ),
        (
            "vod without urls",
            with(&relay, |v| v["backup"] = json!({"vod": {"loop_times": 1}})),
        ),
        (
            "input with two keys",
            with(&relay, |v| {
                v["main"] = json!({"url": "rtmp://h/a", "push": "a"})
            }),
        ),
        (
            "input with an extra key",
            with(&relay, |v| v["main"]["x"] = json!(1)),
        ),
        (
            "unknown input kind",
            with(&relay, |v| v["main"] = json!({"file": "a.flv"})),
        ),
        ("unknown field", with(&relay, |v| v["bogus"] = json!(1))),
        (
            "unknown failover field",
            with(&relay, |v| v["failover"]["stall"] = json!(1)),
        ),
        (
            "output without url",
            with(&relay, |v| v["outputs"] = json!([{"id": "a"}])),
        ),
        (
            "stop_at as text",
            with(&relay, |v| v["stop_at"] = json!("soon")),
        ),
    ] {
        check(
            format!("RelaySpec: {name}"),
            json!({"request": ["/v1/relays/{id}", "put"]}),
            value.clone(),
            reads::<RelaySpec>(&value),
        );
    }

    for value in [
        json!({"input": "main"}),
        json!({"input": "backup"}),
        json!({"input": "sideways"}),
        json!({"input": "main", "now": true}),
        json!({}),
    ] {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Switch {
            input: Endpoint,
        }
        check(
            format!("switch {value}"),
            json!({"request": ["/v1/relays/{id}/switch", "post"]}),
            value.clone(),
            reads::<Switch>(&value),
        );
    }

    for text in [
        "#a0B1c2",
        "0x10203040",
        "0XFFFFFF",
        "#202040",
        "a0b1c2",
        "#12345",
        "#1234567",
        "#GGGGGG",
        "0x",
        "red",
        "#1234567890",
        " #202040",
    ] {
        let parsed = text.parse::<Color>().is_ok();
        check(
            format!("colour {text:?}"),
            schema("Color"),
            json!(text),
            parsed,
        );
    }
    let admitted = checks.iter().filter(|c| c.admitted).count();
    assert!(
        admitted > 10 && checks.len() - admitted > 10,
        "both verdicts are exercised"
    );
    run_checks(checks).await;
}

fn display(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}
