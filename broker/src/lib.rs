//! The ringmq broker: configuration, listeners, one glommio executor per shard, and the
//! glue between sockets and the sans-IO shard world.
//!
//! # Layout
//! (modules are listed here as they land)
//! - `config`: the typed `Config` (serde + TOML), embedded defaults, parse pipeline, errors.
//! - `config_listeners`: the `[[listeners]]` entries and their kinds.
//! - `config_schema`: every key with its range, fix hint and doc; unknown-key and type errors.
//! - `config_validate`: `Config::validate`, range and cross-key checks; the log-filter check.
//! - `cli`: the clap `Cli`, defaults < file < flags merging, `--check-config`.
//! - `rlimit`: raise RLIMIT_NOFILE soft to hard at start; warn when below max_connections.
//! - `engine`: one glommio executor per shard, the mesh, listeners, connection tasks, flushing.
//! - `sd_notify`: systemd READY/STOPPING/WATCHDOG notifications, shard heartbeats.
//! - `signals`: SIGINT/SIGTERM handling for a clean stop.
//! - `startup`: turns the validated config into what the shards run with.
//! - `listeners`: what each listener serves (TLS settings from its PEM files, WebSocket path).
//! - `logging`: the tracing subscriber (EnvFilter levels per module, RUST_LOG, text|json).
//! - `passwd`: Mosquitto-format password files; `passwd_cli`: the `ringmq passwd` command.
//! - `authn`: each shard's password check, with its own cache.
//! - `bans`: banned client ids, usernames and addresses (CIDR), with expiry.
//! - `acl`: access rules in Mosquitto's acl_file format, checked per PUBLISH and SUBSCRIBE.

pub mod acl;
#[cfg(feature = "alloc-stats")]
pub mod alloc_stats;
pub mod authn;
pub mod bans;
pub mod cli;
pub mod config;
pub mod config_listeners;
pub mod config_schema;
pub mod config_validate;
pub mod engine;
pub mod listeners;
pub mod logging;
pub mod passwd;
pub mod passwd_cli;
pub mod rlimit;
pub mod sd_notify;
pub mod signals;
pub mod startup;
