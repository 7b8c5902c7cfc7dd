//! The process's log: text or JSON lines on stderr (`[log]`, [`LogConfig`]), a level that can change while the node
//! runs ([`LogHandle::set_level`]), and GStreamer's own warnings and errors forwarded into it
//! ([`crate::media::gstlog`]). docs/operations.md describes what an operator sees.
//!
//! Task ids are fields of their own on every line about one task: `mix` for a mix, `relay` for a relay project
//! (what the metrics' labels and the events' `task.kind` call them too).

use std::sync::{Arc, Mutex};

use tracing_subscriber::{
    filter::LevelFilter, fmt::MakeWriter, layer::SubscriberExt, reload, util::SubscriberInitExt,
    EnvFilter, Layer, Registry,
};

use crate::config::{LogConfig, LogFormat};

/// Changes what the process logs while it runs. Cloned freely (the server keeps one in its state). A handle from
/// [`init`] changes the process's log; a [`LogHandle::detached`] one (in-process servers and tests, which never
/// call [`init`]) only checks and remembers the level.
#[derive(Clone)]
pub struct LogHandle {
    /// The filter of the process's subscriber; `None` when detached.
    reload: Option<reload::Handle<EnvFilter, Registry>>,
    /// The directive in force, as given.
    level: Arc<Mutex<String>>,
    /// Whether `RUST_LOG` chose the level at start.
    from_env: bool,
}

impl std::fmt::Debug for LogHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHandle")
            .field("attached", &self.reload.is_some())
            .field("level", &self.level())
            .field("from_env", &self.from_env)
            .finish()
    }
}

impl Default for LogHandle {
    /// Detached, at `info`.
    fn default() -> Self {
        Self::detached("info")
    }
}

impl LogHandle {
    /// A handle that changes no subscriber: [`LogHandle::set_level`] checks the directive and remembers it.
    pub fn detached(level: &str) -> Self {
        Self {
            reload: None,
            level: Arc::new(Mutex::new(level.to_string())),
            from_env: false,
        }
    }

    /// Makes `directive` (a level, or `target=level` directives: see [`parse_level`]) the process's filter from now
    /// on. An invalid directive changes nothing and is refused with the reason.
    pub fn set_level(&self, directive: &str) -> Result<(), String> {
        let filter = parse_level(directive)?;
        let mut level = self.level.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(reload) = &self.reload {
            reload
                .reload(filter)
                .map_err(|e| format!("the log level cannot be changed: {e}"))?;
        }
        *level = directive.to_string();
        Ok(())
    }

    /// The directive in force (`RUST_LOG`'s when it chose the level at start, until [`LogHandle::set_level`]).
    pub fn level(&self) -> String {
        self.level.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether `RUST_LOG` chose the level at start (instead of `log.level`).
    pub fn from_env(&self) -> bool {
        self.from_env
    }
}

/// Parses a `log.level` directive: a level (`trace`, `debug`, `info`, `warn`, `error`, `off`) or `target=level`
/// directives separated by commas, as `RUST_LOG` takes them (`info,tessera::relay=debug,gstreamer=error`). Stricter
/// than `RUST_LOG` in one way: a bare word must be a level (`RUST_LOG` reads `debgu` as "everything from target
/// `debgu`", which silences the rest).
pub fn parse_level(directive: &str) -> Result<EnvFilter, String> {
    if directive.trim().is_empty() {
        return Err("empty; write a level such as \"info\" (or \"off\")".into());
    }
    for part in directive
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        if !part.contains(['=', '[']) && part.parse::<LevelFilter>().is_err() {
            return Err(format!(
                "{part:?} is not a level (trace, debug, info, warn, error, off); a target takes one too: \
                 \"{part}=debug\""
            ));
        }
    }
    EnvFilter::builder()
        .parse(directive)
        .map_err(|e| format!("{directive:?} cannot be parsed: {e}"))
}

/// Sets up the process's log as `config` says (text or JSON on stderr, its level unless `RUST_LOG` is set) and
/// forwards GStreamer's warnings and errors into it. Call once, first thing after the configuration is loaded;
/// later calls change nothing and return a detached handle.
pub fn init(config: &LogConfig) -> LogHandle {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    // The configured level was checked when the configuration was loaded.
    let configured = || parse_level(&config.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, level, from_env, env_error) = match env {
        Some(env) => match EnvFilter::builder().parse(&env) {
            Ok(filter) => (filter, env, true, None),
            Err(e) => (configured(), config.level.clone(), false, Some((env, e))),
        },
        None => (configured(), config.level.clone(), false, None),
    };
    let (filter, reload) = reload::Layer::new(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (text, json) = match config.format {
        LogFormat::Text => (Some(text_layer(std::io::stderr, ansi)), None),
        LogFormat::Json => (None, Some(json_layer(std::io::stderr))),
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .try_init()
        .is_ok();
    if let Some((env, e)) = env_error {
        tracing::warn!(rust_log = %env, error = %e, level = %config.level, "RUST_LOG cannot be parsed; log.level used");
    }
    crate::media::gstlog::forward();
    if !installed {
        return LogHandle::detached(&level);
    }
    LogHandle {
        reload: Some(reload),
        level: Arc::new(Mutex::new(level)),
        from_env,
    }
}

/// Text lines, as `tracing_subscriber::fmt` writes them; colour codes only when `ansi`.
fn text_layer<S, W>(writer: W, ansi: bool) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi)
}

/// One JSON object per line: `timestamp`, `level`, `target`, `message` and every field of the event at the top
/// level (`mix`, `relay`, `error`, …), and `span` with the current span's fields when there is one.
pub(crate) fn json_layer<S, W>(writer: W) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_ansi(false)
        .with_writer(writer)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use serde_json::Value;

    use super::*;

    /// Everything written, shared with the test.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    impl Buffer {
        fn lines(&self) -> Vec<Value> {
            let text = String::from_utf8(self.0.lock().unwrap().clone()).unwrap();
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect()
        }
    }

    #[test]
    fn json_lines_carry_task_ids_at_the_top_level() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(json_layer(buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let id = "m-1";
            tracing::info!(mix = %id, applied = "started", "mix applied");
            let span = tracing::info_span!("request", action = "start");
            let _in = span.enter();
            tracing::warn!(
                relay = "r-1",
                error = "multi\nline \"quoted\"",
                "relay output failed"
            );
        });
        let lines = buffer.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        let mix = &lines[0];
        assert!(mix.is_object());
        assert_eq!(mix["mix"], "m-1");
        assert_eq!(mix["applied"], "started");
        assert_eq!(mix["message"], "mix applied");
        assert_eq!(mix["level"], "INFO");
        assert_eq!(mix["target"], module_path!());
        assert!(mix["timestamp"].is_string());
        assert!(mix.get("fields").is_none(), "{mix}");
        let relay = &lines[1];
        assert_eq!(relay["relay"], "r-1");
        assert_eq!(relay["error"], "multi\nline \"quoted\"");
        assert_eq!(relay["level"], "WARN");
        assert_eq!(relay["span"]["name"], "request");
        assert_eq!(relay["span"]["action"], "start");
    }

    #[test]
    fn the_level_changes_at_once() {
        let buffer = Buffer::default();
        let (filter, reload) = reload::Layer::new(parse_level("info").unwrap());
        let subscriber = tracing_subscriber::registry()
            .with(filter)
            .with(json_layer(buffer.clone()));
        let handle = LogHandle {
            reload: Some(reload),
            level: Arc::new(Mutex::new("info".into())),
            from_env: false,
        };
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!(n = 1, "hidden");
            tracing::info!(n = 2, "shown");
            handle
                .set_level(&format!("warn,{}=debug", module_path!()))
                .unwrap();
            tracing::debug!(n = 3, "shown");
            tracing::debug!(target: "elsewhere", n = 4, "hidden");
            tracing::info!(target: "elsewhere", n = 5, "hidden");
            assert!(handle.set_level("tessera=loud").is_err());
            tracing::debug!(n = 6, "an invalid level changed nothing");
            handle.clone().set_level("error").unwrap();
            assert_eq!(handle.level(), "error", "clones share the level");
            tracing::warn!(n = 7, "hidden");
        });
        let shown: Vec<_> = buffer.lines().iter().map(|l| l["n"].clone()).collect();
        assert_eq!(shown, [2, 3, 6]);
        // The subscriber is gone (a process's stays until it exits): refused, level unchanged.
        assert!(handle.set_level("info").is_err());
        assert_eq!(handle.level(), "error");
    }

    #[test]
    fn a_detached_handle_checks_and_remembers() {
        let handle = LogHandle::default();
        assert_eq!(handle.level(), "info");
        assert!(!handle.from_env());
        handle.set_level("debug,hyper=info").unwrap();
        assert_eq!(handle.level(), "debug,hyper=info");
        let err = handle.set_level("verbose").unwrap_err();
        assert!(err.contains("verbose"), "{err}");
        assert_eq!(handle.level(), "debug,hyper=info");
    }

    #[test]
    fn levels_are_parsed_strictly() {
        for ok in [
            "info",
            "WARN",
            "off",
            "info,tessera::relay=debug,gstreamer=error",
            "tessera=trace",
            "warn,[request]=debug",
        ] {
            parse_level(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", " ", "debgu", "tessera", "tessera=loud", "info,=x=y"] {
            assert!(parse_level(bad).is_err(), "{bad}");
        }
    }
}
