//! Range and cross-key checks of a parsed [`Config`]: every problem is collected (not just the
//! first) and each names the key, the bad value and the fix. Also the log-filter check shared
//! with the `--log-level` flag. Pure functions: no I/O, no logging.

use std::net::SocketAddr;

use crate::config::{Config, ConfigError, Problem, MAX_SHARDS};
use crate::config_schema::{bad_value, problem};

/// Level names tracing accepts, lowercase.
const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];

impl Config {
    /// Checks every value against its range and the keys against each other. On failure the
    /// error lists every problem found, one per line.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut out = Vec::new();
        // Inclusive ranges, in schema order so the report reads like the file. Upper bounds the
        // field type already enforces are not repeated here.
        let mut range = |key: &str, value: u64, min: u64, max: u64| {
            if !(min..=max).contains(&value) {
                out.push(bad_value(key, &value.to_string()));
            }
        };
        let (l, s, r) = (&self.limits, &self.session, &self.retained);
        range("shards", self.shards.into(), 0, MAX_SHARDS.into());
        range(
            "limits.max_connections",
            l.max_connections.into(),
            1,
            u64::MAX,
        );
        // MQTT frames at most 268,435,455 bytes of remaining length behind a 5-byte header.
        range(
            "limits.max_packet_size",
            l.max_packet_size.into(),
            64,
            268_435_460,
        );
        range("limits.max_inflight", l.max_inflight.into(), 1, u64::MAX);
        range(
            "limits.max_queued_messages",
            l.max_queued_messages.into(),
            1,
            u64::MAX,
        );
        range("limits.stuck_timeout", l.stuck_timeout.into(), 1, u64::MAX);
        range("limits.link_credit", l.link_credit.into(), 0, 1_000_000);
        range(
            "limits.max_pending_output",
            l.max_pending_output.into(),
            4096,
            u64::MAX,
        );
        range(
            "limits.max_subscriptions_per_client",
            l.max_subscriptions_per_client.into(),
            1,
            u64::MAX,
        );
        range(
            "limits.max_topic_levels",
            l.max_topic_levels.into(),
            1,
            u64::MAX,
        );
        range("limits.max_keepalive", l.max_keepalive.into(), 1, u64::MAX);
        range(
            "limits.connect_timeout",
            l.connect_timeout.into(),
            1,
            u64::MAX,
        );
        range(
            "limits.max_client_id_len",
            l.max_client_id_len.into(),
            23,
            u64::MAX,
        );
        range(
            "limits.receive_maximum",
            l.receive_maximum.into(),
            1,
            u64::MAX,
        );
        range(
            "session.max_offline_sessions",
            s.max_offline_sessions.into(),
            1,
            u64::MAX,
        );
        range("retained.max_messages", r.max_messages.into(), 1, u64::MAX);
        // i64::MAX is the largest integer TOML can write; keep what --check-config prints readable.
        range("retained.max_bytes", r.max_bytes, 1, i64::MAX as u64);
        range("sys.interval", self.sys.interval.into(), 0, 86_400);
        if check_log_filter(&self.log.level).is_err() {
            out.push(bad_value("log.level", &quoted(&self.log.level)));
        }
        check_listeners(self, &mut out);

        if out.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(out))
        }
    }
}

fn check_listeners(config: &Config, out: &mut Vec<Problem>) {
    if config.listeners.is_empty() {
        out.push(problem(
            "listeners",
            "[]",
            "at least one listener is needed (add [[listeners]] with bind = \"127.0.0.1:1883\")",
        ));
    }
    for (i, listener) in config.listeners.iter().enumerate() {
        let files = [
            ("cert", &listener.cert),
            ("key", &listener.key),
            ("ca", &listener.ca),
        ];
        let kind = listener.kind;
        for (name, file) in files {
            let key = format!("listeners[{i}].{name}");
            match (kind.is_tls(), file) {
                (true, None) if name != "ca" => out.push(problem(
                    &key,
                    "(missing)",
                    &format!(
                        "a {} listener needs cert and key (PEM files), e.g. \
                         cert = \"/etc/ringmq/server.pem\"",
                        kind.as_str()
                    ),
                )),
                (true, _) | (_, None) => {}
                (false, Some(path)) => out.push(problem(
                    &key,
                    &quoted(&path.display().to_string()),
                    &format!(
                        "only tls and wss listeners take certificate files (this one is \
                         kind = {}; set kind = \"tls\" or \"wss\", or remove the key)",
                        quoted(kind.as_str())
                    ),
                )),
            }
        }
        if let Some(which) = listener.cert_as_username {
            if !kind.is_tls() || listener.ca.is_none() {
                out.push(problem(
                    &format!("listeners[{i}].cert_as_username"),
                    &quoted(match which {
                        crate::config::CertIdentity::Cn => "cn",
                        crate::config::CertIdentity::San => "san",
                    }),
                    "needs client certificates: a tls or wss listener with ca (set ca to the \
                     clients' CA file, or remove the key)",
                ));
            }
        }
        match (&listener.path, kind.is_ws()) {
            (Some(p), false) => out.push(problem(
                &format!("listeners[{i}].path"),
                &quoted(p),
                &format!(
                    "only ws and wss listeners take a path (this one is kind = {}; set \
                     kind = \"ws\" or \"wss\", or remove the key)",
                    quoted(kind.as_str())
                ),
            )),
            (Some(p), true) if !p.starts_with('/') || p.contains(char::is_whitespace) => {
                out.push(problem(
                    &format!("listeners[{i}].path"),
                    &quoted(p),
                    "must be a URL path starting with / and without spaces, e.g. \"/mqtt\"",
                ))
            }
            _ => {}
        }
        let earlier = config
            .listeners
            .iter()
            .take(i)
            .position(|o| overlaps(o.bind, listener.bind));
        if let Some(j) = earlier {
            out.push(problem(
                &format!("listeners[{i}].bind"),
                &quoted(&listener.bind.to_string()),
                &format!(
                    "overlaps listeners[{j}].bind = {} (give each listener its own port)",
                    quoted(&config.listeners[j].bind.to_string())
                ),
            ));
        }
    }
}

/// Two binds collide when they are the same, or one is the wildcard address of the same
/// family on the same port (with SO_REUSEPORT the kernel would then split one port's
/// connections between two listeners instead of refusing the second bind).
fn overlaps(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Accepts a level name or an EnvFilter string whose every directive ends in a level
/// (`info`, `broker=debug`, `info,broker::listener=trace`). A bare word that is not a level is
/// refused: EnvFilter would read `verbose` as "target verbose at trace" and silence the rest,
/// which is never what was meant.
pub fn check_log_filter(filter: &str) -> Result<(), String> {
    if filter.trim().is_empty() {
        return Err("an empty log filter".to_owned());
    }
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = match directive.rsplit_once('=') {
            Some((target, level)) if !target.trim().is_empty() => level,
            Some(_) => return Err(format!("{directive:?} has no target before '='")),
            None => directive,
        };
        if !LEVELS.contains(&level.trim().to_ascii_lowercase().as_str()) {
            return Err(format!("{level:?} is not a level ({})", LEVELS.join(", ")));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(normalize_log_filter(filter))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The filter with blanks around its directives removed: EnvFilter refuses `"warn, broker=debug"`
/// although people write it that way.
pub fn normalize_log_filter(filter: &str) -> String {
    filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

/// A string as TOML writes it, quotes and escapes included.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}
