//! Node-local volumes on every node, as deploy/ runs berth: a `berth node`
//! agent per node (its own data, state and socket) and `berth controller`
//! without a driver, on the real control plane with kube-scheduler, the
//! stock PV binder and the garbage collector. No kubelet: the harness
//! writes the CSINodes a kubelet would.
//!
//! Checked: volumes are made on the node the scheduler (WaitForFirstConsumer)
//! or berth's placement (Immediate) chose and nowhere else; storage capacity
//! objects per node and class follow volumes, classes and nodes; a crashed
//! agent or controller leader leaves no duplicate and no leak; a deleted
//! Node's volumes are handled as documented; each volume is deleted by its
//! own node's agent.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use berth_tests::control_plane::{
    Cluster, NodeSpec, TOPOLOGY_KEY, leader_election_flags, placement,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Node};
use k8s_openapi::api::storage::v1::{CSIStorageCapacity, StorageClass};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

/// Every berth PV's volume is on its node's disk and on no other, and no
/// node holds a volume without a PV; returns node → volumes.
async fn assert_volumes_where_their_pvs_say(env: &Cluster) -> BTreeMap<String, usize> {
    let pvs = env.berth_pvs().await;
    let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for a in &env.berth.agents {
        want.insert(a.node.clone(), BTreeSet::new());
    }
    for pv in &pvs {
        let (node, handle) = placement(pv);
        assert!(
            want.entry(node.clone()).or_default().insert(handle.clone()),
            "volume {handle} of {} named twice",
            pv.name_any()
        );
    }
    let mut counts = BTreeMap::new();
    for a in &env.berth.agents {
        let on_disk: BTreeSet<String> = a.volumes_on_disk().into_iter().collect();
        let expected = want.get(&a.node).cloned().unwrap_or_default();
        assert_eq!(
            on_disk, expected,
            "node {}: volumes on disk are exactly its PVs' volumes",
            a.node
        );
        counts.insert(a.node.clone(), on_disk.len());
    }
    counts
}

async fn capacities(env: &Cluster) -> Vec<CSIStorageCapacity> {
    Api::<CSIStorageCapacity>::namespaced(env.client.clone(), "berth-system")
        .list(&ListParams::default())
        .await
        .expect("capacities")
        .items
}

/// node → class → capacity, from the published objects.
async fn capacity_table(env: &Cluster) -> BTreeMap<(String, String), String> {
    capacities(env)
        .await
        .into_iter()
        .filter_map(|c| {
            let node = c
                .node_topology
                .as_ref()?
                .match_labels
                .as_ref()?
                .get(TOPOLOGY_KEY)?
                .clone();
            Some(((node, c.storage_class_name.clone()), c.capacity?.0))
        })
        .collect()
}

async fn wait_capacity(env: &Cluster, node: &str, class: &str, want: &str) {
    let key = (node.to_string(), class.to_string());
    env.wait(
        &format!("capacity of {class} on {node} = {want}"),
        Duration::from_secs(60),
        || {
            let key = key.clone();
            async move {
                let table = capacity_table(env).await;
                (table.get(&key).map(String::as_str) == Some(want)).then_some(())
            }
        },
    )
    .await
}

async fn claims_of_class(env: &Cluster, ns: &str, prefix: &str, n: usize, class: &str) {
    let claims = env.claims(ns);
    for i in 0..n {
        claims
            .create(
                &PostParams::default(),
                &Cluster::claim_object(&format!("{prefix}{i}"), class, json!({})),
            )
            .await
            .expect("claim");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_volumes_are_made_on_each_pods_node_and_deleted_by_that_nodes_agent() {
    let nodes = ["node-a", "node-b", "node-c"].map(|n| NodeSpec::new(n, "4Gi"));
    let mut env = Cluster::start_node_local(&nodes).await;
    env.berth.add_controller(&[]).expect("controller");
    env.namespace("apps").await;
    env.class("berth-local", "WaitForFirstConsumer", "Delete", json!({}))
        .await;
    env.class("berth-immediate", "Immediate", "Delete", json!({}))
        .await;

    // One object per node and class, saying the node's whole capacity.
    for n in &nodes {
        for class in ["berth-local", "berth-immediate"] {
            wait_capacity(&env, n.name, class, "4Gi").await;
        }
    }
    let objects = capacities(&env).await;
    assert_eq!(objects.len(), 6, "3 nodes × 2 classes");
    for o in &objects {
        let owner = &o.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(owner.kind, "Node", "owned by its node: {o:?}");
    }

    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 6,
            "podManagementPolicy": "Parallel",
            "serviceName": "web",
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": {
                    "containers": [{ "name": "app", "image": "registry.invalid/app:1" }],
                    "topologySpreadConstraints": [{
                        "maxSkew": 1,
                        "topologyKey": TOPOLOGY_KEY,
                        "whenUnsatisfiable": "DoNotSchedule",
                        "labelSelector": { "matchLabels": { "app": "web" } },
                    }],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": { "name": "data" },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "berth-local",
                    "resources": { "requests": { "storage": "64Mi" } },
                },
            }],
        },
    }))
    .expect("statefulset");
    Api::<StatefulSet>::namespaced(env.client.clone(), "apps")
        .create(&PostParams::default(), &sts)
        .await
        .expect("create statefulset");

    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    let pods = env.pods("apps");
    for i in 0..6 {
        let claim = format!("data-web-{i}");
        let pv_name = env.wait_bound("apps", &claim).await;
        let pod = format!("web-{i}");
        let node = env
            .wait(
                &format!("{pod} scheduled"),
                Duration::from_secs(120),
                || {
                    let pods = pods.clone();
                    let pod = pod.clone();
                    async move { pods.get(&pod).await.ok()?.spec?.node_name }
                },
            )
            .await;
        let pv = env.pvs().get(&pv_name).await.expect("pv");
        let (pv_node, handle) = placement(&pv);
        assert_eq!(pv_node, node, "{claim}'s volume is on its pod's node");
        assert!(
            env.agent(&node).volumes_on_disk().contains(&handle),
            "{handle} is on {node}'s disk"
        );
        *per_node.entry(node).or_default() += 1;
    }
    assert_eq!(
        per_node.values().copied().collect::<Vec<_>>(),
        [2, 2, 2],
        "spread by the constraint: {per_node:?}"
    );
    let counts = assert_volumes_where_their_pvs_say(&env).await;
    assert_eq!(counts.values().sum::<usize>(), 6);

    // Two 64Mi volumes per node: 4Gi - 128Mi left for every class.
    for n in &nodes {
        wait_capacity(&env, n.name, "berth-local", "3968Mi").await;
        wait_capacity(&env, n.name, "berth-immediate", "3968Mi").await;
    }

    // A class that goes takes its objects with it.
    Api::<StorageClass>::all(env.client.clone())
        .delete("berth-immediate", &DeleteParams::default())
        .await
        .expect("delete class");
    env.wait(
        "berth-immediate's objects gone",
        Duration::from_secs(60),
        || async {
            let left = capacities(&env)
                .await
                .iter()
                .filter(|c| c.storage_class_name == "berth-immediate")
                .count();
            (left == 0).then_some(())
        },
    )
    .await;

    // Reclaim: the StatefulSet goes (its pods are force-deleted, there is no
    // kubelet to confirm), then its claims; each PV is deleted by the agent
    // of its own node, which frees the space again.
    let by_node: Vec<(String, String)> = env
        .berth_pvs()
        .await
        .iter()
        .map(|pv| (pv.name_any(), placement(pv).0))
        .collect();
    Api::<StatefulSet>::namespaced(env.client.clone(), "apps")
        .delete("web", &DeleteParams::orphan())
        .await
        .expect("delete statefulset");
    for i in 0..6 {
        let _ = pods
            .delete(
                &format!("web-{i}"),
                &DeleteParams::default().grace_period(0),
            )
            .await;
    }
    for i in 0..6 {
        env.claims("apps")
            .delete(&format!("data-web-{i}"), &DeleteParams::default())
            .await
            .expect("delete claim");
    }
    for (pv, _) in &by_node {
        env.wait_pv_gone(pv).await;
    }
    let events = Api::<Event>::namespaced(env.client.clone(), "default")
        .list(&ListParams::default())
        .await
        .expect("events")
        .items;
    for (pv, node) in &by_node {
        let deleted: Vec<&Event> = events
            .iter()
            .filter(|e| {
                e.involved_object.name.as_deref() == Some(pv.as_str())
                    && e.reason.as_deref() == Some("VolumeDeleted")
            })
            .collect();
        assert_eq!(
            deleted.len(),
            1,
            "{pv}: one VolumeDeleted event: {deleted:?}"
        );
        assert_eq!(
            deleted[0].reporting_instance.as_deref(),
            Some(format!("berth-node-{node}").as_str()),
            "{pv} on {node} is deleted by {node}'s agent"
        );
    }
    assert_eq!(
        assert_volumes_where_their_pvs_say(&env)
            .await
            .values()
            .sum::<usize>(),
        0,
        "no volume left on any node"
    );
    for n in &nodes {
        wait_capacity(&env, n.name, "berth-local", "4Gi").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_claims_spread_by_free_storage_and_a_full_node_gets_none() {
    let nodes = [
        NodeSpec::new("node-a", "2Gi"),
        NodeSpec::new("node-b", "1Gi"),
        NodeSpec::new("node-c", "32Mi"),
    ];
    let mut env = Cluster::start_node_local(&nodes).await;
    env.berth.add_controller(&[]).expect("controller");
    env.namespace("burst").await;
    env.class("berth-immediate", "Immediate", "Delete", json!({}))
        .await;
    for n in &nodes {
        wait_capacity(&env, n.name, "berth-immediate", n.capacity).await;
    }

    claims_of_class(&env, "burst", "c", 30, "berth-immediate").await;
    for i in 0..30 {
        env.wait_bound("burst", &format!("c{i}")).await;
    }
    let counts = assert_volumes_where_their_pvs_say(&env).await;
    println!("spread of 30 Immediate 64Mi claims over a 2Gi, a 1Gi and a 32Mi node: {counts:?}");
    // Most free storage first, ties by name: node-a takes claims until it
    // has node-b's 1Gi free (16), then they alternate (7 each); node-c's
    // 32Mi holds none. Claims arrive over several rounds, but what is
    // placed or made counts at once, so the end is the one-shot plan's.
    let want: BTreeMap<String, usize> = [("node-a", 23), ("node-b", 7), ("node-c", 0)]
        .map(|(n, c)| (n.to_string(), c))
        .into();
    assert_eq!(counts, want);

    // A claim no node can hold stays Pending, and the claim says why.
    env.claims("burst")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": { "name": "huge" },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "berth-immediate",
                    "resources": { "requests": { "storage": "8Gi" } },
                },
            }))
            .expect("claim"),
        )
        .await
        .expect("huge claim");
    let note = env
        .wait(
            "the huge claim's event",
            Duration::from_secs(60),
            || async {
                env.events_for("burst", "huge")
                    .await
                    .into_iter()
                    .filter_map(|e| e.message)
                    .find(|m| m.contains("no node has room"))
            },
        )
        .await;
    assert!(
        note.contains("0/3 nodes are available: 3 node(s) did not have enough free storage"),
        "{note}"
    );
    let huge = env.claims("burst").get("huge").await.expect("huge");
    assert_eq!(
        huge.status.and_then(|s| s.phase).as_deref(),
        Some("Pending")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_mid_burst_leaves_no_duplicate_and_no_leak() {
    let nodes = ["node-a", "node-b", "node-c"].map(|n| NodeSpec::new(n, "8Gi"));
    let mut env = Cluster::start_node_local(&nodes).await;
    env.berth.add_controller(&[]).expect("controller");
    env.namespace("burst").await;
    env.class("berth-immediate", "Immediate", "Delete", json!({}))
        .await;
    for n in &nodes {
        wait_capacity(&env, n.name, "berth-immediate", "8Gi").await;
    }
    claims_of_class(&env, "burst", "c", 30, "berth-immediate").await;
    // Kill node-b's agent once it is working.
    env.wait("node-b provisioning", Duration::from_secs(60), || async {
        let on_b = env
            .berth_pvs()
            .await
            .iter()
            .filter(|pv| placement(pv).0 == "node-b")
            .count();
        (on_b >= 2).then_some(())
    })
    .await;
    env.agent("node-b").kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    env.agent("node-b").restart().expect("restart node-b");
    for i in 0..30 {
        env.wait_bound("burst", &format!("c{i}")).await;
    }
    for i in 0..30 {
        let pvs = env.pvs_for("burst", &format!("c{i}")).await;
        assert_eq!(pvs.len(), 1, "c{i} has exactly one PV");
    }
    let counts = assert_volumes_where_their_pvs_say(&env).await;
    assert_eq!(counts.values().sum::<usize>(), 30, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_controller_finishes_a_burst_when_the_leader_dies() {
    use k8s_openapi::api::coordination::v1::Lease;
    let nodes = ["node-a", "node-b"].map(|n| NodeSpec::new(n, "8Gi"));
    let mut env = Cluster::start_node_local(&nodes).await;
    for id in ["replica-a", "replica-b"] {
        let flags = leader_election_flags(id);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        env.berth.add_controller(&flags).expect("controller");
    }
    env.namespace("burst").await;
    env.class("berth-immediate", "Immediate", "Delete", json!({}))
        .await;
    for n in &nodes {
        wait_capacity(&env, n.name, "berth-immediate", "8Gi").await;
    }
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "berth-system");
    let leader = env
        .wait("a leader", Duration::from_secs(60), || async {
            leases
                .get_opt("csi-berth-dev-controller")
                .await
                .ok()??
                .spec?
                .holder_identity
        })
        .await;
    claims_of_class(&env, "burst", "c", 20, "berth-immediate").await;
    env.wait("some claims placed", Duration::from_secs(60), || async {
        (env.berth_pvs().await.len() >= 3).then_some(())
    })
    .await;
    let leader_idx = usize::from(leader == "replica-b");
    env.berth.controllers[leader_idx].kill();
    for i in 0..20 {
        env.wait_bound("burst", &format!("c{i}")).await;
    }
    let now = leases
        .get("csi-berth-dev-controller")
        .await
        .ok()
        .and_then(|l| l.spec?.holder_identity);
    assert_ne!(
        now.as_deref(),
        Some(leader.as_str()),
        "the standby took over"
    );
    let counts = assert_volumes_where_their_pvs_say(&env).await;
    assert_eq!(counts.values().sum::<usize>(), 20, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_nodes_volumes_are_handled_as_documented_and_others_untouched() {
    let nodes = ["node-a", "node-c"].map(|n| NodeSpec::new(n, "4Gi"));
    let mut env = Cluster::start_node_local(&nodes).await;
    env.berth
        .add_controller(&["--node-loss-grace-secs=2"])
        .expect("controller");
    env.namespace("apps").await;
    env.class("del", "Immediate", "Delete", json!({})).await;
    env.class("keep", "Immediate", "Retain", json!({})).await;
    for n in &nodes {
        wait_capacity(&env, n.name, "del", "4Gi").await;
    }
    // Put each claim on a node of our choosing, as a placement would.
    let on = |node: &str| json!({ "volume.kubernetes.io/selected-node": node });
    env.claim_with("apps", "live", "del", on("node-c")).await;
    env.claim_with("apps", "gone-del", "del", on("node-c"))
        .await;
    env.claim_with("apps", "gone-keep", "keep", on("node-c"))
        .await;
    env.claim_with("apps", "other", "del", on("node-a")).await;
    let live_pv = env.wait_bound("apps", "live").await;
    let del_pv = env.wait_bound("apps", "gone-del").await;
    let keep_pv = env.wait_bound("apps", "gone-keep").await;
    let other_pv = env.wait_bound("apps", "other").await;
    let other_volume = placement(&env.pvs().get(&other_pv).await.expect("pv")).1;
    assert!(env.agent("node-c").volumes_on_disk().len() == 3);

    // node-c goes away: its agent first (as with its machine), then two
    // claims are deleted, then the Node object.
    env.agent("node-c").kill();
    for c in ["gone-del", "gone-keep"] {
        env.claims("apps")
            .delete(c, &DeleteParams::default())
            .await
            .expect("delete claim");
    }
    Api::<Node>::all(env.client.clone())
        .delete("node-c", &DeleteParams::default())
        .await
        .expect("delete node");

    // Its capacity objects go with it (owned by the Node).
    env.wait(
        "node-c's capacity objects gone",
        Duration::from_secs(60),
        || async {
            let left = capacity_table(&env)
                .await
                .keys()
                .filter(|(n, _)| n == "node-c")
                .count();
            (left == 0).then_some(())
        },
    )
    .await;
    // The deleted claim's Delete volume: its PV is removed.
    env.wait_pv_gone(&del_pv).await;
    // The live claim: told, nothing removed.
    env.wait(
        "NodeLost on the live claim",
        Duration::from_secs(60),
        || async {
            env.events_for("apps", "live")
                .await
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("NodeLost"))
        },
    )
    .await;
    assert!(env.pvs().get_opt(&live_pv).await.expect("get").is_some());
    // Retain: kept, Released, with an event.
    env.wait(
        "NodeLost on the kept PV",
        Duration::from_secs(60),
        || async {
            env.events_for("default", &keep_pv)
                .await
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("NodeLost"))
        },
    )
    .await;
    let kept = env.pvs().get(&keep_pv).await.expect("kept PV");
    assert_eq!(
        kept.status.and_then(|s| s.phase).as_deref(),
        Some("Released")
    );
    // Once the live claim is deleted too, its PV goes.
    env.claims("apps")
        .delete("live", &DeleteParams::default())
        .await
        .expect("delete live");
    env.wait_pv_gone(&live_pv).await;

    // node-a: untouched.
    let other = env.pvs().get(&other_pv).await.expect("other PV");
    assert_eq!(other.status.and_then(|s| s.phase).as_deref(), Some("Bound"));
    assert_eq!(env.agent("node-a").volumes_on_disk(), [other_volume]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_below_its_file_systems_minimum_gets_a_volume_of_the_minimum() {
    let mut env = Cluster::start_node_local(&[NodeSpec::new("node-a", "4Gi")]).await;
    env.berth.add_controller(&[]).expect("controller");
    env.namespace("apps").await;
    env.class(
        "xfs",
        "Immediate",
        "Delete",
        json!({ "csi.storage.k8s.io/fstype": "xfs" }),
    )
    .await;
    env.wait_capacities("xfs").await;
    env.claim("apps", "small", "xfs").await;
    let pv = env.wait_bound("apps", "small").await;
    let pv = env.pvs().get(&pv).await.expect("pv");
    let capacity = pv
        .spec
        .and_then(|s| s.capacity)
        .and_then(|c| c.get("storage").cloned())
        .map(|q| q.0);
    assert_eq!(
        capacity.as_deref(),
        Some("300Mi"),
        "the 64Mi claim's xfs volume has xfs's minimum, written canonically"
    );
    wait_capacity(&env, "node-a", "xfs", "3796Mi").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_deleted_claims_deletes_each_volume_once() {
    // Reclaim races the PV's other writers (the binder's status, pv-protection);
    // a conflict must be retried on the PV, never by deleting the volume again.
    let mut env = Cluster::start_node_local(&[NodeSpec::new("node-a", "8Gi")]).await;
    env.berth.add_controller(&[]).expect("controller");
    env.namespace("burst").await;
    env.class("local", "Immediate", "Delete", json!({})).await;
    env.wait_capacities("local").await;
    const N: usize = 30;
    for i in 0..N {
        env.claim("burst", &format!("c{i}"), "local").await;
    }
    for i in 0..N {
        env.wait_bound("burst", &format!("c{i}")).await;
    }
    env.claims("burst")
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("delete claims");
    env.wait("every PV reclaimed", Duration::from_secs(120), || {
        let env = &env;
        async move { env.berth_pvs().await.is_empty().then_some(()) }
    })
    .await;
    let port = env.agent("node-a").metrics_port;
    let page = berth_tests::http_get(port, "/metrics").await;
    let calls: u64 = page
        .lines()
        .filter(|l| l.starts_with("berth_csi_rpc_total{method=\"DeleteVolume\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(
        calls,
        N as u64,
        "one DeleteVolume per volume; the agent's counters:\n{}",
        page.lines()
            .filter(|l| l.starts_with("berth_csi_rpc_total"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        env.agent("node-a").volumes_on_disk().is_empty(),
        "nothing left on disk"
    );
}

/// The orphan sweep deletes a volume named `pvc-<uid>` that has no PV and
/// no live claim of that uid once it has been one for the grace period,
/// counts it, and leaves alone a bound claim's volume, the volume of a live
/// claim that has no PV yet, and volumes berth did not name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orphan_sweep_deletes_only_orphans() {
    use berth_tests::csi_driver::create_volume;
    use csi_proto::controller_client::ControllerClient;

    let mut env = Cluster::start_node_local(&[]).await;
    env.add_node(
        NodeSpec::new("node-a", "8Gi"),
        &["--orphan-sweep-interval-secs=1", "--orphan-grace-secs=4"],
    )
    .await;
    env.berth.add_controller(&[]).expect("controller");
    env.namespace("sweep").await;
    env.class("local", "Immediate", "Delete", json!({})).await;
    env.wait_capacities("local").await;
    env.claim("sweep", "bound", "local").await;
    env.wait_bound("sweep", "bound").await;
    // A live claim that never gets a PV: its class does not exist.
    let waiting = env.claim("sweep", "waiting", "no-such-class").await;
    let waiting_uid = waiting.metadata.uid.clone().expect("uid");

    let socket = env.agent("node-a").socket();
    let channel = csi_proto::connect_unix(socket).await.expect("agent socket");
    let mut ctrl = ControllerClient::new(channel);
    let orphan = create_volume(
        &mut ctrl,
        "pvc-00000000-dead-beef-0000-000000000001",
        "",
        1 << 20,
        None,
    )
    .await;
    let of_live_claim =
        create_volume(&mut ctrl, &format!("pvc-{waiting_uid}"), "", 1 << 20, None).await;
    let foreign = create_volume(&mut ctrl, "made-by-hand", "", 1 << 20, None).await;
    let created = std::time::Instant::now();

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while env
        .agent("node-a")
        .volumes_on_disk()
        .contains(&orphan.volume_id)
    {
        if std::time::Instant::now() >= deadline {
            let ready = berth_tests::http_get(env.agent("node-a").metrics_port, "/readyz").await;
            eprintln!("agent /readyz: {ready}");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the orphan {} was not swept; the agent's sweep said:\n{}",
            orphan.volume_id,
            env.agent("node-a")
                .all_logs()
                .lines()
                .filter(|l| l.contains("sweep") || l.contains("orphan"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        created.elapsed() >= Duration::from_secs(4),
        "deleted before its grace period: {:?}",
        created.elapsed()
    );
    // Several more sweeps: nothing else goes.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let on_disk = env.agent("node-a").volumes_on_disk();
    for kept in [&of_live_claim.volume_id, &foreign.volume_id] {
        assert!(on_disk.contains(kept), "{kept} was deleted: {on_disk:?}");
    }
    let bound_pv = env.pvs_for("sweep", "bound").await;
    assert_eq!(bound_pv.len(), 1);
    let handle = placement(&bound_pv[0]).1;
    assert!(on_disk.contains(&handle), "the bound claim's volume stays");
    let page = berth_tests::http_get(env.agent("node-a").metrics_port, "/metrics").await;
    assert!(
        page.lines()
            .any(|l| l == "berth_orphaned_volumes_deleted_total 1"),
        "{}",
        page.lines()
            .filter(|l| l.contains("orphaned"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        env.agent("node-a")
            .all_logs()
            .contains("deleted an orphaned volume"),
        "the deletion is logged"
    );
}
