//! Real etcd (`/usr/bin/etcd`, 3.4) on loopback for the cluster tests: one member or a cluster of several, each on
//! free client and peer ports, data in a temp dir, elections tuned for speed (`--heartbeat-interval 100
//! --election-timeout 1000`). Spoken to over HTTP only: `/health`, and the v3 JSON gateway (`/v3/…`, keys and
//! values base64) for the leader and for assertions on what is stored. No etcdctl needed.
//!
//! [`Etcd::kill`] SIGKILLs one member, [`Etcd::pause`] / [`Etcd::resume`] SIGSTOP / SIGCONT every member (etcd
//! unreachable without a single connection closing); `Drop` kills them all. On a panicking thread the data dirs
//! and logs are kept and their path printed.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use serde_json::{json, Value};

use super::nginx::free_port;

/// The etcd binary: `ETCD_BIN` when set, else the Debian package's.
pub fn etcd_binary() -> String {
    std::env::var("ETCD_BIN").unwrap_or_else(|_| "/usr/bin/etcd".to_string())
}

/// How long a fresh cluster may take to elect a leader and answer `/health`.
const STARTUP: Duration = Duration::from_secs(20);

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
    log: PathBuf,
    /// `header.member_id` of `/v3/maintenance/status` (decimal, as the gateway writes it).
    member_id: String,
}

/// An etcd cluster of one or more members; see the module's documentation.
pub struct Etcd {
    dir: Option<tempfile::TempDir>,
    members: Vec<Member>,
    http: reqwest::blocking::Client,
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn unb64(s: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_else(|e| panic!("etcd gateway sent invalid base64 {s:?}: {e}"));
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The key just past every key that starts with `prefix` (etcd's `range_end` for a prefix).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff (or empty): the whole key space.
    vec![0]
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: signalling a child process of ours that has not been reaped.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

impl Etcd {
    /// Starts a cluster of `members` (1 or more) and returns once every member answers `/health` and knows its
    /// leader. Retries on other ports when one was taken meanwhile. Panics with the members' logs otherwise.
    pub fn start(members: usize) -> Etcd {
        assert!(members >= 1, "an etcd cluster has at least one member");
        let mut last = String::new();
        for _attempt in 0..4 {
            match Etcd::try_start(members) {
                Ok(etcd) => return etcd,
                Err(e) => last = e,
            }
        }
        panic!("etcd did not start ({members} members):\n{last}");
    }

    fn try_start(n: usize) -> Result<Etcd, String> {
        let dir = tempfile::Builder::new()
            .prefix("tessera-etcd-")
            .tempdir()
            .expect("etcd temp dir");
        let token = format!("tessera-test-{:08x}", fastrand::u32(..));
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < 2 * n {
            let p = free_port();
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        let mut members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: ports[2 * i],
                peer_port: ports[2 * i + 1],
                child: None,
                log: dir.path().join(format!("m{i}.log")),
                member_id: String::new(),
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        for m in &mut members {
            let log = std::fs::File::create(&m.log).expect("etcd log file");
            let client = format!("http://127.0.0.1:{}", m.client_port);
            let peer = format!("http://127.0.0.1:{}", m.peer_port);
            let child = Command::new(etcd_binary())
                .arg("--name")
                .arg(&m.name)
                .arg("--data-dir")
                .arg(dir.path().join(format!("{}.etcd", m.name)))
                .args(["--listen-client-urls", &client])
                .args(["--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer])
                .args(["--initial-advertise-peer-urls", &peer])
                .args(["--initial-cluster", &initial_cluster])
                .args(["--initial-cluster-state", "new"])
                .args(["--initial-cluster-token", &token])
                .args(["--heartbeat-interval", "100", "--election-timeout", "1000"])
                // No metrics or pprof listeners beyond the client port; quiet logs.
                .args(["--logger", "zap", "--log-level", "warn"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("etcd log file"))
                .stderr(log)
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", etcd_binary()))?;
            m.child = Some(child);
        }
        let mut etcd = Etcd {
            dir: Some(dir),
            members,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .unwrap(),
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            let mut exited = Vec::new();
            for (i, m) in etcd.members.iter_mut().enumerate() {
                if let Some(Ok(Some(status))) = m.child.as_mut().map(|c| c.try_wait()) {
                    exited.push(format!("member {i} exited with {status}"));
                }
            }
            if !exited.is_empty() {
                return Err(format!("{}\n{}", exited.join("; "), etcd.logs()));
            }
            if (0..n).all(|i| etcd.healthy(i)) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "etcd not healthy within {STARTUP:?}\n{}",
                    etcd.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for i in 0..n {
            let status = etcd
                .status(i)
                .ok_or_else(|| format!("member {i} answers /health but not its status"))?;
            etcd.members[i].member_id = status["header"]["member_id"]
                .as_str()
                .ok_or_else(|| format!("member {i}'s status has no header.member_id: {status}"))?
                .to_string();
        }
        Ok(etcd)
    }

    /// The client URL of member `i`, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client_port)
    }

    /// Every member's client URL, dead ones included (what a node's `[cluster] etcd` lists).
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// [`Etcd::endpoints`] as a TOML array: `["http://127.0.0.1:1", …]`.
    pub fn endpoints_toml(&self) -> String {
        let quoted: Vec<String> = self
            .endpoints()
            .iter()
            .map(|e| format!("\"{e}\""))
            .collect();
        format!("[{}]", quoted.join(", "))
    }

    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// Whether member `i`'s process still runs (a paused one does).
    pub fn alive(&mut self, i: usize) -> bool {
        matches!(
            self.members[i].child.as_mut().map(|c| c.try_wait()),
            Some(Ok(None))
        )
    }

    /// Whether member `i` answers `GET /health` with `{"health":"true"}` (it has a leader).
    pub fn healthy(&self, i: usize) -> bool {
        self.http
            .get(format!("{}/health", self.endpoint(i)))
            .send()
            .ok()
            .and_then(|r| r.json::<Value>().ok())
            .is_some_and(|v| v["health"] == "true")
    }

    /// POSTs `body` to the v3 JSON gateway of member `i` at `path` (`/v3/kv/range`, …).
    fn gateway(&self, i: usize, path: &str, body: &Value) -> Option<Value> {
        let resp = self
            .http
            .post(format!("{}{path}", self.endpoint(i)))
            .json(body)
            .send()
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().ok()
    }

    /// `/v3/maintenance/status` of member `i`, if it answers.
    pub fn status(&self, i: usize) -> Option<Value> {
        self.gateway(i, "/v3/maintenance/status", &json!({}))
    }

    /// The index of the current leader, as the live members report it; waits up to 10 s for one (an election
    /// after the leader died). Panics when none is found.
    pub fn leader(&mut self) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            seen.clear();
            for i in 0..self.members.len() {
                if !self.alive(i) {
                    continue;
                }
                let Some(status) = self.status(i) else {
                    seen.push(format!("m{i}: no answer"));
                    continue;
                };
                let leader = status["leader"].as_str().unwrap_or("0").to_string();
                if let Some(l) = self.members.iter().position(|m| m.member_id == leader) {
                    if self.alive(l) {
                        return l;
                    }
                }
                seen.push(format!("m{i}: leader {leader}"));
            }
            assert!(
                Instant::now() < deadline,
                "no live etcd leader within 10 s; members report: {seen:?} (ids {:?})",
                self.members
                    .iter()
                    .map(|m| m.member_id.as_str())
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILLs member `i` (idempotent).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOPs every live member: etcd stops answering while every connection stays open.
    pub fn pause(&self) {
        for m in &self.members {
            if let Some(c) = &m.child {
                signal(c, libc::SIGSTOP);
            }
        }
    }

    /// SIGCONTs every member.
    pub fn resume(&self) {
        for m in &self.members {
            if let Some(c) = &m.child {
                signal(c, libc::SIGCONT);
            }
        }
    }

    /// The first member that answers the gateway, for reads and writes.
    fn any_gateway(&self, path: &str, body: &Value) -> Value {
        let mut tried = Vec::new();
        for i in 0..self.members.len() {
            if self.members[i].child.is_none() {
                continue;
            }
            match self.gateway(i, path, body) {
                Some(v) => return v,
                None => tried.push(i),
            }
        }
        panic!("no etcd member answered {path} (tried {tried:?})");
    }

    /// Every key under `prefix` with its value (both as UTF-8, lossily), in key order, from the first member
    /// that answers.
    pub fn get_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let end = base64::engine::general_purpose::STANDARD.encode(prefix_end(prefix));
        let v = self.any_gateway(
            "/v3/kv/range",
            &json!({"key": b64(prefix), "range_end": end}),
        );
        v["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| {
                        (
                            unb64(kv["key"].as_str().unwrap_or("")),
                            unb64(kv["value"].as_str().unwrap_or("")),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Puts `key` = `value` (for the harness's own checks).
    pub fn put(&self, key: &str, value: &str) {
        self.any_gateway("/v3/kv/put", &json!({"key": b64(key), "value": b64(value)}));
    }

    /// Where the members' logs and data are.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("etcd dir").path()
    }

    /// Paths of the members' logs.
    pub fn log_paths(&self) -> Vec<PathBuf> {
        self.members.iter().map(|m| m.log.clone()).collect()
    }

    /// Every member's log, for a failure message.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                format!(
                    "--- etcd {} ({}) ---\n{}",
                    m.name,
                    m.log.display(),
                    std::fs::read_to_string(&m.log).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Keeps the data dirs and logs after the test (the path is printed).
    pub fn keep_files(&mut self) {
        if let Some(dir) = self.dir.take() {
            let path = dir.keep();
            eprintln!("etcd files kept in {}", path.display());
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        if std::thread::panicking() {
            self.keep_files();
        }
    }
}
