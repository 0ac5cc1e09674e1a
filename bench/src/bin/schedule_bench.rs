//! Figures for berth's scheduling prediction at scale: a generated cluster
//! of N PVs × N PVCs over N/100 nodes (`berth_bench::describe`) in which
//! `--unscheduled` of the pods of local WaitForFirstConsumer claims have no
//! node yet, so the planner runs the scheduler's filters for each of them
//! on every node and binds its claim where it lands. The point to check:
//! 100k × 100k with 10k unscheduled pods over 1,000 nodes plans in under a
//! second of CPU on one core.
//!
//! Prints the plan's CPU time with scheduling and without it (the binder's
//! `schedule_pods: false`, same snapshot), their difference per pod, and how
//! many pods were placed or stay unschedulable. Best of `--runs`, each on a
//! thread pinned to CPU 0 (unless `--no-pin`), timed in thread CPU time.
//!
//! Usage: schedule_bench [--size 100000] [--unscheduled 10000] [--runs 3]
//!                       [--seed 1] [--no-pin] [--keep FILE]
//!
//! `--keep FILE` also writes the cluster as a manifest for `berth dry-run`
//! (to compare the CLI's output between builds).

use std::process::ExitCode;
use std::time::Duration;

use berth::binding::{Options, Plan, Snapshot, plan_with};
use berth_bench::cpu::{pin_to_cpu0, thread_cpu};

const USAGE: &str = "usage: schedule_bench [--size 100000] [--unscheduled 10000] [--runs 3] [--seed 1] [--no-pin] [--keep FILE]";

/// The target for 100k × 100k with 10k unscheduled pods.
const TARGET: Duration = Duration::from_secs(1);

struct Opts {
    size: usize,
    unscheduled: usize,
    runs: usize,
    seed: u64,
    pin: bool,
    keep: Option<std::path::PathBuf>,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        size: 100_000,
        unscheduled: 10_000,
        runs: 3,
        seed: 1,
        pin: true,
        keep: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        let number = |name: &str, v: String| {
            v.parse::<usize>()
                .map_err(|_| format!("{name}: not a number: {v:?}\n{USAGE}"))
        };
        match a.as_str() {
            "--size" => o.size = number("--size", value("--size")?)?,
            "--unscheduled" => o.unscheduled = number("--unscheduled", value("--unscheduled")?)?,
            "--runs" => o.runs = number("--runs", value("--runs")?)?.max(1),
            "--seed" => o.seed = number("--seed", value("--seed")?)? as u64,
            "--no-pin" => o.pin = false,
            "--keep" => o.keep = Some(value("--keep")?.into()),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(o)
}

/// The best CPU time of `runs` plans, and the last plan.
fn best_of(snapshot: &Snapshot, options: &Options, runs: usize) -> (Duration, Plan) {
    let mut best = Duration::MAX;
    let mut last = None;
    for _ in 0..runs {
        let start = thread_cpu();
        let p = plan_with(std::hint::black_box(snapshot), options);
        best = best.min(thread_cpu().saturating_sub(start));
        last = Some(p);
    }
    (best, last.unwrap_or_default())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn run(o: &Opts) -> Result<(), String> {
    if o.pin && !pin_to_cpu0() {
        return Err("cannot pin to CPU 0 (pass --no-pin)".into());
    }
    let mut cluster = berth_bench::describe(o.size, o.size, o.seed);
    // The generator leaves a tenth of the local claims' pods without a
    // node; take nodes away from scheduled ones until there are enough.
    let mut without = cluster.pods.iter().filter(|p| p.node.is_none()).count();
    for pod in cluster.pods.iter_mut() {
        if without >= o.unscheduled {
            break;
        }
        if pod.node.take().is_some() {
            without += 1;
        }
    }
    if let Some(path) = &o.keep {
        std::fs::write(path, cluster.manifest_json())
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    let snapshot = cluster.snapshot();
    let nodes = cluster.nodes.len();
    let with = Options {
        near_misses: true,
        node_verdicts: false,
        schedule_pods: true,
    };
    let binder = Options {
        schedule_pods: false,
        ..with.clone()
    };
    let (cpu_with, p) = best_of(&snapshot, &with, o.runs);
    let (cpu_without, _) = best_of(&snapshot, &binder, o.runs);
    let placed = p.scheduling.iter().filter(|s| s.node.is_some()).count();
    let stuck = p.scheduling.len() - placed;
    let scheduling = cpu_with.saturating_sub(cpu_without);
    println!(
        "schedule bench: seed {}, {} PVs x {} PVCs, {nodes} nodes, {} pods without a node (best of {} run(s), thread CPU{})",
        o.seed,
        o.size,
        o.size,
        p.scheduling.len(),
        o.runs,
        if o.pin { ", pinned to CPU 0" } else { "" }
    );
    println!(
        "placed {placed}, unschedulable {stuck}; bindings {}, provisioning {}, pending {}",
        p.bindings.len(),
        p.provisioning.len(),
        p.pending.len()
    );
    println!(
        "plan CPU: {:.1} ms with scheduling, {:.1} ms without; scheduling {:.1} ms ({:.1} us per pod, {:.0} ns per pod and node)",
        ms(cpu_with),
        ms(cpu_without),
        ms(scheduling),
        scheduling.as_secs_f64() * 1e6 / p.scheduling.len().max(1) as f64,
        scheduling.as_secs_f64() * 1e9 / (p.scheduling.len().max(1) * nodes.max(1)) as f64,
    );
    println!(
        "plan with scheduling: {:.1} ms (target < {} ms) {}",
        ms(cpu_with),
        TARGET.as_millis(),
        if cpu_with < TARGET { "met" } else { "MISSED" }
    );
    Ok(())
}

fn main() -> ExitCode {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("schedule_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
