//! Table-driven cases for berth's scheduling of pods without a node: each
//! filter of the scheduler rejecting nodes with its own words, the
//! aggregated FailedScheduling message, the choice among feasible nodes,
//! and the pod's WaitForFirstConsumer claims bound or provisioned on the
//! chosen node, pods one at a time with each decision visible to the next.

use berth::binding::{Options, Plan, plan_with};
use berth_tests::*;

const RWO: &[&str] = &["ReadWriteOnce"];
const HOST: &str = "kubernetes.io/hostname";

/// A node; `extra_spec`/`status` are appended under `spec:`/as `status:`.
fn node(name: &str, labels: &[(&str, &str)], spec: &str, status: &str) -> String {
    let mut l = format!("    {HOST}: {name}\n");
    for (k, v) in labels {
        l.push_str(&format!("    {k}: {v}\n"));
    }
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n{l}spec:\n{spec}\nstatus:\n{status}\n---\n"
    )
}

fn allocatable(cpu: &str, memory: &str, pods: u32) -> String {
    format!("  allocatable:\n    cpu: \"{cpu}\"\n    memory: {memory}\n    pods: \"{pods}\"\n")
}

/// A local PV on `node`.
fn local_pv(name: &str, size: &str, node: &str) -> String {
    pv(
        name,
        size,
        RWO,
        "local",
        &format!(
            "  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      - matchExpressions:\n        - key: {HOST}\n          operator: In\n          values: [{node}]"
        ),
    )
}

/// A pod without a node using `claims`; `spec` is appended under `spec:`.
fn pod(name: &str, claims: &[&str], spec: &str) -> String {
    let vols: String = claims
        .iter()
        .enumerate()
        .map(|(i, c)| format!("  - name: v{i}\n    persistentVolumeClaim:\n      claimName: {c}\n"))
        .collect();
    let vols = if vols.is_empty() {
        String::new()
    } else {
        format!("  volumes:\n{vols}")
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  containers:\n  - name: c\n    image: i\n{spec}\n{vols}---\n"
    )
}

fn requests(cpu: &str, memory: &str) -> String {
    format!("    resources:\n      requests:\n        cpu: \"{cpu}\"\n        memory: {memory}")
}

fn wffc(name: &str, provisioner: &str, extra: &str) -> String {
    class(
        name,
        provisioner,
        &format!("volumeBindingMode: WaitForFirstConsumer\n{extra}"),
    )
}

/// (pod, node or "-", reason or "") for every scheduled pod.
fn scheduled(p: &Plan) -> Vec<(String, String, String)> {
    p.scheduling
        .iter()
        .map(|s| {
            (
                s.pod.name.clone(),
                s.node.clone().unwrap_or_else(|| "-".into()),
                s.reason.clone().unwrap_or_default(),
            )
        })
        .collect()
}

fn run(name: &str, yaml: &str, want: &[(&str, &str, &str)]) -> Plan {
    let p = plan(yaml);
    let got = scheduled(&p);
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want, "{name}");
    p
}

#[test]
fn each_filter_rejects_with_the_schedulers_words() {
    let local = wffc("local", "kubernetes.io/no-provisioner", "");
    let claim = pvc("data", "5Gi", RWO, Some("local"), "");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "cordoned",
            node("n1", &[], "  unschedulable: true", ""),
            "0/1 nodes are available: 1 node(s) were unschedulable.",
        ),
        (
            "untolerated NoSchedule taint",
            node(
                "n1",
                &[],
                "  taints:\n  - key: dedicated\n    value: db\n    effect: NoSchedule",
                "",
            ),
            "0/1 nodes are available: 1 node(s) had untolerated taint(s).",
        ),
        (
            "node selector",
            node("n1", &[("disk", "hdd")], "", ""),
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
        ),
        (
            "too many pods and cpu",
            node("n1", &[("disk", "ssd")], "", &allocatable("1", "1Gi", 0)),
            "0/1 nodes are available: 1 Insufficient cpu, 1 Too many pods.",
        ),
        (
            "no local volume on the node",
            node("n1", &[("disk", "ssd")], "", ""),
            "0/1 nodes are available: 1 node(s) didn't find available persistent volumes to bind.",
        ),
    ];
    for (name, n, want) in cases {
        let spec = format!("{}\n  nodeSelector:\n    disk: ssd", requests("2", "1Gi"));
        let yaml = format!("{local}{claim}{n}{}", pod("web", &["data"], &spec));
        let p = run(name, &yaml, &[("web", "-", want)]);
        assert!(
            pending_reason(&p, "default/data").is_some_and(|r| r.contains("web")),
            "{name}: the claim still waits for its pod: {:?}",
            p.pending
        );
    }
}

#[test]
fn the_aggregate_counts_each_nodes_first_failing_filter() {
    let yaml = format!(
        "{}{}{}{}{}{}{}",
        wffc("local", "kubernetes.io/no-provisioner", ""),
        pvc("data", "5Gi", RWO, Some("local"), ""),
        local_pv("small", "1Gi", "n1"),
        node("n1", &[], "", ""),
        node("n2", &[], "  unschedulable: true", ""),
        node(
            "n3",
            &[],
            "  taints:\n  - key: gpu\n    effect: NoExecute",
            ""
        ),
        pod("web", &["data"], "")
    );
    let p = run(
        "three ways",
        &yaml,
        &[(
            "web",
            "-",
            "0/3 nodes are available: 1 node(s) didn't find available persistent volumes to bind, 1 node(s) had untolerated taint(s), 1 node(s) were unschedulable.",
        )],
    );
    assert!(
        p.scheduling[0].rejected.is_empty(),
        "verdicts only on demand"
    );
    // explain's view: every node with the filter that rejected it.
    let verdicts = plan_with(
        &snapshot(&yaml),
        &Options {
            node_verdicts: true,
            ..Options::default()
        },
    );
    let got: Vec<(String, &str)> = verdicts.scheduling[0]
        .rejected
        .iter()
        .map(|v| (v.node.clone(), v.filter))
        .collect();
    assert_eq!(
        got,
        [
            ("n1".to_string(), "VolumeBinding"),
            ("n2".to_string(), "NodeUnschedulable"),
            ("n3".to_string(), "TaintToleration"),
        ]
    );
}

#[test]
fn a_pod_goes_where_its_volume_can_be_and_binds_it() {
    let yaml = format!(
        "{}{}{}{}{}{}{}",
        wffc("local", "kubernetes.io/no-provisioner", ""),
        pvc("data", "5Gi", RWO, Some("local"), ""),
        local_pv("pv-a", "10Gi", "a"),
        local_pv("pv-b", "6Gi", "b"),
        node("a", &[], "", ""),
        node("b", &[], "", ""),
        pod("web", &["data"], "")
    );
    // Both nodes fit; both run no pods: the first by name wins, and the
    // claim takes that node's volume.
    let p = run("two nodes", &yaml, &[("web", "a", "")]);
    assert_eq!(p.scheduling[0].feasible_nodes, 2);
    assert_eq!(bound_volume(&p, "default/data").as_deref(), Some("pv-a"));
    assert_eq!(pending_reason(&p, "default/data"), None);
}

#[test]
fn each_pod_sees_the_decisions_before_it() {
    // One local volume per node; three pods with a claim each: the third
    // finds no volume left anywhere.
    let mut yaml = wffc("local", "kubernetes.io/no-provisioner", "");
    for n in ["a", "b"] {
        yaml.push_str(&node(n, &[], "", ""));
        yaml.push_str(&local_pv(&format!("pv-{n}"), "10Gi", n));
    }
    for i in 1..=3 {
        yaml.push_str(&pvc(&format!("data-{i}"), "1Gi", RWO, Some("local"), ""));
        yaml.push_str(&pod(&format!("web-{i}"), &[&format!("data-{i}")], ""));
    }
    let p = run(
        "spread",
        &yaml,
        &[
            ("web-1", "a", ""),
            ("web-2", "b", ""),
            (
                "web-3",
                "-",
                "0/2 nodes are available: 2 node(s) didn't find available persistent volumes to bind.",
            ),
        ],
    );
    assert_eq!(bound_volume(&p, "default/data-1").as_deref(), Some("pv-a"));
    assert_eq!(bound_volume(&p, "default/data-2").as_deref(), Some("pv-b"));
    assert!(pending_reason(&p, "default/data-3").is_some());
}

#[test]
fn resources_fill_up_pod_by_pod() {
    let mut yaml = String::new();
    yaml.push_str(&node("a", &[], "", &allocatable("2", "4Gi", 110)));
    // A running pod already takes 1.5 CPUs on a.
    yaml.push_str(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: running\n  namespace: default\nspec:\n  nodeName: a\n  containers:\n  - name: c\n    image: i\n{}\n---\n",
        requests("1500m", "1Gi")
    ));
    yaml.push_str(&node("b", &[], "", &allocatable("1", "4Gi", 110)));
    yaml.push_str(&pod("p1", &[], &requests("800m", "1Gi")));
    yaml.push_str(&pod("p2", &[], &requests("800m", "1Gi")));
    run(
        "cpu",
        &yaml,
        &[
            ("p1", "b", ""),
            ("p2", "-", "0/2 nodes are available: 2 Insufficient cpu."),
        ],
    );
}

#[test]
fn provisioning_follows_allowed_topologies_and_the_chosen_node() {
    let yaml = format!(
        "{}{}{}{}{}",
        wffc(
            "zonal",
            "ebs.csi.aws.com",
            "allowedTopologies:\n- matchLabelExpressions:\n  - key: zone\n    values: [z2]"
        ),
        pvc("data", "5Gi", RWO, Some("zonal"), ""),
        node("a", &[("zone", "z1")], "", ""),
        node("b", &[("zone", "z2")], "", ""),
        pod("web", &["data"], "")
    );
    let p = run("zone", &yaml, &[("web", "b", "")]);
    assert_eq!(provisioned(&p, "default/data"), Some(Some("b".into())));
}

#[test]
fn prefilter_failures_rule_out_every_node() {
    let rwop = &["ReadWriteOncePod"];
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "claim missing",
            pod("web", &["nope"], ""),
            "0/1 nodes are available: persistentvolumeclaim \"nope\" not found.",
        ),
        (
            "unbound immediate claim",
            format!(
                "{}{}",
                pvc("imm", "1Gi", RWO, Some("nowhere"), ""),
                pod("web", &["imm"], "")
            ),
            "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.",
        ),
        (
            "ReadWriteOncePod in use",
            format!(
                "{}{}apiVersion: v1\nkind: Pod\nmetadata:\n  name: first\n  namespace: default\nspec:\n  nodeName: n1\n  containers:\n  - name: c\n    image: i\n  volumes:\n  - name: v\n    persistentVolumeClaim:\n      claimName: solo\n---\n{}",
                pv(
                    "pv-solo",
                    "1Gi",
                    rwop,
                    "",
                    "  claimRef:\n    namespace: default\n    name: solo"
                ),
                pvc("solo", "1Gi", rwop, Some(""), "  volumeName: pv-solo"),
                pod("web", &["solo"], "")
            ),
            "0/1 nodes are available: node(s) unavailable due to PersistentVolumeClaim with ReadWriteOncePod access mode already in-use by another pod.",
        ),
    ];
    for (name, docs, want) in cases {
        let yaml = format!("{}{docs}", node("n1", &[], "", ""));
        run(name, &yaml, &[("web", "-", want)]);
    }
    run(
        "no nodes",
        &pod("web", &[], ""),
        &[("web", "-", "no nodes available to schedule pods")],
    );
}

#[test]
fn a_bound_volume_pins_its_pod_and_its_zone_must_match() {
    let bound = |labels: &str| {
        format!(
            "{}{}",
            pv(
                "pv-1",
                "1Gi",
                RWO,
                "",
                &format!("  claimRef:\n    namespace: default\n    name: data{labels}")
            ),
            pvc("data", "1Gi", RWO, Some(""), "  volumeName: pv-1")
        )
    };
    let nodes = format!(
        "{}{}",
        node("a", &[("topology.kubernetes.io/zone", "z1")], "", ""),
        node("b", &[("topology.kubernetes.io/zone", "z2")], "", "")
    );
    // Node affinity on the volume: only b.
    let affinity = "\n  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      - matchExpressions:\n        - key: topology.kubernetes.io/zone\n          operator: In\n          values: [z2]";
    run(
        "affinity",
        &format!("{nodes}{}{}", bound(affinity), pod("web", &["data"], "")),
        &[("web", "b", "")],
    );
    // Zone labels on the volume (no affinity): VolumeZone keeps it to b.
    let labelled = format!("{nodes}{}{}", bound(""), pod("web", &["data"], ""))
        .replace(
            "kind: PersistentVolume\nmetadata:\n  name: pv-1\n",
            "kind: PersistentVolume\nmetadata:\n  name: pv-1\n  labels:\n    topology.kubernetes.io/zone: z2\n",
        );
    assert!(labelled.contains("zone: z2\nspec"));
    run("zone", &labelled, &[("web", "b", "")]);
}

#[test]
fn volume_limits_count_the_pods_already_on_a_node() {
    let csinode = |n: &str, count: u32| {
        format!(
            "apiVersion: storage.k8s.io/v1\nkind: CSINode\nmetadata:\n  name: {n}\nspec:\n  drivers:\n  - name: ebs.csi.aws.com\n    nodeID: {n}\n    allocatable:\n      count: {count}\n---\n"
        )
    };
    let mut yaml = wffc("ebs", "ebs.csi.aws.com", "");
    for n in ["a", "b"] {
        yaml.push_str(&node(n, &[], "", ""));
        yaml.push_str(&csinode(n, 1));
    }
    // a already has one EBS volume in use.
    yaml.push_str(&pv(
        "pv-used",
        "1Gi",
        RWO,
        "ebs",
        "  claimRef:\n    namespace: default\n    name: used\n  csi:\n    driver: ebs.csi.aws.com\n    volumeHandle: vol-1",
    ));
    yaml.push_str(&pvc(
        "used",
        "1Gi",
        RWO,
        Some("ebs"),
        "  volumeName: pv-used",
    ));
    yaml.push_str(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: running\n  namespace: default\nspec:\n  nodeName: a\n  containers:\n  - name: c\n    image: i\n  volumes:\n  - name: v\n    persistentVolumeClaim:\n      claimName: used\n---\n",
    );
    for i in 1..=2 {
        yaml.push_str(&pvc(&format!("d{i}"), "1Gi", RWO, Some("ebs"), ""));
        yaml.push_str(&pod(&format!("p{i}"), &[&format!("d{i}")], ""));
    }
    // The pod already on a has the fewest pods elsewhere: p1 goes to b,
    // then both nodes are full.
    let p = run(
        "limits",
        &yaml,
        &[
            ("p1", "b", ""),
            (
                "p2",
                "-",
                "0/2 nodes are available: 2 node(s) exceed max volume count.",
            ),
        ],
    );
    assert!(p.violations.is_empty(), "{:?}", p.violations);
}

#[test]
fn a_statefulsets_pods_are_scheduled_from_its_template() {
    // Three nodes with a local volume each: b is tainted (the set does not
    // tolerate it), c's volume is too small. Only a can take a replica.
    let mut yaml = wffc("local", "kubernetes.io/no-provisioner", "");
    yaml.push_str(&node("a", &[], "", ""));
    yaml.push_str(&node(
        "b",
        &[],
        "  taints:\n  - key: dedicated\n    value: batch\n    effect: NoSchedule",
        "",
    ));
    yaml.push_str(&node("c", &[], "", ""));
    yaml.push_str(&local_pv("pv-a", "10Gi", "a"));
    yaml.push_str(&local_pv("pv-b", "10Gi", "b"));
    yaml.push_str(&local_pv("pv-c", "1Gi", "c"));
    let set = |tolerate: &str| {
        format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: web\n  namespace: default\nspec:\n  replicas: 2\n  serviceName: web\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n{tolerate}      containers:\n      - name: c\n        image: i\n  volumeClaimTemplates:\n  - metadata:\n      name: data\n    spec:\n      accessModes: [ReadWriteOnce]\n      storageClassName: local\n      resources:\n        requests:\n          storage: 5Gi\n---\n"
        )
    };
    let p = run(
        "no toleration",
        &format!("{yaml}{}", set("")),
        &[
            ("web-0", "a", ""),
            (
                "web-1",
                "-",
                "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 node(s) didn't find available persistent volumes to bind.",
            ),
        ],
    );
    assert_eq!(
        bound_volume(&p, "default/data-web-0").as_deref(),
        Some("pv-a")
    );
    assert!(
        pending_reason(&p, "default/data-web-1").is_some_and(|r| r.contains("web-1")),
        "{:?}",
        p.pending
    );
    // Tolerating the taint, the second replica gets b and its volume.
    let p = run(
        "toleration",
        &format!(
            "{yaml}{}",
            set(
                "      tolerations:\n      - key: dedicated\n        operator: Equal\n        value: batch\n        effect: NoSchedule\n"
            )
        ),
        &[("web-0", "a", ""), ("web-1", "b", "")],
    );
    assert_eq!(
        bound_volume(&p, "default/data-web-1").as_deref(),
        Some("pv-b")
    );
}
