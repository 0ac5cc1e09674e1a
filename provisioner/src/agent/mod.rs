//! `berth node`: the node agent, one per node (deploy/'s DaemonSet).
//!
//! One process does, for its own node only, what upstream splits over a
//! CSI driver and three sidecars:
//! - the CSI Identity, Node and Controller services on the driver socket
//!   (the kubelet stages and publishes through it);
//! - registration with the kubelet ([`registration`]), so no
//!   node-driver-registrar is needed;
//! - provisioning of the claims assigned to this node
//!   (`volume.kubernetes.io/selected-node`), Delete reclaim of the PVs
//!   whose node affinity names it, as external-provisioner's
//!   `--node-deployment` does, with watches that only keep this node's
//!   share;
//! - its `CSIStorageCapacity` objects, republished when its free space
//!   changes;
//! - the orphan sweep ([`sweep`]): volumes left by a crash or a claim
//!   deleted while nobody watched are deleted after a grace period.
//!
//! The CSI side never waits on the API server: a node keeps mounting its
//! volumes while the control plane is away.

pub mod authority;
pub mod registration;
pub mod sweep;
pub mod usage_events;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crate::controller::caches::Feeds;
use crate::controller::csi_client::CsiClient;
use crate::controller::metrics::{Extra, Metrics};
use crate::controller::ownership::Scope;
use crate::controller::{self, Context, ContextParts, ControllerError, KubeArgs};
use crate::csi::{self, CsiError, DriverArgs, Mode};

/// The readiness check of the Kubernetes side.
const KUBE_CHECK: &str = "kube";

#[derive(clap::Args, Debug)]
pub struct AgentArgs {
    #[command(flatten)]
    pub driver: DriverArgs,
    #[command(flatten)]
    pub kube: KubeArgs,
    /// Namespace of this node's CSIStorageCapacity objects (the agent's own).
    #[arg(long, default_value = "berth-system")]
    pub namespace: String,
    /// Socket for the kubelet's plugin registration; empty to leave
    /// registration to node-driver-registrar (see deploy/kind/README.md).
    #[arg(
        long,
        default_value = "/var/lib/kubelet/plugins_registry/csi.berth.dev-reg.sock"
    )]
    pub registration_path: String,
    /// The CSI socket's path as the kubelet sees it, when it differs from
    /// `--endpoint`'s (another mount point in the container).
    #[arg(long)]
    pub kubelet_endpoint: Option<String>,
    /// Serve `/metrics` (the agent's and the driver's), `/healthz` and
    /// `/readyz` on this address.
    #[arg(long)]
    pub metrics_address: Option<SocketAddr>,
    #[command(flatten)]
    pub sweep: sweep::SweepArgs,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Csi(#[from] CsiError),
    #[error(transparent)]
    Kube(#[from] ControllerError),
}

/// Entry point of `berth node`; blocks until SIGTERM/SIGINT.
pub fn run(args: AgentArgs) -> Result<(), AgentError> {
    controller::check_topology_key(&args.driver.topology_key)?;
    let driver = csi::open_driver(&args.driver, Mode::All)?;
    csi::spawn_occupied_sampler(&driver);
    csi::spawn_usage_watch(&driver, &args.driver)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| AgentError::Kube(ControllerError::Runtime(e)))?;
    runtime.block_on(run_async(args, driver))
}

async fn run_async(args: AgentArgs, driver: Arc<csi::volumes::Driver>) -> Result<(), AgentError> {
    let node = args.driver.node_id.clone();
    let socket = csi::socket_path(&args.driver.endpoint)?;
    let metrics = Metrics::new("berth_node");
    let csi_ctx = csi::Ctx {
        driver: driver.clone(),
        metrics: Arc::new(csi::metrics::Metrics::default()),
    };
    let orphans_deleted = Arc::new(AtomicU64::new(0));
    if let Some(addr) = args.metrics_address {
        let text = csi_ctx.metrics.clone();
        let store = driver.clone();
        let orphans = orphans_deleted.clone();
        let state = driver.clone();
        let extra = Extra {
            text: Some(Arc::new(move || {
                let mut page = text.render();
                page.push_str(&csi::metrics::render_driver(&state));
                page.push_str(&sweep::render(&orphans));
                page
            })),
            healthy: Some(Arc::new(move || store.store.healthy())),
        };
        controller::metrics::spawn_server(addr, metrics.clone(), extra)?;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let listener = csi::bind_socket(&socket)?;
    let csi_server = tokio::spawn(csi::serve(
        listener,
        csi_ctx,
        Mode::All,
        stopped(stop_rx.clone()),
    ));
    metrics.set_check("csi", Ok(()));
    metrics.set_check_detail(csi::metrics::CAPACITY_CHECK, driver.quota.summary());
    tracing::info!(endpoint = %args.driver.endpoint, node = %node, "berth node agent: CSI serving");

    let registration = (!args.registration_path.is_empty()).then(|| {
        let endpoint = args
            .kubelet_endpoint
            .clone()
            .unwrap_or_else(|| socket.display().to_string());
        let service =
            registration::RegistrationService::new(csi::DRIVER_NAME, &endpoint, metrics.clone());
        tokio::spawn(registration::run(
            PathBuf::from(&args.registration_path),
            service,
            stop_rx.clone(),
        ))
    });

    metrics.set_check(KUBE_CHECK, Err("connecting to the API server".into()));
    let client = controller::client(&args.kube, &metrics).await?;
    let csi_client = CsiClient::new(&args.driver.endpoint).map_err(ControllerError::from)?;
    let (ctx, feeds) = Context::start(ContextParts {
        client,
        kube: &args.kube,
        csi: Some(csi_client),
        driver: csi::DRIVER_NAME.to_string(),
        scope: Scope::Node(node.clone()),
        topology_key: args.driver.topology_key.clone(),
        identity: format!("berth-node-{node}"),
        metrics: metrics.clone(),
        placement: false,
    });
    // Deleted claims whose request cannot be rebuilt are looked up here.
    let lookup: controller::intent::VolumeLookup = {
        let driver = driver.clone();
        Arc::new(move |name: &str| {
            driver
                .store
                .volume_by_name(name)
                .map(|found| found.map(|v| v.id))
                .map_err(|e| e.to_string())
        })
    };
    let _ = ctx.volume_lookup.set(lookup);
    let reading: controller::capacity::Reading = {
        let driver = driver.clone();
        Arc::new(move || driver.capacity_reading())
    };
    let sweep = (args.sweep.orphan_sweep_interval_secs > 0).then(|| {
        let s = sweep::Sweep::new(
            driver.clone(),
            ctx.clone(),
            Duration::from_secs(args.sweep.orphan_grace_secs),
            orphans_deleted.clone(),
        );
        tokio::spawn(s.run(Duration::from_secs(args.sweep.orphan_sweep_interval_secs)))
    });
    let usage_events = tokio::spawn(usage_events::run(ctx.clone(), driver.watch.subscribe()));
    let kube_side = kube_side(ctx, feeds, &args, driver.subscribe_capacity(), reading);

    tokio::select! {
        _ = kube_side => {}
        _ = csi::shutdown_signal() => {}
    }
    tracing::info!("shutting down");
    if let Some(s) = sweep {
        s.abort();
    }
    usage_events.abort();
    let _ = stop_tx.send(true);
    if let Some(r) = registration
        && let Ok(Err(e)) = r.await
    {
        tracing::warn!(error = %e, "registration ended with an error");
    }
    let served = csi_server
        .await
        .unwrap_or_else(|e| Err(CsiError::Server(e.to_string())));
    let _ = std::fs::remove_file(&socket);
    Ok(served?)
}

/// Provisioning, reclaim and capacity for this node, until shutdown.
async fn kube_side(
    ctx: Arc<Context>,
    feeds: Feeds,
    args: &AgentArgs,
    capacity_changes: tokio::sync::watch::Receiver<()>,
    reading: controller::capacity::Reading,
) {
    let ready = {
        let ctx = ctx.clone();
        async move {
            match ctx.caches.ready().await {
                Ok(()) => ctx.metrics.set_check(KUBE_CHECK, Ok(())),
                Err(e) => ctx
                    .metrics
                    .set_check(KUBE_CHECK, Err(format!("caches stopped: {e}"))),
            }
        }
    };
    let volumes = controller::run_volume_controllers(ctx.clone(), feeds, args.kube.worker_threads);
    let capacity = controller::capacity::run(
        ctx.clone(),
        args.namespace.clone(),
        capacity_changes,
        reading,
    );
    futures::future::join3(ready, volumes, capacity).await;
}
