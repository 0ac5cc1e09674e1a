//! The `berth` command: dispatches to the dry-run planner, the CSI driver and the controller.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    berth::cli::main(berth::cli::Cli::parse())
}
