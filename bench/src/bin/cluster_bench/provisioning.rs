//! Comparison 3, dynamic provisioning: the same burst of Immediate claims
//! provisioned through the same `berth csi` socket by `berth controller` or
//! by the CSI external-provisioner, with the stock PV binder binding the
//! pairs in both cases.
//!
//! One run: a fresh control plane, the driver, the provisioner started and
//! given [`super::cluster`]'s settle time; then the clock starts, `size`
//! claims are created (`concurrency` requests at a time) and the clock
//! stops when the watch sees all of them Bound. The provisioner's peak RSS
//! (`VmHWM`) is read before it is stopped.
//!
//! Default runs use every component's stock flags. Tuned runs raise the
//! provisioners' client limits ([`TUNED`]) and also the PV binder's
//! ([`BINDER_TUNED`], a binder-only kube-controller-manager started and
//! probed before the provisioner), since the binder writes more per claim
//! than either provisioner and would otherwise set the pace for both.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_tests::berth_bin;

use crate::cluster::{BenchError, BoundWatch, Cluster, DRIVER, claim};

pub const CLASS: &str = "bench-immediate";

/// Client limits of the tuned runs: `--kube-api-qps`, `--kube-api-burst`,
/// `--worker-threads` (the external-provisioner's default worker count is
/// already 100; its default client limits are 5 QPS, burst 10).
pub const TUNED: [(&str, &str); 3] = [
    ("--kube-api-qps", "100"),
    ("--kube-api-burst", "200"),
    ("--worker-threads", "100"),
];

/// The stock binder's client limits in tuned runs (defaults: 20 QPS, burst 30).
pub const BINDER_TUNED: [&str; 2] = ["--kube-api-qps=200", "--kube-api-burst=400"];

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
    /// The tuning flags this `berth controller` build accepts.
    pub berth_tuned: Vec<String>,
}

impl Setup {
    pub fn new(
        size: usize,
        concurrency: usize,
        timeout: Duration,
        csi_provisioner: PathBuf,
        berth_flags: &[String],
    ) -> Setup {
        let berth_tuned = TUNED
            .iter()
            .filter(|(flag, _)| berth_flags.iter().any(|f| f == flag))
            .map(|(flag, v)| format!("{flag}={v}"))
            .collect();
        Setup {
            size,
            concurrency,
            timeout,
            csi_provisioner,
            berth_tuned,
        }
    }

    /// The tuning flags `berth controller` lacks (tuned runs go without them).
    pub fn berth_missing(&self) -> Vec<&'static str> {
        TUNED
            .iter()
            .map(|(flag, _)| *flag)
            .filter(|flag| !self.berth_tuned.iter().any(|f| f.starts_with(flag)))
            .collect()
    }

    fn args(&self, side: Side, tuning: Tuning, cluster: &Cluster, socket: &str) -> Vec<String> {
        let kubeconfig = format!("--kubeconfig={}", cluster.kubeconfig().display());
        let mut args = match side {
            Side::Berth => vec![
                "controller".to_string(),
                kubeconfig,
                format!("--csi-endpoint=unix://{socket}"),
            ],
            // Leader election is off by default; Topology is GA and on.
            Side::Upstream => vec![
                kubeconfig,
                format!("--csi-address={socket}"),
                "--v=1".to_string(),
            ],
        };
        if tuning == Tuning::Tuned {
            match side {
                Side::Berth => args.extend(self.berth_tuned.iter().cloned()),
                Side::Upstream => args.extend(TUNED.iter().map(|(f, v)| format!("{f}={v}"))),
            }
        }
        args
    }
}

/// One side's measurement.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub secs: f64,
    pub rss_mib: f64,
}

pub async fn run(setup: &Setup, side: Side, tuning: Tuning) -> Result<Run, BenchError> {
    // Tuned runs lift the binder's client limits too: at its stock 20 QPS
    // the binder, not the provisioner, sets the pace (about 250 s for 1,000
    // claims with either provisioner).
    let mut cluster = Cluster::start(tuning == Tuning::Default).await?;
    if tuning == Tuning::Tuned {
        let binder = cluster.start_stock_binder(&BINDER_TUNED.map(String::from))?;
        cluster.wait_binder_ready(binder).await?;
    }
    let socket = cluster.start_driver().await?;
    cluster.create_class(CLASS, DRIVER).await?;
    let args = setup.args(side, tuning, &cluster, &socket.display().to_string());
    let (name, bin) = match side {
        Side::Berth => ("berth controller", berth_bin()),
        Side::Upstream => ("csi-provisioner", setup.csi_provisioner.clone()),
    };
    let idx = cluster.start_side(name, &bin, &args).await?;
    let mut bound = BoundWatch::start(&cluster).await?;

    let t0 = Instant::now();
    cluster
        .create_all(&cluster.claims(), setup.size, setup.concurrency, |i| {
            claim(i, CLASS, "1Mi")
        })
        .await?;
    bound
        .wait_all(&mut cluster, &[idx], setup.size, setup.timeout)
        .await?;
    let secs = t0.elapsed().as_secs_f64();
    let rss_mib = cluster
        .peak_rss_mib(idx)
        .ok_or_else(|| BenchError::Unavailable(format!("no VmHWM for {name}")))?;
    Ok(Run { secs, rss_mib })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuned_berth_runs_pass_only_the_flags_its_build_has() {
        let flags = ["--kubeconfig", "--kube-api-qps", "--worker-threads"].map(String::from);
        let setup = Setup::new(1, 1, Duration::from_secs(1), PathBuf::new(), &flags);
        assert_eq!(
            setup.berth_tuned,
            ["--kube-api-qps=100", "--worker-threads=100"]
        );
        assert_eq!(setup.berth_missing(), ["--kube-api-burst"]);
    }
}
