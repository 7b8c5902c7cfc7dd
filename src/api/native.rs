//! Tessera's own JSON API, the canonical one: the core model on the wire.

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Router};
use serde::Deserialize;
use serde_json::json;

use super::{json::Json, path::Path, ApiError, AppState};
use crate::{engine::PutOutcome, model::MixSpec};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/mixes", get(list).post(create))
        .route("/v1/mixes/{id}", get(get_one).put(put).delete(delete))
}

async fn list(State(s): State<AppState>) -> impl IntoResponse {
    axum::Json(json!({ "mixes": s.engine.list() }))
}

async fn get_one(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    s.engine.get_mix(&id).map(axum::Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("mix {id:?} does not exist"),
        )
    })
}

async fn put(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(spec): Json<MixSpec>,
) -> Result<impl IntoResponse, ApiError> {
    check_id(&id, "mix")?;
    check_sources(&s, &spec).await?;
    let outcome = s.engine.put_mix(&id, spec).await?;
    respond(&s, &id, outcome)
}

/// `POST /v1/mixes` with the spec plus an `id`.
#[derive(Deserialize)]
struct CreateBody {
    id: String,
    #[serde(flatten)]
    spec: MixSpec,
}

async fn create(
    State(s): State<AppState>,
    Json(body): Json<CreateBody>,
) -> Result<impl IntoResponse, ApiError> {
    check_id(&body.id, "mix")?;
    if s.engine.get_mix(&body.id).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_exists",
            format!(
                "mix {:?} already exists; PUT /v1/mixes/{} replaces it",
                body.id, body.id
            ),
        ));
    }
    check_sources(&s, &body.spec).await?;
    let outcome = s.engine.put_mix(&body.id, body.spec).await?;
    respond(&s, &body.id, outcome)
}

/// `ingest.forbid_private_sources`: the caller's URLs must reach public addresses only.
async fn check_sources(s: &AppState, spec: &MixSpec) -> Result<(), ApiError> {
    if !s.config.ingest.forbid_private_sources {
        return Ok(());
    }
    crate::netpolicy::check_urls(crate::netpolicy::caller_urls(spec))
        .await
        .map_err(|v| crate::error::Error::invalid(v).into())
}

fn respond(s: &AppState, id: &str, outcome: PutOutcome) -> Result<impl IntoResponse, ApiError> {
    let status = match outcome {
        PutOutcome::Created => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    let applied = match outcome {
        PutOutcome::Created => "created",
        PutOutcome::UpdatedLive => "updated_live",
        PutOutcome::Restarted => "restarted",
    };
    let view = s
        .engine
        .get_mix(id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "mix vanished"))?;
    let mut body = serde_json::to_value(view).unwrap_or_default();
    body["applied"] = json!(applied);
    Ok((status, axum::Json(body)))
}

async fn delete(State(s): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.engine.delete_mix(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ids of mixes and pictures: safe in URLs, file names and logs (see [`crate::model::valid_id`]).
pub(super) fn check_id(id: &str, what: &str) -> Result<(), ApiError> {
    if crate::model::valid_id(id) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_id",
            format!("{what} ids are 1 to 128 characters of A-Z a-z 0-9 - _ . ~, and not . or .."),
        ))
    }
}
