//! `berth dry-run [-f PATH…] [--from-cluster [--kubeconfig F]] [-o table|json|yaml]`.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::{InputArgs, OutputFormat, output, read_snapshot};
use crate::binding;

#[derive(Debug, Args)]
pub struct DryRunArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: OutputFormat,
}

pub fn run(args: DryRunArgs) -> ExitCode {
    let snapshot = match read_snapshot(&args.input) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let plan = binding::plan(&snapshot);
    let text = match args.output {
        OutputFormat::Json => output::to_json(&plan),
        OutputFormat::Yaml => output::to_yaml(&plan),
        OutputFormat::Table => output::to_table(&plan),
    };
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = stdout.write_all(text.as_bytes());
    ExitCode::SUCCESS
}
