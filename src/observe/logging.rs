//! The `tracing` subscriber: process logs to stderr, the access log to its own
//! sink, and Pingora's `log` records bridged into the same pipeline.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::sync::Mutex;

use tracing_subscriber::filter::{filter_fn, EnvFilter, LevelFilter};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::prelude::*;

use crate::config::schema::{AccessLogSpec, LogFormat, LogTarget, LoggingSpec};

/// The `tracing` target of access-log events.
pub const ACCESS_TARGET: &str = "access";

/// Installs the global subscriber. Fails when the access-log file cannot be
/// opened or the filter does not parse; both are reported before start-up.
pub fn init(logging: &LoggingSpec, access: &AccessLogSpec) -> Result<(), String> {
    let filter = EnvFilter::try_new(&logging.level)
        .map_err(|e| format!("logging.level: {e}; fix: use a level such as info or debug"))?;
    let max_level = filter.max_level_hint();
    let process_layer = {
        let base = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal());
        let layer = match logging.format {
            LogFormat::Json => base.json().flatten_event(true).boxed(),
            LogFormat::Text => base.boxed(),
        };
        layer
            .with_filter(filter)
            .with_filter(filter_fn(|m| m.target() != ACCESS_TARGET))
    };
    let access_layer = access_writer(access)?.map(|writer| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_writer(writer)
            .with_filter(filter_fn(|m| m.target() == ACCESS_TARGET))
    });
    // `set_global_default` rather than `try_init`: the latter would also install
    // its own `log` bridge with no level ceiling, and the one below would then
    // fail to install.
    // Per-layer filters alone leave every callsite "sometimes" interesting,
    // and `filter_fn` gives no level hint, so the trace spans that h2 opens on
    // every poll and frame were built, entered and closed in the registry on
    // every gRPC call (a fifth of the CPU in a profile of the h2 path). A
    // global ceiling at the most verbose level any layer wants makes those
    // callsites `never`, checked once and then skipped.
    let ceiling = match (max_level, access_layer.is_some()) {
        (Some(level), true) => level.max(LevelFilter::INFO),
        (Some(level), false) => level,
        (None, _) => LevelFilter::TRACE,
    };
    let subscriber = tracing_subscriber::registry()
        .with(ceiling)
        .with(process_layer)
        .with(access_layer);
    tracing::subscriber::set_global_default(subscriber).map_err(|e| format!("logging: {e}"))?;
    // Pingora logs through the `log` crate; route it into tracing. The bridge
    // gets the filter's most verbose level as a ceiling, so the `log::debug!`
    // calls on Pingora's request path stop at a static check instead of being
    // turned into tracing events and then dropped. A second call (tests) finds
    // the bridge already installed, which is fine.
    let _ = tracing_log::LogTracer::builder()
        .with_max_level(log_ceiling(max_level))
        .init();
    Ok(())
}

/// The `log` level that lets through everything `max` (from the filter) may want.
fn log_ceiling(max: Option<LevelFilter>) -> log::LevelFilter {
    match max {
        Some(LevelFilter::OFF) => log::LevelFilter::Off,
        Some(LevelFilter::ERROR) => log::LevelFilter::Error,
        Some(LevelFilter::WARN) => log::LevelFilter::Warn,
        Some(LevelFilter::INFO) => log::LevelFilter::Info,
        Some(LevelFilter::DEBUG) => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}

fn access_writer(spec: &AccessLogSpec) -> Result<Option<BoxMakeWriter>, String> {
    Ok(match spec.target {
        LogTarget::Off => None,
        LogTarget::Stdout => Some(BoxMakeWriter::new(std::io::stdout)),
        LogTarget::Stderr => Some(BoxMakeWriter::new(std::io::stderr)),
        LogTarget::File => {
            let path = spec
                .path
                .as_deref()
                .ok_or("access_log.path: required when target is file; fix: set access_log.path")?;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    format!(
                        "access_log.path: cannot open {path:?} ({e}); fix: create its directory"
                    )
                })?;
            Some(BoxMakeWriter::new(Mutex::new(file)))
        }
    })
}
