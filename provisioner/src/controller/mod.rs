//! `berth controller` and the Kubernetes side of `berth node`, built on
//! kube-runtime. One [`Context`] is shared by every reconcile:
//! [`provision`] watches claims and creates volumes and PVs through a CSI
//! driver, [`reclaim`] applies our PVs' reclaim policy, [`binder`] runs the
//! planner's rounds (berth's placement of Immediate node-local claims and,
//! with `--bind`, the PV binder's job), [`node_loss`] handles the volumes of
//! deleted Nodes, [`capacity`] publishes a node's CSIStorageCapacity,
//! [`resize`] expands the volumes of claims that ask for more.
//! [`intent`] holds a claim with a finalizer from before CreateVolume until
//! its PV exists or its volume is deleted.
//! [`ownership`] says which process does what; [`leader`] keeps a second
//! controller replica idle; [`metrics`] serves metrics and probes.
//!
//! Two shapes:
//! - **node-local** (deploy/): `berth controller` without `--csi-endpoint`
//!   holds no volume state: it places Immediate claims, handles node loss
//!   and optionally binds; a `berth node` agent on every node provisions,
//!   reclaims and resizes the volumes of its node.
//! - **central**: `berth controller --csi-endpoint` provisions and reclaims
//!   every claim through one CSI driver socket, as the CSI
//!   external-provisioner does.
//!
//! Either coexists with kube-controller-manager's PV binder, which binds
//! claims to the PVs we create and marks them Released, unless `--bind`.

pub mod binder;
pub mod caches;
pub mod capacity;
pub mod csi_client;
pub mod data_source;
pub mod events;
pub mod intent;
pub mod leader;
pub mod metrics;
pub mod node_loss;
pub mod ownership;
pub mod provision;
pub mod ratelimit;
pub mod reclaim;
pub mod requests;
pub mod resize;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use futures::StreamExt;
use kube::Client;
use kube::runtime::Controller;
use kube::runtime::events::{Recorder, Reporter};

use caches::{Caches, Feeds};
use csi_client::CsiClient;
use events::Events;
use metrics::Metrics;
use ownership::Scope;

/// `--kube-api-qps` by default, per process. Chosen for a small cluster
/// (kind, a few nodes), which is where `kubectl apply -k deploy/` lands
/// first: the controller makes four writes per Immediate claim it places and
/// binds, so 100 QPS takes a burst of 1,000 claims to Bound in well under a
/// minute, and a StatefulSet scale-up of up to 50 claims fits in the burst.
/// An API server's default in-flight limits (400 reads, 200 writes) and its
/// priority-and-fairness queues hold that easily; each node agent writes
/// only for its own node's claims, so the agents' sum follows the work, not
/// the node count. Large or busy clusters lower it per process.
pub const DEFAULT_KUBE_API_QPS: f32 = 100.0;
/// `--kube-api-burst` by default (twice the QPS, as client-go's users
/// usually set it).
pub const DEFAULT_KUBE_API_BURST: u32 = 200;
/// `--worker-threads` by default.
pub const DEFAULT_WORKER_THREADS: u16 = 16;

/// What every process that talks to the API server shares: the client's
/// configuration and limits, the provisioner it serves, retry pacing.
#[derive(clap::Args, Debug, Clone)]
pub struct KubeArgs {
    /// Kubeconfig file; in-cluster configuration when absent.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Provisioner name that StorageClasses refer to.
    #[arg(long, default_value = crate::csi::DRIVER_NAME)]
    pub provisioner_name: String,
    /// First retry delay after a failed attempt, in milliseconds (doubles per failure).
    #[arg(long, default_value_t = 1000)]
    pub retry_interval_start_ms: u64,
    /// Cap on the retry delay, in seconds.
    #[arg(long, default_value_t = 300)]
    pub retry_interval_max_secs: u64,
    /// Sustained rate of Kubernetes API requests per second (a client-side
    /// token bucket, as in client-go); 0 disables the limit.
    #[arg(long, default_value_t = DEFAULT_KUBE_API_QPS)]
    pub kube_api_qps: f32,
    /// Requests that may go at once above `--kube-api-qps` (the bucket size).
    #[arg(long, default_value_t = DEFAULT_KUBE_API_BURST)]
    pub kube_api_burst: u32,
    /// Reconciles each controller (claims, volumes) runs at the same time;
    /// one object is never reconciled twice at once. The binder (`--bind`)
    /// carries out up to 4× this many writes at once. 0 means no limit.
    #[arg(long, default_value_t = DEFAULT_WORKER_THREADS)]
    pub worker_threads: u16,
}

#[derive(clap::Args, Debug)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Provision and reclaim every claim through this CSI driver socket
    /// (`unix:///path/to/csi.sock`). Without it the controller leaves that
    /// to the `berth node` agents and places Immediate claims on nodes.
    #[arg(long)]
    pub csi_endpoint: Option<String>,
    /// Topology key whose value names a volume's node (in PV node affinity).
    #[arg(long, default_value = crate::csi::DEFAULT_TOPOLOGY_KEY)]
    pub topology_key: String,
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
    /// Also bind claims to volumes (the PV controller's job), for clusters
    /// whose kube-controller-manager runs without `persistentvolume-binder-controller`.
    #[arg(long)]
    pub bind: bool,
    /// Seconds a Node must stay deleted before its volumes are handled as
    /// lost (node-local shape only): a node that re-registers at once keeps
    /// everything.
    #[arg(long, default_value_t = 300)]
    pub node_loss_grace_secs: u64,
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
    #[error("--topology-key {key:?}: {problem}")]
    TopologyKey { key: String, problem: String },
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
    /// The driver volumes are made through; `None` for the node-local
    /// controller, which makes none.
    pub csi: Option<CsiClient>,
    /// Name claims and classes refer to.
    pub provisioner: String,
    /// Name the driver reports (GetPluginInfo), written into PVs.
    pub driver: String,
    /// Which claims and volumes this process acts on.
    pub scope: Scope,
    /// Topology key whose value names a volume's node.
    pub topology_key: String,
    pub events: Events,
    pub metrics: Arc<Metrics>,
    pub backoff: Backoff,
    /// Claims waiting for a volume (the queue-depth gauge).
    pub pending: DashMap<String, ()>,
    /// Volume handles this process deleted whose PV may still be in a
    /// lagging cache: a reconcile of that stale PV releases it without a
    /// second DeleteVolume.
    pub deleted: DashMap<String, std::time::Instant>,
    /// Claims, classes, volumes, nodes and CSINodes as the watches last saw them.
    pub caches: Caches,
    /// A node agent's lookup of its own volumes by name, for deleted claims
    /// whose CreateVolume request cannot be rebuilt ([`intent`]).
    pub volume_lookup: std::sync::OnceLock<intent::VolumeLookup>,
}

/// How a [`Context`] is made; `csi` and `driver` come from the caller.
pub struct ContextParts<'a> {
    pub client: Client,
    pub kube: &'a KubeArgs,
    pub csi: Option<CsiClient>,
    pub driver: String,
    pub scope: Scope,
    pub topology_key: String,
    pub identity: String,
    pub metrics: Arc<Metrics>,
    /// Keep CSIDrivers and capacity objects (placement).
    pub placement: bool,
}

impl Context {
    /// Starts the caches of `scope` and returns the context with the
    /// claim and volume feeds for the controllers that reconcile them.
    pub fn start(parts: ContextParts<'_>) -> (Arc<Context>, Feeds) {
        let (caches, feeds) = Caches::start(
            &parts.client,
            &parts.scope,
            &parts.topology_key,
            parts.placement,
        );
        let recorder = Recorder::new(
            parts.client.clone(),
            Reporter {
                controller: match parts.scope {
                    Scope::Cluster => "berth-controller".into(),
                    Scope::Node(_) => "berth-node".into(),
                },
                instance: Some(parts.identity),
            },
        );
        let ctx = Arc::new(Context {
            client: parts.client,
            csi: parts.csi,
            provisioner: parts.kube.provisioner_name.clone(),
            driver: parts.driver,
            scope: parts.scope,
            topology_key: parts.topology_key,
            events: Events::new(recorder),
            metrics: parts.metrics,
            backoff: Backoff::new(
                Duration::from_millis(parts.kube.retry_interval_start_ms.max(1)),
                Duration::from_secs(parts.kube.retry_interval_max_secs.max(1)),
            ),
            pending: DashMap::new(),
            deleted: DashMap::new(),
            caches,
            volume_lookup: std::sync::OnceLock::new(),
        });
        (ctx, feeds)
    }
}

/// Runs the provisioning and reclaim controllers on the feeds until
/// shutdown.
pub async fn run_volume_controllers(ctx: Arc<Context>, feeds: Feeds, workers: u16) {
    let config = kube::runtime::controller::Config::default().concurrency(workers);
    let claims = Controller::for_stream(feeds.claims, ctx.caches.claims.clone())
        .with_config(config.clone())
        .graceful_shutdown_on(shutdown_signal())
        .run(provision::reconcile, provision::error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    let volumes = Controller::for_stream(feeds.volumes, ctx.caches.volumes.clone())
        .with_config(config)
        .graceful_shutdown_on(shutdown_signal())
        .run(reclaim::reconcile, reclaim::error_policy, ctx.clone())
        .for_each(|_| futures::future::ready(()));
    futures::future::join(claims, volumes).await;
}

/// Entry point of `berth controller`; blocks until shutdown (SIGTERM/SIGINT).
pub fn run(args: ControllerArgs) -> Result<(), ControllerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ControllerError::Runtime)?;
    rt.block_on(run_async(args))
}

/// A client with `kube`'s configuration and request rate limit, counting
/// its requests in `metrics`.
pub async fn client(kube: &KubeArgs, metrics: &Arc<Metrics>) -> Result<Client, ControllerError> {
    let config = crate::cluster::read::config(kube.kubeconfig.as_deref()).await?;
    let limit = ratelimit::RateLimitLayer::new(kube.kube_api_qps, kube.kube_api_burst);
    let count = requests::CountLayer::new(metrics.clone());
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| ControllerError::Client(e.to_string()))?;
    Ok(builder.with_layer(&limit).with_layer(&count).build())
}

pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}_{}", host.trim(), std::process::id())
}

/// Checks a topology key the way the API server checks a label key: the
/// kubelet copies it onto the Node as a label, so an invalid key would make
/// every registration fail.
pub fn check_topology_key(key: &str) -> Result<(), ControllerError> {
    crate::model::validate_label_key(key).map_err(|problem| ControllerError::TopologyKey {
        key: key.to_string(),
        problem,
    })
}

async fn run_async(args: ControllerArgs) -> Result<(), ControllerError> {
    check_topology_key(&args.topology_key)?;
    let metrics = Metrics::new("berth_controller");
    let client = client(&args.kube, &metrics).await?;
    if let Some(addr) = args.metrics_address {
        metrics::spawn_server(addr, metrics.clone(), metrics::Extra::default())?;
    }

    let csi = args
        .csi_endpoint
        .as_deref()
        .map(CsiClient::new)
        .transpose()?;
    let driver = match &csi {
        // The driver may start after us (sidecar ordering): wait for it.
        Some(c) => loop {
            match c.driver_name().await {
                Ok(name) => break name,
                Err(e) => {
                    tracing::info!(endpoint = ?args.csi_endpoint, error = %e.message(), "waiting for the CSI driver");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = shutdown_signal() => return Ok(()),
                    }
                }
            }
        },
        None => args.kube.provisioner_name.clone(),
    };
    metrics.set_check("controller", Ok(()));
    tracing::info!(driver = %driver, provisioner = %args.kube.provisioner_name, central = csi.is_some(), "starting");

    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let elector = args.leader_elect.then(|| {
        leader::Elector::new(
            client.clone(),
            &args.leader_election_namespace,
            &format!(
                "{}-controller",
                args.kube.provisioner_name.replace('.', "-")
            ),
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

    let central = csi.is_some();
    let (ctx, feeds) = Context::start(ContextParts {
        client: client.clone(),
        kube: &args.kube,
        csi,
        driver,
        scope: Scope::Cluster,
        topology_key: args.topology_key.clone(),
        identity,
        metrics: metrics.clone(),
        placement: !central || args.bind,
    });

    let workers = args.kube.worker_threads;
    let volume_work = async {
        if central {
            run_volume_controllers(ctx.clone(), feeds, workers).await;
        } else {
            feeds.drive();
            shutdown_signal().await;
        }
    };
    let mode = binder::Mode {
        bind: args.bind,
        place: !central,
    };
    let rounds = async {
        if mode.bind || mode.place {
            // A binding is four small writes with no CSI call behind them,
            // so the binder can keep more of them in flight than reconciles.
            let writes = match workers {
                0 => usize::MAX,
                n => usize::from(n) * 4,
            };
            tokio::select! {
                _ = binder::run(ctx.clone(), writes, mode) => {}
                _ = shutdown_signal() => {}
            }
        }
    };
    let node_loss = async {
        if !central {
            let grace = Duration::from_secs(args.node_loss_grace_secs);
            tokio::select! {
                _ = futures::future::join(
                    node_loss::run(ctx.clone(), grace),
                    intent::run_stranded(ctx.clone(), grace),
                ) => {}
                _ = shutdown_signal() => {}
            }
        }
    };
    let work = futures::future::join3(volume_work, rounds, node_loss);

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

/// Resolves on SIGTERM or SIGINT (one handler for every berth service).
pub use crate::csi::shutdown_signal;

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
