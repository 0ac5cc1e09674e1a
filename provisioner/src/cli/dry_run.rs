//! `berth dry-run [-f PATH…] [--from-cluster] [--kubeconfig F] [--context C]
//! [-n NS | -A] [-o table|json|yaml]`.
//!
//! `-n` narrows the report, never the plan: claims of every namespace
//! compete for the same volumes, nodes and classes, so the plan is always
//! computed for the whole input and then only the entries concerning the
//! namespace are shown.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::{InputArgs, OutputFormat, output, read_snapshot};
use crate::binding::{self, Plan, Snapshot};

#[derive(Debug, Args)]
pub struct DryRunArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: OutputFormat,
    /// Show only what concerns this namespace: its claims' bindings,
    /// provisioning, pending reasons and admission rejections, and the
    /// released volumes of its claims. Per-node volume-limit violations and
    /// warnings stay: they are the whole cluster's. The plan itself is still
    /// computed for every namespace.
    #[arg(short = 'n', long = "namespace", conflicts_with = "all_namespaces")]
    pub namespace: Option<String>,
    /// Show every namespace (the default).
    #[arg(short = 'A', long = "all-namespaces")]
    pub all_namespaces: bool,
}

pub fn run(args: DryRunArgs) -> ExitCode {
    let snapshot = match read_snapshot(&args.input) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut plan = binding::plan(&snapshot);
    if let Some(ns) = &args.namespace {
        plan = only_namespace(plan, &snapshot, ns);
    }
    let mut stdout = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = match args.output {
        OutputFormat::Json => output::write_json(&plan, &mut stdout),
        OutputFormat::Yaml => stdout.write_all(output::to_yaml(&plan).as_bytes()),
        OutputFormat::Table => stdout.write_all(output::to_table(&plan).as_bytes()),
    };
    let _ = stdout.flush();
    // The process ends here: freeing a large snapshot and plan object by
    // object would only cost time (a tenth of a second at 100k claims).
    std::mem::forget(plan);
    std::mem::forget(snapshot);
    ExitCode::SUCCESS
}

/// The entries of `plan` that concern namespace `ns`. Only removes
/// entries, so the JSON keys and fields stay those of the whole plan.
fn only_namespace(mut plan: Plan, snapshot: &Snapshot, ns: &str) -> Plan {
    plan.bindings.retain(|b| b.claim.namespace == ns);
    plan.provisioning.retain(|p| p.claim.namespace == ns);
    plan.pending.retain(|p| p.claim.namespace == ns);
    // Quota and LimitRange rejections are of claims, so they carry the
    // namespace whose quota or range refused them.
    plan.rejected.retain(|r| r.object.namespace == ns);
    plan.scheduling.retain(|p| p.pod.namespace == ns);
    // A released volume is a namespace's concern when its claimRef names
    // one of that namespace's claims; PVs themselves have no namespace.
    plan.reclaim.retain(|r| {
        snapshot
            .volumes
            .iter()
            .find(|v| v.name == r.volume)
            .and_then(|v| v.claim_ref.as_ref())
            .is_some_and(|c| c.key.namespace == ns)
    });
    plan
}
