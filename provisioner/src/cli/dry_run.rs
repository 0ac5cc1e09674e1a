//! `berth dry-run -f PATH… [-o table|json|yaml]`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{OutputFormat, output, read_snapshot};
use crate::binding;

#[derive(Debug, Args)]
pub struct DryRunArgs {
    /// Manifest file, directory or `-` for standard input (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
    pub output: OutputFormat,
}

pub fn run(args: DryRunArgs) -> ExitCode {
    let snapshot = match read_snapshot(&args.files) {
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
