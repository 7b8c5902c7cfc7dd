//! The `tessera` binary: `tessera serve [--config FILE]`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use tessera::Config;

#[derive(Parser)]
#[command(version, about = "Tessera: self-hosted real-time media mixing")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the HTTP API and the mixing engine.
    Serve {
        /// TOML configuration file; without it the embedded defaults are used (docs/configuration.md).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Prints the default configuration, documented.
    DefaultConfig,
    /// A worker process of `tessera serve` (started by it, never by hand: it talks over descriptor 3).
    #[command(hide = true)]
    Worker,
    /// Drains a cluster node: it takes no new task, hands its tasks to other nodes one at a time, and exits
    /// once it has none. Waits until it has exited, printing how far it is.
    Drain {
        /// The node's API (default: from `--config`'s `server.listen`, else http://127.0.0.1:8080).
        #[arg(long)]
        url: Option<String>,
        /// A bearer token of the node's API (default: the first of `--config`'s `server.api_tokens`, or
        /// $TESSERA_TOKEN).
        #[arg(long)]
        token: Option<String>,
        /// The node's configuration file, to find its address and token.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Drain { url, token, config } => drain(url, token, config),
        Command::Worker => tessera::worker::child::main(),
        Command::DefaultConfig => {
            print!("{}", include_str!("../tessera.example.toml"));
            std::process::ExitCode::SUCCESS
        }
        Command::Serve { config: file } => {
            let config = match &file {
                Some(path) => Config::load(path),
                None => {
                    Config::from_toml(include_str!("../tessera.example.toml"), "embedded default")
                }
            };
            // Loaded before the log is set up (its format and level are in it): a configuration that cannot be
            // loaded is said on stderr as it is.
            let config = match config {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("tessera: {e}");
                    return std::process::ExitCode::from(2);
                }
            };
            // Mixes run in worker processes of this very program unless the configuration names another.
            let mut config = config;
            if config.engine.worker_program.is_empty() {
                if let Ok(exe) = std::env::current_exe() {
                    config.engine.worker_program = exe.display().to_string();
                }
            }
            // Logs go to stderr (stdout is for what a command prints), as docs/operations.md says.
            let log = tessera::logging::init(&config.log);
            let json = config.log.format == tessera::config::LogFormat::Json;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            match runtime.block_on(run(config, file, log)) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    if json {
                        // Every line on stderr stays one JSON object.
                        tracing::error!(error = %e, "tessera stopped");
                    } else {
                        eprintln!("tessera: {e}");
                    }
                    std::process::ExitCode::FAILURE
                }
            }
        }
    }
}

async fn run(
    config: Config,
    file: Option<PathBuf>,
    log: tessera::logging::LogHandle,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.server.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, "listening; taking back recorded tasks");
    let mut state = tessera::server::build(config).await?.with_log(log);
    state.config_file = file;
    tokio::spawn(reload_on_sighup(state.clone()));
    tessera::server::serve_state(listener, state, shutdown_signal()).await
}

/// Every SIGHUP re-reads the configuration file (as `POST /v1/admin/reload` does); a refused file is logged and
/// the running configuration stays.
async fn reload_on_sighup(state: tessera::api::AppState) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("no SIGHUP handler: reload with POST /v1/admin/reload");
        return;
    };
    while hup.recv().await.is_some() {
        if let Err(why) = tessera::api::reload::reload(&state).await {
            tracing::warn!(error = %why, "configuration reload refused; the running configuration stays");
        }
    }
}

/// Resolves on the first SIGINT or SIGTERM; a second one exits at once.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down; a second signal exits at once");
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        std::process::exit(130);
    });
}

/// `tessera drain`: asks the node to drain, then follows it until it has exited.
fn drain(
    url: Option<String>,
    token: Option<String>,
    file: Option<PathBuf>,
) -> std::process::ExitCode {
    let config = match file.as_deref().map(Config::load).transpose() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tessera: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let url = url
        .or_else(|| {
            config.as_ref().map(|c| {
                let listen = c.server.listen;
                let host = if listen.ip().is_unspecified() {
                    "127.0.0.1".to_string()
                } else {
                    listen.ip().to_string()
                };
                format!("http://{host}:{}", listen.port())
            })
        })
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let url = url.trim_end_matches('/').to_string();
    let token = token
        .or_else(|| std::env::var("TESSERA_TOKEN").ok())
        .or_else(|| {
            config
                .as_ref()
                .and_then(|c| c.server.api_tokens.first().map(|t| t.expose().to_string()))
        });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(follow_drain(&url, token.as_deref())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera drain: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn follow_drain(url: &str, token: Option<&str>) -> Result<(), String> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let with_token = |r: reqwest::RequestBuilder| match token {
        Some(t) => r.bearer_auth(t),
        None => r,
    };
    let answer = with_token(http.post(format!("{url}/v1/cluster/drain")))
        .send()
        .await
        .map_err(|e| format!("{url} did not answer: {e}"))?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap_or_default();
    if status != reqwest::StatusCode::ACCEPTED {
        return Err(format!("{url} refused the drain ({status}): {body}"));
    }
    let node = body["node"].as_str().unwrap_or("?").to_string();
    println!("{node}: draining, {} tasks to hand over", body["remaining"]);
    let mut last = None;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let view = match with_token(http.get(format!("{url}/v1/cluster")))
            .send()
            .await
        {
            Ok(r) => r.json::<serde_json::Value>().await.unwrap_or_default(),
            // The node has exited: drained.
            Err(_) => break,
        };
        let left = view["tasks"].as_array().map_or(0, |t| {
            t.iter().filter(|t| t["node"] == node.as_str()).count()
        });
        if last != Some(left) {
            println!("{node}: {left} tasks left");
            last = Some(left);
        }
    }
    println!("{node}: drained and stopped");
    Ok(())
}
