//! Runs the HTTP API over an already bound listener until `shutdown` resolves.

use std::future::Future;

use tokio::net::TcpListener;

use crate::{api, config::Config, logging::LogHandle, node::NodeParts};

/// Initialises GStreamer and checks that the elements mixes need are installed. Safe to call more than once.
pub fn init_media() -> Result<(), crate::Error> {
    crate::engine::init()
}

/// Opens the configured state store, wires the node around it, resumes the tasks recorded in it, and serves
/// every API dialect on `listener` until `shutdown` completes; then ends every mix and relay cleanly, leaving
/// them recorded. `log` changes the process's log level (kept in the state; see [`crate::logging`]).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    log: LogHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = build(config).await?.with_log(log);
    serve_state(listener, state, shutdown).await
}

/// The node `config` describes: its store opened (off the async workers), the callback client built once.
pub async fn build(config: Config) -> std::io::Result<api::AppState> {
    let store_config = config.store.clone();
    let store = tokio::task::spawn_blocking(move || crate::store::open(&store_config))
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
    let callbacks =
        crate::relay::callback_client(&config.callbacks).map_err(std::io::Error::other)?;
    log_pictures_dir(&config);
    api::AppState::new(config, NodeParts::new(store), callbacks).map_err(std::io::Error::other)
}

/// Says at start where image files named in native requests may be (`engine.pictures_dir`).
fn log_pictures_dir(config: &Config) {
    match crate::image::pictures_dir(&config.engine) {
        None => tracing::info!(
            "pictures folder: none (engine.pictures_dir is empty): the native API takes image URLs, no local files"
        ),
        Some(folder) => match std::fs::canonicalize(&folder) {
            Ok(real) if real.is_dir() => tracing::info!("pictures folder: {}", real.display()),
            _ => tracing::warn!(
                "pictures folder {} is not a folder that exists: image files named in requests cannot be read",
                folder.display()
            ),
        },
    }
}

/// Serves `state` (tests build one and keep it to inspect the engine). The recorded tasks are taken back first
/// (reading the store only); their pipelines start in the background while the API already answers, and
/// "tessera ready" is logged, and `/readyz` turns 200, once each has started or failed to.
pub async fn serve_state(
    listener: TcpListener,
    state: api::AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    init_media().map_err(|e| std::io::Error::other(e.to_string()))?;
    let (mixes, relays) = state.restore().await;
    if mixes + relays > 0 {
        tracing::info!(mixes, relays, "recorded tasks taken back");
    }
    let engine = state.engine.clone();
    let addr = listener.local_addr()?;
    tokio::spawn({
        let engine = engine.clone();
        async move {
            engine.until_ready().await;
            tracing::info!(listen = %addr, "tessera ready");
        }
    });
    let relays = state.relays.clone();
    let closing = state.closing.clone();
    // The peer address keys the native API's per-client rate limit.
    let app = api::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            closing.send_replace(true);
        })
        .await;
    relays.shutdown().await;
    engine.shutdown().await;
    result
}
