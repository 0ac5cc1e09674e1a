//! NodeGetVolumeStats tells a claim's own figures, not the host's: a
//! directory volume reports its capacity as total and what its directory
//! holds as used (so `kubelet_volume_stats_*` and `kubectl describe` show
//! the claim, not the node's disk), and turns abnormal once it holds more
//! than its capacity; an ext4 volume still reports its own file system.
//! Runs the real `berth csi` as root (it mounts and attaches loop devices).

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_tests::csi_driver::{CsiDriver, Published, create_volume, unpublish};
use csi::controller_client::ControllerClient;
use csi::node_client::NodeClient;
use csi::volume_usage::Unit;
use csi_proto as csi;
use tonic::transport::Channel;

const MI: i64 = 1 << 20;
/// The driver re-measures a directory within seconds (its usage cache's
/// freshness); a figure that has not moved after this is wrong.
const SETTLE: Duration = Duration::from_secs(20);

/// Creates a 16Mi volume (`fs` empty: a directory), stages and publishes it.
async fn publish(
    driver: &CsiDriver,
    ctrl: &mut ControllerClient<Channel>,
    node: &mut NodeClient<Channel>,
    name: &str,
    fs: &str,
) -> Published {
    let volume = create_volume(ctrl, name, fs, 16 * MI, None).await;
    assert_eq!(volume.capacity_bytes, 16 * MI, "{name}");
    driver.publish(node, &volume.volume_id, fs).await
}

/// The figures of one NodeGetVolumeStats answer.
#[derive(Debug)]
struct Stats {
    bytes: csi::VolumeUsage,
    inodes: csi::VolumeUsage,
    condition: csi::VolumeCondition,
}

async fn stats(node: &mut NodeClient<Channel>, p: &Published) -> Stats {
    let resp = node
        .node_get_volume_stats(csi::NodeGetVolumeStatsRequest {
            volume_id: p.id.clone(),
            volume_path: p.target.display().to_string(),
            staging_target_path: p.staging.display().to_string(),
        })
        .await
        .unwrap_or_else(|s| panic!("NodeGetVolumeStats {}: {s:?}", p.id))
        .into_inner();
    let unit = |u: Unit| {
        resp.usage
            .iter()
            .find(|x| x.unit == u as i32)
            .cloned()
            .unwrap_or_else(|| panic!("no {u:?} usage in {resp:?}"))
    };
    Stats {
        bytes: unit(Unit::Bytes),
        inodes: unit(Unit::Inodes),
        condition: resp.volume_condition.clone().expect("volume condition"),
    }
}

/// Asks for stats until `done` holds (the driver answers with its last
/// measurement while a newer one is due), then returns them.
async fn stats_until(
    node: &mut NodeClient<Channel>,
    p: &Published,
    what: &str,
    done: impl Fn(&Stats) -> bool,
) -> Stats {
    let deadline = Instant::now() + SETTLE;
    loop {
        let s = stats(node, p).await;
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what} within {SETTLE:?}: {s:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn write_file(path: &Path, bytes: usize) {
    let mut f = std::fs::File::create(path).expect("create");
    // Not zeros: nothing may store them sparsely.
    let chunk = vec![0x5au8; 1 << 20];
    for _ in 0..bytes / chunk.len() {
        f.write_all(&chunk).expect("write");
    }
    f.sync_all().expect("sync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_volume_reports_its_own_capacity_and_usage() {
    let driver = CsiDriver::start(&[]);
    let (mut ctrl, mut node) = driver.clients().await;

    // A mount capability without fsType (and no fsType parameter) is a
    // directory under the data dir, bind-mounted.
    let dir = publish(&driver, &mut ctrl, &mut node, "dir", "").await;
    write_file(&dir.target.join("four"), 4 * MI as usize);
    let s = stats_until(&mut node, &dir, "the 4 MiB file counted", |s| {
        s.bytes.used >= 4 * MI
    })
    .await;
    assert_eq!(
        s.bytes.total,
        16 * MI,
        "the claim's size, not the host's disk"
    );
    assert!(s.bytes.used < 16 * MI, "{s:?}");
    assert_eq!(s.bytes.available, s.bytes.total - s.bytes.used, "{s:?}");
    // The directory itself and the file.
    assert!(s.inodes.used >= 2, "{s:?}");
    assert_eq!(s.inodes.total, s.inodes.used + s.inodes.available, "{s:?}");
    assert!(!s.condition.abnormal, "{s:?}");

    // Capacity is accounted, not enforced: the write succeeds, and the
    // stats say the volume is over it.
    write_file(&dir.target.join("twenty"), 20 * MI as usize);
    let s = stats_until(&mut node, &dir, "the 20 MiB file counted", |s| {
        s.bytes.used > 16 * MI
    })
    .await;
    assert_eq!(s.bytes.total, 16 * MI, "{s:?}");
    assert!(s.bytes.used >= 24 * MI, "{s:?}");
    assert_eq!(s.bytes.available, 0, "{s:?}");
    assert!(s.inodes.used >= 3, "{s:?}");
    assert!(s.condition.abnormal, "{s:?}");
    assert!(
        s.condition.message.starts_with("volume uses 24.")
            && s.condition
                .message
                .ends_with(" MiB of its 16.0 MiB capacity"),
        "{s:?}"
    );

    // An ext4 volume is a file system of its own: statvfs still answers.
    let img = publish(&driver, &mut ctrl, &mut node, "img", "ext4").await;
    let s = stats(&mut node, &img).await;
    assert!(
        s.bytes.total > 0 && s.bytes.total <= 16 * MI,
        "an ext4 on a 16Mi image: {s:?}"
    );
    assert!(s.bytes.used + s.bytes.available <= s.bytes.total, "{s:?}");
    assert!(s.inodes.total > 0, "{s:?}");
    assert!(!s.condition.abnormal, "{s:?}");

    for p in [&dir, &img] {
        unpublish(&mut node, p).await;
        ctrl.delete_volume(csi::DeleteVolumeRequest {
            volume_id: p.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("DeleteVolume {}: {s:?}", p.id));
    }
}
