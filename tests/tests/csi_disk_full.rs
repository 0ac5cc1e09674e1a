//! A full disk under the driver costs errors, never half-made volumes or
//! a broken store: with the data (and state) directories on a small
//! loop-mounted ext4, a CreateVolume that does not fit is
//! RESOURCE_EXHAUSTED whether the accounting or the disk says so; a copy
//! that fills the disk mid-create (a clone, a snapshot) leaves nothing
//! behind and ListVolumes agrees with the data directory; and the redb
//! state store on a full disk fails its calls cleanly (a gRPC error, the
//! driver still serving), then works again once space returns, with
//! nothing lost or corrupted (a restart on the same directories finds the
//! same volumes). Runs the real `berth csi` as root; every file system it
//! mounts is unmounted and detached when the test ends, passed or not.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_tests::csi_driver::{CsiDriver, create_volume, unpublish};
use csi::controller_client::ControllerClient;
use csi_proto as csi;
use tonic::Code;
use tonic::transport::Channel;

const MI: i64 = 1 << 20;

/// A small ext4 on a loop device over a sparse file, mounted at `mnt`;
/// dropping it unmounts (lazily, in case something still holds it) and
/// detaches, so a failing test leaves nothing mounted.
struct LoopFs {
    _dir: tempfile::TempDir,
    mnt: PathBuf,
    device: String,
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl LoopFs {
    fn new(mib: u64) -> LoopFs {
        let dir = tempfile::tempdir().expect("tempdir");
        let image = dir.path().join("fs.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(mib << 20))
            .expect("sparse image");
        let device = run(Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&image));
        let mnt = dir.path().join("mnt");
        let fs = LoopFs {
            _dir: dir,
            mnt: mnt.clone(),
            device: device.clone(),
        };
        // No reserved blocks: root (the driver) would use them anyway,
        // and "full" should mean full.
        run(Command::new("mkfs.ext4").args(["-q", "-F", "-m", "0", &device]));
        std::fs::create_dir(&mnt).expect("mkdir mnt");
        run(Command::new("mount").arg(&device).arg(&mnt));
        fs
    }

    fn free(&self) -> u64 {
        let s = nix::sys::statvfs::statvfs(&self.mnt).expect("statvfs");
        s.blocks_available() * s.fragment_size()
    }

    /// Writes a file of incompressible bytes until at most `leave` bytes
    /// remain free (0: until even a 512-byte write is refused); returns
    /// its path.
    fn fill(&self, name: &str, leave: u64) -> PathBuf {
        let path = self.mnt.join(name);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("filler");
        let mut chunk: u64 = 1 << 20;
        loop {
            let free = self.free();
            if leave > 0 && free <= leave {
                break;
            }
            let n = chunk.min(free.saturating_sub(leave)).max(512);
            let bytes = vec![0x5au8; usize::try_from(n).expect("chunk")];
            match f.write_all(&bytes).and_then(|()| f.sync_all()) {
                Ok(()) => {}
                // Full at this size: smaller writes take the last blocks.
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => {
                    if chunk <= 512 {
                        break;
                    }
                    chunk /= 4;
                }
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        path
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        // Image volumes a failed test left staged are attached from here.
        for (dev, backing) in berth::csi::loopdev::attached() {
            if backing.starts_with(&self.mnt) {
                let _ = berth::csi::loopdev::detach(&dev);
            }
        }
        let _ = nix::mount::umount2(&self.mnt, nix::mount::MntFlags::MNT_DETACH);
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

/// Starts the driver with its data (and, unless `state` is given, state)
/// directory on `fs`; `capacity` is `--capacity`.
fn start(fs: &LoopFs, state: Option<&Path>, capacity: &str) -> CsiDriver {
    let data = format!("--data-dir={}", fs.mnt.join("data").display());
    let state = format!(
        "--state-dir={}",
        state
            .map(Path::to_path_buf)
            .unwrap_or_else(|| fs.mnt.join("state"))
            .display()
    );
    let capacity = format!("--capacity={capacity}");
    CsiDriver::start(&[&data, &state, &capacity])
}

/// The volume ids ListVolumes gives (all pages).
async fn listed(ctrl: &mut ControllerClient<Channel>) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let mut token = String::new();
    loop {
        let page = ctrl
            .list_volumes(csi::ListVolumesRequest {
                max_entries: 50,
                starting_token: token,
            })
            .await
            .unwrap_or_else(|s| panic!("ListVolumes: {s:?}"))
            .into_inner();
        ids.extend(
            page.entries
                .iter()
                .filter_map(|e| e.volume.as_ref())
                .map(|v| v.volume_id.clone()),
        );
        if page.next_token.is_empty() {
            return ids;
        }
        token = page.next_token;
    }
}

/// The volume ids with data under `data/volumes` (an image is `<id>.img`).
fn on_disk(data: &Path, sub: &str) -> BTreeSet<String> {
    std::fs::read_dir(data.join(sub))
        .expect("read data dir")
        .map(|e| {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            name.strip_suffix(".img").unwrap_or(&name).to_string()
        })
        .collect()
}

async fn listed_snapshots(ctrl: &mut ControllerClient<Channel>) -> BTreeSet<String> {
    ctrl.list_snapshots(csi::ListSnapshotsRequest::default())
        .await
        .unwrap_or_else(|s| panic!("ListSnapshots: {s:?}"))
        .into_inner()
        .entries
        .iter()
        .filter_map(|e| e.snapshot.as_ref())
        .map(|s| s.snapshot_id.clone())
        .collect()
}

/// The store and the data directory agree: no record without data, no
/// data without a record.
async fn consistent(ctrl: &mut ControllerClient<Channel>, data: &Path, when: &str) {
    assert_eq!(
        listed(ctrl).await,
        on_disk(data, "volumes"),
        "{when}: ListVolumes and the data directory disagree"
    );
    assert_eq!(
        listed_snapshots(ctrl).await,
        on_disk(data, "snapshots"),
        "{when}: ListSnapshots and the data directory disagree"
    );
}

fn request(name: &str, fs: &str, bytes: i64, source: Option<&str>) -> csi::CreateVolumeRequest {
    use csi::volume_content_source::{Type, VolumeSource};
    csi::CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(csi::CapacityRange {
            required_bytes: bytes,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![berth_tests::csi_driver::capability(Some(fs))],
        volume_content_source: source.map(|id| csi::VolumeContentSource {
            r#type: Some(Type::Volume(VolumeSource {
                volume_id: id.to_string(),
            })),
        }),
        ..Default::default()
    }
}

fn write_mib(path: &Path, mib: usize) {
    let mut f = std::fs::File::create(path).expect("create");
    // Not zeros: a copy may not keep them sparse.
    for _ in 0..mib {
        f.write_all(&vec![0xa5u8; 1 << 20]).expect("write");
    }
    f.sync_all().expect("sync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_does_not_fit_is_resource_exhausted_by_accounting_and_by_the_disk() {
    let fs = LoopFs::new(64);
    let data = fs.mnt.join("data");

    // By accounting: --capacity is all the driver may promise.
    {
        let driver = start(&fs, None, "32Mi");
        let (mut ctrl, _) = driver.clients().await;
        create_volume(&mut ctrl, "fits", "", 24 * MI, None).await;
        let refused = ctrl
            .create_volume(request("too-big", "", 16 * MI, None))
            .await
            .expect_err("16Mi more than the 8Mi left");
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        consistent(&mut ctrl, &data, "after the accounting refusal").await;
    }

    // By the disk: a capacity the file system cannot hold (10Gi on 64Mi),
    // so only the disk says no.
    let driver = start(&fs, None, "10Gi");
    let (mut ctrl, mut node) = driver.clients().await;
    let dir_src = create_volume(&mut ctrl, "dir-src", "", 32 * MI, None).await;
    let p = driver.publish(&mut node, &dir_src.volume_id, "").await;
    write_mib(&p.target.join("rows"), 12);
    unpublish(&mut node, &p).await;
    let img_src = create_volume(&mut ctrl, "img-src", "ext4", 32 * MI, None).await;
    let p = driver.publish(&mut node, &img_src.volume_id, "ext4").await;
    write_mib(&p.target.join("rows"), 12);
    unpublish(&mut node, &p).await;
    nix::unistd::sync();
    consistent(&mut ctrl, &data, "with both sources").await;

    // Leave less room than either source holds: each copy fills the disk
    // midway.
    let filler = fs.fill("filler", 6 << 20);
    let before = fs.free();
    for (name, fs_type, src) in [
        ("dir-clone", "", &dir_src.volume_id),
        ("img-clone", "ext4", &img_src.volume_id),
    ] {
        let refused = ctrl
            .create_volume(request(name, fs_type, 32 * MI, Some(src)))
            .await
            .expect_err("a clone larger than the free space");
        assert_eq!(
            refused.code(),
            Code::ResourceExhausted,
            "{name}: {refused:?}\n{}",
            driver.log()
        );
        consistent(&mut ctrl, &data, name).await;
        // The partial copy was removed: the space is back.
        assert!(
            fs.free() + (1 << 20) >= before,
            "{name}: {} bytes free after, {before} before",
            fs.free()
        );
    }
    let refused = ctrl
        .create_snapshot(csi::CreateSnapshotRequest {
            source_volume_id: dir_src.volume_id.clone(),
            name: "snap".into(),
            ..Default::default()
        })
        .await
        .expect_err("a snapshot larger than the free space");
    assert_eq!(
        refused.code(),
        Code::ResourceExhausted,
        "snapshot: {refused:?}"
    );
    consistent(&mut ctrl, &data, "after the snapshot").await;

    // Completely full: even a new empty directory does not fit.
    let last = fs.fill("last", 0);
    let refused = ctrl
        .create_volume(request("empty-dir", "", MI, None))
        .await
        .expect_err("no room for a directory");
    assert_eq!(
        refused.code(),
        Code::ResourceExhausted,
        "empty dir: {refused:?}\n{}",
        driver.log()
    );
    consistent(&mut ctrl, &data, "on a full disk").await;

    // Space returns: the same requests succeed, and the clones hold the data.
    std::fs::remove_file(&filler).expect("rm filler");
    std::fs::remove_file(&last).expect("rm last");
    let clone = create_volume(
        &mut ctrl,
        "dir-clone",
        "",
        32 * MI,
        Some(csi::volume_content_source::Type::Volume(
            csi::volume_content_source::VolumeSource {
                volume_id: dir_src.volume_id.clone(),
            },
        )),
    )
    .await;
    let p = driver.publish(&mut node, &clone.volume_id, "").await;
    let len = std::fs::metadata(p.target.join("rows"))
        .expect("cloned file")
        .len();
    assert_eq!(len, 12 << 20);
    unpublish(&mut node, &p).await;
    create_volume(&mut ctrl, "empty-dir", "", MI, None).await;
    consistent(&mut ctrl, &data, "after space returned").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_store_on_a_full_disk_fails_cleanly_and_recovers() {
    let data_fs = LoopFs::new(64);
    let state_fs = LoopFs::new(16);
    let data = data_fs.mnt.join("data");
    let state = state_fs.mnt.join("state");
    let mut driver = start(&data_fs, Some(&state), "10Gi");
    let (mut ctrl, _) = driver.clients().await;
    let mut acknowledged = BTreeSet::new();
    for i in 0..3 {
        let v = create_volume(&mut ctrl, &format!("before-{i}"), "", MI, None).await;
        acknowledged.insert(v.volume_id);
    }
    let image = create_volume(&mut ctrl, "grow-me", "ext4", 16 * MI, None).await;
    acknowledged.insert(image.volume_id.clone());
    let image_file = data
        .join("volumes")
        .join(format!("{}.img", image.volume_id));
    let image_len = std::fs::metadata(&image_file).expect("image").len();

    // Fill the state store's disk, then write records until the store
    // needs room it cannot get.
    let filler = state_fs.fill("filler", 0);
    let mut failed = None;
    for i in 0..2000 {
        let name = format!("during-{i}");
        // Long names make each record (and the store's growth) larger.
        let name = format!("{name}-{}", "x".repeat(100));
        match ctrl.create_volume(request(&name, "", MI, None)).await {
            Ok(v) => {
                acknowledged.insert(v.into_inner().volume.expect("volume").volume_id);
            }
            Err(status) => {
                failed = Some((name, status));
                break;
            }
        }
    }
    let (failed_name, status) = failed.unwrap_or_else(|| {
        panic!(
            "2000 creates never filled the state store's disk ({} bytes free)",
            state_fs.free()
        )
    });
    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "{status:?}\n{}",
        driver.log()
    );
    eprintln!(
        "csi_disk_full: the state store's disk refused create {} of 2000: {:?} {}",
        acknowledged.len() - 4 + 1,
        status.code(),
        status.message()
    );
    assert!(status.message().contains("state store"), "{status:?}");

    // Still failing cleanly while full: a second create, and an expansion
    // whose record cannot be written (its image must not stay grown).
    let again = ctrl
        .create_volume(request(&failed_name, "", MI, None))
        .await
        .expect_err("still full");
    assert!(
        matches!(again.code(), Code::ResourceExhausted | Code::Internal),
        "{again:?}"
    );
    let expand = ctrl
        .controller_expand_volume(csi::ControllerExpandVolumeRequest {
            volume_id: image.volume_id.clone(),
            capacity_range: Some(csi::CapacityRange {
                required_bytes: 32 * MI,
                limit_bytes: 0,
            }),
            ..Default::default()
        })
        .await
        .expect_err("the record cannot be written");
    assert!(
        matches!(expand.code(), Code::ResourceExhausted | Code::Internal),
        "{expand:?}"
    );
    assert_eq!(
        std::fs::metadata(&image_file).expect("image").len(),
        image_len,
        "a failed expansion leaves the image at its recorded size"
    );
    // No half-made volume: nothing on disk beyond what was acknowledged.
    assert_eq!(on_disk(&data, "volumes"), acknowledged, "while full");

    // Space returns: the very next calls work, nothing acknowledged is
    // lost, nothing unacknowledged appears.
    std::fs::remove_file(&filler).expect("rm filler");
    let v = ctrl
        .create_volume(request(&failed_name, "", MI, None))
        .await
        .unwrap_or_else(|s| panic!("create after space returned: {s:?}\n{}", driver.log()))
        .into_inner()
        .volume
        .expect("volume");
    acknowledged.insert(v.volume_id);
    let grown = ctrl
        .controller_expand_volume(csi::ControllerExpandVolumeRequest {
            volume_id: image.volume_id.clone(),
            capacity_range: Some(csi::CapacityRange {
                required_bytes: 32 * MI,
                limit_bytes: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("expand after space returned: {s:?}"))
        .into_inner();
    assert_eq!(grown.capacity_bytes, 32 * MI);
    assert_eq!(listed(&mut ctrl).await, acknowledged, "after recovery");
    consistent(&mut ctrl, &data, "after recovery").await;
    assert!(
        driver
            .log()
            .contains("state store reopened after an I/O failure"),
        "{}",
        driver.log()
    );

    // A restart on the same directories finds the same, uncorrupted store.
    drop(ctrl);
    drop(driver);
    driver = start(&data_fs, Some(&state), "10Gi");
    let (mut ctrl, _) = driver.clients().await;
    assert_eq!(listed(&mut ctrl).await, acknowledged, "after a restart");
    consistent(&mut ctrl, &data, "after a restart").await;
    let volume = ctrl
        .controller_get_volume(csi::ControllerGetVolumeRequest {
            volume_id: image.volume_id.clone(),
        })
        .await
        .unwrap_or_else(|s| panic!("ControllerGetVolume: {s:?}"))
        .into_inner()
        .volume
        .expect("volume");
    assert_eq!(volume.capacity_bytes, 32 * MI, "the expansion survived");
}
