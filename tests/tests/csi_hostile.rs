//! Hostile input on the CSI socket: a client sending names and IDs with
//! `..`, `/`, NUL, 10 KB of text or nothing at all, staging and target
//! paths outside the kubelet's directory, through symlinks that point out
//! of it or into berth's own data, and capabilities berth does not know.
//! Every request gets the gRPC code the CSI spec names (INVALID_ARGUMENT
//! for a malformed request, NOT_FOUND for a well-formed ID of nothing), and
//! nothing outside the data, state and target directories changes: the
//! test snapshots the file system tree (and its mounts) of the kubelet-like
//! directory and of a sentinel directory outside it, with files, an empty
//! directory and a symlink pointing out, before and after.
//! Runs the real `berth csi` as root (it mounts and attaches loop devices).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_tests::csi_driver::{CsiDriver, capability, create_volume};
use csi::controller_client::ControllerClient;
use csi::node_client::NodeClient;
use csi::volume_capability::{AccessMode, AccessType, MountVolume, access_mode};
use csi_proto as csi;
use tonic::Code;
use tonic::transport::Channel;

const MI: i64 = 1 << 20;

/// One request, as a client could send it.
enum Rpc {
    CreateVolume(csi::CreateVolumeRequest),
    DeleteVolume(String),
    CreateSnapshot(csi::CreateSnapshotRequest),
    Validate(csi::ValidateVolumeCapabilitiesRequest),
    ControllerExpand(csi::ControllerExpandVolumeRequest),
    Stage(csi::NodeStageVolumeRequest),
    Unstage(String, String),
    Publish(csi::NodePublishVolumeRequest),
    Unpublish(String, String),
    Stats(String, String),
    NodeExpand(csi::NodeExpandVolumeRequest),
}

/// What the driver must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Code(Code),
    /// ValidateVolumeCapabilities: OK, but the capabilities not confirmed.
    NotConfirmed,
}

async fn send(
    ctrl: &mut ControllerClient<Channel>,
    node: &mut NodeClient<Channel>,
    rpc: Rpc,
) -> Want {
    fn code<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Want {
        Want::Code(r.map_or_else(|s| s.code(), |_| Code::Ok))
    }
    match rpc {
        Rpc::CreateVolume(r) => code(ctrl.create_volume(r).await),
        Rpc::DeleteVolume(volume_id) => code(
            ctrl.delete_volume(csi::DeleteVolumeRequest {
                volume_id,
                ..Default::default()
            })
            .await,
        ),
        Rpc::CreateSnapshot(r) => code(ctrl.create_snapshot(r).await),
        Rpc::Validate(r) => match ctrl.validate_volume_capabilities(r).await {
            Ok(resp) if resp.get_ref().confirmed.is_none() => Want::NotConfirmed,
            other => code(other),
        },
        Rpc::ControllerExpand(r) => code(ctrl.controller_expand_volume(r).await),
        Rpc::Stage(r) => code(node.node_stage_volume(r).await),
        Rpc::Unstage(volume_id, staging_target_path) => code(
            node.node_unstage_volume(csi::NodeUnstageVolumeRequest {
                volume_id,
                staging_target_path,
            })
            .await,
        ),
        Rpc::Publish(r) => code(node.node_publish_volume(r).await),
        Rpc::Unpublish(volume_id, target_path) => code(
            node.node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
                volume_id,
                target_path,
            })
            .await,
        ),
        Rpc::Stats(volume_id, volume_path) => code(
            node.node_get_volume_stats(csi::NodeGetVolumeStatsRequest {
                volume_id,
                volume_path,
                staging_target_path: String::new(),
            })
            .await,
        ),
        Rpc::NodeExpand(r) => code(node.node_expand_volume(r).await),
    }
}

/// One entry of the tree snapshot: everything that would show a change.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    len: u64,
    mtime_ns: i128,
    link: Option<PathBuf>,
    content: Option<Vec<u8>>,
}

/// The tree under `root` without following symlinks, leaving out `skip`
/// (the directories berth may change).
fn tree(root: &Path, skip: &[PathBuf], out: &mut BTreeMap<PathBuf, Entry>) {
    let Ok(m) = std::fs::symlink_metadata(root) else {
        return;
    };
    let ft = m.file_type();
    let kind = if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else {
        "other"
    };
    out.insert(
        root.to_path_buf(),
        Entry {
            kind,
            mode: m.mode(),
            len: m.len(),
            mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            link: std::fs::read_link(root).ok(),
            content: ft
                .is_file()
                .then(|| std::fs::read(root).unwrap_or_default()),
        },
    );
    if ft.is_dir() {
        let mut children: Vec<PathBuf> = std::fs::read_dir(root)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        children.sort();
        for child in children.into_iter().filter(|c| !skip.contains(c)) {
            tree(&child, skip, out);
        }
    }
}

/// The trees of `roots` and every mount at or below them.
fn snapshot(roots: &[&Path], skip: &[PathBuf]) -> (BTreeMap<PathBuf, Entry>, Vec<PathBuf>) {
    let mut entries = BTreeMap::new();
    for root in roots {
        tree(root, skip, &mut entries);
    }
    let mounts = berth::csi::mount::mount_points()
        .expect("reading the mount table")
        .into_iter()
        .filter(|m| roots.iter().any(|r| m.starts_with(r)))
        .collect();
    (entries, mounts)
}

fn cap(access_type: Option<AccessType>, mode: Option<i32>) -> csi::VolumeCapability {
    csi::VolumeCapability {
        access_type,
        access_mode: mode.map(|mode| AccessMode { mode }),
    }
}

fn mount(fs_type: &str) -> Option<AccessType> {
    Some(AccessType::Mount(MountVolume {
        fs_type: fs_type.into(),
        ..Default::default()
    }))
}

const SNW: i32 = access_mode::Mode::SingleNodeWriter as i32;

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_get_the_specs_codes_and_change_nothing_outside_berths_dirs() {
    // The driver's scratch directory is its --kubelet-dir; data/ and
    // state/ are berth's, targets/ and plugins/ are where the kubelet
    // would have it stage and publish.
    let driver = CsiDriver::start(&[]);
    let kubelet = std::fs::canonicalize(driver.dir()).expect("canonical kubelet dir");
    let outside_dir = tempfile::tempdir().expect("sentinel dir");
    let outside = std::fs::canonicalize(outside_dir.path()).expect("canonical sentinel");
    let targets = kubelet.join("targets");
    let plugins = kubelet.join("plugins");
    let pods = kubelet.join("pods");
    for d in [&targets, &plugins, &pods, &outside.join("victim-dir")] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(outside.join("victim-file"), b"keep me").expect("sentinel file");
    std::fs::write(outside.join("secret"), b"not for pods").expect("sentinel file");
    std::os::unix::fs::symlink("/etc", outside.join("points-out")).expect("symlink");
    // Symlinks a hostile client hopes berth will follow out of the
    // kubelet's directory or into berth's own data.
    std::os::unix::fs::symlink(&outside, pods.join("escape")).expect("symlink");
    std::os::unix::fs::symlink(outside.join("gone"), pods.join("dangling")).expect("symlink");
    std::os::unix::fs::symlink(kubelet.join("data"), pods.join("into-data")).expect("symlink");
    let at_root = PathBuf::from(format!("/berth-hostile-{}", std::process::id()));

    let (mut ctrl, mut node) = driver.clients().await;
    // Real volumes, so only the hostile field decides the answer.
    let dir_vol = create_volume(&mut ctrl, "real-dir", "", 16 * MI, None)
        .await
        .volume_id;
    let img_vol = create_volume(&mut ctrl, "real-ext4", "ext4", 16 * MI, None)
        .await
        .volume_id;
    let staged = plugins.join("staged");
    node.node_stage_volume(csi::NodeStageVolumeRequest {
        volume_id: dir_vol.clone(),
        staging_target_path: s(&staged),
        volume_capability: Some(capability(Some(""))),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("staging the real volume: {e:?}\n{}", driver.log()));

    let long = "x".repeat(10 * 1024);
    let hostile_ids: [(&str, &str); 9] = [
        ("dotdot", ".."),
        ("dot", "."),
        ("up to etc", "../../etc"),
        ("absolute", "/abs"),
        ("separator", "a/b"),
        ("backslash", "a\\b"),
        ("NUL", "a\0b"),
        ("10 KB", &long),
        ("empty", ""),
    ];
    let unknown = "vol-0000000000000000ffffffffffffffff";
    // An image volume's ID plus ".img" is its data file's name, not a
    // volume; for a directory volume it names nothing at all.
    let image_file_name = format!("{img_vol}.img");
    let dir_plus_img = format!("{dir_vol}.img");

    let good_cap = || Some(capability(Some("")));
    let stage = |id: &str, path: &str, cap: Option<csi::VolumeCapability>| {
        Rpc::Stage(csi::NodeStageVolumeRequest {
            volume_id: id.into(),
            staging_target_path: path.into(),
            volume_capability: cap,
            ..Default::default()
        })
    };
    let publish = |id: &str, target: &str, staging: &str, cap: Option<csi::VolumeCapability>| {
        Rpc::Publish(csi::NodePublishVolumeRequest {
            volume_id: id.into(),
            target_path: target.into(),
            staging_target_path: staging.into(),
            volume_capability: cap,
            ..Default::default()
        })
    };
    let create = |name: &str, caps: Vec<csi::VolumeCapability>| {
        Rpc::CreateVolume(csi::CreateVolumeRequest {
            name: name.into(),
            capacity_range: Some(csi::CapacityRange {
                required_bytes: MI,
                limit_bytes: 0,
            }),
            volume_capabilities: caps,
            ..Default::default()
        })
    };
    let node_expand = |id: &str, path: &str| {
        Rpc::NodeExpand(csi::NodeExpandVolumeRequest {
            volume_id: id.into(),
            volume_path: path.into(),
            ..Default::default()
        })
    };
    let validate = |id: &str, caps: Vec<csi::VolumeCapability>| {
        Rpc::Validate(csi::ValidateVolumeCapabilitiesRequest {
            volume_id: id.into(),
            volume_capabilities: caps,
            ..Default::default()
        })
    };
    let ctrl_expand = |id: &str, bytes: Option<i64>| {
        Rpc::ControllerExpand(csi::ControllerExpandVolumeRequest {
            volume_id: id.into(),
            capacity_range: bytes.map(|required_bytes| csi::CapacityRange {
                required_bytes,
                limit_bytes: 0,
            }),
            ..Default::default()
        })
    };
    let snapshot_of = |name: &str, source: &str| {
        Rpc::CreateSnapshot(csi::CreateSnapshotRequest {
            name: name.into(),
            source_volume_id: source.into(),
            ..Default::default()
        })
    };

    let invalid = Want::Code(Code::InvalidArgument);
    let not_found = Want::Code(Code::NotFound);
    let ok = Want::Code(Code::Ok);
    let target_ok = s(&targets.join("t"));
    let staged_s = s(&staged);
    let mut cases: Vec<(String, Rpc, Want)> = Vec::new();

    // Malformed names and IDs, in every RPC that takes one.
    for (what, id) in hostile_ids {
        let mut add =
            |rpc: &str, call: Rpc| cases.push((format!("{rpc}: {what} id"), call, invalid));
        add("CreateVolume name", create(id, vec![capability(Some(""))]));
        add("DeleteVolume", Rpc::DeleteVolume(id.into()));
        add("CreateSnapshot name", snapshot_of(id, &dir_vol));
        add("CreateSnapshot source", snapshot_of("snap-hostile", id));
        add(
            "ValidateVolumeCapabilities",
            validate(id, vec![capability(Some(""))]),
        );
        add("ControllerExpandVolume", ctrl_expand(id, Some(32 * MI)));
        add(
            "NodeStageVolume",
            stage(id, &s(&plugins.join("s")), good_cap()),
        );
        add(
            "NodeUnstageVolume",
            Rpc::Unstage(id.into(), staged_s.clone()),
        );
        add(
            "NodePublishVolume",
            publish(id, &target_ok, &staged_s, good_cap()),
        );
        add(
            "NodeUnpublishVolume",
            Rpc::Unpublish(id.into(), target_ok.clone()),
        );
        add(
            "NodeGetVolumeStats",
            Rpc::Stats(id.into(), staged_s.clone()),
        );
        add("NodeExpandVolume", node_expand(id, &staged_s));
        add(
            "CreateVolume from snapshot",
            Rpc::CreateVolume(csi::CreateVolumeRequest {
                name: "from-hostile".into(),
                volume_capabilities: vec![capability(Some(""))],
                volume_content_source: Some(csi::VolumeContentSource {
                    r#type: Some(csi::volume_content_source::Type::Snapshot(
                        csi::volume_content_source::SnapshotSource {
                            snapshot_id: id.into(),
                        },
                    )),
                }),
                ..Default::default()
            }),
        );
    }

    // Well-formed IDs of nothing: NOT_FOUND where the spec says so, OK
    // where it asks for idempotency (DeleteVolume; NodeUnstage and
    // NodeUnpublish of what is not there, since the kubelet retries any
    // error forever).
    for id in [unknown, image_file_name.as_str(), dir_plus_img.as_str()] {
        let mut add = |rpc: &str, call: Rpc, want: Want| {
            cases.push((format!("{rpc}: unknown id {id}"), call, want))
        };
        add("DeleteVolume", Rpc::DeleteVolume(id.into()), ok);
        add(
            "CreateSnapshot",
            snapshot_of("snap-of-nothing", id),
            not_found,
        );
        add(
            "ValidateVolumeCapabilities",
            validate(id, vec![capability(Some(""))]),
            not_found,
        );
        add(
            "ControllerExpandVolume",
            ctrl_expand(id, Some(32 * MI)),
            not_found,
        );
        add(
            "NodeStageVolume",
            stage(id, &s(&plugins.join("s")), good_cap()),
            not_found,
        );
        add(
            "NodePublishVolume",
            publish(id, &target_ok, &staged_s, good_cap()),
            not_found,
        );
        add(
            "NodeGetVolumeStats",
            Rpc::Stats(id.into(), staged_s.clone()),
            not_found,
        );
        add("NodeExpandVolume", node_expand(id, &staged_s), not_found);
        add(
            "NodeUnstageVolume",
            Rpc::Unstage(id.into(), s(&plugins.join("s"))),
            ok,
        );
        add(
            "NodeUnpublishVolume",
            Rpc::Unpublish(id.into(), target_ok.clone()),
            ok,
        );
    }
    cases.push((
        "NodeGetVolumeStats: unknown id, relative path".into(),
        Rpc::Stats(unknown.into(), "some/path".into()),
        not_found,
    ));
    cases.push((
        "NodeExpandVolume: unknown id, relative path".into(),
        node_expand(unknown, "some/path"),
        not_found,
    ));

    // Paths a volume must not be staged or published at.
    let long_path = format!("{}/{}", s(&targets), "a/".repeat(5 * 1024));
    let hostile_paths: Vec<(&str, String)> = vec![
        ("outside the kubelet dir", s(&outside.join("new"))),
        ("an existing dir outside", s(&outside.join("victim-dir"))),
        ("a file outside", s(&outside.join("victim-file"))),
        ("the file system root", "/".into()),
        ("a new top-level dir", s(&at_root)),
        ("/etc", "/etc".into()),
        ("the kubelet dir itself", s(&kubelet)),
        ("through a symlink out", s(&pods.join("escape/new"))),
        (
            "through a symlink to a file",
            s(&pods.join("escape/victim-file")),
        ),
        ("a symlink out itself", s(&pods.join("escape"))),
        ("through a dangling symlink", s(&pods.join("dangling/new"))),
        (
            "through a symlink into data",
            s(&pods.join("into-data/volumes")),
        ),
        ("inside berth's data", s(&kubelet.join("data/volumes/new"))),
        ("berth's state dir", s(&kubelet.join("state"))),
        ("with ..", format!("{}/../../etc", s(&targets))),
        ("relative", "targets/t".into()),
        ("with NUL", format!("{}/a\0b", s(&targets))),
        ("10 KB", long_path),
        ("empty", String::new()),
    ];
    for (what, p) in &hostile_paths {
        let mut add =
            |rpc: &str, call: Rpc| cases.push((format!("{rpc}: {what} ({p:.60})"), call, invalid));
        add(
            "NodeStageVolume",
            stage(&img_vol, p, Some(capability(Some("ext4")))),
        );
        add(
            "NodeUnstageVolume",
            Rpc::Unstage(dir_vol.clone(), p.clone()),
        );
        add(
            "NodePublishVolume target",
            publish(&dir_vol, p, &staged_s, good_cap()),
        );
        add(
            "NodePublishVolume staging",
            publish(&dir_vol, &target_ok, p, good_cap()),
        );
        add(
            "NodeUnpublishVolume",
            Rpc::Unpublish(dir_vol.clone(), p.clone()),
        );
    }
    // Where a volume should already be: a malformed path is INVALID_ARGUMENT,
    // a well-formed one where berth never publishes means it is not there.
    for (what, p) in &hostile_paths {
        let want = if p.is_empty() || p.contains('\0') || p.len() > 4095 {
            invalid
        } else {
            not_found
        };
        cases.push((
            format!("NodeGetVolumeStats: {what} ({p:.60})"),
            Rpc::Stats(dir_vol.clone(), p.clone()),
            want,
        ));
        cases.push((
            format!("NodeExpandVolume: {what} ({p:.60})"),
            node_expand(&img_vol, p),
            want,
        ));
    }

    // Capabilities berth does not know or that are incomplete.
    let bad_caps: Vec<(&str, Vec<csi::VolumeCapability>)> = vec![
        ("no capability", vec![]),
        ("no access type", vec![cap(None, Some(SNW))]),
        ("no access mode", vec![cap(mount(""), None)]),
        ("access mode UNKNOWN", vec![cap(mount(""), Some(0))]),
        (
            "conflicting fs types",
            vec![cap(mount("ext4"), Some(SNW)), cap(mount("xfs"), Some(SNW))],
        ),
    ];
    for (what, caps) in bad_caps {
        let first = caps.first().cloned();
        let several = caps.len() > 1;
        cases.push((
            format!("CreateVolume: {what}"),
            create("bad-caps", caps.clone()),
            invalid,
        ));
        cases.push((
            format!("ValidateVolumeCapabilities: {what}"),
            validate(&dir_vol, caps),
            invalid,
        ));
        if several {
            // The node RPCs take one capability.
            continue;
        }
        cases.push((
            format!("NodeStageVolume: {what}"),
            stage(&dir_vol, &s(&plugins.join("s")), first.clone()),
            invalid,
        ));
        cases.push((
            format!("NodePublishVolume: {what}"),
            publish(&dir_vol, &target_ok, &staged_s, first),
            invalid,
        ));
    }
    let unsupported: Vec<(&str, csi::VolumeCapability)> = vec![
        ("access mode 99", cap(mount(""), Some(99))),
        (
            "multi-node multi-writer",
            cap(
                mount(""),
                Some(access_mode::Mode::MultiNodeMultiWriter as i32),
            ),
        ),
    ];
    for (what, c) in unsupported {
        cases.push((
            format!("CreateVolume: {what}"),
            create("odd-mode", vec![c.clone()]),
            invalid,
        ));
        cases.push((
            format!("ValidateVolumeCapabilities: {what}"),
            validate(&dir_vol, vec![c.clone()]),
            Want::NotConfirmed,
        ));
        cases.push((
            format!("NodeStageVolume: {what}"),
            stage(&dir_vol, &s(&plugins.join("s")), Some(c.clone())),
            invalid,
        ));
        cases.push((
            format!("NodePublishVolume: {what}"),
            publish(&dir_vol, &target_ok, &staged_s, Some(c)),
            invalid,
        ));
    }
    cases.push((
        "CreateVolume: fsType ../../x".into(),
        create("bad-fs", vec![cap(mount("../../x"), Some(SNW))]),
        invalid,
    ));
    cases.push((
        "ValidateVolumeCapabilities: block on a directory".into(),
        validate(&dir_vol, vec![capability(None)]),
        Want::NotConfirmed,
    ));
    cases.push((
        "NodeStageVolume: fsType ../../x on an image".into(),
        stage(
            &img_vol,
            &s(&plugins.join("s-img")),
            Some(cap(mount("../../x"), Some(SNW))),
        ),
        invalid,
    ));
    cases.push((
        "NodeStageVolume: block on a directory".into(),
        stage(&dir_vol, &s(&plugins.join("s")), Some(capability(None))),
        invalid,
    ));
    cases.push((
        "CreateVolume: a parameter named ../../etc".into(),
        Rpc::CreateVolume(csi::CreateVolumeRequest {
            name: "bad-param".into(),
            volume_capabilities: vec![capability(Some(""))],
            parameters: [("../../etc".to_string(), "x".to_string())].into(),
            ..Default::default()
        }),
        invalid,
    ));
    cases.push((
        "CreateVolume: fsType parameter ../../x".into(),
        Rpc::CreateVolume(csi::CreateVolumeRequest {
            name: "bad-param-fs".into(),
            volume_capabilities: vec![capability(Some(""))],
            parameters: [("fsType".to_string(), "../../x".to_string())].into(),
            ..Default::default()
        }),
        invalid,
    ));
    cases.push((
        "ControllerExpandVolume: no capacity range".into(),
        ctrl_expand(&dir_vol, None),
        invalid,
    ));
    cases.push((
        "ControllerExpandVolume: negative bytes".into(),
        ctrl_expand(&dir_vol, Some(-1)),
        invalid,
    ));

    let allowed = [
        kubelet.join("data"),
        kubelet.join("state"),
        targets.clone(),
        plugins.clone(),
        kubelet.join("driver.log"),
    ];
    let roots = [kubelet.as_path(), outside.as_path()];
    let before = snapshot(&roots, &allowed);
    assert!(
        before.0.contains_key(&outside.join("victim-file")),
        "the sentinel is in the snapshot"
    );

    let mut wrong = Vec::new();
    let count = cases.len();
    for (name, rpc, want) in cases {
        let got = send(&mut ctrl, &mut node, rpc).await;
        if got != want {
            wrong.push(format!("{name}: got {got:?}, want {want:?}"));
        }
    }

    let after = snapshot(&roots, &allowed);
    assert!(
        !at_root.exists(),
        "{} was created outside every directory berth owns",
        at_root.display()
    );
    assert!(
        wrong.is_empty(),
        "{} of {count} hostile requests got the wrong answer:\n{}\n{}",
        wrong.len(),
        wrong.join("\n"),
        driver.log()
    );
    let changed: Vec<String> = before
        .0
        .iter()
        .filter(|(p, e)| after.0.get(*p) != Some(e))
        .map(|(p, e)| {
            format!(
                "changed or removed: {} (was {e:?}, now {:?})",
                p.display(),
                after.0.get(p)
            )
        })
        .chain(
            after
                .0
                .keys()
                .filter(|p| !before.0.contains_key(*p))
                .map(|p| format!("created: {}", p.display())),
        )
        .collect();
    assert!(
        changed.is_empty(),
        "hostile requests changed the file system:\n{}",
        changed.join("\n")
    );
    assert_eq!(
        before.1, after.1,
        "hostile requests changed what is mounted"
    );

    // The driver still serves its real volumes afterwards.
    node.node_unstage_volume(csi::NodeUnstageVolumeRequest {
        volume_id: dir_vol.clone(),
        staging_target_path: staged_s,
    })
    .await
    .unwrap_or_else(|e| panic!("unstaging the real volume: {e:?}\n{}", driver.log()));
    for id in [dir_vol, img_vol] {
        ctrl.delete_volume(csi::DeleteVolumeRequest {
            volume_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("deleting {id}: {e:?}"));
    }
}
