//! Workloads on the real control plane with kube-scheduler and fake nodes:
//! a StatefulSet's claim templates provisioned where its pods are
//! scheduled, and a node at its CSI volume limit never given a second
//! volume, whether the scheduler or a stale `selected-node` sends it there.
//!
//! The fake nodes have no kubelet, so pods never run; scheduling, binding
//! and provisioning all happen. berth's driver lives on `node-a` only, so
//! the classes here are limited to it with `allowedTopologies`, as an
//! operator would limit them to the nodes berth runs on.

use std::time::Duration;

use berth_tests::control_plane::{Cluster, DRIVER, TOPOLOGY_KEY, affinity_nodes};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde_json::json;

const NODE_A: &str = "node-a";
const NODE_B: &str = "node-b";
const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// `node-a` with berth (driver and a controller), `node-b` without.
async fn start() -> Cluster {
    let mut env = Cluster::start(&[NODE_A, NODE_B]).await;
    env.berth.add_controller(&[]).expect("start the controller");
    env
}

/// A WaitForFirstConsumer class limited to the node berth runs on.
async fn local_class(env: &Cluster, name: &str) {
    env.class_with(
        name,
        "WaitForFirstConsumer",
        "Delete",
        json!({ "allowedTopologies": [{ "matchLabelExpressions": [
            { "key": TOPOLOGY_KEY, "values": [NODE_A] },
        ]}]}),
    )
    .await
}

/// The node a pod was bound to, once it is.
async fn scheduled_node(env: &Cluster, ns: &str, pod: &str) -> String {
    let pods = env.pods(ns);
    env.wait(
        &format!("pod {ns}/{pod} scheduled"),
        Duration::from_secs(60),
        || {
            let pods = pods.clone();
            async move { pods.get(pod).await.ok()?.spec?.node_name }
        },
    )
    .await
}

/// How many of berth's PVs each node holds, from their node affinity.
async fn volumes_per_node(env: &Cluster) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for pv in env.berth_pvs().await {
        for node in affinity_nodes(&pv) {
            *counts.entry(node).or_insert(0) += 1;
        }
    }
    counts.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_claims_are_provisioned_on_their_pods_nodes() {
    let env = start().await;
    env.namespace("db").await;
    local_class(&env, "local").await;
    const REPLICAS: usize = 3;
    // Parallel: OrderedReady would wait for web-0 to run, which pods on
    // fake nodes never do.
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "serviceName": "web",
            "replicas": REPLICAS,
            "podManagementPolicy": "Parallel",
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{
                    "name": "app",
                    "image": "registry.invalid/app:1",
                    "volumeMounts": [{ "name": "data", "mountPath": "/data" }],
                }]},
            },
            "volumeClaimTemplates": [{
                "metadata": { "name": "data" },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "local",
                    "resources": { "requests": { "storage": "64Mi" } },
                },
            }],
        }
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(env.client.clone(), "db")
        .create(&PostParams::default(), &sts)
        .await
        .expect("statefulset");

    for i in 0..REPLICAS {
        let claim = format!("data-web-{i}");
        let pv_name = env.wait_bound("db", &claim).await;
        let node = scheduled_node(&env, "db", &format!("web-{i}")).await;
        let pv = env.pvs().get(&pv_name).await.unwrap();
        assert_eq!(
            pv.annotations()
                .get("pv.kubernetes.io/provisioned-by")
                .map(String::as_str),
            Some(DRIVER),
            "{claim}: made by berth"
        );
        assert_eq!(
            affinity_nodes(&pv),
            [node.as_str()],
            "{claim}: the volume is on web-{i}'s node"
        );
        let selected = env.claims("db").get(&claim).await.unwrap();
        assert_eq!(
            selected.annotations().get(SELECTED_NODE),
            Some(&node),
            "{claim}: provisioned for the node the scheduler picked"
        );
    }
    assert_eq!(env.berth_pvs().await.len(), REPLICAS, "one PV per replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_at_its_volume_limit_gets_no_second_volume() {
    let env = start().await;
    env.cp
        .register_csi_node(NODE_A, DRIVER, NODE_A, &[TOPOLOGY_KEY], Some(1))
        .await
        .expect("CSINode with a limit of 1");
    env.namespace("full").await;
    local_class(&env, "local").await;

    // The first volume fills node-a.
    env.claim("full", "first", "local").await;
    env.pod("full", "first", "first", json!({})).await;
    env.wait_bound("full", "first").await;
    assert_eq!(scheduled_node(&env, "full", "first").await, NODE_A);

    // The scheduler counts it and finds no node for a second one: node-a
    // is full and the class does not allow node-b.
    env.claim("full", "second", "local").await;
    env.pod("full", "second", "second", json!({})).await;
    let pods = env.pods("full");
    let why = env
        .wait(
            "the second pod Unschedulable",
            Duration::from_secs(60),
            || {
                let pods = pods.clone();
                async move {
                    let status = pods.get("second").await.ok()?.status?;
                    status.conditions?.into_iter().find_map(|c| {
                        (c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable"))
                            .then(|| c.message.unwrap_or_default())
                    })
                }
            },
        )
        .await;
    assert!(why.contains("max volume count"), "{why}");

    // A claim sent to node-a anyway (a stale scheduler decision): the
    // controller refuses it and hands it back by dropping selected-node.
    env.claim_with("full", "stale", "local", json!({ SELECTED_NODE: NODE_A }))
        .await;
    let claims = env.claims("full");
    env.wait(
        "selected-node dropped from the stale claim",
        Duration::from_secs(60),
        || {
            let claims = claims.clone();
            async move {
                let c = claims.get("stale").await.ok()?;
                (!c.annotations().contains_key(SELECTED_NODE)).then_some(())
            }
        },
    )
    .await;
    let events = env.events_for("full", "stale").await;
    assert!(
        events.iter().any(|e| {
            e.reason.as_deref() == Some("ProvisioningFailed")
                && e.message.as_deref().unwrap_or("").contains("volume limit")
        }),
        "a ProvisioningFailed event names the limit: {events:?}"
    );
    for claim in ["second", "stale"] {
        assert!(
            env.pvs_for("full", claim).await.is_empty(),
            "{claim} has no volume while node-a is full"
        );
    }
    assert_eq!(volumes_per_node(&env).await, [(NODE_A.to_string(), 1)]);

    // Room on node-a again: the waiting pod is scheduled there and its
    // claim provisioned.
    env.cp
        .register_csi_node(NODE_A, DRIVER, NODE_A, &[TOPOLOGY_KEY], Some(2))
        .await
        .expect("CSINode with a limit of 2");
    env.wait_bound("full", "second").await;
    assert_eq!(scheduled_node(&env, "full", "second").await, NODE_A);
    assert_eq!(volumes_per_node(&env).await, [(NODE_A.to_string(), 2)]);
    assert!(env.pvs_for("full", "stale").await.is_empty());
}
