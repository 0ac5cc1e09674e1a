//! The `berth` command line: `dry-run`, `explain`, and the services.
//!
//! Exit codes: 0 when the command did its job (a plan was computed, even if
//! claims stay Pending), 2 on bad input or usage, 1 when a service fails.

mod dry_run;
mod explain;
mod output;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::binding::Snapshot;
use crate::manifest::{self, ManifestError};

#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "Kubernetes storage engine: binding planner, CSI driver and provisioner"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show, offline, what a cluster would do with these manifests.
    DryRun(dry_run::DryRunArgs),
    /// Print the full reasoning for one object (`explain pvc NAME -n NS -f PATH`).
    Explain(explain::ExplainArgs),
    /// Run the CSI driver (`csi.berth.dev`) on a unix socket.
    Csi(crate::csi::CsiArgs),
    /// Run the provisioning controller against a cluster.
    Controller(crate::controller::ControllerArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

/// Reads and types the manifests named by `-f`.
pub(crate) fn read_snapshot(files: &[PathBuf]) -> Result<Snapshot, ManifestError> {
    let docs = manifest::load_paths(files)?;
    Ok(manifest::to_snapshot(docs)?)
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn main(cli: Cli) -> ExitCode {
    init_logging();
    match cli.command {
        Command::DryRun(args) => dry_run::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Csi(args) => match crate::csi::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("berth csi: {e}");
                ExitCode::from(1)
            }
        },
        Command::Controller(args) => match crate::controller::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("berth controller: {e}");
                ExitCode::from(1)
            }
        },
    }
}
