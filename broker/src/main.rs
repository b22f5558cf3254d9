//! The `ringmq` binary entry point. For now it wires only the command line and
//! `--check-config`; the engine start-up lands here later.

use std::process::ExitCode;

use broker::cli::{run_check_config, Cli};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.check_config {
        return run_check_config(&cli);
    }
    eprintln!("ringmq: engine not built yet");
    ExitCode::FAILURE
}
