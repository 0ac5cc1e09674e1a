//! Crash-safety proof for `berth csi`: hundreds of times, drive a random mix
//! of volume, snapshot, clone, expand and stage operations, `kill -9` the
//! driver at a random instant, restart it, and check that reconciliation
//! left no orphaned directory, image file or loop device, no record without
//! its data, and lost nothing that was acknowledged. Needs root (real loop
//! devices and mounts); it fails rather than skips without it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use csi::controller_client::ControllerClient;
use csi::node_client::NodeClient;
use csi_proto as csi;
use tonic::transport::Channel;

const ITERATIONS: usize = 300;
const NAMES: usize = 24;

use berth_tests::berth_bin;

/// Tiny xorshift PRNG: reproducible from the printed seed, no extra crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Env {
    dir: PathBuf,
    sock: PathBuf,
}

impl Env {
    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }
    /// Driver logs from every run, appended, kept when the test fails.
    fn log(&self) -> Stdio {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("driver.log"))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null())
    }
    fn start(&self) -> Child {
        let _ = std::fs::remove_file(&self.sock);
        let child = Command::new(self.dir.join("berth"))
            .arg("csi")
            .arg("--endpoint")
            .arg(format!("unix://{}", self.sock.display()))
            .args(["--node-id", "crash-node", "--capacity", "1Ti"])
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .arg("--data-dir")
            .arg(self.data())
            .arg("--kubelet-dir")
            .arg(&self.dir)
            .env("BERTH_LOG", "info")
            .stdout(Stdio::null())
            .stderr(self.log())
            .spawn()
            .expect("spawning berth csi");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.sock.exists() {
            assert!(
                Instant::now() < deadline,
                "berth csi did not create its socket"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        child
    }
}

/// Connect to the driver, retrying briefly: the socket file appears at
/// bind(), a moment before listen(), so an early connect can be refused.
async fn connect(sock: &Path) -> Channel {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let result = csi_proto::connect_unix(sock).await;
        match result {
            Ok(ch) => return ch,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("connecting to the driver socket: {e:?}"),
        }
    }
}

fn mount_cap(fs: &str) -> csi::VolumeCapability {
    use csi::volume_capability::*;
    csi::VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume {
            fs_type: fs.into(),
            mount_flags: vec![],
            volume_mount_group: String::new(),
        })),
        access_mode: Some(AccessMode {
            mode: access_mode::Mode::SingleNodeWriter as i32,
        }),
    }
}

fn block_cap() -> csi::VolumeCapability {
    use csi::volume_capability::*;
    csi::VolumeCapability {
        access_type: Some(AccessType::Block(BlockVolume {})),
        access_mode: Some(AccessMode {
            mode: access_mode::Mode::SingleNodeWriter as i32,
        }),
    }
}

/// What the client has been told, so acknowledged work can be checked
/// after each crash.
#[derive(Default)]
struct Model {
    /// Volumes whose CreateVolume succeeded and no DeleteVolume started.
    live: HashMap<String, (String, bool)>, // name -> (id, block)
    /// Volumes whose DeleteVolume succeeded.
    deleted: HashSet<String>,
    /// Volume ids whose NodeStage succeeded (and unstage not started).
    staged: HashSet<String>,
    /// Volume ids with a stage attempted at some point (cleanup targets).
    stage_attempted: HashSet<String>,
    /// Per volume id, how many NodeUnstage calls have started: a NodeStage
    /// acknowledged while another client's NodeUnstage of the same volume
    /// was on its way may be undone by it (the driver serialises the two in
    /// either order), so such an acknowledgement promises nothing.
    unstages_started: HashMap<String, u64>,
    snapshots: HashMap<String, String>, // name -> id
    deleted_snapshots: HashSet<String>,
}

/// One random operation by client task `task`. Each task owns the volume
/// and snapshot names with its own prefix, so the model of what was
/// acknowledged never races between tasks.
async fn one_op(
    task: usize,
    rng: &mut Rng,
    ctrl: &mut ControllerClient<Channel>,
    node: &mut NodeClient<Channel>,
    model: &Arc<Mutex<Model>>,
    staging_root: &Path,
) {
    let name = format!("t{task}v{}", rng.below(NAMES as u64));
    let op = rng.below(10);
    let known = model.lock().unwrap().live.get(&name).cloned();
    match (op, known) {
        (0..=3, None) => {
            let block = rng.below(3) == 0;
            let ext4 = !block && rng.below(2) == 0;
            let cap = if block {
                block_cap()
            } else if ext4 {
                mount_cap("ext4")
            } else {
                mount_cap("")
            };
            let mut req = csi::CreateVolumeRequest {
                name: name.clone(),
                capacity_range: Some(csi::CapacityRange {
                    required_bytes: ((1 + rng.below(8)) << 20) as i64,
                    limit_bytes: 0,
                }),
                volume_capabilities: vec![cap],
                ..Default::default()
            };
            // Sometimes clone from an existing volume or restore a snapshot.
            let (src_vol, src_snap) = {
                let m = model.lock().unwrap();
                (
                    m.live
                        .values()
                        .find(|(_, b)| *b == block)
                        .map(|(id, _)| id.clone()),
                    m.snapshots.values().next().cloned(),
                )
            };
            if let (1, Some(src)) = (rng.below(4), src_vol) {
                req.volume_content_source = Some(csi::VolumeContentSource {
                    r#type: Some(csi::volume_content_source::Type::Volume(
                        csi::volume_content_source::VolumeSource { volume_id: src },
                    )),
                });
            } else if let (1, Some(src), false) = (rng.below(4), src_snap, block) {
                req.volume_content_source = Some(csi::VolumeContentSource {
                    r#type: Some(csi::volume_content_source::Type::Snapshot(
                        csi::volume_content_source::SnapshotSource { snapshot_id: src },
                    )),
                });
                // A restored volume keeps its snapshot's layout, whatever we ask.
                req.volume_capabilities = vec![mount_cap("")];
            }
            if let Ok(r) = ctrl.create_volume(req).await
                && let Some(v) = r.into_inner().volume
            {
                model
                    .lock()
                    .unwrap()
                    .live
                    .insert(name, (v.volume_id, block));
            }
        }
        (4..=5, Some((id, _))) => {
            let staged = model.lock().unwrap().staged.contains(&id);
            if staged {
                return;
            }
            model.lock().unwrap().live.remove(&name);
            if ctrl
                .delete_volume(csi::DeleteVolumeRequest {
                    volume_id: id.clone(),
                    ..Default::default()
                })
                .await
                .is_ok()
            {
                model.lock().unwrap().deleted.insert(id);
            }
        }
        (6, Some((id, _))) => {
            let snap = format!("t{task}s{}", rng.below(NAMES as u64));
            let existing = model.lock().unwrap().snapshots.remove(&snap);
            if let Some(sid) = existing {
                if ctrl
                    .delete_snapshot(csi::DeleteSnapshotRequest {
                        snapshot_id: sid.clone(),
                        ..Default::default()
                    })
                    .await
                    .is_ok()
                {
                    model.lock().unwrap().deleted_snapshots.insert(sid);
                }
            } else if let Ok(r) = ctrl
                .create_snapshot(csi::CreateSnapshotRequest {
                    source_volume_id: id,
                    name: snap.clone(),
                    ..Default::default()
                })
                .await
                && let Some(s) = r.into_inner().snapshot
            {
                model.lock().unwrap().snapshots.insert(snap, s.snapshot_id);
            }
        }
        (7, Some((id, _))) => {
            let _ = ctrl
                .controller_expand_volume(csi::ControllerExpandVolumeRequest {
                    volume_id: id,
                    capacity_range: Some(csi::CapacityRange {
                        required_bytes: (16 << 20) + ((rng.below(16) as i64) << 20),
                        limit_bytes: 0,
                    }),
                    ..Default::default()
                })
                .await;
        }
        (8..=9, Some((id, block))) => {
            let staging = staging_root.join(&id);
            let already = model.lock().unwrap().staged.contains(&id);
            if already {
                {
                    let mut m = model.lock().unwrap();
                    m.staged.remove(&id);
                    *m.unstages_started.entry(id.clone()).or_default() += 1;
                }
                let _ = node
                    .node_unstage_volume(csi::NodeUnstageVolumeRequest {
                        volume_id: id,
                        staging_target_path: staging.to_string_lossy().into_owned(),
                    })
                    .await;
            } else {
                let unstages_before = {
                    let mut m = model.lock().unwrap();
                    m.stage_attempted.insert(id.clone());
                    m.unstages_started.get(&id).copied().unwrap_or(0)
                };
                let _ = std::fs::create_dir_all(&staging);
                let cap = if block { block_cap() } else { mount_cap("") };
                if node
                    .node_stage_volume(csi::NodeStageVolumeRequest {
                        volume_id: id.clone(),
                        staging_target_path: staging.to_string_lossy().into_owned(),
                        volume_capability: Some(cap),
                        ..Default::default()
                    })
                    .await
                    .is_ok()
                {
                    let mut m = model.lock().unwrap();
                    if m.unstages_started.get(&id).copied().unwrap_or(0) == unstages_before {
                        m.staged.insert(id);
                    }
                }
            }
        }
        _ => {}
    }
}

fn disk_ids(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    n.strip_suffix(".img").unwrap_or(&n).to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn loops_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/block") {
        for e in rd.flatten() {
            if let Ok(b) = std::fs::read_to_string(e.path().join("loop/backing_file"))
                && Path::new(b.trim().trim_end_matches(" (deleted)")).starts_with(dir)
            {
                out.push(format!(
                    "{} -> {}",
                    e.file_name().to_string_lossy(),
                    b.trim()
                ));
            }
        }
    }
    out
}

fn mounts_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .map(str::to_string)
        .collect()
}

async fn list_all_volumes(ctrl: &mut ControllerClient<Channel>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut token = String::new();
    loop {
        let r = ctrl
            .list_volumes(csi::ListVolumesRequest {
                max_entries: 7,
                starting_token: token.clone(),
            })
            .await
            .expect("ListVolumes after restart")
            .into_inner();
        out.extend(
            r.entries
                .into_iter()
                .filter_map(|e| e.volume.map(|v| v.volume_id)),
        );
        if r.next_token.is_empty() {
            return out;
        }
        token = r.next_token;
    }
}

async fn list_all_snapshots(ctrl: &mut ControllerClient<Channel>) -> BTreeSet<String> {
    ctrl.list_snapshots(csi::ListSnapshotsRequest::default())
        .await
        .expect("ListSnapshots after restart")
        .into_inner()
        .entries
        .into_iter()
        .filter_map(|e| e.snapshot.map(|s| s.snapshot_id))
        .collect()
}

#[test]
fn kill_dash_nine_at_random_points_leaves_no_orphans() {
    assert!(
        nix_is_root(),
        "csi_crash needs root for loop devices and mounts; run the tests as root"
    );
    let dir = std::env::temp_dir().join(format!("berth-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating test dir");
    let env = Env {
        sock: dir.join("csi.sock"),
        dir: dir.clone(),
    };
    // Run a private copy: a concurrent `cargo build` elsewhere in the
    // workspace may replace target/release/berth mid-test.
    std::fs::copy(berth_bin(), dir.join("berth")).expect("copying the berth binary");
    let staging_root = dir.join("staging");
    std::fs::create_dir_all(&staging_root).expect("creating staging root");
    let seed = std::env::var("CSI_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    eprintln!("csi_crash: seed {seed} (set CSI_CRASH_SEED to replay)");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let model = Arc::new(Mutex::new(Model::default()));
    let started = Instant::now();
    let mut rng = Rng(seed);
    let mut child = env.start();

    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for iter in 0..ITERATIONS {
            // Phase 1: random workload from 3 concurrent clients, killed at a
            // random instant.
            let kill_after = Duration::from_micros(rng.below(40_000));
            let seeds: Vec<u64> = (0..3).map(|_| rng.next() | 1).collect();
            let inflight = rt.block_on(async {
                let ch = connect(&env.sock).await;
                let mut tasks = Vec::new();
                for (task, s) in seeds.into_iter().enumerate() {
                    let ch = ch.clone();
                    let model = model.clone();
                    let staging_root = staging_root.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut rng = Rng(s);
                        let mut ctrl = ControllerClient::new(ch.clone());
                        let mut node = NodeClient::new(ch);
                        loop {
                            one_op(task, &mut rng, &mut ctrl, &mut node, &model, &staging_root)
                                .await;
                        }
                    }));
                }
                tokio::time::sleep(kill_after).await;
                tasks
            });
            child.kill().expect("kill -9 berth csi");
            let _ = child.wait();
            rt.block_on(async {
                for t in &inflight {
                    t.abort();
                }
                for t in inflight {
                    let _ = t.await;
                }
            });

            // Phase 2: restart (reconciliation runs before serving) and check.
            child = env.start();
            rt.block_on(async {
                let ch = connect(&env.sock).await;
                let mut ctrl = ControllerClient::new(ch.clone());
                let mut node = NodeClient::new(ch);
                let listed = list_all_volumes(&mut ctrl).await;
                let on_disk = disk_ids(&env.data().join("volumes"));
                assert_eq!(
                    listed, on_disk,
                    "iteration {iter}: volume records and volume data differ"
                );
                let snaps = list_all_snapshots(&mut ctrl).await;
                let snaps_on_disk = disk_ids(&env.data().join("snapshots"));
                assert_eq!(
                    snaps, snaps_on_disk,
                    "iteration {iter}: snapshot records and data differ"
                );

                // Check the model, and take the stage targets out of it, with
                // the lock released before any further RPC.
                let attempted: Vec<String> = {
                    let mut m = model.lock().unwrap();
                    for (name, (id, _)) in &m.live {
                        assert!(
                            listed.contains(id),
                            "iteration {iter}: acknowledged volume {name} ({id}) lost"
                        );
                    }
                    for id in &m.deleted {
                        assert!(
                            !listed.contains(id),
                            "iteration {iter}: deleted volume {id} came back"
                        );
                    }
                    for id in m.snapshots.values() {
                        assert!(
                            snaps.contains(id),
                            "iteration {iter}: acknowledged snapshot {id} lost"
                        );
                    }
                    for id in &m.deleted_snapshots {
                        assert!(
                            !snaps.contains(id),
                            "iteration {iter}: deleted snapshot {id} came back"
                        );
                    }
                    // Acknowledged stages survive the crash...
                    let loops = loops_under(&env.data());
                    let mounts = mounts_under(&staging_root);
                    for id in &m.staged {
                        let staged_somewhere = loops.iter().any(|l| l.contains(id.as_str()))
                            || mounts.iter().any(|p| p.contains(id.as_str()));
                        assert!(
                            staged_somewhere,
                            "iteration {iter}: acknowledged stage of {id} lost"
                        );
                    }
                    // ...and unstaging everything through the driver leaves no
                    // loop device or mount behind: anything left was orphaned.
                    m.staged.clear();
                    m.stage_attempted.drain().collect()
                };
                for id in attempted {
                    node.node_unstage_volume(csi::NodeUnstageVolumeRequest {
                        staging_target_path: staging_root.join(&id).to_string_lossy().into_owned(),
                        volume_id: id,
                    })
                    .await
                    .expect("NodeUnstage during verification");
                }
                let loops = loops_under(&env.data());
                assert!(
                    loops.is_empty(),
                    "iteration {iter}: orphaned loop devices: {loops:?}"
                );
                let mounts = mounts_under(&staging_root);
                assert!(
                    mounts.is_empty(),
                    "iteration {iter}: orphaned mounts: {mounts:?}"
                );
            });
        }
    }));

    let _ = child.kill();
    let _ = child.wait();
    // Clean up whatever a failed assertion left behind.
    for m in mounts_under(&dir).iter().rev() {
        let _ = Command::new("umount").arg("-l").arg(m).status();
    }
    for l in loops_under(&dir) {
        if let Some(dev) = l.split(' ').next() {
            let _ = Command::new("losetup")
                .args(["-d", &format!("/dev/{dev}")])
                .status();
        }
    }
    // Evidence that kills landed mid-operation: the restarts had
    // half-done work to roll back.
    let log = std::fs::read_to_string(dir.join("driver.log")).unwrap_or_default();
    let rollbacks = log.matches("rolling back interrupted").count();
    let loops = log.matches("detaching orphaned loop device").count();
    eprintln!(
        "csi_crash: {ITERATIONS} kill -9 cycles in {:.1}s; reconciliation rolled back {rollbacks} interrupted operations and detached {loops} unrecorded loop devices",
        started.elapsed().as_secs_f64()
    );
    if result.is_ok() && std::env::var_os("CSI_CRASH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
