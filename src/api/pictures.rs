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
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    error::{ErrorBody, RateLimited},
    path::Path,
    ApiError, AppState,
};
use crate::pictures::PictureInfo;

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

/// Every picture, sorted by id.
#[derive(Serialize, ToSchema)]
pub struct PictureList {
    pub pictures: Vec<PictureInfo>,
}

/// List pictures by id: configured (`[pictures]`) and uploaded, sorted by id
#[utoipa::path(
    get,
    path = "/v1/pictures",
    operation_id = "list_pictures",
    tag = "pictures",
    responses(
        (status = 200, description = "all pictures", body = PictureList),
        (status = 429, response = RateLimited),
    )
)]
async fn list(State(s): State<AppState>) -> impl IntoResponse {
    axum::Json(PictureList {
        pictures: s.pictures.list(),
    })
}

/// One picture
#[utoipa::path(
    get,
    path = "/v1/pictures/{id}",
    operation_id = "get_picture",
    tag = "pictures",
    params(PictureId),
    responses(
        (status = 200, description = "the picture", body = PictureInfo),
        (status = 400, description = "the id is not valid UTF-8 once percent-decoded (invalid_id)", body = ErrorBody),
        (status = 404, description = "no such picture", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
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

/// Upload (or replace) a picture
///
/// The body is the PNG or JPEG file itself, recognised by its signature (the Content-Type is not checked), at
/// most engine.max_image_bytes. Uploads last for the life of the process; running mixes keep the picture they
/// rendered.
#[utoipa::path(
    put,
    path = "/v1/pictures/{id}",
    operation_id = "put_picture",
    tag = "pictures",
    params(PictureId),
    request_body(
        description = "the PNG or JPEG file",
        content(
            (inline(PictureFile) = "image/png"),
            (inline(PictureFile) = "image/jpeg"),
            (inline(PictureFile) = "application/octet-stream"),
        ),
    ),
    responses(
        (status = 200, description = "replaced", body = PictureInfo),
        (status = 201, description = "created", body = PictureInfo),
        (status = 400, description = "a bad id (invalid_id), or the body could not be read (invalid_body)", body = ErrorBody),
        (status = 409, description = "the picture is configured in [pictures] and read-only (read_only)", body = ErrorBody),
        (status = 413, description = "larger than engine.max_image_bytes (body_too_large)", body = ErrorBody),
        (status = 422, description = "not a PNG or JPEG, or it cannot be decoded (invalid_spec)", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
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

/// Remove an uploaded picture; running mixes keep the picture they rendered
#[utoipa::path(
    delete,
    path = "/v1/pictures/{id}",
    operation_id = "delete_picture",
    tag = "pictures",
    params(PictureId),
    responses(
        (status = 204, description = "removed"),
        (status = 400, description = "the id is not valid UTF-8 once percent-decoded (invalid_id)", body = ErrorBody),
        (status = 404, description = "no such picture", body = ErrorBody),
        (status = 409, description = "the picture is configured in [pictures] and read-only (read_only)", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
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

/// A PNG or JPEG file, as the body of `PUT /v1/pictures/{id}`.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
struct PictureFile(Vec<u8>);

/// The `{id}` of `/v1/pictures/{id}`.
#[derive(utoipa::IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
#[allow(dead_code)]
struct PictureId(
    /// The id requests name (Tencent `picture_id` / `WatermarkId`: its decimal number).
    #[param(pattern = "^[A-Za-z0-9._~-]{1,128}$")]
    String,
);
