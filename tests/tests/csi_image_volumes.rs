//! Image-backed volumes (deploy/'s default class, `berth-local`: a sparse
//! image with ext4 on a loop device) against the real `berth csi`, as root
//! with real mounts and loop devices:
//!
//! - the size is enforced: a writer past a volume's capacity gets ENOSPC,
//!   and another volume of the same node still takes writes and keeps its
//!   data;
//! - loop devices are released: NodeUnstage detaches the volume's device,
//!   and volumes staged when the driver is `kill -9`ed keep theirs across
//!   the restart (their pods still use them) and lose them at NodeUnstage,
//!   so no device stays attached to berth's images.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use berth_tests::csi_driver::{CsiDriver, Published, create_volume, unpublish};
use csi_proto as csi;

const MI: i64 = 1 << 20;

/// Loop devices backed by files under the driver's directory, per sysfs.
fn loop_devices_of(driver: &CsiDriver) -> Vec<(PathBuf, PathBuf)> {
    let root = std::fs::canonicalize(driver.dir()).expect("driver dir");
    berth::csi::loopdev::attached()
        .into_iter()
        .filter(|(_, backing)| backing.starts_with(&root))
        .collect()
}

/// The same question asked of util-linux (`losetup -J`), so the answer does
/// not rest on berth's own sysfs reader alone. `None` when losetup is
/// missing.
fn losetup_backing_files_under(dir: &Path) -> Option<Vec<String>> {
    let root = std::fs::canonicalize(dir).expect("driver dir");
    let out = std::process::Command::new("losetup")
        .args(["-J", "-l"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Some(Vec::new()); // no device attached at all: no JSON
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("losetup -J");
    let root = root.to_string_lossy().into_owned();
    Some(
        json["loopdevices"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["back-file"].as_str())
            .filter(|f| f.starts_with(&root))
            .map(str::to_string)
            .collect(),
    )
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn read_file(path: &Path) -> Vec<u8> {
    let mut v = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut v))
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    v
}

/// A recognisable 1 MiB pattern, different per `seed`.
fn pattern(seed: u8) -> Vec<u8> {
    (0..MI as usize)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_past_capacity_gets_enospc_and_its_neighbour_is_unaffected() {
    let driver = CsiDriver::start(&[]);
    let (mut ctrl, mut node) = driver.clients().await;
    let full = create_volume(&mut ctrl, "full", "ext4", 16 * MI, None).await;
    let neighbour = create_volume(&mut ctrl, "neighbour", "ext4", 16 * MI, None).await;
    let full = driver.publish(&mut node, &full.volume_id, "ext4").await;
    let neighbour = driver
        .publish(&mut node, &neighbour.volume_id, "ext4")
        .await;
    let before = pattern(7);
    write_file(&neighbour.target.join("before"), &before).expect("neighbour's first write");

    // Write 1 MiB chunks until the file system refuses: it must refuse with
    // ENOSPC, and before the writer got past the volume's size.
    let chunk = vec![0xabu8; MI as usize];
    let mut f = std::fs::File::create(full.target.join("fill")).expect("create");
    let mut written: i64 = 0;
    let error = loop {
        match f.write_all(&chunk).and_then(|()| f.sync_data()) {
            Ok(()) => written += MI,
            Err(e) => break e,
        }
        assert!(
            written <= 64 * MI,
            "wrote {written} bytes into a 16Mi volume without an error"
        );
    };
    assert_eq!(
        error.raw_os_error(),
        Some(nix::errno::Errno::ENOSPC as i32),
        "after {written} bytes: {error}"
    );
    assert!(written <= 16 * MI, "wrote {written} bytes into 16Mi");
    println!(
        "ENOSPC after {} MiB written into a 16Mi ext4 volume",
        written / MI
    );
    drop(f);
    // The image on the node's disk holds no more than the volume's size.
    let image = loop_devices_of(&driver)
        .into_iter()
        .map(|(_, b)| b)
        .find(|b| b.to_string_lossy().contains(&full.id))
        .expect("the full volume's image");
    let allocated = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&image).expect("image").blocks() * 512
    };
    assert!(
        allocated <= 16 * MI as u64,
        "the image allocates {allocated} bytes on the node's disk"
    );

    // The neighbour still takes writes and keeps what it had.
    let after = pattern(9);
    write_file(&neighbour.target.join("after"), &after)
        .expect("the neighbour's write after the other volume filled up");
    assert!(read_file(&neighbour.target.join("before")) == before);
    assert!(read_file(&neighbour.target.join("after")) == after);
    // So does the full volume once its writer lets go of space.
    std::fs::remove_file(full.target.join("fill")).expect("rm");
    write_file(&full.target.join("again"), &after).expect("write after freeing space");

    unpublish(&mut node, &full).await;
    unpublish(&mut node, &neighbour).await;
    assert!(loop_devices_of(&driver).is_empty(), "{}", driver.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_devices_are_released_on_unstage_and_after_a_kill_dash_nine() {
    const N: usize = 10;
    let mut driver = CsiDriver::start(&[]);
    let (mut ctrl, mut node) = driver.clients().await;
    let mut published: Vec<Published> = Vec::new();
    for i in 0..N {
        let v = create_volume(&mut ctrl, &format!("vol-{i}"), "ext4", 16 * MI, None).await;
        let p = driver.publish(&mut node, &v.volume_id, "ext4").await;
        write_file(&p.target.join("data"), format!("volume {i}").as_bytes()).expect("write");
        published.push(p);
    }
    let attached = loop_devices_of(&driver);
    assert_eq!(attached.len(), N, "one loop device per staged volume");
    let mut images: Vec<_> = attached.iter().map(|(_, b)| b.clone()).collect();
    images.sort();
    images.dedup();
    assert_eq!(images.len(), N, "no image attached twice: {attached:?}");
    if let Some(files) = losetup_backing_files_under(driver.dir()) {
        assert_eq!(files.len(), N, "losetup -J agrees: {files:?}");
    }

    // NodeUnstage of half releases exactly their devices.
    let (gone, kept) = published.split_at(N / 2);
    for p in gone {
        unpublish(&mut node, p).await;
    }
    let attached = loop_devices_of(&driver);
    assert_eq!(attached.len(), N - N / 2, "{attached:?}");
    for p in gone {
        assert!(
            !attached
                .iter()
                .any(|(_, b)| b.to_string_lossy().contains(&p.id)),
            "{} still attached after NodeUnstage: {attached:?}",
            p.id
        );
    }

    // kill -9 with half of them staged and published: their devices stay
    // (a pod still uses them), readable through the pods' mounts.
    driver.kill_and_restart();
    let (mut ctrl, mut node) = driver.clients().await;
    assert_eq!(
        loop_devices_of(&driver).len(),
        kept.len(),
        "the staged volumes' devices survive the restart\n{}",
        driver.log()
    );
    for (i, p) in kept.iter().enumerate() {
        let want = format!("volume {}", N / 2 + i);
        assert_eq!(read_file(&p.target.join("data")), want.as_bytes());
        // The kubelet stages again after a plugin restart: the same stage,
        // no second device.
        node.node_stage_volume(csi::NodeStageVolumeRequest {
            volume_id: p.id.clone(),
            staging_target_path: p.staging.display().to_string(),
            volume_capability: Some(berth_tests::csi_driver::capability(Some("ext4"))),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("NodeStage {} again: {s:?}", p.id));
    }
    assert_eq!(loop_devices_of(&driver).len(), kept.len());

    // Unstaging everything after the restart leaves no device attached to
    // berth's images.
    for p in kept {
        unpublish(&mut node, p).await;
    }
    let left = loop_devices_of(&driver);
    assert!(left.is_empty(), "left attached: {left:?}\n{}", driver.log());
    if let Some(files) = losetup_backing_files_under(driver.dir()) {
        assert!(files.is_empty(), "losetup -J still lists {files:?}");
    }
    for v in published {
        ctrl.delete_volume(csi::DeleteVolumeRequest {
            volume_id: v.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("DeleteVolume {}: {s:?}", v.id));
    }
}
