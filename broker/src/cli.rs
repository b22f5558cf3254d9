//! The `ringmq` command line (clap derive) and how it merges with the config file: embedded
//! defaults < `--config FILE` < flags. Also `--check-config`, kept here so that `main` stays a
//! thin caller. This module owns argument meaning only; it never starts shards or listeners.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use crate::config::{Config, ConfigError, ListenerConfig, ListenerKind, MAX_SHARDS};
use crate::config_validate::check_log_filter;
use crate::rlimit;

/// ringmq: a thread-per-core MQTT 3.1/3.1.1/5.0 broker on io_uring.
///
/// Settings come from the embedded defaults, then the file given with --config, then the
/// flags below (each flag wins over the file). See docs/configuration.md for every key.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "ringmq", version)]
pub struct Cli {
    /// Read settings from FILE (TOML). Unknown keys and bad values stop start-up with a message
    /// naming the key and the fix. Without this flag the embedded defaults apply.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Accept MQTT over TCP on ADDR:PORT, an IP address and port such as 0.0.0.0:1883 or
    /// [::]:1883. Repeat the flag for several addresses. Replaces the TCP listeners of the
    /// config file. Default: 127.0.0.1:1883.
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    pub listen: Vec<SocketAddr>,

    /// Accept MQTT over TLS (1.2 and 1.3) on ADDR:PORT, e.g. 0.0.0.0:8883, with the
    /// certificate of --tls-cert and --tls-key. Repeat the flag for several addresses.
    /// Replaces the TLS listeners of the config file.
    #[arg(long = "tls-listen", value_name = "ADDR:PORT", requires_all = ["tls_cert", "tls_key"])]
    pub tls_listen: Vec<SocketAddr>,

    /// Certificate chain of the --tls-listen listeners (PEM, server certificate first).
    #[arg(long = "tls-cert", value_name = "FILE", requires = "tls_listen")]
    pub tls_cert: Option<PathBuf>,

    /// Private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long = "tls-key", value_name = "FILE", requires = "tls_listen")]
    pub tls_key: Option<PathBuf>,

    /// CA certificates (PEM): with it, clients of the --tls-listen listeners must present a
    /// certificate signed by one of them.
    #[arg(long = "tls-ca", value_name = "FILE", requires = "tls_listen")]
    pub tls_ca: Option<PathBuf>,

    /// Accept MQTT over WebSocket on ADDR:PORT, e.g. 0.0.0.0:8083, at path /mqtt with the
    /// subprotocol mqtt. Repeat the flag for several addresses. Replaces the WebSocket (ws)
    /// listeners of the config file.
    #[arg(long = "ws-listen", value_name = "ADDR:PORT")]
    pub ws_listen: Vec<SocketAddr>,

    /// Number of shards, one executor thread each (0..=256). 0 or absent: one per online CPU.
    /// N may exceed the CPU count; executors are then not pinned to CPUs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=MAX_SHARDS as i64))]
    pub shards: Option<u32>,

    /// Log level (off, error, warn, info, debug, trace) or a filter with levels per module,
    /// e.g. "info,broker::listener=debug". Overrides log.level; the RUST_LOG environment
    /// variable overrides both. Logs go to stderr.
    #[arg(long, value_name = "LEVEL", value_parser = parse_log_level)]
    pub log_level: Option<String>,

    /// Users and password hashes in Mosquitto's format (make one with `ringmq passwd -c FILE
    /// USER` or mosquitto_passwd). Clients with a username must match it. Overrides
    /// auth.password_file. With it, anonymous clients are refused unless --allow-anonymous true.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,

    /// Access rules in Mosquitto's acl_file format: clients may publish and subscribe only
    /// where a rule allows. Overrides auth.acl_file.
    #[arg(long, value_name = "FILE")]
    pub acl_file: Option<PathBuf>,

    /// Let clients without a username in (true) or not (false). Default: true while no
    /// password file is configured, false with one. Overrides auth.allow_anonymous.
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set)]
    pub allow_anonymous: Option<bool>,

    /// Check the configuration and exit: on success print the effective configuration as TOML
    /// on stdout and exit 0; otherwise print every problem on stderr and exit 1. Also reports
    /// the open-file limit the broker would run with.
    #[arg(long)]
    pub check_config: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Commands besides running the broker.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Add, change or delete users of a password file (mosquitto_passwd's options):
    /// `passwd [-c | -D] FILE USER`, `passwd -b FILE USER PASSWORD`, `passwd -U FILE`.
    Passwd(crate::passwd_cli::PasswdArgs),
}

fn parse_log_level(s: &str) -> Result<String, String> {
    check_log_filter(s)
        .map(|()| s.to_owned())
        .map_err(|why| format!("{why}; use a level or a filter like \"info,broker=debug\""))
}

/// True when file listener `l` is of a kind the `kind` flag replaces (the flags make
/// listeners without PROXY protocol).
fn flag_made(l: &ListenerConfig, kind: ListenerKind) -> bool {
    l.kind == kind && !l.proxy_protocol
}

/// The configuration after merging defaults, file and flags, not yet validated.
pub fn merged_config(cli: &Cli) -> Result<Config, ConfigError> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if !cli.listen.is_empty() {
        // --listen speaks for TCP only; listeners of other kinds in the file stay, and so
        // do listeners behind a proxy (`proxy_protocol`), which no flag makes.
        config
            .listeners
            .retain(|l| !flag_made(l, ListenerKind::Tcp));
        let tcp = cli
            .listen
            .iter()
            .map(|&bind| ListenerConfig::new(bind, ListenerKind::Tcp));
        config.listeners.splice(0..0, tcp);
    }
    if !cli.tls_listen.is_empty() {
        // --tls-listen speaks for TLS only, like --listen for TCP.
        config
            .listeners
            .retain(|l| !flag_made(l, ListenerKind::Tls));
        config
            .listeners
            .extend(cli.tls_listen.iter().map(|&bind| ListenerConfig {
                cert: cli.tls_cert.clone(),
                key: cli.tls_key.clone(),
                ca: cli.tls_ca.clone(),
                ..ListenerConfig::new(bind, ListenerKind::Tls)
            }));
    }
    if !cli.ws_listen.is_empty() {
        config.listeners.retain(|l| !flag_made(l, ListenerKind::Ws));
        config.listeners.extend(
            cli.ws_listen
                .iter()
                .map(|&bind| ListenerConfig::new(bind, ListenerKind::Ws)),
        );
    }
    if let Some(f) = &cli.password_file {
        config.auth.password_file = Some(f.clone());
    }
    if let Some(f) = &cli.acl_file {
        config.auth.acl_file = Some(f.clone());
    }
    if let Some(a) = cli.allow_anonymous {
        config.auth.allow_anonymous = Some(a);
    }
    if let Some(shards) = cli.shards {
        config.shards = shards;
    }
    if let Some(level) = &cli.log_level {
        config.log.level.clone_from(level);
    }
    Ok(config)
}

/// The configuration the broker runs with: defaults < file < flags, validated.
pub fn effective_config(cli: &Cli) -> anyhow::Result<Config> {
    let config = merged_config(cli)?;
    config.validate()?;
    Ok(config)
}

/// The lines to print for an [`effective_config`] error, each prefixed `config error: `.
pub fn config_error_lines(err: &anyhow::Error) -> Vec<String> {
    let lines = match err.downcast_ref::<ConfigError>() {
        Some(e) => e.lines(),
        None => vec![format!("{err:#}")],
    };
    lines
        .into_iter()
        .map(|l| format!("config error: {l}"))
        .collect()
}

/// `--check-config`: validate, print the effective configuration as TOML on stdout (exit 0) or
/// every problem on stderr (exit 1). Raises and reports the open-file limit on stderr as the
/// broker would at start, so a low limit shows up before a real start.
pub fn run_check_config(cli: &Cli) -> ExitCode {
    let config = match effective_config(cli) {
        Ok(config) => config,
        Err(err) => {
            for line in config_error_lines(&err) {
                eprintln!("{line}");
            }
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = crate::listeners::listens(&config) {
        for line in config_error_lines(&err.into()) {
            eprintln!("{line}");
        }
        return ExitCode::FAILURE;
    }
    if let Err(err) = crate::authn::Sources::load(&config) {
        for line in config_error_lines(&err.into()) {
            eprintln!("{line}");
        }
        return ExitCode::FAILURE;
    }
    let shards = config.shard_count();
    report_nofile(&config, shards);
    match print_config(&config, cli, shards) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ringmq: cannot write the configuration: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn report_nofile(config: &Config, shards: usize) {
    match rlimit::raise_nofile() {
        Ok(report) => eprintln!("ringmq: {report}"),
        Err(err) => eprintln!("warning: {err}"),
    }
    if let Some(low) = rlimit::check_current(config.limits.max_connections, shards) {
        eprintln!("warning: {low}");
    }
}

fn print_config(config: &Config, cli: &Cli, shards: usize) -> anyhow::Result<()> {
    let source = match &cli.config {
        Some(path) => format!("embedded defaults < {} < flags", path.display()),
        None => "embedded defaults < flags".to_owned(),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "# ringmq effective configuration ({source})")?;
    if config.shards == 0 {
        writeln!(
            out,
            "# shards = 0 runs {shards} shards here (one per online CPU)"
        )?;
    }
    write!(out, "{}", config.to_toml_string())?;
    out.flush().context("flushing stdout")
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("ringmq").chain(args.iter().copied())).unwrap()
    }

    fn write_config(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ringmq-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn no_flags_no_file_is_the_defaults() {
        assert_eq!(effective_config(&cli(&[])).unwrap(), Config::default());
    }

    #[test]
    fn flags_override_the_file_which_overrides_the_defaults() {
        let file = write_config(
            "merge.toml",
            "shards = 3\n[[listeners]]\nbind = \"0.0.0.0:1883\"\n[limits]\nmax_inflight = 8\n\
             [log]\nlevel = \"warn\"\n",
        );
        let path = file.to_str().unwrap();
        let from_file = effective_config(&cli(&["--config", path])).unwrap();
        assert_eq!(from_file.shards, 3);
        assert_eq!(
            from_file.listeners[0].bind,
            "0.0.0.0:1883".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(from_file.limits.max_inflight, 8);
        assert_eq!(
            from_file.limits.max_queued_messages, 1000,
            "default where the file is silent"
        );
        assert_eq!(from_file.log.level, "warn");

        let flagged = effective_config(&cli(&[
            "--config",
            path,
            "--shards",
            "5",
            "--listen",
            "127.0.0.1:2883",
            "--listen",
            "[::1]:2884",
            "--log-level",
            "debug,broker=trace",
        ]))
        .unwrap();
        assert_eq!(flagged.shards, 5);
        let binds: Vec<String> = flagged
            .listeners
            .iter()
            .map(|l| l.bind.to_string())
            .collect();
        assert_eq!(binds, ["127.0.0.1:2883", "[::1]:2884"]);
        assert!(flagged
            .listeners
            .iter()
            .all(|l| l.kind == ListenerKind::Tcp));
        assert_eq!(flagged.log.level, "debug,broker=trace");
        assert_eq!(
            flagged.limits.max_inflight, 8,
            "flags leave other file keys alone"
        );
    }

    #[test]
    fn listen_replaces_only_tcp_listeners_not_behind_a_proxy() {
        let file = write_config(
            "kinds.toml",
            "[[listeners]]\nbind = \"0.0.0.0:1883\"\n[[listeners]]\nbind = \"0.0.0.0:8883\"\nkind = \"tls\"\n\
             [[listeners]]\nbind = \"10.0.0.5:1883\"\nproxy_protocol = true\n",
        );
        let merged = merged_config(&cli(&[
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:1999",
        ]))
        .unwrap();
        let got: Vec<(String, ListenerKind)> = merged
            .listeners
            .iter()
            .map(|l| (l.bind.to_string(), l.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("127.0.0.1:1999".to_owned(), ListenerKind::Tcp),
                ("0.0.0.0:8883".to_owned(), ListenerKind::Tls),
                ("10.0.0.5:1883".to_owned(), ListenerKind::Tcp),
            ]
        );
    }

    #[test]
    fn a_flag_can_mend_a_bad_file_value() {
        let file = write_config("mend.toml", "shards = 999\n");
        let path = file.to_str().unwrap();
        let err = effective_config(&cli(&["--config", path])).unwrap_err();
        assert_eq!(config_error_lines(&err), [
            "config error: shards = 999: must be 0..=256 (0 = one shard per online CPU; 256 is the most the route table's shard set holds)"
        ]);
        assert_eq!(
            effective_config(&cli(&["--config", path, "--shards", "2"]))
                .unwrap()
                .shards,
            2
        );
    }

    #[test]
    fn bad_flag_values_are_refused_by_the_parser() {
        for args in [
            &["--shards", "257"][..],
            &["--shards", "-1"],
            &["--listen", "localhost:1883"],
            &["--listen", "127.0.0.1"],
            &["--log-level", "verbose"],
            &["--frobnicate"],
        ] {
            let argv = std::iter::once("ringmq").chain(args.iter().copied());
            assert!(Cli::try_parse_from(argv).is_err(), "{args:?} was accepted");
        }
        let err = Cli::try_parse_from(["ringmq", "--log-level", "verbose"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"verbose\" is not a level"), "{err}");
    }

    #[test]
    fn help_explains_every_flag() {
        let help = Cli::command().render_long_help().to_string();
        for flag in [
            "--config <FILE>",
            "--listen <ADDR:PORT>",
            "--shards <N>",
            "--log-level <LEVEL>",
            "--check-config",
            "--help",
            "--version",
        ] {
            assert!(help.contains(flag), "help lacks {flag}:\n{help}");
        }
        assert!(help.contains("Repeat the flag for several addresses"));
        assert!(help.contains("RUST_LOG environment variable overrides both"));
        Cli::command().debug_assert();
    }

    #[test]
    fn missing_file_error_names_the_file() {
        let err = effective_config(&cli(&["--config", "/nonexistent/ringmq.toml"])).unwrap_err();
        let lines = config_error_lines(&err);
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0]
                .starts_with("config error: cannot read config file /nonexistent/ringmq.toml: "),
            "{lines:?}"
        );
    }
}
