//! The client tests' own nginx-rtmp (applications that refuse and misbehave in the ways a client must handle),
//! and small process helpers.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// nginx with the rtmp module on a free port, killed on drop. Applications:
/// `live` (open; players of an unpublished name wait, and are not told when a publisher leaves),
/// `strict` (`idle_streams off`: players of an unpublished name get StreamNotFound and are disconnected when the
/// publisher leaves), `notify` (`publish_notify on`: players get NetStream.Play.UnpublishNotify when the publisher leaves),
/// `refused` (`on_publish` answered 403), `denied` (`deny publish all`).
pub struct Nginx {
    pub rtmp_port: u16,
    pub http_port: u16,
    pub rtmps_port: u16,
    dir: PathBuf,
    child: Child,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn temp_dir(prefix: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Nginx {
    pub fn start() -> Nginx {
        Self::start_with(false)
    }

    /// With an `rtmps` TLS port (nginx stream module, self-signed certificate for `localhost`).
    pub fn start_with_rtmps() -> Nginx {
        Self::start_with(true)
    }

    fn start_with(rtmps: bool) -> Nginx {
        let dir = temp_dir("rtmp-dev-nginx");
        for attempt in 0..5 {
            let (rtmp, http) = (free_port(), free_port());
            let tls = if rtmps { free_port() } else { 0 };
            let d = dir.display();
            let (stream_module, stream) = if rtmps {
                let ok = Command::new("openssl")
                    .args([
                        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    ])
                    .args(["-subj", "/CN=localhost", "-keyout"])
                    .arg(dir.join("key.pem"))
                    .arg("-out")
                    .arg(dir.join("cert.pem"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                assert!(ok, "openssl could not make a certificate");
                (
                    "load_module /usr/lib/nginx/modules/ngx_stream_module.so;".to_string(),
                    format!("stream {{ server {{ listen 127.0.0.1:{tls} ssl; ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem; proxy_pass 127.0.0.1:{rtmp}; }} }}"),
                )
            } else {
                (String::new(), String::new())
            };
            let conf = format!(
                r#"load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
{stream_module}
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 16384;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp_body;
    proxy_temp_path {d}/tmp_proxy;
    fastcgi_temp_path {d}/tmp_fastcgi;
    uwsgi_temp_path {d}/tmp_uwsgi;
    scgi_temp_path {d}/tmp_scgi;
    server {{
        listen 127.0.0.1:{http};
        location /deny {{ return 403; }}
        location = /stat {{ rtmp_stat all; }}
    }}
}}
rtmp {{
    server {{
        listen 127.0.0.1:{rtmp};
        chunk_size 4096;
        # Small, so that players must acknowledge often.
        ack_window 20000;
        # nginx pings a quiet client every second and drops it if it does not answer within a second.
        ping 1s;
        ping_timeout 1s;
        notify_method get;
        application live {{ live on; }}
        application strict {{ live on; idle_streams off; }}
        application notify {{ live on; publish_notify on; }}
        application refused {{ live on; on_publish http://127.0.0.1:{http}/deny; }}
        application denied {{ live on; allow publish 10.0.0.1; deny publish all; allow play all; }}
    }}
}}
{stream}
"#
            );
            std::fs::write(dir.join("nginx.conf"), conf).unwrap();
            let _ = std::fs::remove_file(dir.join("error.log"));
            let mut child = Command::new("/usr/sbin/nginx")
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("run nginx");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                let up = |p: u16| {
                    p == 0
                        || TcpStream::connect_timeout(
                            &([127, 0, 0, 1], p).into(),
                            Duration::from_millis(100),
                        )
                        .is_ok()
                };
                if up(rtmp) && up(http) && up(tls) {
                    return Nginx {
                        rtmp_port: rtmp,
                        http_port: http,
                        rtmps_port: tls,
                        dir,
                        child,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!(
                "nginx attempt {attempt} failed: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
        }
        panic!("nginx did not start");
    }

    pub fn url(&self, app: &str, stream: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}/{stream}", self.rtmp_port)
    }

    pub fn rtmps_url(&self, app: &str, stream: &str) -> String {
        format!("rtmps://localhost:{}/{app}/{stream}", self.rtmps_port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Client-side TCP connections of this machine to `port` on loopback that are ESTABLISHED.
pub fn established_to(port: u16) -> usize {
    let tcp = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let tcp6 = std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    tcp.lines()
        .chain(tcp6.lines())
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3
                && f[3] == "01"
                && f[2]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    == Some(port)
        })
        .count()
}

/// Open descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Resident set size of this process in KiB.
pub fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

/// A TCP server that accepts and never says a word; each accepted socket is dropped when the client closes
/// it. Returns its port; `closed` counts client hang-ups seen.
pub async fn silent_server() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let closed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = closed.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            let c = c.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
    });
    (port, closed)
}
