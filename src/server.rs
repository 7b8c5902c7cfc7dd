//! Runs the HTTP API over an already bound listener until `shutdown` resolves.

use std::{future::Future, sync::Arc, time::Duration};

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

/// The node `config` describes: its store opened (off the async workers), the callback client built once. A
/// cluster node (`[cluster]`) joins the cluster first (waiting for etcd) and keeps its task records in etcd.
pub async fn build(config: Config) -> std::io::Result<api::AppState> {
    let callbacks =
        crate::relay::callback_client(&config.callbacks).map_err(std::io::Error::other)?;
    log_pictures_dir(&config);
    if let Some(cluster_config) = &config.cluster {
        let cluster = crate::cluster::Cluster::start(cluster_config).await;
        tracing::info!(prefix = %cluster_config.prefix, "state store: etcd ({:?}); [store] is not used", cluster_config.etcd);
        let store = Arc::new(crate::cluster::store::EtcdStore::new(
            cluster.member.clone(),
        ));
        let mut parts = NodeParts::new(store);
        parts.ledger = Some(cluster.ledger.clone());
        let mut state =
            api::AppState::new(config, parts, callbacks).map_err(std::io::Error::other)?;
        state.cluster = Some(cluster);
        return Ok(state);
    }
    let store_config = config.store.clone();
    let store = tokio::task::spawn_blocking(move || crate::store::open(&store_config))
        .await
        .map_err(std::io::Error::other)?
        .map_err(std::io::Error::other)?;
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
    match &state.cluster {
        // A cluster node takes its tasks through its reconcile loop: those placed on it, orphans included.
        Some(cluster) => start_cluster(cluster, &state),
        None => {
            let (mixes, relays) = state.restore().await;
            if mixes + relays > 0 {
                tracing::info!(mixes, relays, "recorded tasks taken back");
            }
        }
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
    let cluster = state.cluster.clone();
    let tasks: Arc<dyn crate::cluster::Tasks> = Arc::new(api::cluster::NodeTasks(state.clone()));
    let drain_timeout = state
        .config
        .get()
        .cluster
        .as_ref()
        .map_or(0, |c| c.drain_timeout_s);
    // The peer address keys the native API's per-client rate limit.
    let app = api::app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let ending = {
        let cluster = cluster.clone();
        async move {
            match &cluster {
                Some(cluster) => {
                    let mut drained = cluster.drained.subscribe();
                    tokio::select! {
                        _ = shutdown => {
                            // A cluster node hands its tasks over before it stops (bounded), serving meanwhile.
                            let deadline = std::time::Instant::now() + Duration::from_secs(drain_timeout);
                            crate::cluster::drain::drain(cluster, &tasks, deadline).await;
                        }
                        _ = async { let _ = drained.wait_for(|d| *d).await; } => {}
                    }
                }
                None => shutdown.await,
            }
            closing.send_replace(true);
        }
    };
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(ending)
        .await;
    relays.shutdown().await;
    engine.shutdown().await;
    if let Some(cluster) = cluster {
        // Outputs have stopped: whatever is left may start elsewhere now.
        cluster.member.leave().await;
    }
    result
}

/// Starts a cluster node's loops: its lease, its fence, and the reconcile loop that runs what it owns.
fn start_cluster(cluster: &Arc<crate::cluster::Cluster>, state: &api::AppState) {
    state.engine.mark_ready();
    let member = cluster.member.clone();
    tokio::spawn(async move { member.run().await });
    let member = cluster.member.clone();
    tokio::spawn(async move { member.watch_fence().await });
    let tasks: Arc<dyn crate::cluster::Tasks> = Arc::new(api::cluster::NodeTasks(state.clone()));
    tokio::spawn(crate::cluster::reconcile::run(
        cluster.clone(),
        tasks,
        state.config.clone(),
    ));
}
