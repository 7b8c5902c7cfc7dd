//! The native API's contract for bad input, driven in-process with `oneshot` (no media needed): every refusal is
//! a JSON error with a stable code and the offending field, and nothing is started.

use axum::{
    body::Body,
    http::{Request, StatusCode},
    Router,
};
use serde_json::{json, Value};
use tower::ServiceExt;

use tessera::{api, engine::Engine, Config};

fn app() -> (Router, Engine) {
    tessera::server::init_media().unwrap();
    let mut config = Config::default();
    config.server.max_body_bytes = 64 * 1024;
    let state = api::AppState::in_memory(config);
    let engine = state.engine.clone();
    (api::app(state), engine)
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn put_json(app: &Router, id: &str, body: &Value) -> (StatusCode, Value) {
    call(
        app,
        "PUT",
        &format!("/v1/mixes/{id}"),
        Some("application/json"),
        body.to_string().into_bytes(),
    )
    .await
}

fn valid_spec() -> Value {
    json!({
        "canvas": {"width": 640, "height": 360},
        "inputs": [{"id": "a", "source": {"stream_id": "a"}, "rect": {"x": 0, "y": 0, "width": 320, "height": 180}}],
        "outputs": [{"target": {"stream_id": "out"}}]
    })
}

#[tokio::test]
async fn healthz_and_openapi() {
    let (app, _) = app();
    let (s, _) = call(&app, "GET", "/healthz", None, vec![]).await;
    assert_eq!(s, StatusCode::OK);
    let (s, doc) = call(&app, "GET", "/openapi.json", None, vec![]).await;
    assert_eq!(s, StatusCode::OK);
    // Generated from the types (tests/openapi.rs validates it and checks it against the router and the wire).
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let put = &doc["paths"]["/v1/mixes/{id}"]["put"];
    assert_eq!(
        put["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/MixSpec"
    );
    assert!(put["responses"]["422"].is_object());
    assert!(doc["paths"]["/readyz"]["get"].is_object());
    assert!(doc["components"]["schemas"]["MixSpec"]["properties"]["outputs"].is_object());
}

#[tokio::test]
async fn invalid_spec_names_every_field_and_starts_nothing() {
    let (app, engine) = app();
    let mut spec = valid_spec();
    spec["inputs"][0]["volume"] = json!(300);
    spec["inputs"][0]["source"] = json!({"url": "ftp://example.com/a"});
    spec["canvas"]["width"] = json!(641);
    let (s, body) = put_json(&app, "m", &spec).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "invalid_spec");
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"inputs[0].volume"), "{fields:?}");
    assert!(fields.contains(&"inputs[0].source.url"), "{fields:?}");
    assert!(fields.contains(&"canvas.width"), "{fields:?}");
    assert!(body["error"]["details"].to_string().contains("\\\"ftp\\\""));
    assert!(engine.list().is_empty());
    assert_eq!(engine.active_pulls(), 0);
}

#[tokio::test]
async fn malformed_unknown_and_wrong_type_bodies() {
    let (app, engine) = app();
    let (s, body) = call(
        &app,
        "PUT",
        "/v1/mixes/m",
        Some("application/json"),
        b"{\"canvas\":".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "malformed_json");

    let mut spec = valid_spec();
    spec["inputs"][0]["colour"] = json!("red");
    let (s, body) = put_json(&app, "m", &spec).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_body");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("colour"),
        "{body}"
    );

    let mut spec = valid_spec();
    spec["inputs"][0]["volume"] = json!("loud");
    let (s, body) = put_json(&app, "m", &spec).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("volume"),
        "{body}"
    );

    let (s, body) = call(
        &app,
        "PUT",
        "/v1/mixes/m",
        Some("text/plain"),
        valid_spec().to_string().into_bytes(),
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    assert!(engine.list().is_empty());
}

#[tokio::test]
async fn huge_body_is_refused() {
    let (app, _) = app();
    let mut spec = valid_spec();
    spec["inputs"][0]["id"] = json!("x".repeat(100_000));
    let (s, body) = put_json(&app, "m", &spec).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "body_too_large");
}

#[tokio::test]
async fn unknown_mix_and_bad_ids() {
    let (app, _) = app();
    let (s, body) = call(&app, "GET", "/v1/mixes/nope", None, vec![]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
    let (s, _) = call(&app, "DELETE", "/v1/mixes/nope", None, vec![]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, body) = put_json(&app, "bad%20id", &valid_spec()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_id");
    let (s, body) = call(&app, "GET", "/nowhere", None, vec![]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn missing_overlay_image_is_refused_before_anything_starts() {
    let (app, engine) = app();
    let mut spec = valid_spec();
    spec["overlays"] = json!([{"id": "logo", "image": "/nonexistent/logo.png", "rect": {"x": 0, "y": 0, "width": 64, "height": 64}}]);
    let (s, body) = put_json(&app, "m", &spec).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "resource_unavailable");
    assert!(engine.list().is_empty());
    assert_eq!(engine.active_pulls(), 0);
}

/// The demo's and the benchmarks' scene files are valid specs, so they cannot rot.
#[test]
fn shipped_scene_files_are_valid_specs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("pipelines/demo-mix.json")];
    for e in std::fs::read_dir(root.join("benches/scenes")).unwrap() {
        files.push(e.unwrap().path());
    }
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".relay.json") {
            let spec: tessera::relay::RelaySpec =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            assert!(!spec.outputs.is_empty(), "{}: no outputs", f.display());
        } else if name.ends_with(".json") {
            let spec: tessera::model::MixSpec =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            spec.validate(&tessera::model::Limits::default())
                .unwrap_or_else(|v| panic!("{}: {v:?}", f.display()));
        }
    }
}

#[tokio::test]
async fn pictures_are_uploaded_checked_listed_and_removed() {
    let (app, _engine) = app();
    let (status, body) = call(
        &app,
        "PUT",
        "/v1/pictures/logo",
        Some("image/png"),
        b"GIF89a....".to_vec(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_spec"))
    );
    let (status, body) = call(&app, "PUT", "/v1/pictures/bad%20id", None, vec![]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_id"))
    );
    // Larger than engine.max_image_bytes (4 MiB), though under nothing else: 413 in the native shape.
    let (status, body) = call(
        &app,
        "PUT",
        "/v1/pictures/big",
        None,
        vec![0u8; 4 * 1024 * 1024 + 1],
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("body_too_large"))
    );
    let (status, body) = call(&app, "GET", "/v1/pictures", None, vec![]).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"pictures": []})));
    let (status, _) = call(&app, "DELETE", "/v1/pictures/logo", None, vec![]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&app, "GET", "/v1/pictures/logo", None, vec![]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn relays_are_validated_created_and_removed_in_the_native_shape() {
    let (app, _engine) = app();
    let bad = json!({"main": {"url": "ftp://x/y"}, "outputs": [{"id": "a", "url": "http://x/y"}]});
    let (status, body) = call(
        &app,
        "PUT",
        "/v1/relays/r1",
        Some("application/json"),
        bad.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"main.url") && fields.contains(&"outputs[0].url"),
        "{body}"
    );
    let good = json!({"main": {"push": "studio"}, "outputs": [{"id": "a", "url": "rtmp://127.0.0.1:1/app/key"}]});
    let (status, body) = call(
        &app,
        "PUT",
        "/v1/relays/r1",
        Some("application/json"),
        good.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"]["state"], "idle");
    let (status, body) = call(&app, "GET", "/v1/relays", None, vec![]).await;
    assert_eq!(
        (status, body["relays"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    let (status, _) = call(
        &app,
        "POST",
        "/v1/relays/r1/switch",
        Some("application/json"),
        br#"{"input":"sideways"}"#.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = call(&app, "DELETE", "/v1/relays/r1", None, vec![]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&app, "POST", "/v1/relays/r1/start", None, vec![]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
