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
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
