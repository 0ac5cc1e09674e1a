//! Prometheus metrics (`/metrics`) and probes (`/healthz`, `/readyz`).
//!
//! Readiness means "this replica can do the work": the CSI driver answered
//! and the API server is reachable. A standby replica waiting for the lease
//! is ready too, so a rolling update is not blocked by the election.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

pub struct Metrics {
    registry: Registry,
    pub provisions: Family<Outcome, Counter>,
    pub provision_seconds: Family<Outcome, Histogram>,
    pub deletions: Family<Outcome, Counter>,
    pub deletion_seconds: Family<Outcome, Histogram>,
    /// Claims that asked for a volume and do not have one yet.
    pub queue_depth: Gauge,
    pub is_leader: Gauge,
    ready: AtomicBool,
}

fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("berth_controller");
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
        Arc::new(Metrics {
            registry,
            provisions,
            provision_seconds,
            deletions,
            deletion_seconds,
            queue_depth,
            is_leader,
            ready: AtomicBool::new(false),
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

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_page))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}

async fn metrics_page(State(m): State<Arc<Metrics>>) -> Result<String, StatusCode> {
    m.encode().map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
}

async fn readyz(State(m): State<Arc<Metrics>>) -> (StatusCode, &'static str) {
    if m.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}
