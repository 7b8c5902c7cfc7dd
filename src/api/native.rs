//! Tessera's own JSON API, the canonical one: the core model on the wire.

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::get, Router};
use serde::{Deserialize, Serialize};
use utoipa::{
    openapi::{schema::Schema, ObjectBuilder, RefOr, Type},
    PartialSchema, ToSchema,
};

use super::{
    error::{ErrorBody, RateLimited},
    json::Json,
    path::Path,
    ApiError, AppState,
};
use crate::{
    engine::{MixView, PutOutcome},
    image::Escape,
    model::{is_file_path, MixSpec, Violation},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/mixes", get(list).post(create))
        .route("/v1/mixes/{id}", get(get_one).put(put).delete(delete))
}

/// Every mix of this node.
#[derive(Serialize, ToSchema)]
pub struct MixList {
    pub mixes: Vec<MixView>,
}

/// A mix as a PUT or POST leaves it.
#[derive(Serialize, ToSchema)]
pub struct MixAnswer {
    #[serde(flatten)]
    pub view: MixView,
    pub applied: Applied,
}

/// How a PUT or POST was applied.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// The mix did not exist.
    Created,
    /// Applied to the running output without restarting it.
    UpdatedLive,
    /// Applied by restarting the mix's pipeline (canvas rate or an output encoding changed, or the mix was not
    /// running).
    Restarted,
}

/// List mixes
#[utoipa::path(
    get,
    path = "/v1/mixes",
    operation_id = "list_mixes",
    tag = "mixes",
    responses(
        (status = 200, description = "all mixes", body = MixList),
        (status = 429, response = RateLimited),
    )
)]
async fn list(State(s): State<AppState>) -> impl IntoResponse {
    axum::Json(MixList {
        mixes: s.engine.list(),
    })
}

/// A mix with its live status
#[utoipa::path(
    get,
    path = "/v1/mixes/{id}",
    operation_id = "get_mix",
    tag = "mixes",
    params(MixId),
    responses(
        (status = 200, description = "the mix", body = MixView),
        (status = 400, description = "the id is not valid UTF-8 once percent-decoded (invalid_id)", body = ErrorBody),
        (status = 404, description = "no such mix", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
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

/// Create or replace a mix
///
/// Layout, crop, radius, volume, label, overlays, background, SEI, targets, canvas size and video bitrate apply
/// live; a new canvas fps or another encoding change restarts the output.
#[utoipa::path(
    put,
    path = "/v1/mixes/{id}",
    operation_id = "put_mix",
    tag = "mixes",
    params(MixId),
    request_body = MixSpec,
    responses(
        (status = 200, description = "updated (`applied`: `updated_live` or `restarted`)", body = MixAnswer),
        (status = 201, description = "created", body = MixAnswer),
        (status = 400, description = "malformed JSON, an unknown field or a wrong type (malformed_json, invalid_body), or a bad id (invalid_id)", body = ErrorBody),
        (status = 409, description = "node limit (limit_exceeded), or an output another mix or relay publishes (output_in_use)", body = ErrorBody),
        (status = 413, description = "body larger than server.max_body_bytes (body_too_large)", body = ErrorBody),
        (status = 415, description = "not sent as application/json (unsupported_media_type)", body = ErrorBody),
        (status = 422, description = "the spec breaks rules, each listed in details (invalid_spec), or an image is unavailable (resource_unavailable)", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
async fn put(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(spec): Json<MixSpec>,
) -> Result<impl IntoResponse, ApiError> {
    check_id(&id, "mix")?;
    check_images(&s, &spec).await?;
    check_sources(&s, &spec).await?;
    let outcome = s.engine.put_mix(&id, spec).await?;
    respond(&s, &id, outcome)
}

/// `POST /v1/mixes` with the spec plus an `id`.
pub struct CreateBody {
    id: String,
    spec: MixSpec,
}

/// The `id` taken out, the rest read as a [`MixSpec`] — which refuses unknown fields, as on `PUT` (serde's
/// `flatten` would have let them through silently).
impl<'de> Deserialize<'de> for CreateBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut fields = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let id = fields
            .remove("id")
            .ok_or_else(|| D::Error::missing_field("id"))?;
        let id = String::deserialize(id).map_err(D::Error::custom)?;
        let spec =
            MixSpec::deserialize(serde_json::Value::Object(fields)).map_err(D::Error::custom)?;
        Ok(Self { id, spec })
    }
}

/// [`MixSpec`]'s own object with a required `id` beside its fields, as serde flattens it. (`allOf` MixSpec
/// and `{id}` would describe nothing: MixSpec allows no property it does not name.)
impl PartialSchema for CreateBody {
    fn schema() -> RefOr<Schema> {
        let RefOr::T(Schema::Object(mut spec)) = MixSpec::schema() else {
            unreachable!("MixSpec's schema is an object");
        };
        let id = ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(super::openapi::ID_PATTERN))
            .description(Some("The new mix's id."));
        spec.properties.insert("id".into(), id.into());
        spec.required.insert(0, "id".into());
        spec.description = Some("A mix spec with the id of the mix to create.".into());
        Schema::Object(spec).into()
    }
}

impl ToSchema for CreateBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "MixCreate".into()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((MixSpec::name().into(), MixSpec::schema()));
        MixSpec::schemas(schemas);
    }
}

/// Create a mix with an id in the body
#[utoipa::path(
    post,
    path = "/v1/mixes",
    operation_id = "create_mix",
    tag = "mixes",
    request_body = CreateBody,
    responses(
        (status = 201, description = "created", body = MixAnswer),
        (status = 400, description = "malformed JSON, an unknown field or a wrong type (malformed_json, invalid_body), or a bad id (invalid_id)", body = ErrorBody),
        (status = 409, description = "the mix exists (already_exists), node limit (limit_exceeded), or an output another mix or relay publishes (output_in_use)", body = ErrorBody),
        (status = 413, description = "body larger than server.max_body_bytes (body_too_large)", body = ErrorBody),
        (status = 415, description = "not sent as application/json (unsupported_media_type)", body = ErrorBody),
        (status = 422, description = "the spec breaks rules, each listed in details (invalid_spec), or an image is unavailable (resource_unavailable)", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
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
    check_images(&s, &body.spec).await?;
    check_sources(&s, &body.spec).await?;
    let outcome = s.engine.put_mix(&body.id, body.spec).await?;
    respond(&s, &body.id, outcome)
}

/// `engine.pictures_dir`: the image files a caller names must lie in the pictures folder
/// ([`crate::image::confine`]); without a folder, a caller may name no local file at all. Checked before anything
/// is stored or started (the loader checks again when it reads them). A refusal names the field, never the
/// folder, and is logged with its reason.
async fn check_images(s: &AppState, spec: &MixSpec) -> Result<(), ApiError> {
    let files = caller_files(spec);
    if files.is_empty() {
        return Ok(());
    }
    let folder = crate::image::pictures_dir(&s.config.get().engine);
    let refused = tokio::task::spawn_blocking(move || confine_files(folder.as_deref(), files))
        .await
        .map_err(crate::Error::internal)?;
    if refused.is_empty() {
        return Ok(());
    }
    // With the spec's other broken rules, so that the caller can fix the request in one go.
    let mut violations = spec.validate(&s.engine.limits()).err().unwrap_or_default();
    violations.extend(refused);
    Err(crate::error::Error::invalid(violations).into())
}

/// The image file paths a caller gave in `spec`, as `(field, path)`: the well-formed ones (the others break the
/// spec's own rules, which say so).
fn caller_files(spec: &MixSpec) -> Vec<(String, String)> {
    let mut files = Vec::new();
    if let Some(image) = spec.canvas.background_image.as_deref() {
        if is_file_path(image) {
            files.push(("canvas.background_image".to_string(), image.to_string()));
        }
    }
    for (i, o) in spec.overlays.iter().enumerate() {
        if o.color.is_none() && is_file_path(&o.image) {
            files.push((format!("overlays[{i}].image"), o.image.clone()));
        }
    }
    files
}

/// A local file without a pictures folder.
const NO_PICTURES_DIR: &str = "a local image file needs a pictures folder on this node, and \
    engine.pictures_dir is not set; give an http(s) URL";
/// A path outside the pictures folder, or leading out of it.
const OUTSIDE_PICTURES_DIR: &str =
    "must name a file in this node's pictures folder (engine.pictures_dir): \
    a path relative to it, or an absolute path inside it, with no symbolic link leading out of it";

/// The rule each of `files` breaks, if any, within `folder`. A file that does not exist passes: the loader then
/// answers as it does for any unreadable file (no oracle for what exists). Blocking.
fn confine_files(folder: Option<&std::path::Path>, files: Vec<(String, String)>) -> Vec<Violation> {
    files
        .into_iter()
        .filter_map(|(field, path)| {
            let rule = match folder.map(|f| crate::image::confine(f, &path)) {
                None => NO_PICTURES_DIR,
                Some(Ok(_)) | Some(Err(Escape::Unresolved(_))) => return None,
                Some(Err(Escape::ParentDir)) => "must not contain a .. component",
                Some(Err(Escape::Outside)) => OUTSIDE_PICTURES_DIR,
            };
            tracing::info!(%field, %path, rule, "image file path refused");
            Some(Violation {
                field,
                rule: rule.to_string(),
            })
        })
        .collect()
}

/// `ingest.forbid_private_sources`: the caller's URLs must reach public addresses only.
async fn check_sources(s: &AppState, spec: &MixSpec) -> Result<(), ApiError> {
    if !s.config.get().ingest.forbid_private_sources {
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
        PutOutcome::Created => Applied::Created,
        PutOutcome::UpdatedLive => Applied::UpdatedLive,
        PutOutcome::Restarted => Applied::Restarted,
    };
    let view = s
        .engine
        .get_mix(id)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "mix vanished"))?;
    Ok((status, axum::Json(MixAnswer { view, applied })))
}

/// Stop a mix and release everything it holds
#[utoipa::path(
    delete,
    path = "/v1/mixes/{id}",
    operation_id = "delete_mix",
    tag = "mixes",
    params(MixId),
    responses(
        (status = 204, description = "stopped"),
        (status = 400, description = "the id is not valid UTF-8 once percent-decoded (invalid_id)", body = ErrorBody),
        (status = 404, description = "no such mix", body = ErrorBody),
        (status = 429, response = RateLimited),
    )
)]
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

/// The `{id}` of `/v1/mixes/{id}`.
#[derive(utoipa::IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
#[allow(dead_code)]
struct MixId(
    /// The mix's id: 1 to 128 characters of A-Z a-z 0-9 - _ . ~
    #[param(pattern = "^[A-Za-z0-9._~-]{1,128}$")]
    String,
);
