//! Kubernetes' own external storage conformance suite (`e2e.test` v1.36.3,
//! `-storage.testdriver`) against berth on a real kubelet node: starts the
//! node (tests/src/real_node.rs), installs deploy/ exactly as
//! deploy/kind/README.md says, imports the images the storage suites run
//! (tests/src/images.rs), runs the selected specs within a time budget,
//! reads Ginkgo's JSON report and prints one line per suite and the closing
//! `storage-e2e: N passed, N failed, N skipped` that tests/run-all.sh adds
//! up. tests/storage-e2e/run.sh builds what it needs and calls it.
//!
//! berth's snapshots are taken through upstream's snapshot-controller and
//! csi-snapshotter ([`start_snapshotter`]), which deploy/ does not ship, and
//! the node's volume limit is lowered to what its disk holds
//! ([`MAX_VOLUMES_PER_NODE`]).
//!
//! Which specs run is [`SKIPS`]: every group left out names its reason.
//! Specs the suite itself skips (by the capabilities in
//! tests/storage-e2e/berth-driver.yaml, or for want of a second node) are
//! counted as skipped with the suite's own message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::control_plane::{Daemon, REAL_NODE_NAME, binaries, stop_child};
use berth_tests::images;
use berth_tests::real_node::RealNode;
use clap::Parser;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::storage::v1::{CSINode, CSIStorageCapacity};
use kube::api::{Api, ListParams};

const DRIVER: &str = "csi.berth.dev";
/// berth's CSI socket on the node (deploy/node.yaml `--endpoint`).
const DRIVER_SOCKET: &str = "/var/lib/kubelet/plugins/csi.berth.dev/csi.sock";
const DRIVER_DEFINITION: &str = "tests/storage-e2e/berth-driver.yaml";

/// A group of specs left out by name, and why.
struct Skip {
    /// A Go regular expression over the spec's full text.
    pattern: &'static str,
    /// Left out of the CI subset only; `--full` runs it.
    ci_only: bool,
    reason: &'static str,
}

/// Every group of specs not run, with its reason (README's table repeats
/// them). The suite skips more by itself: see the module doc.
const SKIPS: &[Skip] = &[
    Skip {
        pattern: r"\[Disruptive\]",
        ci_only: false,
        reason: "restarts or stops the kubelet through SSH or systemd (KubeletCommand); \
                 the kubelet here is a child process of the harness, not a service",
    },
    Skip {
        pattern: r"\[Feature:Windows\]",
        ci_only: false,
        reason: "ntfs patterns: Windows nodes only",
    },
    Skip {
        pattern: r"\[Feature:VolumeAttributesClass\]",
        ci_only: false,
        reason: "berth has no ControllerModifyVolume (no MODIFY_VOLUME capability)",
    },
    Skip {
        pattern: r"\[Feature:SELinux\]",
        ci_only: false,
        reason: "these nodes run without SELinux; berth-driver.yaml does not claim seLinuxMount",
    },
    Skip {
        pattern: r"\[Feature:volumegroupsnapshot\]",
        ci_only: false,
        reason: "berth has no CSI GroupController (group snapshots)",
    },
    Skip {
        pattern: r"\[Feature:snapshotmetadata\]",
        ci_only: false,
        reason: "berth serves no CSI SnapshotMetadata service",
    },
    Skip {
        pattern: r"\(default fs\)\(allowExpansion\)\] volume-expand .*should resize volume when PVC is edited while pod is using it|\(default fs\).*\] ephemeral .*should support expansion of pvcs created for ephemeral pvcs",
        ci_only: false,
        reason: "online growth of ext4 (berth-local's file system): resize2fs on a mounted \
                 file system needs CAP_SYS_RESOURCE, which root lacks on these machines \
                 (\"Permission denied to resize filesystem\"); real clusters grant it. \
                 Offline ext4 growth runs here, and real_node.rs grows xfs online",
    },
    Skip {
        pattern: r"Pre-provisioned Snapshot",
        ci_only: false,
        reason: "node-local snapshots need csi-snapshotter's node deployment, which \
                 handles only VolumeSnapshotContents labelled with its node; the \
                 snapshot-controller labels those it creates from a volume, not the \
                 hand-made content these specs create, which so never becomes ready \
                 (upstream distributed snapshotting)",
    },
    Skip {
        pattern: r"any volume data source",
        ci_only: false,
        reason: "deploys upstream's hello-populator from its registry image \
                 (registry.k8s.io/sig-storage/hello-populator:v1.0.1, not one of \
                 e2e.test --list-images); nothing is pulled on these machines",
    },
    Skip {
        pattern: r"\[Slow\]",
        ci_only: true,
        reason: "time: [Slow] specs (all of multiVolume and volumeIO, the larger \
                 provisioning, subPath and snapshot cases) exceed the CI budget; \
                 --full runs them",
    },
    Skip {
        pattern: r"\[Serial\]",
        ci_only: true,
        reason: "time: [Serial] specs run alone, after all others (volumeLimits fills \
                 the node's volume limit); --full runs them",
    },
];

/// Kubernetes' storage conformance suite against berth on a real kubelet.
#[derive(Parser)]
#[command(name = "storage-e2e")]
struct Args {
    /// Run the full selection ([Slow] and [Serial] too) instead of the CI subset.
    #[arg(long)]
    full: bool,
    /// Narrow the selection further (a Go regular expression over spec texts).
    #[arg(long)]
    focus: Option<String>,
    /// Minutes the specs may run before the suite is interrupted
    /// (default: 20, or 120 with --full).
    #[arg(long)]
    budget_minutes: Option<u64>,
    /// Keep the report, the e2e.test log and the node's logs here.
    #[arg(long)]
    report_dir: Option<PathBuf>,
    /// Print the selected specs without running them (no node is started).
    #[arg(long)]
    dry_run: bool,
    /// Ginkgo processes running specs side by side.
    #[arg(long, default_value_t = 3)]
    procs: u32,
}

/// ginkgo's `--skip` expression for this run.
fn skip_expression(full: bool) -> String {
    SKIPS
        .iter()
        .filter(|s| !(full && s.ci_only))
        .map(|s| s.pattern)
        .collect::<Vec<_>>()
        .join("|")
}

/// What this run leaves out and why, for the log.
fn describe_selection(full: bool) -> String {
    let mut text = format!(
        "storage-e2e: {} selection; left out by name:\n",
        if full { "full" } else { "CI" }
    );
    for s in SKIPS.iter().filter(|s| !(full && s.ci_only)) {
        text += &format!("  {}  {}\n", s.pattern, s.reason);
    }
    text
}

/// The minutes the specs may run: `--budget-minutes`, else the default of
/// the selection.
fn budget_minutes(args: &Args) -> u64 {
    args.budget_minutes
        .unwrap_or(if args.full { 120 } else { 20 })
}

/// The ginkgo command line that runs e2e.test (`procs` parallel processes;
/// [Serial] specs still run alone), without the ginkgo binary.
fn ginkgo_args(
    args: &Args,
    procs: u32,
    e2e: &Path,
    kubeconfig: &Path,
    kubectl: &Path,
    report: &Path,
) -> Vec<String> {
    let root = berth_tests::repo_root();
    let mut focus = format!(
        r"External.Storage \[Driver: {}\]",
        DRIVER.replace('.', r"\.")
    );
    if let Some(extra) = &args.focus {
        focus = format!("{focus}.*({extra})");
    }
    let mut argv = vec![
        format!("--procs={procs}"),
        format!("--focus={focus}"),
        format!("--skip={}", skip_expression(args.full)),
        format!("--timeout={}m", budget_minutes(args)),
        // Reports go to --output-dir; without it ginkgo also makes the
        // report's directories under e2e.test's own.
        format!("--output-dir={}", report.display()),
        "--json-report=report.json".into(),
        "--no-color".into(),
        "-v".into(),
    ];
    if args.dry_run {
        argv.push("--dry-run".into());
    }
    argv.extend([
        e2e.display().to_string(),
        "--".into(),
        format!(
            "-storage.testdriver={}",
            root.join(DRIVER_DEFINITION).display()
        ),
        format!("-kubeconfig={}", kubeconfig.display()),
        format!("-kubectl-path={}", kubectl.display()),
        "-provider=local".into(),
        "-node-os-distro=debian".into(),
        format!("-repo-root={}", root.display()),
        format!("-report-dir={}", report.display()),
    ]);
    argv
}

/// One spec of Ginkgo's JSON report, reduced to what the summary needs.
struct Spec {
    suite: String,
    name: String,
    state: String,
    message: String,
    seconds: f64,
}

/// Reads Ginkgo's JSON report: every spec of the driver's suites, the ones
/// the focus/skip left out dropped (they never started).
fn read_report(path: &Path) -> Result<Vec<Spec>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let suites: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for report in suites.as_array().into_iter().flatten() {
        for spec in report["SpecReports"].as_array().into_iter().flatten() {
            if spec["LeafNodeType"].as_str() != Some("It") {
                continue;
            }
            let hierarchy: Vec<&str> = spec["ContainerHierarchyTexts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str())
                .collect();
            if !hierarchy
                .first()
                .is_some_and(|t| t.contains("External Storage"))
            {
                continue;
            }
            let state = spec["State"].as_str().unwrap_or("unknown").to_string();
            let message = spec["Failure"]["Message"]
                .as_str()
                .unwrap_or("")
                .trim()
                .to_string();
            // Left out by focus/skip: skipped without a message (a spec the
            // suite skips at run time says why).
            if state == "skipped" && message.is_empty() {
                continue;
            }
            let suite = suite_name(hierarchy.get(1).unwrap_or(&""));
            let leaf = spec["LeafNodeText"].as_str().unwrap_or("");
            let name = format!("{} {}", hierarchy[1..].join(" "), leaf);
            let seconds = spec["RunTime"].as_f64().unwrap_or(0.0) / 1e9;
            out.push(Spec {
                suite,
                name,
                state,
                message,
                seconds,
            });
        }
    }
    Ok(out)
}

/// The suite's name in a container text such as
/// `[Testpattern: Dynamic PV (xfs)] [Slow] multiVolume [Slow]`: what is left
/// without the bracketed pattern and tags.
fn suite_name(text: &str) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    let name = out.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.is_empty() { "?".into() } else { name }
}

#[derive(Default)]
struct Counts {
    passed: usize,
    failed: usize,
    skipped: usize,
    seconds: f64,
}

/// Per suite, then the reasons of the suite's own skips, then every failure.
fn summarize(specs: &[Spec]) -> (Counts, String) {
    let mut total = Counts::default();
    let mut per_suite: BTreeMap<&str, Counts> = BTreeMap::new();
    let mut skip_reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for s in specs {
        let c = per_suite.entry(&s.suite).or_default();
        c.seconds += s.seconds;
        total.seconds += s.seconds;
        match s.state.as_str() {
            "passed" => {
                c.passed += 1;
                total.passed += 1;
            }
            "skipped" => {
                c.skipped += 1;
                total.skipped += 1;
                let first = s.message.lines().next().unwrap_or("").to_string();
                *skip_reasons.entry(first).or_default() += 1;
            }
            _ => {
                c.failed += 1;
                total.failed += 1;
                failures.push(s);
            }
        }
    }
    let mut text = format!(
        "{:<28} {:>6} {:>6} {:>7} {:>8}\n",
        "suite", "passed", "failed", "skipped", "seconds"
    );
    for (suite, c) in &per_suite {
        text += &format!(
            "{:<28} {:>6} {:>6} {:>7} {:>8.0}\n",
            suite, c.passed, c.failed, c.skipped, c.seconds
        );
    }
    text += "\nskipped by the suite itself (count, first line of the reason):\n";
    for (reason, n) in &skip_reasons {
        text += &format!("{n:>4}  {reason}\n");
    }
    for f in failures {
        text += &format!(
            "\nFAILED ({}, {:.0}s): {}\n{}\n",
            f.state, f.seconds, f.name, f.message
        );
    }
    (total, text)
}

/// Fails unless every image this runner builds is one e2e.test names:
/// a version bump that renames one must not leave the suite pulling.
fn check_image_references(e2e: &Path, built: &[&str]) -> Result<(), String> {
    let out = Command::new(e2e)
        .arg("--list-images")
        .output()
        .map_err(|e| format!("{} --list-images: {e}", e2e.display()))?;
    let listed = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&&str> = built
        .iter()
        .filter(|r| !listed.lines().any(|l| l.trim() == **r))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "e2e.test --list-images does not name {missing:?}: update tests/src/images.rs"
        ))
    }
}

/// Polls `check` every second until it yields or `secs` pass.
async fn wait_for<F, Fut>(what: &str, secs: u64, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

/// Installs berth as deploy/kind/README.md says and waits until the kubelet
/// has registered it and its agent has published capacity.
async fn install_berth(node: &RealNode) -> Result<(), String> {
    let install = berth_tests::readme::marked_block(
        "deploy/kind/README.md",
        "<!-- real-node: install ",
        "sh",
    );
    node.shell(&install)?;
    let csinodes: Api<CSINode> = Api::all(node.client.clone());
    wait_for("berth in CSINode", 120, || {
        let csinodes = csinodes.clone();
        async move {
            csinodes
                .get(REAL_NODE_NAME)
                .await
                .is_ok_and(|c| c.spec.drivers.iter().any(|d| d.name == DRIVER))
        }
    })
    .await?;
    let capacities: Api<CSIStorageCapacity> = Api::namespaced(node.client.clone(), "berth-system");
    wait_for("berth's CSIStorageCapacity objects", 120, || {
        let capacities = capacities.clone();
        async move {
            capacities
                .list(&ListParams::default())
                .await
                .is_ok_and(|l| !l.items.is_empty())
        }
    })
    .await
}

/// The node's volume limit for the run. volumeLimits' [Serial] spec fills
/// the limit with claims of the driver's minimum size (300Mi) on one node:
/// deploy/'s 256 would need 75 GiB, more than these machines' disks, and
/// the agent rightly publishes no capacity long before. 16 volumes fit.
const MAX_VOLUMES_PER_NODE: u32 = 16;

/// Sets berth-node's `--max-volumes-per-node` and waits until the kubelet
/// reports it in CSINode.
async fn set_volume_limit(node: &RealNode, limit: u32) -> Result<(), String> {
    let sets: Api<DaemonSet> = Api::namespaced(node.client.clone(), "berth-system");
    let ds = sets
        .get("berth-node")
        .await
        .map_err(|e| format!("DaemonSet berth-node: {e}"))?;
    let args = ds
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.args)
        .unwrap_or_default();
    let index = args
        .iter()
        .position(|a| a.starts_with("--max-volumes-per-node="))
        .ok_or("berth-node has no --max-volumes-per-node argument")?;
    let patch = serde_json::json!([{
        "op": "replace",
        "path": format!("/spec/template/spec/containers/0/args/{index}"),
        "value": format!("--max-volumes-per-node={limit}"),
    }]);
    node.kubectl(&[
        "-n",
        "berth-system",
        "patch",
        "ds/berth-node",
        "--type=json",
        "-p",
        &patch.to_string(),
    ])?;
    node.kubectl(&[
        "-n",
        "berth-system",
        "rollout",
        "status",
        "ds/berth-node",
        "--timeout=180s",
    ])?;
    let csinodes: Api<CSINode> = Api::all(node.client.clone());
    wait_for(&format!("CSINode allocatable {limit}"), 120, || {
        let csinodes = csinodes.clone();
        async move {
            csinodes.get(REAL_NODE_NAME).await.is_ok_and(|c| {
                c.spec.drivers.iter().any(|d| {
                    d.name == DRIVER
                        && d.allocatable.as_ref().and_then(|a| a.count) == Some(limit as i32)
                })
            })
        }
    })
    .await
}

/// Kubernetes' VolumeSnapshot machinery, which deploy/ does not ship: the
/// CRDs, upstream's snapshot-controller (distributed snapshotting: each
/// VolumeSnapshotContent is labelled with its volume's node) and
/// csi-snapshotter in node-deployment mode on berth's node socket, which
/// calls berth's CreateSnapshot/DeleteSnapshot. Both run as processes of
/// this machine with the admin kubeconfig, like the control plane's.
/// Restores are berth's own: its controller reads the VolumeSnapshot.
fn start_snapshotter(node: &RealNode, bin: &Path, logs: &Path) -> Result<(Daemon, Daemon), String> {
    let crds = bin.join("snapshot-crds");
    node.kubectl(&["apply", "-f", &crds.display().to_string()])?;
    node.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/volumesnapshots.snapshot.storage.k8s.io",
        "crd/volumesnapshotcontents.snapshot.storage.k8s.io",
        "crd/volumesnapshotclasses.snapshot.storage.k8s.io",
    ])?;
    let kubeconfig = format!("--kubeconfig={}", node.kubeconfig().display());
    let controller = Daemon::start(
        "snapshot-controller",
        &bin.join("snapshot-controller"),
        &[
            kubeconfig.clone(),
            "--enable-distributed-snapshotting".into(),
            "--v=3".into(),
        ],
        logs.join("snapshot-controller.log"),
    )
    .map_err(|e| format!("starting snapshot-controller: {e}"))?;
    // NODE_NAME tells the node-deployment sidecar which contents are its own.
    let sidecar = Daemon::start(
        "csi-snapshotter",
        Path::new("/usr/bin/env"),
        &[
            format!("NODE_NAME={REAL_NODE_NAME}"),
            bin.join("csi-snapshotter").display().to_string(),
            kubeconfig,
            format!("--csi-address={DRIVER_SOCKET}"),
            "--node-deployment".into(),
            "--v=3".into(),
        ],
        logs.join("csi-snapshotter.log"),
    )
    .map_err(|e| format!("starting csi-snapshotter: {e}"))?;
    Ok((controller, sidecar))
}

/// Runs ginkgo over e2e.test; the output goes to `log`. Interrupted
/// (SIGTERM, then SIGKILL) when it outlives its own timeout by five minutes.
fn run_ginkgo(ginkgo: &Path, argv: &[String], log: &Path, budget: Duration) -> Result<(), String> {
    let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new(ginkgo)
        .args(argv)
        .current_dir(berth_tests::repo_root())
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("{}: {e}", ginkgo.display()))?;
    let deadline = Instant::now() + budget + Duration::from_secs(300);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            // A failing spec makes ginkgo exit non-zero: the report says
            // which; only a missing report is an error of the run itself.
            eprintln!("storage-e2e: ginkgo exited with {status}");
            return Ok(());
        }
        if Instant::now() > deadline {
            stop_child(&mut child, Duration::from_secs(30));
            return Err(format!(
                "ginkgo outlived its budget of {} min and was stopped",
                budget.as_secs() / 60
            ));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

async fn run(args: &Args) -> Result<Counts, String> {
    let started = Instant::now();
    eprint!("{}", describe_selection(args.full));
    let bin = binaries().map_err(|e| e.to_string())?;
    let e2e = bin.join("e2e.test");
    let agnhost = bin.join("agnhost");
    let ginkgo = bin.join("ginkgo");
    for b in [
        &e2e,
        &agnhost,
        &ginkgo,
        &bin.join("snapshot-controller"),
        &bin.join("csi-snapshotter"),
    ] {
        if !b.is_file() {
            return Err(format!(
                "{} missing: run tests/k8s/build.sh --e2e (tests/storage-e2e/run.sh does)",
                b.display()
            ));
        }
    }
    let report = match &args.report_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("berth-storage-e2e.{}", std::process::id())),
    };
    std::fs::create_dir_all(&report).map_err(|e| format!("{}: {e}", report.display()))?;
    let budget = Duration::from_secs(60 * budget_minutes(args));

    if args.dry_run {
        let argv = ginkgo_args(
            args,
            1,
            &e2e,
            Path::new("/nonexistent"),
            &bin.join("kubectl"),
            &report,
        );
        run_ginkgo(&ginkgo, &argv, &report.join("e2e.log"), budget)?;
        let specs = read_report(&report.join("report.json"))?;
        for s in &specs {
            println!("{}", s.name);
        }
        println!("storage-e2e: {} specs selected", specs.len());
        return Ok(Counts::default());
    }

    let mut node = RealNode::start(&berth_tests::berth_bin()).await?;
    let mut snapshotter = None;
    let result = async {
        install_berth(&node).await?;
        set_volume_limit(&node, MAX_VOLUMES_PER_NODE).await?;
        snapshotter = Some(start_snapshotter(&node, &bin, &report)?);
        let images = images::build_e2e(&node.dir.join("e2e-images"), &agnhost)?;
        let references: Vec<&str> = images.iter().map(|(r, _)| *r).collect();
        check_image_references(&e2e, &references)?;
        for (reference, tarball) in &images {
            node.import_image(reference, tarball)?;
        }
        eprintln!(
            "storage-e2e: node ready, berth installed, images imported in {:.0}s",
            started.elapsed().as_secs_f64()
        );
        let argv = ginkgo_args(
            args,
            args.procs,
            &e2e,
            node.kubeconfig(),
            &node.kubectl,
            &report,
        );
        let ran = Instant::now();
        run_ginkgo(&ginkgo, &argv, &report.join("e2e.log"), budget)?;
        let specs = read_report(&report.join("report.json"))?;
        let (counts, text) = summarize(&specs);
        println!("{text}");
        println!(
            "storage-e2e: specs ran in {:.0}s ({} run, {} processes, skip expression {:?})",
            ran.elapsed().as_secs_f64(),
            if args.full { "full" } else { "CI subset" },
            args.procs,
            skip_expression(args.full)
        );
        Ok::<Counts, String>(counts)
    }
    .await;
    if result.is_err() || args.report_dir.is_some() {
        let _ = std::fs::write(report.join("node.log"), node.logs());
    }
    // Stopped (on drop) before the node: the sidecar talks to berth's socket.
    drop(snapshotter);
    let left = node.teardown().await;
    if !left.is_empty() {
        eprintln!("storage-e2e: teardown left: {left:?}");
    }
    let counts = result?;
    if !left.is_empty() {
        return Err("teardown left things behind".into());
    }
    eprintln!(
        "storage-e2e: report in {}, total {:.0}s",
        report.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(counts)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    match run(&args).await {
        Ok(_) if args.dry_run => {}
        Ok(c) => {
            println!(
                "storage-e2e: {} passed, {} failed, {} skipped",
                c.passed, c.failed, c.skipped
            );
            if c.failed > 0 {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("storage-e2e: {e}");
            println!("storage-e2e: 0 passed, 1 failed, 0 skipped");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_name_drops_the_pattern_and_every_tag() {
        for (text, want) in [
            (
                "[Testpattern: Dynamic PV (xfs)] [Slow] multiVolume [Slow]",
                "multiVolume",
            ),
            (
                "[Testpattern: Dynamic PV (default fs)] volume-expand",
                "volume-expand",
            ),
            (
                "[Testpattern: Dynamic Snapshot (delete policy)] snapshottable [Feature:VolumeSnapshotDataSource]",
                "snapshottable",
            ),
            ("[Testpattern: x]", "?"),
        ] {
            assert_eq!(suite_name(text), want, "{text}");
        }
    }

    #[test]
    fn the_ci_subset_leaves_out_more_than_the_full_run_and_every_group_says_why() {
        let (ci, full) = (skip_expression(false), skip_expression(true));
        for s in SKIPS {
            assert!(ci.contains(s.pattern), "{}", s.pattern);
            assert_eq!(full.contains(s.pattern), !s.ci_only, "{}", s.pattern);
            assert!(!s.reason.trim().is_empty(), "{}", s.pattern);
        }
    }
}
