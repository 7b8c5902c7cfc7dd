//! A Tessera cluster under test (issue 16): real etcd ([`Etcd`]), one nginx-rtmp whose `mix` application reports
//! every publisher to a [`PublishRecorder`], small live inputs, and N `tessera serve` processes, each with its own
//! dir, port and `[cluster]` section (`advertise_url = "http://127.0.0.1:{port}"`).
//!
//! Nodes are `node-a`, `node-b`, … (index 0, 1, …). Tasks are described by [`ClusterTask`] (a ZEGO task, a
//! Tencent Cloud API 3.0 session, a native mix or a native relay, with its input and output stream) and created,
//! queried and removed through any node. Everything is kept small for a 2-core machine running three nodes:
//! 320×180 inputs and outputs at 15 fps.
//!
//! When the test panics, the rig keeps its files and prints where each node's log is, the tail of each, and
//! every output's publish history.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::ExitStatus,
    time::{Duration, Instant},
};

use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    checks::{BLUE, GREEN, RED},
    etcd::Etcd,
    nginx::{free_port, Nginx},
    probe::OutputProbe,
    process::{write_config_on, Server},
    publisher::{Pattern, PublishOpts, Publisher},
    publishes::{PublishRecorder, PublishSession},
    sign::{tc3_headers, zego_path, ZEGO_APP, ZEGO_SECRET},
    util::{init, poll, wait_for},
};

/// The nginx-rtmp application Tessera publishes its outputs to (`egress.push_url`).
pub const OUT_APP: &str = "mix";
/// The API 3.0 credentials the cluster's nodes are configured with.
pub const TC_SECRET_ID: &str = "AKIDcluster00000000000000000000000000";
pub const TC_SECRET_KEY: &str = "clustersecretkey000000000000000000";
/// The etcd key prefix of the rig's cluster.
pub const PREFIX: &str = "/tessera";
/// Size and rate of inputs and outputs.
pub const W: u32 = 320;
pub const H: u32 = 180;
pub const FPS: u32 = 15;
/// The UserId and Sequence the rig's ZEGO tasks are created with.
pub const ZEGO_USER: &str = "owner";
pub const ZEGO_SEQ: i64 = 5;
/// ZEGO's codes the scenarios expect (src/api/zego/codes.rs).
pub const ZEGO_PARAMETER: u64 = 110200002;
pub const ZEGO_TASK_FAILED: u64 = 110200151;
pub const ZEGO_NOT_OWNER: u64 = 110200160;
pub const ZEGO_TASK_NOT_FOUND: u64 = 110209001;

/// The id of node `i`: `node-a`, `node-b`, …
pub fn node_id(i: usize) -> String {
    assert!(i < 26);
    format!("node-{}", (b'a' + i as u8) as char)
}

/// What a rig starts.
#[derive(Clone, Debug)]
pub struct ClusterOpts {
    /// Nodes configured.
    pub nodes: usize,
    /// Nodes started at once (the first ones); the rest wait for [`ClusterRig::start_node`].
    pub start: usize,
    pub etcd_members: usize,
    pub lease_ttl_ms: u64,
    /// `[cluster] capacity` of every node, in cost units. Explicit by default (not from the machine's cores), so
    /// placement does not depend on where the test runs.
    pub capacity: u64,
    pub drain_timeout_s: u64,
    /// `[zego] input_check_ms`; Tessera's default when `None`.
    pub zego_input_check_ms: Option<u64>,
    /// Live inputs `live/{name}`, one solid colour each.
    pub inputs: Vec<(String, u32)>,
    /// nginx drops a publisher that sent nothing for this long (a frozen node's outputs).
    pub drop_idle_publisher_s: u32,
}

impl Default for ClusterOpts {
    fn default() -> Self {
        ClusterOpts {
            nodes: 3,
            start: usize::MAX,
            etcd_members: 1,
            lease_ttl_ms: 6000,
            capacity: 10_000,
            drain_timeout_s: 60,
            zego_input_check_ms: None,
            inputs: vec![
                ("red".into(), RED),
                ("green".into(), GREEN),
                ("blue".into(), BLUE),
            ],
            drop_idle_publisher_s: 2,
        }
    }
}

/// Which API a task is created and removed through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskDialect {
    /// ZEGO StartMix / StopMix (TaskId).
    Zego,
    /// Tencent Cloud API 3.0 CreateCommonMixStream / CancelCommonMixStream (MixStreamSessionId).
    Tencent,
    /// `PUT /v1/mixes/{id}`.
    NativeMix,
    /// `PUT /v1/relays/{id}` then `POST …/start`.
    NativeRelay,
}

/// A small task: one input drawn over the whole 320×180 canvas at 15 fps (or relayed), one output stream
/// `mix/{output}`.
#[derive(Clone, Debug)]
pub struct ClusterTask {
    pub dialect: TaskDialect,
    /// The TaskId, MixStreamSessionId or native id.
    pub name: String,
    /// The input's stream id (`live/{input}`).
    pub input: String,
    /// The output's stream id (`mix/{output}`).
    pub output: String,
}

impl ClusterTask {
    pub fn zego(name: &str, input: &str, output: &str) -> Self {
        Self::new(TaskDialect::Zego, name, input, output)
    }
    pub fn tencent(name: &str, input: &str, output: &str) -> Self {
        Self::new(TaskDialect::Tencent, name, input, output)
    }
    pub fn mix(name: &str, input: &str, output: &str) -> Self {
        Self::new(TaskDialect::NativeMix, name, input, output)
    }
    pub fn relay(name: &str, input: &str, output: &str) -> Self {
        Self::new(TaskDialect::NativeRelay, name, input, output)
    }
    fn new(dialect: TaskDialect, name: &str, input: &str, output: &str) -> Self {
        ClusterTask {
            dialect,
            name: name.into(),
            input: input.into(),
            output: output.into(),
        }
    }

    /// The engine's id, as `GET /v1/cluster` lists it: `zego-T`, `tencent-S`, or the native id.
    pub fn engine_id(&self) -> String {
        match self.dialect {
            TaskDialect::Zego => format!("zego-{}", self.name),
            TaskDialect::Tencent => format!("tencent-{}", self.name),
            TaskDialect::NativeMix | TaskDialect::NativeRelay => self.name.clone(),
        }
    }

    /// `mix` or `relay`, as `GET /v1/cluster` lists it.
    pub fn kind(&self) -> &'static str {
        match self.dialect {
            TaskDialect::NativeRelay => "relay",
            _ => "mix",
        }
    }

    /// The native path that shows it: `/v1/mixes/{engine id}` or `/v1/relays/{id}`.
    pub fn native_path(&self) -> String {
        let plural = match self.kind() {
            "relay" => "relays",
            _ => "mixes",
        };
        format!("/v1/{plural}/{}", self.engine_id())
    }
}

/// ZEGO StartMix of a small task.
pub fn zego_start_body(task: &str, input: &str, output: &str, sequence: i64, user: &str) -> Value {
    json!({
        "TaskId": task, "UserId": user, "Sequence": sequence, "RoomId": task, "MaxIdleTime": 600,
        "MixInput": [{"StreamId": input, "RectInfo": {"Top": 0, "Left": 0, "Bottom": H, "Right": W}}],
        "MixOutput": [{"StreamId": output, "Width": W, "Height": H, "Fps": FPS, "VideoBitrate": 300_000}]
    })
}

/// API 3.0 CreateCommonMixStream of a small session: the input is the 320×180 background.
pub fn tencent_create_body(session: &str, input: &str, output: &str) -> Value {
    json!({
        "MixStreamSessionId": session,
        // Tencent mixes at least two streams: the task's input fills the canvas, another input sits small in
        // the bottom-right corner (the centre stays the task's own colour).
        "InputStreamList": [{"InputStreamName": input,
            "LayoutParams": {"ImageLayer": 1, "ImageWidth": W, "ImageHeight": H}},
            {"InputStreamName": other_input(input),
            "LayoutParams": {"ImageLayer": 2, "ImageWidth": W / 4, "ImageHeight": H / 4,
                "LocationX": W * 3 / 4, "LocationY": H * 3 / 4}}],
        "OutputParams": {"OutputStreamName": output, "OutputStreamType": 1,
            "OutputStreamBitRate": 300, "OutputStreamFrameRate": FPS}
    })
}

/// The rig's input that is not `input` (the next of red, green, blue).
fn other_input(input: &str) -> &'static str {
    match input {
        "red" => "green",
        "green" => "blue",
        _ => "red",
    }
}

/// A native mix spec of a small mix.
pub fn native_mix_body(input: &str, output: &str) -> Value {
    json!({
        "canvas": {"width": W, "height": H, "fps": FPS, "background": "#000000"},
        "inputs": [{"id": "in", "source": {"stream_id": input},
                    "rect": {"x": 0, "y": 0, "width": W, "height": H}}],
        "outputs": [{"target": {"stream_id": output}, "video": {"bitrate_kbps": 300}}]
    })
}

/// One node's answer.
#[derive(Clone, Debug)]
pub struct NodeReply {
    pub status: u16,
    /// The JSON body (`Null` when there is none or it is not JSON).
    pub body: Value,
    /// `x-tessera-node`: the node that executed the request.
    pub node: Option<String>,
}

impl NodeReply {
    /// ZEGO's `Code` (panics when the body is no ZEGO envelope).
    pub fn zego_code(&self) -> u64 {
        self.body["Code"]
            .as_u64()
            .unwrap_or_else(|| panic!("not a ZEGO answer: HTTP {} {}", self.status, self.body))
    }

    /// API 3.0's `Response.Error.Code`, `None` on success.
    pub fn tencent_error(&self) -> Option<String> {
        self.body["Response"]["Error"]["Code"]
            .as_str()
            .map(str::to_string)
    }

    /// The executing node, insisting the header is there.
    pub fn executed_by(&self) -> &str {
        self.node.as_deref().unwrap_or_else(|| {
            panic!(
                "expected an x-tessera-node header; HTTP {} {} had none",
                self.status, self.body
            )
        })
    }
}

/// `GET /v1/cluster`.
#[derive(Clone, Debug, Deserialize)]
pub struct ClusterView {
    /// The answering node.
    pub node: String,
    /// `active`, `draining` or `fenced`.
    pub state: String,
    pub nodes: Vec<ClusterNodeView>,
    pub tasks: Vec<ClusterTaskView>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ClusterNodeView {
    pub id: String,
    pub url: String,
    pub state: String,
    pub capacity: u64,
    pub reserved: u64,
    pub tasks: u64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ClusterTaskView {
    /// `mix` or `relay`.
    pub kind: String,
    pub id: String,
    pub node: String,
    pub cost: u64,
    pub running: bool,
}

impl ClusterView {
    pub fn task(&self, engine_id: &str) -> Option<&ClusterTaskView> {
        self.tasks.iter().find(|t| t.id == engine_id)
    }

    /// Every task's owner, by engine id.
    pub fn owners(&self) -> BTreeMap<String, String> {
        self.tasks
            .iter()
            .map(|t| (t.id.clone(), t.node.clone()))
            .collect()
    }

    pub fn member(&self, id: &str) -> Option<&ClusterNodeView> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The ids of the nodes listed, sorted.
    pub fn node_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.nodes.iter().map(|n| n.id.clone()).collect();
        ids.sort();
        ids
    }

    /// Tasks owned by `node`, sorted by id.
    pub fn tasks_of(&self, node: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .tasks
            .iter()
            .filter(|t| t.node == node)
            .map(|t| t.id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// A one-line summary for messages.
    pub fn summary(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|n| {
                format!(
                    "{}:{} {}/{} ({} tasks)",
                    n.id, n.state, n.reserved, n.capacity, n.tasks
                )
            })
            .collect();
        let tasks: Vec<String> = self
            .tasks
            .iter()
            .map(|t| {
                format!(
                    "{}@{}{}",
                    t.id,
                    t.node,
                    if t.running { "" } else { " (not running)" }
                )
            })
            .collect();
        format!(
            "{} says {}: nodes [{}] tasks [{}]",
            self.node,
            self.state,
            nodes.join(", "),
            tasks.join(", ")
        )
    }
}

/// For [`ClusterRig::wait_views`]: every view lists every one of `tasks` running, on the same owner in every
/// view, never on `not_on`.
pub fn check_all_running(
    views: &[ClusterView],
    tasks: &[ClusterTask],
    not_on: Option<&str>,
) -> Result<(), String> {
    let Some(first) = views.first().map(ClusterView::owners) else {
        return Err("no node answers".into());
    };
    for v in views {
        for t in tasks {
            match v.task(&t.engine_id()) {
                Some(tv) if tv.running && Some(tv.node.as_str()) != not_on => {}
                _ => {
                    return Err(format!(
                        "{} not as expected: {}",
                        t.engine_id(),
                        v.summary()
                    ))
                }
            }
        }
        if tasks
            .iter()
            .any(|t| v.task(&t.engine_id()).map(|x| &x.node) != first.get(&t.engine_id()))
        {
            return Err(format!("owners differ between nodes: {}", v.summary()));
        }
    }
    Ok(())
}

/// One node of the rig.
pub struct ClusterNode {
    pub id: String,
    pub port: u16,
    /// `http://127.0.0.1:{port}`
    pub base: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    server: Option<Server>,
    /// Logs of every run of this node.
    logs: Vec<PathBuf>,
    /// SIGSTOPped and not continued.
    stopped: bool,
    /// How its last run ended, once it has.
    pub exit: Option<ExitStatus>,
}

impl ClusterNode {
    /// Whether its process runs (stopped or not).
    pub fn running(&mut self) -> bool {
        match self.server.as_mut() {
            Some(s) => {
                if s.alive() {
                    true
                } else {
                    self.exit = s.exit_status();
                    false
                }
            }
            None => false,
        }
    }

    /// Whether it runs and is not SIGSTOPped: it can answer.
    pub fn answering(&mut self) -> bool {
        !self.stopped && self.running()
    }

    pub fn log_paths(&self) -> &[PathBuf] {
        &self.logs
    }

    /// What its current (or last) run logged.
    pub fn log(&self) -> String {
        self.logs
            .last()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }
}

/// See the module's documentation. Fields drop in order: nodes first, etcd last.
pub struct ClusterRig {
    pub nodes: Vec<ClusterNode>,
    pub inputs: Vec<Publisher>,
    pub nginx: Nginx,
    pub recorder: PublishRecorder,
    pub etcd: Etcd,
    pub opts: ClusterOpts,
    dir: Option<tempfile::TempDir>,
    http: reqwest::blocking::Client,
}

/// The last `n` lines of a file.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl ClusterRig {
    /// etcd, the recorder, nginx, the inputs (once nginx has them), then the first `opts.start` nodes; returns
    /// once every started node lists all of them as active.
    pub fn start(opts: ClusterOpts) -> ClusterRig {
        init();
        let etcd = Etcd::start(opts.etcd_members);
        let recorder = PublishRecorder::start();
        let nginx = Nginx::start_with_publish_log_idle(recorder.port(), opts.drop_idle_publisher_s);
        let inputs: Vec<Publisher> = opts
            .inputs
            .iter()
            .map(|(name, rgb)| {
                Publisher::start(
                    &nginx.rtmp_url("live", name),
                    PublishOpts {
                        width: W,
                        height: H,
                        fps: FPS,
                        pattern: Pattern::Solid(*rgb),
                        ..PublishOpts::default()
                    },
                )
            })
            .collect();
        for ((name, _), p) in opts.inputs.iter().zip(&inputs) {
            assert!(
                wait_for(Duration::from_secs(25), || nginx
                    .is_publishing("live", name)),
                "input live/{name} never published: {:?}",
                p.errors()
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("tessera-cluster-")
            .tempdir()
            .expect("cluster temp dir");
        let mut nodes = Vec::new();
        for i in 0..opts.nodes {
            let id = node_id(i);
            let node_dir = dir.path().join(&id);
            std::fs::create_dir_all(&node_dir).unwrap();
            let port = free_port();
            let zego_check = opts
                .zego_input_check_ms
                .map(|ms| format!("input_check_ms = {ms}\n"))
                .unwrap_or_default();
            // The cluster's capacity (cost units) is what limits these nodes, not the mix count derived from
            // the test machine's cores.
            let extra = format!(
                r#"[engine]
max_mixes = 32
[zego]
app_id = {ZEGO_APP}
server_secret = "{ZEGO_SECRET}"
{zego_check}[tencentcloud]
secret_id = "{TC_SECRET_ID}"
secret_key = "{TC_SECRET_KEY}"
[cluster]
etcd = {etcd}
node_id = "{id}"
advertise_url = "http://127.0.0.1:{port}"
lease_ttl_ms = {ttl}
capacity = {capacity}
prefix = "{PREFIX}"
drain_timeout_s = {drain}
"#,
                etcd = etcd.endpoints_toml(),
                ttl = opts.lease_ttl_ms,
                capacity = opts.capacity,
                drain = opts.drain_timeout_s,
            );
            let config = write_config_on(&node_dir, &nginx, port, &extra);
            nodes.push(ClusterNode {
                id,
                port,
                base: format!("http://127.0.0.1:{port}"),
                dir: node_dir,
                config,
                server: None,
                logs: Vec::new(),
                stopped: false,
                exit: None,
            });
        }
        let mut rig = ClusterRig {
            nodes,
            inputs,
            nginx,
            recorder,
            etcd,
            opts: opts.clone(),
            dir: Some(dir),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
        };
        let first: Vec<usize> = (0..opts.start.min(opts.nodes)).collect();
        rig.start_nodes(&first);
        rig
    }

    /// Starts nodes `which` (all at once), waits until each is healthy and every running node lists every
    /// running node as active.
    pub fn start_nodes(&mut self, which: &[usize]) {
        for &i in which {
            self.spawn_node(i);
        }
        for &i in which {
            let node = &mut self.nodes[i];
            node.server
                .as_mut()
                .unwrap()
                .wait_healthy(Duration::from_secs(25));
        }
        self.wait_formed();
    }

    /// Starts node `i` (again: same config, same state dir) and waits until the cluster lists it.
    pub fn start_node(&mut self, i: usize) {
        self.start_nodes(&[i]);
    }

    fn spawn_node(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        assert!(
            node.server.as_mut().is_none_or(|s| !s.alive()),
            "{} runs already",
            node.id
        );
        let level = std::env::var("TESSERA_NODE_LOG").unwrap_or_else(|_| "tessera=info".into());
        let server = Server::spawn_with(&node.config, node.port, |c| {
            c.env("RUST_LOG", level);
        });
        node.logs.push(server.log_path().to_path_buf());
        node.server = Some(server);
        node.stopped = false;
        node.exit = None;
    }

    /// Indices of the nodes whose process runs and is not stopped.
    pub fn answering(&mut self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].answering())
            .collect()
    }

    /// Waits until every answering node lists exactly the answering nodes, all `active`.
    pub fn wait_formed(&mut self) {
        let live = self.answering();
        let want: Vec<String> = live.iter().map(|&i| node_id(i)).collect();
        self.wait_views(
            &format!("every node to list {want:?} as active"),
            Duration::from_secs(30),
            |views| {
                for v in views {
                    let ok = v.node_ids() == want
                        && v.state == "active"
                        && v.nodes.iter().all(|n| n.state == "active");
                    if !ok {
                        return Err(v.summary());
                    }
                }
                Ok(())
            },
        );
    }

    /// The index of node `id`.
    pub fn index_of(&self, id: &str) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id:?} in the rig"))
    }

    pub fn server(&self, i: usize) -> &Server {
        self.nodes[i]
            .server
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not running", self.nodes[i].id))
    }

    fn server_mut(&mut self, i: usize) -> &mut Server {
        let id = self.nodes[i].id.clone();
        self.nodes[i]
            .server
            .as_mut()
            .unwrap_or_else(|| panic!("{id} is not running"))
    }

    // Faults.

    /// SIGKILLs node `i` (a crash); the instant it was killed.
    pub fn kill(&mut self, i: usize) -> Instant {
        let server = self.nodes[i]
            .server
            .take()
            .unwrap_or_else(|| panic!("{} is not running", node_id(i)));
        let t = Instant::now();
        server.kill();
        self.nodes[i].stopped = false;
        t
    }

    /// SIGSTOPs node `i` (frozen: no renewal, no output, its connections stay open); the instant.
    pub fn freeze(&mut self, i: usize) -> Instant {
        self.server_mut(i).signal(libc::SIGSTOP);
        self.nodes[i].stopped = true;
        Instant::now()
    }

    /// SIGCONTs node `i`; the instant.
    pub fn thaw(&mut self, i: usize) -> Instant {
        self.server_mut(i).signal(libc::SIGCONT);
        self.nodes[i].stopped = false;
        Instant::now()
    }

    /// SIGTERMs node `i`; the instant.
    pub fn terminate(&mut self, i: usize) -> Instant {
        self.server_mut(i).signal(libc::SIGTERM);
        Instant::now()
    }

    /// Waits for node `i` to end by itself and insists it exited with status 0.
    pub fn wait_clean_exit(&mut self, i: usize, timeout: Duration) {
        let id = self.nodes[i].id.clone();
        let status = self.server_mut(i).wait_exit(timeout);
        let log = self.nodes[i]
            .logs
            .last()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        match status {
            Some(s) => {
                self.nodes[i].exit = Some(s);
                assert!(
                    s.success(),
                    "expected {id} to exit with status 0, it exited with {s} (log {log})"
                );
            }
            None => panic!("expected {id} to exit within {timeout:?}; it still runs (log {log})"),
        }
    }

    // HTTP.

    /// A request to node `i`; `Err` with what went wrong when it got no answer.
    pub fn try_request(
        &self,
        i: usize,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<NodeReply, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let url = format!("{}{path}", self.nodes[i].base);
        let mut req = self.http.request(method, &url).timeout(timeout);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let node = resp
            .headers()
            .get("x-tessera-node")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp.bytes().map_err(|e| format!("{url}: body: {e}"))?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(NodeReply { status, body, node })
    }

    /// A request to node `i` that must get an answer (any status).
    pub fn request(
        &self,
        i: usize,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> NodeReply {
        self.try_request(i, method, path, headers, body, Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("expected an answer from {}: {e}", self.nodes[i].id))
    }

    /// A native JSON request to node `i`.
    pub fn native(&self, i: usize, method: &str, path: &str, body: Option<&Value>) -> NodeReply {
        let headers = [("content-type".to_string(), "application/json".to_string())];
        self.request(
            i,
            method,
            path,
            &headers,
            body.map(|b| b.to_string().into_bytes()),
        )
    }

    /// A ZEGO request to node `i`, signed as ZEGO's samples sign (fresh nonce); `extra_query` is appended
    /// (`&TaskId=…`).
    pub fn zego(
        &self,
        i: usize,
        action: &str,
        extra_query: &str,
        body: Option<&Value>,
    ) -> NodeReply {
        let path = format!("{}{extra_query}", zego_path(ZEGO_APP, ZEGO_SECRET, action));
        let headers = [("content-type".to_string(), "application/json".to_string())];
        self.request(
            i,
            "POST",
            &path,
            &headers,
            body.map(|b| b.to_string().into_bytes()),
        )
    }

    /// An API 3.0 request (`live`, 2018-08-01) to node `i`, signed with TC3-HMAC-SHA256 for its host.
    pub fn tencent(&self, i: usize, action: &str, body: &Value) -> NodeReply {
        let bytes = body.to_string().into_bytes();
        let host = format!("127.0.0.1:{}", self.nodes[i].port);
        let headers = tc3_headers(
            TC_SECRET_ID,
            TC_SECRET_KEY,
            &host,
            action,
            "live",
            "2018-08-01",
            &bytes,
        );
        self.request(i, "POST", "/", &headers, Some(bytes))
    }

    /// `GET /v1/cluster` on node `i`, parsed; `Err` with what was seen otherwise.
    pub fn try_view(&self, i: usize, timeout: Duration) -> Result<ClusterView, String> {
        let r = self.try_request(i, "GET", "/v1/cluster", &[], None, timeout)?;
        if r.status != 200 {
            return Err(format!(
                "{}: GET /v1/cluster answered {} {}",
                self.nodes[i].id, r.status, r.body
            ));
        }
        serde_json::from_value(r.body.clone()).map_err(|e| {
            format!(
                "{}: GET /v1/cluster is not the contract's shape ({e}): {}",
                self.nodes[i].id, r.body
            )
        })
    }

    /// `GET /v1/cluster` on node `i`, insisting on an answer of the contract's shape.
    pub fn view(&self, i: usize) -> ClusterView {
        self.try_view(i, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("expected GET /v1/cluster to answer: {e}"))
    }

    /// The view of every answering node.
    pub fn views(&mut self) -> Vec<ClusterView> {
        self.answering().iter().map(|&i| self.view(i)).collect()
    }

    /// Polls the views of every answering node until `check` accepts them all; `what` is the expectation and
    /// `check`'s `Err` what was seen.
    pub fn wait_views(
        &mut self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&[ClusterView]) -> Result<(), String>,
    ) -> Vec<ClusterView> {
        poll(what, timeout, Duration::from_millis(200), || {
            let nodes = self.answering();
            let mut views = Vec::new();
            for i in nodes {
                views.push(self.try_view(i, Duration::from_secs(3))?);
            }
            check(&views)?;
            Ok(views)
        })
    }

    /// The owner of `engine_id` as the first answering node sees it.
    pub fn owner_of(&mut self, engine_id: &str) -> Option<String> {
        let i = *self.answering().first().expect("no node answers");
        self.view(i).task(engine_id).map(|t| t.node.clone())
    }

    /// Waits until every answering node lists `engine_id` as running on the same owner, other than `not_on`;
    /// that owner.
    pub fn wait_owner(
        &mut self,
        engine_id: &str,
        not_on: Option<&str>,
        timeout: Duration,
    ) -> String {
        let what = match not_on {
            Some(n) => format!("every node to list {engine_id} running on one node other than {n}"),
            None => format!("every node to list {engine_id} running on one node"),
        };
        let views = self.wait_views(&what, timeout, |views| {
            let mut owner: Option<&str> = None;
            for v in views {
                let t = v.task(engine_id).ok_or_else(|| v.summary())?;
                if !t.running || Some(t.node.as_str()) == not_on {
                    return Err(v.summary());
                }
                if owner.is_some_and(|o| o != t.node) {
                    return Err(format!("owners disagree: {}", v.summary()));
                }
                owner = Some(&t.node);
            }
            Ok(())
        });
        views[0].task(engine_id).unwrap().node.clone()
    }

    // Tasks.

    /// Creates `task` through node `i`, insisting it was accepted; the answer.
    pub fn create(&self, i: usize, task: &ClusterTask) -> NodeReply {
        let r = self.try_create(i, task);
        let ok = match task.dialect {
            TaskDialect::Zego => r.status == 200 && r.body["Code"] == 0,
            TaskDialect::Tencent => r.status == 200 && r.tencent_error().is_none(),
            TaskDialect::NativeMix | TaskDialect::NativeRelay => (200..300).contains(&r.status),
        };
        assert!(
            ok,
            "expected {} to create {task:?}; it answered {} {}",
            self.nodes[i].id, r.status, r.body
        );
        r
    }

    /// Sends the request that creates `task` to node `i`; the answer, whatever it is. (A relay is also started;
    /// the answer is the start's.)
    pub fn try_create(&self, i: usize, task: &ClusterTask) -> NodeReply {
        match task.dialect {
            TaskDialect::Zego => self.zego(
                i,
                "StartMix",
                "",
                Some(&zego_start_body(
                    &task.name,
                    &task.input,
                    &task.output,
                    ZEGO_SEQ,
                    ZEGO_USER,
                )),
            ),
            TaskDialect::Tencent => self.tencent(
                i,
                "CreateCommonMixStream",
                &tencent_create_body(&task.name, &task.input, &task.output),
            ),
            TaskDialect::NativeMix => self.native(
                i,
                "PUT",
                &task.native_path(),
                Some(&native_mix_body(&task.input, &task.output)),
            ),
            TaskDialect::NativeRelay => {
                let spec = json!({
                    "main": {"push": task.input},
                    "outputs": [{"id": "o", "url": self.nginx.rtmp_url(OUT_APP, &task.output)}]
                });
                let put = self.native(i, "PUT", &task.native_path(), Some(&spec));
                if !(200..300).contains(&put.status) {
                    return put;
                }
                self.native(i, "POST", &format!("{}/start", task.native_path()), None)
            }
        }
    }

    /// Stops `task` through node `i` (ZEGO StopMix as its UserId, CancelCommonMixStream, DELETE), insisting it
    /// was accepted; the answer.
    pub fn remove(&self, i: usize, task: &ClusterTask) -> NodeReply {
        let r = match task.dialect {
            TaskDialect::Zego => self.zego(
                i,
                "StopMix",
                "",
                Some(&json!({"TaskId": task.name, "UserId": ZEGO_USER})),
            ),
            TaskDialect::Tencent => self.tencent(
                i,
                "CancelCommonMixStream",
                &json!({"MixStreamSessionId": task.name}),
            ),
            TaskDialect::NativeMix | TaskDialect::NativeRelay => {
                self.native(i, "DELETE", &task.native_path(), None)
            }
        };
        let ok = match task.dialect {
            TaskDialect::Zego => r.status == 200 && r.body["Code"] == 0,
            TaskDialect::Tencent => r.status == 200 && r.tencent_error().is_none(),
            _ => (200..300).contains(&r.status),
        };
        assert!(
            ok,
            "expected {} to remove {task:?}; it answered {} {}",
            self.nodes[i].id, r.status, r.body
        );
        r
    }

    // Outputs.

    /// Waits until each task's output has an open publish session; panics with the stream's history.
    pub fn wait_publishing(&self, tasks: &[ClusterTask], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for t in tasks {
            let left = deadline.saturating_duration_since(Instant::now());
            self.recorder.wait_publishing(OUT_APP, &t.output, left);
        }
    }

    /// The publish sessions of output `stream`.
    pub fn sessions(&self, stream: &str) -> Vec<PublishSession> {
        self.recorder.sessions(OUT_APP, stream)
    }

    /// `on_publish` calls on output `stream`.
    pub fn attempts(&self, stream: &str) -> Vec<Instant> {
        self.recorder.attempts(OUT_APP, stream)
    }

    /// Panics when two sessions of any of `tasks`' outputs overlapped.
    pub fn assert_no_overlap(&self, tasks: &[ClusterTask]) {
        for t in tasks {
            self.recorder.assert_no_overlap(OUT_APP, &t.output);
        }
    }

    /// A probe decoding output `stream`.
    pub fn probe(&self, stream: &str) -> OutputProbe {
        OutputProbe::start(&self.nginx.rtmp_url(OUT_APP, stream))
    }

    /// The colour of input `name`.
    pub fn input_color(&self, name: &str) -> u32 {
        self.opts
            .inputs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| *c)
            .unwrap_or_else(|| panic!("no input {name:?}"))
    }

    /// For messages: every output's publish history.
    pub fn publish_history(&self) -> String {
        let mut names: Vec<String> = self
            .recorder
            .events()
            .into_iter()
            .filter(|e| e.app == OUT_APP)
            .map(|e| e.name)
            .collect();
        names.sort();
        names.dedup();
        names
            .iter()
            .map(|n| format!("  {n}: {}", self.recorder.describe(OUT_APP, n)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Keeps every file of the rig and prints where the logs are, with the tail of each node's log.
    pub fn keep_and_report(&mut self) {
        let dir = self.dir.take().map(|d| d.keep());
        eprintln!("=== cluster rig: files kept in {dir:?} ===");
        for n in &self.nodes {
            for p in &n.logs {
                eprintln!("{} log: {}", n.id, p.display());
            }
            if let Some(last) = n.logs.last() {
                eprintln!(
                    "--- {} (port {}), last lines ---\n{}",
                    n.id,
                    n.port,
                    tail(last, 40)
                );
            }
        }
        for p in self.etcd.log_paths() {
            eprintln!("etcd log: {}", p.display());
        }
        self.etcd.keep_files();
        self.nginx.keep_files();
        eprintln!(
            "publish history (seconds since the recorder started):\n{}",
            self.publish_history()
        );
    }
}

impl Drop for ClusterRig {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.keep_and_report();
        }
        // Frozen nodes are killed by their Server's drop (SIGKILL works on stopped processes); a paused etcd too.
    }
}

/// The `p`-th percentile (0–100, nearest rank) of `values`; `Duration::ZERO` for none.
pub fn percentile(values: &[Duration], p: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let mut v = values.to_vec();
    v.sort();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}
