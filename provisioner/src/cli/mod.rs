//! The `berth` command line: `dry-run`, `explain`, and the services.
//!
//! Exit codes: 0 when the command did its job (a plan was computed, even if
//! claims stay Pending), 2 on bad input or usage, 1 when a service fails.
//!
//! Installed (or linked) as `kubectl-berth`, the binary is a kubectl plugin:
//! kubectl runs it for `kubectl berth …` with the arguments after `berth`
//! (kubectl refuses flags placed before a plugin's name, so `--kubeconfig`,
//! `--context` and `-n` are berth's own). It then calls itself `kubectl
//! berth` and reads the live cluster unless given only `-f` files.

mod dry_run;
mod explain;
mod output;
mod table;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

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

/// The file name kubectl finds a plugin by: `kubectl berth` runs the
/// first `kubectl-berth` on `$PATH`.
pub const PLUGIN_NAME: &str = "kubectl-berth";

impl Cli {
    /// Parses the process's own arguments (see [`Cli::parse_args`]).
    pub fn parse_invoked() -> Cli {
        Self::parse_args(std::env::args_os())
    }

    /// Parses `args` (`args[0]` being the program), as `kubectl berth`
    /// when the program's file name is [`PLUGIN_NAME`]: then help and usage
    /// name the command the user typed, and the live cluster is the default
    /// input. Exits with clap's message and code 2 on a usage error.
    pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Cli {
        let args: Vec<OsString> = args.into_iter().collect();
        // kubectl execs a plugin with its full path as argv[0]; a symlink,
        // hard link or copy all keep the name they were installed under.
        let plugin = args
            .first()
            .and_then(|a| Path::new(a).file_name())
            .is_some_and(|n| n == PLUGIN_NAME);
        let mut command = Cli::command();
        if plugin {
            command = command.name(PLUGIN_NAME).bin_name("kubectl berth");
        }
        let matches = command.clone().get_matches_from(args);
        let mut cli =
            Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.format(&mut command).exit());
        if plugin {
            match &mut cli.command {
                Command::DryRun(a) => a.input.cluster_by_default = true,
                Command::Explain(a) => a.input.cluster_by_default = true,
                Command::Csi(_) | Command::Controller(_) | Command::Node(_) => {}
            }
        }
        cli
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what a cluster would do with these manifests, or with its own
    /// objects (`--from-cluster`; the default as `kubectl berth`).
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
    /// Manifest file, directory or `-` for standard input (repeatable). As
    /// `kubectl berth`, `-f` alone reads only the files, like kubectl's own
    /// `-f`; add `--from-cluster` to lay them over the cluster.
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<PathBuf>,
    /// Read the cluster's current objects through the kubeconfig (the
    /// default as `kubectl berth` when no `-f` is given).
    #[arg(long)]
    pub from_cluster: bool,
    /// Kubeconfig of the cluster to read (default: $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context of the cluster to read (default: its current-context).
    #[arg(long)]
    pub context: Option<String>,
    /// Set when invoked as `kubectl berth`: the cluster is read unless only
    /// files are given.
    #[arg(skip)]
    pub cluster_by_default: bool,
}

impl InputArgs {
    /// Whether the live cluster is read; an error when there is no input
    /// at all, or a flag choosing a cluster that would not be read.
    fn reads_cluster(&self) -> Result<bool, InputError> {
        let cluster = self.from_cluster || (self.cluster_by_default && self.files.is_empty());
        if !cluster {
            if self.files.is_empty() {
                return Err(InputError::NoInput);
            }
            // Silently planning only the files would answer a question
            // about a cluster the user did not ask.
            if self.kubeconfig.is_some() {
                return Err(InputError::ClusterFlagWithoutCluster("--kubeconfig"));
            }
            if self.context.is_some() {
                return Err(InputError::ClusterFlagWithoutCluster("--context"));
            }
        }
        Ok(cluster)
    }
}

/// What the input holds, and the namespace a name without one means: the
/// kubeconfig context's namespace when a cluster is read (as kubectl), else
/// `default`.
pub(crate) struct Input {
    pub snapshot: Snapshot,
    pub namespace: String,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum InputError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ReadError),
    /// A request to the chosen cluster failed: the message names the
    /// server (and context) so a user sees which cluster was tried.
    #[error("reading the cluster at {server}{context}: {source}")]
    ClusterAt {
        server: String,
        /// ` (context NAME)` when `--context` chose it, else empty.
        context: String,
        // Boxed: a kube error is large, and every InputError pays for it.
        #[source]
        source: Box<crate::cluster::ReadError>,
    },
    #[error(transparent)]
    Live(#[from] crate::cluster::objects::LiveError),
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(
        "no input: give manifests with -f/--filename PATH, or --from-cluster to read the live cluster"
    )]
    NoInput,
    #[error(
        "{0} chooses the cluster to read, but only -f files are read: add --from-cluster to lay them over the cluster"
    )]
    ClusterFlagWithoutCluster(&'static str),
}

/// Reads and types the input (see [`read_input`]).
pub(crate) fn read_snapshot(input: &InputArgs) -> Result<Snapshot, InputError> {
    Ok(read_input(input)?.snapshot)
}

/// Reads and types the input: cluster objects first (oldest first), then
/// the manifests named by `-f`, whose objects replace same-named ones.
pub(crate) fn read_input(input: &InputArgs) -> Result<Input, InputError> {
    let mut docs = Vec::new();
    let mut namespace = "default".to_string();
    if input.reads_cluster()? {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(InputError::Runtime)?;
        let (server, context_namespace, objects) = rt.block_on(async {
            // The kubeconfig is resolved before any request, so a bad
            // file or context is reported as such, not as a failed LIST.
            let config = crate::cluster::read::config_for(
                input.kubeconfig.as_deref(),
                input.context.as_deref(),
            )
            .await?;
            let server = config.cluster_url.to_string();
            let context_namespace = config.default_namespace.clone();
            let at = |source| InputError::ClusterAt {
                server: server.clone(),
                context: input
                    .context
                    .as_ref()
                    .map(|c| format!(" (context {c})"))
                    .unwrap_or_default(),
                source: Box::new(source),
            };
            let client = kube::Client::try_from(config)
                .map_err(|e| at(crate::cluster::ReadError::Client(e.to_string())))?;
            let objects = crate::cluster::read(&client, true).await.map_err(at)?;
            Ok::<_, InputError>((server, context_namespace, objects))
        })?;
        namespace = context_namespace;
        docs = objects
            .documents(&server)
            .map_err(crate::cluster::objects::LiveError::Encode)?;
    }
    let loaded = manifest::load(&input.files).map_err(ManifestError::from)?;
    // On the cores this process may use (`taskset` narrows them).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let snapshot =
        manifest::to_snapshot_loaded(docs, loaded, threads).map_err(ManifestError::from)?;
    Ok(Input {
        snapshot,
        namespace,
    })
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
