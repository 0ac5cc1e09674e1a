//! Image-backed volumes at scale on one node (deploy/'s default class,
//! `berth-local`: a sparse image with ext4 on a loop device): drives a real
//! `berth csi` over gRPC through CreateVolume, NodeStageVolume and
//! NodePublishVolume of `--volumes` ext4 volumes, prints the time per RPC
//! (p50/p95/p99), the loop devices used and the disk the images take, then
//! `kill -9`s the driver with every volume staged, restarts it, unpublishes
//! and unstages everything and checks that no loop device is left attached
//! to the bench's images (sysfs and `losetup -J`). Exits 1 when a check
//! fails or an RPC errs. Needs root (loop devices, mounts).
//!
//! Usage: image_volume_bench [--volumes 500] [--size 64Mi] [--clients 1]
//!                           [--smoke] [--berth PATH]
//! `--smoke` is 20 volumes (CI).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth::quantity::Quantity;
use berth_bench::csi_load::{Stat, connect, measure};
use csi::controller_client::ControllerClient;
use csi::node_client::NodeClient;
use csi_proto as csi;
use tonic::transport::Channel;

const USAGE: &str = "usage: image_volume_bench [--volumes 500] [--size 64Mi] [--clients 1] [--smoke] [--berth PATH]";

struct Opts {
    volumes: usize,
    size: i64,
    clients: usize,
    berth: PathBuf,
}

fn parse_opts() -> Result<Opts, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut o = Opts {
        volumes: 500,
        size: 64 << 20,
        clients: 1,
        berth: std::env::var_os("BERTH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target/release/berth")),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--volumes" => o.volumes = val()?.parse().map_err(|e| format!("--volumes: {e}"))?,
            "--clients" => o.clients = val()?.parse().map_err(|e| format!("--clients: {e}"))?,
            "--size" => {
                let v = val()?;
                let q = Quantity::parse(&v).map_err(|e| format!("--size {v}: {e}"))?;
                o.size = i64::try_from(q.value_ceil())
                    .ok()
                    .filter(|b| *b > 0)
                    .ok_or_else(|| format!("--size {v}: not a positive size"))?;
            }
            "--smoke" => o.volumes = 20,
            "--berth" => o.berth = PathBuf::from(val()?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if o.volumes == 0 || o.clients == 0 {
        return Err("--volumes and --clients must be at least 1".into());
    }
    Ok(o)
}

fn start_driver(berth: &Path, dir: &Path, sock: &Path) -> Result<Child, String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("driver.log"))
        .map_err(|e| format!("driver log: {e}"))?;
    Command::new(berth)
        .arg("csi")
        .arg(format!("--endpoint=unix://{}", sock.display()))
        .args(["--node-id=bench-node", "--capacity=1Pi"])
        .arg(format!("--state-dir={}", dir.join("state").display()))
        .arg(format!("--data-dir={}", dir.join("data").display()))
        .arg(format!("--kubelet-dir={}", dir.display()))
        .env("BERTH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", berth.display()))
}

/// A single-node-writer ext4 volume, as berth-local's claims ask for.
fn ext4_cap() -> csi::VolumeCapability {
    use csi::volume_capability::*;
    csi::VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: "ext4".into(),
            ..Default::default()
        })),
        access_mode: Some(AccessMode {
            mode: access_mode::Mode::SingleNodeWriter as i32,
        }),
    }
}

/// Loop devices attached to files under `dir` (sysfs).
fn attached_under(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    berth::csi::loopdev::attached()
        .into_iter()
        .filter(|(_, b)| b.starts_with(dir))
        .collect()
}

/// How many `loop*` block devices exist at all (attached or free).
fn loop_devices_in_sysfs() -> usize {
    std::fs::read_dir("/sys/block")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("loop"))
                .count()
        })
        .unwrap_or(0)
}

/// Backing files under `dir` that `losetup -J -l` lists; `None` when
/// losetup is missing or fails.
fn losetup_under(dir: &Path) -> Option<usize> {
    let out = Command::new("losetup").args(["-J", "-l"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Some(0);
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let dir = dir.to_string_lossy().into_owned();
    Some(
        json["loopdevices"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["back-file"].as_str())
            .filter(|f| f.starts_with(&dir))
            .count(),
    )
}

/// Bytes the files under `dir` allocate on the node's disk.
fn allocated(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.blocks() * 512)
                .sum()
        })
        .unwrap_or(0)
}

fn row(s: &Stat) {
    println!(
        "{:<26} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>6}",
        s.op, s.ops_per_sec, s.p50_ms, s.p95_ms, s.p99_ms, s.errors
    );
}

struct Paths {
    targets: PathBuf,
}

impl Paths {
    fn staging(&self, id: &str) -> String {
        self.targets
            .join(format!("{id}-staging"))
            .to_string_lossy()
            .into_owned()
    }
    fn target(&self, id: &str) -> String {
        self.targets
            .join(format!("{id}-target"))
            .to_string_lossy()
            .into_owned()
    }
}

/// Stages (and, with `publish`, publishes) every volume of `ids`.
async fn stage_all(
    node: &NodeClient<Channel>,
    ids: &Arc<Vec<String>>,
    paths: &Arc<Paths>,
    clients: usize,
) -> (Stat, Stat) {
    let (nd, ids2, p) = (node.clone(), ids.clone(), paths.clone());
    let (stage, _) = measure("NodeStageVolume", ids.len(), clients, move |i| {
        let (mut nd, id, staging) = (nd.clone(), ids2[i].clone(), p.staging(&ids2[i]));
        async move {
            nd.node_stage_volume(csi::NodeStageVolumeRequest {
                volume_id: id,
                staging_target_path: staging,
                volume_capability: Some(ext4_cap()),
                ..Default::default()
            })
            .await
            .map(|_| String::new())
        }
    })
    .await;
    let (nd, ids2, p) = (node.clone(), ids.clone(), paths.clone());
    let (publish, _) = measure("NodePublishVolume", ids.len(), clients, move |i| {
        let id = ids2[i].clone();
        let (mut nd, staging, target) = (nd.clone(), p.staging(&id), p.target(&id));
        async move {
            nd.node_publish_volume(csi::NodePublishVolumeRequest {
                volume_id: id,
                staging_target_path: staging,
                target_path: target,
                volume_capability: Some(ext4_cap()),
                ..Default::default()
            })
            .await
            .map(|_| String::new())
        }
    })
    .await;
    (stage, publish)
}

/// NodeUnpublish then NodeUnstage of every volume, timed as one call each.
async fn unstage_all(
    node: &NodeClient<Channel>,
    ids: &Arc<Vec<String>>,
    paths: &Arc<Paths>,
    clients: usize,
) -> Stat {
    let (nd, ids2, p) = (node.clone(), ids.clone(), paths.clone());
    let (stat, _) = measure("NodeUnpublish+NodeUnstage", ids.len(), clients, move |i| {
        let id = ids2[i].clone();
        let (mut nd, staging, target) = (nd.clone(), p.staging(&id), p.target(&id));
        async move {
            nd.node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
                volume_id: id.clone(),
                target_path: target,
            })
            .await?;
            nd.node_unstage_volume(csi::NodeUnstageVolumeRequest {
                volume_id: id,
                staging_target_path: staging,
            })
            .await
            .map(|_| String::new())
        }
    })
    .await;
    stat
}

async fn bench(
    o: &Opts,
    dir: &Path,
    sock: &Path,
    child: &mut Child,
) -> Result<Vec<String>, String> {
    let mut failures = Vec::new();
    let images_dir = dir.join("data").join("volumes");
    let paths = Arc::new(Paths {
        targets: dir.join("targets"),
    });
    let max_loop = std::fs::read_to_string("/sys/module/loop/parameters/max_loop")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into());
    let sysfs_before = loop_devices_in_sysfs();
    let attached_before = berth::csi::loopdev::attached().len();
    println!(
        "image_volume_bench: {} ext4 volumes of {} MiB, {} client(s); loop devices before: {} in /sys/block, {} attached (any owner); max_loop={}",
        o.volumes,
        o.size >> 20,
        o.clients,
        sysfs_before,
        attached_before,
        max_loop
    );
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>9} {:>6}",
        "operation", "ops/s", "p50 ms", "p95 ms", "p99 ms", "errors"
    );

    let ch = connect(sock).await?;
    let ctrl = ControllerClient::new(ch.clone());
    let node = NodeClient::new(ch);
    let (c, size) = (ctrl.clone(), o.size);
    let (create, ids) = measure("CreateVolume", o.volumes, o.clients, move |i| {
        let mut c = c.clone();
        async move {
            let r = c
                .create_volume(csi::CreateVolumeRequest {
                    name: format!("img-{i}"),
                    capacity_range: Some(csi::CapacityRange {
                        required_bytes: size,
                        limit_bytes: 0,
                    }),
                    volume_capabilities: vec![ext4_cap()],
                    ..Default::default()
                })
                .await?;
            Ok(r.into_inner()
                .volume
                .map(|v| v.volume_id)
                .unwrap_or_default())
        }
    })
    .await;
    row(&create);
    if let Some(e) = &create.first_error {
        return Err(format!("CreateVolume failed: {e}"));
    }
    let ids: Arc<Vec<String>> = Arc::new(ids.into_iter().flatten().collect());
    std::fs::create_dir_all(&paths.targets).map_err(|e| e.to_string())?;

    let (stage, publish) = stage_all(&node, &ids, &paths, o.clients).await;
    row(&stage);
    row(&publish);
    for s in [&stage, &publish] {
        if let Some(e) = &s.first_error {
            failures.push(format!("{}: {} errors, first: {e}", s.op, s.errors));
        }
    }

    let ours = attached_under(&images_dir);
    let mut images: Vec<_> = ours.iter().map(|(_, b)| b.clone()).collect();
    images.sort();
    images.dedup();
    let sysfs_staged = loop_devices_in_sysfs();
    println!(
        "loop devices with {} volumes staged: {} attached to the bench's images ({} distinct images), {} in /sys/block ({} made on demand by LOOP_CTL_GET_FREE, the rest reused); losetup -J lists {}",
        ids.len(),
        ours.len(),
        images.len(),
        sysfs_staged,
        sysfs_staged.saturating_sub(sysfs_before),
        losetup_under(&images_dir).map_or("n/a".into(), |n| n.to_string())
    );
    if ours.len() != ids.len() || images.len() != ids.len() {
        failures.push(format!(
            "{} volumes staged but {} loop devices on {} images",
            ids.len(),
            ours.len(),
            images.len()
        ));
    }
    let bytes = allocated(&images_dir);
    println!(
        "disk: the images allocate {:.1} MiB ({:.2} MiB per volume of {} MiB)",
        bytes as f64 / (1u64 << 20) as f64,
        bytes as f64 / (1u64 << 20) as f64 / ids.len().max(1) as f64,
        o.size >> 20
    );

    // kill -9 with everything staged and published, then restart.
    let _ = child.kill();
    let _ = child.wait();
    let restarted = Instant::now();
    *child = start_driver(&o.berth, dir, sock)?;
    let ch = connect(sock).await?;
    let ready = restarted.elapsed();
    let ctrl = ControllerClient::new(ch.clone());
    let node = NodeClient::new(ch);
    let kept = attached_under(&images_dir).len();
    println!(
        "kill -9 with {} volumes staged: restarted and serving in {:.0} ms; {} loop devices still attached (the pods' mounts keep using them)",
        ids.len(),
        ready.as_secs_f64() * 1e3,
        kept
    );
    if kept != ids.len() {
        failures.push(format!(
            "after the restart {kept} of {} staged volumes have their loop device",
            ids.len()
        ));
    }

    let unstage = unstage_all(&node, &ids, &paths, o.clients).await;
    row(&unstage);
    if let Some(e) = &unstage.first_error {
        failures.push(format!(
            "{}: {} errors, first: {e}",
            unstage.op, unstage.errors
        ));
    }
    let left = attached_under(&images_dir);
    let listed = losetup_under(&images_dir);
    println!(
        "after NodeUnstage of all: {} loop devices attached to the bench's images (sysfs), losetup -J lists {}; {} loop devices in /sys/block (detached ones stay for reuse)",
        left.len(),
        listed.map_or("n/a".into(), |n| n.to_string()),
        loop_devices_in_sysfs()
    );
    if !left.is_empty() || listed.is_some_and(|n| n > 0) {
        failures.push(format!("loop devices left attached: {left:?}"));
    }

    let (c, ids2) = (ctrl.clone(), ids.clone());
    let (delete, _) = measure("DeleteVolume", ids.len(), o.clients, move |i| {
        let (mut c, id) = (c.clone(), ids2[i].clone());
        async move {
            c.delete_volume(csi::DeleteVolumeRequest {
                volume_id: id,
                ..Default::default()
            })
            .await
            .map(|_| String::new())
        }
    })
    .await;
    row(&delete);
    if let Some(e) = &delete.first_error {
        failures.push(format!(
            "DeleteVolume: {} errors, first: {e}",
            delete.errors
        ));
    }
    Ok(failures)
}

/// Undoes whatever a failed run left under `dir`: mounts, then loop devices.
fn clean_up(dir: &Path) {
    if let Ok(mounts) = berth::csi::mount::mount_points() {
        for m in mounts.iter().rev().filter(|m| m.starts_with(dir)) {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
    for (dev, _) in attached_under(dir) {
        let _ = berth::csi::loopdev::detach(&dev);
    }
    let _ = std::fs::remove_dir_all(dir);
}

async fn run(o: Opts) -> Result<(), String> {
    if !o.berth.exists() {
        return Err(format!(
            "{} not found: run `cargo build --release -p berth` or pass --berth",
            o.berth.display()
        ));
    }
    let dir = std::env::temp_dir().join(format!("berth-image-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let sock = dir.join("csi.sock");
    let started = Instant::now();
    let mut child = start_driver(&o.berth, &dir, &sock)?;
    let result = bench(&o, &dir, &sock, &mut child).await;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.join("driver.log")).unwrap_or_default();
    clean_up(&dir);
    let failures = result?;
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    if failures.is_empty() {
        println!("image_volume_bench: all checks passed");
        Ok(())
    } else {
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        Err(format!(
            "{}\ndriver log (last lines, newest first):\n{}",
            failures.join("\n"),
            tail.join("\n")
        ))
    }
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
            eprintln!("image_volume_bench: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
