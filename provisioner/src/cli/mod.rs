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
    about = "Kubernetes storage engine: binding planner, CSI driver and provisioner",
    // A flag given twice takes its last value, as kubectl's do: a kustomize
    // patch appending to deploy/'s args overrides them.
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// How log lines are written to stderr: `text` for people, `json` (one
    /// object per line) for cluster log pipelines.
    #[arg(long, value_enum, global = true, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show, offline, what a cluster would do with these manifests.
    DryRun(dry_run::DryRunArgs),
    /// Print the full reasoning for one object (`explain pvc NAME -n NS -f PATH`).
    Explain(explain::ExplainArgs),
    /// Run the CSI driver (`csi.berth.dev`) on a unix socket.
    Csi(crate::csi::CsiArgs),
    /// Run the cluster-wide controller (placement, node loss, `--bind`; or
    /// provisioning through one CSI socket with `--csi-endpoint`).
    Controller(crate::controller::ControllerArgs),
    /// Run the node agent: the CSI driver for this node, registered with
    /// its kubelet, provisioning and reclaiming this node's volumes and
    /// publishing its storage capacity.
    Node(Box<crate::agent::AgentArgs>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

/// Where a plan's input comes from: manifests, a live cluster, or both (the
/// manifests then act as if applied on top of the cluster).
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
    /// Manifest file, directory or `-` for standard input (repeatable).
    #[arg(
        short = 'f',
        long = "filename",
        required_unless_present = "from_cluster"
    )]
    pub files: Vec<PathBuf>,
    /// Read the cluster's current objects through the kubeconfig.
    #[arg(long)]
    pub from_cluster: bool,
    /// Kubeconfig for `--from-cluster` (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, requires = "from_cluster")]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ReadError),
    #[error(transparent)]
    Live(#[from] crate::cluster::objects::LiveError),
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Reads and types the input: cluster objects first (oldest first), then
/// the manifests named by `-f`, whose objects replace same-named ones.
pub(crate) fn read_snapshot(input: &InputArgs) -> Result<Snapshot, InputError> {
    let mut docs = Vec::new();
    if input.from_cluster {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(InputError::Runtime)?;
        let (server, objects) = rt.block_on(async {
            let config = crate::cluster::read::config(input.kubeconfig.as_deref()).await?;
            let server = config.cluster_url.to_string();
            let client = kube::Client::try_from(config)
                .map_err(|e| crate::cluster::ReadError::Client(e.to_string()))?;
            let objects = crate::cluster::read(&client, true).await?;
            Ok::<_, crate::cluster::ReadError>((server, objects))
        })?;
        docs = objects
            .documents(&server)
            .map_err(crate::cluster::objects::LiveError::Encode)?;
    }
    if !input.files.is_empty() {
        docs.extend(manifest::load_paths(&input.files).map_err(ManifestError::from)?);
    }
    Ok(manifest::to_snapshot(docs).map_err(ManifestError::from)?)
}

/// Logs go to stderr, filtered by `BERTH_LOG`, else `RUST_LOG`, else the
/// command's default: `warn` for the one-shot commands (their output is the
/// answer), `info` for the services (one line per RPC and per reconcile
/// outcome is what an operator reads in `kubectl logs`).
fn init_logging(command: &Command, format: LogFormat) {
    use std::io::IsTerminal;
    let default = match command {
        Command::DryRun(_) | Command::Explain(_) => "warn",
        Command::Csi(_) | Command::Controller(_) | Command::Node(_) => "info",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        // Colours only for a terminal: `kubectl logs` shows escape codes.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

pub fn main(cli: Cli) -> ExitCode {
    init_logging(&cli.command, cli.log_format);
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
        Command::Node(args) => match crate::agent::run(*args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("berth node: {e}");
                ExitCode::from(1)
            }
        },
    }
}
