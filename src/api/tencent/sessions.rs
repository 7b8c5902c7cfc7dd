//! Tencent mix sessions, shared by the CGI, API 3.0 and auto-mix: a session id names one mix from its first
//! request to its cancel. Repeating a request with the same session and output id updates the running mix; a
//! list with only the background ends it; all inputs gone for `tencent.idle_end_s` ends it too.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{
    codes::{Reason, Refusal},
    request::{Dialect, MixRequest},
    translate::{self, Facts, Kind},
};
use crate::{
    api::AppState,
    engine::{Engine, SourceHold},
    error::ErrorKind,
    model::Source,
    store::{self, kind},
};

/// The engine's id for a session's mix (namespaced so native ids cannot clash with it).
pub fn mix_id(session_id: &str) -> String {
    format!("tencent-{session_id}")
}

/// Who may change a session: the CGI app, the API 3.0 SecretId, or auto-mix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Owner {
    App(u64),
    SecretId(String),
    AutoMix,
}

/// What is recorded of a session (its mix is recorded by the engine).
#[derive(serde::Serialize, serde::Deserialize)]
struct SessionRecord {
    owner: Owner,
    output_id: String,
}

struct Session {
    owner: Owner,
    /// The output stream id, fixed for the session's life (-508 otherwise).
    output_id: String,
    /// Ends the idle watcher with the session.
    watcher: tokio::task::AbortHandle,
}

/// What a start request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Started,
    Updated,
    /// The list held only the background: the session ended.
    Ended,
}

#[derive(Default)]
pub struct Sessions {
    sessions: Mutex<HashMap<String, Session>>,
    /// One request at a time: checks, the engine change and the record happen as one step.
    ops: tokio::sync::Mutex<()>,
}

impl Sessions {
    /// Starts or updates a session.
    pub async fn start(
        &self,
        state: &AppState,
        req: &MixRequest,
        dialect: Dialect,
        owner: Owner,
    ) -> Result<Applied, Refusal> {
        let checked = translate::check(req, dialect)?;
        let _op = self.ops.lock().await;
        self.prune(&state.engine);
        if checked.output_type == 0 {
            let out = crate::engine::resolve_output(
                &crate::model::Target::StreamId(checked.output_id.clone()),
                &state.config.egress,
            );
            let input = crate::engine::resolve_input(
                &Source::StreamId(checked.output_id.clone()),
                &state.config.ingest,
            );
            if out == input {
                return Err(Refusal::new(
                    Reason::OutputType,
                    "output type 0 would publish the mix onto its own input: this server's ingest and egress URLs are the same",
                ));
            }
        }
        let existing = {
            let sessions = self.sessions.lock().unwrap();
            if let Some(s) = sessions.get(&checked.session_id) {
                if s.owner != owner {
                    return Err(Refusal::new(
                        Reason::OutputInUse,
                        format!(
                            "session {:?} belongs to another application",
                            checked.session_id
                        ),
                    ));
                }
                if s.output_id != checked.output_id {
                    return Err(Refusal::new(
                        Reason::SessionOutput,
                        format!(
                            "session {:?} publishes {:?}, not {:?}",
                            checked.session_id, s.output_id, checked.output_id
                        ),
                    ));
                }
                true
            } else if let Some((other, _)) = sessions
                .iter()
                .find(|(_, s)| s.output_id == checked.output_id)
            {
                return Err(Refusal::new(
                    Reason::OutputInUse,
                    format!(
                        "output stream {:?} is already the output of session {other:?}",
                        checked.output_id
                    ),
                ));
            } else {
                false
            }
        };
        if checked.inputs.len() == 1 && !(checked.allow_copy && checked.output_type == 1) {
            if existing {
                self.end(&state.engine, &checked.session_id).await;
                tracing::info!(session = %checked.session_id, "tencent session ended: only the background is left");
                return Ok(Applied::Ended);
            }
            return Err(Refusal::new(
                Reason::TooFewInputs,
                "a mix needs at least two inputs (a list with only the background ends a running session)",
            ));
        }

        let mix = mix_id(&checked.session_id);
        // A full node says so at once, before inputs are probed.
        state
            .engine
            .check_capacity(&mix)
            .map_err(|e| Refusal::new(Reason::Limit, e.message))?;
        let (facts, holds) = learn_facts(state, &checked).await?;
        let spec = translate::build(&checked, &facts)?;
        state
            .engine
            .put_mix_with(&mix, spec, state.config.engine.max_image_bytes)
            .await
            .map_err(|e| match e.kind {
                ErrorKind::Invalid => Refusal::new(Reason::Parameter, e.message),
                ErrorKind::Conflict => Refusal::new(Reason::OutputInUse, e.message),
                ErrorKind::LimitExceeded => Refusal::new(Reason::Limit, e.message),
                ErrorKind::Unavailable | ErrorKind::TooLarge => {
                    Refusal::new(Reason::PictureNotFound, e.message)
                }
                ErrorKind::NotFound | ErrorKind::Internal => {
                    Refusal::new(Reason::Internal, "mixing failed; retry later")
                }
            })?;
        drop(holds);
        if existing {
            return Ok(Applied::Updated);
        }
        let max_idle = Duration::from_secs(state.config.tencent.idle_end_s);
        let watcher = tokio::spawn(watch_idle(
            state.clone(),
            checked.session_id.clone(),
            max_idle,
        ));
        store::put_or_log(
            &*state.engine.store(),
            kind::TENCENT_SESSION,
            &checked.session_id,
            &SessionRecord {
                owner: owner.clone(),
                output_id: checked.output_id.clone(),
            },
        );
        self.sessions.lock().unwrap().insert(
            checked.session_id.clone(),
            Session {
                owner,
                output_id: checked.output_id.clone(),
                watcher: watcher.abort_handle(),
            },
        );
        tracing::info!(session = %checked.session_id, output = %checked.output_id, "tencent session started");
        Ok(Applied::Started)
    }

    /// Ends a session on request. `output_id`, when given (the CGI's cancel names it), must be the session's.
    pub async fn cancel(
        &self,
        engine: &Engine,
        session_id: &str,
        output_id: Option<&str>,
        owner: &Owner,
    ) -> Result<(), Refusal> {
        let _op = self.ops.lock().await;
        self.prune(engine);
        {
            let sessions = self.sessions.lock().unwrap();
            let session = sessions
                .get(session_id)
                .filter(|s| &s.owner == owner)
                .ok_or_else(|| {
                    Refusal::new(
                        Reason::SessionNotFound,
                        format!("mix session {session_id:?} does not exist"),
                    )
                })?;
            if let Some(out) = output_id {
                if out != session.output_id {
                    return Err(Refusal::new(
                        Reason::CancelOutput,
                        format!(
                            "session {session_id:?} publishes {:?}, not {out:?}",
                            session.output_id
                        ),
                    ));
                }
            }
        }
        self.end(engine, session_id).await;
        tracing::info!(session = %session_id, "tencent session cancelled");
        Ok(())
    }

    /// Whether a session exists (and who owns it).
    pub fn owner_of(&self, session_id: &str) -> Option<Owner> {
        self.sessions
            .lock()
            .unwrap()
            .get(session_id)
            .map(|s| s.owner.clone())
    }

    /// Takes back the sessions recorded before a restart whose mixes the engine resumed.
    pub fn restore(&self, state: &AppState) {
        let store = state.engine.store();
        for (id, r) in store::load_as::<SessionRecord>(&*store, kind::TENCENT_SESSION) {
            if state.engine.get_mix(&mix_id(&id)).is_none() {
                // Kept while its mix is recorded (a mix that failed to come back now may later).
                if !state.engine.is_recorded(&mix_id(&id)) {
                    store::delete_or_log(&*store, kind::TENCENT_SESSION, &id);
                }
                continue;
            }
            let max_idle = Duration::from_secs(state.config.tencent.idle_end_s);
            let watcher = tokio::spawn(watch_idle(state.clone(), id.clone(), max_idle));
            self.sessions.lock().unwrap().insert(
                id,
                Session {
                    owner: r.owner,
                    output_id: r.output_id,
                    watcher: watcher.abort_handle(),
                },
            );
        }
    }

    /// Forgets sessions whose mix is gone by other means (deleted through the native API).
    fn prune(&self, engine: &Engine) {
        self.sessions.lock().unwrap().retain(|id, s| {
            let alive = engine.get_mix(&mix_id(id)).is_some();
            if !alive {
                s.watcher.abort();
                store::delete_or_log(&*engine.store(), kind::TENCENT_SESSION, id);
                tracing::info!(session = %id, "tencent session's mix was deleted; session forgotten");
            }
            alive
        });
    }

    async fn end(&self, engine: &Engine, session_id: &str) {
        if let Some(s) = self.sessions.lock().unwrap().remove(session_id) {
            s.watcher.abort();
        }
        store::delete_or_log(&*engine.store(), kind::TENCENT_SESSION, session_id);
        let _ = engine.delete_mix(&mix_id(session_id)).await;
    }
}

/// Finds every input stream (waiting up to `tencent.input_check_ms` for each, in parallel) and every picture.
async fn learn_facts(
    state: &AppState,
    checked: &translate::Checked,
) -> Result<(Facts, Vec<SourceHold>), Refusal> {
    let wait = Duration::from_millis(state.config.tencent.input_check_ms);
    let wants_video = |id: &str| {
        checked
            .inputs
            .iter()
            .any(|i| i.stream_id == id && matches!(i.kind, Kind::Av | Kind::Video))
    };
    let probes = checked.streams().into_iter().map(|id| async move {
        let video = wants_video(&id);
        let (hold, facts) = state
            .engine
            .inspect_source(&Source::StreamId(id.clone()), wait, video)
            .await;
        (id, hold, facts)
    });
    let mut facts = Facts::default();
    let mut holds = Vec::new();
    for (id, hold, found) in futures::future::join_all(probes).await {
        if !found.live {
            tracing::info!(stream = %id, "tencent input stream not found");
            return Err(Refusal::new(
                Reason::InputNotFound,
                format!("input stream {id:?} cannot be found (is it being published?)"),
            ));
        }
        facts.streams.insert(id, found.video_size);
        holds.push(hold);
    }
    for pid in checked.pictures() {
        match state.pictures.resolve(&pid.to_string()).await {
            None => {
                return Err(Refusal::new(
                    Reason::PictureNotFound,
                    format!("picture {pid} is not registered (PUT /v1/pictures/{pid})"),
                ))
            }
            Some(Err(e)) if e.kind == ErrorKind::TooLarge => {
                tracing::warn!(picture = pid, error = %e, "picture too large");
                return Err(Refusal::new(
                    Reason::PictureNotFound,
                    format!(
                        "picture {pid} is larger than this node takes (engine.max_image_bytes / max_image_pixels)"
                    ),
                ));
            }
            Some(Err(e)) => {
                tracing::warn!(picture = pid, error = %e, "picture cannot be read");
                return Err(Refusal::new(
                    Reason::PictureNotFound,
                    format!("picture {pid} cannot be read"),
                ));
            }
            Some(Ok(found)) => {
                facts.pictures.insert(pid, found);
            }
        }
    }
    Ok((facts, holds))
}

/// Ends the session once none of its inputs has been live for `max_idle`.
async fn watch_idle(state: AppState, session_id: String, max_idle: Duration) {
    if !crate::api::idle::until_idle(&state.engine, &mix_id(&session_id), max_idle).await {
        return;
    }
    tracing::info!(session = %session_id, ?max_idle, "tencent session idle; ending it");
    let sessions: Arc<Sessions> = state.tencent.sessions.clone();
    let _op = sessions.ops.lock().await;
    sessions.sessions.lock().unwrap().remove(&session_id);
    store::delete_or_log(&*state.engine.store(), kind::TENCENT_SESSION, &session_id);
    let _ = state.engine.delete_mix(&mix_id(&session_id)).await;
}
