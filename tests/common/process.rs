//! `tessera serve` as a child process (what a crash test and a leak measurement need), and what /proc says about
//! it.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::{nginx::free_port, nginx::Nginx, sign::zego_path, util::wait_for};

/// How long the binary may take to start answering, and to stop after SIGTERM.
const STARTUP: Duration = Duration::from_secs(25);

/// The binary under test: `TESSERA_BIN` when set (e.g. `target/release/tessera` for timings), else the one cargo
/// built with this test.
pub fn binary() -> String {
    std::env::var("TESSERA_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tessera").to_string())
}

pub struct Server {
    child: Child,
    /// Where its log goes.
    log: std::path::PathBuf,
    pub base: String,
    pub http: reqwest::blocking::Client,
    /// When the process was spawned.
    pub spawned: Instant,
}

impl Server {
    /// Spawns `tessera serve --config config` (its log next to the config) without waiting for it.
    pub fn spawn(config: &Path, port: u16) -> Server {
        Server::spawn_with(config, port, |_| {})
    }

    /// Like [`Server::spawn`], with `adjust` applied to the command last (its environment: `RUST_LOG` is
    /// `tessera=info` unless it says otherwise).
    pub fn spawn_with(config: &Path, port: u16, adjust: impl FnOnce(&mut Command)) -> Server {
        // Next to the config, or where TESSERA_TEST_LOG_DIR says (kept after the test, to investigate).
        let name = format!("tessera.{}.log", fastrand::u32(..));
        let path = match std::env::var_os("TESSERA_TEST_LOG_DIR") {
            Some(dir) => std::path::PathBuf::from(dir).join(name),
            None => config.with_file_name(name),
        };
        let log = std::fs::File::create(&path).expect("log file");
        let spawned = Instant::now();
        let mut command = Command::new(binary());
        command
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "tessera=info")
            .stdin(Stdio::null())
            // The log goes to stderr; stdout is captured too, in case anything prints.
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        adjust(&mut command);
        let child = command.spawn().expect("run tessera");
        Server {
            child,
            log: path,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            spawned,
        }
    }

    /// Spawns it and waits until `GET /healthz` answers 200.
    pub fn start(config: &Path, port: u16) -> Server {
        Server::start_with(config, port, |_| {})
    }

    /// [`Server::start`] with `adjust` applied to the command (see [`Server::spawn_with`]).
    pub fn start_with(config: &Path, port: u16, adjust: impl FnOnce(&mut Command)) -> Server {
        let mut server = Server::spawn_with(config, port, adjust);
        server.wait_healthy(STARTUP);
        server
    }

    pub fn wait_healthy(&mut self, timeout: Duration) {
        let healthy = wait_for(timeout, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("tessera exited with {status}");
            }
            self.http
                .get(format!("{}/healthz", self.base))
                .timeout(Duration::from_secs(2))
                .send()
                .is_ok_and(|r| r.status() == 200)
        });
        assert!(healthy, "tessera did not become healthy");
    }

    /// Where its log goes.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its log holds `text`.
    pub fn wait_log(&self, text: &str, timeout: Duration) -> bool {
        wait_for(timeout, || self.log().contains(text))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a native request; returns status and JSON body (`Null` when there is none), insisting on success.
    pub fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, v) = self.request(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {v}"
        );
        v
    }

    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().expect("request");
        let status = resp.status().as_u16();
        let v: Value = resp.json().unwrap_or(Value::Null);
        (status, v)
    }

    /// A ZEGO request signed with `app_id` and `secret`, as ZEGO's own samples sign; insists on success.
    pub fn zego(&self, app_id: u64, secret: &str, action: &str, body: &Value) -> Value {
        self.send("POST", &zego_path(app_id, secret, action), Some(body))
    }

    /// SIGKILL, as a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the process to end by itself (successfully).
    pub fn terminate(mut self) {
        extern "C" {
            fn kill(pid: i32, sig: i32) -> i32;
        }
        // SAFETY: signalling our own child process.
        unsafe { kill(self.child.id() as i32, 15) };
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "tessera exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tessera did not exit after SIGTERM");
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends signal `sig` (`libc::SIGSTOP`, `libc::SIGCONT`, `libc::SIGTERM`, …) to the process, unless it has
    /// ended already.
    pub fn signal(&mut self, sig: i32) {
        if self.alive() {
            // SAFETY: signalling our own child process, not yet reaped.
            unsafe { libc::kill(self.child.id() as i32, sig) };
        }
    }

    /// Its exit status, if it has ended.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the process to end by itself; its exit status, or `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Threads, open file descriptors and resident memory of the process now.
    pub fn usage(&self) -> Usage {
        Usage::of(self.pid())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What /proc says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub threads: u64,
    pub fds: u64,
    pub rss_kib: u64,
}

impl Usage {
    pub fn of(pid: u32) -> Usage {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .expect("/proc fd")
            .count() as u64;
        Usage {
            threads: field("Threads:"),
            fds,
            rss_kib: field("VmRSS:"),
        }
    }
}

/// Open file descriptors of a process by what they are (`socket`, `pipe`, `anon_inode:[eventfd]`, a path, …).
pub fn fd_kinds(pid: u32) -> std::collections::BTreeMap<String, usize> {
    let mut kinds = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let target = std::fs::read_link(e.path())
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        let kind = match target.split_once(':') {
            Some((k @ ("socket" | "pipe"), _)) => k.to_string(),
            _ => target,
        };
        *kinds.entry(kind).or_default() += 1;
    }
    kinds
}

/// A config for the binary: the API on a free port of 127.0.0.1, state in `dir/state`, then `sections` (TOML).
/// Returns the config's path and the API port.
pub fn write_config_with(dir: &Path, sections: &str) -> (std::path::PathBuf, u16) {
    let port = free_port();
    (write_config_with_port(dir, port, sections), port)
}

/// Like [`write_config_with`], on a given port (one a section names too, e.g. `[cluster] advertise_url`).
pub fn write_config_with_port(dir: &Path, port: u16, sections: &str) -> std::path::PathBuf {
    let config = dir.join("tessera.toml");
    // The store's directory must exist (Tessera refuses to start otherwise).
    std::fs::create_dir_all(dir.join("state")).unwrap();
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\npath = \"{}\"\n{sections}\n",
            dir.join("state/tessera.db").display()
        ),
    )
    .unwrap();
    config
}

/// A config for the binary: inputs from and outputs to `nginx`, state in `dir`, short reconnect delays; `extra`
/// is appended (more TOML sections). Returns the config's path and the API port.
pub fn write_config(dir: &Path, nginx: &Nginx, extra: &str) -> (std::path::PathBuf, u16) {
    let port = free_port();
    (write_config_on(dir, nginx, port, extra), port)
}

/// Like [`write_config`], with the API on a given port.
pub fn write_config_on(dir: &Path, nginx: &Nginx, port: u16, extra: &str) -> std::path::PathBuf {
    let r = nginx.rtmp_port;
    write_config_with_port(
        dir,
        port,
        &format!(
            r#"[ingest]
pull_url = "rtmp://127.0.0.1:{r}/live/{{stream_id}}"
retry_initial_ms = 200
retry_max_ms = 1000
[egress]
push_url = "rtmp://127.0.0.1:{r}/mix/{{stream_id}}"
retry_initial_ms = 300
retry_max_ms = 2000
{extra}"#
        ),
    )
}
