//! Prometheus metrics for the driver (RPC counts and latency histograms by
//! method and gRPC code; how directory capacity is enforced and what the
//! usage watch found) and the small HTTP endpoint that serves them next to
//! `/healthz` and `/readyz`. Hand-rolled text exposition keeps the
//! dependency set small; the format is the stable Prometheus 0.0.4 text
//! format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::quota;
use super::volumes::Driver;

/// The `/readyz` check that carries the directory-capacity finding.
pub const CAPACITY_CHECK: &str = "directory-capacity";

/// A label value in the text format: backslash, quote and newline escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The driver's state as gauges: how directory capacity is enforced (1 for
/// the mode in force, 0 for the others), the directory volumes over their
/// capacity at the usage watch's last pass (a count and, per volume, the
/// bytes beyond it), and how much that pass measured and how long it took.
pub fn render_driver(driver: &Driver) -> String {
    let mut out = String::new();
    out.push_str("# HELP berth_csi_directory_capacity_enforced How directory volumes' capacity is enforced (1 = the mode in force); see /readyz for why.\n");
    out.push_str("# TYPE berth_csi_directory_capacity_enforced gauge\n");
    let mode = driver.quota.mode();
    for m in quota::Mode::ALL {
        let _ = writeln!(
            out,
            "berth_csi_directory_capacity_enforced{{mode=\"{}\"}} {}",
            m.label(),
            u8::from(m == mode)
        );
    }
    let report = driver.watch.report();
    out.push_str("# HELP berth_csi_volumes_over_capacity Directory volumes holding more than their capacity at the usage watch's last pass.\n");
    out.push_str("# TYPE berth_csi_volumes_over_capacity gauge\n");
    let _ = writeln!(
        out,
        "berth_csi_volumes_over_capacity {}",
        report.overruns.len()
    );
    out.push_str("# HELP berth_csi_volume_over_capacity_bytes Bytes a directory volume holds beyond its capacity (only volumes over it).\n");
    out.push_str("# TYPE berth_csi_volume_over_capacity_bytes gauge\n");
    for o in report.overruns.values() {
        let claim = o
            .claim
            .as_ref()
            .map(|c| format!("{}/{}", c.namespace, c.name))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "berth_csi_volume_over_capacity_bytes{{volume_id=\"{}\",claim=\"{}\"}} {}",
            label(&o.volume_id),
            label(&claim),
            o.used.saturating_sub(o.capacity)
        );
    }
    out.push_str("# HELP berth_csi_usage_check_volumes Directory volumes measured by the usage watch's last pass.\n");
    out.push_str("# TYPE berth_csi_usage_check_volumes gauge\n");
    let _ = writeln!(out, "berth_csi_usage_check_volumes {}", report.checked);
    out.push_str("# HELP berth_csi_usage_check_duration_seconds How long the usage watch's last pass took.\n");
    out.push_str("# TYPE berth_csi_usage_check_duration_seconds gauge\n");
    let _ = writeln!(
        out,
        "berth_csi_usage_check_duration_seconds {}",
        report.took.as_secs_f64()
    );
    out
}

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Default)]
pub struct Metrics {
    series: Mutex<BTreeMap<(&'static str, &'static str), Series>>,
}

fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

impl Metrics {
    pub fn observe(&self, method: &'static str, code: tonic::Code, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Ok(mut map) = self.series.lock() {
            let s = map.entry((method, code_name(code))).or_default();
            s.count += 1;
            s.sum += secs;
            for (i, le) in BUCKETS.iter().enumerate() {
                if secs <= *le {
                    s.buckets[i] += 1;
                }
            }
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let Ok(map) = self.series.lock() else {
            return out;
        };
        out.push_str("# HELP berth_csi_rpc_total CSI RPCs handled, by method and gRPC code.\n");
        out.push_str("# TYPE berth_csi_rpc_total counter\n");
        for ((m, c), s) in map.iter() {
            let _ = writeln!(
                out,
                "berth_csi_rpc_total{{method=\"{m}\",code=\"{c}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP berth_csi_rpc_duration_seconds CSI RPC latency.\n");
        out.push_str("# TYPE berth_csi_rpc_duration_seconds histogram\n");
        for ((m, c), s) in map.iter() {
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "berth_csi_rpc_duration_seconds_bucket{{method=\"{m}\",code=\"{c}\",le=\"{le}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "berth_csi_rpc_duration_seconds_bucket{{method=\"{m}\",code=\"{c}\",le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "berth_csi_rpc_duration_seconds_sum{{method=\"{m}\",code=\"{c}\"}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "berth_csi_rpc_duration_seconds_count{{method=\"{m}\",code=\"{c}\"}} {}",
                s.count
            );
        }
        out
    }
}

/// Serve `/metrics`, `/healthz` and `/readyz` over plain HTTP/1.1 until `shutdown`
/// resolves. One request per connection is all Prometheus and kubelet
/// probes need.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    driver: Arc<Driver>,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    tokio::pin!(shutdown);
    loop {
        let (mut sock, _) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = listener.accept() => match r { Ok(c) => c, Err(_) => continue },
        };
        let metrics = metrics.clone();
        let driver = driver.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n = match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let req = String::from_utf8_lossy(&buf[..n]);
            let path = req.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = match path {
                "/metrics" => ("200 OK", metrics.render() + &render_driver(&driver)),
                "/healthz" if driver.store.healthy() => ("200 OK", "ok\n".to_string()),
                "/healthz" => (
                    "503 Service Unavailable",
                    "state store unavailable\n".to_string(),
                ),
                // The node agent's /readyz has the same lines among its own.
                "/readyz" if driver.store.healthy() => (
                    "200 OK",
                    format!(
                        "[+]csi ok\n[+]{CAPACITY_CHECK} ok: {}\n",
                        driver.quota.summary()
                    ),
                ),
                "/readyz" => (
                    "503 Service Unavailable",
                    format!(
                        "[-]csi: state store unavailable\n[+]{CAPACITY_CHECK} ok: {}\n",
                        driver.quota.summary()
                    ),
                ),
                _ => ("404 Not Found", "not found\n".to_string()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
        });
    }
}
