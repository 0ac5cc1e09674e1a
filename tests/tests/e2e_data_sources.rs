//! Claims with a data source, through a real control plane and berth's
//! node-local shape (deploy/'s RBAC, one agent per node, the controller
//! placing Immediate claims): a clone is made on its source's node with its
//! source's files, the source carries the cloning protection until it is
//! deleted and no clone is pending, a missing source is a ProvisioningFailed
//! event and no volume, and a claim restores a VolumeSnapshot (snapshot
//! CRDs installed, the snapshot taken through the agent's CSI socket).

use std::time::Duration;

use berth_tests::control_plane::{Cluster, NodeSpec, affinity_nodes};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const CLONE_FINALIZER: &str = "provisioner.storage.kubernetes.io/cloning-protection";

fn claim_from(name: &str, size: &str, source: serde_json::Value) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "local",
            "resources": { "requests": { "storage": size } },
            "dataSource": source,
        }
    }))
    .expect("claim")
}

fn handle(pv: &PersistentVolume) -> String {
    pv.spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .map(|c| c.volume_handle.clone())
        .expect("a CSI volume")
}

/// The node a PV is on and the directory of its data on that node's disk.
async fn volume_dir(env: &mut Cluster, pv_name: &str) -> (String, std::path::PathBuf) {
    let pv = env.pvs().get(pv_name).await.expect("pv");
    let node = affinity_nodes(&pv).pop().expect("a node-local PV");
    let dir = env.agent(&node).dir.join("data/volumes").join(handle(&pv));
    (node, dir)
}

/// Minimal `snapshot.storage.k8s.io/v1` CRDs: the API shape berth reads,
/// without upstream's schema (this cluster runs no snapshot controller).
/// `*.k8s.io` groups need the approval annotation; "unapproved, ..." is
/// the value the API server accepts for CRDs outside the Kubernetes project.
const SNAPSHOT_CRDS: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: volumesnapshots.snapshot.storage.k8s.io
  annotations: { api-approved.kubernetes.io: "unapproved, berth e2e only" }
spec:
  group: snapshot.storage.k8s.io
  scope: Namespaced
  names: { kind: VolumeSnapshot, plural: volumesnapshots, singular: volumesnapshot, listKind: VolumeSnapshotList }
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: { type: object, x-kubernetes-preserve-unknown-fields: true }
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: volumesnapshotcontents.snapshot.storage.k8s.io
  annotations: { api-approved.kubernetes.io: "unapproved, berth e2e only" }
spec:
  group: snapshot.storage.k8s.io
  scope: Cluster
  names: { kind: VolumeSnapshotContent, plural: volumesnapshotcontents, singular: volumesnapshotcontent, listKind: VolumeSnapshotContentList }
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema: { type: object, x-kubernetes-preserve-unknown-fields: true }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clones_and_restores_hold_their_sources_data_on_its_node() {
    // node-b has far more room: placement would put a claim without a
    // source there.
    let mut env = Cluster::start_node_local(&[
        NodeSpec::new("node-a", "2Gi"),
        NodeSpec::new("node-b", "16Gi"),
    ])
    .await;
    env.berth.add_controller(&[]).expect("controller");
    env.namespace("apps").await;
    env.class("local", "Immediate", "Delete", json!({})).await;
    env.wait_capacities("local").await;

    // The source is made on node-a (as if a pod had been scheduled
    // there); its data is a file.
    env.claim_with(
        "apps",
        "src",
        "local",
        json!({ "volume.kubernetes.io/selected-node": "node-a" }),
    )
    .await;
    let src_pv = env.wait_bound("apps", "src").await;
    let (src_node, src_dir) = volume_dir(&mut env, &src_pv).await;
    std::fs::create_dir_all(src_dir.join("db")).expect("source data dir");
    std::fs::write(src_dir.join("db/rows"), "one\ntwo\n").expect("source data");

    // A clone: made on the source's node, with the source's file.
    let claims = env.claims("apps");
    claims
        .create(
            &PostParams::default(),
            &claim_from(
                "copy",
                "64Mi",
                json!({ "kind": "PersistentVolumeClaim", "name": "src" }),
            ),
        )
        .await
        .expect("clone claim");
    let copy_pv = env.wait_bound("apps", "copy").await;
    let (copy_node, copy_dir) = volume_dir(&mut env, &copy_pv).await;
    assert_eq!(src_node, "node-a");
    assert_eq!(
        copy_node, src_node,
        "the clone is on its source's node, not on the emptier node-b"
    );
    assert_eq!(
        std::fs::read_to_string(copy_dir.join("db/rows"))
            .ok()
            .as_deref(),
        Some("one\ntwo\n"),
        "the clone holds the source's data"
    );
    let src = claims.get("src").await.expect("src");
    assert!(
        src.finalizers().iter().any(|f| f == CLONE_FINALIZER),
        "the source is protected: {:?}",
        src.finalizers()
    );

    // A missing source: no volume, and upstream's reason as an event.
    claims
        .create(
            &PostParams::default(),
            &claim_from(
                "orphan",
                "64Mi",
                json!({ "kind": "PersistentVolumeClaim", "name": "nope" }),
            ),
        )
        .await
        .expect("claim of a missing source");
    let message = env
        .wait(
            "a ProvisioningFailed event for apps/orphan",
            Duration::from_secs(60),
            || {
                let env = &env;
                async move {
                    env.events_for("apps", "orphan")
                        .await
                        .into_iter()
                        .find(|e| e.reason.as_deref() == Some("ProvisioningFailed"))
                        .and_then(|e| e.message)
                }
            },
        )
        .await;
    assert!(
        message.contains(
            "error getting handle for DataSource Type PersistentVolumeClaim by Name nope"
        ) && message.contains("persistentvolumeclaim \"nope\" not found"),
        "{message}"
    );
    assert!(
        env.pvs_for("apps", "orphan").await.is_empty(),
        "no volume for it"
    );

    // A restore of a VolumeSnapshot of the source, on the source's node.
    let crds = env.cp.dir().join("snapshot-crds.yaml");
    std::fs::write(&crds, SNAPSHOT_CRDS).expect("crds");
    env.cp.apply_file(&crds).await.expect("snapshot CRDs");
    let socket = env.agent(&src_node).socket();
    let channel = csi_proto::connect_unix(&socket)
        .await
        .expect("agent socket");
    let src_handle = handle(&env.pvs().get(&src_pv).await.expect("pv"));
    let snapshot = csi_proto::controller_client::ControllerClient::new(channel)
        .create_snapshot(csi_proto::CreateSnapshotRequest {
            source_volume_id: src_handle.clone(),
            name: "snapshot-1".into(),
            ..Default::default()
        })
        .await
        .expect("CreateSnapshot")
        .into_inner()
        .snapshot
        .expect("snapshot");
    // Written after the snapshot: the restore must not have it.
    std::fs::write(src_dir.join("db/later"), "three\n").expect("later data");
    let snaps = env.cp.dir().join("snapshot.yaml");
    std::fs::write(
        &snaps,
        format!(
            "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata:\n  name: snap\n  namespace: apps\nspec:\n  source:\n    persistentVolumeClaimName: src\n"
        ),
    )
    .expect("snapshot yaml");
    // The CRDs take a moment to be served.
    env.wait(
        "the VolumeSnapshot kind to be served",
        Duration::from_secs(30),
        || {
            let (env, snaps) = (&env, &snaps);
            async move { env.cp.apply_file(snaps).await.ok() }
        },
    )
    .await;
    let snap_ar = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "snapshot.storage.k8s.io",
        "v1",
        "VolumeSnapshot",
    ));
    let snap_api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(env.client.clone(), "apps", &snap_ar);
    let snap_uid = snap_api
        .get("snap")
        .await
        .expect("snapshot")
        .metadata
        .uid
        .expect("uid");
    // What the snapshot controller and csi-snapshotter would have written.
    let objects = env.cp.dir().join("snapshot-bound.yaml");
    std::fs::write(
        &objects,
        format!(
            "apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotContent\nmetadata:\n  name: content-1\nspec:\n  driver: csi.berth.dev\n  deletionPolicy: Retain\n  source:\n    volumeHandle: {src_handle}\n  volumeSnapshotRef:\n    namespace: apps\n    name: snap\n    uid: {snap_uid}\nstatus:\n  snapshotHandle: {}\n  readyToUse: true\n---\napiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshot\nmetadata:\n  name: snap\n  namespace: apps\nspec:\n  source:\n    persistentVolumeClaimName: src\nstatus:\n  boundVolumeSnapshotContentName: content-1\n  readyToUse: true\n  restoreSize: 64Mi\n",
            snapshot.snapshot_id
        ),
    )
    .expect("bound snapshot yaml");
    env.cp.apply_file(&objects).await.expect("bound snapshot");
    claims
        .create(
            &PostParams::default(),
            &claim_from(
                "restored",
                "64Mi",
                json!({ "apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap" }),
            ),
        )
        .await
        .expect("restore claim");
    let restored_pv = env.wait_bound("apps", "restored").await;
    let (restored_node, restored_dir) = volume_dir(&mut env, &restored_pv).await;
    assert_eq!(
        restored_node, src_node,
        "the restore is on its snapshot's node"
    );
    assert_eq!(
        std::fs::read_to_string(restored_dir.join("db/rows"))
            .ok()
            .as_deref(),
        Some("one\ntwo\n"),
        "the restore holds the snapshot's data"
    );
    assert!(
        !restored_dir.join("db/later").exists(),
        "nothing written after the snapshot"
    );

    // Deleting the source: no clone is pending, so the protection goes and
    // the claim with it.
    claims
        .delete("src", &DeleteParams::default())
        .await
        .expect("delete src");
    env.wait(
        "the source claim to be gone",
        Duration::from_secs(60),
        || {
            let claims = claims.clone();
            async move { matches!(claims.get_opt("src").await, Ok(None)).then_some(()) }
        },
    )
    .await;
    assert!(
        env.berth.logs().contains("cloning protection removed")
            || env
                .agent(&src_node)
                .all_logs()
                .contains("cloning protection removed"),
        "the agent removed the protection"
    );
}
