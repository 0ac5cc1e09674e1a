//! Comparison 3, dynamic provisioning: the same burst of Immediate claims
//! taken to Bound by berth as a whole engine (`berth controller --bind` and
//! a `berth node` agent, as `kubectl apply -k deploy/bind` installs them,
//! with kube-controller-manager's PV binder off) or by the CSI
//! external-provisioner over `berth csi` with the stock PV binder.
//!
//! One run: a fresh control plane, the side's processes started and given
//! [`super::cluster`]'s settle time; then the clock starts, `size` claims
//! are created (`concurrency` requests at a time) and the clock stops when
//! the watch sees all of them Bound. The processes' peak RSS (`VmHWM`) is
//! read before they are stopped, and the API server's request counters
//! before and after give the requests per claim.
//!
//! Default runs use every component's stock flags. Tuned runs raise both
//! sides' client limits to the same [`TUNED`] values, and the stock PV
//! binder's too ([`BINDER_TUNED`], a binder-only kube-controller-manager
//! started and probed before the provisioner), since the binder writes more
//! per claim than the provisioner and would otherwise set upstream's pace.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_tests::berth_bin;

use crate::cluster::{BenchError, BoundWatch, Cluster, DRIVER, claim};
use crate::requests::Counts;

pub const CLASS: &str = "bench-immediate";

/// Client limits of the tuned runs for what provisions: the
/// external-provisioner and berth's node agent (`--kube-api-qps`,
/// `--kube-api-burst`, `--worker-threads`; the external-provisioner's
/// default worker count is already 100, its default limits 5 QPS, burst 10).
pub const TUNED: [(&str, &str); 3] = [
    ("--kube-api-qps", "100"),
    ("--kube-api-burst", "200"),
    ("--worker-threads", "100"),
];

/// Client limits of the tuned runs for what binds: the stock binder
/// (defaults 20 QPS, burst 30; it has no worker setting) and berth's
/// controller, which is berth's binder.
pub const BINDER_TUNED: [(&str, &str); 3] = [
    ("--kube-api-qps", "200"),
    ("--kube-api-burst", "400"),
    ("--worker-threads", "100"),
];

/// `flag=value` for each pair, without the flags `skip` names.
pub fn flags(pairs: &[(&str, &str)], skip: &[&str]) -> Vec<String> {
    pairs
        .iter()
        .filter(|(f, _)| !skip.contains(f))
        .map(|(f, v)| format!("{f}={v}"))
        .collect()
}

/// The stock binder's tuned flags (kube-controller-manager has no worker
/// count for it).
pub fn stock_binder_tuned() -> Vec<String> {
    flags(&BINDER_TUNED, &["--worker-threads"])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Berth,
    Upstream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tuning {
    Default,
    Tuned,
}

/// What every provisioning run shares.
pub struct Setup {
    pub size: usize,
    pub concurrency: usize,
    pub timeout: Duration,
    pub csi_provisioner: PathBuf,
}

impl Setup {
    /// Fails when this berth build lacks a tuning flag (`berth_flags`:
    /// what `berth controller --help` lists).
    pub fn new(
        size: usize,
        concurrency: usize,
        timeout: Duration,
        csi_provisioner: PathBuf,
        berth_flags: &[String],
    ) -> Result<Setup, BenchError> {
        let missing: Vec<&str> = TUNED
            .iter()
            .map(|(f, _)| *f)
            .filter(|f| !berth_flags.iter().any(|have| have == f))
            .collect();
        if !missing.is_empty() {
            return Err(BenchError::Unavailable(format!(
                "berth controller lacks {}",
                missing.join(", ")
            )));
        }
        Ok(Setup {
            size,
            concurrency,
            timeout,
            csi_provisioner,
        })
    }
}

/// One side's measurement.
#[derive(Debug, Clone)]
pub struct Run {
    pub secs: f64,
    /// Peak RSS of what provisions and serves the volumes, summed over its
    /// processes: berth's node agent (provisioner and driver in one
    /// process); csi-provisioner and the `berth csi` driver it calls.
    pub rss_mib: f64,
    /// Peak RSS of every process of the side, summed: berth adds its
    /// controller (placement and the binder); upstream's binder runs inside
    /// kube-controller-manager, whose size is not counted.
    pub all_rss_mib: f64,
    /// Every API request made while the claims were provisioned and bound,
    /// the bench's own creates taken out.
    pub requests: Counts,
}

/// One run of `side`. berth runs as deploy/bind installs it: `berth
/// controller --bind` (placement and binding; kube-controller-manager runs
/// without its PV binder) and a `berth node` agent serving the driver and
/// provisioning its node's claims. Upstream is the CSI external-provisioner
/// over `berth csi`, with kube-controller-manager's PV binder.
pub async fn run(setup: &Setup, side: Side, tuning: Tuning) -> Result<Run, BenchError> {
    // Tuned runs lift the binder's client limits too: at its stock 20 QPS
    // the binder, not the provisioner, sets the pace (about 250 s for 1,000
    // claims with either provisioner).
    let stock_binder = side == Side::Upstream && tuning == Tuning::Default;
    let mut cluster = Cluster::start(stock_binder).await?;
    let tuned = tuning == Tuning::Tuned;
    if side == Side::Upstream && tuned {
        let binder = cluster.start_stock_binder(&stock_binder_tuned())?;
        cluster.wait_binder_ready(binder).await?;
    }
    cluster.create_class(CLASS, DRIVER).await?;
    let kubeconfig = format!("--kubeconfig={}", cluster.kubeconfig().display());
    let (provisioner, other) = match side {
        Side::Berth => {
            let pick = |pairs: &[(&str, &str)]| if tuned { flags(pairs, &[]) } else { vec![] };
            let agent = cluster.start_agent(&pick(&TUNED)).await?;
            let mut args = vec!["controller".to_string(), kubeconfig, "--bind".to_string()];
            args.extend(pick(&BINDER_TUNED));
            let controller = cluster
                .start_side("berth controller --bind", &berth_bin(), &args)
                .await?;
            (agent, controller)
        }
        Side::Upstream => {
            let (socket, driver) = cluster.start_driver().await?;
            // Leader election is off by default; Topology is GA and on.
            let mut args = vec![
                kubeconfig,
                format!("--csi-address={}", socket.display()),
                "--v=1".to_string(),
            ];
            if tuned {
                args.extend(flags(&TUNED, &[]));
            }
            let provisioner = cluster
                .start_side("csi-provisioner", &setup.csi_provisioner, &args)
                .await?;
            (provisioner, driver)
        }
    };
    let mut bound = BoundWatch::start(&cluster).await?;

    let before = cluster.request_counts().await?;
    let t0 = Instant::now();
    cluster
        .create_all(&cluster.claims(), setup.size, setup.concurrency, |i| {
            claim(i, CLASS, "1Mi")
        })
        .await?;
    bound
        .wait_all(
            &mut cluster,
            &[provisioner, other],
            setup.size,
            setup.timeout,
        )
        .await?;
    let secs = t0.elapsed().as_secs_f64();
    let requests = cluster
        .request_counts()
        .await?
        .since(&before)
        .without("POST persistentvolumeclaims", setup.size as f64);
    let rss = |idx: usize| {
        cluster
            .peak_rss_mib(idx)
            .ok_or_else(|| BenchError::Unavailable(format!("no VmHWM for process {idx}")))
    };
    let (rss_mib, all_rss_mib) = match side {
        Side::Berth => {
            let agent = rss(provisioner)?;
            (agent, agent + rss(other)?)
        }
        Side::Upstream => {
            let both = rss(provisioner)? + rss(other)?;
            (both, both)
        }
    };
    Ok(Run {
        secs,
        rss_mib,
        all_rss_mib,
        requests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_is_tuned_like_its_upstream_counterpart() {
        assert_eq!(
            flags(&TUNED, &[]),
            [
                "--kube-api-qps=100",
                "--kube-api-burst=200",
                "--worker-threads=100"
            ]
        );
        assert_eq!(
            stock_binder_tuned(),
            ["--kube-api-qps=200", "--kube-api-burst=400"]
        );
    }

    #[test]
    fn a_berth_build_without_a_tuning_flag_is_refused() {
        let flags = ["--kubeconfig", "--kube-api-qps", "--worker-threads"].map(String::from);
        let err = Setup::new(1, 1, Duration::from_secs(1), PathBuf::new(), &flags)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("berth controller lacks --kube-api-burst")
        );
    }
}
