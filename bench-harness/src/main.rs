//! `ringmq-bench`: the load generator for ringmq and any other MQTT broker.
//!
//! # Layout
//! - `cli`: the emqtt-bench-style command line and its translation into a [`spec::RunSpec`].
//! - `plan`: connections over worker processes, broker hosts and source addresses.
//! - `parent`: starts the workers, drives the phases, merges and prints the results.
//! - `engine`: one worker process, an epoll loop of MQTT client connections (`engine/client`).
//! - `wire`: the parent/worker pipe protocol; `stats`: counters, HDR histograms, CPU time;
//!   `report`: loss and rates, table and JSON.
//! - `nullbroker`: a stand-in broker (sink and source) for measuring the harness itself.
//! - `pace` (rate schedules), `seqtrack` (loss/order per stream), `payload` (timing header),
//!   `pattern` (`%i`/`%c` topics).
//!
//! It must never be the bottleneck of what it measures: its own CPU per message is in every
//! result (docs/harness.md says how much load one core of it drives).

mod cli;
mod engine;
mod nullbroker;
mod pace;
mod parent;
mod pattern;
mod payload;
mod plan;
mod report;
mod seqtrack;
mod spec;
mod stats;
mod wire;

use anyhow::{Context, Result};
use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    if let Err(e) = real_main() {
        eprintln!("ringmq-bench: {e:#}");
        std::process::exit(2);
    }
}

fn real_main() -> Result<()> {
    let cli = cli::Cli::parse();
    if let cli::Cmd::Worker(w) = &cli.cmd {
        let spec: spec::RunSpec = serde_json::from_str(&w.spec).context("worker spec")?;
        return engine::run(spec, w.index);
    }
    if let cli::Cmd::NullBroker(a) = &cli.cmd {
        return nullbroker::run(&a.listen, a.size);
    }
    let (spec, phases) = cli::build(&cli.cmd)?;
    let command = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    parent::run(spec, phases, command)
}
