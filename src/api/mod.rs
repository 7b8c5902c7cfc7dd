//! The HTTP listener. One router serves every dialect; each dialect is its own module that translates its wire
//! types into the core model and core errors into its own codes.

mod error;
mod json;
pub mod native;

use std::sync::Arc;

use axum::{routing::get, Router};
use tower_http::limit::RequestBodyLimitLayer;

use crate::{config::Config, engine::Engine};

pub use error::ApiError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub config: Arc<Config>,
}

/// The whole HTTP application; tests drive it with `oneshot` or over a socket.
pub fn app(state: AppState) -> Router {
    let max_body = state.config.server.max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .merge(native::routes())
        .fallback(not_found)
        .layer(RequestBodyLimitLayer::new(max_body))
        .with_state(state)
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
