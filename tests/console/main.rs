//! The web console (`GET /console`) in a real browser: Debian's Chromium, headless, driven over WebDriver
//! (chromedriver, `tests/common/webdriver.rs`) against an in-process Tessera running real mixes and a relay on
//! nginx-rtmp, fed by real H.264/AAC publishers. Run one at a time:
//! `cargo test --test console -- --test-threads=1`.
//!
//! The console's screenshots are written to `target/console-*.png`; with `TESSERA_UPDATE_DOCS=1` also to
//! `docs/console.png` (the overview) and `docs/console-mix.png` (a mix opened), which the README and
//! docs/console.md show.

#[path = "../common/mod.rs"]
mod common;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use common::*;
use serde_json::{json, Value};

/// What a page may take to show what the API already says: the status is polled every 2 s and re-read on every
/// event, so a few seconds is plenty; CI machines are 2 slow cores, hence the margin.
const PAGE: Duration = Duration::from_secs(20);
/// What media may take to come up (publish, pull, first frames, first snapshot).
const MEDIA: Duration = Duration::from_secs(45);

/// An input pulled from the stream of the same id, shown in `r`.
fn input(id: &str, r: Value) -> Value {
    json!({"id": id, "source": {"stream_id": id}, "rect": r})
}

/// Mix `show`: input `a` (four coloured quadrants) on the left half, `b` (green) top right, on a dark canvas.
fn show_spec() -> Value {
    json!({
        "canvas": {"width": 640, "height": 360, "fps": 30, "background": "#202040"},
        "inputs": [input("a", rect(0, 0, 320, 360)), input("b", rect(336, 16, 288, 162))],
        "outputs": [{"target": {"stream_id": "show-out"}, "video": {"bitrate_kbps": 1200}}]
    })
}

/// Relay `r1`: `main` with `backup`, one output; stays on the backup once it failed over.
fn relay_spec(rig: &Rig) -> Value {
    json!({
        "main": {"push": "main"},
        "backup": {"push": "backup"},
        "outputs": [{"id": "o1", "url": rig.out_url("r1-out")}],
        "failover": {"stall_ms": 1000, "return_to_main": false},
    })
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes a screenshot to `target/<name>`, and to `docs/<docs_name>` when `TESSERA_UPDATE_DOCS=1`.
fn save_screenshot(png: &[u8], name: &str, docs_name: &str) {
    assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target"));
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join(name), png).unwrap();
    if std::env::var("TESSERA_UPDATE_DOCS").as_deref() == Ok("1") {
        std::fs::write(repo().join("docs").join(docs_name), png).unwrap();
    }
}

/// Runs in the page: draws the `<img>` matching `arguments[0]` on a canvas and reads its pixels back. Null until
/// the picture has loaded; then its natural size, the largest spread of any colour channel over a grid of
/// samples, and the colour at each of `arguments[1]` (points in 0..1 of the picture's size).
const PIXELS: &str = r#"
const img = document.querySelector(arguments[0]);
if (!img || !img.complete || img.naturalWidth === 0) return null;
const w = img.naturalWidth, h = img.naturalHeight;
const c = document.createElement('canvas');
c.width = w; c.height = h;
const g = c.getContext('2d', {willReadFrequently: true});
g.drawImage(img, 0, 0);
const data = g.getImageData(0, 0, w, h).data;
const lo = [255, 255, 255], hi = [0, 0, 0];
for (let y = 0; y < h; y += Math.max(1, h >> 5)) {
  for (let x = 0; x < w; x += Math.max(1, w >> 5)) {
    const i = 4 * (y * w + x);
    for (let k = 0; k < 3; k++) { lo[k] = Math.min(lo[k], data[i + k]); hi[k] = Math.max(hi[k], data[i + k]); }
  }
}
const at = (arguments[1] || []).map(([fx, fy]) => {
  const i = 4 * (Math.floor(fy * h) * w + Math.floor(fx * w));
  return [data[i], data[i + 1], data[i + 2]];
});
return {width: w, height: h, spread: Math.max(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]), at};
"#;

/// Runs in the page: the state the console shows for a row (`arguments[0]`: a CSS selector), or null.
const STATE_OF: &str = r#"
const row = document.querySelector(arguments[0]);
return row ? row.dataset.state : null;
"#;

/// Waits until the picture `img` (a CSS selector) has loaded and its channels spread by at least `spread` over
/// it (64: not one flat colour); what [`PIXELS`] said, with the colours at `points`.
fn picture(browser: &Browser, what: &str, img: &str, spread: u8, points: Value) -> Value {
    browser.wait_js(
        what,
        MEDIA,
        &format!(
            "{{ const r = (() => {{ {PIXELS} }})(); return r && r.spread >= arguments[2] ? r : null; }}"
        ),
        vec![json!(img), points, json!(spread)],
    )
}

fn close(px: &Value, rgb: u32, tol: u8) -> bool {
    let got: Vec<u8> = px
        .as_array()
        .map(|a| a.iter().map(|v| v.as_u64().unwrap_or(0) as u8).collect())
        .unwrap_or_default();
    got.len() == 3 && color_close([got[0], got[1], got[2]], rgb, tol)
}

/// The console of a node running a two-input mix and a relay with a backup, in Chromium: the page lists both,
/// shows a live snapshot, opens the mix with its layout and a playing preview, and follows an input's loss, then a
/// relay's failover (its history, its stage on the backup, its preview playing), without a reload.
#[test]
fn console_follows_mixes_and_relays_live() {
    let began = Instant::now();
    let rig = Rig::start_with(quick_retries);
    let _a = rig.quadrants("a");
    let b = rig.solid("b", GREEN, Some(440.0));
    let main = rig.solid("main", BLUE, Some(550.0));
    let _backup = rig.solid("backup", YELLOW, Some(660.0));
    rig.put("show", &show_spec());
    let (status, body) = rig.tessera.put("/v1/relays/r1", &relay_spec(&rig));
    assert_eq!(status, 201, "PUT relay r1: {body}");
    let (status, body) = rig.tessera.post("/v1/relays/r1/start", &json!({}));
    assert_eq!(status, 200, "start relay r1: {body}");
    rig.wait_status("show", MEDIA, |s| {
        s["state"] == "running"
            && s["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .all(|i| i["state"] == "live")
            && s["outputs"][0]["state"] == "live"
    });
    wait_value(
        "relay r1 forwarding main",
        MEDIA,
        Duration::from_millis(200),
        || rig.tessera.get("/v1/relays/r1").1["status"].clone(),
        |s| s["active"] == "main" && s["outputs"][0]["state"] == "live",
    );
    eprintln!("media up after {:?}", began.elapsed());

    let browser = Browser::start();
    let opened = Instant::now();
    browser.goto(&rig.tessera.url("/console"));
    // The page's own load (HTML, script, stylesheet; the player comes later, when a preview opens).
    let load_ms = browser
        .execute(
            "const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime;",
            vec![],
        )
        .as_f64()
        .unwrap();
    eprintln!("the page loaded in {load_ms:.0} ms");
    assert!(
        load_ms < 1000.0,
        "the console loads in well under a second: {load_ms} ms"
    );
    // A mark a reload would wipe: every later check runs on this same page.
    browser.execute("window.__sameConsolePage = 42; return true;", vec![]);

    // The page lists the running mix and relay, with their states.
    browser.wait_js(
        "the mix and the relay listed",
        PAGE,
        r#"const m = document.querySelector('[data-mix="show"]'), r = document.querySelector('[data-relay="r1"]');
           return m && r && m.dataset.state === 'running' && r.dataset.state === 'working'
               && r.dataset.active === 'main';"#,
        vec![],
    );
    eprintln!("listed {:?} after the page was opened", opened.elapsed());
    browser.wait_js(
        "both inputs live on the page",
        PAGE,
        r#"const rows = document.querySelectorAll('[data-mix="show"] tr.input');
           return rows.length === 2 && [...rows].every((r) => r.dataset.state === 'live');"#,
        vec![],
    );

    // The grid's snapshot: loaded, not one flat colour, the composited picture (b's green where b lies).
    let snap = picture(
        &browser,
        "the mix's snapshot in the grid",
        r#"[data-mix="show"] img.snapshot"#,
        64,
        json!([[0.75, 0.25]]),
    );
    assert!(snap["width"].as_u64().unwrap() > 0, "{snap}");
    assert!(
        close(&snap["at"][0], GREEN, 80),
        "input b's rect is green in the snapshot: {snap}"
    );
    // The relay's input pictures: main blue, backup yellow (each one flat colour: its publisher's).
    for (role, rgb) in [("main", BLUE), ("backup", YELLOW)] {
        let snap = picture(
            &browser,
            &format!("the relay's {role} input snapshot"),
            &format!(r#"[data-relay="r1"] [data-role="{role}"] img.snapshot"#),
            0,
            json!([[0.5, 0.3]]),
        );
        assert!(close(&snap["at"][0], rgb, 80), "{role}: {snap}");
    }
    save_screenshot(
        &browser.screenshot(),
        "console-screenshot.png",
        "console.png",
    );

    // Open the mix: its layout over the snapshot, the preview playing, its events.
    browser.click(r#"[data-mix="show"]"#);
    browser.wait_js(
        "the mix opened with its layout drawn",
        PAGE,
        r#"const ids = [...document.querySelectorAll('#stage-rects .rect')].map((r) => r.textContent);
           return location.hash === '#mix/show' && !document.getElementById('detail').hidden
               && ids.join(',') === 'a,b';"#,
        vec![],
    );
    let rects = browser.execute(
        r#"const stage = document.getElementById('stage').getBoundingClientRect();
           return [...document.querySelectorAll('#stage-rects .rect')].map((r) => {
             const b = r.getBoundingClientRect();
             return [(b.left - stage.left) / stage.width, (b.top - stage.top) / stage.height,
                     b.width / stage.width, b.height / stage.height];
           });"#,
        vec![],
    );
    // b: x 336/640, y 16/360, 288/640 wide, 162/360 high.
    let want = [336.0 / 640.0, 16.0 / 360.0, 288.0 / 640.0, 162.0 / 360.0];
    for (got, want) in rects[1].as_array().unwrap().iter().zip(want) {
        assert!(
            (got.as_f64().unwrap() - want).abs() < 0.02,
            "b's outline where its rect is: {rects}"
        );
    }
    picture(
        &browser,
        "the opened mix's snapshot",
        "#stage-img",
        64,
        json!([]),
    );
    browser.wait_js(
        "the mix's recent events",
        PAGE,
        r#"return [...document.querySelectorAll('#events li')].some((li) => li.dataset.type === 'input.live');"#,
        vec![],
    );

    // The preview: Chromium plays H.264 through MediaSource, so the video must play, not just load.
    let mse = browser.execute(
        r#"return MediaSource.isTypeSupported('video/mp4; codecs="avc1.42E01E,mp4a.40.2"');"#,
        vec![],
    );
    assert_eq!(mse, json!(true), "this Chromium plays H.264 through MSE");
    let t0 = browser
        .wait_js(
            "the preview playing",
            MEDIA,
            r#"const v = document.getElementById('preview');
               return v.readyState >= 2 && v.currentTime > 0 && !v.paused ? v.currentTime : null;"#,
            vec![],
        )
        .as_f64()
        .unwrap();
    let w0 = Instant::now();
    // The video advances by 4 s of media time (it plays, in real time give or take a start-up stall).
    let t1 = browser
        .wait_js(
            "the preview's currentTime advancing",
            PAGE,
            r#"const v = document.getElementById('preview');
               return v.currentTime >= arguments[0] + 4 ? v.currentTime : null;"#,
            vec![json!(t0)],
        )
        .as_f64()
        .unwrap();
    eprintln!(
        "preview: currentTime {t0:.2} → {t1:.2} over {:?}",
        w0.elapsed()
    );
    let size = browser.execute(
        "const v = document.getElementById('preview'); return [v.videoWidth, v.videoHeight];",
        vec![],
    );
    assert_eq!(size, json!([640, 360]), "the preview is the mix's canvas");
    save_screenshot(
        &browser.screenshot(),
        "console-mix-screenshot.png",
        "console-mix.png",
    );

    // Kill input b's publisher: the page shows it lost within a few seconds, without a reload.
    drop(b);
    let killed = Instant::now();
    let state = browser.wait_js(
        "input b's state changing on the open mix",
        PAGE,
        &format!("const s = (() => {{ {STATE_OF} }})(); return s && s !== 'live' ? s : null;"),
        vec![json!(r#"#detail-status tr.input[data-input="b"]"#)],
    );
    eprintln!(
        "b shown {state} {:?} after its publisher stopped",
        killed.elapsed()
    );
    browser.wait_js(
        "input b's outline and loss event",
        PAGE,
        r#"return document.querySelector('#stage-rects .rect[data-input="b"]').dataset.state !== 'live'
               && [...document.querySelectorAll('#events li')].some((li) => li.dataset.type === 'input.lost'
                   && li.textContent.includes('input=b'));"#,
        vec![],
    );
    let a_state = browser.execute(
        STATE_OF,
        vec![json!(r#"#detail-status tr.input[data-input="a"]"#)],
    );
    assert_eq!(a_state, json!("live"), "input a is still live");

    // Back to the overview: the relay fails over when its main input's publisher stops, and says so.
    browser.click("#back");
    drop(main);
    browser.wait_js(
        "the relay's failover shown",
        PAGE,
        r#"const r = document.querySelector('[data-relay="r1"]');
           return r && r.dataset.active === 'backup'
               && [...r.querySelectorAll('.history li')].some((li) => li.dataset.type === 'relay.failover');"#,
        vec![],
    );
    // The relay opened: the stage shows the input it forwards (the backup, yellow), the failover is in its
    // history, and its preview plays what the outputs receive.
    browser.click(r#"[data-relay="r1"]"#);
    browser.wait_js(
        "the relay opened with its failover history",
        PAGE,
        r#"return location.hash === '#relay/r1'
               && [...document.querySelectorAll('#relay-extra .history li')]
                   .some((li) => li.dataset.type === 'relay.failover' && li.textContent.includes('main → backup'));"#,
        vec![],
    );
    let stage = picture(
        &browser,
        "the relay's stage showing the backup",
        "#stage-img",
        0,
        json!([[0.5, 0.5]]),
    );
    assert!(close(&stage["at"][0], YELLOW, 80), "{stage}");
    let t0 = browser
        .wait_js(
            "the relay's preview playing",
            MEDIA,
            r#"const v = document.getElementById('preview');
               return v.readyState >= 2 && v.currentTime > 0 && !v.paused ? v.currentTime : null;"#,
            vec![],
        )
        .as_f64()
        .unwrap();
    browser.wait_js(
        "the relay's preview advancing",
        PAGE,
        r#"return document.getElementById('preview').currentTime >= arguments[0] + 2;"#,
        vec![json!(t0)],
    );
    assert_eq!(
        browser.execute("return window.__sameConsolePage;", vec![]),
        json!(42),
        "the page was never reloaded"
    );
    eprintln!("whole test {:?}", began.elapsed());
}

const TOKEN: &str = "console-test-token-0123456789";

/// With tokens configured the console asks for one, refuses a wrong one, and with the right one lists the node's
/// mix and shows its snapshot; the token lives in sessionStorage only, so a reload in the same tab keeps it.
#[test]
fn console_asks_for_a_token() {
    let rig = Rig::start_with(|c| {
        quick_retries(c);
        c.server.api_tokens = vec![TOKEN.into()];
    });
    let _a = rig.quadrants("a");
    let (status, _, body) = rig.tessera.request_raw(
        "PUT",
        "/v1/mixes/guarded",
        &[
            ("authorization", &format!("Bearer {TOKEN}")),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(&json!({
            "canvas": {"width": 640, "height": 360, "background": "#202040"},
            "inputs": [input("a", rect(0, 0, 320, 180))],
            "outputs": [{"target": {"stream_id": "guarded-out"}}]
        }))
        .unwrap(),
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));

    let browser = Browser::start();
    browser.goto(&rig.tessera.url("/console"));
    browser.wait_js(
        "the token asked for",
        PAGE,
        "return document.getElementById('token-dialog').open;",
        vec![],
    );
    assert_eq!(
        browser.execute(
            "return document.querySelectorAll('[data-mix]').length;",
            vec![]
        ),
        json!(0),
        "nothing listed without a token"
    );

    browser.type_into("#token", "not-the-token-but-long-enough");
    browser.click("#token-submit");
    browser.wait_js(
        "a wrong token refused",
        PAGE,
        "return document.getElementById('token-error').textContent.includes('refused');",
        vec![],
    );
    browser.clear("#token");
    browser.type_into("#token", TOKEN);
    browser.click("#token-submit");
    browser.wait_js(
        "the mix listed once the token is given",
        PAGE,
        r#"return !document.getElementById('token-dialog').open
               && !!document.querySelector('[data-mix="guarded"]');"#,
        vec![],
    );
    picture(
        &browser,
        "the snapshot, fetched with the token",
        r#"[data-mix="guarded"] img.snapshot"#,
        64,
        json!([]),
    );
    let stored = browser.execute(
        "return [sessionStorage.getItem('tessera.console.token'), localStorage.length, document.cookie];",
        vec![],
    );
    assert_eq!(
        stored,
        json!([TOKEN, 0, ""]),
        "the token is kept for the session only"
    );

    // A reload in the same tab keeps the token: no question, the list comes back.
    browser.goto(&rig.tessera.url("/console"));
    browser.wait_js(
        "the mix listed again after a reload",
        PAGE,
        r#"return !document.getElementById('token-dialog').open
               && !!document.querySelector('[data-mix="guarded"]');"#,
        vec![],
    );
}
