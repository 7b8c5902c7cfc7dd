//! Tencent CME (多媒体创作引擎) API 3.0, version 2019-10-29: stream-connect (云转推) projects — `CreateProject`
//! (`Category=STREAM_CONNECT`), `HandleStreamConnectProject` (every operation), `DescribeProjects`,
//! `DeleteProject` — over Tessera's relay engine. The CME names (platform, owner, output names, the inputs as
//! given) are kept here; the engine sees a [`RelaySpec`].

mod wire;

use std::sync::Arc;

use serde_json::{json, Value};

use super::isotime;
use crate::{
    api::{registry::TaskRegistry, AppState},
    clock::unix_now as now_unix,
    engine::Engine,
    error::{Error, ErrorKind},
    events::TaskRef,
    relay::{Endpoint, RelayInput, RelayOutput, RelaySpec, Relays},
    store::Store,
};

pub const VERSION: &str = "2019-10-29";
const CATEGORY: &str = "STREAM_CONNECT";
const MAX_NAME_CHARS: usize = 30;

/// A refusal in CME's terms: the API 3.0 code and a clear message.
#[derive(Debug)]
pub struct CmeError {
    pub code: &'static str,
    pub message: String,
}

fn err(code: &'static str, message: impl Into<String>) -> CmeError {
    CmeError {
        code,
        message: message.into(),
    }
}

const PROJECT_ID: &str = "InvalidParameterValue.ProjectId";
const INPUT_INVALID: &str = "InvalidParameterValue.StreamConnectInputInvalid";
const OUTPUT_INVALID: &str = "InvalidParameterValue.StreamConnectOutputInvalid";

/// What CME remembers of a project besides its relay spec (recorded as it is).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Project {
    /// Kept as given (Tessera has one platform: the node).
    #[allow(dead_code)]
    platform: String,
    name: String,
    owner: wire::Entity,
    #[allow(dead_code)]
    description: String,
    created: i64,
    updated: i64,
    /// The inputs as the caller gave them (push URLs filled in), for `DescribeProjects`.
    main: wire::StreamInputInfo,
    backup: Option<wire::StreamInputInfo>,
    /// The outputs with their ids and names.
    outputs: Vec<wire::StreamConnectOutput>,
    /// When the push URL of an `RtmpPush` main / backup input stops accepting publishes (Unix seconds): issued
    /// plus `ExpiredSecond`; `None` for other inputs and for `ExpiredSecond` 0 (no expiry).
    push_expires: [Option<i64>; 2],
}

/// When a push URL issued `now` for `info` expires.
fn push_deadline(info: Option<&wire::StreamInputInfo>, now: i64) -> Option<i64> {
    let secs = info?.rtmp_push_input_info.as_ref()?.expired_second?;
    (secs > 0).then(|| now.saturating_add(secs))
}

fn slot(e: Endpoint) -> usize {
    match e {
        Endpoint::Main => 0,
        Endpoint::Backup => 1,
    }
}

/// The record kind of CME projects.
const KIND: &str = "cme_project";

/// CME projects, in the dialects' one [`TaskRegistry`] shape: each drives the relay project of the same id (and
/// is forgotten when that project is deleted elsewhere).
pub struct CmeState {
    projects: Arc<TaskRegistry<Project>>,
}

impl CmeState {
    pub fn new(store: Arc<dyn Store>, engine: Engine) -> Self {
        Self {
            projects: TaskRegistry::new("cme project", KIND, store, engine),
        }
    }

    /// Takes back the projects recorded before a restart whose relay projects were restored.
    pub async fn adopt(&self, task: &TaskRef) {
        if let Some(id) = task.relay() {
            self.projects.adopt(id, task.clone(), |_| None).await;
        }
    }

    pub fn release(&self, task: &TaskRef) {
        self.projects.release(task);
    }

    pub async fn restore(&self, relays: &Relays) {
        self.projects
            .restore(
                |id, _| TaskRef::Relay(id.to_string()),
                |_| None,
                |task| relays.get(task.id()).is_some(),
            )
            .await;
    }

    /// Records a project and keeps it (its relay project is recorded by the relay engine). Under the project's
    /// lock.
    async fn keep(&self, id: String, p: Project) {
        self.projects
            .put(&id, p, TaskRef::Relay(id.clone()), None)
            .await;
    }

    /// Whether `stream` is the push stream of a project's `RtmpPush` input whose URL has expired: the ingest's
    /// publish callback refuses it (a broadcaster already publishing is not cut off, as with an expiring URL
    /// signature).
    pub fn push_expired(&self, stream: &str, now: i64) -> bool {
        self.projects
            .find(|id, p| {
                [Endpoint::Main, Endpoint::Backup].into_iter().any(|e| {
                    p.push_expires[slot(e)].is_some_and(|at| now >= at)
                        && push_stream_id(id, e) == stream
                })
            })
            .is_some()
    }
}

fn new_project_id() -> String {
    format!("cmepid_{:024x}", fastrand::u128(..) >> 32)
}

fn parse<'a, T: serde::Deserialize<'a>>(body: &'a [u8], action: &str) -> Result<T, CmeError> {
    serde_json::from_slice(body).map_err(|e| {
        err(
            "InvalidParameter",
            format!("the body is not a valid {action} request: {e}"),
        )
    })
}

fn required<T>(v: Option<T>, name: &str) -> Result<T, CmeError> {
    v.ok_or_else(|| err("MissingParameter", format!("{name} is required")))
}

fn platform(p: Option<String>) -> Result<String, CmeError> {
    match p {
        None => Err(err("MissingParameter", "Platform is required")),
        Some(p) if p.trim().is_empty() || p.len() > 64 => Err(err(
            "InvalidParameter.Platform",
            "Platform must be 1 to 64 characters",
        )),
        Some(p) => Ok(p),
    }
}

fn endpoint(s: Option<&str>) -> Result<Endpoint, CmeError> {
    match s {
        Some("Main") => Ok(Endpoint::Main),
        Some("Backup") => Ok(Endpoint::Backup),
        None => Err(err("MissingParameter", "InputEndpoint is required")),
        Some(other) => Err(err(
            "InvalidParameterValue.InputEndpoint",
            format!("InputEndpoint {other:?} is not Main or Backup"),
        )),
    }
}

fn endpoint_name(e: Endpoint) -> &'static str {
    match e {
        Endpoint::Main => "Main",
        Endpoint::Backup => "Backup",
    }
}

/// The stream id a broadcaster pushes an `RtmpPush` input to.
fn push_stream_id(project: &str, e: Endpoint) -> String {
    format!("{project}_{}", endpoint_name(e).to_ascii_lowercase())
}

/// A CME input → the engine's input; fills in the push URL of an `RtmpPush` input.
fn input(
    state: &AppState,
    project: &str,
    e: Endpoint,
    info: &mut wire::StreamInputInfo,
) -> Result<RelayInput, CmeError> {
    match info.input_type.as_str() {
        "LivePull" => {
            let url = info
                .live_pull_input_info
                .as_ref()
                .map(|l| l.input_url.trim().to_string())
                .filter(|u| !u.is_empty())
                .ok_or_else(|| {
                    err(
                        INPUT_INVALID,
                        "LivePullInputInfo.InputUrl is required for LivePull",
                    )
                })?;
            Ok(RelayInput::Url(url))
        }
        "RtmpPush" => {
            let push = info
                .rtmp_push_input_info
                .get_or_insert_with(Default::default);
            if push.push_url.as_deref().is_some_and(|u| !u.is_empty()) {
                return Err(err(
                    INPUT_INVALID,
                    "RtmpPushInputInfo.PushUrl is generated by the server; leave it empty",
                ));
            }
            let id = push_stream_id(project, e);
            push.push_url = Some(crate::engine::resolve_input(
                &crate::model::Source::StreamId(id.clone()),
                &state.config.get().ingest,
            ));
            match push.expired_second {
                None => push.expired_second = Some(0),
                Some(s) if s < 0 => return Err(err(
                    INPUT_INVALID,
                    "RtmpPushInputInfo.ExpiredSecond must be 0 (no expiry) or a number of seconds",
                )),
                Some(_) => {}
            }
            Ok(RelayInput::Push(id))
        }
        "VodPull" => {
            let vod = info
                .vod_pull_input_info
                .as_mut()
                .ok_or_else(|| err(INPUT_INVALID, "VodPullInputInfo is required for VodPull"))?;
            let urls: Vec<String> = vod
                .input_urls
                .iter()
                .map(|u| u.trim().to_string())
                .collect();
            if urls.is_empty() || urls.iter().any(String::is_empty) {
                return Err(err(
                    INPUT_INVALID,
                    "VodPullInputInfo.InputUrls must hold 1 to 20 non-empty URLs",
                ));
            }
            // Echoed with the default filled in (0: the list is played once).
            let loop_times = *vod.loop_times.get_or_insert(0);
            vod.input_urls = urls.clone();
            Ok(RelayInput::Vod { urls, loop_times })
        }
        "" => Err(err("MissingParameter", "InputType is required")),
        other => Err(err(
            INPUT_INVALID,
            format!("InputType {other:?} is not LivePull, RtmpPush or VodPull"),
        )),
    }
}

/// CME outputs → engine outputs; assigns missing ids.
fn outputs(list: &mut [wire::StreamConnectOutput]) -> Result<Vec<RelayOutput>, CmeError> {
    let mut used: Vec<String> = list.iter().filter_map(|o| o.id.clone()).collect();
    let mut next = 1;
    list.iter_mut()
        .map(|o| {
            if o.id.as_deref().is_none_or(str::is_empty) {
                while used.contains(&next.to_string()) {
                    next += 1;
                }
                o.id = Some(next.to_string());
                used.push(next.to_string());
            }
            match o.r#type.as_deref() {
                None | Some("") | Some("URL") => o.r#type = Some("URL".into()),
                Some(other) => {
                    return Err(err(
                        OUTPUT_INVALID,
                        format!("output Type {other:?} is not supported (URL)"),
                    ))
                }
            }
            let url = o
                .push_url
                .clone()
                .filter(|u| !u.is_empty())
                .ok_or_else(|| err(OUTPUT_INVALID, "every output needs a PushUrl"))?;
            Ok(RelayOutput {
                id: o.id.clone().unwrap_or_default(),
                name: o.name.clone().unwrap_or_default(),
                url,
            })
        })
        .collect()
}

/// An engine refusal in CME's codes.
fn engine_error(e: Error) -> CmeError {
    match e.kind {
        ErrorKind::Invalid => {
            let code = match e.violations.first().map(|v| v.field.as_str()) {
                Some(f) if f.starts_with("outputs") => OUTPUT_INVALID,
                Some(f) if f.starts_with("main") || f.starts_with("backup") => INPUT_INVALID,
                _ => "InvalidParameterValue",
            };
            err(code, e.message)
        }
        ErrorKind::NotFound => err(PROJECT_ID, e.message),
        ErrorKind::Conflict => err(OUTPUT_INVALID, e.message),
        ErrorKind::State => err("FailedOperation", e.message),
        ErrorKind::LimitExceeded => err("LimitExceeded", e.message),
        ErrorKind::TooLarge => err("InvalidParameterValue", e.message),
        ErrorKind::Unavailable | ErrorKind::Internal => {
            err("InternalError", "internal error; see the server log")
        }
    }
}

fn spec_of(state: &AppState, id: &str) -> Result<RelaySpec, CmeError> {
    state
        .relays
        .get(id)
        .map(|v| v.spec)
        .ok_or_else(|| err(PROJECT_ID, format!("project {id:?} does not exist")))
}

/// Handles one CME action; `Ok` is the `Response` object without `RequestId`.
pub async fn handle(state: &AppState, action: &str, body: &[u8]) -> Result<Value, CmeError> {
    match action {
        "CreateProject" => create(state, parse(body, action)?).await,
        "HandleStreamConnectProject" => handle_project(state, parse(body, action)?).await,
        "DescribeProjects" => describe(state, parse(body, action)?),
        "DeleteProject" => delete(state, parse(body, action)?).await,
        other => Err(err(
            "InvalidAction",
            format!("CME action {other:?} does not exist here (CreateProject, HandleStreamConnectProject, DescribeProjects, DeleteProject)"),
        )),
    }
}

async fn create(state: &AppState, req: wire::CreateProject) -> Result<Value, CmeError> {
    let platform = platform(req.platform)?;
    let category = required(req.category, "Category")?;
    if category != CATEGORY {
        return Err(err(
            "InvalidParameterValue.Category",
            format!("Category {category:?} is not supported; only {CATEGORY}"),
        ));
    }
    let name = required(req.name, "Name")?;
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(err(
            "InvalidParameterValue.Name",
            "Name must be 1 to 30 characters",
        ));
    }
    let owner = required(req.owner, "Owner")?;
    let input = required(
        req.stream_connect_project_input,
        "StreamConnectProjectInput",
    )?;
    let id = new_project_id();
    let mut main = required(input.main_input, "StreamConnectProjectInput.MainInput")?;
    let main_in = input_for(state, &id, Endpoint::Main, &mut main)?;
    let mut backup = input.backup_input;
    let backup_in = match backup.as_mut() {
        Some(b) => Some(input_for(state, &id, Endpoint::Backup, b)?),
        None => None,
    };
    let mut outs = input.outputs;
    let spec = RelaySpec {
        main: main_in,
        backup: backup_in,
        outputs: outputs(&mut outs)?,
        failover: Default::default(),
        stop_at: None,
        callback_url: None,
    };
    let _project = state.tencent.cme.projects.lock(&id).await;
    state.relays.put(&id, spec).await.map_err(engine_error)?;
    let now = now_unix();
    let push_info = |i: Option<&wire::StreamInputInfo>| {
        i.and_then(|i| i.rtmp_push_input_info.clone())
            .map(|p| json!({"ExpiredSecond": p.expired_second.unwrap_or(0), "PushUrl": p.push_url.unwrap_or_default()}))
            .unwrap_or_else(|| json!({"ExpiredSecond": 0, "PushUrl": ""}))
    };
    let push_set = json!([push_info(Some(&main)), push_info(backup.as_ref())]);
    state
        .tencent
        .cme
        .keep(
            id.clone(),
            Project {
                platform,
                name,
                owner,
                description: req.description.unwrap_or_default(),
                created: now,
                updated: now,
                push_expires: [
                    push_deadline(Some(&main), now),
                    push_deadline(backup.as_ref(), now),
                ],
                main,
                backup,
                outputs: outs,
            },
        )
        .await;
    tracing::info!(relay = %id, "CME stream-connect project created");
    let _ = (req.mode, req.aspect_ratio);
    Ok(json!({"ProjectId": id, "RtmpPushInputInfoSet": push_set}))
}

fn input_for(
    state: &AppState,
    project: &str,
    e: Endpoint,
    info: &mut wire::StreamInputInfo,
) -> Result<RelayInput, CmeError> {
    input(state, project, e, info)
}

fn project(state: &AppState, id: &str) -> Result<Project, CmeError> {
    state
        .tencent
        .cme
        .projects
        .get(id)
        .ok_or_else(|| err(PROJECT_ID, format!("project {id:?} does not exist")))
}

async fn handle_project(
    state: &AppState,
    req: wire::HandleStreamConnectProject,
) -> Result<Value, CmeError> {
    platform(req.platform)?;
    let id = required(req.project_id, "ProjectId")?;
    let operation = required(req.operation, "Operation")?;
    let _project = state.tencent.cme.projects.lock(&id).await;
    let mut p = project(state, &id)?;
    let mut spec = spec_of(state, &id)?;
    let mut answer = json!({});
    match operation.as_str() {
        "Start" => {
            state.relays.start(&id).await.map_err(|e| {
                tracing::warn!(relay = %id, error = %e, "CME start failed");
                err(
                    "FailedOperation.StartStreamConnectPartlyErr",
                    "the project could not be started; see its status",
                )
            })?;
            return Ok(answer);
        }
        "Stop" => {
            state.relays.stop(&id).await.map_err(engine_error)?;
            return Ok(answer);
        }
        "SwitchInput" => {
            let e = endpoint(req.input_endpoint.as_deref())?;
            state
                .relays
                .switch(&id, e)
                .map_err(|e| err(INPUT_INVALID, e.message))?;
            return Ok(answer);
        }
        "DescribeInputPlayInfo" => {
            // Only a VodPull input that is playing has a play position.
            let e = endpoint(req.input_endpoint.as_deref())?;
            let input = match e {
                Endpoint::Main => Some(&spec.main),
                Endpoint::Backup => spec.backup.as_ref(),
            };
            let play = input
                .filter(|i| matches!(i, RelayInput::Vod { .. }))
                .and_then(|_| state.relays.get(&id))
                .and_then(|v| match e {
                    Endpoint::Main => v.status.main,
                    Endpoint::Backup => v.status.backup,
                })
                .and_then(|s| s.vod)
                .map(
                    |v| json!({"Url": v.url, "TimeOffset": (v.seconds * 1000.0).round() / 1000.0}),
                );
            return Ok(json!({"VodPullInputPlayInfo": play}));
        }
        "AddInput" | "ModifyInput" => {
            let e = endpoint(req.input_endpoint.as_deref())?;
            let mut info = required(req.input_info, "InputInfo")?;
            let exists = match e {
                Endpoint::Main => true,
                Endpoint::Backup => spec.backup.is_some(),
            };
            if operation == "AddInput" && exists {
                return Err(err(
                    INPUT_INVALID,
                    format!("the {} input exists; use ModifyInput", endpoint_name(e)),
                ));
            }
            if operation == "ModifyInput" && !exists {
                return Err(err(
                    INPUT_INVALID,
                    format!("there is no {} input; use AddInput", endpoint_name(e)),
                ));
            }
            let relay_input = input(state, &id, e, &mut info)?;
            if let Some(url) = info
                .rtmp_push_input_info
                .as_ref()
                .and_then(|p| p.push_url.clone())
            {
                answer = json!({"StreamInputRtmpPushUrl": url});
            }
            // A new push URL (or none) for this endpoint: its expiry counts from now.
            p.push_expires[slot(e)] = push_deadline(Some(&info), now_unix());
            match e {
                Endpoint::Main => {
                    spec.main = relay_input;
                    p.main = info;
                }
                Endpoint::Backup => {
                    spec.backup = Some(relay_input);
                    p.backup = Some(info);
                }
            }
        }
        "DeleteInput" => match endpoint(req.input_endpoint.as_deref())? {
            Endpoint::Main => {
                return Err(err(
                    INPUT_INVALID,
                    "the Main input cannot be deleted (ModifyInput replaces it)",
                ))
            }
            Endpoint::Backup => {
                if spec.backup.take().is_none() {
                    return Err(err(INPUT_INVALID, "there is no Backup input"));
                }
                p.backup = None;
                p.push_expires[slot(Endpoint::Backup)] = None;
            }
        },
        "AddOutput" | "ModifyOutput" | "DeleteOutput" => {
            let info = required(req.output_info, "OutputInfo")?;
            let oid = info.id.clone().filter(|s| !s.is_empty());
            let pos = oid
                .as_ref()
                .and_then(|oid| p.outputs.iter().position(|o| o.id.as_ref() == Some(oid)));
            match (operation.as_str(), pos) {
                ("AddOutput", Some(_)) => {
                    return Err(err(OUTPUT_INVALID, "an output with this Id exists"))
                }
                ("AddOutput", None) => p.outputs.push(info),
                (_, None) => {
                    return Err(err(
                        OUTPUT_INVALID,
                        format!("no output with Id {:?}", oid.unwrap_or_default()),
                    ))
                }
                ("ModifyOutput", Some(i)) => {
                    let o = &mut p.outputs[i];
                    if let Some(n) = info.name {
                        o.name = Some(n);
                    }
                    if let Some(u) = info.push_url.filter(|u| !u.is_empty()) {
                        o.push_url = Some(u);
                    }
                    if info.r#type.is_some() {
                        o.r#type = info.r#type;
                    }
                }
                (_, Some(i)) => {
                    p.outputs.remove(i);
                }
            }
            spec.outputs = outputs(&mut p.outputs)?;
        }
        "ModifyCurrentStopTime" => {
            let t = required(req.current_stop_time, "CurrentStopTime")?;
            let at = isotime::parse(&t).ok_or_else(|| {
                err(
                    "InvalidParameterValue.CurrentStopTime",
                    format!("CurrentStopTime {t:?} is not an ISO 8601 time"),
                )
            })?;
            if at <= now_unix() {
                return Err(err(
                    "InvalidParameterValue.CurrentStopTime",
                    "CurrentStopTime must be in the future",
                ));
            }
            spec.stop_at = Some(at);
        }
        other => {
            return Err(err(
                "InvalidParameterValue.Operation",
                format!("Operation {other:?} is not supported"),
            ))
        }
    }
    state.relays.put(&id, spec).await.map_err(engine_error)?;
    p.updated = now_unix();
    state.tencent.cme.keep(id, p).await;
    let _ = req.operator;
    Ok(answer)
}

fn describe(state: &AppState, req: wire::DescribeProjects) -> Result<Value, CmeError> {
    platform(req.platform)?;
    let offset = req.offset.unwrap_or(0);
    let limit = req.limit.unwrap_or(10);
    if offset < 0 || limit < 0 {
        return Err(err(
            "InvalidParameterValue",
            "Offset and Limit must not be negative",
        ));
    }
    let (offset, limit) = (offset as usize, limit.min(100) as usize);
    if !req.category_set.is_empty() && !req.category_set.iter().any(|c| c == CATEGORY) {
        return Ok(json!({"TotalCount": 0, "ProjectInfoSet": []}));
    }
    let projects = state.tencent.cme.projects.all();
    let mut list: Vec<(String, Project)> = projects
        .into_iter()
        .filter(|(id, _)| req.project_ids.is_empty() || req.project_ids.contains(id))
        .filter(|(_, p)| {
            req.owner
                .as_ref()
                .is_none_or(|o| o.id.is_empty() || o.id == p.owner.id)
        })
        .collect();
    // Newest first, as CME sorts by default.
    list.sort_by(|a, b| b.1.created.cmp(&a.1.created).then(a.0.cmp(&b.0)));
    let total = list.len();
    let infos: Vec<Value> = list
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|(id, p)| info(state, &id, &p))
        .collect();
    let _ = (req.aspect_ratio_set, req.modes, req.sort, req.operator);
    Ok(json!({"TotalCount": total, "ProjectInfoSet": infos}))
}

fn info(state: &AppState, id: &str, p: &Project) -> Value {
    let view = state.relays.get(id);
    let working = view
        .as_ref()
        .is_some_and(|v| v.status.state == crate::relay::status::ProjectState::Working);
    let status = view.as_ref().map(|v| &v.status);
    let time = |t: Option<i64>| t.map(isotime::format).unwrap_or_default();
    let outputs: Vec<Value> = p
        .outputs
        .iter()
        .map(|o| {
            json!({
                "StreamConnectOutput": o,
                "PushSwitch": if working { "On" } else { "Off" },
            })
        })
        .collect();
    json!({
        "ProjectId": id,
        "Name": p.name,
        "AspectRatio": "",
        "Category": CATEGORY,
        "Owner": p.owner,
        "CoverUrl": "",
        "StreamConnectProjectInfo": {
            "Status": if working { "Working" } else { "Idle" },
            "CurrentInputEndpoint": match status.and_then(|s| s.active) {
                Some(e) => endpoint_name(e),
                None => "Main",
            },
            "CurrentStartTime": if working { time(status.and_then(|s| s.started_at)) } else { String::new() },
            "CurrentStopTime": if working { time(view.as_ref().and_then(|v| v.spec.stop_at)) } else { String::new() },
            "LastStopTime": if working { String::new() } else { time(status.and_then(|s| s.stopped_at)) },
            "MainInput": p.main,
            "BackupInput": p.backup,
            "OutputSet": outputs,
        },
        "MediaCastProjectInfo": null,
        "UpdateTime": isotime::format(p.updated),
        "CreateTime": isotime::format(p.created),
    })
}

async fn delete(state: &AppState, req: wire::DeleteProject) -> Result<Value, CmeError> {
    platform(req.platform)?;
    let id = required(req.project_id, "ProjectId")?;
    let _project = state.tencent.cme.projects.lock(&id).await;
    project(state, &id)?;
    let working = state
        .relays
        .get(&id)
        .is_some_and(|v| v.status.state == crate::relay::status::ProjectState::Working);
    if working {
        return Err(err(
            "FailedOperation.ProjectWorking",
            "the project is working; stop it first (HandleStreamConnectProject Operation=Stop)",
        ));
    }
    state.relays.delete(&id).await.map_err(engine_error)?;
    state.tencent.cme.projects.remove(&id).await;
    let _ = req.operator;
    Ok(json!({}))
}
