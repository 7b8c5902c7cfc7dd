//! The HTTP listener. One router serves every dialect; each dialect is its own module that translates its wire
//! types into the core model and core errors into its own codes.

mod error;
mod idle;
mod json;
mod lenient;
pub mod native;
mod pictures;
mod relays;
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

use crate::{config::Config, engine::Engine};

pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub config: Arc<Config>,
    /// The ZEGO dialect's task registry and nonce cache.
    pub zego: Arc<zego::ZegoState>,
    /// Pictures requests name by id.
    pub pictures: Arc<crate::pictures::Pictures>,
    /// The Tencent dialects' sessions.
    pub tencent: Arc<tencent::TencentState>,
    /// Relay projects (one source to many targets).
    pub relays: crate::relay::Relays,
}

impl AppState {
    pub fn new(engine: Engine, config: Config) -> Self {
        let relays = crate::relay::Relays::with_store(config.clone(), engine.store());
        let pictures =
            crate::pictures::Pictures::new(&config.pictures, config.engine.max_image_bytes);
        Self {
            engine,
            config: Arc::new(config),
            zego: Arc::default(),
            pictures: Arc::new(pictures),
            tencent: Arc::default(),
            relays,
        }
    }
}

impl AppState {
    /// Gives each dialect back what it recorded of the tasks the engine and the relays resumed (owners,
    /// sequences, sessions, project metadata). Called once at start, after those were restored.
    pub fn restore_dialects(&self) {
        self.zego.restore(self);
        self.tencent.sessions.restore(self);
        self.tencent.cme.restore(self);
    }
}

/// The whole HTTP application; tests drive it with `oneshot` or over a socket.
pub fn app(state: AppState) -> Router {
    let max_body = state.config.server.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
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
        .merge(native::routes())
        .merge(relays::routes())
        .merge(pictures::routes(
            usize::try_from(state.config.engine.max_image_bytes).unwrap_or(usize::MAX),
        ))
        .fallback(not_found)
        // Extractors refuse larger bodies, so each dialect answers in its own shape.
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
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

/// Compares secrets in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn healthz() -> &'static str {
    "ok"
}

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}

async fn not_found() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint",
    )
}
