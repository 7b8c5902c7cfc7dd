//! nginx-rtmp on loopback: a private instance per test, on free ports, in its own temp dir.

use std::{
    io::Read,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

extern "C" {
    // From the C library std already links; avoids a libc dependency.
    fn kill(pid: i32, sig: i32) -> i32;
}
const SIGKILL: i32 = 9;

/// nginx with the rtmp module, listening on 127.0.0.1 only. Applications `live` (inputs) and `mix`
/// (Tessera's outputs), both `live on; idle_streams off;` so a player of a stream with no publisher is
/// refused, and players are disconnected when their publisher goes away.
///
/// nginx runs in its own process group (master + worker); [`Nginx::kill`] and `Drop` SIGKILL the whole
/// group, so no orphaned worker keeps the port.
pub struct Nginx {
    pub rtmp_port: u16,
    pub http_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Where the `live` application reports publishes (nginx-rtmp `on_publish` / `on_publish_done`, form
    /// POST), as a production nginx in front of Tessera would: `http://127.0.0.1:PORT/callbacks/nginx/…`.
    callbacks: Option<u16>,
    /// A TLS port in front of the RTMP port (nginx's stream module with a self-signed certificate for
    /// `localhost`), for `rtmps://` tests; 0 when not asked for.
    pub rtmps_port: u16,
    rtmps: bool,
    /// Where the `mix` application reports its publishers (`on_publish` / `on_publish_done`, form POST to
    /// `http://127.0.0.1:PORT/on_publish…`): a [`super::PublishRecorder`]'s port, and the seconds after which
    /// it drops a publisher that sends nothing.
    publish_log: Option<(u16, u32)>,
}

/// A port that was free a moment ago (bind port 0, read it, release it). Racy by nature: callers retry.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

fn is_root() -> bool {
    // /proc/self/status "Uid:\treal\teffective..."
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

impl Nginx {
    /// Starts nginx on two free ports. Panics with nginx's error log if it cannot start. Returns once both
    /// the RTMP and the HTTP port accept connections.
    pub fn start() -> Nginx {
        Nginx::start_inner(None, false)
    }

    /// Like [`Nginx::start`], plus an `rtmps://localhost:PORT/…` listener ([`Nginx::rtmps_url`]) whose
    /// self-signed certificate no system trusts.
    pub fn start_with_rtmps() -> Nginx {
        Nginx::start_inner(None, true)
    }

    /// Like [`Nginx::start`], with the `live` application calling Tessera's publish callbacks on
    /// `127.0.0.1:tessera_port` (instead of the local notification log).
    pub fn start_with_callbacks(tessera_port: u16) -> Nginx {
        Nginx::start_inner(Some(tessera_port), false)
    }

    /// Like [`Nginx::start`], with the `mix` application (where Tessera publishes its outputs) reporting every
    /// publisher to a [`super::PublishRecorder`] on `127.0.0.1:recorder_port` (`on_publish`,
    /// `on_publish_done`), and dropping a publisher that sent nothing for 2 s (`drop_idle_publisher 2s`: a
    /// frozen publisher must not keep the stream from the next one). [`Nginx::publish_count`] does not count
    /// `mix` then: ask the recorder.
    pub fn start_with_publish_log(recorder_port: u16) -> Nginx {
        Nginx::start_with_publish_log_idle(recorder_port, 2)
    }

    /// Like [`Nginx::start_with_publish_log`], dropping idle publishers after `idle_s` seconds.
    pub fn start_with_publish_log_idle(recorder_port: u16, idle_s: u32) -> Nginx {
        assert!(idle_s >= 1);
        Nginx::start_full(None, false, Some((recorder_port, idle_s)))
    }

    fn start_inner(callbacks: Option<u16>, rtmps: bool) -> Nginx {
        Nginx::start_full(callbacks, rtmps, None)
    }

    fn start_full(callbacks: Option<u16>, rtmps: bool, publish_log: Option<(u16, u32)>) -> Nginx {
        let dir = tempfile::Builder::new()
            .prefix("tessera-nginx-")
            .tempdir()
            .expect("create nginx temp dir");
        std::fs::create_dir_all(dir.path().join("html")).unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let mut nginx = Nginx {
            rtmp_port: 0,
            http_port: 0,
            dir,
            child: None,
            callbacks,
            rtmps_port: 0,
            rtmps,
            publish_log,
        };
        if rtmps {
            let key = rcgen::KeyPair::generate().expect("key");
            let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
                .and_then(|p| p.self_signed(&key))
                .expect("self-signed certificate");
            std::fs::write(nginx.dir.path().join("cert.pem"), cert.pem()).unwrap();
            std::fs::write(nginx.dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        }
        let mut last_err = String::new();
        for _attempt in 0..6 {
            nginx.rtmp_port = free_port();
            nginx.http_port = free_port();
            nginx.rtmps_port = if rtmps { free_port() } else { 0 };
            if nginx.rtmp_port == nginx.http_port
                || [nginx.rtmp_port, nginx.http_port].contains(&nginx.rtmps_port)
            {
                continue;
            }
            match nginx.try_spawn(Duration::from_secs(10)) {
                Ok(()) => return nginx,
                Err(e) => {
                    last_err = e;
                    // Port collision with another test process: pick new ports and go again.
                    if !last_err.contains("Address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("nginx did not start:\n{last_err}");
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.path().join("nginx.conf")
    }

    fn error_log_path(&self) -> PathBuf {
        self.dir.path().join("logs/error.log")
    }

    fn access_log_path(&self) -> PathBuf {
        self.dir.path().join("logs/access.log")
    }

    fn write_conf(&self) {
        let d = self.dir.path().display();
        let user = if is_root() { "user root;\n" } else { "" };
        let (rtmp, http) = (self.rtmp_port, self.http_port);
        let live_notify = match self.callbacks {
            None => format!("on_publish http://127.0.0.1:{http}/on_publish/live;"),
            Some(p) => format!(
                "notify_method post;\n            on_publish http://127.0.0.1:{p}/callbacks/nginx/on_publish;\n            on_publish_done http://127.0.0.1:{p}/callbacks/nginx/on_publish_done;"
            ),
        };
        let mix_notify = match self.publish_log {
            None => format!("on_publish http://127.0.0.1:{http}/on_publish/mix;"),
            Some((p, idle)) => format!(
                "drop_idle_publisher {idle}s;\n            notify_method post;\n            on_publish http://127.0.0.1:{p}/on_publish;\n            on_publish_done http://127.0.0.1:{p}/on_publish_done;"
            ),
        };
        let (stream_module, stream) = if self.rtmps {
            (
                "load_module /usr/lib/nginx/modules/ngx_stream_module.so;",
                format!(
                    "stream {{\n    server {{\n        listen 127.0.0.1:{} ssl;\n        ssl_certificate {d}/cert.pem;\n        ssl_certificate_key {d}/key.pem;\n        proxy_pass 127.0.0.1:{rtmp};\n    }}\n}}",
                    self.rtmps_port
                ),
            )
        } else {
            ("", String::new())
        };
        let conf = format!(
            r#"load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
{stream_module}
daemon off;
master_process on;
worker_processes 1;
{user}pid {d}/nginx.pid;
error_log {d}/logs/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {d}/logs/access.log;
    client_body_temp_path {d}/tmp_body;
    proxy_temp_path {d}/tmp_proxy;
    fastcgi_temp_path {d}/tmp_fastcgi;
    uwsgi_temp_path {d}/tmp_uwsgi;
    scgi_temp_path {d}/tmp_scgi;
    types {{ video/x-flv flv; image/png png; image/jpeg jpg jpeg; application/json json; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{http};
        root {d}/html;
        # nginx-rtmp's on_publish notifications land here (GET, arguments in the query string);
        # the access log is what publish_count() counts.
        location /on_publish/ {{ return 200; }}
        location = /stat {{ rtmp_stat all; }}
    }}
}}
rtmp {{
    server {{
        listen 127.0.0.1:{rtmp};
        chunk_size 4096;
        notify_method get;
        application live {{
            live on;
            idle_streams off;
            {live_notify}
        }}
        application mix {{
            live on;
            idle_streams off;
            {mix_notify}
        }}
    }}
}}
{stream}
"#
        );
        std::fs::write(self.conf_path(), conf).expect("write nginx.conf");
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.error_log_path()).unwrap_or_default()
    }

    /// Spawns nginx on the current ports and waits until both accept connections.
    fn try_spawn(&mut self, timeout: Duration) -> Result<(), String> {
        use std::os::unix::process::CommandExt;
        self.write_conf();
        // A fresh error log per spawn, so failures are judged on this run only.
        let _ = std::fs::remove_file(self.error_log_path());
        let stderr_path = self.dir.path().join("logs/stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("create nginx stderr log");
        let dir = self.dir.path().to_path_buf();
        let mut child = Command::new("nginx")
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(self.conf_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run nginx: {e}"))?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                let _ = std::fs::File::open(&stderr_path)
                    .and_then(|mut f| f.read_to_string(&mut stderr));
                return Err(format!(
                    "nginx exited with {status}\n--- stderr ---\n{stderr}\n--- error.log ---\n{}",
                    self.error_log()
                ));
            }
            let log = self.error_log();
            if log.contains("bind() to") && log.contains("failed") {
                // nginx retries bind for ~2.5 s before giving up; don't wait for that.
                kill_group(&mut child);
                return Err(format!(
                    "nginx could not bind (Address already in use):\n{log}"
                ));
            }
            if port_accepts(self.rtmp_port)
                && port_accepts(self.http_port)
                && (self.rtmps_port == 0 || port_accepts(self.rtmps_port))
                && log.contains("start worker process")
            {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                kill_group(&mut child);
                return Err(format!(
                    "nginx did not accept connections within {timeout:?}\n{}",
                    self.error_log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `rtmp://127.0.0.1:{port}/{app}/{stream}`
    pub fn rtmp_url(&self, app: &str, stream: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}/{stream}", self.rtmp_port)
    }

    /// `rtmps://localhost:{port}/{app}/{stream}` through the TLS port of [`Nginx::start_with_rtmps`].
    pub fn rtmps_url(&self, app: &str, stream: &str) -> String {
        assert!(self.rtmps_port != 0, "nginx was started without rtmps");
        format!("rtmps://localhost:{}/{app}/{stream}", self.rtmps_port)
    }

    /// A directory served as static files by nginx's http block (see [`Nginx::http_url`]).
    pub fn http_dir(&self) -> PathBuf {
        self.dir.path().join("html")
    }

    /// `http://127.0.0.1:{http_port}/{file}` for a file placed in [`Nginx::http_dir`].
    pub fn http_url(&self, file: &str) -> String {
        format!(
            "http://127.0.0.1:{}/{}",
            self.http_port,
            file.trim_start_matches('/')
        )
    }

    /// The temp dir nginx runs in (config, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps nginx's dir (config, logs) after the test; prints where it is.
    pub fn keep_files(&mut self) {
        self.dir.disable_cleanup(true);
        eprintln!("nginx files kept in {}", self.dir.path().display());
    }

    /// SIGKILLs nginx (master and worker) as a crash would; every RTMP connection drops. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }

    /// Starts nginx again on the same ports (killing it first if it still runs). Panics if it cannot.
    pub fn restart(&mut self) {
        self.kill();
        // The ports were ours a moment ago; a killed listener may take a moment to be released.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.try_spawn(Duration::from_secs(10)) {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline && e.contains("Address already in use") => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(e) => panic!(
                    "nginx did not restart on ports {}/{}:\n{e}",
                    self.rtmp_port, self.http_port
                ),
            }
        }
    }

    /// Whether the nginx child is (still) running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    fn publish_lines(&self, app: &str) -> Vec<String> {
        let log = std::fs::read_to_string(self.access_log_path()).unwrap_or_default();
        let needle = format!("GET /on_publish/{app}?");
        log.lines()
            .filter(|l| l.contains(&needle))
            .map(str::to_string)
            .collect()
    }

    /// Number of publish sessions nginx accepted on `app` since [`Nginx::start`] (across restarts), from
    /// nginx-rtmp's `on_publish` notifications.
    pub fn publish_count(&self, app: &str) -> usize {
        self.publish_lines(app).len()
    }

    /// Number of publish sessions nginx accepted on `app/stream` since [`Nginx::start`] (across restarts).
    pub fn publish_count_of(&self, app: &str, stream: &str) -> usize {
        let needle = format!("name={stream}&");
        let end = format!("name={stream} ");
        self.publish_lines(app)
            .iter()
            .filter(|l| l.contains(&needle) || l.contains(&end))
            .count()
    }

    /// nginx-rtmp's statistics XML (`rtmp_stat all`), or an empty string if nginx does not answer.
    pub fn stat_xml(&self) -> String {
        http_get_local(self.http_port, "/stat").unwrap_or_default()
    }

    /// Whether `app/stream` currently has a publisher, per nginx-rtmp's statistics.
    pub fn is_publishing(&self, app: &str, stream: &str) -> bool {
        // The page's line breaks vary (\n or \r\n); compare without them.
        let xml: String = self
            .stat_xml()
            .chars()
            .filter(|c| *c != '\r' && *c != '\n')
            .collect();
        let Some(app_start) = xml.find(&format!("<application><name>{app}</name>")) else {
            return false;
        };
        let app_xml = &xml[app_start..];
        let app_xml = &app_xml[..app_xml.find("</application>").unwrap_or(app_xml.len())];
        let name = format!("<name>{stream}</name>");
        app_xml.split("<stream>").skip(1).any(|s| {
            let s = &s[..s.find("</stream>").unwrap_or(s.len())];
            s.starts_with(&name) && s.contains("<publishing/>")
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
    }
}

fn kill_group(child: &mut Child) {
    let pid = child.id() as i32;
    // nginx was started with process_group(0): its pgid is its pid; the worker inherits it.
    unsafe {
        kill(-pid, SIGKILL);
    }
    let _ = child.kill();
    let _ = child.wait();
    // The worker is not our child; wait until it is gone so the ports are released.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && group_alive(pid) {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether any live (non-zombie) process is in process group `pgid`.
fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let Some(_pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // pid (comm) state ppid pgrp ...
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("");
        let _ppid = f.next();
        let pgrp = f.next().and_then(|p| p.parse::<i32>().ok());
        pgrp == Some(pgid) && state != "Z" && state != "X"
    })
}

fn port_accepts(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// Minimal HTTP/1.0 GET against 127.0.0.1 (no client library needed for nginx's own pages).
pub fn http_get_local(port: u16, path: &str) -> Option<String> {
    use std::io::Write;
    let mut s =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        return None;
    }
    Some(body.to_string())
}
