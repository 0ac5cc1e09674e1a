//! Figures harness for `berth csi`: drives CreateVolume, NodeStageVolume,
//! NodePublishVolume and DeleteVolume at several client concurrencies
//! against several counts of pre-existing volumes, and prints throughput and
//! p50/p99 latency per operation. The point to check: CreateVolume p99 stays
//! flat as existing volumes grow, i.e. state writes do not scale with the
//! number of volumes. Needs root (NodeStage/NodePublish bind-mount).
//!
//! Usage: csi_bench [--existing 100,1000,10000] [--clients 1,8,64]
//!                  [--ops 256] [--berth PATH]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use berth_bench::cli::parse_list;
use berth_bench::csi_load::{
    connect, create_many, create_volume, delete_volume, measure, mount_cap,
};
use csi::controller_client::ControllerClient;
use csi::node_client::NodeClient;
use csi_proto as csi;

struct Opts {
    existing: Vec<usize>,
    clients: Vec<usize>,
    ops: usize,
    berth: PathBuf,
}

fn parse_opts() -> Result<Opts, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut o = Opts {
        existing: vec![100, 1000, 10_000],
        clients: vec![1, 8, 64],
        ops: 256,
        berth: std::env::var_os("BERTH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/release/berth")),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--existing" => o.existing = parse_list(&val()?)?,
            "--clients" => o.clients = parse_list(&val()?)?,
            "--ops" => o.ops = val()?.parse().map_err(|e| format!("--ops: {e}"))?,
            "--berth" => o.berth = PathBuf::from(val()?),
            "-h" | "--help" => {
                return Err("usage: csi_bench [--existing 100,1000,10000] [--clients 1,8,64] [--ops 256] [--berth PATH]".into());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    o.existing.sort_unstable();
    Ok(o)
}

fn start_driver(berth: &Path, dir: &Path, sock: &Path) -> Result<Child, String> {
    Command::new(berth)
        .arg("csi")
        .arg("--endpoint")
        .arg(format!("unix://{}", sock.display()))
        .args(["--node-id", "bench-node", "--capacity", "1Pi"])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        // Staging and target paths go under dir/targets.
        .arg("--kubelet-dir")
        .arg(dir)
        .env("BERTH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", berth.display()))
}

async fn run(o: Opts) -> Result<(), String> {
    if !o.berth.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release -p berth` or pass --berth",
            o.berth.display()
        ));
    }
    let dir = std::env::temp_dir().join(format!("berth-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("targets")).map_err(|e| e.to_string())?;
    let sock = dir.join("csi.sock");
    let mut child = start_driver(&o.berth, &dir, &sock)?;
    let result = bench(&o, &dir, &sock).await;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn bench(o: &Opts, dir: &Path, sock: &Path) -> Result<(), String> {
    let ch = connect(sock).await?;
    let ctrl = ControllerClient::new(ch.clone());
    let node = NodeClient::new(ch);
    println!(
        "{:>9} {:>7} {:<18} {:>10} {:>9} {:>9} {:>6}",
        "existing", "clients", "operation", "ops/s", "p50 ms", "p99 ms", "errors"
    );
    // Warm up (connection, allocator, page cache, redb file growth) so the
    // first measured cell is not penalised for being first.
    for i in 0..64 {
        let id = create_volume(ctrl.clone(), format!("warmup-{i}"))
            .await
            .map_err(|e| format!("warm-up CreateVolume: {e}"))?;
        delete_volume(ctrl.clone(), id)
            .await
            .map_err(|e| format!("warm-up DeleteVolume: {e}"))?;
    }
    let mut existing = 0usize;
    let mut create_p99: Vec<(usize, usize, f64)> = Vec::new();
    let mut round = 0usize;
    for &target in &o.existing {
        // Fill up to `target` volumes that stay for the rest of the run.
        if target > existing {
            create_many(&ctrl, "fill-", existing..target, 16)
                .await
                .map_err(|e| format!("populate: {e}"))?;
            existing = target;
        }
        for &clients in &o.clients {
            round += 1;
            let n = o.ops;
            let c = ctrl.clone();
            let (create, ids) = measure("CreateVolume", n, clients, move |i| {
                create_volume(c.clone(), format!("bench-{round}-{i}"))
            })
            .await;
            let ids: Arc<Vec<String>> = Arc::new(ids.into_iter().flatten().collect());
            let staging = |id: &str| dir.join("targets").join(format!("{id}-staging"));
            let target_path = |id: &str| dir.join("targets").join(format!("{id}-target"));
            for id in ids.iter() {
                std::fs::create_dir_all(staging(id)).map_err(|e| e.to_string())?;
            }
            let (nd, ids2) = (node.clone(), ids.clone());
            let tdir = dir.join("targets");
            let (stage, _) = measure("NodeStageVolume", ids.len(), clients, move |i| {
                let (mut nd, id) = (nd.clone(), ids2[i].clone());
                let path = tdir.join(format!("{id}-staging"));
                async move {
                    nd.node_stage_volume(csi::NodeStageVolumeRequest {
                        volume_id: id,
                        staging_target_path: path.to_string_lossy().into_owned(),
                        volume_capability: Some(mount_cap()),
                        ..Default::default()
                    })
                    .await
                    .map(|_| String::new())
                }
            })
            .await;
            let (nd, ids2) = (node.clone(), ids.clone());
            let tdir = dir.join("targets");
            let (publish, _) = measure("NodePublishVolume", ids.len(), clients, move |i| {
                let (mut nd, id) = (nd.clone(), ids2[i].clone());
                let st = tdir.join(format!("{id}-staging"));
                let tp = tdir.join(format!("{id}-target"));
                async move {
                    nd.node_publish_volume(csi::NodePublishVolumeRequest {
                        volume_id: id,
                        staging_target_path: st.to_string_lossy().into_owned(),
                        target_path: tp.to_string_lossy().into_owned(),
                        volume_capability: Some(mount_cap()),
                        ..Default::default()
                    })
                    .await
                    .map(|_| String::new())
                }
            })
            .await;
            // Tear down (not reported) so the next round starts from the
            // same number of existing volumes.
            for id in ids.iter() {
                let mut nd = node.clone();
                let _ = nd
                    .node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
                        volume_id: id.clone(),
                        target_path: target_path(id).to_string_lossy().into_owned(),
                    })
                    .await;
                let _ = nd
                    .node_unstage_volume(csi::NodeUnstageVolumeRequest {
                        volume_id: id.clone(),
                        staging_target_path: staging(id).to_string_lossy().into_owned(),
                    })
                    .await;
                let _ = std::fs::remove_dir(staging(id));
            }
            let (c, ids2) = (ctrl.clone(), ids.clone());
            let (delete, _) = measure("DeleteVolume", ids.len(), clients, move |i| {
                delete_volume(c.clone(), ids2[i].clone())
            })
            .await;
            create_p99.push((existing, clients, create.p99_ms));
            for s in [create, stage, publish, delete] {
                println!(
                    "{:>9} {:>7} {:<18} {:>10.0} {:>9.2} {:>9.2} {:>6}",
                    existing, clients, s.op, s.ops_per_sec, s.p50_ms, s.p99_ms, s.errors
                );
            }
        }
    }
    if let (Some(&lo), Some(&hi)) = (o.existing.first(), o.existing.last())
        && hi > lo
    {
        println!();
        for &clients in &o.clients {
            let at = |n| {
                create_p99
                    .iter()
                    .find(|(e, c, _)| *e == n && *c == clients)
                    .map(|t| t.2)
            };
            if let (Some(a), Some(b)) = (at(lo), at(hi)) {
                let ratio = if a > 0.0 { b / a } else { 0.0 };
                println!(
                    "CreateVolume p99 at {clients:>2} clients: {a:.2} ms with {lo} volumes, {b:.2} ms with {hi} ({ratio:.2}x, target <= 2x: {})",
                    if ratio <= 2.0 { "met" } else { "NOT met" }
                );
            }
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match rt.block_on(run(opts)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("csi_bench: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
