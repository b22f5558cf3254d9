//! The `ringmq` binary: parse the command line, load and validate the configuration, raise
//! the open-file limit, start one executor per shard, and wait for a stop signal.

use std::process::ExitCode;

use broker::cli::{config_error_lines, effective_config, run_check_config, Cli};
use clap::Parser;

#[cfg(not(feature = "alloc-stats"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "alloc-stats")]
#[global_allocator]
static GLOBAL: broker::alloc_stats::Counting = broker::alloc_stats::Counting;

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(feature = "alloc-stats")]
    broker::alloc_stats::start_reporter();
    if let Some(broker::cli::Command::Passwd(a)) = &cli.command {
        return broker::passwd_cli::run(a);
    }
    if cli.check_config {
        return run_check_config(&cli);
    }
    let config = match effective_config(&cli) {
        Ok(c) => c,
        Err(e) => {
            for line in config_error_lines(&e) {
                eprintln!("{line}");
            }
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = broker::logging::init(&config.log) {
        eprintln!("ringmq: logging: {e}");
        return ExitCode::FAILURE;
    }
    match broker::rlimit::raise_nofile() {
        Ok(r) => tracing::debug!(
            before = r.before.soft,
            after = r.after.soft,
            "open-file limit"
        ),
        Err(e) => tracing::warn!("could not raise the open-file limit: {e}"),
    }
    let shards = config.shard_count();
    broker::rlimit::warn_if_low(config.limits.max_connections, shards);
    let listeners = match broker::listeners::listens(&config) {
        Ok(l) => l,
        Err(e) => {
            for line in broker::cli::config_error_lines(&e.into()) {
                eprintln!("{line}");
            }
            return ExitCode::FAILURE;
        }
    };
    let sources = match broker::authn::Sources::load(&config) {
        Ok(s) => s,
        Err(e) => {
            for line in config_error_lines(&e.into()) {
                eprintln!("{line}");
            }
            return ExitCode::FAILURE;
        }
    };
    let auth_line = broker::authn::describe(&config, &sources);
    // Each shard gets its own checkers (and caches) over the shared files.
    let installed = sources.clone();
    let setup: broker::engine::ShardSetup =
        std::sync::Arc::new(move |s: &mut shard::Shard| installed.install(s));
    broker::engine::now_ms();
    broker::signals::block();
    let beats = broker::sd_notify::Heartbeats::new(shards);
    let engine = match broker::engine::start(broker::engine::Settings {
        nr: shards,
        listeners: listeners.clone(),
        cfg: broker::startup::shard_config(&config),
        max_connections: config.limits.max_connections as usize,
        heartbeats: beats.clone(),
        sys_interval: config.sys.interval,
        node: config.sys.node.clone(),
        setup,
    }) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ringmq: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    for l in &config.listeners {
        println!(
            "ringmq listening on {}://{}{} ({}, {} shards)",
            l.kind.scheme(),
            l.bind,
            if l.kind.is_ws() {
                l.path.as_deref().unwrap_or(broker::config::DEFAULT_WS_PATH)
            } else {
                ""
            },
            l.kind.as_str(),
            shards
        );
    }
    println!("{auth_line}");
    broker::sd_notify::notify("READY=1");
    broker::sd_notify::start_watchdog(beats);
    broker::signals::wait_for_stop(|| {
        let (reloaded, problems) = broker::listeners::reload_tls(&config, &listeners);
        for p in &problems {
            tracing::error!(
                "SIGHUP: {}; that listener keeps its old certificate",
                p.message
            );
        }
        let (auth_files, auth_problems) = sources.reload(&config);
        for p in &auth_problems {
            tracing::error!("SIGHUP: {p}; the old contents stay in force");
        }
        tracing::info!(
            "SIGHUP received: TLS certificates re-read for {reloaded} listener(s) ({} kept \
             the old ones), {auth_files} auth file(s) re-read ({} kept the old contents); \
             other settings need a restart; every connection stays",
            problems.len(),
            auth_problems.len()
        );
    });
    broker::sd_notify::notify("STOPPING=1");
    tracing::info!("stopping");
    if !engine.stop(std::time::Duration::from_secs(5)) {
        tracing::warn!("some shards did not confirm a clean stop within 5 s");
    }
    drop(engine);
    ExitCode::SUCCESS
}
