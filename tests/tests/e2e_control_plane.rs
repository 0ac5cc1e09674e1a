//! The real control plane harness itself: it starts, serves the API with the
//! admin kubeconfig, runs the controller manager (a PVC gets a phase), keeps
//! fake Nodes Ready, accepts CSINodes, and leaves no process behind.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_tests::control_plane::{ControlPlane, process_exists};
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolumeClaim};
use kube::api::{Api, PostParams};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_starts_serves_and_stops_without_strays() {
    let cp = ControlPlane::start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client = cp.client().await.expect("admin client");

    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "harness" }
    }))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");

    let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "data" },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "resources": { "requests": { "storage": "1Gi" } }
        }
    }))
    .unwrap();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "harness");
    pvcs.create(&PostParams::default(), &pvc)
        .await
        .expect("create pvc");
    // The stock PV binder runs: a claim with nothing to bind stays Pending
    // and gets a FailedBinding-free Pending phase from the controller.
    let mut phase = None;
    for _ in 0..100 {
        phase = pvcs.get("data").await.unwrap().status.and_then(|s| s.phase);
        if phase.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(phase.as_deref(), Some("Pending"), "{}", cp.logs());

    cp.create_node("node-a", &BTreeMap::new())
        .await
        .expect("create node");
    let node = Api::<Node>::all(client.clone())
        .get("node-a")
        .await
        .unwrap();
    let ready = node
        .status
        .clone()
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    assert!(ready, "node-a should be Ready");
    assert!(
        node.spec
            .and_then(|s| s.taints)
            .unwrap_or_default()
            .is_empty(),
        "node-a should carry no not-ready taint"
    );
    let csinode = cp
        .register_csi_node(
            "node-a",
            "csi.berth.dev",
            "node-a",
            &["topology.berth.dev/node"],
            Some(3),
        )
        .await
        .expect("register CSINode");
    assert_eq!(csinode.spec.drivers[0].node_id, "node-a");

    let pids = cp.pids();
    assert_eq!(
        pids.len(),
        4,
        "etcd, apiserver, controller manager, scheduler"
    );
    assert!(pids.iter().all(|p| process_exists(*p)));
    drop(cp);
    for pid in pids {
        assert!(
            !process_exists(pid),
            "process {pid} survived the control plane"
        );
    }
}
