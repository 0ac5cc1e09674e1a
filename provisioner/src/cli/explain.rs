//! `berth explain pvc|pod NAME -n NS -f PATH`: the reasoning for one claim
//! or one pod.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::{Input, InputArgs, read_input};
use crate::binding::explain::{explain, explain_pod};
use crate::model::{ClaimKey, ObjectKey};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExplainKind {
    #[value(alias = "persistentvolumeclaim", alias = "persistentvolumeclaims")]
    Pvc,
    #[value(alias = "pods", alias = "po")]
    Pod,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// What to explain (`pvc` or `pod`).
    pub kind: ExplainKind,
    /// The object's name.
    pub name: String,
    /// The object's namespace (default: the kubeconfig context's namespace
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
    let namespace = args.namespace.unwrap_or(namespace);
    if args.kind == ExplainKind::Pod {
        let key = ObjectKey::new(namespace, args.name);
        return match explain_pod(&snapshot, &key) {
            Some(lines) => {
                for l in lines {
                    println!("{l}");
                }
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("error: Pod {key} is not in the input");
                ExitCode::from(2)
            }
        };
    }
    let key = ClaimKey::new(namespace, args.name);
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
