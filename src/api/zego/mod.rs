//! The ZEGO server API dialect: `POST /?Action=StartMix`, `POST /?Action=StopMix`,
//! `GET /?Action=GetMixTaskInfo&TaskId=…`, signature v2.0. Every answer, errors included, is ZEGO's envelope
//! `{"Code","Message","RequestId","Data"}` with HTTP 200. The signature is checked before the body is looked at.

mod auth;
pub mod codes;
mod fields;
mod nonces;
pub(crate) mod tasks;
mod translate;
mod wire;

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{
    body::Bytes,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use serde_json::{json, Value};

pub use auth::signature;
use codes::*;

use super::AppState;
use crate::{
    engine::Engine,
    error::ErrorKind,
    events::TaskRef,
    model::{Source, Target},
    node::NodeParts,
};

/// What the ZEGO dialect keeps: its tasks and the nonces it has seen.
pub struct ZegoState {
    tasks: Arc<tasks::Tasks>,
    nonces: auth::NonceCache,
}

impl ZegoState {
    pub fn new(parts: &NodeParts, engine: Engine) -> Self {
        Self {
            tasks: tasks::registry(parts.store.clone(), engine),
            nonces: auth::NonceCache::recorded(parts.store.clone()),
        }
    }

    /// Takes back the tasks and nonces recorded before a restart (after the engine restored its mixes).
    /// Takes over the ZEGO task driving `task`, if one is recorded (a cluster node that now owns the mix).
    pub async fn adopt(&self, task: &crate::events::TaskRef) {
        if let Some(id) = task.mix().and_then(|m| m.strip_prefix("zego-")) {
            self.tasks
                .adopt(id, task.clone(), |r| {
                    Some(Duration::from_secs(r.max_idle_s))
                })
                .await;
        }
    }

    /// Forgets the ZEGO task driving `task`, keeping its record (another node owns the mix now).
    pub fn release(&self, task: &crate::events::TaskRef) {
        self.tasks.release(task);
    }

    pub async fn restore(&self, engine: &Engine, config: &crate::config::ZegoConfig) {
        tasks::restore(&self.tasks, engine).await;
        self.nonces
            .restore(Duration::from_secs(config.timestamp_window_s * 2))
            .await;
    }
}

/// ZEGO refuses background and watermark images over 1 MB.
const MAX_IMAGE_BYTES: u64 = 1024 * 1024;

/// ZEGO's envelope around every answer.
fn envelope(code: u32, message: &str, data: Value) -> Response {
    let request_id = fastrand::u64(..).to_string();
    let mut r =
        Json(json!({"Code": code, "Message": message, "RequestId": request_id, "Data": data}))
            .into_response();
    if code != 0 {
        r.extensions_mut().insert(crate::api::Outcome::REFUSED);
    }
    r
}

fn ok(data: impl Serialize) -> Response {
    envelope(
        0,
        "success",
        serde_json::to_value(data).unwrap_or(Value::Null),
    )
}

impl IntoResponse for ZegoError {
    fn into_response(self) -> Response {
        envelope(self.code, &self.message, json!({}))
    }
}

use crate::clock::unix_now as now_unix;

/// Handles a request whose query names an `Action`. `body` (the bytes, or the code for a body that could not be
/// read) is looked at only after the signature was checked.
pub async fn handle(
    state: &AppState,
    query: &HashMap<String, String>,
    body: Result<Bytes, u32>,
) -> Response {
    match handle_inner(state, query, body).await {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(code = e.code, message = %e.message, action = ?query.get("Action"), "zego request refused");
            e.into_response()
        }
    }
}

async fn handle_inner(
    state: &AppState,
    query: &HashMap<String, String>,
    body: Result<Bytes, u32>,
) -> Result<Response, ZegoError> {
    let config = &state.config.get().zego;
    auth::verify(query, config, &state.zego.nonces, now_unix())?;
    // The nonce is durable before the request acts: a replay is refused after a restart too.
    let nonce = query
        .get("SignatureNonce")
        .map(String::as_str)
        .unwrap_or("");
    if let Err(e) = state.zego.nonces.persist(nonce).await {
        tracing::error!(error = %e, "zego nonce not recorded; request refused");
        return Err(ZegoError::new(TASK_FAILED, "internal error; retry later"));
    }
    // Counted once the signature holds, so only the AppId's owner spends its budget.
    if state
        .rates
        .get()
        .zego
        .check(&config.app_id.to_string())
        .is_err()
    {
        return Err(ZegoError::new(
            RATE_LIMITED,
            format!(
                "more than {} requests per second for this AppId; retry later",
                config.max_requests_per_s
            ),
        ));
    }
    let action = query.get("Action").map(String::as_str).unwrap_or("");
    let parse = |body: Result<Bytes, u32>| -> Result<Bytes, ZegoError> {
        body.map_err(|code| ZegoError::new(code, "the request body could not be read (too large?)"))
    };
    match action {
        "" => Err(ZegoError::new(ACTION_EMPTY, "Action is empty")),
        "StartMix" => {
            let body = parse(body)?;
            let req: wire::StartMix = serde_json::from_slice(&body).map_err(|e| {
                ZegoError::new(
                    BODY_UNPARSABLE,
                    format!("the body is not a valid StartMix: {e}"),
                )
            })?;
            start_mix(state, req).await
        }
        "StopMix" => {
            let body = parse(body)?;
            let req: wire::StopMix = serde_json::from_slice(&body).map_err(|e| {
                ZegoError::new(
                    BODY_UNPARSABLE,
                    format!("the body is not a valid StopMix: {e}"),
                )
            })?;
            tasks::stop(&state.zego.tasks, &state.engine, &req.task_id, &req.user_id).await?;
            Ok(ok(json!({})))
        }
        "GetMixTaskInfo" => {
            let task_id = query.get("TaskId").cloned().unwrap_or_default();
            let duration = tasks::duration(&state.zego.tasks, &task_id).ok_or_else(|| {
                ZegoError::new(TASK_NOT_FOUND, format!("task {task_id:?} does not exist"))
            })?;
            Ok(ok(wire::TaskInfoData {
                task_id,
                mix_duration: duration.as_secs(),
            }))
        }
        other => Err(ZegoError::new(
            ACTION_UNSUPPORTED,
            format!("Action {other:?} is not supported"),
        )),
    }
}

async fn start_mix(state: &AppState, req: wire::StartMix) -> Result<Response, ZegoError> {
    let config = &state.config.get().zego;
    let spec = translate::start_mix(&req, config)?;
    // The model's own rules (lengths, URL forms) come before the node's state, so a bad request is told so
    // whether or not the node has room.
    spec.validate(&state.engine.limits())
        .map_err(parameter_error)?;
    if state.config.get().ingest.forbid_private_sources {
        crate::netpolicy::check_urls(translate::caller_urls(&req))
            .await
            .map_err(parameter_error)?;
    }
    let tasks = &state.zego.tasks;
    // Told at once, before anything slow; checked again under the task's lock.
    tasks::check_update(tasks.get(&req.task_id).as_ref(), &req.user_id, req.sequence)?;
    let mix_id = tasks::mix_id(&req.task_id);
    // A full node says so at once, before inputs are probed.
    state
        .engine
        .check_capacity(&mix_id)
        .map_err(|e| ZegoError::new(TASK_FAILED, e.message))?;

    // Like ZEGO, refuse inputs that cannot be pulled; inputs the task already has were checked before.
    let mut holds = Vec::new();
    if config.input_check_ms > 0 {
        let known: Vec<Source> = state
            .engine
            .get_mix(&mix_id)
            .map(|v| v.spec.inputs.into_iter().map(|i| i.source).collect())
            .unwrap_or_default();
        let wait = Duration::from_millis(config.input_check_ms);
        let checks = spec
            .inputs
            .iter()
            .filter(|i| !known.contains(&i.source))
            .map(|i| async move { (i, state.engine.probe_source(&i.source, wait).await) });
        for (input, result) in futures::future::join_all(checks).await {
            match result {
                Ok(hold) => holds.push(hold),
                Err(reason) => {
                    tracing::info!(source = ?input.source, %reason, "zego input not found");
                    return Err(ZegoError::new(
                        INPUT_NOT_FOUND,
                        format!(
                            "input stream {} cannot be pulled",
                            describe_source(&input.source)
                        ),
                    ));
                }
            }
        }
    }

    let prepared = state
        .engine
        .prepare_mix(&mix_id, spec.clone(), MAX_IMAGE_BYTES)
        .await
        .map_err(engine_error)?;
    let _task = tasks.lock(&req.task_id).await;
    let existing = tasks.get(&req.task_id);
    tasks::check_update(existing.as_ref(), &req.user_id, req.sequence)?;
    state
        .engine
        .commit_mix(prepared)
        .await
        .map_err(engine_error)?;
    drop(holds);
    let max_idle = Duration::from_secs(
        req.max_idle_time
            .filter(|v| *v > 0)
            .map(|v| v as u64)
            .unwrap_or(config.max_idle_s),
    );
    let sequence = req.sequence.unwrap_or(0);
    let record = match existing {
        Some(t) => tasks::TaskRecord {
            sequence: t.sequence.max(sequence),
            max_idle_s: max_idle.as_secs(),
            ..t
        },
        None => tasks::TaskRecord {
            owner: req.user_id.clone(),
            sequence,
            started_unix: now_unix(),
            max_idle_s: max_idle.as_secs(),
        },
    };
    tasks
        .put(&req.task_id, record, TaskRef::Mix(mix_id), Some(max_idle))
        .await;

    let play_info = spec
        .outputs
        .iter()
        .map(|o| {
            let (stream_id, rtmp) = match &o.target {
                Target::StreamId(id) if config.play_rtmp_url.is_empty() => (
                    id.clone(),
                    crate::engine::resolve_output(&o.target, &state.config.get().egress),
                ),
                Target::StreamId(id) => (id.clone(), play_url(&config.play_rtmp_url, id)),
                Target::Url(u) => (String::new(), u.clone()),
            };
            wire::PlayInfo {
                flv: play_url(&config.play_flv_url, &stream_id),
                hls: play_url(&config.play_hls_url, &stream_id),
                stream_id,
                rtmp,
                status: 0,
                user_name: String::new(),
            }
        })
        .collect();
    Ok(ok(wire::StartMixData {
        user_id: req.user_id.clone(),
        sequence,
        room_id: req.room_id.clone(),
        play_info,
    }))
}

/// An engine refusal in ZEGO's codes.
fn engine_error(e: crate::error::Error) -> ZegoError {
    match e.kind {
        ErrorKind::Invalid if !e.violations.is_empty() => parameter_error(e.violations),
        ErrorKind::Invalid => ZegoError::new(PARAMETER, format!("parameter error: {}", e.message)),
        // ZEGO documents no code of its own for an image over its size: the image code.
        ErrorKind::Unavailable | ErrorKind::TooLarge => ZegoError::new(IMAGE_FETCH, e.message),
        ErrorKind::LimitExceeded => ZegoError::new(TASK_FAILED, e.message),
        ErrorKind::Conflict => ZegoError::new(DUPLICATE_OUTPUT, e.message),
        ErrorKind::State => ZegoError::new(TASK_FAILED, e.message),
        ErrorKind::NotFound | ErrorKind::Internal => {
            ZegoError::new(TASK_FAILED, "mixing failed; retry later")
        }
    }
}

/// Violated model rules as ZEGO's parameter error, each named by the StartMix field it comes from.
fn parameter_error(violations: Vec<crate::model::Violation>) -> ZegoError {
    let list: Vec<String> = violations
        .iter()
        .map(|v| format!("{}: {}", fields::zego_field(&v.field), v.rule))
        .collect();
    ZegoError::new(PARAMETER, format!("parameter error: {}", list.join("; ")))
}

fn play_url(template: &str, stream_id: &str) -> String {
    if template.is_empty() || stream_id.is_empty() {
        String::new()
    } else {
        template.replace("{stream_id}", stream_id)
    }
}

fn describe_source(s: &crate::model::Source) -> String {
    match s {
        crate::model::Source::StreamId(id) => format!("{id:?}"),
        crate::model::Source::Url(u) => format!("{u:?}"),
    }
}
