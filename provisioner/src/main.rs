//! The `berth` command: dispatches to the dry-run planner, the CSI driver and
//! the controller; installed as `kubectl-berth`, it is a kubectl plugin.

use std::process::ExitCode;

fn main() -> ExitCode {
    berth::cli::main(berth::cli::Cli::parse_invoked())
}
