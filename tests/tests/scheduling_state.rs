//! What one pod's scheduling leaves for the next: the volumes a node's
//! check holds for a trial are free again afterwards, and a volume bound
//! for one pod is gone for every node that could see it — its own node, the
//! other nodes of its zone, or every node when it has no node affinity —
//! while the nodes that could not see it keep what they had. (berth caches
//! what each node offers a claim of a given shape; these cases pin the
//! cache to the search it stands for.)

use berth_tests::scheduling::{self as sched, pod, scheduled};
use berth_tests::*;

const RWO: &[&str] = &["ReadWriteOnce"];
const HOST: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";

fn local_class() -> String {
    class(
        "local",
        "kubernetes.io/no-provisioner",
        "volumeBindingMode: WaitForFirstConsumer",
    )
}

fn node(name: &str, zone: &str) -> String {
    sched::node(name, &[(HOST, name), (ZONE, zone)], "", "")
}

/// A static PV of class `local` whose affinity is `key In [value]`.
fn pv_on(name: &str, size: &str, key: &str, value: &str) -> String {
    pv(
        name,
        size,
        RWO,
        "local",
        &format!(
            "  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      - matchExpressions:\n        - key: {key}\n          operator: In\n          values: [{value}]"
        ),
    )
}

fn claim(name: &str, size: &str) -> String {
    pvc(name, size, RWO, Some("local"), "")
}

fn row(pod: &str, node: &str, reason: &str) -> (String, String, String) {
    (pod.into(), node.into(), reason.into())
}

const NO_VOLUME_2: &str =
    "0/2 nodes are available: 2 node(s) didn't find available persistent volumes to bind.";

#[test]
fn volumes_held_by_one_nodes_trial_are_free_for_the_binding() {
    // Both claims fit the 10Gi volume, so the check of n1 holds it for the
    // smaller claim and finds the 20Gi one for the other; the binding that
    // follows must see both volumes again.
    let yaml = [
        local_class(),
        node("n1", "z1"),
        pv_on("pv-10", "10Gi", HOST, "n1"),
        pv_on("pv-20", "20Gi", HOST, "n1"),
        claim("a", "5Gi"),
        claim("b", "6Gi"),
        pod("p", &["a", "b"], ""),
    ]
    .concat();
    let p = plan(&yaml);
    assert_eq!(scheduled(&p), vec![row("p", "n1", "")]);
    assert_eq!(bound_volume(&p, "default/a").as_deref(), Some("pv-10"));
    assert_eq!(bound_volume(&p, "default/b").as_deref(), Some("pv-20"));
}

#[test]
fn a_volume_bound_for_one_pod_is_gone_from_its_node_only() {
    // One volume per node: the first pod takes n1's, the second n2's, and
    // the third finds none anywhere.
    let yaml = [
        local_class(),
        node("n1", "z1"),
        node("n2", "z1"),
        pv_on("pv-1", "10Gi", HOST, "n1"),
        pv_on("pv-2", "10Gi", HOST, "n2"),
        claim("a", "5Gi"),
        claim("b", "5Gi"),
        claim("c", "5Gi"),
        pod("p1", &["a"], ""),
        pod("p2", &["b"], ""),
        pod("p3", &["c"], ""),
    ]
    .concat();
    let p = plan(&yaml);
    assert_eq!(
        scheduled(&p),
        vec![
            row("p1", "n1", ""),
            row("p2", "n2", ""),
            row("p3", "-", NO_VOLUME_2)
        ]
    );
    assert_eq!(bound_volume(&p, "default/a").as_deref(), Some("pv-1"));
    assert_eq!(bound_volume(&p, "default/b").as_deref(), Some("pv-2"));
}

#[test]
fn a_zone_volume_bound_for_one_pod_is_gone_from_every_node_of_the_zone() {
    // pv-z reaches n1 and n2 (zone z1); once p1 has it on n1, p2 (same
    // shape) must not find it on n2, yet n3's own volume is still there.
    let yaml = [
        local_class(),
        node("n1", "z1"),
        node("n2", "z1"),
        node("n3", "z2"),
        pv_on("pv-z", "10Gi", ZONE, "z1"),
        pv_on("pv-3", "10Gi", HOST, "n3"),
        claim("a", "5Gi"),
        claim("b", "5Gi"),
        claim("c", "5Gi"),
        pod("p1", &["a"], ""),
        pod("p2", &["b"], ""),
        pod("p3", &["c"], ""),
    ]
    .concat();
    let p = plan(&yaml);
    assert_eq!(
        scheduled(&p),
        vec![
            row("p1", "n1", ""),
            row("p2", "n3", ""),
            row(
                "p3",
                "-",
                "0/3 nodes are available: 3 node(s) didn't find available persistent volumes to bind."
            )
        ]
    );
    assert_eq!(bound_volume(&p, "default/a").as_deref(), Some("pv-z"));
    assert_eq!(bound_volume(&p, "default/b").as_deref(), Some("pv-3"));
}

#[test]
fn a_volume_without_node_affinity_bound_for_one_pod_is_gone_everywhere() {
    let yaml = [
        local_class(),
        node("n1", "z1"),
        node("n2", "z2"),
        pv("pv-any", "10Gi", RWO, "local", ""),
        claim("a", "5Gi"),
        claim("b", "5Gi"),
        pod("p1", &["a"], ""),
        pod("p2", &["b"], ""),
    ]
    .concat();
    let p = plan(&yaml);
    assert_eq!(
        scheduled(&p),
        vec![row("p1", "n1", ""), row("p2", "-", NO_VOLUME_2)]
    );
    assert_eq!(bound_volume(&p, "default/a").as_deref(), Some("pv-any"));
}

#[test]
fn a_larger_request_sees_only_the_larger_volumes_left() {
    // Same shape, different requests: after p1 takes n1's 50Gi volume the
    // 40Gi claim of p2 fits only n2's; a 5Gi claim still fits n1's small one.
    let yaml = [
        local_class(),
        node("n1", "z1"),
        node("n2", "z1"),
        pv_on("pv-1-small", "10Gi", HOST, "n1"),
        pv_on("pv-1-big", "50Gi", HOST, "n1"),
        pv_on("pv-2-big", "50Gi", HOST, "n2"),
        claim("a", "45Gi"),
        claim("b", "40Gi"),
        claim("c", "5Gi"),
        pod("p1", &["a"], ""),
        pod("p2", &["b"], ""),
        pod("p3", &["c"], ""),
    ]
    .concat();
    let p = plan(&yaml);
    assert_eq!(
        scheduled(&p),
        vec![
            row("p1", "n1", ""),
            row("p2", "n2", ""),
            row("p3", "n1", "")
        ]
    );
    assert_eq!(bound_volume(&p, "default/a").as_deref(), Some("pv-1-big"));
    assert_eq!(bound_volume(&p, "default/b").as_deref(), Some("pv-2-big"));
    assert_eq!(bound_volume(&p, "default/c").as_deref(), Some("pv-1-small"));
}
