//! Prometheus metrics (`/metrics`) and probes (`/healthz`, `/readyz`) of
//! `berth controller` and `berth node`.
//!
//! Readiness means "this process can do its work", from named checks (the
//! CSI driver answered, the kubelet registered the node agent, ...);
//! `/readyz` lists each as `[+]name ok` or `[-]name: why`, as the API
//! server's verbose readyz does. A standby replica waiting for the lease is
//! ready too, so a rolling update is not blocked by the election.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `success`, `final_error` or `transient_error`.
    pub outcome: &'static str,
}

/// A Kubernetes API request's verb and resource.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Request {
    pub verb: &'static str,
    pub resource: String,
}

pub struct Metrics {
    registry: Registry,
    /// Kubernetes API requests this process made, by verb and resource.
    pub kube_requests: Family<Request, Counter>,
    pub provisions: Family<Outcome, Counter>,
    pub provision_seconds: Family<Outcome, Histogram>,
    pub deletions: Family<Outcome, Counter>,
    pub deletion_seconds: Family<Outcome, Histogram>,
    /// Claims that asked for a volume and do not have one yet.
    pub queue_depth: Gauge,
    pub is_leader: Gauge,
    /// 1 while the kubelet reports the node agent registered (`berth node`).
    pub kubelet_registered: Gauge,
    /// CSIStorageCapacity writes (create, update, delete) by outcome.
    pub capacity_writes: Family<Outcome, Counter>,
    /// PVs of deleted Nodes handled (removed, or their claims told).
    pub node_loss_volumes: Family<Outcome, Counter>,
    checks: Mutex<BTreeMap<&'static str, Result<(), String>>>,
    /// What a passing check adds after its `ok` (e.g. why directory
    /// capacity is not enforced).
    details: Mutex<BTreeMap<&'static str, String>>,
}

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

impl Metrics {
    /// A registry whose metric names start with `prefix` (`berth_controller`
    /// or `berth_node`).
    pub fn new(prefix: &str) -> Arc<Self> {
        let mut registry = Registry::with_prefix(prefix);
        let provisions = Family::<Outcome, Counter>::default();
        let provision_seconds =
            Family::<Outcome, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        let deletions = Family::<Outcome, Counter>::default();
        let deletion_seconds =
            Family::<Outcome, Histogram>::new_with_constructor(latency as fn() -> Histogram);
        let queue_depth = Gauge::default();
        let is_leader = Gauge::default();
        registry.register(
            "provisions",
            "CreateVolume attempts by outcome",
            provisions.clone(),
        );
        registry.register(
            "provision_duration_seconds",
            "CreateVolume latency by outcome",
            provision_seconds.clone(),
        );
        registry.register(
            "deletions",
            "DeleteVolume attempts by outcome",
            deletions.clone(),
        );
        registry.register(
            "deletion_duration_seconds",
            "DeleteVolume latency by outcome",
            deletion_seconds.clone(),
        );
        registry.register(
            "queue_depth",
            "Claims waiting for a provisioned volume",
            queue_depth.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the lease",
            is_leader.clone(),
        );
        let kubelet_registered = Gauge::default();
        registry.register(
            "kubelet_registered",
            "1 while the kubelet reports this node agent registered",
            kubelet_registered.clone(),
        );
        let capacity_writes = Family::<Outcome, Counter>::default();
        registry.register(
            "capacity_writes",
            "CSIStorageCapacity creates, updates and deletes by outcome",
            capacity_writes.clone(),
        );
        let kube_requests = Family::<Request, Counter>::default();
        registry.register(
            "kube_requests",
            "Kubernetes API requests made, by verb and resource",
            kube_requests.clone(),
        );
        let node_loss_volumes = Family::<Outcome, Counter>::default();
        registry.register(
            "node_loss_volumes",
            "PVs of deleted Nodes handled, by outcome (removed, claim_told, error)",
            node_loss_volumes.clone(),
        );
        Arc::new(Metrics {
            registry,
            kube_requests,
            provisions,
            provision_seconds,
            deletions,
            deletion_seconds,
            queue_depth,
            is_leader,
            kubelet_registered,
            capacity_writes,
            node_loss_volumes,
            checks: Mutex::new(BTreeMap::new()),
            details: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn observe_provision(&self, outcome: &'static str, took: Duration) {
        let l = Outcome { outcome };
        self.provisions.get_or_create(&l).inc();
        self.provision_seconds
            .get_or_create(&l)
            .observe(took.as_secs_f64());
    }

    pub fn observe_deletion(&self, outcome: &'static str, took: Duration) {
        let l = Outcome { outcome };
        self.deletions.get_or_create(&l).inc();
        self.deletion_seconds
            .get_or_create(&l)
            .observe(took.as_secs_f64());
    }

    pub fn count_request(&self, verb: &'static str, resource: String) {
        self.kube_requests
            .get_or_create(&Request { verb, resource })
            .inc();
    }

    /// Records one readiness check's outcome.
    pub fn set_check(&self, name: &'static str, outcome: Result<(), String>) {
        if let Ok(mut checks) = self.checks.lock() {
            checks.insert(name, outcome);
        }
    }

    /// Records a passing check that says something more in `/readyz`
    /// (`[+]name ok: detail`).
    pub fn set_check_detail(&self, name: &'static str, detail: String) {
        if let Ok(mut details) = self.details.lock() {
            details.insert(name, detail);
        }
        self.set_check(name, Ok(()));
    }

    /// Ready when there is at least one check and every check passes; the
    /// text lists each.
    pub fn readiness(&self) -> (bool, String) {
        let Ok(checks) = self.checks.lock() else {
            return (false, "readiness checks unavailable\n".into());
        };
        let mut ready = !checks.is_empty();
        let mut text = String::new();
        let details = self.details.lock().map(|d| d.clone()).unwrap_or_default();
        for (name, outcome) in checks.iter() {
            match outcome {
                Ok(()) => match details.get(name) {
                    Some(detail) => text.push_str(&format!("[+]{name} ok: {detail}\n")),
                    None => text.push_str(&format!("[+]{name} ok\n")),
                },
                Err(why) => {
                    ready = false;
                    text.push_str(&format!("[-]{name}: {why}\n"));
                }
            }
        }
        if checks.is_empty() {
            text.push_str("[-]starting\n");
        }
        (ready, text)
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// What a process adds to its endpoint: more metrics text (the CSI
/// driver's) and a health check (the driver's state store).
#[derive(Clone, Default)]
pub struct Extra {
    pub text: Option<Arc<dyn Fn() -> String + Send + Sync>>,
    pub healthy: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

#[derive(Clone)]
struct Served {
    metrics: Arc<Metrics>,
    extra: Extra,
}

/// Binds `addr` now (a busy port fails the start, not a probe later) and
/// serves `/metrics`, `/healthz` and `/readyz` in the background.
pub fn spawn_server(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    extra: Extra,
) -> Result<(), super::ControllerError> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| super::ControllerError::Metrics { addr, source })?;
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Served { metrics, extra });
    tokio::spawn(async move {
        let served = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => axum::serve(l, app).await,
            Err(e) => Err(e),
        };
        if let Err(e) = served {
            tracing::error!(%addr, error = %e, "metrics server stopped");
        }
    });
    Ok(())
}

async fn metrics_page(State(s): State<Served>) -> Result<String, StatusCode> {
    let mut text = s
        .metrics
        .encode()
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    if let Some(extra) = &s.extra.text {
        // The OpenMetrics encoder ends with `# EOF`; the driver's text goes
        // before it so scrapers read one exposition.
        let eof = text.rfind("# EOF").unwrap_or(text.len());
        text.insert_str(eof, &extra());
    }
    Ok(text)
}

async fn healthz(State(s): State<Served>) -> (StatusCode, &'static str) {
    match &s.extra.healthy {
        Some(check) if !check() => (StatusCode::SERVICE_UNAVAILABLE, "state store unavailable\n"),
        _ => (StatusCode::OK, "ok"),
    }
}

async fn readyz(State(s): State<Served>) -> (StatusCode, String) {
    let (ready, text) = s.metrics.readiness();
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, text)
}
