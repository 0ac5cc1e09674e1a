//! `berth controller`: the in-cluster side of berth, built on kube-runtime.
//! Two controllers share one [`Context`]: [`provision`] watches claims and
//! creates volumes and PVs through the CSI driver, [`reclaim`] watches our
//! PVs and applies their reclaim policy. [`leader`] keeps a second replica
//! idle; [`metrics`] serves Prometheus metrics and probes.
//!
//! This mode coexists with kube-controller-manager's PV binder, which binds
//! claims to the PVs we create and marks them Released.

pub mod binder;
pub mod caches;
pub mod csi_client;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod provision;
pub mod ratelimit;
pub mod reclaim;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Client;
use kube::api::Api;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{Controller, watcher};

use csi_client::CsiClient;
use events::Events;
use metrics::Metrics;

#[derive(clap::Args, Debug)]
pub struct ControllerArgs {
    /// Kubeconfig file; in-cluster configuration when absent.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The CSI driver's controller socket, `unix:///path/to/csi.sock`.
    #[arg(long)]
    pub csi_endpoint: String,
    /// Provisioner name that StorageClasses refer to.
    #[arg(long, default_value = crate::csi::DRIVER_NAME)]
    pub provisioner_name: String,
    /// Run only while holding a coordination.k8s.io Lease.
    #[arg(long)]
    pub leader_elect: bool,
    /// Namespace of the leader-election Lease.
    #[arg(long, default_value = "berth-system")]
    pub leader_election_namespace: String,
    /// Seconds a leader's lease lasts without renewal.
    #[arg(long, default_value_t = 15)]
    pub leader_election_lease_duration: u64,
    /// This replica's identity in the lease (default: hostname and pid).
    #[arg(long)]
    pub identity: Option<String>,
    /// Serve `/metrics`, `/healthz` and `/readyz` on this address.
    #[arg(long)]
    pub metrics_address: Option<SocketAddr>,
    /// First retry delay after a failed attempt, in milliseconds (doubles per failure).
    #[arg(long, default_value_t = 1000)]
    pub retry_interval_start_ms: u64,
    /// Cap on the retry delay, in seconds.
    #[arg(long, default_value_t = 300)]
    pub retry_interval_max_secs: u64,
    /// Sustained rate of Kubernetes API requests per second (a client-side
    /// token bucket, as in client-go); 0 disables the limit.
    #[arg(long, default_value_t = 50.0)]
    pub kube_api_qps: f32,
    /// Requests that may go at once above `--kube-api-qps` (the bucket size).
    #[arg(long, default_value_t = 100)]
    pub kube_api_burst: u32,
    /// Reconciles each controller (claims, volumes) runs at the same time;
    /// one object is never reconciled twice at once. The binder (`--bind`)
    /// carries out up to 4× this many bindings at once. 0 means no limit.
    #[arg(long, default_value_t = 16)]
    pub worker_threads: u16,
    /// Also bind claims to volumes (the PV controller's job), for clusters
    /// whose kube-controller-manager runs without `persistentvolume-binder-controller`.
    #[arg(long)]
    pub bind: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("starting the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error(transparent)]
    Connect(#[from] crate::cluster::ReadError),
    #[error("Kubernetes client: {0}")]
    Client(String),
    #[error(transparent)]
    Csi(#[from] csi_client::CsiClientError),
    #[error("serving metrics on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Leader(#[from] leader::LeaderError),
}

/// Per-object exponential backoff: start, doubling, capped.
pub struct Backoff {
    failures: DashMap<String, u32>,
    start: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(start: Duration, max: Duration) -> Self {
        Backoff {
            failures: DashMap::new(),
            start,
            max,
        }
    }

    /// Records a failure of `key` and returns how long to wait before retrying.
    pub fn next(&self, key: &str) -> Duration {
        let mut n = self.failures.entry(key.to_string()).or_insert(0);
        let delay = self.start.saturating_mul(1u32 << (*n).min(20));
        *n += 1;
        delay.min(self.max)
    }

    pub fn reset(&self, key: &str) {
        self.failures.remove(key);
    }
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub csi: CsiClient,
    /// Name claims and classes refer to.
    pub provisioner: String,
    /// Name the driver reports (GetPluginInfo), written into PVs.
    pub driver: String,
    pub events: Events,
    pub metrics: Arc<Metrics>,
    pub backoff: Backoff,
    /// Claims waiting for a volume (the queue-depth gauge).
    pub pending: DashMap<String, ()>,
    /// Classes, volumes, nodes and CSINodes as the watches last saw them.
    pub caches: caches::Caches,
}

/// Entry point of `berth controller`; blocks until shutdown (SIGTERM/SIGINT).
pub fn run(args: ControllerArgs) -> Result<(), ControllerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ControllerError::Runtime)?;
    rt.block_on(run_async(args))
}

async fn client(args: &ControllerArgs) -> Result<Client, ControllerError> {
    let config = crate::cluster::read::config(args.kubeconfig.as_deref()).await?;
    let limit = ratelimit::RateLimitLayer::new(args.kube_api_qps, args.kube_api_burst);
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| ControllerError::Client(e.to_string()))?;
    Ok(builder.with_layer(&limit).build())
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}_{}", host.trim(), std::process::id())
}

async fn run_async(args: ControllerArgs) -> Result<(), ControllerError> {
    let client = client(&args).await?;
    let csi = CsiClient::new(&args.csi_endpoint)?;
    let metrics = Metrics::new();
    if let Some(addr) = args.metrics_address {
        // Bind now so a busy port fails the start rather than a probe later.
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| ControllerError::Metrics { addr, source })?;
        drop(listener);
        let m = metrics.clone();
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(addr, m).await {
                tracing::error!(%addr, error = %e, "metrics server stopped");
            }
        });
    }

    // The driver may start after us (sidecar ordering): wait for it.
    let driver = loop {
        match csi.driver_name().await {
            Ok(name) => break name,
            Err(e) => {
                tracing::info!(endpoint = %args.csi_endpoint, error = %e.message(), "waiting for the CSI driver");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                }
            }
        }
    };
    metrics.set_ready(true);
    tracing::info!(driver = %driver, provisioner = %args.provisioner_name, "CSI driver ready");

    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let elector = args.leader_elect.then(|| {
        leader::Elector::new(
            client.clone(),
            &args.leader_election_namespace,
            &format!("{}-controller", args.provisioner_name.replace('.', "-")),
            &identity,
            Duration::from_secs(args.leader_election_lease_duration.max(2)),
        )
    });
    if let Some(e) = &elector {
        tokio::select! {
            _ = e.acquire() => {}
            _ = shutdown_signal() => return Ok(()),
        }
        metrics.is_leader.set(1);
    }

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "berth-controller".into(),
            instance: Some(identity),
        },
    );
    let ctx = Arc::new(Context {
        client: client.clone(),
        csi,
        provisioner: args.provisioner_name.clone(),
        driver,
        events: Events::new(recorder),
        metrics: metrics.clone(),
        backoff: Backoff::new(
            Duration::from_millis(args.retry_interval_start_ms.max(1)),
            Duration::from_secs(args.retry_interval_max_secs.max(1)),
        ),
        pending: DashMap::new(),
        caches: caches::Caches::start(&client),
    });

    let workers = kube::runtime::controller::Config::default().concurrency(args.worker_threads);
    let claims = Controller::new(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(workers.clone())
    .graceful_shutdown_on(shutdown_signal())
    .run(provision::reconcile, provision::error_policy, ctx.clone())
    .for_each(|_| futures::future::ready(()));
    let volumes = Controller::new(
        Api::<PersistentVolume>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(workers)
    .graceful_shutdown_on(shutdown_signal())
    .run(reclaim::reconcile, reclaim::error_policy, ctx.clone())
    .for_each(|_| futures::future::ready(()));
    let binder = async {
        if args.bind {
            // A binding is four small writes with no CSI call behind them,
            // so the binder can keep more of them in flight than reconciles.
            let writes = match args.worker_threads {
                0 => usize::MAX,
                n => usize::from(n) * 4,
            };
            tokio::select! {
                _ = binder::run(ctx.clone(), writes) => {}
                _ = shutdown_signal() => {}
            }
        }
    };
    let work = futures::future::join3(claims, volumes, binder);

    match &elector {
        None => {
            work.await;
            Ok(())
        }
        Some(e) => {
            let result = tokio::select! {
                _ = work => Ok(()),
                lost = e.keep() => Err(ControllerError::from(lost)),
            };
            if result.is_ok() {
                e.release().await;
            }
            result
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::Backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_per_failure_up_to_the_cap_and_resets() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let delays: Vec<_> = (0..5).map(|_| b.next("ns/a").as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 5, 5]);
        assert_eq!(b.next("ns/b").as_secs(), 1, "keys back off independently");
        b.reset("ns/a");
        assert_eq!(b.next("ns/a").as_secs(), 1);
    }
}
