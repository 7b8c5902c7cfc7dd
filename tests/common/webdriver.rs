//! A minimal W3C WebDriver client, for the console's browser tests: Debian's `chromedriver` started on a free port,
//! one headless Chromium session, plain JSON over HTTP (reqwest's blocking client). Just what the tests use:
//! navigate, run a script (sync and async), find, click and type into an element, a screenshot, the browser's
//! console log. Dropping the [`Browser`] ends the session (Chromium exits) and then chromedriver.
//!
//! `TESSERA_CHROMIUM` and `TESSERA_CHROMEDRIVER` name other binaries (default `/usr/bin/chromium`, `chromedriver`).

use std::{
    io::Read,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use serde_json::{json, Value};

use super::nginx::free_port;

/// The key W3C WebDriver gives an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium's flags: headless, no sandbox (tests may run as root, in containers), a fixed window for screenshots,
/// media that plays without a gesture.
const CHROMIUM_ARGS: [&str; 10] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,960",
    "--hide-scrollbars",
    "--mute-audio",
    "--no-first-run",
    "--disable-extensions",
];

pub fn chromium_binary() -> String {
    std::env::var("TESSERA_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

pub fn chromedriver_binary() -> String {
    std::env::var("TESSERA_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into())
}

/// One headless Chromium under chromedriver.
pub struct Browser {
    driver: Child,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
    http: reqwest::blocking::Client,
    /// chromedriver's own log, read when something goes wrong.
    log: tempfile::NamedTempFile,
}

/// A WebDriver error: the command and what the driver said.
#[derive(Debug)]
pub struct WebDriverError(pub String);

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Browser {
    /// Starts chromedriver and a session; panics (saying to run scripts/setup) when either cannot be started.
    pub fn start() -> Browser {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .expect("reqwest client");
        let chromium = chromium_binary();
        assert!(
            std::path::Path::new(&chromium).exists(),
            "{chromium} is not installed: run scripts/setup (Debian's chromium and chromium-driver)"
        );
        // chromedriver may lose the race for a free port to another process: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let log = tempfile::NamedTempFile::new().expect("chromedriver log file");
            let driver = Command::new(chromedriver_binary())
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.path().display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot run {}: {e}; run scripts/setup (Debian's chromium-driver)",
                        chromedriver_binary()
                    )
                });
            let base = format!("http://127.0.0.1:{port}");
            let mut browser = Browser {
                driver,
                session: String::new(),
                http: http.clone(),
                log,
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            let ready = loop {
                if let Ok(Some(_)) = browser.driver.try_wait() {
                    break false;
                }
                let up = http
                    .get(format!("{base}/status"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .ok()
                    .and_then(|r| r.json::<Value>().ok())
                    .is_some_and(|v| v["value"]["ready"] == true);
                if up {
                    break true;
                }
                if Instant::now() > deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            if !ready {
                last = format!(
                    "chromedriver on port {port} never became ready: {}",
                    browser.driver_log()
                );
                continue;
            }
            let caps = json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": CHROMIUM_ARGS},
                "goog:loggingPrefs": {"browser": "ALL"},
                "timeouts": {"script": 60_000, "pageLoad": 60_000},
            }}});
            let answer = http.post(format!("{base}/session")).json(&caps).send();
            let value: Value = match answer.and_then(|r| r.json()) {
                Ok(v) => v,
                Err(e) => {
                    last = format!("new session: {e}");
                    continue;
                }
            };
            match value["value"]["sessionId"].as_str() {
                Some(id) => {
                    browser.session = format!("{base}/session/{id}");
                    return browser;
                }
                None => {
                    last = format!("new session refused: {value}; {}", browser.driver_log());
                }
            }
        }
        panic!("no browser session: {last}");
    }

    /// chromedriver's log, its last 4 kB.
    pub fn driver_log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log.path()) {
            let _ = f.read_to_string(&mut text);
        }
        let start = text.len().saturating_sub(4096);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }

    /// Sends one command; the answer's `value`, or the driver's error.
    pub fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let url = format!("{}{}", self.session, path);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            req = req.json(&body);
        } else if method == reqwest::Method::POST {
            req = req.json(&json!({}));
        }
        let resp = req
            .send()
            .map_err(|e| WebDriverError(format!("{method} {path}: {e}")))?;
        let status = resp.status();
        let value: Value = resp
            .json()
            .map_err(|e| WebDriverError(format!("{method} {path}: answer not JSON: {e}")))?;
        if status.is_success() {
            Ok(value["value"].clone())
        } else {
            Err(WebDriverError(format!(
                "{method} {path}: {} {}: {}",
                status.as_u16(),
                value["value"]["error"].as_str().unwrap_or("?"),
                value["value"]["message"]
                    .as_str()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
            )))
        }
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.command(reqwest::Method::POST, path, Some(body))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Loads `url` (returns once the page's load event fired).
    pub fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url}));
    }

    /// Runs `script` (a function body: `return …`; `arguments[i]` are `args`) in the page; what it returned.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        self.try_execute(script, args)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_execute(&self, script: &str, args: Vec<Value>) -> Result<Value, WebDriverError> {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// Runs `script` asynchronously: it gets a callback as its last argument and the command answers what it is
    /// called with (within the session's script timeout, 60 s).
    pub fn execute_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.post("/execute/async", json!({"script": script, "args": args}))
    }

    /// Polls `script` until it returns something other than `null`, `false`, `0` or `""` (→ that); panics after
    /// `timeout` with `what`, the last value, and the browser's console log.
    pub fn wait_js(&self, what: &str, timeout: Duration, script: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.try_execute(script, args.clone());
            if let Ok(v) = &value {
                let truthy = match v {
                    Value::Null => false,
                    Value::Bool(b) => *b,
                    Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                    Value::String(s) => !s.is_empty(),
                    _ => true,
                };
                if truthy {
                    return v.clone();
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "{what}: not within {timeout:?} (last answer {value:?})\nbrowser console:\n{}",
                    self.console_log().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The first element matching `css`, if any (its WebDriver reference).
    pub fn find(&self, css: &str) -> Option<String> {
        self.command(
            reqwest::Method::POST,
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )
        .ok()
        .and_then(|v| v[ELEMENT].as_str().map(str::to_string))
    }

    fn element(&self, css: &str) -> String {
        self.find(css)
            .unwrap_or_else(|| panic!("no element matches {css}"))
    }

    /// Clicks the element matching `css` as a user would (scrolled into view, at its centre).
    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.post(&format!("/element/{id}/click"), json!({}));
    }

    /// Types `text` into the element matching `css`, key by key.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.post(&format!("/element/{id}/value"), json!({"text": text}));
    }

    /// Empties the input matching `css`.
    pub fn clear(&self, css: &str) {
        let id = self.element(css);
        self.post(&format!("/element/{id}/clear"), json!({}));
    }

    /// The page as a PNG (the window's viewport).
    pub fn screenshot(&self) -> Vec<u8> {
        let value = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .unwrap_or_else(|e| panic!("{e}"));
        base64::engine::general_purpose::STANDARD
            .decode(value.as_str().expect("a base64 screenshot"))
            .expect("screenshot is base64")
    }

    /// The browser console's messages since the last call, `LEVEL message` each (chromedriver's log extension).
    pub fn console_log(&self) -> Vec<String> {
        self.command(
            reqwest::Method::POST,
            "/se/log",
            Some(json!({"type": "browser"})),
        )
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["level"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("")
            )
        })
        .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Ends Chromium; chromedriver would leave it running if killed first.
            let _ = self
                .http
                .delete(&self.session)
                .timeout(Duration::from_secs(15))
                .send();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
