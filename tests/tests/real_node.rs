//! berth under a real kubelet (tests/src/real_node.rs): deploy/ applied as
//! deploy/kind/README.md says and run as pods, berth registering itself
//! with the kubelet, and the kubelet staging, publishing, expanding and
//! counting berth's volumes for pods that really run. One test, steps in
//! order, because a machine holds one real node at a time:
//!
//! 1. README's install block: the controller and the node agent Ready;
//!    CSINode has the driver, its volume limit and topology key; the Node
//!    has the topology label; the capacity objects exist;
//! 2. README's smoke test as written, then its PV and volume are gone;
//! 3. data survives a pod re-created on the same claim;
//! 3c. the default class enforces its size (ENOSPC past the claim);
//!    berth-local-dir serves a directory;
//! 4. a raw block claim read back through the device; an ext4 class with
//!    fsGroup applied;
//! 5. a read-only mount refuses writes;
//! 6. expansion: xfs grown while mounted, ext4 grown offline at the next
//!    mount (online ext4 growth needs CAP_SYS_RESOURCE, which root lacks on
//!    these machines);
//! 7. the volume limit: with `--max-volumes-per-node 2` a third pod stays
//!    Pending with the scheduler's message and its claim gets no volume;
//! 8. the agent pod deleted: mounted volumes stay usable, new mounts work
//!    once it is back;
//! 9. time from a claim + pod applied to the pod Running, p50 over 20;
//! 10. teardown leaves nothing behind.

use std::time::{Duration, Instant};

use berth_tests::berth_bin;
use berth_tests::real_node::{BERTH_HOST_DIR, RealNode};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::{CSINode, CSIStorageCapacity};
use kube::api::{Api, ListParams, Patch, PatchParams};

const NODE: &str = berth_tests::control_plane::REAL_NODE_NAME;
const KEY: &str = "topology.csi.berth.dev/node";

/// The fenced `sh` block right after `<!-- real-node: NAME ...-->` in
/// deploy/kind/README.md.
fn readme_block(name: &str) -> String {
    berth_tests::readme::marked_block(
        "deploy/kind/README.md",
        &format!("<!-- real-node: {name} "),
        "sh",
    )
}

/// Polls `check` every 500 ms until it yields, or fails with the node's logs.
async fn wait<T, F, Fut>(node: &RealNode, what: &str, secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            node.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn apply(node: &RealNode, yaml: &str) {
    let script = format!("kubectl apply -f - <<'YAML'\n{yaml}\nYAML\n");
    node.shell(&script).unwrap_or_else(|e| panic!("{e}"));
}

/// A claim and a busybox pod mounting it at /data (or as /dev/xvda for a
/// block claim) that runs `command`.
fn claim_and_pod(
    name: &str,
    class: &str,
    size: &str,
    block: bool,
    pod_extra: &str,
    command: &str,
) -> String {
    let mode = if block { "  volumeMode: Block\n" } else { "" };
    let mount = if block {
        "      volumeDevices: [{ name: data, devicePath: /dev/xvda }]".to_string()
    } else {
        "      volumeMounts: [{ name: data, mountPath: /data }]".to_string()
    };
    format!(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{ name: {name} }}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: {class}
{mode}  resources: {{ requests: {{ storage: {size} }} }}
---
{}",
        pod(name, name, pod_extra, &mount, command)
    )
}

fn pod(name: &str, claim: &str, extra: &str, mount: &str, command: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{ name: {name} }}
spec:
  terminationGracePeriodSeconds: 1
{extra}  containers:
    - name: sh
      image: busybox:1.36
      command: [\"sh\", \"-c\", {command:?}]
{mount}
  volumes:
    - name: data
      persistentVolumeClaim: {{ claimName: {claim} }}
"
    )
}

async fn wait_running(node: &RealNode, name: &str) {
    let pods: Api<Pod> = Api::namespaced(node.client.clone(), "default");
    wait(node, &format!("pod {name} Running"), 180, || {
        let pods = pods.clone();
        async move {
            let p = pods.get(name).await.ok()?;
            (p.status?.phase.as_deref() == Some("Running")).then_some(())
        }
    })
    .await
}

fn exec(node: &RealNode, pod: &str, command: &str) -> Result<String, String> {
    node.kubectl(&["exec", pod, "--", "sh", "-c", command])
}

async fn claim(node: &RealNode, name: &str) -> PersistentVolumeClaim {
    Api::<PersistentVolumeClaim>::namespaced(node.client.clone(), "default")
        .get(name)
        .await
        .expect("claim")
}

fn capacity_of(c: &PersistentVolumeClaim) -> Option<String> {
    Some(
        c.status
            .as_ref()?
            .capacity
            .as_ref()?
            .get("storage")?
            .0
            .clone(),
    )
}

/// The `1K-blocks` column of `df -k /data` in the pod.
fn df_kib(node: &RealNode, pod: &str) -> u64 {
    let out = exec(node, pod, "df -k /data | tail -1").unwrap_or_else(|e| panic!("{e}"));
    out.split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("df output: {out}"))
}

fn volumes_on_disk() -> Vec<String> {
    std::fs::read_dir(format!("{BERTH_HOST_DIR}/data/volumes"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

async fn set_max_volumes(node: &RealNode, value: &str) {
    let sets: Api<DaemonSet> = Api::namespaced(node.client.clone(), "berth-system");
    let ds = sets.get("berth-node").await.expect("DaemonSet");
    let container = &ds
        .spec
        .as_ref()
        .expect("spec")
        .template
        .spec
        .as_ref()
        .expect("pod")
        .containers[0];
    let args: Vec<String> = container
        .args
        .iter()
        .flatten()
        .map(|a| {
            if a.starts_with("--max-volumes-per-node=") {
                format!("--max-volumes-per-node={value}")
            } else {
                a.clone()
            }
        })
        .collect();
    let patch = serde_json::json!({ "spec": { "template": { "spec": { "containers": [
        { "name": container.name, "args": args }
    ] } } } });
    sets.patch(
        "berth-node",
        &PatchParams::default(),
        &Patch::Strategic(&patch),
    )
    .await
    .expect("patch the DaemonSet");
    node.shell("kubectl -n berth-system rollout status ds/berth-node --timeout=180s")
        .unwrap_or_else(|e| panic!("{e}"));
    let csinodes: Api<CSINode> = Api::all(node.client.clone());
    let want: i32 = value.parse().expect("a number");
    wait(node, &format!("CSINode allocatable {value}"), 120, || {
        let csinodes = csinodes.clone();
        async move {
            let c = csinodes.get(NODE).await.ok()?;
            let d = c.spec.drivers.iter().find(|d| d.name == "csi.berth.dev")?;
            (d.allocatable.as_ref()?.count? == want).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_serves_volumes_to_pods_of_a_real_kubelet() {
    let mut node = RealNode::start(&berth_bin())
        .await
        .unwrap_or_else(|e| panic!("starting the real node: {e}"));

    // 1. Install exactly as deploy/kind/README.md says.
    node.shell(&readme_block("install"))
        .unwrap_or_else(|e| panic!("{e}\n{}", node.logs()));
    let csinodes: Api<CSINode> = Api::all(node.client.clone());
    let driver = wait(&node, "berth registered in CSINode", 120, || {
        let csinodes = csinodes.clone();
        async move {
            let c = csinodes.get(NODE).await.ok()?;
            c.spec
                .drivers
                .into_iter()
                .find(|d| d.name == "csi.berth.dev")
        }
    })
    .await;
    assert_eq!(driver.node_id, NODE);
    assert_eq!(
        driver.topology_keys.as_deref(),
        Some(&[KEY.to_string()][..])
    );
    assert_eq!(
        driver.allocatable.and_then(|a| a.count),
        Some(256),
        "deploy/'s --max-volumes-per-node"
    );
    let labels = Api::<Node>::all(node.client.clone())
        .get(NODE)
        .await
        .expect("node")
        .metadata
        .labels
        .unwrap_or_default();
    assert_eq!(labels.get(KEY).map(String::as_str), Some(NODE));
    let caps: Api<CSIStorageCapacity> = Api::namespaced(node.client.clone(), "berth-system");
    wait(&node, "capacity objects for every class", 60, || {
        let caps = caps.clone();
        async move {
            let n = caps.list(&ListParams::default()).await.ok()?.items.len();
            (n == 5).then_some(())
        }
    })
    .await;
    let table = node
        .shell(&readme_block("capacity"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        table.contains("berth-local") && table.contains(NODE),
        "{table}"
    );

    // 2. README's smoke test, as written.
    let smoke = node
        .shell(&readme_block("smoke"))
        .unwrap_or_else(|e| panic!("{e}\n{}", node.logs()));
    assert!(smoke.lines().any(|l| l.trim() == "hello"), "{smoke}");
    assert!(smoke.contains("ProvisioningSucceeded"), "{smoke}");
    wait(&node, "the smoke volume reclaimed", 60, || async {
        volumes_on_disk().is_empty().then_some(())
    })
    .await;

    // 3. Data survives the pod.
    apply(
        &node,
        &claim_and_pod(
            "keep",
            "berth-local",
            "64Mi",
            false,
            "",
            "echo persisted > /data/f && sleep 3600",
        ),
    );
    wait_running(&node, "keep").await;
    node.kubectl(&["delete", "pod", "keep"])
        .expect("delete pod");
    apply(
        &node,
        &pod(
            "keep",
            "keep",
            "",
            "      volumeMounts: [{ name: data, mountPath: /data }]",
            "sleep 3600",
        ),
    );
    wait_running(&node, "keep").await;
    assert_eq!(
        exec(&node, "keep", "cat /data/f").expect("read").trim(),
        "persisted"
    );

    // 3b. A clone of that claim, mounted by a pod, holds its file; then it
    // goes (the source's cloning protection is checked gone at the end).
    apply(
        &node,
        &claim_and_pod(
            "copy",
            "berth-local",
            "64Mi",
            false,
            "",
            "sleep 3600",
        )
        .replace(
            "  resources: { requests: { storage: 64Mi } }\n",
            "  resources: { requests: { storage: 64Mi } }\n  dataSource: { kind: PersistentVolumeClaim, name: keep }\n",
        ),
    );
    wait_running(&node, "copy").await;
    assert_eq!(
        exec(&node, "copy", "cat /data/f")
            .expect("read the clone")
            .trim(),
        "persisted",
        "the clone has its source's data"
    );
    node.kubectl(&["delete", "pod", "copy", "--wait=true"])
        .expect("delete");
    node.kubectl(&["delete", "pvc", "copy"]).expect("delete");

    // 3c. The default class enforces its size (an ext4 image: a write past
    // the claim fails with ENOSPC); berth-local-dir, the directory class,
    // serves a bind-mounted directory.
    let full = exec(
        &node,
        "keep",
        "dd if=/dev/zero of=/data/fill bs=1M count=100 2>&1 || echo refused; rm -f /data/fill",
    )
    .expect("write past the claim");
    assert!(
        full.contains("No space left on device") && full.contains("refused"),
        "writing 100Mi into a 64Mi volume: {full}"
    );
    apply(
        &node,
        &claim_and_pod(
            "plain",
            "berth-local-dir",
            "64Mi",
            false,
            "",
            "echo dir > /data/f && sleep 3600",
        ),
    );
    wait_running(&node, "plain").await;
    let mounted = exec(&node, "plain", "cat /data/f && ls -a /data").expect("read");
    assert!(mounted.starts_with("dir\n"), "{mounted}");
    assert!(
        !mounted.contains("lost+found"),
        "a directory, not a file system: {mounted}"
    );
    node.kubectl(&["delete", "pod", "plain", "--wait=true"])
        .expect("delete");
    node.kubectl(&["delete", "pvc", "plain"]).expect("delete");

    // 4. Raw block through the device; ext4 with fsGroup.
    apply(
        &node,
        &claim_and_pod("raw", "berth-local", "64Mi", true, "", "sleep 3600"),
    );
    wait_running(&node, "raw").await;
    let read = exec(
        &node,
        "raw",
        "echo blockdata | dd of=/dev/xvda bs=512 count=1 conv=sync 2>/dev/null && dd if=/dev/xvda bs=512 count=1 2>/dev/null | head -c 9",
    )
    .expect("block io");
    assert_eq!(read, "blockdata");
    apply(
        &node,
        &claim_and_pod(
            "fsgroup",
            "berth-ext4",
            "64Mi",
            false,
            "  securityContext: { runAsUser: 1000, fsGroup: 2000 }\n",
            "sleep 3600",
        ),
    );
    wait_running(&node, "fsgroup").await;
    let owner = exec(
        &node,
        "fsgroup",
        "stat -c %g /data && touch /data/mine && stat -c %g /data/mine && mount | grep ' /data '",
    )
    .expect("fsgroup");
    let lines: Vec<&str> = owner.lines().collect();
    assert_eq!(&lines[..2], ["2000", "2000"], "{owner}");
    assert!(lines[2].contains("ext4"), "an ext4 mount: {owner}");

    // 5. Read-only.
    apply(
        &node,
        &pod(
            "reader",
            "keep",
            "",
            "      volumeMounts: [{ name: data, mountPath: /data, readOnly: true }]",
            "sleep 3600",
        ),
    );
    wait_running(&node, "reader").await;
    assert_eq!(
        exec(&node, "reader", "cat /data/f").expect("read").trim(),
        "persisted"
    );
    let refused = exec(&node, "reader", "touch /data/x").expect_err("a read-only mount");
    assert!(refused.contains("Read-only file system"), "{refused}");

    // 6. Expansion: xfs while mounted, ext4 at the next mount.
    apply(
        &node,
        &claim_and_pod("grow", "berth-xfs", "300Mi", false, "", "sleep 3600"),
    );
    wait_running(&node, "grow").await;
    let before = df_kib(&node, "grow");
    let uid = Api::<Pod>::namespaced(node.client.clone(), "default")
        .get("grow")
        .await
        .expect("pod")
        .metadata
        .uid;
    node.kubectl(&[
        "patch",
        "pvc",
        "grow",
        "-p",
        r#"{"spec":{"resources":{"requests":{"storage":"600Mi"}}}}"#,
    ])
    .expect("resize");
    wait(&node, "grow's claim at 600Mi", 180, || async {
        (capacity_of(&claim(&node, "grow").await).as_deref() == Some("600Mi")).then_some(())
    })
    .await;
    let after = df_kib(&node, "grow");
    assert!(
        after > before + 250 * 1024,
        "df grew: {before} KiB → {after} KiB"
    );
    let same = Api::<Pod>::namespaced(node.client.clone(), "default")
        .get("grow")
        .await
        .expect("pod");
    assert_eq!(same.metadata.uid, uid, "the pod was not restarted");

    apply(
        &node,
        &claim_and_pod(
            "grow4",
            "berth-ext4",
            "64Mi",
            false,
            "",
            "echo kept > /data/f && sleep 3600",
        ),
    );
    wait_running(&node, "grow4").await;
    let small = df_kib(&node, "grow4");
    node.kubectl(&["delete", "pod", "grow4"])
        .expect("delete pod");
    node.kubectl(&[
        "patch",
        "pvc",
        "grow4",
        "-p",
        r#"{"spec":{"resources":{"requests":{"storage":"128Mi"}}}}"#,
    ])
    .expect("resize");
    wait(
        &node,
        "grow4 waiting for a node to grow its file system",
        120,
        || async {
            let c = claim(&node, "grow4").await;
            let pending = c
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "FileSystemResizePending" && c.status == "True");
            pending.then_some(())
        },
    )
    .await;
    apply(
        &node,
        &pod(
            "grow4",
            "grow4",
            "",
            "      volumeMounts: [{ name: data, mountPath: /data }]",
            "sleep 3600",
        ),
    );
    wait_running(&node, "grow4").await;
    wait(&node, "grow4's claim at 128Mi", 120, || async {
        (capacity_of(&claim(&node, "grow4").await).as_deref() == Some("128Mi")).then_some(())
    })
    .await;
    let big = df_kib(&node, "grow4");
    assert!(big > small + 50 * 1024, "df grew: {small} KiB → {big} KiB");
    assert_eq!(
        exec(&node, "grow4", "cat /data/f").expect("read").trim(),
        "kept"
    );
    let events = node
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=grow4",
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .expect("events");
    assert!(events.contains("FileSystemResizeRequired"), "{events}");
    for p in ["raw", "fsgroup", "reader", "grow", "grow4"] {
        node.kubectl(&["delete", "pod", p, "--wait=true"])
            .expect("delete");
    }
    for c in ["raw", "fsgroup", "grow", "grow4"] {
        node.kubectl(&["delete", "pvc", c]).expect("delete");
    }

    // 8. The agent restarts: a mounted volume stays usable meanwhile, and
    // new mounts work once it is back.
    node.kubectl(&[
        "-n",
        "berth-system",
        "delete",
        "pod",
        "-l",
        "app=berth-node",
        "--wait=false",
    ])
    .expect("delete the agent");
    assert_eq!(
        exec(&node, "keep", "echo again >> /data/f && cat /data/f")
            .expect("io while the agent restarts"),
        "persisted\nagain\n"
    );
    node.shell("kubectl -n berth-system rollout status ds/berth-node --timeout=180s")
        .unwrap_or_else(|e| panic!("{e}"));
    apply(
        &node,
        &claim_and_pod("after", "berth-local", "64Mi", false, "", "sleep 3600"),
    );
    wait_running(&node, "after").await;
    node.kubectl(&["delete", "pod", "after", "keep"])
        .expect("delete");
    node.kubectl(&["delete", "pvc", "after", "keep"])
        .expect("delete");
    // `keep` was cloned: its cloning protection goes once no clone is
    // pending, and the claim with it.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(node.client.clone(), "default");
    wait(&node, "the cloned claim gone", 60, || {
        let claims = claims.clone();
        async move { matches!(claims.get_opt("keep").await, Ok(None)).then_some(()) }
    })
    .await;
    wait(&node, "every volume reclaimed", 180, || async {
        volumes_on_disk().is_empty().then_some(())
    })
    .await;

    // 7. The volume limit, counted by the scheduler from CSINode.
    set_max_volumes(&node, "2").await;
    for n in ["one", "two"] {
        apply(
            &node,
            &claim_and_pod(n, "berth-local", "64Mi", false, "", "sleep 3600"),
        );
        wait_running(&node, n).await;
    }
    apply(
        &node,
        &claim_and_pod("three", "berth-local", "64Mi", false, "", "sleep 3600"),
    );
    let pods: Api<Pod> = Api::namespaced(node.client.clone(), "default");
    let message = wait(&node, "three unschedulable", 120, || {
        let pods = pods.clone();
        async move {
            let p = pods.get("three").await.ok()?;
            p.status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")?
                .message
        }
    })
    .await;
    assert!(message.contains("exceed max volume count"), "{message}");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let three = claim(&node, "three").await;
    assert!(
        three.spec.and_then(|s| s.volume_name).is_none(),
        "no volume for three"
    );
    assert_eq!(volumes_on_disk().len(), 2, "only one and two have volumes");
    node.kubectl(&["delete", "pod", "one", "two", "three"])
        .expect("delete");
    node.kubectl(&["delete", "pvc", "one", "two", "three"])
        .expect("delete");
    set_max_volumes(&node, "256").await;

    // 9. claim + pod applied → pod Running, 20 times.
    let mut took = Vec::new();
    for i in 0..20 {
        let name = format!("t{i:02}");
        let started = Instant::now();
        apply(
            &node,
            &claim_and_pod(&name, "berth-local", "64Mi", false, "", "sleep 3600"),
        );
        wait_running(&node, &name).await;
        took.push(started.elapsed().as_secs_f64());
    }
    took.sort_by(f64::total_cmp);
    println!(
        "claim + pod applied → pod Running over 20 pods: p50 {:.2} s, min {:.2} s, max {:.2} s",
        took[10], took[0], took[19]
    );
    for i in 0..20 {
        let name = format!("t{i:02}");
        node.kubectl(&["delete", "pod", &name, "--wait=false"])
            .expect("delete");
        node.kubectl(&["delete", "pvc", &name, "--wait=false"])
            .expect("delete");
    }
    wait(&node, "every volume reclaimed", 180, || async {
        volumes_on_disk().is_empty().then_some(())
    })
    .await;

    // 10. Nothing left.
    let left = node.teardown().await;
    assert!(left.is_empty(), "left behind: {left:#?}");
}
