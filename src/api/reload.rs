//! Reloading the configuration file (SIGHUP, or `POST /v1/admin/reload` with a full token), without touching a
//! running mix or relay.
//!
//! The file is read and checked whole first — parsed, validated, its token file read, its `[callbacks]` CA file
//! loaded — and an invalid file is refused whole: the running configuration stays. Then what can change live
//! changes: limits, rate limits, dialect credentials and their settings, pictures, callbacks, webhooks, tokens and
//! the log level (the next request sees them; running tasks keep what they were started with). What cannot change
//! without a restart — the listen address and body limit, the state store, the ingest and egress settings and
//! the pipeline latency and threads that every running pipeline was built with — is reported and kept.

use std::path::{Path, PathBuf};

use axum::{extract::State, http::StatusCode, response::IntoResponse, routing::post, Json, Router};
use serde::Serialize;

use super::{auth::Tokens, ratelimit::RateLimits, ApiError, AppState};
use crate::config::Config;

pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/admin/reload", post(reload_route))
}

/// What a reload changed and what it kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    /// Sections (or keys) that now have their new values.
    pub changed: Vec<String>,
    /// Keys the file changes that need a restart: their running values were kept.
    pub kept: Vec<String>,
}

/// Keys a reload cannot change: every running pipeline or the listener was built with them.
fn restore_kept(old: &Config, new: &mut Config) -> Vec<String> {
    let mut kept = Vec::new();
    macro_rules! keep {
        ($($field:ident).+, $name:expr) => {
            if old.$($field).+ != new.$($field).+ {
                new.$($field).+ = old.$($field).+.clone();
                kept.push($name.to_string());
            }
        };
    }
    keep!(server.listen, "server.listen");
    keep!(server.max_body_bytes, "server.max_body_bytes");
    keep!(store, "store");
    keep!(cluster, "cluster");
    keep!(ingest, "ingest");
    keep!(egress, "egress");
    keep!(engine.latency_ms, "engine.latency_ms");
    keep!(engine.encoder_threads, "engine.encoder_threads");
    // Left empty, it means the running program, which `tessera serve` filled in at start.
    if new.engine.worker_program.is_empty() {
        new.engine.worker_program = old.engine.worker_program.clone();
    }
    keep!(engine.worker_program, "engine.worker_program");
    keep!(log.format, "log.format");
    kept
}

/// The sections that differ.
fn changed_sections(old: &Config, new: &Config) -> Vec<String> {
    let mut changed = Vec::new();
    macro_rules! section {
        ($($field:ident),+) => {
            $(
                if old.$field != new.$field {
                    changed.push(stringify!($field).to_string());
                }
            )+
        };
    }
    section!(
        server,
        engine,
        zego,
        tencent,
        tencentcloud,
        callbacks,
        webhooks,
        pictures,
        log
    );
    changed
}

/// Everything a new configuration needs that can fail, prepared before anything changes.
struct Prepared {
    config: Config,
    tokens: Tokens,
    callbacks: Option<reqwest::Client>,
}

fn prepare(path: &Path, running: &Config) -> Result<(Prepared, Vec<String>), String> {
    let mut config = Config::load(path).map_err(|e| e.to_string())?;
    let kept = restore_kept(running, &mut config);
    let tokens = Tokens::from_config(&config.server)?;
    let callbacks = if config.callbacks != running.callbacks {
        Some(crate::relay::callback_client(&config.callbacks)?)
    } else {
        None
    };
    Ok((
        Prepared {
            config,
            tokens,
            callbacks,
        },
        kept,
    ))
}

/// Re-reads the configuration file and applies what can change live. `Err`: why the file was refused (the
/// running configuration stays).
pub async fn reload(state: &AppState) -> Result<Reloaded, String> {
    let Some(path) = state.config_file.clone() else {
        return Err("started without a configuration file (--config): nothing to re-read".into());
    };
    // One reload at a time; requests go on meanwhile (they read the configuration without this lock).
    let _one = state.reloading.lock().await;
    let running = state.config.get();
    let (prepared, kept) = {
        let running = running.clone();
        let path: PathBuf = path.clone();
        tokio::task::spawn_blocking(move || prepare(&path, &running))
            .await
            .map_err(|e| e.to_string())??
    };
    // The last check that can fail, and the first change: a level the handle refuses changes nothing. A level
    // RUST_LOG chose at start stays until the file's level changes.
    if prepared.config.log.level != running.log.level {
        state
            .log
            .set_level(&prepared.config.log.level)
            .map_err(|e| format!("log.level: {e}"))?;
    }
    let Prepared {
        config,
        tokens,
        callbacks,
    } = prepared;
    let changed = changed_sections(&running, &config);
    let rates = |c: &Config| {
        (
            c.server.max_requests_per_s,
            c.zego.max_requests_per_s,
            c.tencent.max_requests_per_s,
            c.tencentcloud.max_requests_per_s,
        )
    };
    if rates(&running) != rates(&config) {
        state.rates.set(RateLimits::new(&config));
    }
    state.tokens.set(tokens);
    if config.pictures != running.pictures || config.engine != running.engine {
        state.pictures.reconfigure(
            &config.pictures,
            crate::image::ImageLimits::of(&config.engine),
        );
    }
    if let Some(client) = callbacks {
        state.callbacks.set(client);
    }
    if config.webhooks != running.webhooks || config.callbacks != running.callbacks {
        state.webhooks.reconfigure(
            &config.webhooks,
            (*state.callbacks.get()).clone(),
            &state.events,
        );
    }
    state.config.set(config);
    let done = Reloaded { changed, kept };
    tracing::info!(
        file = %path.display(),
        changed = ?done.changed,
        kept_until_restart = ?done.kept,
        "configuration reloaded"
    );
    Ok(done)
}

/// Re-reads the configuration file and applies what can change live
///
/// Needs a full token when tokens are configured. An invalid file is refused whole (400 `invalid_config`, the
/// reason in the message) and the running configuration stays. `kept` lists the keys the file changes that only
/// a restart applies (listen address, store, ingest, egress, pipeline latency and threads).
#[utoipa::path(
    post,
    path = "/v1/admin/reload",
    operation_id = "reload",
    tag = "health",
    responses(
        (status = 200, description = "reloaded: what changed, what was kept until a restart", body = Reloaded),
        (status = 400, description = "the file was refused (invalid_config); nothing changed", body = super::error::ErrorBody),
        (status = 409, description = "the node was started without a configuration file (wrong_state)", body = super::error::ErrorBody),
        (status = 429, response = super::error::RateLimited),
    )
)]
pub(super) async fn reload_route(State(state): State<AppState>) -> axum::response::Response {
    if state.config_file.is_none() {
        return ApiError::new(
            StatusCode::CONFLICT,
            "wrong_state",
            "the node was started without a configuration file (--config): nothing to re-read",
        )
        .into_response();
    }
    match reload(&state).await {
        Ok(done) => Json(done).into_response(),
        Err(why) => {
            tracing::warn!(error = %why, "configuration reload refused; the running configuration stays");
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_config",
                format!("configuration refused, nothing changed: {why}"),
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_needs_a_restart_is_kept_and_named() {
        let old = Config::default();
        let mut new = Config::default();
        new.server.listen = "127.0.0.1:9999".parse().unwrap();
        new.store.path = "elsewhere.db".into();
        new.engine.max_inputs = 3;
        new.ingest.retry_max_ms = 1;
        let kept = restore_kept(&old, &mut new);
        assert_eq!(kept, ["server.listen", "store", "ingest"]);
        assert_eq!(new.server.listen, old.server.listen);
        assert_eq!(new.store, old.store);
        assert_eq!(new.ingest, old.ingest);
        assert_eq!(new.engine.max_inputs, 3);
        assert_eq!(changed_sections(&old, &new), ["engine"]);
    }
}
