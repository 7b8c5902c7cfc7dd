//! Runs the HTTP API over an already bound listener until `shutdown` resolves.

use std::future::Future;

use tokio::net::TcpListener;

use crate::{api, config::Config, engine::Engine};

/// Initialises GStreamer and the statically linked plugins. Safe to call more than once.
pub fn init_media() -> Result<(), crate::Error> {
    crate::engine::init()
}

/// Serves every API dialect on `listener` until `shutdown` completes, then stops every mix.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_engine(listener, Engine::new(config.clone()), config, shutdown).await
}

/// [`serve`] with an engine the caller keeps a handle to (tests inspect it).
pub async fn serve_engine(
    listener: TcpListener,
    engine: Engine,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    init_media().map_err(|e| std::io::Error::other(e.to_string()))?;
    let app = api::app(api::AppState::new(engine.clone(), config));
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    engine.shutdown().await;
    result
}
