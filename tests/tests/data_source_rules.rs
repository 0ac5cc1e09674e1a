//! Table-driven cases for claims with a data source: clones of claims and
//! restores of VolumeSnapshots are provisioned only when the CSI
//! external-provisioner's rules pass (with its messages otherwise), next to
//! their source for a node-local driver; populators' kinds are left to the
//! populator; what the API server refuses is an input error.

use berth::binding::Content;
use berth_tests::*;

const RWO: &[&str] = &["ReadWriteOnce"];
const KEY: &str = "topology.csi.berth.dev/node";

fn node(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    {KEY}: {name}\n---\napiVersion: storage.k8s.io/v1\nkind: CSINode\nmetadata:\n  name: {name}\nspec:\n  drivers:\n  - name: csi.berth.dev\n    nodeID: {name}\n    topologyKeys: [{KEY}]\n---\n"
    )
}

fn capacity(node: &str, size: &str) -> String {
    format!(
        "apiVersion: storage.k8s.io/v1\nkind: CSIStorageCapacity\nmetadata:\n  name: cap-{node}\n  namespace: berth-system\nstorageClassName: fast\nnodeTopology:\n  matchLabels:\n    {KEY}: {node}\ncapacity: {size}\n---\n"
    )
}

/// Two nodes; `nb` has far more free storage, so placement would pick it
/// for a claim without a source.
fn cluster(binding_mode: &str) -> String {
    format!(
        "apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata:\n  name: csi.berth.dev\nspec:\n  storageCapacity: true\n---\n{}{}{}{}{}",
        node("na"),
        node("nb"),
        capacity("na", "10Gi"),
        capacity("nb", "100Gi"),
        class(
            "fast",
            "csi.berth.dev",
            &format!("volumeBindingMode: {binding_mode}")
        ),
    )
}

/// The bound source claim `src` (1Gi) and its berth volume on node `na`.
fn source(phase: &str) -> String {
    format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: pv-src\nspec:\n  capacity:\n    storage: 1Gi\n  accessModes: [ReadWriteOnce]\n  storageClassName: fast\n  claimRef:\n    namespace: default\n    name: src\n    uid: u-src\n  csi:\n    driver: csi.berth.dev\n    volumeHandle: vol-src\n  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      - matchExpressions:\n        - key: {KEY}\n          operator: In\n          values: [na]\nstatus:\n  phase: Bound\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: src\n  namespace: default\n  uid: u-src\nspec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: fast\n  volumeName: pv-src\n  resources:\n    requests:\n      storage: 1Gi\nstatus:\n  phase: {phase}\n---\n"
    )
}

fn clone_of(name: &str, size: &str, extra: &str) -> String {
    pvc(
        "copy",
        size,
        RWO,
        Some("fast"),
        &format!("  dataSource:\n    kind: PersistentVolumeClaim\n    name: {name}\n{extra}"),
    )
}

/// A ready VolumeSnapshot `snap` of `vol-src` (restore size 1Gi), bound to
/// its content `content-1` with CSI id `snap-1`.
fn snapshot_of_source(ready: bool) -> String {
    format!(
        "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata:\n  name: snap\n  namespace: default\n  uid: u-snap\nspec:\n  source:\n    persistentVolumeClaimName: src\nstatus:\n  boundVolumeSnapshotContentName: content-1\n  readyToUse: {ready}\n  restoreSize: 1Gi\n---\napiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotContent\nmetadata:\n  name: content-1\nspec:\n  driver: csi.berth.dev\n  deletionPolicy: Delete\n  source:\n    volumeHandle: vol-src\n  volumeSnapshotRef:\n    namespace: default\n    name: snap\n    uid: u-snap\nstatus:\n  snapshotHandle: snap-1\n  readyToUse: {ready}\n---\n"
    )
}

fn restore_of(name: &str, size: &str) -> String {
    pvc(
        "copy",
        size,
        RWO,
        Some("fast"),
        &format!(
            "  dataSource:\n    apiGroup: snapshot.storage.k8s.io\n    kind: VolumeSnapshot\n    name: {name}\n"
        ),
    )
}

#[test]
fn a_clone_is_provisioned_on_its_sources_node() {
    let p = plan(&format!(
        "{}{}{}",
        cluster("Immediate"),
        source("Bound"),
        clone_of("src", "1Gi", "")
    ));
    let got = p
        .provisioning
        .iter()
        .find(|x| x.claim.name == "copy")
        .unwrap_or_else(|| panic!("copy is not provisioned: {:?}", p.pending));
    assert_eq!(got.node.as_deref(), Some("na"), "next to its source");
    assert_eq!(
        got.content,
        Some(Content::Clone {
            claim: "src".into(),
            volume: "pv-src".into(),
            handle: "vol-src".into()
        })
    );
    // Without the source, the same claim would go to the emptier node.
    let plain = plan(&format!(
        "{}{}",
        cluster("Immediate"),
        pvc("copy", "1Gi", RWO, Some("fast"), "")
    ));
    assert_eq!(provisioned(&plain, "default/copy"), Some(Some("nb".into())));
}

#[test]
fn a_restore_uses_the_snapshot_handle_on_its_sources_node() {
    let p = plan(&format!(
        "{}{}{}{}",
        cluster("Immediate"),
        source("Bound"),
        snapshot_of_source(true),
        restore_of("snap", "2Gi")
    ));
    let got = p
        .provisioning
        .iter()
        .find(|x| x.claim.name == "copy")
        .unwrap_or_else(|| panic!("copy is not provisioned: {:?}", p.pending));
    assert_eq!(got.node.as_deref(), Some("na"));
    assert_eq!(
        got.content,
        Some(Content::Restore {
            snapshot: "snap".into(),
            handle: "snap-1".into(),
            volume: Some("pv-src".into()),
        })
    );
}

#[test]
fn unusable_sources_leave_the_claim_pending_with_upstreams_reason() {
    let prefix = "failed to provision volume with StorageClass \"fast\": ";
    let cases: Vec<(&str, String, String)> = vec![
        (
            "the source claim does not exist",
            format!("{}{}", cluster("Immediate"), clone_of("nope", "1Gi", "")),
            "error getting handle for DataSource Type PersistentVolumeClaim by Name nope: error getting PVC nope (namespace \"default\") from api server: persistentvolumeclaim \"nope\" not found".into(),
        ),
        (
            "the source claim is not bound",
            format!("{}{}{}", cluster("Immediate"), source("Pending"), clone_of("src", "1Gi", "")),
            "error getting handle for DataSource Type PersistentVolumeClaim by Name src: the PVC DataSource src must have a status of Bound.  Got Pending".into(),
        ),
        (
            "the clone is smaller than its source",
            format!("{}{}{}", cluster("Immediate"), source("Bound"), clone_of("src", "512Mi", "")),
            "error getting handle for DataSource Type PersistentVolumeClaim by Name src: error, new PVC request must be greater than or equal in size to the specified PVC data source, requested 536870912 but source is 1073741824".into(),
        ),
        (
            "a Block clone of a Filesystem source",
            format!("{}{}{}", cluster("Immediate"), source("Bound"), clone_of("src", "1Gi", "  volumeMode: Block\n")),
            "error getting handle for DataSource Type PersistentVolumeClaim by Name src: the source PVC and destination PVCs must have the same volume mode for cloning.  Source is Filesystem, but new PVC requested Block".into(),
        ),
        (
            "a dataSourceRef in another namespace",
            format!(
                "{}{}{}",
                cluster("Immediate"),
                source("Bound"),
                pvc("copy", "1Gi", RWO, Some("fast"), "  dataSourceRef:\n    kind: PersistentVolumeClaim\n    name: src\n    namespace: other\n")
            ),
            "dataSourceRef namespace specified but the CrossNamespaceVolumeDataSource feature is disabled".into(),
        ),
        (
            "a VolumeSnapshot of another API group",
            format!(
                "{}{}",
                cluster("Immediate"),
                pvc("copy", "1Gi", RWO, Some("fast"), "  dataSource:\n    apiGroup: example.com\n    kind: VolumeSnapshot\n    name: snap\n")
            ),
            "the PVC source does not belong to the right APIGroup. Expected snapshot.storage.k8s.io, Got example.com".into(),
        ),
        (
            "the snapshot does not exist",
            format!("{}{}{}", cluster("Immediate"), source("Bound"), restore_of("nope", "1Gi")),
            "error getting handle for DataSource Type VolumeSnapshot by Name nope: error getting snapshot nope from api server: volumesnapshots.snapshot.storage.k8s.io \"nope\" not found".into(),
        ),
        (
            "the snapshot is not ready",
            format!("{}{}{}{}", cluster("Immediate"), source("Bound"), snapshot_of_source(false), restore_of("snap", "1Gi")),
            "error getting handle for DataSource Type VolumeSnapshot by Name snap: snapshot snap is not Ready".into(),
        ),
        (
            "the restore is smaller than the snapshot",
            format!("{}{}{}{}", cluster("Immediate"), source("Bound"), snapshot_of_source(true), restore_of("snap", "100Mi")),
            "error getting handle for DataSource Type VolumeSnapshot by Name snap: requested volume size 104857600 is less than the size 1073741824 for the source snapshot snap".into(),
        ),
        (
            "the scheduler chose a node without the source",
            format!(
                "{}{}{}",
                cluster("WaitForFirstConsumer"),
                source("Bound"),
                clone_of("src", "1Gi", "").replace(
                    "  namespace: default\n",
                    "  namespace: default\n  annotations:\n    volume.kubernetes.io/selected-node: nb\n"
                )
            ),
            "error getting handle for DataSource Type PersistentVolumeClaim by Name src: the source volume pv-src is not on node nb: a node-local volume is cloned or restored on its source's node".into(),
        ),
    ];
    for (name, yaml, want) in cases {
        let p = plan(&yaml);
        assert_eq!(
            provisioned(&p, "default/copy"),
            None,
            "{name}: no volume is made"
        );
        let reason = pending_reason(&p, "default/copy");
        let want = format!("{prefix}{want}");
        assert_eq!(reason.as_deref(), Some(want.as_str()), "{name}");
    }
}

#[test]
fn a_populators_kind_is_left_to_the_populator() {
    let p = plan(&format!(
        "{}{}",
        cluster("Immediate"),
        pvc(
            "copy",
            "1Gi",
            RWO,
            Some("fast"),
            "  dataSourceRef:\n    apiGroup: populators.example.com\n    kind: Archive\n    name: backup-1\n"
        )
    ));
    assert_eq!(provisioned(&p, "default/copy"), None);
    assert_eq!(
        pending_reason(&p, "default/copy").as_deref(),
        Some(
            "data source (Archive backup-1) is not handled by the provisioner, assuming an external populator will provision it"
        )
    );
}

#[test]
fn data_sources_the_api_server_refuses_are_input_errors() {
    let cases = [
        (
            "  dataSource:\n    kind: ConfigMap\n    name: x\n",
            "spec.dataSource.kind: Invalid value: \"ConfigMap\": must be 'PersistentVolumeClaim' when referencing the default apiGroup",
        ),
        (
            "  dataSource:\n    kind: PersistentVolumeClaim\n    name: \"\"\n",
            "spec.dataSource.name: Required value",
        ),
        (
            "  dataSource:\n    kind: PersistentVolumeClaim\n    name: a\n  dataSourceRef:\n    kind: PersistentVolumeClaim\n    name: b\n",
            "spec.dataSource: Invalid value: must match dataSourceRef",
        ),
    ];
    for (extra, want) in cases {
        let yaml = pvc("copy", "1Gi", RWO, Some("fast"), extra);
        let docs = berth::manifest::parse_str("test.yaml", &yaml).expect("parses");
        let err = berth::manifest::to_snapshot(docs).expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("PersistentVolumeClaim copy") && text.contains(want),
            "{text}"
        );
    }
}

#[test]
fn dry_run_shows_what_each_volume_is_made_from() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("clone.yaml");
    std::fs::write(
        &file,
        format!(
            "{}{}{}",
            cluster("Immediate"),
            source("Bound"),
            clone_of("src", "1Gi", "")
        ),
    )
    .expect("write");
    let out = std::process::Command::new(berth_bin())
        .args(["dry-run", "-f"])
        .arg(&file)
        .output()
        .expect("berth dry-run");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("on node na") && table.contains("clone of claim src (volume pv-src)"),
        "{table}"
    );
    let out = std::process::Command::new(berth_bin())
        .args(["dry-run", "-o", "json", "-f"])
        .arg(&file)
        .output()
        .expect("berth dry-run -o json");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let ds = &v["provisioning"][0]["dataSource"];
    assert_eq!(ds["kind"], "PersistentVolumeClaim");
    assert_eq!(ds["name"], "src");
    assert_eq!(ds["volume"], "pv-src");
    assert_eq!(ds["handle"], "vol-src");
}
