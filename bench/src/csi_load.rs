//! Load generation against a CSI driver on a unix socket, shared by
//! `csi_bench` (berth alone, every RPC) and `csi_compare` (berth against
//! csi-test's mock driver): connecting, the requests, and timing many calls
//! at a fixed concurrency.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use csi::controller_client::ControllerClient;
use csi_proto as csi;
use tokio::sync::Semaphore;
use tonic::transport::Channel;

/// Connects to the driver's socket, retrying for up to 10 s while the
/// driver starts.
pub async fn connect(sock: &Path) -> Result<Channel, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match csi_proto::connect_unix(sock).await {
            Ok(c) => return Ok(c),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => return Err(format!("connecting to {}: {e:?}", sock.display())),
        }
    }
}

/// A single-node-writer filesystem volume.
pub fn mount_cap() -> csi::VolumeCapability {
    use csi::volume_capability::*;
    csi::VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume::default())),
        access_mode: Some(AccessMode {
            mode: access_mode::Mode::SingleNodeWriter as i32,
        }),
    }
}

/// A 1 MiB filesystem volume named `name`.
pub fn create_req(name: String) -> csi::CreateVolumeRequest {
    csi::CreateVolumeRequest {
        name,
        capacity_range: Some(csi::CapacityRange {
            required_bytes: 1 << 20,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![mount_cap()],
        ..Default::default()
    }
}

/// CreateVolume for `name`; the created volume's id.
pub async fn create_volume(
    mut ctrl: ControllerClient<Channel>,
    name: String,
) -> Result<String, tonic::Status> {
    let r = ctrl.create_volume(create_req(name)).await?;
    Ok(r.into_inner()
        .volume
        .map(|v| v.volume_id)
        .unwrap_or_default())
}

/// DeleteVolume for `id`; the id back, so results line up with creates.
pub async fn delete_volume(
    mut ctrl: ControllerClient<Channel>,
    id: String,
) -> Result<String, tonic::Status> {
    ctrl.delete_volume(csi::DeleteVolumeRequest {
        volume_id: id.clone(),
        ..Default::default()
    })
    .await?;
    Ok(id)
}

/// Throughput and latency of one batch of calls.
#[derive(Debug, Clone)]
pub struct Stat {
    pub op: &'static str,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub errors: usize,
    /// The first error, to say why a batch failed.
    pub first_error: Option<String>,
}

/// The `p` quantile (0..=1) of sorted latencies, in milliseconds.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// Runs `n` calls of `f(i)` with at most `clients` in flight and times each;
/// returns the batch's figures and each call's result (`None` if it failed).
pub async fn measure<F, Fut>(
    op: &'static str,
    n: usize,
    clients: usize,
    f: F,
) -> (Stat, Vec<Option<String>>)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<String, tonic::Status>> + Send,
{
    let f = Arc::new(f);
    let sem = Arc::new(Semaphore::new(clients.max(1)));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await;
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let t = Instant::now();
            let r = f(i).await;
            (t.elapsed(), r)
        }));
    }
    let mut lat = Vec::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    let mut first_error = None;
    for t in tasks {
        match t.await {
            Ok((d, r)) => {
                lat.push(d);
                match r {
                    Ok(v) => out.push(Some(v)),
                    Err(e) => {
                        first_error.get_or_insert_with(|| e.to_string());
                        out.push(None);
                    }
                }
            }
            Err(e) => {
                first_error.get_or_insert_with(|| e.to_string());
                out.push(None);
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let errors = out.iter().filter(|r| r.is_none()).count();
    (
        Stat {
            op,
            ops_per_sec: n as f64 / wall,
            p50_ms: percentile(&lat, 0.50),
            p95_ms: percentile(&lat, 0.95),
            p99_ms: percentile(&lat, 0.99),
            errors,
            first_error,
        },
        out,
    )
}

/// Creates volumes `{prefix}{i}` for `i` in `range` with `clients` in
/// flight: the batch's figures and the created ids, or why it failed.
pub async fn create_many(
    ctrl: &ControllerClient<Channel>,
    prefix: &str,
    range: std::ops::Range<usize>,
    clients: usize,
) -> Result<(Stat, Vec<String>), String> {
    let (c, prefix, base) = (ctrl.clone(), prefix.to_string(), range.start);
    let (stat, ids) = measure("CreateVolume", range.len(), clients, move |i| {
        create_volume(c.clone(), format!("{prefix}{}", base + i))
    })
    .await;
    if let Some(e) = &stat.first_error {
        return Err(format!(
            "{} of {} CreateVolume calls failed: {e}",
            stat.errors,
            range.len()
        ));
    }
    Ok((stat, ids.into_iter().flatten().collect()))
}

/// Deletes `ids` with `clients` in flight: the batch's figures, or why it failed.
pub async fn delete_many(
    ctrl: &ControllerClient<Channel>,
    ids: Vec<String>,
    clients: usize,
) -> Result<Stat, String> {
    let n = ids.len();
    let (c, ids) = (ctrl.clone(), Arc::new(ids));
    let (stat, _) = measure("DeleteVolume", n, clients, move |i| {
        delete_volume(c.clone(), ids[i].clone())
    })
    .await;
    if let Some(e) = &stat.first_error {
        return Err(format!(
            "{} of {n} DeleteVolume calls failed: {e}",
            stat.errors
        ));
    }
    Ok(stat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_picks_the_nearest_rank() {
        let lat: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&lat, 0.5), 51.0);
        assert_eq!(percentile(&lat, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.99), 0.0);
    }
}
