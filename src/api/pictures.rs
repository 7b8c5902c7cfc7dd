//! `/v1/pictures`: upload, list and remove pictures that requests name by id (Tencent `picture_id` /
//! `WatermarkId`). The body of a PUT is the PNG or JPEG itself.

use axum::{
    body::Bytes,
    extract::{rejection::BytesRejection, DefaultBodyLimit, State},
    http::StatusCode,
    response::IntoResponse,
    routing::get,
    Router,
};
use serde_json::json;

use super::{path::Path, ApiError, AppState};

pub fn routes(max_bytes: usize) -> Router<AppState> {
    Router::new().route("/v1/pictures", get(list)).route(
        "/v1/pictures/{id}",
        get(get_one)
            .put(put)
            .delete(delete)
            // Pictures are larger than API bodies: they get the image limit instead.
            .layer(DefaultBodyLimit::max(max_bytes)),
    )
}

async fn list(State(s): State<AppState>) -> impl IntoResponse {
    axum::Json(json!({ "pictures": s.pictures.list() }))
}

async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.pictures.get(&id).map(axum::Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("picture {id:?} does not exist"),
        )
    })
}

async fn put(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    super::native::check_id(&id, "picture")?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("pictures are at most {} bytes", s.pictures.max_bytes()),
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "the request body could not be read",
            )
        }
    })?;
    let existed = s.pictures.get(&id).is_some();
    let pictures = s.pictures.clone();
    let info = tokio::task::spawn_blocking(move || pictures.put(&id, &body))
        .await
        .map_err(crate::Error::internal)?
        .map_err(read_only)?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, axum::Json(info)))
}

async fn delete(State(s): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.pictures.remove(&id).map_err(read_only)?;
    Ok(StatusCode::NO_CONTENT)
}

/// A configured picture cannot be replaced or removed: say so in this API's own terms.
fn read_only(e: crate::Error) -> ApiError {
    if e.kind == crate::ErrorKind::Conflict {
        ApiError::new(StatusCode::CONFLICT, "read_only", e.message)
    } else {
        e.into()
    }
}
