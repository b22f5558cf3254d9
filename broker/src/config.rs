//! ringmq's configuration: the typed [`Config`] read from TOML, its embedded defaults, and the
//! parse pipeline (TOML syntax, then unknown keys, then value types). Range and cross-key
//! checks live in `config_validate`, the key list with docs and hints in `config_schema`.
//!
//! Parsing never validates ranges: flags are merged after the file (`cli::effective_config`), so
//! a bad value in the file may still be overridden by a flag. Call [`Config::validate`] on the
//! merged result. This module reads at most the one file it is given; it never logs or exits.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config_schema;

/// The MQTT port bound when no listener is configured.
pub const DEFAULT_PORT: u16 = 1883;

/// The most shards a broker can run: the route table keeps each filter's destination shards
/// in a 256-bit set.
pub const MAX_SHARDS: u32 = 256;

/// The whole configuration. `Config::default()` is exactly what an empty file parses to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Number of shards; 0 = one per online CPU (see [`Config::shard_count`]).
    pub shards: u32,
    pub listeners: Vec<ListenerConfig>,
    pub limits: LimitsConfig,
    pub session: SessionConfig,
    pub retained: RetainedConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub sys: SysConfig,
    pub shared: SharedConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            shards: 0,
            listeners: vec![ListenerConfig::default()],
            limits: LimitsConfig::default(),
            session: SessionConfig::default(),
            retained: RetainedConfig::default(),
            auth: AuthConfig::default(),
            log: LogConfig::default(),
            sys: SysConfig::default(),
            shared: SharedConfig::default(),
        }
    }
}

pub use crate::config_listeners::{CertIdentity, ListenerConfig, ListenerKind, DEFAULT_WS_PATH};

/// `[limits]`: per-broker and per-client bounds. Types are as narrow as the protocol field each
/// one feeds (a u16 for what MQTT carries in two bytes); `config_validate` checks lower bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_connections: u32,
    /// Bytes of a whole packet, fixed header included.
    pub max_packet_size: u32,
    /// Outgoing QoS 1/2 window per client (v5: the minimum with the client's Receive Maximum).
    pub max_inflight: u16,
    /// Per session. Online, publishers feeding the queue are paused at 3/4 of it; offline it
    /// is a hard bound, with `offline_queue_policy` choosing what goes.
    pub max_queued_messages: u32,
    /// Which message an offline session with a full queue drops.
    pub offline_queue_policy: QueuePolicy,
    /// Seconds a subscriber may hold publishers back without progress before it is
    /// disconnected (v5: 0x97).
    pub stuck_timeout: u32,
    /// Client QoS 1/2 messages per shard and other shard acknowledged before that shard
    /// took them (0: every such acknowledgement waits for it).
    pub link_credit: u32,
    /// Bytes of unsent output per connection before QoS 0 deliveries to it are dropped.
    pub max_pending_output: u32,
    pub max_subscriptions_per_client: u32,
    pub max_topic_levels: u16,
    /// Seconds; the most keepalive a client may ask for.
    pub max_keepalive: u16,
    /// Bytes of UTF-8.
    pub max_client_id_len: u16,
    /// Incoming QoS 2 messages awaiting PUBREL per client; MQTT 5's advertised Receive Maximum.
    pub receive_maximum: u16,
    /// Topic Alias Maximum advertised, and the most aliases used towards a client; 0 = off.
    pub topic_alias_maximum: u16,
    /// Seconds a message may wait for delivery (caps Message Expiry Interval); 0 = no limit.
    pub max_message_expiry: u32,
    /// Seconds a new connection has to complete CONNECT (and any AUTH exchange).
    pub connect_timeout: u16,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_connections: 1_000_000,
            max_packet_size: 1_048_576,
            max_inflight: 256,
            max_queued_messages: 1000,
            offline_queue_policy: QueuePolicy::DropOldest,
            stuck_timeout: 30,
            link_credit: 256,
            max_pending_output: 524_288,
            max_subscriptions_per_client: 100,
            max_topic_levels: 32,
            max_keepalive: 65535,
            max_client_id_len: 256,
            receive_maximum: 1024,
            topic_alias_maximum: 64,
            max_message_expiry: 0,
            connect_timeout: 10,
        }
    }
}

/// `[session]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// Seconds; the cap on an MQTT 5 client's Session Expiry Interval.
    pub max_session_expiry: u32,
    pub max_offline_sessions: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_session_expiry: u32::MAX,
            max_offline_sessions: 1_000_000,
        }
    }
}

/// `[retained]`: ceilings over the whole broker (all shards' partitions together).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetainedConfig {
    pub max_messages: u32,
    pub max_bytes: u64,
}

impl Default for RetainedConfig {
    fn default() -> Self {
        RetainedConfig {
            max_messages: 1_000_000,
            max_bytes: 1 << 30,
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Clients without a username may connect. Not set: true while no password file is
    /// configured, false with one (`anonymous_allowed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_anonymous: Option<bool>,
    /// Users and their password hashes, in Mosquitto's format (`passwd`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Access rules in Mosquitto's acl_file format (`acl`); none: every client may publish
    /// and subscribe to everything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl_file: Option<PathBuf>,
    /// Banned client ids, usernames and addresses (`bans`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ban_file: Option<PathBuf>,
}

impl AuthConfig {
    /// Whether clients without a username are let in: as set, or true while no
    /// authentication source is configured.
    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous.unwrap_or(self.password_file.is_none())
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A level or a tracing EnvFilter string such as `"info,broker::listener=debug"`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[sys]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SysConfig {
    /// Seconds between `$SYS` updates; 0 disables `$SYS`.
    pub interval: u32,
    /// Publish `$SYS/brokers/<node>/clients/<id>/connected|disconnected` events.
    pub client_events: bool,
    /// Node name in the client event topics; empty = the host name.
    pub node: String,
}

impl Default for SysConfig {
    fn default() -> Self {
        SysConfig {
            interval: 10,
            client_events: false,
            node: String::new(),
        }
    }
}

/// `[shared]`: shared subscriptions `$share/{group}/{filter}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SharedConfig {
    pub strategy: SharedStrategy,
}

/// How a shared subscription group picks the member for each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedStrategy {
    #[default]
    RoundRobin,
    Random,
    Sticky,
    Hash,
}

/// What an offline session whose queue is full drops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueuePolicy {
    #[default]
    DropOldest,
    DropNewest,
}

/// Why a configuration could not be used. Every message names the key and says the fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "TOML syntax error{} at line {line}, column {column}: {message}",
        in_file(file)
    )]
    Syntax {
        file: Option<PathBuf>,
        line: usize,
        column: usize,
        message: String,
    },
    /// Unknown keys, wrong types or values out of range; one [`Problem`] per line.
    #[error("{}", join_lines(.0))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// The report as lines, each complete on its own (for `config error: <line>` output).
    pub fn lines(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid(problems) => problems.iter().map(|p| p.message.clone()).collect(),
            other => vec![other.to_string()],
        }
    }
}

/// One thing wrong with one key. `message` is the whole sentence, key and fix included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key as written, with array indices: `limits.max_inflight`, `listeners[1].kind`.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn in_file(file: &Option<PathBuf>) -> String {
    match file {
        Some(path) => format!(" in {}", path.display()),
        None => String::new(),
    }
}

fn join_lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Parses TOML text: syntax, then unknown keys (all of them reported at once), then types.
    /// Does not check ranges; see [`Config::validate`].
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| syntax_error(text, &e, None))?;
        let unknown = config_schema::unknown_keys(&table);
        if !unknown.is_empty() {
            return Err(ConfigError::Invalid(unknown));
        }
        serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
            let problem = config_schema::type_problem(&table, e.path(), e.inner().message());
            ConfigError::Invalid(vec![problem])
        })
    }

    /// Reads and parses a file (see [`Config::from_toml_str`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml_str(&text).map_err(|e| match e {
            ConfigError::Syntax {
                line,
                column,
                message,
                ..
            } => ConfigError::Syntax {
                file: Some(path.to_owned()),
                line,
                column,
                message,
            },
            other => other,
        })
    }

    /// The number of shards to run: `shards`, or one per online CPU when it is 0 (capped at
    /// [`MAX_SHARDS`]; 1 when the CPU count cannot be read).
    pub fn shard_count(&self) -> usize {
        if self.shards == 0 {
            let cpus = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
            cpus.min(MAX_SHARDS as usize)
        } else {
            self.shards as usize
        }
    }

    /// The configuration as a TOML document that [`Config::from_toml_str`] reads back unchanged.
    pub fn to_toml_string(&self) -> String {
        // Serializing plain structs of integers, strings and addresses cannot fail; an error
        // here is a bug in the types above, not in user input.
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print config: {e}\n"))
    }
}

/// Turns a toml parse error into line/column form (1-based, columns counted in characters).
fn syntax_error(text: &str, err: &toml::de::Error, file: Option<PathBuf>) -> ConfigError {
    let offset = err.span().map_or(0, |s| s.start).min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    ConfigError::Syntax {
        file,
        line,
        column,
        message: err.message().trim().replace('\n', "; "),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
