//! berth's scheduling prediction against the real kube-scheduler: pods
//! without a node are planned by `berth dry-run --from-cluster` while the
//! scheduler is held still, then the scheduler runs, and what it does must
//! be what berth said: the node and the volume for the pod that fits (its
//! only feasible node), and for each pod that fits nowhere the scheduler's
//! FailedScheduling event, which starts with berth's reason (the event adds
//! a preemption sentence berth does not predict).

use std::process::Command;
use std::time::Duration;

use berth_tests::berth_bin;
use berth_tests::control_plane::{ControlPlane, Options};
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

const CLUSTER: &str = r#"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-n1}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: local
  local: {path: /mnt/n1}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [n1]}]
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-n3}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: local
  local: {path: /mnt/n3}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [n3]}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: small, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: local
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: big, namespace: default}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: local
  resources: {requests: {storage: 20Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: fits, namespace: default}
spec:
  containers: [{name: c, image: registry.invalid/app:1}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: small}}]
---
apiVersion: v1
kind: Pod
metadata: {name: too-big, namespace: default}
spec:
  containers: [{name: c, image: registry.invalid/app:1}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: big}}]
---
apiVersion: v1
kind: Pod
metadata: {name: wrong-disk, namespace: default}
spec:
  nodeSelector: {disk: ssd}
  containers: [{name: c, image: registry.invalid/app:1}]
---
apiVersion: v1
kind: Pod
metadata: {name: hungry, namespace: default}
spec:
  containers:
  - name: c
    image: registry.invalid/app:1
    resources: {requests: {cpu: "16"}}
"#;

fn dry_run(kubeconfig: &std::path::Path) -> Value {
    let out = Command::new(berth_bin())
        .args(["dry-run", "--from-cluster", "--kubeconfig"])
        .arg(kubeconfig)
        .args(["-o", "json"])
        .output()
        .expect("run berth dry-run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Polls `check` every 500 ms for up to a minute.
async fn wait<T, Fut: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> Fut,
) -> T {
    for _ in 0..120 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_predicts_what_kube_scheduler_does() {
    let cp = ControlPlane::start_with(Options::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client = cp.client().await.expect("client");
    for name in ["n1", "n2", "n3"] {
        cp.create_node(name, &Default::default())
            .await
            .expect("node");
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = |spec: Value| Patch::Merge(json!({ "spec": spec }));
    nodes
        .patch(
            "n2",
            &PatchParams::default(),
            &patch(json!({"unschedulable": true})),
        )
        .await
        .expect("cordon n2");
    nodes
        .patch(
            "n3",
            &PatchParams::default(),
            &patch(json!({"taints": [{"key": "gpu", "effect": "NoSchedule"}]})),
        )
        .await
        .expect("taint n3");

    // Hold the scheduler while the pods arrive and berth reads the cluster.
    let scheduler = cp.pid_of("kube-scheduler").expect("kube-scheduler runs");
    let signal = |sig| kill(Pid::from_raw(scheduler as i32), sig).expect("signal the scheduler");
    signal(Signal::SIGSTOP);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("cluster.yaml");
    std::fs::write(&file, CLUSTER).expect("write the manifest");
    let applied = cp.apply_file(&file).await;
    let predicted = applied.as_ref().ok().map(|_| dry_run(&cp.kubeconfig));
    signal(Signal::SIGCONT);
    applied.expect("apply");
    let predicted = predicted.expect("predicted");

    let by_pod = |pod: &str| -> Value {
        predicted["scheduling"]
            .as_array()
            .expect("scheduling")
            .iter()
            .find(|s| s["pod"] == format!("default/{pod}"))
            .cloned()
            .unwrap_or_else(|| panic!("no prediction for {pod}: {predicted:#}"))
    };

    // The pod that fits has one feasible node: the scheduler must agree.
    let fits = by_pod("fits");
    assert_eq!(fits["node"], "n1", "{predicted:#}");
    assert_eq!(fits["feasibleNodes"], 1);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let node = wait("pod fits scheduled", || {
        let pods = pods.clone();
        async move { pods.get("fits").await.ok()?.spec?.node_name }
    })
    .await;
    assert_eq!(node, "n1");
    let predicted_volume = predicted["bindings"]
        .as_array()
        .expect("bindings")
        .iter()
        .find(|b| b["claim"] == "default/small")
        .map(|b| b["volume"].clone())
        .expect("small predicted bound");
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let volume = wait("claim small bound", || {
        let claims = claims.clone();
        async move { claims.get("small").await.ok()?.spec?.volume_name }
    })
    .await;
    assert_eq!(predicted_volume, volume.as_str());

    // The others fit nowhere: the scheduler's words start with berth's.
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    for pod in ["too-big", "wrong-disk", "hungry"] {
        let p = by_pod(pod);
        assert!(p["node"].is_null(), "{pod}: {p}");
        let reason = p["reason"].as_str().expect("a reason").to_string();
        let message = wait(&format!("FailedScheduling for {pod}"), || {
            let events = events.clone();
            async move {
                let list = events
                    .list(&ListParams::default().fields(&format!("involvedObject.name={pod}")))
                    .await
                    .ok()?;
                list.items
                    .into_iter()
                    .filter(|e| e.reason.as_deref() == Some("FailedScheduling"))
                    .find_map(|e| e.message)
            }
        })
        .await;
        assert!(
            message.starts_with(&reason),
            "{pod}: the scheduler said {message:?}, berth predicted {reason:?}"
        );
        let still = pods.get(pod).await.expect("pod");
        assert_eq!(still.spec.and_then(|s| s.node_name), None, "{pod}");
    }
}
