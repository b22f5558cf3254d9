//! Log set-up: one tracing subscriber writing to stderr (stdout carries the "listening"
//! lines that scripts read), filtered by an EnvFilter built from `log.level` / `--log-level`
//! unless RUST_LOG is set, formatted as text or JSON lines.
//!
//! Quiet by default: at `info` ringmq logs start, stop and trouble, never a line per
//! connection; per-connection and per-packet events belong at `debug` and `trace`. This
//! module only installs the subscriber; it never decides what the rest of the broker logs.

use std::io::IsTerminal;

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};
use crate::config_validate::normalize_log_filter;

/// Which setting chose the filter, for a start-up line that explains an unexpected level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterSource {
    /// `log.level` in the config, or `--log-level`.
    Config,
    /// The RUST_LOG environment variable.
    RustLog,
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error(
        "RUST_LOG = {value:?} is not a valid filter: {why} (unset it or use e.g. RUST_LOG=info)"
    )]
    BadRustLog { value: String, why: String },
    #[error("log.level = {value:?} is not a valid filter: {why}")]
    BadLevel { value: String, why: String },
    #[error("a log subscriber is already installed")]
    AlreadyInstalled,
}

/// The filter from `level`, unless `rust_log` (RUST_LOG's value) is set and not empty.
pub fn make_filter(
    level: &str,
    rust_log: Option<&str>,
) -> Result<(EnvFilter, FilterSource), LoggingError> {
    match rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        Some(value) => EnvFilter::builder()
            .parse(value)
            .map(|f| (f, FilterSource::RustLog))
            .map_err(|e| LoggingError::BadRustLog {
                value: value.to_owned(),
                why: e.to_string(),
            }),
        None => EnvFilter::builder()
            .parse(normalize_log_filter(level))
            .map(|f| (f, FilterSource::Config))
            .map_err(|e| LoggingError::BadLevel {
                value: level.to_owned(),
                why: e.to_string(),
            }),
    }
}

/// The subscriber for `filter` and `format`, writing to `writer`.
pub fn make_subscriber<W>(
    filter: EnvFilter,
    format: LogFormat,
    writer: W,
    ansi: bool,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Box::new(builder.json().finish()),
    }
}

/// Installs the process-wide subscriber (stderr; colours only on a terminal). Call once,
/// before the shards start, with the effective config's `[log]`.
pub fn init(log: &LogConfig) -> Result<FilterSource, LoggingError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (filter, source) = make_filter(&log.level, rust_log.as_deref())?;
    let ansi = std::io::stderr().is_terminal();
    let subscriber = make_subscriber(filter, log.format, std::io::stderr, ansi);
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| LoggingError::AlreadyInstalled)?;
    Ok(source)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::level_filters::LevelFilter;

    use super::*;

    /// A writer that keeps what the subscriber writes, for asserting on log lines.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Captured {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn rust_log_overrides_the_config_level() {
        let (f, src) = make_filter("info", Some("warn")).unwrap();
        assert_eq!(src, FilterSource::RustLog);
        assert_eq!(f.max_level_hint(), Some(LevelFilter::WARN));
        let (f, src) = make_filter("debug", Some("  ")).unwrap();
        assert_eq!(src, FilterSource::Config);
        assert_eq!(f.max_level_hint(), Some(LevelFilter::DEBUG));
        let (f, src) = make_filter("info", None).unwrap();
        assert_eq!(src, FilterSource::Config);
        assert_eq!(f.max_level_hint(), Some(LevelFilter::INFO));
        let (f, _) = make_filter("warn, broker=trace ,", None).unwrap();
        assert_eq!(f.to_string(), "broker=trace,warn");
    }

    #[test]
    fn bad_rust_log_names_itself() {
        let err = make_filter("info", Some("broker=loud")).unwrap_err();
        assert!(matches!(&err, LoggingError::BadRustLog { value, .. } if value == "broker=loud"));
        assert!(err
            .to_string()
            .starts_with("RUST_LOG = \"broker=loud\" is not a valid filter: "));
    }

    #[test]
    fn levels_per_module_filter_by_target() {
        let out = Captured::default();
        let (filter, _) = make_filter("warn,broker::listener=debug", None).unwrap();
        let sub = make_subscriber(filter, LogFormat::Text, out.clone(), false);
        tracing::subscriber::with_default(sub, || {
            tracing::debug!(target: "broker::listener", "accepted");
            tracing::debug!(target: "broker::shard", "routed");
            tracing::info!(target: "broker::shard", "started");
            tracing::warn!(target: "broker::shard", "slow consumer");
        });
        let text = out.text();
        assert!(text.contains("DEBUG broker::listener: accepted"), "{text}");
        assert!(text.contains("WARN broker::shard: slow consumer"), "{text}");
        assert!(!text.contains("routed"), "{text}");
        assert!(!text.contains("started"), "{text}");
        assert_eq!(text.lines().count(), 2, "{text}");
    }

    #[test]
    fn json_format_writes_one_object_per_line() {
        let out = Captured::default();
        let (filter, _) = make_filter("info", None).unwrap();
        let sub = make_subscriber(filter, LogFormat::Json, out.clone(), false);
        tracing::subscriber::with_default(sub, || {
            tracing::info!(target: "broker::main", shards = 4, "ringmq started");
            tracing::debug!(target: "broker::main", "hidden at info");
        });
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "broker::main");
        assert_eq!(v["fields"]["message"], "ringmq started");
        assert_eq!(v["fields"]["shards"], 4);
    }
}
