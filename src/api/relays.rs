//! `/v1/relays`: relay projects (one source to many RTMP targets, main/backup failover), in the core's own terms.

use axum::{
    extract::State,
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
    Router,
};
use serde::Deserialize;
use serde_json::json;

use super::{json::Json, path::Path, ApiError, AppState};
use crate::relay::{Endpoint, RelaySpec};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/relays", get(list))
        .route("/v1/relays/{id}", get(get_one).put(put).delete(delete))
        .route("/v1/relays/{id}/start", post(start))
        .route("/v1/relays/{id}/stop", post(stop))
        .route("/v1/relays/{id}/switch", post(switch))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("relay {id:?} does not exist"),
    )
}

fn view(s: &AppState, id: &str) -> Result<axum::Json<crate::relay::RelayView>, ApiError> {
    s.relays
        .get(id)
        .map(axum::Json)
        .ok_or_else(|| not_found(id))
}

async fn list(State(s): State<AppState>) -> impl IntoResponse {
    axum::Json(json!({ "relays": s.relays.list() }))
}

async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    view(&s, &id)
}

async fn put(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(spec): Json<RelaySpec>,
) -> Result<impl IntoResponse, ApiError> {
    super::native::check_id(&id, "relay")?;
    let created = s.relays.put(&id, spec).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, view(&s, &id)?))
}

async fn delete(State(s): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.relays.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn start(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.relays.start(&id).await?;
    view(&s, &id)
}

async fn stop(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.relays.stop(&id).await?;
    view(&s, &id)
}

/// `POST /v1/relays/{id}/switch` with `{"input": "main" | "backup"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwitchBody {
    input: Endpoint,
}

async fn switch(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<SwitchBody>,
) -> Result<impl IntoResponse, ApiError> {
    s.relays.switch(&id, body.input)?;
    view(&s, &id)
}
