//! `/v1/relays`: relay projects (one source to many RTMP targets, main/backup failover), in the core's own terms.

use axum::{
    extract::State,
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
    Router,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    error::{ErrorBody, RateLimited},
    json::Json,
    path::Path,
    ApiError, AppState,
};
use crate::relay::{Endpoint, RelaySpec, RelayView};

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

/// Every relay project of this node.
#[derive(Serialize, ToSchema)]
pub struct RelayList {
    pub relays: Vec<RelayView>,
}

/// List relay projects
#[utoipa::path(
    get,
    path = "/v1/relays",
    operation_id = "list_relays",
    tag = "relays",
    responses(
        (status = 200, description = "all relay projects", body = RelayList),
        (status = 429, response = RateLimited),
    )
)]
async fn list(State(s): State<AppState>) -> impl IntoResponse {
    axum::Json(RelayList {
        relays: s.relays.list(),
    })
}

/// A relay project with its status
#[utoipa::path(
    get,
    path = "/v1/relays/{id}",
    operation_id = "get_relay",
    tag = "relays",
    params(RelayId),
    responses(
        (status = 200, description = "the project", body = RelayView),
        (status = 400, description = "the id is not valid UTF-8 once percent-decoded (invalid_id)", body = ErrorBody),
        (status = 404, description = "no such project", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    view(&s, &id)
}

/// Create (idle) or change a relay project; a running one applies the change live
#[utoipa::path(
    put,
    path = "/v1/relays/{id}",
    operation_id = "put_relay",
    tag = "relays",
    params(RelayId),
    request_body = RelaySpec,
    responses(
        (status = 200, description = "changed", body = RelayView),
        (status = 201, description = "created, idle", body = RelayView),
        (status = 400, description = "malformed JSON, an unknown field or a wrong type (malformed_json, invalid_body), or a bad id (invalid_id)", body = ErrorBody),
        (status = 409, description = "an output URL is pushed by another running project or mix (output_in_use)", body = ErrorBody),
        (status = 413, description = "body larger than server.max_body_bytes (body_too_large)", body = ErrorBody),
        (status = 415, description = "not sent as application/json (unsupported_media_type)", body = ErrorBody),
        (status = 422, description = "the spec breaks rules, each listed in details (invalid_spec)", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
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

/// Stop and remove a relay project
#[utoipa::path(
    delete,
    path = "/v1/relays/{id}",
    operation_id = "delete_relay",
    tag = "relays",
    params(RelayId),
    responses(
        (status = 204, description = "removed"),
        (status = 400, description = "the id is not valid UTF-8 once percent-decoded (invalid_id)", body = ErrorBody),
        (status = 404, description = "no such project", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
async fn delete(State(s): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.relays.delete(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start pulling and pushing
#[utoipa::path(
    post,
    path = "/v1/relays/{id}/start",
    operation_id = "start_relay",
    tag = "relays",
    params(RelayId),
    responses(
        (status = 200, description = "the project", body = RelayView),
        (status = 400, description = "the id is not valid UTF-8 once percent-decoded (invalid_id)", body = ErrorBody),
        (status = 404, description = "no such project", body = ErrorBody),
        (status = 409, description = "an output URL is pushed by another running project or mix (output_in_use)", body = ErrorBody),
        (status = 422, description = "e.g. stop_at in the past (invalid_spec)", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
async fn start(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.relays.start(&id).await?;
    view(&s, &id)
}

/// Stop; the project stays, idle
#[utoipa::path(
    post,
    path = "/v1/relays/{id}/stop",
    operation_id = "stop_relay",
    tag = "relays",
    params(RelayId),
    responses(
        (status = 200, description = "the project", body = RelayView),
        (status = 400, description = "the id is not valid UTF-8 once percent-decoded (invalid_id)", body = ErrorBody),
        (status = 404, description = "no such project", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
async fn stop(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.relays.stop(&id).await?;
    view(&s, &id)
}

/// `POST /v1/relays/{id}/switch` with `{"input": "main" | "backup"}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchBody {
    /// The input to make active.
    input: Endpoint,
}

/// Make main or backup the active input now
#[utoipa::path(
    post,
    path = "/v1/relays/{id}/switch",
    operation_id = "switch_relay",
    tag = "relays",
    params(RelayId),
    request_body = SwitchBody,
    responses(
        (status = 200, description = "the project", body = RelayView),
        (status = 400, description = "malformed JSON, an unknown field or a wrong type (malformed_json, invalid_body), or a bad id (invalid_id)", body = ErrorBody),
        (status = 404, description = "no such project", body = ErrorBody),
        (status = 409, description = "not running, or that input is not live", body = ErrorBody),
        (status = 413, description = "body larger than server.max_body_bytes (body_too_large)", body = ErrorBody),
        (status = 415, description = "not sent as application/json (unsupported_media_type)", body = ErrorBody),
        (status = 422, description = "no backup input (invalid_spec)", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
async fn switch(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<SwitchBody>,
) -> Result<impl IntoResponse, ApiError> {
    s.relays.switch(&id, body.input)?;
    view(&s, &id)
}

/// The `{id}` of `/v1/relays/{id}`.
#[derive(utoipa::IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
#[allow(dead_code)]
struct RelayId(
    /// The project's id: 1 to 128 characters of A-Z a-z 0-9 - _ . ~
    #[param(pattern = "^[A-Za-z0-9._~-]{1,128}$")]
    String,
);
