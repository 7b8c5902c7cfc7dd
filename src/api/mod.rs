//! The HTTP listener. One router serves every dialect; each dialect is its own module that translates its wire
//! types into the core model and core errors into its own codes.

mod error;
mod json;
pub mod native;
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
}

impl AppState {
    pub fn new(engine: Engine, config: Config) -> Self {
        Self {
            engine,
            config: Arc::new(config),
            zego: Arc::default(),
        }
    }
}

/// The whole HTTP application; tests drive it with `oneshot` or over a socket.
pub fn app(state: AppState) -> Router {
    let max_body = state.config.server.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .route("/", get(root).post(root))
        .merge(native::routes())
        .fallback(not_found)
        // Extractors refuse larger bodies, so each dialect answers in its own shape.
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// `/` is shared by the vendor dialects: ZEGO names an `Action` in the query.
async fn root(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
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
