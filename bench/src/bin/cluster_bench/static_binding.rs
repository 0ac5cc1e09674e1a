//! Comparison 2, static binding: `size` pre-created PV/PVC pairs of a
//! `kubernetes.io/no-provisioner` Immediate class, bound by
//! `berth controller --bind` or by kube-controller-manager's PV binder.
//!
//! What is fair: both sides get a control plane whose controller manager
//! runs without the PV binder, the same objects are created while no binder
//! runs, and only then the binder under test is started: berth's controller
//! (`--bind`), or a second kube-controller-manager that runs nothing but
//! `persistentvolume-binder-controller`, with its stock flags (client limits
//! 20 QPS, burst 30). The clock runs from that process's spawn to the last
//! claim Bound, so each side pays its own start-up and initial list, and
//! neither is timed while objects are still being written. The berth driver
//! runs on both sides (berth's controller talks to it at start); it has
//! nothing to do here.

use std::time::{Duration, Instant};

use berth_tests::berth_bin;
use k8s_openapi::api::core::v1::PersistentVolume;
use kube::api::Api;
use serde_json::json;

use crate::cluster::{BenchError, BoundWatch, Cluster, claim, object};
use crate::provisioning::Side;

pub const CLASS: &str = "bench-static";

/// Every pair is 1Gi. With sizes cycling through 1..=64 Gi, the stock
/// binder (started with the objects present) bound some small claims to
/// larger volumes while its volume cache was still filling and stranded the
/// largest claims for good (7 of 2,000), so it never finished; equal sizes
/// time both binders on work each can complete.
fn size_of(_i: usize) -> String {
    "1Gi".to_string()
}

fn volume(i: usize) -> PersistentVolume {
    object(json!({
        "metadata": { "name": format!("static-{i:05}") },
        "spec": {
            "capacity": { "storage": size_of(i) },
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": CLASS,
            "nfs": { "server": "nfs.example", "path": format!("/export/{i:05}") },
        }
    }))
}

#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub secs: f64,
    /// Spawn to the first claim Bound: start-up and initial list.
    pub first_secs: f64,
    pub rss_mib: f64,
}

/// Fails at once, before any control plane starts, when this berth build
/// has no `--bind`.
pub fn check_berth_bind(berth_flags: &[String]) -> Result<(), BenchError> {
    if berth_flags.iter().any(|f| f == "--bind") {
        Ok(())
    } else {
        Err(BenchError::Unavailable(format!(
            "static-binding: `{} controller --help` lists no --bind flag; this berth build cannot bind claims itself, so there is nothing to compare",
            berth_bin().display()
        )))
    }
}

pub async fn run(
    side: Side,
    size: usize,
    concurrency: usize,
    timeout: Duration,
) -> Result<Run, BenchError> {
    let mut cluster = Cluster::start(false).await?;
    let (socket, _) = cluster.start_driver().await?;
    cluster
        .create_class(CLASS, "kubernetes.io/no-provisioner")
        .await?;
    let pvs: Api<PersistentVolume> = Api::all(cluster.client.clone());
    cluster.create_all(&pvs, size, concurrency, volume).await?;
    cluster
        .create_all(&cluster.claims(), size, concurrency, |i| {
            claim(i, CLASS, &size_of(i))
        })
        .await?;
    let mut bound = BoundWatch::start(&cluster).await?;

    let t0 = Instant::now();
    let idx = match side {
        Side::Berth => {
            let args = vec![
                "controller".to_string(),
                format!("--kubeconfig={}", cluster.kubeconfig().display()),
                format!("--csi-endpoint=unix://{}", socket.display()),
                "--bind".to_string(),
            ];
            cluster.spawn("berth controller --bind", &berth_bin(), &args)?
        }
        Side::Upstream => cluster.start_stock_binder(&[])?,
    };
    bound.wait_all(&mut cluster, &[idx], size, timeout).await?;
    let secs = t0.elapsed().as_secs_f64();
    let first_secs = bound
        .first_bound()
        .map_or(secs, |t| t.duration_since(t0).as_secs_f64());
    let rss_mib = cluster
        .peak_rss_mib(idx)
        .ok_or_else(|| BenchError::Unavailable("no VmHWM for the binder".into()))?;
    Ok(Run {
        secs,
        first_secs,
        rss_mib,
    })
}
