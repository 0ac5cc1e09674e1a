//! Renders a results directory (the comparisons' JSON files and the
//! `<group>.failed` files of those that did not run) into `comparisons.md`
//! and one PNG per group; `bench/compare.sh` runs it last.
//!
//! Usage: render_results [--dir DIR] [--generated TEXT] [--rerun COMMAND]
//!                       [--failed "WHAT: REASON"]...
//!
//! Exits non-zero if a result file cannot be read or a plot cannot be drawn.

use std::path::PathBuf;
use std::process::ExitCode;

use berth_bench::render::{self, Context, Failure};
use berth_bench::report::results_dir;

const USAGE: &str = "usage: render_results [--dir DIR] [--generated TEXT] [--rerun COMMAND] [--failed \"WHAT: REASON\"]...";

fn run() -> Result<(), String> {
    let mut dir = results_dir();
    let mut ctx = Context {
        machine: render::machine(),
        ..Context::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--dir" => dir = PathBuf::from(val()?),
            "--generated" => ctx.generated = val()?,
            "--rerun" => ctx.rerun = val()?,
            "--failed" => {
                let v = val()?;
                let (what, reason) = v.split_once(':').unwrap_or((v.as_str(), "failed"));
                ctx.failures.push(Failure {
                    what: what.trim().to_string(),
                    reason: reason.trim().to_string(),
                });
            }
            _ => return Err(USAGE.into()),
        }
    }
    let comparisons =
        render::load_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let recorded =
        render::load_failures(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    ctx.failures.extend(recorded);
    let plots = render::plots(&comparisons, &dir)?;
    ctx.plots = plots
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let md = dir.join("comparisons.md");
    std::fs::write(&md, render::document(&comparisons, &ctx))
        .map_err(|e| format!("{}: {e}", md.display()))?;
    println!(
        "{}: {} comparisons, {} plots, {} failed",
        md.display(),
        comparisons.len(),
        plots.len(),
        ctx.failures.len()
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("render_results: {e}");
            ExitCode::FAILURE
        }
    }
}
