//! Runs the HTTP API over an already bound listener until `shutdown` resolves.

use std::{future::Future, time::Instant};

use tokio::net::TcpListener;

use crate::{api, config::Config, engine::Engine};

/// Initialises GStreamer and the statically linked plugins. Safe to call more than once.
pub fn init_media() -> Result<(), crate::Error> {
    crate::engine::init()
}

/// Opens the configured state store, resumes the tasks recorded in it, and serves every API dialect on
/// `listener` until `shutdown` completes; then ends every mix and relay cleanly, leaving them recorded.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let store = crate::store::open(&config.store).map_err(std::io::Error::other)?;
    serve_engine(
        listener,
        Engine::with_store(config.clone(), store),
        config,
        shutdown,
    )
    .await
}

/// [`serve`] with an engine the caller keeps a handle to (tests inspect it); relay projects are recorded in
/// the engine's store.
pub async fn serve_engine(
    listener: TcpListener,
    engine: Engine,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    init_media().map_err(|e| std::io::Error::other(e.to_string()))?;
    let state = api::AppState::new(engine.clone(), config);
    // Before the first request is served, so no request races a restored task; connections wait in the
    // listener's backlog meanwhile.
    let began = Instant::now();
    let mixes = engine.restore().await;
    let relays = state.relays.restore().await;
    state.restore_dialects();
    if mixes + relays > 0 {
        tracing::info!(
            mixes,
            relays,
            ms = began.elapsed().as_millis() as u64,
            "recorded tasks resumed"
        );
    }
    let relays = state.relays.clone();
    // The peer address keys the native API's per-client rate limit.
    let app = api::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    relays.shutdown().await;
    engine.shutdown().await;
    result
}
