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
    app_with(|_| {})
}

/// [`app`] with its config `adjust`ed.
fn app_with(adjust: impl FnOnce(&mut Config)) -> (Router, Engine) {
    tessera::server::init_media().unwrap();
    let mut config = Config::default();
    config.server.max_body_bytes = 64 * 1024;
    adjust(&mut config);
    let state = api::AppState::in_memory(config);
    let engine = state.engine.clone();
    (api::app(state), engine)
}

/// [`app`] whose pictures folder (`engine.pictures_dir`) is `folder`.
fn app_with_pictures(folder: &std::path::Path) -> (Router, Engine) {
    let folder = folder.display().to_string();
    app_with(|c| c.engine.pictures_dir = folder)
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

    // POST takes the spec beside an id, and refuses an unknown field as PUT does (a misspelt key must never be
    // ignored silently).
    let mut create = valid_spec();
    create["id"] = json!("m");
    create["outptus"] = json!([]);
    let (s, body) = call(
        &app,
        "POST",
        "/v1/mixes",
        Some("application/json"),
        create.to_string().into_bytes(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_body");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("outptus"),
        "{body}"
    );
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
    let dir = tempfile::tempdir().unwrap();
    let (app, engine) = app_with_pictures(dir.path());
    let mut spec = valid_spec();
    spec["overlays"] = json!([{"id": "logo", "image": "logo.png", "rect": {"x": 0, "y": 0, "width": 64, "height": 64}}]);
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

/// Logs written to a pipe or a file carry no ANSI colour codes (colour only on a terminal).
#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\n[store]\npath = \"\"\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = String::new();
    while !seen.contains("tessera ready") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(Ok(line)) => {
                seen.push_str(&line);
                seen.push('\n');
            }
            _ => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("tessera ready"), "{seen}");
    assert!(!seen.contains('\u{1b}'), "{seen:?}");
}

/// A PNG whose header claims `width`×`height` (1-bit grey) with a few bytes of picture data: what a decompression
/// bomb looks like to a header reader.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xffff_ffffu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        png.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        png.extend(&body);
        png.extend(crc32(&body).to_be_bytes());
    }
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([1, 0, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    // A zlib stream holding 4 zero bytes (one stored block).
    let idat = [
        0x78, 0x01, 0x01, 0x04, 0x00, 0xfb, 0xff, 0, 0, 0, 0, 0x00, 0x04, 0x00, 0x01,
    ];
    chunk(&mut png, b"IDAT", &idat);
    chunk(&mut png, b"IEND", &[]);
    png
}

/// A picture upload whose header claims more pixels than `engine.max_image_pixels` is refused from the header,
/// at once, with its own code: it is never decoded (a 20000×20000 picture would take gigabytes).
#[tokio::test]
async fn an_image_bomb_upload_is_refused_from_its_header() {
    let (app, _engine) = app();
    let began = std::time::Instant::now();
    let (status, body) = call(
        &app,
        "PUT",
        "/v1/pictures/bomb",
        Some("image/png"),
        png_claiming(20_000, 20_000),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("image_too_large")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("20000×20000") && message.contains("16777216"),
        "{message}"
    );
    assert!(
        began.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        began.elapsed()
    );
    let (status, _) = call(&app, "GET", "/v1/pictures/bomb", None, vec![]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A mix whose overlay names `path`: its answer, or `None` when there is none within 5 s.
async fn overlay_answer(app: &Router, path: &std::path::Path) -> Option<(StatusCode, Value)> {
    let mut spec = valid_spec();
    spec["overlays"] = json!([{"id": "logo", "image": path.to_str().unwrap(),
                               "rect": {"x": 0, "y": 0, "width": 64, "height": 64}}]);
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        put_json(app, "overlay", &spec),
    )
    .await
    .ok()
}

/// An overlay path that is a FIFO is refused at once without being opened (opening a FIFO blocks until a writer
/// comes), with the message any unreadable path gets.
#[tokio::test]
async fn a_fifo_overlay_is_refused_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let (app, engine) = app_with_pictures(dir.path());
    let fifo = dir.path().join("logo.png");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let answer = overlay_answer(&app, &fifo).await;
    if answer.is_none() {
        // A reader stuck opening the FIFO (the old behaviour) is let go, so the test fails instead of hanging.
        let f = fifo.clone();
        std::thread::spawn(move || drop(std::fs::OpenOptions::new().write(true).open(f)));
    }
    let (status, body) = answer.expect("an answer within 5 s");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("resource_unavailable")
        ),
        "{body}"
    );
    assert_eq!(
        body["error"]["message"],
        format!("image {:?} cannot be read", fifo.to_str().unwrap())
    );
    assert!(engine.list().is_empty());
}

/// A path that does not exist, one in a missing folder and one that is not a regular file (a folder) all get
/// the same answer: the API is no oracle for which files exist on the node.
#[tokio::test]
async fn unreadable_overlay_paths_all_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (app, engine) = app_with_pictures(dir.path());
    for path in [
        dir.path().join("nope.png"),
        dir.path().join("missing/logo.png"),
        dir.path().to_path_buf(),
    ] {
        let (status, body) = overlay_answer(&app, &path).await.expect("an answer");
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            body["error"]["message"],
            format!("image {:?} cannot be read", path.to_str().unwrap()),
            "{}",
            path.display()
        );
    }
    assert!(engine.list().is_empty());
}

// ---- The pictures folder (`engine.pictures_dir`): where image files a caller names may be ----------------------

/// A real 3×2 PNG.
const TINY_PNG: &[u8] = include_bytes!("../src/image/testdata/tiny.png");

/// A pictures folder with `logo.png` and `sub/logo.png` in it, and `secret.png` (a picture too) beside it.
struct Pictures {
    _root: tempfile::TempDir,
    folder: std::path::PathBuf,
    outside: std::path::PathBuf,
}

impl Pictures {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let folder = root.path().join("pictures");
        std::fs::create_dir_all(folder.join("sub")).unwrap();
        std::fs::write(folder.join("logo.png"), TINY_PNG).unwrap();
        std::fs::write(folder.join("sub/logo.png"), TINY_PNG).unwrap();
        let outside = root.path().join("secret.png");
        std::fs::write(&outside, TINY_PNG).unwrap();
        Self {
            _root: root,
            folder,
            outside,
        }
    }

    fn inside(&self, name: &str) -> String {
        self.folder.join(name).display().to_string()
    }
}

/// `valid_spec` with a background image and an overlay from these locations.
fn spec_with_images(background: &str, overlay: &str) -> Value {
    let mut spec = valid_spec();
    spec["canvas"]["background_image"] = json!(background);
    spec["overlays"] = json!([{"id": "logo", "image": overlay, "rect": {"x": 0, "y": 0, "width": 64, "height": 64}}]);
    spec
}

/// A refusal of the spec's image paths: 422 `invalid_spec` naming both image fields with `rule`, nothing stored,
/// and no word of where the pictures folder is or of the file system's own errors.
fn assert_paths_refused(
    (status, body): (StatusCode, Value),
    rule: &str,
    folder: &std::path::Path,
    engine: &Engine,
) {
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_spec", "{body}");
    let details = body["error"]["details"].as_array().unwrap();
    let fields: Vec<&str> = details
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["canvas.background_image", "overlays[0].image"],
        "{body}"
    );
    for d in details {
        assert!(d["rule"].as_str().unwrap().contains(rule), "{body}");
    }
    let text = body.to_string();
    let real = std::fs::canonicalize(folder).unwrap_or_else(|_| folder.to_path_buf());
    for leak in [
        folder.display().to_string(),
        real.display().to_string(),
        "os error".into(),
        "No such file".into(),
    ] {
        assert!(!text.contains(&leak), "{leak:?} in {body}");
    }
    assert!(engine.list().is_empty());
    assert_eq!(engine.active_pulls(), 0);
}

/// Without a pictures folder, a caller may name no local file, relative or absolute, existing or not (PUT and
/// POST alike); URLs are not its business.
#[tokio::test]
async fn local_images_need_a_pictures_folder() {
    let p = Pictures::new();
    let (app, engine) = app();
    let spec = spec_with_images("logo.png", &p.inside("logo.png"));
    assert_paths_refused(
        put_json(&app, "m", &spec).await,
        "engine.pictures_dir",
        &p.folder,
        &engine,
    );
    let mut body = spec_with_images("/etc/passwd", "/nonexistent.png");
    body["id"] = json!("m");
    let answer = call(
        &app,
        "POST",
        "/v1/mixes",
        Some("application/json"),
        body.to_string().into_bytes(),
    )
    .await;
    assert_paths_refused(answer, "engine.pictures_dir", &p.folder, &engine);
    // An http(s) image is fetched as before (here from nowhere: unavailable, not an invalid path).
    let spec = spec_with_images("http://127.0.0.1:1/bg.png", "http://127.0.0.1:1/logo.png");
    let (status, body) = put_json(&app, "m", &spec).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("resource_unavailable")
        ),
        "{body}"
    );
}

/// A `..` component is refused outright, whether it would lead out of the folder or back into it.
#[tokio::test]
async fn parent_components_are_refused() {
    let p = Pictures::new();
    let (app, engine) = app_with_pictures(&p.folder);
    let spec = spec_with_images("../secret.png", "sub/../logo.png");
    assert_paths_refused(put_json(&app, "m", &spec).await, "..", &p.folder, &engine);
}

/// An absolute path is taken only inside the folder: not beside it, not in a sibling whose name starts the same.
#[tokio::test]
async fn absolute_paths_outside_the_folder_are_refused() {
    let p = Pictures::new();
    let sibling = format!("{}2", p.folder.display());
    std::fs::create_dir(&sibling).unwrap();
    std::fs::write(format!("{sibling}/logo.png"), TINY_PNG).unwrap();
    let (app, engine) = app_with_pictures(&p.folder);
    let spec = spec_with_images(p.outside.to_str().unwrap(), &format!("{sibling}/logo.png"));
    assert_paths_refused(
        put_json(&app, "m", &spec).await,
        "pictures folder",
        &p.folder,
        &engine,
    );
    let spec = spec_with_images("/etc/passwd", p.outside.to_str().unwrap());
    assert_paths_refused(
        put_json(&app, "m", &spec).await,
        "pictures folder",
        &p.folder,
        &engine,
    );
}

/// A symbolic link inside the folder that leads out of it is refused, named relative or absolute, to a file or
/// through a linked folder.
#[tokio::test]
async fn links_leading_out_of_the_folder_are_refused() {
    let p = Pictures::new();
    std::os::unix::fs::symlink(&p.outside, p.folder.join("out.png")).unwrap();
    std::os::unix::fs::symlink(p.outside.parent().unwrap(), p.folder.join("up")).unwrap();
    let (app, engine) = app_with_pictures(&p.folder);
    let spec = spec_with_images("out.png", "up/secret.png");
    assert_paths_refused(
        put_json(&app, "m", &spec).await,
        "symbolic link",
        &p.folder,
        &engine,
    );
    let spec = spec_with_images(&p.inside("out.png"), &p.inside("up/secret.png"));
    assert_paths_refused(
        put_json(&app, "m", &spec).await,
        "symbolic link",
        &p.folder,
        &engine,
    );
}

/// Files inside the folder are read: relative paths, absolute ones inside it, and links that stay inside. The node
/// has room for no mix, so a spec whose pictures were all read and decoded ends at the mix limit (409), while one
/// whose picture cannot be read is refused before it (422).
#[tokio::test]
async fn files_inside_the_folder_are_taken() {
    let p = Pictures::new();
    std::os::unix::fs::symlink(p.folder.join("sub/logo.png"), p.folder.join("link.png")).unwrap();
    std::fs::write(p.folder.join("text.png"), b"not a picture").unwrap();
    let folder = p.folder.display().to_string();
    let (app, engine) = app_with(|c| {
        c.engine.pictures_dir = folder;
        c.engine.max_mixes = Some(0);
    });
    for (background, overlay) in [
        ("logo.png".to_string(), "sub/logo.png".to_string()),
        ("./logo.png".into(), p.inside("logo.png")),
        ("link.png".into(), p.inside("link.png")),
    ] {
        let (status, body) = put_json(&app, "m", &spec_with_images(&background, &overlay)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("limit_exceeded")),
            "{background} {overlay}: {body}"
        );
    }
    let (status, body) = put_json(&app, "m", &spec_with_images("logo.png", "text.png")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("resource_unavailable")
        ),
        "{body}"
    );
    assert_eq!(
        body["error"]["message"],
        "image \"text.png\" cannot be read"
    );
    assert!(engine.list().is_empty());
}
