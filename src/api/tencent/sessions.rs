//! Tencent mix sessions, shared by the CGI, API 3.0 and auto-mix: a session id names one mix from its first
//! request to its cancel. Repeating a request with the same session and output id updates the running mix; a
//! list with only the background ends it; all inputs gone for `tencent.idle_end_s` ends it too.

use std::{sync::Arc, time::Duration};

use super::{
    codes::{Reason, Refusal},
    request::{Dialect, MixRequest},
    translate::{self, Facts, Kind},
};
use crate::{
    api::{registry::TaskRegistry, AppState},
    engine::{Engine, SourceHold},
    error::ErrorKind,
    events::TaskRef,
    model::Source,
    store::Store,
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
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SessionRecord {
    owner: Owner,
    /// The output stream id, fixed for the session's life (-508 otherwise).
    output_id: String,
}

/// What a start request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Started,
    Updated,
    /// The list held only the background: the session ended.
    Ended,
}

/// The record kind of Tencent sessions.
const KIND: &str = "tencent_session";

/// Running sessions, in the dialects' one [`TaskRegistry`] shape (which ends a session whose inputs have all
/// been gone for `tencent.idle_end_s`, and forgets one whose mix was deleted elsewhere).
pub struct Sessions {
    registry: Arc<TaskRegistry<SessionRecord>>,
    idle: Duration,
}

fn refusal_of(e: crate::error::Error) -> Refusal {
    match e.kind {
        ErrorKind::Invalid => Refusal::new(Reason::Parameter, e.message),
        ErrorKind::Conflict => Refusal::new(Reason::OutputInUse, e.message),
        // Overtaken by a later request for the same session: the caller retries, as after an internal error.
        ErrorKind::State => Refusal::new(Reason::Internal, e.message),
        ErrorKind::LimitExceeded => Refusal::new(Reason::Limit, e.message),
        ErrorKind::Unavailable | ErrorKind::TooLarge => {
            Refusal::new(Reason::PictureNotFound, e.message)
        }
        ErrorKind::NotFound | ErrorKind::Internal => {
            Refusal::new(Reason::Internal, "mixing failed; retry later")
        }
    }
}

impl Sessions {
    pub fn new(store: Arc<dyn Store>, engine: Engine, idle: Duration) -> Self {
        Self {
            registry: TaskRegistry::new("tencent session", KIND, store, engine),
            idle,
        }
    }

    /// Checks a request against the running sessions: `Ok(true)` when `session` exists (and `owner` may change
    /// it), `Ok(false)` when it may be created.
    fn check(&self, session: &str, output_id: &str, owner: &Owner) -> Result<bool, Refusal> {
        if let Some(s) = self.registry.get(session) {
            if &s.owner != owner {
                return Err(Refusal::new(
                    Reason::OutputInUse,
                    format!("session {session:?} belongs to another application"),
                ));
            }
            if s.output_id != output_id {
                return Err(Refusal::new(
                    Reason::SessionOutput,
                    format!(
                        "session {session:?} publishes {:?}, not {output_id:?}",
                        s.output_id
                    ),
                ));
            }
            return Ok(true);
        }
        if let Some((other, _)) = self.registry.find(|_, s| s.output_id == output_id) {
            return Err(Refusal::new(
                Reason::OutputInUse,
                format!("output stream {output_id:?} is already the output of session {other:?}"),
            ));
        }
        Ok(false)
    }

    /// Starts or updates a session. Inputs are found and pictures fetched before the session's lock is taken;
    /// the checks are made again under it.
    pub async fn start(
        &self,
        state: &AppState,
        req: &MixRequest,
        dialect: Dialect,
        owner: Owner,
    ) -> Result<Applied, Refusal> {
        let checked = translate::check(req, dialect)?;
        if checked.output_type == 0 {
            let out = crate::engine::resolve_output(
                &crate::model::Target::StreamId(checked.output_id.clone()),
                &state.config.get().egress,
            );
            let input = crate::engine::resolve_input(
                &Source::StreamId(checked.output_id.clone()),
                &state.config.get().ingest,
            );
            if out == input {
                return Err(Refusal::new(
                    Reason::OutputType,
                    "output type 0 would publish the mix onto its own input: this server's ingest and egress URLs are the same",
                ));
            }
        }
        let session = checked.session_id.clone();
        let existing = self.check(&session, &checked.output_id, &owner)?;
        let only_background =
            checked.inputs.len() == 1 && !(checked.allow_copy && checked.output_type == 1);
        if only_background {
            let _lock = self.registry.lock(&session).await;
            if self.check(&session, &checked.output_id, &owner)? {
                self.end(&state.engine, &session, "ended").await?;
                tracing::info!(%session, "tencent session ended: only the background is left");
                return Ok(Applied::Ended);
            }
            return Err(Refusal::new(
                Reason::TooFewInputs,
                "a mix needs at least two inputs (a list with only the background ends a running session)",
            ));
        }

        let mix = mix_id(&session);
        // A full node says so at once, before inputs are probed.
        if !existing {
            state
                .engine
                .check_capacity(&mix)
                .map_err(|e| Refusal::new(Reason::Limit, e.message))?;
        }
        let (facts, holds) = learn_facts(state, &checked).await?;
        let spec = translate::build(&checked, &facts)?;
        let prepared = state
            .engine
            .prepare_mix(&mix, spec, state.config.get().engine.max_image_bytes)
            .await
            .map_err(refusal_of)?;
        let _lock = self.registry.lock(&session).await;
        let existing = self.check(&session, &checked.output_id, &owner)?;
        state
            .engine
            .commit_mix(prepared)
            .await
            .map_err(refusal_of)?;
        drop(holds);
        if existing {
            return Ok(Applied::Updated);
        }
        self.registry
            .put(
                &session,
                SessionRecord {
                    owner,
                    output_id: checked.output_id.clone(),
                },
                TaskRef::Mix(mix),
                Some(self.idle),
            )
            .await;
        tracing::info!(%session, output = %checked.output_id, "tencent session started");
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
        let _lock = self.registry.lock(session_id).await;
        let session = self
            .registry
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
        self.end(engine, session_id, "cancelled").await?;
        tracing::info!(session = %session_id, "tencent session cancelled");
        Ok(())
    }

    /// Whether a session exists (and who owns it).
    pub fn owner_of(&self, session_id: &str) -> Option<Owner> {
        self.registry.get(session_id).map(|s| s.owner)
    }

    /// Takes back the sessions recorded before a restart whose mixes the engine knows.
    pub async fn adopt(&self, task: &TaskRef) {
        if let Some(id) = task.mix().and_then(|m| m.strip_prefix("tencent-")) {
            let idle = self.idle;
            self.registry.adopt(id, task.clone(), |_| Some(idle)).await;
        }
    }

    pub fn release(&self, task: &TaskRef) {
        self.registry.release(task);
    }

    pub async fn restore(&self, engine: &Engine) {
        let idle = self.idle;
        self.registry
            .restore(
                |id, _| TaskRef::Mix(mix_id(id)),
                |_| Some(idle),
                |task| engine.get_mix(task.id()).is_some(),
            )
            .await;
    }

    /// Ends a session: its mix, then its record (under the session's lock).
    async fn end(&self, engine: &Engine, session_id: &str, reason: &str) -> Result<(), Refusal> {
        match engine.delete_mix_because(&mix_id(session_id), reason).await {
            Ok(()) => {}
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(refusal_of(e)),
        }
        self.registry.remove(session_id).await;
        Ok(())
    }
}

/// Finds every input stream (waiting up to `tencent.input_check_ms` for each, in parallel) and every picture.
async fn learn_facts(
    state: &AppState,
    checked: &translate::Checked,
) -> Result<(Facts, Vec<SourceHold>), Refusal> {
    let wait = Duration::from_millis(state.config.get().tencent.input_check_ms);
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
