//! `berth explain pvc NAME -n NS -f PATH`: the reasoning for one claim.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::{Input, InputArgs, read_input};
use crate::binding::explain::explain;
use crate::model::ClaimKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExplainKind {
    #[value(alias = "persistentvolumeclaim", alias = "persistentvolumeclaims")]
    Pvc,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// What to explain (`pvc`).
    pub kind: ExplainKind,
    /// The claim's name.
    pub name: String,
    /// The claim's namespace (default: the kubeconfig context's namespace
    /// when a cluster is read, as kubectl; else `default`).
    #[arg(short = 'n', long = "namespace")]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub input: InputArgs,
}

pub fn run(args: ExplainArgs) -> ExitCode {
    let Input {
        snapshot,
        namespace,
    } = match read_input(&args.input) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let key = ClaimKey::new(args.namespace.unwrap_or(namespace), args.name);
    match explain(&snapshot, &key) {
        Some(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("error: PersistentVolumeClaim {key} is not in the input");
            ExitCode::from(2)
        }
    }
}
