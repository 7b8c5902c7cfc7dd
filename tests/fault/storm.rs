//! 50 concurrent API clients against the real binary for 60 s: 43 on the native API, 4 on ZEGO's, 3 on Tencent's
//! CGI, each owning one task that it starts, updates, reads and stops at random with a short think time. Every
//! answer must be well-formed; whenever a client reads its task, and at the end, the task is what the client's
//! last acknowledged request made it; and once every task is stopped, threads, file descriptors and resident
//! memory are back near where they were before the storm (measured in /proc).
//!
//! Kept light for a 2-core machine: tiny canvases (192×108 at 15 fps, 320×180 for Tencent, whose canvas is its
//! background stream's size), at most 10 mixes at once (`engine.max_mixes`, so creates beyond it are refused with
//! `limit_exceeded` and change nothing), a third of the native mixes audio-only and a third pulling sources that
//! do not exist (their inputs keep retrying).

use std::{
    collections::BTreeMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::common::{
    cgi_query, fd_kinds, write_config, zego_path, Server, Usage, CGI_APPID, CGI_KEY, ZEGO_APP,
    ZEGO_SECRET,
};
use super::*;

const NATIVE: usize = 43;
const ZEGO: usize = 4;
const TENCENT: usize = 3;
const MAX_MIXES: usize = 10;

/// What a client knows of its task after its last acknowledged request.
#[derive(Debug, Clone)]
enum Known {
    Absent,
    /// Running, with what the client asked for (the rect of each input, in order).
    Present {
        rects: Vec<Value>,
        extra: Value,
    },
}

/// Per-client tallies for the report.
#[derive(Default, Debug, Clone)]
struct Tally {
    requests: u64,
    acked: u64,
    refused: BTreeMap<String, u64>,
    max_latency: Duration,
}

/// A failure seen by a client thread (collected, reported together).
type Problems = Mutex<Vec<String>>;

fn now_s() -> u64 {
    super::common::unix_now()
}

/// Sends a request; returns status, content type and body. A transport error is a problem: the server must
/// answer everything.
fn call(
    http: &reqwest::blocking::Client,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> Result<(u16, String, Vec<u8>, Duration), String> {
    let mut req = http.request(method.parse().unwrap(), url);
    if let Some(b) = body {
        req = req.json(b);
    }
    let sent = Instant::now();
    let resp = req
        .send()
        .map_err(|e| format!("{method} {url}: no answer: {e}"))?;
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = resp
        .bytes()
        .map_err(|e| format!("{method} {url}: body cut: {e}"))?
        .to_vec();
    Ok((status, ctype, bytes, sent.elapsed()))
}

/// A JSON body with a JSON content type, or the reason it is not.
fn json_body(what: &str, ctype: &str, bytes: &[u8]) -> Result<Value, String> {
    if !ctype.starts_with("application/json") {
        return Err(format!(
            "{what}: content type {ctype:?}, body {:?}",
            String::from_utf8_lossy(bytes)
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        format!(
            "{what}: not JSON ({e}): {:?}",
            String::from_utf8_lossy(bytes)
        )
    })
}

/// A native error body: `{"error": {"code": "...", "message": "..."}}`; returns the code.
fn native_error(what: &str, status: u16, ctype: &str, bytes: &[u8]) -> Result<String, String> {
    let v = json_body(what, ctype, bytes)?;
    match (v["error"]["code"].as_str(), v["error"]["message"].as_str()) {
        (Some(code), Some(_)) => Ok(code.to_string()),
        _ => Err(format!("{what}: {status} with a malformed error: {v}")),
    }
}

fn pick<T: Copy>(rng: &mut fastrand::Rng, items: &[T]) -> T {
    items[rng.usize(..items.len())]
}

/// A native spec for client `i`: kind by `i % 3` (live inputs, inputs nobody publishes, audio-only output).
fn native_spec(i: usize, rng: &mut fastrand::Rng) -> Value {
    // Sources that do not exist: nginx-rtmp answers "not found" to every try (they are retried until stopped).
    let (a, b) = match i % 3 {
        1 => (
            json!({"stream_id": format!("ghost{i}a")}),
            json!({"stream_id": format!("ghost{i}b")}),
        ),
        _ => (json!({"stream_id": "a"}), json!({"stream_id": "b"})),
    };
    let cells = [(0, 0), (96, 0), (0, 54), (96, 54)];
    let (ra, rb) = (pick(rng, &cells), pick(rng, &cells));
    let background = pick(rng, &["#000000", "#202040", "#0000FF", "#FF00FF"]);
    let video = if i % 3 == 2 {
        Value::Null
    } else {
        json!({"bitrate_kbps": pick(rng, &[200, 300, 400]), "gop_s": pick(rng, &[1, 2])})
    };
    json!({
        "canvas": {"width": 192, "height": 108, "fps": pick(rng, &[15, 15, 15, 10]), "background": background},
        "inputs": [
            {"id": "a", "source": a, "rect": rect(ra.0, ra.1, 96, 54)},
            {"id": "b", "source": b, "rect": rect(rb.0, rb.1, 96, 54), "layer": 2}
        ],
        "outputs": [{"target": {"stream_id": format!("n{i}")}, "video": video,
                     "audio": {"bitrate_kbps": 64}}]
    })
}

fn native_client(
    base: &str,
    i: usize,
    deadline: Instant,
    problems: &Problems,
) -> (Known, Tally, Option<Value>) {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(1000 + i as u64);
    let url = format!("{base}/v1/mixes/c{i}");
    let mut known = Known::Absent;
    let mut last_spec = None;
    let mut tally = Tally::default();
    let problem = |p: String| problems.lock().unwrap().push(format!("client c{i}: {p}"));
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(rng.u64(50..300)));
        let roll = rng.f64();
        let (method, body) = if roll < 0.45 {
            ("PUT", Some(native_spec(i, &mut rng)))
        } else if roll < 0.75 {
            ("DELETE", None)
        } else {
            ("GET", None)
        };
        let what = format!("{method} c{i}");
        let (status, ctype, bytes, took) = match call(&http, method, &url, body.as_ref()) {
            Ok(r) => r,
            Err(e) => {
                problem(e);
                continue;
            }
        };
        tally.requests += 1;
        tally.max_latency = tally.max_latency.max(took);
        let result: Result<(), String> = (|| {
            match (method, status) {
                ("PUT", 200 | 201) => {
                    let v = json_body(&what, &ctype, &bytes)?;
                    let applied = v["applied"].as_str().unwrap_or("");
                    let fresh = matches!(known, Known::Absent);
                    let ok_applied = if fresh {
                        status == 201 && applied == "created"
                    } else {
                        status == 200 && (applied == "updated_live" || applied == "restarted")
                    };
                    if !ok_applied
                        || v["id"] != format!("c{i}")
                        || !v["status"]["state"].is_string()
                    {
                        return Err(format!(
                            "{what}: {status} {v} (the task was {})",
                            if fresh { "absent" } else { "present" }
                        ));
                    }
                    let spec = body.clone().unwrap();
                    known = Known::Present {
                        rects: spec["inputs"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|i| i["rect"].clone())
                            .collect(),
                        extra: json!({"background": spec["canvas"]["background"],
                                      "video": spec["outputs"][0]["video"]}),
                    };
                    last_spec = Some(spec);
                    tally.acked += 1;
                }
                ("PUT", 409 | 429 | 503) => {
                    let code = native_error(&what, status, &ctype, &bytes)?;
                    if status == 409 && code != "limit_exceeded" {
                        return Err(format!("{what}: refused with {code}"));
                    }
                    *tally.refused.entry(code).or_default() += 1;
                }
                ("DELETE", 204) => {
                    if !bytes.is_empty() {
                        return Err(format!("{what}: 204 with a body"));
                    }
                    if matches!(known, Known::Absent) {
                        return Err(format!("{what}: deleted a task that was not there"));
                    }
                    known = Known::Absent;
                    tally.acked += 1;
                }
                ("DELETE" | "GET", 404) => {
                    let code = native_error(&what, status, &ctype, &bytes)?;
                    if code != "not_found" || !matches!(known, Known::Absent) {
                        return Err(format!(
                            "{what}: {code}, but the task should run: {known:?}"
                        ));
                    }
                    tally.acked += 1;
                }
                ("GET", 200) => {
                    let v = json_body(&what, &ctype, &bytes)?;
                    check_native(&v, &known).map_err(|e| format!("{what}: {e}"))?;
                    tally.acked += 1;
                }
                ("DELETE" | "GET", 429 | 503) => {
                    let code = native_error(&what, status, &ctype, &bytes)?;
                    *tally.refused.entry(code).or_default() += 1;
                }
                _ => {
                    return Err(format!(
                        "{what}: unexpected {status}: {}",
                        String::from_utf8_lossy(&bytes)
                    ))
                }
            }
            Ok(())
        })();
        if let Err(e) = result {
            problem(e);
        }
    }
    (known, tally, last_spec)
}

/// Whether a native mix view shows what the client last asked for.
fn check_native(view: &Value, known: &Known) -> Result<(), String> {
    let Known::Present { rects, extra } = known else {
        return Err(format!("the task runs but was deleted: {view}"));
    };
    let spec = &view["spec"];
    let got: Vec<Value> = spec["inputs"]
        .as_array()
        .map(|a| a.iter().map(|i| i["rect"].clone()).collect())
        .unwrap_or_default();
    let background = spec["canvas"]["background"]
        .as_str()
        .unwrap_or("")
        .to_ascii_uppercase();
    let video = &spec["outputs"][0]["video"];
    let video_ok = match &extra["video"] {
        Value::Null => video.is_null(),
        want => video["bitrate_kbps"] == want["bitrate_kbps"] && video["gop_s"] == want["gop_s"],
    };
    if &got != rects
        || !background.starts_with(extra["background"].as_str().unwrap())
        || !video_ok
        || !view["status"]["state"].is_string()
    {
        return Err(format!(
            "the task is not what was last acknowledged ({rects:?}, {extra}): {view}"
        ));
    }
    Ok(())
}

fn zego_url(base: &str, action: &str) -> String {
    format!("{base}{}", zego_path(ZEGO_APP, ZEGO_SECRET, action))
}

/// A ZEGO answer: HTTP 200, JSON `{Code, Message, RequestId}`; returns the code.
fn zego_code(what: &str, status: u16, ctype: &str, bytes: &[u8]) -> Result<u64, String> {
    let v = json_body(what, ctype, bytes)?;
    if status != 200 || !v["Message"].is_string() || !v["RequestId"].is_string() {
        return Err(format!("{what}: {status} {v}"));
    }
    v["Code"]
        .as_u64()
        .ok_or_else(|| format!("{what}: no Code: {v}"))
}

fn zego_client(base: &str, i: usize, deadline: Instant, problems: &Problems) -> (Known, Tally) {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(2000 + i as u64);
    let task = format!("z{i}");
    let mut known = Known::Absent;
    let mut tally = Tally::default();
    let mut sequence = 0;
    let problem = |p: String| {
        problems
            .lock()
            .unwrap()
            .push(format!("ZEGO client {task}: {p}"))
    };
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(rng.u64(100..400)));
        sequence += 1;
        let start = rng.f64() < 0.6;
        let (left, top) = (pick(&mut rng, &[0, 96]), pick(&mut rng, &[0, 54]));
        let body = if start {
            json!({
                "TaskId": task, "Sequence": sequence, "UserId": "storm",
                "MixInput": [
                    {"StreamId": "a", "RectInfo": {"Top": top, "Left": left, "Bottom": top + 54, "Right": left + 96}},
                    {"StreamId": "b", "RectInfo": {"Top": 54 - top, "Left": 96 - left, "Bottom": 108 - top, "Right": 192 - left}}
                ],
                "MixOutput": [{"StreamId": format!("zo{i}"), "Width": 192, "Height": 108, "VideoBitrate": 300_000, "Fps": 15}]
            })
        } else {
            json!({"TaskId": task, "UserId": "storm", "Sequence": sequence})
        };
        let action = if start { "StartMix" } else { "StopMix" };
        let what = format!("{action} {task}");
        let (status, ctype, bytes, took) =
            match call(&http, "POST", &zego_url(base, action), Some(&body)) {
                Ok(r) => r,
                Err(e) => {
                    problem(e);
                    continue;
                }
            };
        tally.requests += 1;
        tally.max_latency = tally.max_latency.max(took);
        match zego_code(&what, status, &ctype, &bytes) {
            Err(e) => problem(e),
            Ok(0) => {
                tally.acked += 1;
                known = if start {
                    Known::Present {
                        rects: vec![rect(left, top, 96, 54), rect(96 - left, 54 - top, 96, 54)],
                        extra: Value::Null,
                    }
                } else {
                    Known::Absent
                };
            }
            Ok(code) => *tally.refused.entry(code.to_string()).or_default() += 1,
        }
    }
    (known, tally)
}

fn tencent_body(para: Value) -> Value {
    let now = now_s();
    let mut para = para;
    para["app_id"] = json!(CGI_APPID);
    json!({"timestamp": now, "eventId": now,
           "interface": {"interfaceName": "Mix_StreamV2", "para": para}})
}

fn tencent_client(base: &str, i: usize, deadline: Instant, problems: &Problems) -> (Known, Tally) {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(3000 + i as u64);
    let session = format!("t{i}");
    let output = format!("to{i}");
    let mut known = Known::Absent;
    let mut tally = Tally::default();
    let problem = |p: String| {
        problems
            .lock()
            .unwrap()
            .push(format!("Tencent client {session}: {p}"))
    };
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(rng.u64(200..600)));
        let start = rng.f64() < 0.6;
        let (x, y) = (
            pick(&mut rng, &[0, 160, 240]),
            pick(&mut rng, &[0, 90, 135]),
        );
        let para = if start {
            json!({
                "interface": "mix_streamv2.start_mix_stream_advanced",
                "mix_stream_session_id": session, "output_stream_id": output, "output_stream_type": 1,
                "input_stream_list": [
                    {"input_stream_id": "a", "layout_params": {"image_layer": 1}},
                    {"input_stream_id": "b", "layout_params": {"image_layer": 2, "image_width": 80,
                     "image_height": 45, "location_x": x, "location_y": y}}
                ]
            })
        } else {
            json!({"interface": "mix_streamv2.cancel_mix_stream",
                   "mix_stream_session_id": session, "output_stream_id": output})
        };
        let url = format!("{base}/common_access?{}", cgi_query(CGI_APPID, CGI_KEY));
        let what = format!("{} {session}", if start { "start" } else { "cancel" });
        let (status, ctype, bytes, took) =
            match call(&http, "POST", &url, Some(&tencent_body(para))) {
                Ok(r) => r,
                Err(e) => {
                    problem(e);
                    continue;
                }
            };
        tally.requests += 1;
        tally.max_latency = tally.max_latency.max(took);
        let v = match json_body(&what, &ctype, &bytes) {
            Ok(v) => v,
            Err(e) => {
                problem(e);
                continue;
            }
        };
        let Some(code) = v["code"].as_i64() else {
            problem(format!("{what}: {status} {v}"));
            continue;
        };
        if status != 200 || !v["message"].is_string() || !v["timestamp"].is_i64() {
            problem(format!("{what}: {status} {v}"));
            continue;
        }
        match (code, start) {
            (0, true) => {
                tally.acked += 1;
                known = Known::Present {
                    rects: vec![json!(null), rect(x, y, 80, 45)],
                    extra: Value::Null,
                };
            }
            (0, false) => {
                tally.acked += 1;
                known = Known::Absent;
            }
            (code, _) => *tally.refused.entry(code.to_string()).or_default() += 1,
        }
    }
    (known, tally)
}

/// Usage once the process has settled: polled until threads and fds stop changing for 3 s, and for at least
/// `min_wait`, at most 45 s.
fn settled(server: &Server, min_wait: Duration) -> Usage {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(45);
    let mut last = server.usage();
    let mut stable_since = Instant::now();
    while Instant::now() < deadline
        && (stable_since.elapsed() < Duration::from_secs(3) || start.elapsed() < min_wait)
    {
        std::thread::sleep(Duration::from_millis(250));
        let now = server.usage();
        if (now.threads, now.fds) != (last.threads, last.fds) {
            stable_since = Instant::now();
        }
        last = now;
    }
    last
}

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|stat| {
                let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
                rest.split_whitespace().nth(1) == Some(pid.to_string().as_str())
            })
        })
        .collect()
}

/// How long after the storm threads are counted: idle pooled threads end by themselves, but late (tokio's
/// blocking pool keeps one 10 s, GLib's thread pools 15 s); counting before then counts a busy moment's pool.
const IDLE_THREADS_END: Duration = Duration::from_secs(16);

/// Clients on nginx's `app` (publishers and players).
fn nginx_clients(nginx: &Nginx, app: &str) -> usize {
    let xml: String = nginx
        .stat_xml()
        .chars()
        .filter(|c| *c != '\r' && *c != '\n')
        .collect();
    let Some(at) = xml.find(&format!("<application><name>{app}</name>")) else {
        return 0;
    };
    let app_xml = &xml[at..];
    let app_xml = &app_xml[..app_xml.find("</application>").unwrap_or(app_xml.len())];
    app_xml.matches("<client>").count()
}

type Natives = Vec<(Known, Tally, Option<Value>)>;
type Dialect = Vec<(Known, Tally)>;

/// Every client, concurrently, for `storm`; what each last had acknowledged, and the problems seen.
fn run_clients(base: &str, storm: Duration) -> (Natives, Dialect, Dialect, Vec<String>) {
    let problems: Problems = Mutex::new(Vec::new());
    let deadline = Instant::now() + storm;
    let base = base.to_string();
    let (natives, zegos, tencents) = std::thread::scope(|s| {
        let natives: Vec<_> = (0..NATIVE)
            .map(|i| {
                let (base, problems) = (&base, &problems);
                s.spawn(move || native_client(base, i, deadline, problems))
            })
            .collect();
        let zegos: Vec<_> = (0..ZEGO)
            .map(|i| {
                let (base, problems) = (&base, &problems);
                s.spawn(move || zego_client(base, i, deadline, problems))
            })
            .collect();
        let tencents: Vec<_> = (0..TENCENT)
            .map(|i| {
                let (base, problems) = (&base, &problems);
                s.spawn(move || tencent_client(base, i, deadline, problems))
            })
            .collect();
        (
            natives
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>(),
            zegos
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>(),
            tencents
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>(),
        )
    });
    (natives, zegos, tencents, problems.into_inner().unwrap())
}

/// Stops every task that runs by its own dialect's request.
fn stop_all(server: &Server, natives: &Natives, zegos: &Dialect, tencents: &Dialect) {
    for (i, (known, _, _)) in natives.iter().enumerate() {
        if matches!(known, Known::Present { .. }) {
            server.send("DELETE", &format!("/v1/mixes/c{i}"), None);
        }
    }
    for (i, (known, _)) in zegos.iter().enumerate() {
        if matches!(known, Known::Present { .. }) {
            let (status, ctype, bytes, _) = call(
                &server.http,
                "POST",
                &zego_url(&server.base, "StopMix"),
                Some(&json!({"TaskId": format!("z{i}"), "UserId": "storm"})),
            )
            .unwrap();
            assert_eq!(zego_code("StopMix", status, &ctype, &bytes), Ok(0));
        }
    }
    for (i, (known, _)) in tencents.iter().enumerate() {
        if matches!(known, Known::Present { .. }) {
            server.send("DELETE", &format!("/v1/mixes/tencent-t{i}"), None);
        }
    }
    let listed = server.send("GET", "/v1/mixes", None);
    assert_eq!(listed["mixes"], json!([]), "{listed}");
}

#[test]
fn fifty_clients_for_a_minute_leave_consistent_state_and_no_leaks() {
    init();
    let nginx = Nginx::start();
    let dir = tempfile::tempdir().unwrap();
    let (config, port) = write_config(
        dir.path(),
        &nginx,
        &format!(
            r#"[engine]
max_mixes = {MAX_MIXES}
[zego]
app_id = {ZEGO_APP}
server_secret = "{ZEGO_SECRET}"
input_check_ms = 0
[tencent]
appid = {CGI_APPID}
key = "{CGI_KEY}"
input_check_ms = 3000
"#
        ),
    );
    let _inputs: Vec<Publisher> = [("a", RED), ("b", GREEN)]
        .iter()
        .map(|(s, c)| Publisher::solid(&nginx.rtmp_url("live", s), *c))
        .collect();
    assert!(wait_for(T, || nginx.is_publishing("live", "a")
        && nginx.is_publishing("live", "b")));
    let server = Server::start(&config, port);
    // A short storm first, everything stopped again: what a process sets up once (plugins, pools, caches) and
    // the allocator's high-water mark are there before the baseline, so what grows afterwards grows with work.
    let (natives, zegos, tencents, problems) = run_clients(&server.base, Duration::from_secs(10));
    assert!(problems.is_empty(), "warm-up: {problems:?}");
    stop_all(&server, &natives, &zegos, &tencents);
    let before = settled(&server, Duration::ZERO);
    eprintln!("before the storm: {before:?} {:?}", fd_kinds(server.pid()));

    // The issue asks for a minute; TESSERA_STORM_S shortens it while investigating.
    let storm = std::env::var("TESSERA_STORM_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(60));
    let (natives, zegos, tencents, problems) = run_clients(&server.base, storm);
    let during = server.usage();

    // Tallies, for the log.
    let mut all = Tally::default();
    for t in natives
        .iter()
        .map(|n| &n.1)
        .chain(zegos.iter().map(|z| &z.1))
        .chain(tencents.iter().map(|t| &t.1))
    {
        all.requests += t.requests;
        all.acked += t.acked;
        all.max_latency = all.max_latency.max(t.max_latency);
        for (k, v) in &t.refused {
            *all.refused.entry(k.clone()).or_default() += v;
        }
    }
    eprintln!(
        "storm: {} requests, {} acknowledged, refusals {:?}, slowest answer {:?}; usage at the end {during:?}",
        all.requests, all.acked, all.refused, all.max_latency
    );
    assert!(
        problems.is_empty(),
        "{} problems, first ones:\n{}",
        problems.len(),
        problems
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(all.acked > 300, "too little happened: {all:?}");

    // The final state is each client's last acknowledged request.
    let listed = server.send("GET", "/v1/mixes", None);
    let mut running: BTreeMap<String, Value> = listed["mixes"]
        .as_array()
        .expect("a list of mixes")
        .iter()
        .map(|m| (m["id"].as_str().unwrap().to_string(), m.clone()))
        .collect();
    assert!(running.len() <= MAX_MIXES, "{} mixes run", running.len());
    let mut expect_present = 0;
    for (i, (known, _, _)) in natives.iter().enumerate() {
        let id = format!("c{i}");
        match (known, running.remove(&id)) {
            (Known::Absent, None) => {}
            (Known::Present { .. }, Some(view)) => {
                expect_present += 1;
                check_native(&view, known).unwrap_or_else(|e| panic!("{id}: {e}"))
            }
            (k, v) => panic!("{id}: last acknowledged {k:?}, but the engine has {v:?}"),
        }
    }
    let dialects = zegos
        .iter()
        .enumerate()
        .map(|(i, z)| (format!("zego-z{i}"), &z.0))
        .chain(
            tencents
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("tencent-t{i}"), &t.0)),
        );
    for (id, known) in dialects {
        match (known, running.remove(&id)) {
            (Known::Absent, None) => {}
            (Known::Present { rects, .. }, Some(view)) => {
                expect_present += 1;
                for (k, want) in rects.iter().enumerate() {
                    let got = &view["spec"]["inputs"][k]["rect"];
                    assert!(
                        want.is_null() || (got["x"] == want["x"] && got["y"] == want["y"]),
                        "{id}: input {k} at {got}, last acknowledged {want}: {view}"
                    );
                }
            }
            (k, v) => panic!("{id}: last acknowledged {k:?}, but the engine has {v:?}"),
        }
    }
    assert!(running.is_empty(), "mixes nobody asked for: {running:?}");
    eprintln!("{expect_present} tasks run at the end, as acknowledged");

    // Stop everything the way each client would, then measure again.
    stop_all(&server, &natives, &zegos, &tencents);
    // Nothing is published or pulled any more: only the two publishers are on nginx.
    assert!(
        wait_for(T, || nginx_clients(&nginx, "mix") == 0
            && nginx_clients(&nginx, "live") == 2),
        "connections left on nginx: mix {}, live {}",
        nginx_clients(&nginx, "mix"),
        nginx_clients(&nginx, "live")
    );
    let after = settled(&server, IDLE_THREADS_END);
    eprintln!("after the storm, everything stopped: {after:?} (before: {before:?})");
    // Mixes run in worker processes: with every mix stopped, only the spare (started ahead for the next mix) is
    // left; a leaked mix would keep its worker.
    let workers = children_of(server.pid());
    assert!(workers.len() <= 1, "worker processes left: {workers:?}");
    let kinds = fd_kinds(server.pid());
    // Slack: a few threads and descriptors for pools that grow under load and keep a worker or an idle connection.
    // One leaked mix costs about 20 threads and several descriptors; the storm started and stopped hundreds.
    // Publishes nginx refused ("already publishing": a mix re-created while its previous publish of the same
    // stream is still up) cost nothing: the RTMP client closes a refused connection (GStreamer 1.22's rtmp2sink
    // leaked two descriptors for each, which this test had to allow).
    let refused = nginx.error_log().matches("already publishing").count() as u64;
    eprintln!("publishes refused by nginx: {refused}");
    assert!(
        after.threads <= before.threads + 8,
        "threads leaked: {} before, {} after",
        before.threads,
        after.threads
    );
    assert!(
        after.fds <= before.fds + 8,
        "file descriptors leaked: {} before, {} after, {refused} refused publishes: {kinds:?}",
        before.fds,
        after.fds
    );
    assert!(
        after.rss_kib <= before.rss_kib + 96 * 1024,
        "memory grew: {} KiB before, {} KiB after",
        before.rss_kib,
        after.rss_kib
    );
}
