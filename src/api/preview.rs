//! What an operator looks at: `GET …/snapshot.jpg` (one frame as JPEG) and `GET …/live.flv` (the encoded output
//! as HTTP-FLV) of mixes, their inputs and relays. The engine and the relays hand over a pad, a keyframe or the
//! viewers of a stream ([`crate::preview`]); the frame is awaited and converted here, with no lock held.

use std::time::Duration;

use axum::{
    body::Body,
    extract::{RawQuery, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use futures::StreamExt;

use super::{
    error::{ErrorBody, RateLimited},
    path::Path,
    ApiError, AppState,
};
use crate::{
    engine::Look,
    preview::{self, viewers::MAX_VIEWERS, SnapshotError, Viewers},
    relay::Endpoint,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/mixes/{id}/snapshot.jpg", get(mix_snapshot))
        .route(
            "/v1/mixes/{id}/inputs/{input}/snapshot.jpg",
            get(mix_input_snapshot),
        )
        .route("/v1/mixes/{id}/live.flv", get(mix_live))
        .route(
            "/v1/relays/{id}/inputs/{input}/snapshot.jpg",
            get(relay_input_snapshot),
        )
        .route("/v1/relays/{id}/live.flv", get(relay_live))
}

/// Width of a snapshot when `?width=` is not given.
const DEFAULT_WIDTH: u32 = 640;
/// How long a snapshot waits for a frame: a running mix composites at its canvas rate whatever its inputs do;
/// an input that delivers nothing for this long has no picture to show.
/// How long decoding a relay input's keyframe may take.
const DECODE_WAIT: Duration = Duration::from_secs(5);

/// The snapshot's query: `width` (pixels; the height keeps the picture's shape), `access_token` (read by the
/// access check).
fn width_of(query: Option<String>) -> Result<u32, ApiError> {
    let mut width = DEFAULT_WIDTH;
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "width" => {
                width = v
                    .parse::<u32>()
                    .ok()
                    .filter(|w| {
                        (preview::snapshot::MIN_WIDTH..=preview::snapshot::MAX_WIDTH).contains(w)
                    })
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            "invalid_body",
                            format!(
                                "width must be a whole number of pixels from {} to {}",
                                preview::snapshot::MIN_WIDTH,
                                preview::snapshot::MAX_WIDTH
                            ),
                        )
                    })?
            }
            "access_token" => {}
            other => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    format!("unknown query parameter {other:?}: snapshots take width"),
                ))
            }
        }
    }
    Ok(width)
}

/// The snapshot's answer, or why there is none (the detail of a failed conversion is logged, not returned).
async fn jpeg(frame: Result<gst::Sample, SnapshotError>, width: u32, what: &str) -> Response {
    let result = match frame {
        Ok(sample) => preview::to_jpeg(sample, width).await,
        Err(e) => Err(e),
    };
    jpeg_answer(result, what)
}

fn jpeg_answer(result: Result<Vec<u8>, SnapshotError>, what: &str) -> Response {
    match result {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            bytes,
        )
            .into_response(),
        Err(SnapshotError::NoFrame(wait)) => retry_soon(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_frame",
            format!(
                "{what} produced no picture in {} s; retry later",
                wait.as_secs()
            ),
        )),
        Err(SnapshotError::Busy) => retry_soon(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            format!(
                "the node is making {} snapshots already; retry later",
                preview::snapshot::MAX_AT_ONCE
            ),
        )),
        Err(SnapshotError::Convert(detail)) => {
            crate::error::Error::internal(format!("snapshot of {what}: {detail}"));
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error; see the server log",
            )
            .into_response()
        }
    }
}

/// `e` with `Retry-After: 1`: the snapshot may well be there a second later.
fn retry_soon(e: ApiError) -> Response {
    let mut r = e.into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    r
}

/// A new viewer of `viewers` as a chunked response of FLV bytes that ends when the node shuts down (a graceful
/// shutdown waits for open responses); refused when the stream has its most viewers.
fn flv(s: &AppState, viewers: &Viewers) -> Result<Response, ApiError> {
    flv_of(s, viewers.subscribe())
}

/// [`flv`] of a viewer already taken (`None`: the stream had its most viewers).
fn flv_of(s: &AppState, stream: Option<preview::ViewerStream>) -> Result<Response, ApiError> {
    let stream = stream.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "limit_exceeded",
            format!(
                "this stream has {MAX_VIEWERS} preview viewers already; close one or retry later"
            ),
        )
    })?;
    let mut closing = s.closing.subscribe();
    let closed = async move {
        let _ = closing.wait_for(|c| *c).await;
    };
    Ok((
        [
            (header::CONTENT_TYPE, "video/x-flv"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(stream.take_until(closed)),
    )
        .into_response())
}

/// The composited picture of a mix, as JPEG
///
/// The newest frame the compositor produced (before encoding), at most one frame interval old. Costs nothing
/// while nobody asks.
#[utoipa::path(
    get,
    path = "/v1/mixes/{id}/snapshot.jpg",
    operation_id = "mix_snapshot",
    tag = "mixes",
    params(
        ("id" = String, Path, description = "the mix"),
        ("width" = Option<u32>, Query, description = "width in pixels (16–3840, never above the canvas; default 640); the height keeps the shape"),
    ),
    responses(
        (status = 200, description = "the picture", content_type = "image/jpeg", body = Vec<u8>),
        (status = 400, description = "a bad width or query parameter (invalid_body), or a bad id (invalid_id)", body = ErrorBody),
        (status = 404, description = "no such mix", body = ErrorBody),
        (status = 409, description = "the mix is not running or has no picture (wrong_state)", body = ErrorBody),
        (status = 503, description = "no frame came in time (no_frame), or too many snapshots are being made (busy); Retry-After says when to retry", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
pub(super) async fn mix_snapshot(
    State(s): State<AppState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let width = width_of(query)?;
    let result = s.engine.snapshot(&id, Look::Picture, width).await?;
    Ok(jpeg_answer(result, &format!("mix {id:?}")))
}

/// One input of a mix, as JPEG
///
/// The newest decoded frame of the input as the mix receives it (before crop and scale).
#[utoipa::path(
    get,
    path = "/v1/mixes/{id}/inputs/{input}/snapshot.jpg",
    operation_id = "mix_input_snapshot",
    tag = "mixes",
    params(
        ("id" = String, Path, description = "the mix"),
        ("input" = String, Path, description = "the input's id in the mix"),
        ("width" = Option<u32>, Query, description = "width in pixels (16–3840, never above the picture; default 640)"),
    ),
    responses(
        (status = 200, description = "the picture", content_type = "image/jpeg", body = Vec<u8>),
        (status = 400, description = "a bad width or query parameter (invalid_body), or a bad id (invalid_id)", body = ErrorBody),
        (status = 404, description = "no such mix or input", body = ErrorBody),
        (status = 409, description = "the mix is not running, or the input has no picture in it (wrong_state)", body = ErrorBody),
        (status = 503, description = "the input delivered no frame in time (no_frame), or too many snapshots are being made (busy)", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
pub(super) async fn mix_input_snapshot(
    State(s): State<AppState>,
    Path((id, input)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let width = width_of(query)?;
    let result = s.engine.snapshot(&id, Look::Input(&input), width).await?;
    Ok(jpeg_answer(
        result,
        &format!("input {input:?} of mix {id:?}"),
    ))
}

/// The live preview of a mix, as HTTP-FLV
///
/// The mix's encoded output (its first encoding with video), not encoded again: the stream headers, then the
/// stream from the next keyframe on, for as long as the client reads. A client that falls about three seconds
/// behind is dropped (its response ends); the stream also ends when the mix stops or restarts.
#[utoipa::path(
    get,
    path = "/v1/mixes/{id}/live.flv",
    operation_id = "mix_live",
    tag = "mixes",
    params(("id" = String, Path, description = "the mix")),
    responses(
        (status = 200, description = "FLV, chunked, until the client leaves", content_type = "video/x-flv", body = Vec<u8>),
        (status = 404, description = "no such mix", body = ErrorBody),
        (status = 409, description = "the mix is not running (wrong_state), or its stream has 32 viewers (limit_exceeded)", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
pub(super) async fn mix_live(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let stream = s.engine.watch_live(&id).await?;
    flv_of(&s, stream)
}

fn endpoint(id: &str, input: &str) -> Result<Endpoint, ApiError> {
    match input {
        "main" => Ok(Endpoint::Main),
        "backup" => Ok(Endpoint::Backup),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("relay {id:?} has no input {input:?}: its inputs are main and backup"),
        )),
    }
}

/// One input of a relay, as JPEG
///
/// The input's newest keyframe, decoded for this request (a relay never decodes otherwise): up to one keyframe
/// interval old.
#[utoipa::path(
    get,
    path = "/v1/relays/{id}/inputs/{input}/snapshot.jpg",
    operation_id = "relay_input_snapshot",
    tag = "relays",
    params(
        ("id" = String, Path, description = "the relay project"),
        ("input" = String, Path, description = "main or backup"),
        ("width" = Option<u32>, Query, description = "width in pixels (16–3840, never above the picture; default 640)"),
    ),
    responses(
        (status = 200, description = "the picture", content_type = "image/jpeg", body = Vec<u8>),
        (status = 400, description = "a bad width or query parameter (invalid_body), or a bad id (invalid_id)", body = ErrorBody),
        (status = 404, description = "no such project or input", body = ErrorBody),
        (status = 409, description = "the project is not running, or the input sent no keyframe yet (wrong_state)", body = ErrorBody),
        (status = 503, description = "the keyframe could not be decoded in time (no_frame), or too many snapshots are being made (busy)", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
pub(super) async fn relay_input_snapshot(
    State(s): State<AppState>,
    Path((id, input)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let width = width_of(query)?;
    let e = endpoint(&id, &input)?;
    let keyframe = s.relays.input_keyframe(&id, e)?;
    let what = format!("the {input} input of relay {id:?}");
    Ok(jpeg(
        preview::decode_flv_keyframe(keyframe, DECODE_WAIT).await,
        width,
        &what,
    )
    .await)
}

/// The live preview of a relay, as HTTP-FLV
///
/// What the relay forwards to its outputs (the active input, timestamps continuous across switches): the
/// stream headers, then the stream from the next keyframe on.
#[utoipa::path(
    get,
    path = "/v1/relays/{id}/live.flv",
    operation_id = "relay_live",
    tag = "relays",
    params(("id" = String, Path, description = "the relay project")),
    responses(
        (status = 200, description = "FLV, chunked, until the client leaves", content_type = "video/x-flv", body = Vec<u8>),
        (status = 404, description = "no such project", body = ErrorBody),
        (status = 409, description = "the project is not running (wrong_state), or its stream has 32 viewers (limit_exceeded)", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
pub(super) async fn relay_live(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let viewers = s.relays.live_viewers(&id)?;
    flv(&s, &viewers)
}
