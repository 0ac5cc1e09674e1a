//! Clones and restores hold their source's data: a volume created with a
//! volume or snapshot content source, staged and published, shows the
//! files written into the source before (and, for a snapshot, not the ones
//! written after it was taken), for directory, ext4 and xfs volumes alike
//! (an xfs copy keeps its source's UUID and is mounted beside it); the
//! response names its content source. Runs the real `berth csi` as root.

use berth_tests::csi_driver::{CsiDriver, create_volume, unpublish};
use csi_proto as csi;

const MI: i64 = 1 << 20;

fn read(path: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

async fn clones_and_restores_carry_the_data(fs: &str) {
    use csi::volume_content_source::{SnapshotSource, Type, VolumeSource};
    let driver = CsiDriver::start(&[]);
    let (mut ctrl, mut node) = driver.clients().await;
    let src = create_volume(&mut ctrl, "src", fs, 16 * MI, None).await;
    let src_p = driver.publish(&mut node, &src.volume_id, fs).await;
    let path = src_p.target.clone();
    std::fs::create_dir_all(path.join("db")).expect("mkdir");
    std::fs::write(path.join("db/rows"), "one\ntwo\n").expect("write");
    // What lands on the disk before the copies are made is what they hold.
    nix::unistd::sync();

    let clone = create_volume(
        &mut ctrl,
        "clone",
        fs,
        16 * MI,
        Some(Type::Volume(VolumeSource {
            volume_id: src.volume_id.clone(),
        })),
    )
    .await;
    assert!(
        matches!(
            clone.content_source.as_ref().and_then(|s| s.r#type.as_ref()),
            Some(Type::Volume(v)) if v.volume_id == src.volume_id
        ),
        "the clone names its source: {clone:?}"
    );
    let snapshot = ctrl
        .create_snapshot(csi::CreateSnapshotRequest {
            source_volume_id: src.volume_id.clone(),
            name: "snap".into(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("CreateSnapshot: {s:?}"))
        .into_inner()
        .snapshot
        .expect("snapshot");
    // Written after the snapshot: a restore must not have it.
    std::fs::write(path.join("db/later"), "three\n").expect("write");

    let restored = create_volume(
        &mut ctrl,
        "restored",
        fs,
        16 * MI,
        Some(Type::Snapshot(SnapshotSource {
            snapshot_id: snapshot.snapshot_id.clone(),
        })),
    )
    .await;
    assert!(
        matches!(
            restored.content_source.as_ref().and_then(|s| s.r#type.as_ref()),
            Some(Type::Snapshot(s)) if s.snapshot_id == snapshot.snapshot_id
        ),
        "the restore names its snapshot: {restored:?}"
    );

    let clone_p = driver.publish(&mut node, &clone.volume_id, fs).await;
    let restored_p = driver.publish(&mut node, &restored.volume_id, fs).await;
    let (clone_path, restored_path) = (clone_p.target.clone(), restored_p.target.clone());
    let clone_rows = read(&clone_path.join("db/rows"));
    let restored_rows = read(&restored_path.join("db/rows"));
    let restored_later = read(&restored_path.join("db/later"));
    // The copies are independent of the source from now on.
    std::fs::write(clone_path.join("db/rows"), "changed\n").expect("write");
    let source_rows = read(&path.join("db/rows"));
    for p in [&clone_p, &restored_p, &src_p] {
        unpublish(&mut node, p).await;
    }
    assert_eq!(clone_rows.as_deref(), Some("one\ntwo\n"), "{fs}: clone");
    assert_eq!(
        restored_rows.as_deref(),
        Some("one\ntwo\n"),
        "{fs}: restore"
    );
    assert_eq!(restored_later, None, "{fs}: written after the snapshot");
    assert_eq!(
        source_rows.as_deref(),
        Some("one\ntwo\n"),
        "{fs}: writing the clone leaves the source alone"
    );
}

#[tokio::test]
async fn directory_clones_and_restores_carry_the_data() {
    clones_and_restores_carry_the_data("").await;
}

#[tokio::test]
async fn ext4_clones_and_restores_carry_the_data() {
    clones_and_restores_carry_the_data("ext4").await;
}

#[tokio::test]
async fn xfs_clones_and_restores_carry_the_data() {
    clones_and_restores_carry_the_data("xfs").await;
}
