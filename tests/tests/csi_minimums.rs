//! A volume NodeStage can format, whatever size was asked: `berth csi`
//! rounds a request below its file system's minimum (xfs 300Mi, ext4
//! 104Ki) up to it, reports the real size in `capacity_bytes`, and refuses
//! with OUT_OF_RANGE naming the minimum when `limit_bytes` forbids that;
//! raw block volumes have no minimum. Each rounded volume is staged (a real
//! mkfs and mount) to show it works.

use std::path::Path;

use berth_tests::csi_driver::{CsiDriver, capability as cap};
use csi_proto as csi;

/// One case: its name, fsType (None: raw block), required and limit
/// bytes, and the capacity given or the minimum the refusal names.
type Case = (
    &'static str,
    Option<&'static str>,
    i64,
    i64,
    Result<i64, &'static str>,
);

/// Total bytes of the file system mounted at `path`.
fn fs_bytes(path: &Path) -> u64 {
    let s = nix::sys::statvfs::statvfs(path).expect("statvfs");
    s.blocks() * s.fragment_size()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_below_a_file_systems_minimum_are_rounded_up_or_refused() {
    let driver = CsiDriver::start(&[]);
    let (mut ctrl, mut node) = driver.clients().await;
    const MI: i64 = 1 << 20;
    let cases: [Case; 6] = [
        ("xfs 1Mi", Some("xfs"), MI, 0, Ok(300 * MI)),
        (
            "xfs 1Mi within a 1Gi limit",
            Some("xfs"),
            MI,
            1024 * MI,
            Ok(300 * MI),
        ),
        ("xfs 1Mi, limit 1Mi", Some("xfs"), MI, MI, Err("300Mi")),
        ("ext4 4Ki", Some("ext4"), 4096, 0, Ok(106_496)),
        (
            "ext4 4Ki, limit 64Ki",
            Some("ext4"),
            4096,
            64 * 1024,
            Err("104Ki"),
        ),
        ("raw block 1Mi has no minimum", None, MI, MI, Ok(MI)),
    ];
    for (i, (name, fs, required, limit, want)) in cases.into_iter().enumerate() {
        let req = csi::CreateVolumeRequest {
            name: format!("v{i}"),
            capacity_range: Some(csi::CapacityRange {
                required_bytes: required,
                limit_bytes: limit,
            }),
            volume_capabilities: vec![cap(fs)],
            ..Default::default()
        };
        let got = ctrl.create_volume(req).await;
        match want {
            Err(minimum) => {
                let s = got.expect_err(name);
                assert_eq!(s.code(), tonic::Code::OutOfRange, "case {name}: {s:?}");
                assert!(
                    s.message().contains(minimum),
                    "case {name}: {}",
                    s.message()
                );
            }
            Ok(capacity) => {
                let volume = got
                    .unwrap_or_else(|s| panic!("case {name}: {s:?}"))
                    .into_inner()
                    .volume
                    .expect("volume");
                assert_eq!(volume.capacity_bytes, capacity, "case {name}");
                let Some(fs) = fs else { continue };
                // It stages: mkfs accepts it, and it mounts at that size.
                let staging = driver.dir().join(format!("stage-{i}"));
                node.node_stage_volume(csi::NodeStageVolumeRequest {
                    volume_id: volume.volume_id.clone(),
                    staging_target_path: staging.display().to_string(),
                    volume_capability: Some(cap(Some(fs))),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|s| panic!("case {name}: NodeStage: {s:?}"));
                let size = fs_bytes(&staging);
                assert!(
                    size > 0 && size <= capacity as u64,
                    "case {name}: a {size}-byte {fs} on a {capacity}-byte volume"
                );
                node.node_unstage_volume(csi::NodeUnstageVolumeRequest {
                    volume_id: volume.volume_id.clone(),
                    staging_target_path: staging.display().to_string(),
                })
                .await
                .unwrap_or_else(|s| panic!("case {name}: NodeUnstage: {s:?}"));
                ctrl.delete_volume(csi::DeleteVolumeRequest {
                    volume_id: volume.volume_id,
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|s| panic!("case {name}: DeleteVolume: {s:?}"));
            }
        }
    }
}
