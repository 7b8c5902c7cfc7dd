//! The HTTP listener. One router serves every dialect; each dialect is its own module that translates its wire
//! types into the core model and core errors into its own codes.

mod auth;
pub mod cluster;
mod console;
mod error;
mod events;
mod json;
mod lenient;
pub mod metrics;
pub mod native;
pub mod openapi;
mod path;
mod pictures;
mod preview;
pub mod ratelimit;
pub mod registry;
mod relays;
pub mod reload;
pub mod route;
pub mod tencent;
pub mod zego;

use std::sync::Arc;

use std::collections::HashMap;

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, RawQuery, State},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

use crate::{config::Config, engine::Engine, events::EventBus, live::Live, node::NodeParts};

pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    /// The node's configuration, shared with the engine and the relays; a reload replaces it. Take it once per
    /// request (`config.get()`), so one request sees one configuration.
    pub config: Live<Config>,
    /// The status-callback and webhook client (`[callbacks]`); a reload that changes `[callbacks]` rebuilds it.
    pub callbacks: Live<reqwest::Client>,
    /// The node's event stream.
    pub events: EventBus,
    /// The ZEGO dialect's tasks and nonces.
    pub zego: Arc<zego::ZegoState>,
    /// Pictures requests name by id.
    pub pictures: Arc<crate::pictures::Pictures>,
    /// The Tencent dialects' sessions.
    pub tencent: Arc<tencent::TencentState>,
    /// Relay projects (one source to many targets).
    pub relays: crate::relay::Relays,
    /// Request rates per credential or client, one limiter per dialect; a reload that changes a rate starts
    /// them afresh.
    pub rates: Live<ratelimit::RateLimits>,
    /// Webhook deliveries: their counts and the current URLs.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// Who may use the native API.
    pub tokens: Live<auth::Tokens>,
    /// One reload at a time (SIGHUP and `POST /v1/admin/reload` may race).
    pub reloading: Arc<tokio::sync::Mutex<()>>,
    /// The file the configuration came from, which a reload re-reads; `None`: the embedded defaults (or a
    /// configuration built in code), which cannot be reloaded.
    pub config_file: Option<std::path::PathBuf>,
    /// Set when the node shuts down: long-lived responses (the event stream) end, so the shutdown does not wait
    /// for their clients.
    pub closing: Arc<tokio::sync::watch::Sender<bool>>,
    /// Requests by dialect, action and outcome, and their durations (`/metrics`).
    pub api_counts: Arc<metrics::ApiCounts>,
    /// Each mix's share of the CPU its shared inputs used (`/metrics`).
    pub cpu_shares: metrics::Shares,
    /// Changes the process's log level while it runs. Detached (it changes nothing but itself) unless the
    /// process set up its log ([`crate::logging::init`]) and handed it over with [`AppState::with_log`].
    pub log: crate::logging::LogHandle,
    /// This node's place in a cluster (`[cluster]`); `None`: a single node.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// How a dialect that answers refusals with HTTP 200 (ZEGO, Tencent) says a request was refused, for the request
/// metrics; others are judged by their status.
#[derive(Debug, Clone, Copy)]
pub struct Outcome(pub &'static str);

impl Outcome {
    pub const REFUSED: Outcome = Outcome("refused");
}

impl AppState {
    /// Everything one node serves, wired around `parts`. `callbacks` is the status-callback client, built (and
    /// its CA file checked) once at start. Refused when the API tokens are not usable (see [`auth::Tokens`]).
    /// Must be called inside a Tokio runtime.
    pub fn new(
        config: Config,
        parts: NodeParts,
        callbacks: reqwest::Client,
    ) -> Result<Self, String> {
        let tokens = Live::new(auth::Tokens::from_config(&config.server)?);
        crate::media::cpu::start_sampler();
        let live = Live::new(config.clone());
        let engine = Engine::with_config(live.clone(), parts.clone());
        let webhooks = Arc::new(crate::webhooks::Webhooks::start(
            &config.webhooks,
            callbacks.clone(),
            &parts.events,
        ));
        let callbacks = Live::new(callbacks);
        let relays =
            crate::relay::Relays::with_config(live.clone(), parts.clone(), callbacks.clone());
        let pictures = crate::pictures::Pictures::new(
            &config.pictures,
            crate::image::ImageLimits::of(&config.engine),
        );
        Ok(Self {
            zego: Arc::new(zego::ZegoState::new(&parts, engine.clone())),
            tencent: Arc::new(tencent::TencentState::new(&config, &parts, engine.clone())),
            engine,
            events: parts.events,
            pictures: Arc::new(pictures),
            relays,
            rates: Live::new(ratelimit::RateLimits::new(&config)),
            webhooks,
            tokens,
            reloading: Arc::default(),
            config_file: None,
            callbacks,
            closing: Arc::new(tokio::sync::watch::channel(false).0),
            api_counts: Arc::default(),
            cpu_shares: Arc::default(),
            log: crate::logging::LogHandle::detached(&config.log.level),
            cluster: None,
            config: live,
        })
    }

    /// The same node, changing the process's log through `log` (what [`crate::logging::init`] returned).
    pub fn with_log(mut self, log: crate::logging::LogHandle) -> Self {
        self.log = log;
        self
    }

    /// A node of its own, recording in memory only (tests).
    pub fn in_memory(config: Config) -> Self {
        let callbacks =
            crate::relay::callback_client(&config.callbacks).expect("a valid [callbacks] section");
        Self::new(config, NodeParts::in_memory(), callbacks).expect("usable API tokens")
    }

    /// Takes back every recorded task (at process start): the engine's mixes (known at once, started in the
    /// background), the relay projects, then what each dialect recorded of them. Returns (mixes, relays).
    pub async fn restore(&self) -> (usize, usize) {
        let mixes = self.engine.restore().await;
        let relays = self.relays.restore().await;
        self.zego
            .restore(&self.engine, &self.config.get().zego)
            .await;
        self.tencent.restore(&self.engine, &self.relays).await;
        (mixes, relays)
    }
}

/// The whole HTTP application; tests drive it with `oneshot` or over a socket.
pub fn app(state: AppState) -> Router {
    let max_body = state.config.get().server.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/openapi.json", get(openapi))
        .merge(console::routes())
        .route("/", get(root).post(root))
        .route(
            "/common_access",
            axum::routing::post(tencent::legacy::handle),
        )
        // Publish notifications of the RTMP server, for push-URL auto-mix.
        .route(
            "/callbacks/nginx/on_publish",
            get(tencent::automix::nginx_publish).post(tencent::automix::nginx_publish),
        )
        .route(
            "/callbacks/nginx/on_publish_done",
            get(tencent::automix::nginx_publish_done).post(tencent::automix::nginx_publish_done),
        )
        .route(
            "/callbacks/srs/on_publish",
            axum::routing::post(tencent::automix::srs_publish),
        )
        .route(
            "/callbacks/srs/on_unpublish",
            axum::routing::post(tencent::automix::srs_unpublish),
        )
        .merge(
            native::routes()
                .merge(relays::routes())
                .merge(preview::routes())
                .merge(events::routes())
                .merge(metrics::routes())
                .merge(reload::routes())
                .merge(cluster::routes())
                .merge(pictures::routes(
                    usize::try_from(state.config.get().engine.max_image_bytes)
                        .unwrap_or(usize::MAX),
                ))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    auth::require,
                ))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    native_rate_limit,
                )),
        )
        .fallback(not_found)
        // After every route: a known path with another method gets the native error, not an empty 405.
        .method_not_allowed_fallback(method_not_allowed)
        // Extractors refuse larger bodies, so each dialect answers in its own shape.
        .layer(DefaultBodyLimit::max(max_body))
        // Requests about a task another node of the cluster owns go there (a single node: nothing to do).
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cluster::route,
        ))
        .layer(axum::middleware::from_fn(detached))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// Counts each request by dialect, action and outcome, and times it (`/metrics`). Actions are the API's own
/// names (a route, a vendor's action), never a caller's free text: unknown ones count as `other`.
async fn count_requests(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (dialect, action) = classify(&request);
    let began = std::time::Instant::now();
    let response = next.run(request).await;
    let outcome = match response.extensions().get::<Outcome>() {
        Some(o) => o.0,
        None if response.status().is_success() => "ok",
        None if response.status().is_server_error() => "error",
        None => "refused",
    };
    state
        .api_counts
        .record(dialect, action, outcome, began.elapsed());
    response
}

/// Which dialect a request speaks and what it asks for.
fn classify(req: &axum::extract::Request) -> (&'static str, String) {
    let known = |value: &str, names: &[&str]| {
        names
            .iter()
            .find(|n| **n == value)
            .map_or("other".to_string(), |n| n.to_string())
    };
    let path = req.uri().path();
    let query = |key: &str| {
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    match path {
        "/" => {
            if let Some(action) = req
                .headers()
                .get("x-tc-action")
                .and_then(|v| v.to_str().ok())
            {
                let names = [
                    "CreateCommonMixStream",
                    "CancelCommonMixStream",
                    "CreateProject",
                    "HandleStreamConnectProject",
                    "DescribeProjects",
                    "DeleteProject",
                ];
                return ("tencent_cloud", known(action, &names));
            }
            let names = ["StartMix", "StopMix", "GetMixTaskInfo"];
            ("zego", known(&query("Action").unwrap_or_default(), &names))
        }
        "/common_access" => (
            "tencent_cgi",
            known(&query("interface").unwrap_or_default(), &["Mix_StreamV2"]),
        ),
        "/healthz" | "/readyz" | "/openapi.json" => ("health", path.to_string()),
        p if p.starts_with("/callbacks/") => (
            "callbacks",
            known(
                p,
                &[
                    "/callbacks/nginx/on_publish",
                    "/callbacks/nginx/on_publish_done",
                    "/callbacks/srs/on_publish",
                    "/callbacks/srs/on_unpublish",
                ],
            ),
        ),
        "/v1/admin/reload" => (
            "native",
            format!("{} /v1/admin/reload", req.method().as_str()),
        ),
        p if p.starts_with("/v1/") || p == "/metrics" => {
            // /v1/{kind}/{id}/{verb}: ids are the caller's, so they are left out; so is any path that is not a
            // route (every label value must come from a short list).
            let shape: Vec<&str> = p
                .trim_start_matches('/')
                .split('/')
                .enumerate()
                .map(|(i, seg)| if i == 2 { "{id}" } else { seg })
                .collect();
            let shape = format!("/{}", shape.join("/"));
            let routes = [
                "/v1/mixes",
                "/v1/mixes/{id}",
                "/v1/relays",
                "/v1/relays/{id}",
                "/v1/relays/{id}/start",
                "/v1/relays/{id}/stop",
                "/v1/relays/{id}/switch",
                "/v1/pictures",
                "/v1/pictures/{id}",
                "/v1/events",
                "/metrics",
            ];
            let method = req.method().as_str();
            let methods = ["GET", "PUT", "POST", "DELETE"];
            if routes.contains(&shape.as_str()) && methods.contains(&method) {
                ("native", format!("{method} {shape}"))
            } else {
                ("native", "other".to_string())
            }
        }
        _ => ("other", "other".to_string()),
    }
}

/// Runs every request on a task of its own and waits for it there: a client that hangs up (or times out) drops
/// only this wait, never the handler, so a change it asked for runs to its end — applied and recorded, or
/// refused and rolled back — and what is acknowledged is what is stored and running, whether or not anyone
/// still listens.
async fn detached(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "request handler panicked");
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the server log",
            )
            .into_response()
        }
    }
}

/// `/` is shared by the vendor dialects: Tencent API 3.0 names an `X-TC-Action` header, ZEGO an `Action` in
/// the query.
async fn root(
    State(state): State<AppState>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    RawQuery(query): RawQuery,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    if headers.contains_key("x-tc-action") {
        return tencent::cloud::handle(&state, &method, &uri, &headers, body.ok()).await;
    }
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    if query.contains_key("Action") {
        let body = body.map_err(|_| zego::codes::PARAMETER);
        return zego::handle(&state, &query, body).await;
    }
    not_found().await.into_response()
}

/// The native API's per-client limit (`server.max_requests_per_s`), keyed by the peer address where the
/// listener records it (all callers share one bucket otherwise).
async fn native_rate_limit(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let key = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|p| p.0.ip().to_string())
        .unwrap_or_default();
    match state.rates.get().native.check(&key) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            let limit = state.config.get().server.max_requests_per_s;
            let retry_after = wait.as_secs().max(1).to_string();
            let mut response = ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("more than {limit} requests per second from this client; retry later"),
            )
            .into_response();
            if let Ok(v) = axum::http::HeaderValue::from_str(&retry_after) {
                response
                    .headers_mut()
                    .insert(axum::http::header::RETRY_AFTER, v);
            }
            response
        }
    }
}

/// Compares secrets in time independent of where they differ (only their length shows, and signatures and
/// digests have a fixed one).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // `black_box` keeps the optimiser from turning the fold into an early-exit comparison.
    a.len() == b.len()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

/// Liveness
///
/// The process answers (it may still be starting the tasks recorded before a restart: see `/readyz`).
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "health",
    responses((status = 200, description = "the process answers", body = String, content_type = "text/plain", example = "ok"))
)]
async fn healthz() -> &'static str {
    "ok"
}

/// What `/readyz` answers.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    /// Whether every task recorded before the start has been started or has failed to.
    pub ready: bool,
    /// How many mixes are in each state.
    pub mixes: MixCounts,
}

/// How many mixes are in each `MixState`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct MixCounts {
    pub starting: usize,
    pub running: usize,
    pub failed: usize,
}

/// Readiness
///
/// 200 once every task recorded before the start has been started or has failed to (each failed one is listed
/// with its reason on `GET /v1/mixes`); 503 until then. Load balancers send traffic on this one.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "health",
    responses(
        (status = 200, description = "ready", body = Readiness),
        (status = 503, description = "still starting the tasks recorded before the start", body = Readiness),
    )
)]
async fn readyz(State(state): State<AppState>) -> Response {
    let mixes = state.engine.list();
    let count =
        |s: crate::engine::status::MixState| mixes.iter().filter(|m| m.status.state == s).count();
    let body = Readiness {
        ready: state.engine.is_ready(),
        mixes: MixCounts {
            starting: count(crate::engine::status::MixState::Starting),
            running: count(crate::engine::status::MixState::Running),
            failed: count(crate::engine::status::MixState::Failed),
        },
    };
    let status = if state.engine.is_ready() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// This document
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "health",
    responses((status = 200, description = "the OpenAPI document of the native API", content_type = "application/json"))
)]
async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi::json(),
    )
}

async fn not_found() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint",
    )
}

async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on this path; the Allow header lists the methods that are"
        ),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn constant_time_eq_is_equality() {
        use super::constant_time_eq as eq;
        assert!(eq(b"", b""));
        assert!(eq(b"abc", b"abc"));
        assert!(!eq(b"abc", b"abd"));
        assert!(!eq(b"abc", b"bbc"));
        assert!(!eq(b"abc", b"ab"));
        assert!(!eq(b"", b"a"));
    }
}
