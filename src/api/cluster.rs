//! The cluster at the HTTP layer (docs/cluster.md): every request about a task goes to the node that owns it,
//! so any node answers any request with the answer a single node gives; `GET /v1/cluster` shows the nodes and
//! who runs what; `POST /v1/cluster/drain` hands this node's tasks over and ends it.
//!
//! [`route`] is a middleware around every route. It reads which task a request is about (`api::route`), then:
//! - the task is this node's: served here (marked busy, so the reconcile loop leaves it alone meanwhile);
//! - another node owns it: the request is forwarded there as it came (method, path, headers — the `Host` a
//!   signature covers included — and body) and its answer, streamed, is the answer;
//! - nobody owns it: a create (or a recorded task whose owner died) is placed by cost; this node claims it in a
//!   transaction when placed here, else forwards it to the chosen node, which claims it; anything else is
//!   served here (the dialect answers that it does not exist).
//!
//! A forwarded request names the nodes it went through in `x-tessera-forwarded-by`; it is forwarded again only
//! to the node that won the task's claim against it, and never more than twice. Every answer names the node
//! that served it in `x-tessera-node`.

use std::{sync::Arc, time::Instant};

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderName, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Serialize;

use super::{route::Addressed, ApiError, AppState};
use crate::{
    cluster::{
        keys::NodeState,
        ledger,
        member::Standing,
        view::{place, record_of},
        Busy, Cluster, Tasks,
    },
    events::TaskRef,
};

/// The node that served a request.
pub const NODE_HEADER: &str = "x-tessera-node";
/// Set on a request one node forwards to another: the nodes it went through, comma-separated.
const FORWARDED_HEADER: &str = "x-tessera-forwarded-by";
/// The most times one request is forwarded.
const MAX_HOPS: usize = 2;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/cluster", get(show))
        .route("/v1/cluster/drain", post(drain))
}

/// The node's tasks as the cluster moves them.
pub struct NodeTasks(pub AppState);

#[async_trait::async_trait]
impl Tasks for NodeTasks {
    fn local(&self) -> Vec<TaskRef> {
        let s = &self.0;
        let mut tasks: Vec<TaskRef> = s.engine.mix_ids().into_iter().map(TaskRef::Mix).collect();
        tasks.extend(s.relays.ids().into_iter().map(TaskRef::Relay));
        tasks
    }

    async fn adopt(&self, task: &TaskRef) -> Result<bool, String> {
        let s = &self.0;
        let found = match task {
            TaskRef::Mix(id) => s.engine.adopt_mix(id).await,
            TaskRef::Relay(id) => s.relays.adopt(id).await,
        }
        .map_err(|e| e.message)?;
        if found {
            s.zego.adopt(task).await;
            s.tencent.adopt(task).await;
        }
        Ok(found)
    }

    async fn release(&self, task: &TaskRef) {
        let s = &self.0;
        match task {
            TaskRef::Mix(id) => {
                s.engine.release_mix(id).await;
            }
            TaskRef::Relay(id) => {
                s.relays.release(id).await;
            }
        }
        s.zego.release(task);
        s.tencent.release(task);
    }
}

/// Where a request is served.
enum Decision {
    /// Served here; `claimed`: this request made this node the task's owner (undone if it is refused).
    Here(Option<Busy>, bool),
    At(String),
    /// The owner could not be settled now (etcd trouble, an owner that moved meanwhile): retry.
    Unsettled,
}

/// The routing middleware (module docs).
pub async fn route(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(cluster) = state.cluster.clone() else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    // The vendor dialects name their task in the body; the native API in its path, and the sources a create
    // names (for placement) in its body.
    let native_create = matches!(
        parts.method,
        axum::http::Method::PUT | axum::http::Method::POST
    ) && parts.uri.path().starts_with("/v1/mixes")
        && parts.uri.path().matches('/').count() <= 3;
    let in_body = matches!(parts.uri.path(), "/" | "/common_access") || native_create;
    let (bytes, raw) = if in_body {
        let max = state.config.get().server.max_body_bytes;
        match axum::body::to_bytes(body, max).await {
            Ok(b) => (Some(b), None),
            Err(_) => {
                // Too large: the dialect's own handler refuses it in its own shape.
                let failing = futures::stream::once(async {
                    Err::<Bytes, std::io::Error>(std::io::Error::other("body too large"))
                });
                let request = Request::from_parts(parts, Body::from_stream(failing));
                return stamp(next.run(request).await, cluster.node_id());
            }
        }
    } else {
        (None, Some(body))
    };
    let addressed = super::route::address(
        &parts.method,
        &parts.uri,
        &parts.headers,
        bytes.as_deref().unwrap_or(&[]),
    );
    let hops: Vec<String> = parts
        .headers
        .get(FORWARDED_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').map(|h| h.trim().to_string()).collect())
        .unwrap_or_default();
    let forwarded_in = !hops.is_empty();
    if let Some(key) = list_key(&parts).filter(|_| !forwarded_in) {
        let request = Request::from_parts(parts.clone(), Body::empty());
        let local = next.run(request).await;
        return stamp(
            gather(&cluster, &parts, local, key).await,
            cluster.node_id(),
        );
    }
    let sources =
        || super::route::sources(&parts.uri, &parts.headers, bytes.as_deref().unwrap_or(&[]));
    match decide(&state, &cluster, &addressed, forwarded_in, sources).await {
        Decision::Here(busy, claimed) => {
            let body = match (bytes, raw) {
                (Some(b), _) => Body::from(b),
                (None, Some(raw)) => raw,
                (None, None) => Body::empty(),
            };
            let request = Request::from_parts(parts, body);
            let response = next.run(request).await;
            if let (true, Addressed::Task { task, .. }) = (claimed, &addressed) {
                let tasks = NodeTasks(state.clone());
                if !tasks.local().contains(task) {
                    // Refused (no room, a bad spec): nothing of it stays, its owner key included.
                    cluster.ledger.release(task);
                    if let Err(e) = cluster.disown(task).await {
                        tracing::warn!(mix = task.mix(), relay = task.relay(), error = %e, "owner key of a refused task not removed; the next pass does");
                    }
                }
            }
            drop(busy);
            if matches!(addressed, Addressed::New(_)) {
                // A task created here with an id of its own: claimed by the next pass, now.
                cluster.kick.notify_one();
            }
            stamp(response, cluster.node_id())
        }
        Decision::At(node) => {
            if hops.len() >= MAX_HOPS || hops.contains(&node) {
                return unsettled();
            }
            let Some(url) = cluster.view().nodes.get(&node).map(|n| n.url.clone()) else {
                return unsettled();
            };
            let body = match (bytes, raw) {
                (Some(b), _) => reqwest::Body::from(b),
                // Streamed as it comes (a picture upload is not held here).
                (None, Some(raw)) => reqwest::Body::wrap_stream(raw.into_data_stream()),
                (None, None) => reqwest::Body::from(Bytes::new()),
            };
            forward(&cluster, &url, parts, body, &hops).await
        }
        Decision::Unsettled => unsettled(),
    }
}

async fn decide(
    state: &AppState,
    cluster: &Arc<Cluster>,
    addressed: &Addressed,
    forwarded_in: bool,
    sources: impl FnOnce() -> Vec<crate::model::Source>,
) -> Decision {
    let me = cluster.node_id().to_string();
    match addressed {
        Addressed::Node => Decision::Here(None, false),
        Addressed::New(task) => {
            if forwarded_in || cluster.member.standing() != Standing::Active {
                return Decision::Here(None, false);
            }
            let demand = typical_with(task, sources(), &state.config.get().ingest);
            match place_somewhere(&cluster.view(), &demand) {
                Some(node) if node != me => Decision::At(node),
                _ => Decision::Here(None, false),
            }
        }
        Addressed::Task { task, creates } => {
            let busy = cluster.busy(task);
            let lease = cluster.member.lease();
            let owner_of = |view: &crate::cluster::view::View| {
                view.owners.get(task).and_then(|o| {
                    if o.record.node == me {
                        (o.lease == lease).then(|| me.clone())
                    } else {
                        view.owner(task).map(str::to_string)
                    }
                })
            };
            if let Some(owner) = owner_of(&cluster.view()) {
                return if owner == me {
                    Decision::Here(Some(busy), false)
                } else if forwarded_in {
                    Decision::Unsettled
                } else {
                    Decision::At(owner)
                };
            }
            // Not owned as far as the last pass saw: look again, then place it.
            let view = match cluster.refresh().await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster not read; request not routed");
                    return Decision::Unsettled;
                }
            };
            if let Some(owner) = owner_of(&view) {
                return match (owner == me, forwarded_in) {
                    (true, _) => Decision::Here(Some(busy), false),
                    (false, false) => Decision::At(owner),
                    (false, true) => Decision::Unsettled,
                };
            }
            if view.owners.contains_key(task) {
                // Its owner's node is gone: the key ends with that node's lease, and the task is placed then.
                return Decision::Unsettled;
            }
            let ingest = state.config.get().ingest.clone();
            let recorded = match cluster.recorded_demand(task, &ingest).await {
                Ok(r) => r,
                Err(_) => return Decision::Unsettled,
            };
            if !creates && recorded.is_none() {
                return Decision::Here(None, false);
            }
            let demand = match &recorded {
                Some(demand) => demand.clone(),
                None => typical_with(task, sources(), &ingest),
            };
            if !forwarded_in && cluster.member.standing() == Standing::Active {
                if let Some(node) = place_somewhere(&view, &demand) {
                    if node != me {
                        return Decision::At(node);
                    }
                }
            }
            match cluster.claim(task, &record_of(&me, &demand, false)).await {
                Ok(None) => {
                    if recorded.is_some() {
                        // A recorded task whose owner died, asked for before its takeover: taken over now.
                        cluster.ledger.force(task, demand);
                        if let Err(e) = NodeTasks(state.clone()).adopt(task).await {
                            tracing::warn!(mix = task.mix(), relay = task.relay(), error = %e, "task not taken over");
                        }
                    }
                    Decision::Here(Some(busy), true)
                }
                // Lost the claim (a create racing on another node): the winner serves it.
                Ok(Some(owner)) => Decision::At(owner),
                Err(_) => Decision::Unsettled,
            }
        }
    }
}

/// A new task's demand as placement sees it before its spec is read: a typical cost, of which a share is the
/// pulling and decoding of each source it names (which a node already decoding them does not add again).
fn typical_with(
    task: &TaskRef,
    sources: Vec<crate::model::Source>,
    ingest: &crate::config::IngestConfig,
) -> crate::cluster::placement::Demand {
    let mut demand = ledger::typical(task);
    let share = demand.cost / (sources.len() as u64 + 2);
    demand.inputs = sources
        .iter()
        .map(|s| crate::cluster::placement::DemandInput {
            key: crate::cluster::placement::InputKey::new(crate::engine::resolve_input(s, ingest)),
            cost: share,
        })
        .collect();
    demand.inputs.dedup_by(|a, b| a.key == b.key);
    demand
}

/// Where a task goes. A new task's demand is a typical one (its spec is read where it goes); when no node has
/// room for that, it goes where the most room is, and that node admits or refuses its real cost.
fn place_somewhere(
    view: &crate::cluster::view::View,
    demand: &crate::cluster::placement::Demand,
) -> Option<String> {
    let nodes = view.node_views();
    place(&nodes, demand).or_else(|| {
        nodes
            .iter()
            .filter(|n| n.state == crate::cluster::placement::NodeState::Up)
            .max_by_key(|n| {
                (
                    n.capacity.saturating_sub(n.reserved),
                    std::cmp::Reverse(n.id.clone()),
                )
            })
            .map(|n| n.id.clone())
    })
}

/// Sends a request to node `url` as it came and streams its answer back.
async fn forward(
    cluster: &Cluster,
    url: &str,
    parts: axum::http::request::Parts,
    body: reqwest::Body,
    hops: &[String],
) -> Response {
    let target = format!(
        "{url}{}",
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut request = cluster
        .http
        .request(parts.method.clone(), &target)
        .body(body);
    for (name, value) in &parts.headers {
        if !hop_by_hop(name) {
            request = request.header(name, value);
        }
    }
    let mut through = hops.to_vec();
    through.push(cluster.node_id().to_string());
    request = request.header(FORWARDED_HEADER, through.join(","));
    let began = Instant::now();
    match request.send().await {
        Ok(answer) => {
            tracing::debug!(%target, ms = began.elapsed().as_millis() as u64, "request forwarded");
            let mut response = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if !hop_by_hop(name) {
                    response = response.header(name, value);
                }
            }
            response
                .body(Body::from_stream(answer.bytes_stream()))
                .unwrap_or_else(|_| unsettled())
        }
        Err(e) => {
            tracing::warn!(%target, error = %e, "request not forwarded to the task's node");
            unsettled()
        }
    }
}

/// The native lists every node answers for the whole cluster: the key of their array.
fn list_key(parts: &axum::http::request::Parts) -> Option<&'static str> {
    if parts.method != axum::http::Method::GET {
        return None;
    }
    match parts.uri.path() {
        "/v1/mixes" => Some("mixes"),
        "/v1/relays" => Some("relays"),
        _ => None,
    }
}

/// A list from every node: this node's answer (`local`) with every other up node's, merged by id. A node that
/// does not answer is left out (and logged); a refusal here (a bad token) is the answer as it is.
async fn gather(
    cluster: &Cluster,
    parts: &axum::http::request::Parts,
    local: Response,
    key: &'static str,
) -> Response {
    if !local.status().is_success() {
        return local;
    }
    let Ok(bytes) = axum::body::to_bytes(local.into_body(), usize::MAX).await else {
        return unsettled();
    };
    let Ok(mut merged) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return unsettled();
    };
    let view = cluster.view();
    let peers = view
        .nodes
        .iter()
        .filter(|(id, _)| id.as_str() != cluster.node_id())
        .map(|(id, n)| {
            let mut request = cluster
                .http
                .get(format!("{}{}", n.url, parts.uri.path()))
                .header(FORWARDED_HEADER, cluster.node_id())
                .timeout(std::time::Duration::from_secs(5));
            if let Some(auth) = parts.headers.get(axum::http::header::AUTHORIZATION) {
                request = request.header(axum::http::header::AUTHORIZATION, auth);
            }
            async move {
                match request.send().await {
                    Ok(r) if r.status().is_success() => r.json::<serde_json::Value>().await.ok(),
                    other => {
                        tracing::warn!(node = %id, status = ?other.map(|r| r.status()).ok(), "a node's list is left out");
                        None
                    }
                }
            }
        });
    let answers = futures::future::join_all(peers).await;
    if let Some(list) = merged.get_mut(key).and_then(|v| v.as_array_mut()) {
        for answer in answers.into_iter().flatten() {
            if let Some(more) = answer.get(key).and_then(|v| v.as_array()) {
                list.extend(more.iter().cloned());
            }
        }
        list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        // A task moving between nodes may be on both for a moment.
        list.dedup_by(|a, b| a["id"] == b["id"]);
    }
    Json(merged).into_response()
}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "content-length"
    )
}

fn stamp(mut response: Response, node: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(node) {
        response.headers_mut().insert(NODE_HEADER, v);
    }
    response
}

fn unsettled() -> Response {
    let mut r = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "the node that runs this task cannot be reached or is changing; retry in a moment",
    )
    .into_response();
    r.headers_mut()
        .insert("retry-after", HeaderValue::from_static("1"));
    r
}

/// `GET /v1/cluster`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ClusterView {
    /// This node.
    pub node: String,
    /// How this node stands: active, draining or fenced.
    pub state: Standing,
    pub nodes: Vec<NodeEntry>,
    pub tasks: Vec<TaskEntry>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NodeEntry {
    pub id: String,
    pub url: String,
    pub state: NodeState,
    /// Cost units it takes (1000 = one core of the reference machine).
    pub capacity: u64,
    /// Cost units its tasks reserved.
    pub reserved: u64,
    pub tasks: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TaskEntry {
    /// `mix` or `relay`.
    pub kind: &'static str,
    pub id: String,
    /// The node that owns it.
    pub node: String,
    pub cost: u64,
    /// Whether it runs on its node (false while it is taken or handed over).
    pub running: bool,
}

#[utoipa::path(get, path = "/v1/cluster", tag = "cluster",
    responses(
        (status = 200, description = "the nodes and who runs what", body = ClusterView),
        (status = 404, description = "this node is not in a cluster", body = super::error::ErrorBody),
    ))]
pub async fn show(State(state): State<AppState>) -> Result<Json<ClusterView>, ApiError> {
    let cluster = clustered(&state)?;
    let view = cluster.refresh().await.map_err(|e| {
        tracing::warn!(error = %e, "cluster not read");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the cluster cannot be read now; retry",
        )
    })?;
    let counts = view.counts();
    let reserved: std::collections::HashMap<String, u64> = view
        .node_views()
        .into_iter()
        .map(|n| (n.id, n.reserved))
        .collect();
    let nodes = view
        .nodes
        .iter()
        .map(|(id, n)| NodeEntry {
            id: id.clone(),
            url: n.url.clone(),
            state: n.state,
            capacity: n.capacity,
            reserved: reserved.get(id).copied().unwrap_or(0),
            tasks: counts.get(id.as_str()).copied().unwrap_or(0),
        })
        .collect();
    let mut tasks: Vec<TaskEntry> = view
        .owners
        .iter()
        .map(|(t, o)| TaskEntry {
            kind: crate::cluster::keys::record_kind(t),
            id: t.id().to_string(),
            node: o.record.node.clone(),
            cost: o.record.cost,
            running: o.record.running,
        })
        .collect();
    tasks.sort_by(|a, b| (a.kind, &a.id).cmp(&(b.kind, &b.id)));
    Ok(Json(ClusterView {
        node: cluster.node_id().to_string(),
        state: cluster.member.standing(),
        nodes,
        tasks,
    }))
}

/// `POST /v1/cluster/drain`'s answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Draining {
    pub node: String,
    pub state: Standing,
    /// Tasks still here.
    pub remaining: usize,
}

#[utoipa::path(post, path = "/v1/cluster/drain", tag = "cluster",
    responses(
        (status = 202, description = "draining: tasks move one at a time; the node ends once it has none", body = Draining),
        (status = 404, description = "this node is not in a cluster", body = super::error::ErrorBody),
    ))]
pub async fn drain(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<Draining>), ApiError> {
    let cluster = clustered(&state)?;
    let tasks: Arc<dyn Tasks> = Arc::new(NodeTasks(state.clone()));
    let remaining = tasks.local().len();
    if !cluster.member.is_draining() {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + std::time::Duration::from_secs(24 * 3600);
            crate::cluster::drain::drain(&cluster, &tasks, deadline).await;
            cluster.drained.send_replace(true);
        });
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(Draining {
            node: cluster.node_id().to_string(),
            state: Standing::Draining,
            remaining,
        }),
    ))
}

fn clustered(state: &AppState) -> Result<&Arc<Cluster>, ApiError> {
    state.cluster.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "this node is not in a cluster ([cluster] is not configured)",
        )
    })
}
