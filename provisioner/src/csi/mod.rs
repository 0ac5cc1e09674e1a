//! `berth csi`: the CSI driver. Wires the Identity, Controller and Node
//! services onto a unix socket, runs start-up reconciliation, serves metrics
//! and shuts down gracefully on SIGTERM/SIGINT.

pub mod controller;
pub mod error;
pub mod format;
pub mod identity;
pub mod loopdev;
pub mod metrics;
pub mod mount;
pub mod node;
pub mod paths;
pub mod quota;
pub mod store;
pub mod usage;
pub mod volumes;

use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

pub use error::CsiError;
use metrics::Metrics;
use volumes::{Config, Driver};

/// Name reported by GetPluginInfo; the storage-class catalog refers to it.
pub const DRIVER_NAME: &str = "csi.berth.dev";
/// Topology key whose value is the node id. The kubelet copies it onto the
/// Node as a label, so it must be a valid label key.
pub const DEFAULT_TOPOLOGY_KEY: &str = "topology.csi.berth.dev/node";
/// How often the space berth's data occupies is re-measured when the
/// capacity is the file system's.
const OCCUPIED_SAMPLE: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    All,
    Controller,
    Node,
}

/// The driver's own settings, shared by `berth csi` and `berth node`.
#[derive(clap::Args, Debug, Clone)]
pub struct DriverArgs {
    /// gRPC endpoint, `unix:///path/to/csi.sock`.
    #[arg(long)]
    pub endpoint: String,
    /// This node's name, reported by NodeGetInfo and used as its topology value.
    #[arg(long)]
    pub node_id: String,
    /// Directory for the driver's state store.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Directory holding volume and snapshot data.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// NodeGetInfo max_volumes_per_node; NodeStage refuses past it. 0 = unlimited.
    #[arg(long, default_value_t = 0)]
    pub max_volumes_per_node: i64,
    /// Total bytes the driver may provision (e.g. `100Gi`); without it, the
    /// data directory's file system free space (plus what berth's data
    /// already holds there).
    #[arg(long)]
    pub capacity: Option<String>,
    /// Topology segment key whose value is the node id.
    #[arg(long, default_value = DEFAULT_TOPOLOGY_KEY)]
    pub topology_key: String,
    /// The kubelet's root directory (its `--root-dir`): the node service
    /// stages, publishes, unpublishes and unstages only at paths under it.
    #[arg(long, default_value = "/var/lib/kubelet")]
    pub kubelet_dir: PathBuf,
    /// Seconds between the usage watch's passes over the directory
    /// volumes (their capacity is not enforced; overruns are reported).
    /// 0 turns the watch off.
    #[arg(long, default_value_t = usage::DEFAULT_CHECK_INTERVAL_SECS)]
    pub usage_check_interval_secs: u64,
}

#[derive(clap::Args, Debug)]
pub struct CsiArgs {
    #[command(flatten)]
    pub driver: DriverArgs,
    /// Which CSI services to serve (Identity is always served).
    #[arg(long, value_enum, default_value = "all")]
    pub mode: Mode,
    /// Serve Prometheus `/metrics` and `/healthz` on this address.
    #[arg(long)]
    pub metrics_address: Option<SocketAddr>,
}

/// Parse a Kubernetes quantity (`10Gi`, `500M`, `1073741824`) as bytes,
/// using the binding core's exact quantity type.
pub fn parse_size(input: &str) -> Result<u64, CsiError> {
    let q = crate::quantity::Quantity::parse(input)
        .map_err(|e| CsiError::Config(format!("invalid size: {e}")))?;
    u64::try_from(q.value_ceil())
        .map_err(|_| CsiError::Config(format!("size {input:?} is negative or too large")))
}

/// Shared by all services: the driver core plus metrics.
#[derive(Clone)]
pub struct Ctx {
    pub driver: Arc<Driver>,
    pub metrics: Arc<Metrics>,
}

impl Ctx {
    /// Run one RPC body on the blocking pool inside a span carrying the
    /// method and object id, then log and count the outcome. Every RPC goes
    /// through here so logging, metrics and error mapping live in one place.
    pub async fn rpc<T, F>(
        &self,
        method: &'static str,
        id: &str,
        body: F,
    ) -> Result<tonic::Response<T>, tonic::Status>
    where
        T: Send + 'static,
        F: FnOnce(&Driver) -> Result<T, CsiError> + Send + 'static,
    {
        let span = tracing::info_span!("csi", rpc = method, volume_id = %id);
        let driver = self.driver.clone();
        let start = Instant::now();
        let inner = span.clone();
        let result = tokio::task::spawn_blocking(move || inner.in_scope(|| body(&driver)))
            .instrument(span.clone())
            .await
            .unwrap_or_else(|e| Err(CsiError::Server(format!("handler failed: {e}"))));
        let elapsed = start.elapsed();
        let _g = span.enter();
        let result = result.map_err(tonic::Status::from);
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        self.metrics.observe(method, code, elapsed);
        match &result {
            Ok(_) => tracing::info!(duration_ms = elapsed.as_secs_f64() * 1e3, "ok"),
            Err(s) if s.code() == tonic::Code::Internal => {
                tracing::error!(duration_ms = elapsed.as_secs_f64() * 1e3, code = ?s.code(), message = s.message(), "failed")
            }
            Err(s) => {
                tracing::info!(duration_ms = elapsed.as_secs_f64() * 1e3, code = ?s.code(), message = s.message(), "rejected")
            }
        }
        result.map(tonic::Response::new)
    }
}

pub fn socket_path(endpoint: &str) -> Result<PathBuf, CsiError> {
    endpoint
        .strip_prefix("unix://")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| CsiError::Config(format!("endpoint {endpoint:?} must be unix:///path")))
}

/// Opens the state store and data directory and reconciles them: the
/// driver, ready to serve `mode`'s services.
pub fn open_driver(args: &DriverArgs, mode: Mode) -> Result<Arc<Driver>, CsiError> {
    volumes::validate_id("node id", &args.node_id)?;
    crate::model::validate_label_key(&args.topology_key)
        .map_err(|e| CsiError::Config(format!("--topology-key {:?}: {e}", args.topology_key)))?;
    let capacity = match &args.capacity {
        Some(size) => volumes::CapacityLimit::Fixed(parse_size(size)?),
        None => volumes::CapacityLimit::FileSystem,
    };
    std::fs::create_dir_all(&args.state_dir).map_err(CsiError::io(format!(
        "creating {}",
        args.state_dir.display()
    )))?;
    let store = store::Store::open(&args.state_dir.join("berth-csi.redb"))?;
    let cfg = Config {
        node_id: args.node_id.clone(),
        topology_key: args.topology_key.clone(),
        max_volumes_per_node: args.max_volumes_per_node,
        capacity,
        controller: mode != Mode::Node,
        node: mode != Mode::Controller,
        paths: paths::PathPolicy {
            kubelet_dir: args.kubelet_dir.clone(),
            own_dirs: vec![args.data_dir.clone(), args.state_dir.clone()],
        },
    };
    let driver = Arc::new(Driver::new(cfg, store, args.data_dir.clone())?);
    driver.reconcile()?;
    Ok(driver)
}

/// Re-measures what berth's data occupies, on a thread of its own (a
/// large tree takes a while to walk), for as long as the driver lives.
pub fn spawn_occupied_sampler(driver: &Arc<Driver>) {
    if driver.cfg.capacity != volumes::CapacityLimit::FileSystem {
        return;
    }
    let weak = Arc::downgrade(driver);
    let _ = std::thread::Builder::new()
        .name("berth-occupied".into())
        .spawn(move || {
            while let Some(d) = weak.upgrade() {
                d.sample_occupied();
                drop(d);
                std::thread::sleep(OCCUPIED_SAMPLE);
            }
        });
}

/// Starts the usage watch over directory volumes (`usage.rs`) every
/// `--usage-check-interval-secs`, unless that is 0.
pub fn spawn_usage_watch(driver: &Arc<Driver>, args: &DriverArgs) -> Result<(), CsiError> {
    if args.usage_check_interval_secs == 0 {
        return Ok(());
    }
    let interval = std::time::Duration::from_secs(args.usage_check_interval_secs);
    usage::spawn_watch(Arc::downgrade(driver), interval, Driver::check_usage)
        .map_err(CsiError::io("starting the usage watch"))
}

/// Entry point for `berth csi`. Synchronous: builds its own tokio runtime.
pub fn run(args: CsiArgs) -> Result<(), CsiError> {
    let driver = open_driver(&args.driver, args.mode)?;
    spawn_occupied_sampler(&driver);
    spawn_usage_watch(&driver, &args.driver)?;
    let socket = socket_path(&args.driver.endpoint)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CsiError::io("building tokio runtime"))?;
    runtime.block_on(async move {
        let ctx = Ctx {
            driver: driver.clone(),
            metrics: Arc::new(Metrics::default()),
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        if let Some(addr) = args.metrics_address {
            let metrics = ctx.metrics.clone();
            let mut rx = stop_rx.clone();
            let driver = driver.clone();
            tokio::spawn(async move {
                let stop = async move {
                    let _ = rx.wait_for(|v| *v).await;
                };
                if let Err(e) = metrics::serve(addr, metrics, driver, stop).await {
                    tracing::error!(%addr, error = %e, "metrics endpoint failed");
                }
            });
        }
        let listener = bind_socket(&socket)?;
        tracing::info!(endpoint = %args.driver.endpoint, node_id = %args.driver.node_id, mode = ?args.mode, "berth csi serving");
        let result = serve(listener, ctx, args.mode, shutdown_signal()).await;
        let _ = stop_tx.send(true);
        let _ = std::fs::remove_file(&socket);
        result
    })
}

pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers we can only run until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("shutting down");
}

/// Binds the driver's unix socket: a stale socket from an earlier run is
/// replaced (anything else at the path is refused), and clients never see
/// it before it listens or with looser permissions than 0600 (it is bound
/// under a temporary name, restricted, then renamed into place).
pub fn bind_socket(socket: &Path) -> Result<tokio::net::UnixListener, CsiError> {
    match std::fs::symlink_metadata(socket) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(socket).map_err(
            CsiError::io(format!("removing stale socket {}", socket.display())),
        )?,
        Ok(_) => {
            return Err(CsiError::Config(format!(
                "{} exists and is not a socket",
                socket.display()
            )));
        }
        Err(_) => {}
    }
    if let Some(parent) = socket.parent() {
        std::fs::create_dir_all(parent)
            .map_err(CsiError::io(format!("creating {}", parent.display())))?;
    }
    let tmp = socket.with_file_name(format!(
        ".{}.{}.tmp",
        socket
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let listener = tokio::net::UnixListener::bind(&tmp)
        .map_err(CsiError::io(format!("binding {}", tmp.display())))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .map_err(CsiError::io(format!("chmod 0600 {}", tmp.display())))?;
    std::fs::rename(&tmp, socket).map_err(CsiError::io(format!(
        "moving socket into place at {}",
        socket.display()
    )))?;
    Ok(listener)
}

/// Serves `mode`'s CSI services on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::UnixListener,
    ctx: Ctx,
    mode: Mode,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), CsiError> {
    use csi_proto::controller_server::ControllerServer;
    use csi_proto::identity_server::IdentityServer;
    use csi_proto::node_server::NodeServer;
    let mut router = tonic::transport::Server::builder().add_service(IdentityServer::new(
        identity::IdentityService::new(ctx.clone()),
    ));
    if mode != Mode::Node {
        router = router.add_service(ControllerServer::new(controller::ControllerService::new(
            ctx.clone(),
        )));
    }
    if mode != Mode::Controller {
        router = router.add_service(NodeServer::new(node::NodeService::new(ctx.clone())));
    }
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    router
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| CsiError::Server(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("10Gi").ok(), Some(10 << 30));
        assert_eq!(parse_size("500M").ok(), Some(500_000_000));
        assert_eq!(parse_size("4096").ok(), Some(4096));
        assert!(parse_size("10Qi").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn rejects_path_like_ids() {
        for bad in ["", ".", "a/b", "..", "x..y", "a\0b", &"x".repeat(129)] {
            assert!(volumes::validate_id("id", bad).is_err(), "{bad:?}");
        }
        assert!(volumes::validate_id("id", "pvc-123").is_ok());
    }
}
