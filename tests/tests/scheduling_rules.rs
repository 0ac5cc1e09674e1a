//! Table-driven cases for berth's scheduling of pods without a node: each
//! filter of the scheduler rejecting nodes with its own words, the
//! aggregated FailedScheduling message, the choice among feasible nodes,
//! and the pod's WaitForFirstConsumer claims bound or provisioned on the
//! chosen node, pods one at a time with each decision visible to the next.

use berth::binding::Plan;
use berth_tests::scheduling::{self as sched, pod, scheduled};
use berth_tests::*;

const RWO: &[&str] = &["ReadWriteOnce"];
const HOST: &str = "kubernetes.io/hostname";

/// A node labelled with its hostname, as the kubelet labels it.
fn node(name: &str, labels: &[(&str, &str)], spec: &str, status: &str) -> String {
    let mut all = vec![(HOST, name)];
    all.extend_from_slice(labels);
    sched::node(name, &all, spec, status)
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
    let verdicts = sched::plan_with_verdicts(&yaml);
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

// The talk's taints, tolerations and affinity examples
// (`../shared/seeds/000_52c81f18e7231a0f.txt`, "Tainted Love" and "Node
// Selector and Affinity"), each as the scheduler would judge it.

/// Three nodes, one per taint effect of the talk, all `dedicated=db`.
fn tainted_nodes() -> String {
    ["PreferNoSchedule", "NoSchedule", "NoExecute"]
        .iter()
        .map(|effect| {
            node(
                &effect.to_lowercase(),
                &[],
                &sched::taints(&[("dedicated", "db", effect)]),
                "",
            )
        })
        .collect()
}

#[test]
fn the_talks_taint_effects() {
    // PreferNoSchedule only scores: an intolerant pod still fits there;
    // NoSchedule and NoExecute both keep it off.
    let yaml = format!("{}{}", tainted_nodes(), pod("web", &[], ""));
    run("intolerant", &yaml, &[("web", "prefernoschedule", "")]);
    let p = sched::plan_with_verdicts(&yaml);
    for n in ["noschedule", "noexecute"] {
        assert_eq!(
            sched::verdict(&p, "web", n),
            Some((
                "TaintToleration".to_string(),
                vec!["node(s) had untolerated taint(s)".to_string()]
            )),
            "{n}"
        );
    }
    assert_eq!(sched::verdict(&p, "web", "prefernoschedule"), None);
    assert_eq!(p.scheduling[0].feasible_nodes, 1);
}

#[test]
fn the_talks_tolerations() {
    let tol = |key, operator, value, effect| sched::Tol {
        key,
        operator,
        value,
        effect,
    };
    // (case, tolerations, the nodes that fit), over the three tainted nodes.
    let cases: Vec<(&str, Vec<sched::Tol<'_>>, usize)> = vec![
        (
            "Equal with the taint's value and effect tolerates that effect only",
            vec![tol("dedicated", "Equal", "db", "NoSchedule")],
            2,
        ),
        (
            "Equal with another value tolerates nothing",
            vec![tol("dedicated", "Equal", "web", "")],
            1,
        ),
        (
            "Exists tolerates the key whatever its value, for its effect",
            vec![tol("dedicated", "Exists", "", "NoExecute")],
            2,
        ),
        (
            "an omitted effect matches every effect of the key and value",
            vec![tol("dedicated", "Equal", "db", "")],
            3,
        ),
        (
            "Exists without an effect tolerates every taint of the key",
            vec![tol("dedicated", "Exists", "", "")],
            3,
        ),
        (
            "an effect that is not the taint's does not tolerate it",
            vec![tol("dedicated", "Equal", "db", "PreferNoSchedule")],
            1,
        ),
        (
            "one toleration per effect",
            vec![
                tol("dedicated", "Equal", "db", "NoSchedule"),
                tol("dedicated", "Exists", "", "NoExecute"),
            ],
            3,
        ),
    ];
    for (name, tols, feasible) in cases {
        let yaml = format!(
            "{}{}",
            tainted_nodes(),
            pod("web", &[], &sched::tolerations(&tols))
        );
        let p = plan(&yaml);
        assert_eq!(p.scheduling[0].feasible_nodes, feasible, "{name}");
        assert!(p.scheduling[0].node.is_some(), "{name}");
    }
}

/// The talk's `with-node-affinity` pod (its YAML, with the list the slide
/// broke across lines put back): required `kubernetes.io/e2e-az-name In
/// (e2e-az1, e2e-az2)`, preferred `another-node-label-key In
/// (another-node-label-value)`.
const WITH_NODE_AFFINITY: &str = "apiVersion: v1
kind: Pod
metadata:
  name: with-node-affinity
  namespace: default
spec:
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - key: kubernetes.io/e2e-az-name
            operator: In
            values:
            - e2e-az1
            - e2e-az2
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 1
        preference:
          matchExpressions:
          - key: another-node-label-key
            operator: In
            values:
            - another-node-label-value
  containers:
  - name: with-node-affinity
    image: k8s.gcr.io/pause:2.0
---
";

#[test]
fn the_talks_node_affinity_pod() {
    const AZ: &str = "kubernetes.io/e2e-az-name";
    const PREFERRED: (&str, &str) = ("another-node-label-key", "another-node-label-value");
    // The preferred label is on a node outside the required zones: it does
    // not make that node feasible; the zone node without it is the one.
    let nodes = format!(
        "{}{}{}",
        node("az1", &[(AZ, "e2e-az1")], "", ""),
        node("az3", &[(AZ, "e2e-az3"), PREFERRED], "", ""),
        node("unlabelled", &[], "", "")
    );
    let yaml = format!("{nodes}{WITH_NODE_AFFINITY}");
    run("zones", &yaml, &[("with-node-affinity", "az1", "")]);
    let p = sched::plan_with_verdicts(&yaml);
    for n in ["az3", "unlabelled"] {
        assert_eq!(
            sched::verdict(&p, "with-node-affinity", n).map(|v| v.0),
            Some("NodeAffinity".to_string()),
            "{n}"
        );
    }
    // Without a node in e2e-az1 or e2e-az2, the preferred term does not help.
    let yaml = format!(
        "{}{WITH_NODE_AFFINITY}",
        node("az3", &[(AZ, "e2e-az3"), PREFERRED], "", "")
    );
    run(
        "no zone",
        &yaml,
        &[(
            "with-node-affinity",
            "-",
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
        )],
    );
    // e2e-az2 is as good as e2e-az1; the preferred label decides nothing
    // among feasible nodes (berth's rule: fewest pods, then name).
    let yaml = format!(
        "{}{}{WITH_NODE_AFFINITY}",
        node("a-az2", &[(AZ, "e2e-az2")], "", ""),
        node("b-az1", &[(AZ, "e2e-az1"), PREFERRED], "", "")
    );
    let p = run("both zones", &yaml, &[("with-node-affinity", "a-az2", "")]);
    assert_eq!(p.scheduling[0].feasible_nodes, 2);
}

#[test]
fn the_talks_node_selector_pod() {
    let nginx = "apiVersion: v1
kind: Pod
metadata:
  name: nginx
  namespace: default
  labels:
    env: test
spec:
  containers:
  - name: nginx
    image: nginx
    imagePullPolicy: IfNotPresent
  nodeSelector:
    disktype: ssd
---
";
    let yaml = format!(
        "{}{}{nginx}",
        node("hdd", &[("disktype", "hdd")], "", ""),
        node("ssd", &[("disktype", "ssd")], "", "")
    );
    run("ssd", &yaml, &[("nginx", "ssd", "")]);
    let yaml = format!("{}{nginx}", node("hdd", &[("disktype", "hdd")], "", ""));
    run(
        "no ssd",
        &yaml,
        &[(
            "nginx",
            "-",
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.",
        )],
    );
}

/// The talk's `with-pod-affinity` pod: required podAffinity to pods
/// labelled `security=S1` in the same zone, preferred podAntiAffinity to
/// `security=S2`.
const WITH_POD_AFFINITY: &str = "apiVersion: v1
kind: Pod
metadata:
  name: with-pod-affinity
  namespace: default
spec:
  affinity:
    podAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
      - labelSelector:
          matchExpressions:
          - key: security
            operator: In
            values:
            - S1
        topologyKey: failure-domain.beta.kubernetes.io/zone
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          labelSelector:
            matchExpressions:
            - key: security
              operator: In
              values:
              - S2
          topologyKey: failure-domain.beta.kubernetes.io/zone
  containers:
  - name: with-pod-affinity
    image: k8s.gcr.io/pause:2.0
---
";

#[test]
fn required_inter_pod_affinity_is_not_evaluated_and_the_plan_says_so() {
    const ZONE: &str = "failure-domain.beta.kubernetes.io/zone";
    let nodes = format!(
        "{}{}",
        node("a", &[(ZONE, "z1")], "", ""),
        node("b", &[(ZONE, "z2")], "", "")
    );
    // No pod labelled security=S1 runs anywhere: the scheduler would keep
    // this pod pending. berth does not evaluate the term, predicts a node
    // and warns that the scheduler may refuse it.
    let p = run(
        "talk",
        &format!("{nodes}{WITH_POD_AFFINITY}"),
        &[("with-pod-affinity", "a", "")],
    );
    assert_eq!(
        sched::pod_warnings(&p, "default/with-pod-affinity"),
        [
            "Pod default/with-pod-affinity: requires podAffinity, which berth does not evaluate (inter-pod affinity): the scheduler may reject node \"a\", which berth predicts"
        ]
    );
    // Required anti-affinity is named as such; both kinds together too.
    let term = |kind: &str, app: &str| {
        format!(
            "    {kind}:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector:\n          matchLabels: {{app: {app}}}\n        topologyKey: {ZONE}\n"
        )
    };
    let cases = [
        ("podAntiAffinity", term("podAntiAffinity", "web")),
        (
            "podAffinity and podAntiAffinity",
            format!(
                "{}{}",
                term("podAffinity", "cache"),
                term("podAntiAffinity", "web")
            ),
        ),
    ];
    for (named, terms) in cases {
        let p = plan(&format!(
            "{nodes}{}",
            pod("web", &[], &format!("  affinity:\n{terms}"))
        ));
        assert_eq!(
            sched::pod_warnings(&p, "default/web"),
            [format!(
                "Pod default/web: requires {named}, which berth does not evaluate (inter-pod affinity): the scheduler may reject node \"a\", which berth predicts"
            )],
            "{terms}"
        );
    }
}

#[test]
fn an_unschedulable_pod_with_inter_pod_affinity_needs_no_warning() {
    // InterPodAffinity is the scheduler's last filter: nodes the others
    // reject stay rejected with the same words, so berth's verdict holds.
    let yaml = format!(
        "{}{}",
        node("a", &[], "  unschedulable: true", ""),
        WITH_POD_AFFINITY
    );
    let p = run(
        "cordoned",
        &yaml,
        &[(
            "with-pod-affinity",
            "-",
            "0/1 nodes are available: 1 node(s) were unschedulable.",
        )],
    );
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn a_statefulsets_required_pod_affinity_is_warned_per_pod() {
    let yaml = format!(
        "{}apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\n  namespace: default\nspec:\n  replicas: 2\n  serviceName: db\n  selector:\n    matchLabels: {{app: db}}\n  template:\n    metadata:\n      labels: {{app: db}}\n    spec:\n      affinity:\n        podAntiAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n          - labelSelector:\n              matchLabels: {{app: db}}\n            topologyKey: kubernetes.io/hostname\n      containers:\n      - name: c\n        image: i\n---\n",
        node("a", &[], "", "")
    );
    // Both replicas fit on a by every filter berth runs; the scheduler
    // would put the second nowhere (anti-affinity to the first on the
    // only host). berth says so for each.
    let p = run("set", &yaml, &[("db-0", "a", ""), ("db-1", "a", "")]);
    for pod in ["default/db-0", "default/db-1"] {
        assert_eq!(
            sched::pod_warnings(&p, pod).len(),
            1,
            "{pod}: {:?}",
            p.warnings
        );
    }
}

#[test]
fn a_running_pods_required_anti_affinity_is_warned_when_berth_places_pods() {
    let running = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: solo\n  namespace: default\n  labels: {app: solo}\nspec:\n  nodeName: a\n  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector:\n          matchLabels: {app: web}\n        topologyKey: kubernetes.io/hostname\n  containers:\n  - name: c\n    image: i\n---\n";
    let nodes = node("a", &[], "", "");
    // Nothing to place: nothing to warn about.
    let p = plan(&format!("{nodes}{running}"));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let p = run(
        "placed next to it",
        &format!("{nodes}{running}{}", pod("web", &[], "")),
        &[("web", "a", "")],
    );
    assert_eq!(
        sched::pod_warnings(&p, "default/solo"),
        [
            "Pod default/solo: requires podAntiAffinity, which berth does not evaluate (inter-pod affinity): the scheduler may keep the pods berth places from node \"a\" and its topology domain"
        ]
    );
    assert!(sched::pod_warnings(&p, "default/web").is_empty());
}

#[test]
fn preferred_terms_only_score_and_change_no_filter() {
    // Preferred node affinity, pod affinity and anti-affinity, and a
    // PreferNoSchedule taint: the same feasible nodes and choice as a pod
    // without them, and no warning.
    let preferred = "  affinity:
    nodeAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        preference:
          matchExpressions:
          - key: disktype
            operator: In
            values: [ssd]
    podAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 50
        podAffinityTerm:
          labelSelector:
            matchLabels: {app: cache}
          topologyKey: kubernetes.io/hostname
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          labelSelector:
            matchLabels: {app: web}
          topologyKey: kubernetes.io/hostname";
    let nodes = format!(
        "{}{}{}",
        node("a", &[("disktype", "hdd")], "", ""),
        node(
            "b",
            &[("disktype", "hdd")],
            &sched::taints(&[("spot", "", "PreferNoSchedule")]),
            ""
        ),
        node("c", &[("disktype", "ssd")], "  unschedulable: true", "")
    );
    let plain = plan(&format!("{nodes}{}", pod("web", &[], "")));
    let p = plan(&format!("{nodes}{}", pod("web", &[], preferred)));
    assert_eq!(scheduled(&p), scheduled(&plain));
    assert_eq!(scheduled(&p), [("web".into(), "a".into(), String::new())]);
    assert_eq!(p.scheduling[0].feasible_nodes, 2);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}
