//! Side-by-side comparisons on a real control plane (tests/k8s, started by
//! `berth_tests::control_plane`): dynamic provisioning against the CSI
//! external-provisioner (comparison 3), the API server's ceiling for the same
//! writes (comparison 5) and static binding against kube-controller-manager's
//! PV binder (comparison 2). Every run gets a fresh control plane; sides
//! alternate which goes first from round to round. Each comparison is written
//! as a `report::Comparison` to `bench/results/<id>.json` once all its rounds
//! finished; any side that fails to start, exits or times out ends the bench
//! with a non-zero status and no figure.
//!
//! ```text
//! cluster_bench [provisioning] [ceiling] [static-binding]   (default: all three)
//!               [--size 1000] [--static-size 2000] [--rounds 3]
//!               [--concurrency 100] [--timeout-secs 900] [--out DIR] [--smoke]
//! ```
//!
//! `--smoke` is 20 objects and one round, written to a temporary directory
//! unless `--out` says otherwise: a check that every side still runs.

mod ceiling;
mod cluster;
mod provisioning;
mod requests;
mod static_binding;

use std::path::PathBuf;
use std::time::Duration;

use berth_bench::report::{self, Better, Comparison, Round};
use clap::{Parser, ValueEnum};

use cluster::BenchError;
use provisioning::{Setup, Side, Tuning};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    Provisioning,
    Ceiling,
    StaticBinding,
}

#[derive(Debug, Parser)]
#[command(
    about = "berth vs upstream on a real control plane: provisioning, ceiling, static binding"
)]
struct Args {
    /// Comparisons to run; all three when none is named.
    #[arg(value_enum)]
    which: Vec<Which>,
    /// Claims per provisioning and ceiling run.
    #[arg(long, default_value_t = 1000)]
    size: usize,
    /// PV/PVC pairs per static-binding run.
    #[arg(long, default_value_t = 2000)]
    static_size: usize,
    /// Rounds per comparison; each round runs every side once.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Requests in flight while the bench creates objects, and the bare
    /// client's concurrency in the ceiling (the provisioners' worker count).
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Longest one run may take before the bench fails.
    #[arg(long, default_value_t = 900)]
    timeout_secs: u64,
    /// Where the JSON results go (default: bench/results, or a temporary
    /// directory with --smoke).
    #[arg(long)]
    out: Option<PathBuf>,
    /// 20 objects, one round: checks that every side runs.
    #[arg(long)]
    smoke: bool,
}

impl Args {
    fn wants(&self, w: Which) -> bool {
        self.which.is_empty() || self.which.contains(&w)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = Args::parse();
    if args.smoke {
        args.size = 20;
        args.static_size = 20;
        args.rounds = 1;
        args.out
            .get_or_insert_with(|| std::env::temp_dir().join("berth-cluster-bench-smoke"));
    }
    match run(&args).await {
        Ok(written) => {
            print_table(&written);
        }
        Err(e) => {
            eprintln!("cluster_bench: {e}");
            std::process::exit(1);
        }
    }
}

async fn run(args: &Args) -> Result<Vec<(Comparison, PathBuf)>, BenchError> {
    let out = args.out.clone().unwrap_or_else(report::results_dir);
    let berth_flags = cluster::berth_controller_flags()?;
    if args.wants(Which::StaticBinding) {
        static_binding::check_berth_bind(&berth_flags)?;
    }
    let write = |c: Comparison| -> Result<(Comparison, PathBuf), BenchError> {
        let path = c
            .write(&out)
            .map_err(|e| BenchError::Unavailable(format!("writing {}: {e}", c.id)))?;
        println!("wrote {}", path.display());
        Ok((c, path))
    };
    let mut written = Vec::new();

    let mut berth_tuned_secs = Vec::new();
    if args.wants(Which::Provisioning) || args.wants(Which::Ceiling) {
        let setup = Setup::new(
            args.size,
            args.concurrency,
            args.timeout(),
            cluster::csi_provisioner_bin()?,
            &berth_flags,
        )?;
        if args.wants(Which::Provisioning) {
            let comparisons = provisioning_rounds(args, &setup, &mut berth_tuned_secs).await?;
            for c in comparisons {
                written.push(write(c)?);
            }
        }
        if args.wants(Which::Ceiling) {
            let c = ceiling_rounds(args, &setup, &berth_tuned_secs).await?;
            written.push(write(c)?);
        }
    }
    if args.wants(Which::StaticBinding) {
        let c = static_rounds(args).await?;
        written.push(write(c)?);
    }
    Ok(written)
}

/// Berth first in even rounds, upstream first in odd ones.
fn order(round: usize) -> [Side; 2] {
    if round.is_multiple_of(2) {
        [Side::Berth, Side::Upstream]
    } else {
        [Side::Upstream, Side::Berth]
    }
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Berth => "berth",
        Side::Upstream => "upstream",
    }
}

fn progress(round: usize, rounds: usize, what: &str, side: &str, secs: f64, rss: Option<f64>) {
    let rss = rss
        .map(|r| format!("  peak RSS {r:7.1} MiB"))
        .unwrap_or_default();
    println!(
        "round {}/{rounds}  {what:<22} {side:<9} {secs:9.2} s{rss}",
        round + 1
    );
}

fn median_of(values: &[f64]) -> String {
    report::median(values)
        .map(|m| format!("{m:.1}"))
        .unwrap_or_else(|| "-".into())
}

fn median_2(values: &[f64]) -> String {
    report::median(values)
        .map(|m| format!("{m:.2}"))
        .unwrap_or_else(|| "-".into())
}

async fn provisioning_rounds(
    args: &Args,
    setup: &Setup,
    berth_tuned_secs: &mut Vec<f64>,
) -> Result<Vec<Comparison>, BenchError> {
    let n = args.size;
    let mut time = [Vec::new(), Vec::new()];
    let mut rss = [Vec::new(), Vec::new()];
    let mut all_rss = [Vec::new(), Vec::new()];
    let mut requests = [Vec::new(), Vec::new()];
    // The first round's request breakdown per side and tuning, for the notes.
    let mut breakdown: [[Option<String>; 2]; 2] = Default::default();
    for round in 0..args.rounds {
        for (t, tuning) in [Tuning::Default, Tuning::Tuned].into_iter().enumerate() {
            let mut r = (None, None);
            for side in order(round) {
                let run = provisioning::run(setup, side, tuning).await?;
                let what = format!("provisioning {}", if t == 0 { "default" } else { "tuned" });
                progress(
                    round,
                    args.rounds,
                    &what,
                    side_name(side),
                    run.secs,
                    Some(run.all_rss_mib),
                );
                println!(
                    "    {:.2} API requests per claim: {}",
                    run.requests.total() / n.max(1) as f64,
                    run.requests.per_claim(n)
                );
                let s = usize::from(side == Side::Upstream);
                breakdown[t][s].get_or_insert_with(|| run.requests.per_claim(n));
                match side {
                    Side::Berth => r.0 = Some(run),
                    Side::Upstream => r.1 = Some(run),
                }
            }
            let (Some(b), Some(u)) = r else {
                unreachable!("both sides ran")
            };
            if tuning == Tuning::Tuned {
                berth_tuned_secs.push(b.secs);
            }
            time[t].push(Round {
                berth: b.secs,
                upstream: u.secs,
            });
            rss[t].push(Round {
                berth: b.rss_mib,
                upstream: u.rss_mib,
            });
            all_rss[t].push(Round {
                berth: b.all_rss_mib,
                upstream: u.all_rss_mib,
            });
            requests[t].push(Round {
                berth: b.requests.total() / n.max(1) as f64,
                upstream: u.requests.total() / n.max(1) as f64,
            });
        }
    }

    let version = cluster::csi_provisioner_version();
    let tuned_flags = provisioning::TUNED
        .iter()
        .map(|(f, v)| format!("{f}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    let berth_tuned_note = format!(
        "berth tuned like its upstream counterparts: the node agent (provisioner) {}, the controller (binder) {}",
        provisioning::flags(&provisioning::TUNED, &[]).join(" "),
        provisioning::flags(&provisioning::BINDER_TUNED, &[]).join(" ")
    );
    let medians = |rounds: &[Round]| {
        (
            median_of(&rounds.iter().map(|r| r.berth).collect::<Vec<_>>()),
            median_of(&rounds.iter().map(|r| r.upstream).collect::<Vec<_>>()),
        )
    };
    let sides = "berth: berth controller --bind + berth node (deploy/bind), kube-controller-manager without its PV binder; upstream: csi-provisioner over berth csi + kube-controller-manager's PV binder".to_string();
    let common = vec![
        format!(
            "{n} claims of an Immediate class (1Mi, RWO) created {} at a time; time from the first create to all Bound",
            args.concurrency
        ),
        sides.clone(),
        "fresh control plane per run; each side started 3 s before the clock".to_string(),
    ];
    let rss_note = |t: usize| {
        let (b, u) = medians(&all_rss[t]);
        format!(
            "peak RSS of all the side's processes, median: berth {b} MiB (controller + node agent), upstream {u} MiB (csi-provisioner + driver)"
        )
    };
    let requests_note = |t: usize| {
        let (b, u) = medians(&requests[t]);
        format!("API requests per claim, median: berth {b}, upstream {u}")
    };
    let default = Comparison {
        id: format!("provisioning-default-{n}"),
        group: "provisioning".into(),
        title: format!("provision and bind {n} Immediate claims, each side at its own defaults"),
        upstream: format!("csi-provisioner {version} + kube-controller-manager v1.36.3 PV binder (defaults: 5 QPS, burst 10, 100 workers; binder 20 QPS, burst 30)"),
        unit: "s".into(),
        better: Better::Lower,
        size: n as u64,
        rounds: time[0].clone(),
        notes: [
            common.clone(),
            vec![
                {
                    use berth::controller::{
                        DEFAULT_KUBE_API_BURST, DEFAULT_KUBE_API_QPS, DEFAULT_WORKER_THREADS,
                    };
                    format!("berth's defaults, per process: {DEFAULT_KUBE_API_QPS} QPS, burst {DEFAULT_KUBE_API_BURST}, {DEFAULT_WORKER_THREADS} workers")
                },
                requests_note(0),
                rss_note(0),
            ],
        ]
        .concat(),
    };
    let tuned = Comparison {
        id: format!("provisioning-tuned-{n}"),
        group: "provisioning".into(),
        title: format!("provision and bind {n} Immediate claims, both sides tuned alike"),
        upstream: format!(
            "csi-provisioner {version} ({tuned_flags}) + PV binder ({})",
            provisioning::stock_binder_tuned().join(" ")
        ),
        unit: "s".into(),
        better: Better::Lower,
        size: n as u64,
        rounds: time[1].clone(),
        notes: [
            common.clone(),
            vec![
                berth_tuned_note.clone(),
                format!(
                    "upstream's PV binder: a binder-only kube-controller-manager with {}",
                    provisioning::stock_binder_tuned().join(" ")
                ),
                requests_note(1),
                rss_note(1),
            ],
        ]
        .concat(),
    };
    let memory = Comparison {
        id: format!("provisioning-rss-{n}"),
        group: "provisioning".into(),
        title: format!("peak RSS of provisioner + driver while provisioning {n} claims, default flags"),
        upstream: format!("csi-provisioner {version} + berth csi"),
        unit: "MiB".into(),
        better: Better::Lower,
        size: n as u64,
        rounds: rss[0].clone(),
        notes: vec![
            "VmHWM read once all claims are Bound: berth's node agent (provisioner and CSI driver in one process) against csi-provisioner plus the driver process it calls".into(),
            rss_note(0),
            {
                let (b, u) = medians(&rss[1]);
                format!("tuned runs, provisioner + driver median: berth {b} MiB, upstream {u} MiB")
            },
        ],
    };
    let show = |t: usize, s: usize| breakdown[t][s].clone().unwrap_or_else(|| "-".into());
    let calls = Comparison {
        id: format!("provisioning-requests-{n}"),
        group: "provisioning".into(),
        title: format!("API requests per claim, provisioning and binding {n} claims, default flags"),
        upstream: format!("csi-provisioner {version} + kube-controller-manager v1.36.3 PV binder"),
        unit: "requests/claim".into(),
        better: Better::Lower,
        size: n as u64,
        rounds: requests[0].clone(),
        notes: vec![
            "the API server's apiserver_request_total by verb and resource, read before the first create and after the last claim is Bound; every client counts (the side's processes, kube-controller-manager's other controllers, watches), the bench's own claim creates are taken out".into(),
            sides,
            format!("berth, round 1: {}", show(0, 0)),
            format!("upstream, round 1: {}", show(0, 1)),
            requests_note(1).replace("median", "tuned runs, median"),
        ],
    };
    Ok(vec![default, tuned, memory, calls])
}

async fn ceiling_rounds(
    args: &Args,
    setup: &Setup,
    berth_tuned_secs: &[f64],
) -> Result<Comparison, BenchError> {
    let n = args.size;
    let mut rounds = Vec::new();
    for round in 0..args.rounds {
        let mut berth = berth_tuned_secs.get(round).copied();
        let mut raw = None;
        for side in order(round) {
            match side {
                // Reuses the tuned provisioning run of this round when there was one.
                Side::Berth if berth.is_none() => {
                    let run = provisioning::run(setup, Side::Berth, Tuning::Tuned).await?;
                    progress(
                        round,
                        args.rounds,
                        "provisioning tuned",
                        "berth",
                        run.secs,
                        Some(run.rss_mib),
                    );
                    berth = Some(run.secs);
                }
                Side::Berth => {}
                Side::Upstream => {
                    let secs = ceiling::run(n, args.concurrency, args.timeout()).await?;
                    progress(
                        round,
                        args.rounds,
                        "ceiling bare client",
                        "upstream",
                        secs,
                        None,
                    );
                    raw = Some(secs);
                }
            }
        }
        let (Some(b), Some(u)) = (berth, raw) else {
            unreachable!("both sides ran")
        };
        rounds.push(Round {
            berth: n as f64 / b,
            upstream: n as f64 / u,
        });
    }
    Ok(Comparison {
        id: format!("ceiling-{n}"),
        group: "ceiling".into(),
        title: format!("{n} claims: berth's rate, provisioning and binding, vs the API server's ceiling for the same writes"),
        upstream: format!(
            "bare kube-rs client, {} claims in flight, {} writes per claim",
            args.concurrency,
            ceiling::WRITES_PER_CLAIM
        ),
        unit: "claims/s".into(),
        better: Better::Higher,
        size: n as u64,
        rounds,
        notes: vec![
            "berth: claims / (first claim created → all Bound), the tuned runs of comparison 3 (berth controller --bind + berth node, CSI CreateVolume on a real driver, placement and binding rounds)".into(),
            "upstream: the writes berth's window holds per claim (the claim's create, the placing patch, PV, ProvisioningSucceeded Event, PV phase, claim volumeName, claim phase), nothing else, no client-side limit; the median per-round ratio is berth's fraction of the ceiling".into(),
        ],
    })
}

async fn static_rounds(args: &Args) -> Result<Comparison, BenchError> {
    let n = args.static_size;
    let mut rounds = Vec::new();
    let mut rss = Vec::new();
    let mut first = Vec::new();
    for round in 0..args.rounds {
        let mut r = (None, None);
        for side in order(round) {
            let run = static_binding::run(side, n, args.concurrency, args.timeout()).await?;
            progress(
                round,
                args.rounds,
                "static binding",
                side_name(side),
                run.secs,
                Some(run.rss_mib),
            );
            match side {
                Side::Berth => r.0 = Some(run),
                Side::Upstream => r.1 = Some(run),
            }
        }
        let (Some(b), Some(u)) = r else {
            unreachable!("both sides ran")
        };
        rounds.push(Round {
            berth: b.secs,
            upstream: u.secs,
        });
        rss.push(Round {
            berth: b.rss_mib,
            upstream: u.rss_mib,
        });
        first.push(Round {
            berth: b.first_secs,
            upstream: u.first_secs,
        });
    }
    Ok(Comparison {
        id: format!("static-binding-{n}"),
        group: "static-binding".into(),
        title: format!("bind {n} pre-created PV/PVC pairs"),
        upstream: "kube-controller-manager v1.36.3 persistentvolume-binder-controller (defaults: 20 QPS, burst 30)".into(),
        unit: "s".into(),
        better: Better::Lower,
        size: n as u64,
        rounds,
        notes: vec![
            "objects created while no binder runs; time from the binder's spawn to all claims Bound".into(),
            "berth: berth controller --bind (default flags); stock: a kube-controller-manager running only the PV binder".into(),
            format!(
                "spawn to first claim Bound (start-up, initial list), median: berth {} s, kube-controller-manager {} s",
                median_2(&first.iter().map(|r| r.berth).collect::<Vec<_>>()),
                median_2(&first.iter().map(|r| r.upstream).collect::<Vec<_>>())
            ),
            format!(
                "peak RSS median: berth {} MiB, kube-controller-manager (binder only) {} MiB",
                median_of(&rss.iter().map(|r| r.berth).collect::<Vec<_>>()),
                median_of(&rss.iter().map(|r| r.upstream).collect::<Vec<_>>())
            ),
        ],
    })
}

fn print_table(written: &[(Comparison, PathBuf)]) {
    println!();
    println!(
        "{:<28} {:>7} {:>12} {:>12} {:>10}  rounds",
        "comparison", "unit", "berth", "upstream", "advantage"
    );
    for (c, _) in written {
        let f = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
        println!(
            "{:<28} {:>7} {:>12} {:>12} {:>9}x  {}",
            c.id,
            c.unit,
            f(c.berth_median()),
            f(c.upstream_median()),
            f(c.advantage_median()),
            c.rounds.len()
        );
    }
    println!(
        "(medians over rounds; advantage = median per-round ratio, > 1 means berth did better)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_alternate_which_goes_first() {
        assert_eq!(order(0), [Side::Berth, Side::Upstream]);
        assert_eq!(order(1), [Side::Upstream, Side::Berth]);
        assert_eq!(order(2), order(0));
    }

    #[test]
    fn the_pinned_provisioner_version_comes_from_its_go_mod() {
        assert!(cluster::csi_provisioner_version().starts_with("v6."));
    }
}
