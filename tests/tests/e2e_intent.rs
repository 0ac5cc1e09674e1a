//! The provisioning intent (`csi.berth.dev/provisioning`, issue 13) on the
//! real control plane: a claim deleted while CreateVolume is in flight, or
//! while the process that made its volume is down, is held until the volume
//! is deleted, and then goes; a bound claim carries no berth finalizer.
//!
//! The window between CreateVolume and the PV's creation is opened for real,
//! without mocks: the driver is stopped (SIGSTOP) so CreateVolume hangs, or
//! the provisioner runs as a ServiceAccount whose RBAC lets it do
//! everything but create PersistentVolumes, so it stops there and is killed
//! (-9) in that state. Both shapes are checked: `berth controller
//! --csi-endpoint` calling the driver, and deploy/'s node agents calling
//! their own.

use std::time::Duration;

use berth_tests::control_plane::{Cluster, NodeSpec};
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

const FINALIZER: &str = "csi.berth.dev/provisioning";
const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
const NAMESPACE: &str = "berth-system";

/// Every volume the central driver holds, from ListVolumes over its socket.
async fn driver_volumes(env: &Cluster) -> Vec<String> {
    use csi_proto::controller_client::ControllerClient;
    let channel = csi_proto::connect_unix(env.berth.socket.clone())
        .await
        .expect("connect to the driver");
    let page = ControllerClient::new(channel)
        .list_volumes(csi_proto::ListVolumesRequest::default())
        .await
        .expect("ListVolumes")
        .into_inner();
    assert!(page.next_token.is_empty(), "one page is enough here");
    page.entries
        .into_iter()
        .filter_map(|e| e.volume.map(|v| v.volume_id))
        .collect()
}

fn signal(pid: u32, sig: Signal) {
    kill(Pid::from_raw(pid as i32), sig).expect("signal the driver");
}

/// Continues a stopped process when dropped, so a failing test does not
/// leave it stopped.
struct Continue(u32);

impl Drop for Continue {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0 as i32), Signal::SIGCONT);
    }
}

async fn claim(env: &Cluster, ns: &str, name: &str) -> Option<PersistentVolumeClaim> {
    env.claims(ns).get_opt(name).await.expect("get claim")
}

/// Waits until the claim carries berth's intent.
async fn wait_intent(env: &Cluster, ns: &str, name: &str) {
    env.wait(
        &format!("{FINALIZER} on {ns}/{name}"),
        Duration::from_secs(60),
        || async move {
            let c = claim(env, ns, name).await?;
            c.finalizers().iter().any(|f| f == FINALIZER).then_some(())
        },
    )
    .await
}

/// Waits until the claim is gone.
async fn wait_gone(env: &Cluster, ns: &str, name: &str) {
    env.wait(
        &format!("{ns}/{name} gone"),
        Duration::from_secs(90),
        || async move { claim(env, ns, name).await.is_none().then_some(()) },
    )
    .await
}

/// The claim is still there, deleted and held by berth's finalizer.
async fn assert_held(env: &Cluster, ns: &str, name: &str) {
    let c = claim(env, ns, name)
        .await
        .unwrap_or_else(|| panic!("{ns}/{name} went while its volume may exist"));
    assert!(
        c.metadata.deletion_timestamp.is_some(),
        "{ns}/{name} is being deleted"
    );
    assert!(
        c.finalizers().iter().any(|f| f == FINALIZER),
        "held by {FINALIZER}: {:?}",
        c.finalizers()
    );
}

/// A ServiceAccount in berth-system bound to `rules` (a ClusterRole of the
/// same name), and a kubeconfig with its token.
async fn account(env: &Cluster, name: &str, rules: serde_json::Value) -> std::path::PathBuf {
    let sa: ServiceAccount =
        serde_json::from_value(json!({ "metadata": { "name": name, "namespace": NAMESPACE } }))
            .expect("sa");
    Api::<ServiceAccount>::namespaced(env.client.clone(), NAMESPACE)
        .create(&PostParams::default(), &sa)
        .await
        .expect("service account");
    let role: ClusterRole =
        serde_json::from_value(json!({ "metadata": { "name": name }, "rules": rules }))
            .expect("role");
    Api::<ClusterRole>::all(env.client.clone())
        .create(&PostParams::default(), &role)
        .await
        .expect("cluster role");
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": { "name": name },
        "subjects": [{ "kind": "ServiceAccount", "name": name, "namespace": NAMESPACE }],
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name },
    }))
    .expect("binding");
    Api::<ClusterRoleBinding>::all(env.client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("cluster role binding");
    env.service_account(name).await
}

/// Every rule of deploy/'s ClusterRole `role` as applied, with `create`
/// on PersistentVolumes taken away.
async fn without_pv_create(env: &Cluster, role: &str) -> serde_json::Value {
    let deployed = Api::<ClusterRole>::all(env.client.clone())
        .get(role)
        .await
        .expect("deploy/'s role");
    let mut rules = serde_json::to_value(deployed.rules.unwrap_or_default()).expect("rules");
    for rule in rules.as_array_mut().expect("a list") {
        let pvs = rule["resources"]
            .as_array()
            .is_some_and(|r| r.iter().any(|x| x == "persistentvolumes"));
        if pvs && let Some(verbs) = rule["verbs"].as_array_mut() {
            verbs.retain(|v| v != "create");
        }
    }
    rules
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_deleted_while_create_volume_hangs_is_held_until_its_volume_is_deleted() {
    let mut env = Cluster::start(&["node-a"]).await;
    env.berth.add_controller(&[]).expect("controller");
    env.namespace("slow").await;
    env.class("fast", "Immediate", "Delete", json!({})).await;
    // Make sure the controller is up and has connected to the driver.
    env.claim("slow", "warm", "fast").await;
    env.wait_bound("slow", "warm").await;
    env.claims("slow")
        .delete("warm", &DeleteParams::default())
        .await
        .expect("delete warm");
    wait_gone(&env, "slow", "warm").await;
    env.wait(
        "the warm-up volume deleted",
        Duration::from_secs(60),
        || {
            let env = &env;
            async move { driver_volumes(env).await.is_empty().then_some(()) }
        },
    )
    .await;

    // CreateVolume cannot finish while the driver is stopped.
    let driver = env.berth.driver.as_ref().expect("driver").pid();
    signal(driver, Signal::SIGSTOP);
    let resume = Continue(driver);
    env.claim("slow", "brief", "fast").await;
    wait_intent(&env, "slow", "brief").await;
    env.claims("slow")
        .delete("brief", &DeleteParams::default())
        .await
        .expect("delete brief");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_held(&env, "slow", "brief").await;
    drop(resume);

    wait_gone(&env, "slow", "brief").await;
    assert_eq!(
        driver_volumes(&env).await,
        Vec::<String>::new(),
        "no volume left"
    );
    assert!(env.berth_pvs().await.is_empty(), "no PV made");
    let reasons: Vec<String> = env
        .events_for("slow", "brief")
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        reasons.iter().any(|r| r == "VolumeDeleted"),
        "the volume CreateVolume made was deleted: {reasons:?}"
    );

    // Normal provisioning: the finalizer is gone once the PV exists, and
    // Kubernetes' own protection is untouched.
    env.claim("slow", "kept", "fast").await;
    let pv = env.wait_bound("slow", "kept").await;
    let kept = env
        .wait("the bound claim settled", Duration::from_secs(30), || {
            let env = &env;
            async move {
                let c = claim(env, "slow", "kept").await?;
                (!c.finalizers().iter().any(|f| f == FINALIZER)).then_some(c)
            }
        })
        .await;
    assert!(
        kept.finalizers().iter().any(|f| f == PVC_PROTECTION),
        "pvc-protection kept: {:?}",
        kept.finalizers()
    );
    assert_eq!(
        driver_volumes(&env).await.len(),
        1,
        "the kept claim's volume"
    );
    assert!(env.pvs().get_opt(&pv).await.expect("get pv").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_between_create_volume_and_the_pv_leaks_nothing() {
    let mut env = Cluster::start(&["node-a"]).await;
    env.namespace(NAMESPACE).await;
    env.namespace("crash").await;
    env.class("fast", "Immediate", "Delete", json!({})).await;
    // Everything a central controller reads and writes, except making PVs.
    let rules = json!([
        { "apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list", "watch", "patch", "update"] },
        { "apiGroups": [""], "resources": ["persistentvolumes", "nodes"], "verbs": ["get", "list", "watch"] },
        { "apiGroups": ["storage.k8s.io"], "resources": ["*"], "verbs": ["get", "list", "watch"] },
        { "apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"] },
    ]);
    let restricted = account(&env, "berth-no-pv", rules).await;
    env.berth
        .add_controller_with(&restricted, &[])
        .expect("restricted controller");

    env.claim("crash", "c1", "fast").await;
    wait_intent(&env, "crash", "c1").await;
    env.wait(
        "CreateVolume done, PV refused",
        Duration::from_secs(60),
        || {
            let env = &env;
            async move { (driver_volumes(env).await.len() == 1).then_some(()) }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(env.berth_pvs().await.is_empty(), "the PV cannot be made");
    env.berth.controllers[0].kill();

    env.claims("crash")
        .delete("c1", &DeleteParams::default())
        .await
        .expect("delete c1");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_held(&env, "crash", "c1").await;
    assert_eq!(
        driver_volumes(&env).await.len(),
        1,
        "nobody runs: the volume is still there"
    );

    env.berth.add_controller(&[]).expect("controller again");
    wait_gone(&env, "crash", "c1").await;
    assert_eq!(
        driver_volumes(&env).await,
        Vec::<String>::new(),
        "no volume left"
    );
    assert!(env.berth_pvs().await.is_empty(), "no PV made");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_between_create_volume_and_the_pv_leaks_nothing_and_a_lost_node_blocks_nothing()
 {
    let mut env = Cluster::start_node_local(&[]).await;
    // The agent has deploy/'s rights except creating PVs.
    let rules = without_pv_create(&env, "berth-node").await;
    let restricted = account(&env, "berth-node-no-pv", rules).await;
    let capacity: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "berth-node-no-pv-capacity", "namespace": NAMESPACE },
        "subjects": [{ "kind": "ServiceAccount", "name": "berth-node-no-pv", "namespace": NAMESPACE }],
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "berth-node-capacity" },
    }))
    .expect("role binding");
    Api::<RoleBinding>::namespaced(env.client.clone(), NAMESPACE)
        .create(&PostParams::default(), &capacity)
        .await
        .expect("capacity role binding");
    env.berth.agent_kubeconfig = Some(restricted);
    env.add_node(NodeSpec::new("node-a", "1Gi"), &[]).await;
    env.berth
        .add_controller(&["--node-loss-grace-secs=2"])
        .expect("controller");
    env.namespace("apps").await;
    env.class("local", "Immediate", "Delete", json!({})).await;
    env.wait_capacities("local").await;

    // 1. The agent is killed with the volume made and no PV; the claim is
    // deleted while it is down; the restarted agent deletes the volume.
    env.claim("apps", "c1", "local").await;
    wait_intent(&env, "apps", "c1").await;
    env.wait(
        "the volume on node-a's disk",
        Duration::from_secs(60),
        || {
            let n = env.berth.agents[0].volumes_on_disk().len();
            async move { (n == 1).then_some(()) }
        },
    )
    .await;
    assert!(env.berth_pvs().await.is_empty(), "the PV cannot be made");
    env.agent("node-a").kill();
    env.claims("apps")
        .delete("c1", &DeleteParams::default())
        .await
        .expect("delete c1");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_held(&env, "apps", "c1").await;
    assert_eq!(env.berth.agents[0].volumes_on_disk().len(), 1);
    env.agent("node-a").restart().expect("restart the agent");
    wait_gone(&env, "apps", "c1").await;
    assert_eq!(
        env.berth.agents[0].volumes_on_disk(),
        Vec::<String>::new(),
        "the restarted agent deleted the volume"
    );

    // 2. The node goes for good with such a claim on it: the controller
    // releases the claim after the grace, and says so on it.
    env.claim("apps", "c2", "local").await;
    wait_intent(&env, "apps", "c2").await;
    env.wait(
        "c2's volume on node-a's disk",
        Duration::from_secs(60),
        || {
            let n = env.berth.agents[0].volumes_on_disk().len();
            async move { (n == 1).then_some(()) }
        },
    )
    .await;
    env.agent("node-a").kill();
    Api::<Node>::all(env.client.clone())
        .delete("node-a", &DeleteParams::default())
        .await
        .expect("delete node-a");
    env.claims("apps")
        .delete("c2", &DeleteParams::default())
        .await
        .expect("delete c2");
    wait_gone(&env, "apps", "c2").await;
    let events = env.events_for("apps", "c2").await;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("NodeLost")
                && e.message.as_deref().is_some_and(|m| m.contains("apps/c2"))),
        "a NodeLost event names the claim: {events:?}"
    );
    let left = env
        .claims("apps")
        .list(&ListParams::default())
        .await
        .expect("claims")
        .items;
    assert!(left.is_empty(), "no claim left: {left:?}");
}
