//! Upstream's scheduler volume plugin tests, ported case by case where they
//! are about nodes and the pods already on them.
//!
//! Ports `pkg/scheduler/framework/plugins/nodevolumelimits/csi_test.go`
//! (TestCSILimits). Upstream asks the NodeVolumeLimits filter whether a new
//! pod fits a node that already runs `existingPods`; berth's plan reports a
//! node whose pods use more volumes of a CSI driver than its CSINode allows.
//! So each case puts the existing pods and the new pod on the node, and
//! "Unschedulable (max volume count exceeded)" is ported as: the plan has a
//! violation on that node for a driver the new pod uses; "fits" as: none.
//!
//! Upstream's fixtures, rendered as manifests: for every driver of the case,
//! PVCs `csi-<driver>-<0..3>` bound to PVs of the same name (a CSI volume
//! of the driver; an in-tree AWS EBS or HostPath volume for those plugin
//! names); `csi-4` unbound with StorageClass `csi-sc` (provisioner: the
//! case's first driver), `csi-5` without class, `csi-6` naming a PV
//! `missing-in-action` that does not exist; node `node-for-max-pd-test-1`
//! with a CSINode listing the drivers with `allocatable.count` = maxVols
//! (`csinode`), without count (`csinode-with-no-limit`), or no CSINode.
//! Names with `/` (`csi-kubernetes.io/aws-ebs-0`) are not valid object
//! names, so `/` is written `-`; CSINode only lists real CSI driver names
//! (the API refuses `kubernetes.io/aws-ebs` there; in-tree volumes count
//! under the driver they migrate to). Upstream's pods have no names; they
//! get one each here.
//!
//! Also ports `pkg/scheduler/framework/plugins/volumebinding/binder_test.go`
//! (TestFindPodVolumesWithoutProvisioning, TestFindPodVolumesWithProvisioning,
//! TestFindPodVolumesWithCSIMigration, TestCapacity). Upstream's pods there already carry
//! `nodeName: node1` and the test asks what the binder does for them on
//! node1: the cases where upstream finds node1 fits (no conflict reasons,
//! no error) are ported as berth's plan for that pod on node1 — the same
//! static bindings and dynamic provisionings. Cases where node1 does not
//! fit are the scheduler's verdict for a pod it would place elsewhere: they
//! are ported through berth's scheduling of the same pod without a node,
//! node1 the only node, whose FailedScheduling message must carry
//! upstream's reason (upstream's `shouldFail` cases are the scheduler's
//! PreFilter refusals). Upstream runs each table
//! three times (no CSIDriver, CSIDriver with and without capacity
//! tracking); the outcomes the capacity check changes are noted per case.
//! Upstream's PVs and claims have no access modes or volume source; the
//! API server requires both, so they get ReadWriteOnce and a `local` source.
//! Upstream's class names (`waitClass`, `immediateClass`,
//! `waitClassWithProvisioner`, `topoMismatchClass`) are not valid object
//! names; they are written `wait-class`, `immediate-class`, …

use berth_tests::upstream::*;
use std::fmt::Write as _;

const NODE: &str = "node-for-max-pd-test-1";
const EBS: &str = "ebs.csi.aws.com";
const GCE: &str = "pd.csi.storage.gke.io";
const IN_TREE_EBS: &str = "kubernetes.io/aws-ebs";
const HOSTPATH: &str = "kubernetes.io/hostpath";

const NOT_APPLICABLE: &[(&str, &str)] = &[
    (
        "TestCSILimits/should count VolumeAttachments towards volume limit when no pods exist",
        "VolumeAttachment objects are not an input of berth's plan",
    ),
    (
        "TestCSILimits/should schedule pod when VolumeAttachments count does not exceed limit",
        "VolumeAttachment objects are not an input of berth's plan",
    ),
    (
        "TestCSILimits/ephemeral volume missing",
        "a pod's generic ephemeral claim is created by the ephemeral-volume controller, as berth's input expands it; the missing claim is a transient state",
    ),
    (
        "TestCSILimits/don't skip Filter when the pod has ephemeral volumes",
        "expects the 'PVC not found' status of a missing ephemeral claim, a transient state (see 'ephemeral volume missing')",
    ),
    (
        "TestCSILimits/persistent doesn't when node volume limit <= pods ephemeral CSI volume + persistent volume, ephemeral disabled",
        "GenericEphemeralVolume feature gate disabled: GA and locked on",
    ),
    (
        "TestCSILimits/skip Filter when the pod only uses secrets and configmaps",
        "asserts the PreFilter Skip status, a scheduler-internal shortcut; the outcome (fits) is covered by the other cases",
    ),
    (
        "TestCSILimitsQHint (all cases)",
        "queueing hints: scheduler-internal requeue decisions, not a cluster state",
    ),
    (
        "TestCSILimitsAddedPVCQHint (all cases)",
        "queueing hints: scheduler-internal requeue decisions, not a cluster state",
    ),
    (
        "TestCSILimitsDeletedVolumeAttachmentQHint (all cases)",
        "queueing hints: scheduler-internal requeue decisions, not a cluster state",
    ),
];

const PENDING_POD_SCHEDULING: &[(&str, &str)] = &[
    (
        "TestCSILimits/ephemeral volume not owned",
        "pending berth's pod scheduling prediction: the filter's error for a claim named like the pod's ephemeral claim but not owned by the pod",
    ),
    (
        "volumebinding/volume_binding_test.go (all tests)",
        "pending berth's pod scheduling prediction: PreFilter/Filter/Score of the VolumeBinding plugin decide nodes for unscheduled pods; not ported in this change",
    ),
    (
        "TestFindPodVolumesWithoutProvisioning/prebound-pvc",
        "pending berth's pod scheduling prediction: the binder errors (the claim's PV is bound to another claim)",
    ),
    (
        "TestFindPodVolumesWithoutProvisioning/one-prebound,one-unbound",
        "pending berth's pod scheduling prediction: the binder errors (pre-bound claim's PV bound elsewhere)",
    ),
    (
        "TestFindPodVolumesWithoutProvisioning/generic-ephemeral,no-pvc",
        "pending berth's pod scheduling prediction: the ephemeral claim does not exist yet, the scheduler waits",
    ),
    (
        "TestFindPodVolumesWithoutProvisioning/generic-ephemeral,wrong-pvc",
        "pending berth's pod scheduling prediction: a claim of the ephemeral name not owned by the pod, the scheduler rejects the pod",
    ),
    (
        "TestFindPodVolumesWithProvisioning/CSIDriver with capacity tracking (cases needing capacity)",
        "pending berth's pod scheduling prediction: without CSIStorageCapacity objects node1 is rejected (not enough space)",
    ),
    (
        "TestFindPodVolumesWithCSIMigration/pvc-bound,node-different-zone",
        "pending berth's pod scheduling prediction: node1 rejected (node conflict)",
    ),
    (
        "TestCapacity/CSIDriver.StorageCapacity=true (no-storage, wrong-node, wrong-storage-class, insufficient-storage, insufficient-volume-size, zero-storage, zero-volume-size, nil-storage)",
        "pending berth's pod scheduling prediction: node1 rejected (not enough space)",
    ),
    (
        "volumebinding/binder_test.go (other tests: AssumePodVolumes, RevertAssumedPVCs, BindAPIUpdate, CheckBindings, BindPodVolumes, FindAssumeVolumes, CapacityData, GetEligibleNodes)",
        "pending berth's pod scheduling prediction: the binder's assume/bind/revert mechanics and node filtering for pods being scheduled",
    ),
];

/// A volume of a pod, as upstream's fixtures use them.
#[derive(Clone, Copy)]
enum Vol {
    Claim(&'static str),
    InlineEbs(&'static str),
    ConfigMap,
    Secret,
    /// A generic ephemeral volume of this name, class `csi-sc`.
    Ephemeral(&'static str),
}

#[derive(Clone, Copy)]
struct PodDef {
    namespace: &'static str,
    name: &'static str,
    volumes: &'static [Vol],
}

const fn pod_def(name: &'static str, volumes: &'static [Vol]) -> PodDef {
    PodDef {
        namespace: "default",
        name,
        volumes,
    }
}

const RUNNING: PodDef = pod_def("running-pod", &[Vol::Claim("csi-ebs.csi.aws.com-3")]);
const PENDING_VOLUME: PodDef = pod_def("pending-volume-pod", &[Vol::Claim("csi-4")]);
const UNBOUND_PVC_2: PodDef = pod_def("unbound-pvc-pod2", &[Vol::Claim("csi-4")]);
const MISSING_PV: PodDef = pod_def("missing-pv-pod", &[Vol::Claim("csi-6")]);
const NO_SC_PVC: PodDef = pod_def("no-sc-pvc-pod", &[Vol::Claim("csi-5")]);
const GCE_TWO: PodDef = pod_def(
    "gce-two-vol-pod",
    &[
        Vol::Claim("csi-pd.csi.storage.gke.io-1"),
        Vol::Claim("csi-pd.csi.storage.gke.io-2"),
    ],
);
const IN_TREE_ONE: PodDef = pod_def(
    "in-tree-one-vol-pod",
    &[Vol::Claim("csi-kubernetes.io-aws-ebs-0")],
);
const IN_TREE_TWO: PodDef = pod_def(
    "in-tree-two-vol-pod",
    &[
        Vol::Claim("csi-kubernetes.io-aws-ebs-1"),
        Vol::Claim("csi-kubernetes.io-aws-ebs-2"),
    ],
);
const CSI_EBS_ONE: PodDef = pod_def(
    "csi-ebs-one-vol-pod",
    &[Vol::Claim("csi-ebs.csi.aws.com-0")],
);
const CSI_EBS_TWO: PodDef = pod_def(
    "csi-ebs-two-vol-pod",
    &[
        Vol::Claim("csi-ebs.csi.aws.com-1"),
        Vol::Claim("csi-ebs.csi.aws.com-2"),
    ],
);
const IN_TREE_NON_MIGRATABLE: PodDef = pod_def(
    "in-tree-non-migratable-one-vol-pod",
    &[Vol::Claim("csi-kubernetes.io-hostpath-0")],
);
const EPHEMERAL: PodDef = PodDef {
    namespace: "test",
    name: "abc",
    volumes: &[Vol::Ephemeral("xyz")],
};
const EPHEMERAL_TWO: PodDef = PodDef {
    namespace: "test",
    name: "abc",
    volumes: &[Vol::Ephemeral("x"), Vol::Ephemeral("y")],
};
const IN_TREE_INLINE: PodDef = pod_def("in-tree-inline-vol-pod", &[Vol::InlineEbs("aws-inline1")]);
const IN_TREE_INLINE_SAME_ID: PodDef = pod_def(
    "in-tree-inline-vol-pod-same-csi-id",
    &[Vol::InlineEbs("csi-ebs.csi.aws.com-1")],
);
const PVC_WITH_CM_SECRET: PodDef = pod_def(
    "pvc-pod-with-configmap-and-secret",
    &[
        Vol::ConfigMap,
        Vol::Secret,
        Vol::Claim("csi-ebs.csi.aws.com-0"),
    ],
);
const INLINE_MIGRATABLE_WITH_CM_SECRET: PodDef = pod_def(
    "inline-migratable-pod-with-configmap-and-secret",
    &[Vol::ConfigMap, Vol::Secret, Vol::InlineEbs("aws-inline1")],
);

fn pod_yaml(p: &PodDef) -> String {
    let mut o = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {}\n  namespace: {}\nspec:\n  nodeName: {NODE}\n  containers:\n  - name: c\n    image: i\n  volumes:\n",
        p.name, p.namespace
    );
    for (i, v) in p.volumes.iter().enumerate() {
        let _ = match v {
            Vol::Claim(c) => writeln!(
                o,
                "  - name: v{i}\n    persistentVolumeClaim:\n      claimName: {c}"
            ),
            Vol::InlineEbs(id) => writeln!(
                o,
                "  - name: v{i}\n    awsElasticBlockStore:\n      volumeID: {id}"
            ),
            Vol::ConfigMap => writeln!(o, "  - name: v{i}\n    configMap:\n      name: cm"),
            Vol::Secret => writeln!(o, "  - name: v{i}\n    secret:\n      secretName: s"),
            Vol::Ephemeral(name) => writeln!(
                o,
                "  - name: \"{name}\"\n    ephemeral:\n      volumeClaimTemplate:\n        spec:\n          accessModes: [ReadWriteOnce]\n          storageClassName: csi-sc\n          resources:\n            requests:\n              storage: 1Gi"
            ),
        };
    }
    o.push_str("---\n");
    o
}

/// A valid object name for upstream's `csi-<driver>-<n>`.
fn object_name(driver: &str, n: u32) -> String {
    format!("csi-{driver}-{n}").replace('/', "-")
}

/// getFakeCSIPVLister + getFakeCSIPVCLister + getFakeCSIStorageClassLister.
fn fixtures(drivers: &[&str]) -> String {
    let mut o = storage_class("csi-sc", drivers[0], None, None);
    for d in drivers {
        for j in 0..4 {
            let name = object_name(d, j);
            let source = match *d {
                IN_TREE_EBS => format!("  awsElasticBlockStore:\n    volumeID: {name}\n"),
                HOSTPATH => "  hostPath:\n    path: /tmp\n".to_string(),
                _ => format!("  csi:\n    driver: {d}\n    volumeHandle: {name}\n"),
            };
            let uid = format!("uid-{name}");
            o.push_str(
                &Pv::new(&name, "1Gi")
                    .source(&source)
                    .claim_ref_in("default", &uid, &name)
                    .phase("Bound")
                    .yaml(),
            );
            o.push_str(
                &Pvc::new("default", &name, "1Gi")
                    .uid(&uid)
                    .volume_name(&name)
                    .phase("Bound")
                    .yaml(),
            );
        }
    }
    o.push_str(
        &Pvc::new("default", "csi-4", "1Gi")
            .uid("uid-csi-4")
            .class("csi-sc")
            .yaml(),
    );
    o.push_str(&Pvc::new("default", "csi-5", "1Gi").uid("uid-csi-5").yaml());
    o.push_str(
        &Pvc::new("default", "csi-6", "1Gi")
            .uid("uid-csi-6")
            .class("csi-sc")
            .volume_name("missing-in-action")
            .yaml(),
    );
    o
}

/// getNodeWithPodAndVolumeLimits: the node and, per limit source, its CSINode.
fn node_and_csinode(limit_source: &str, max_vols: u32, drivers: &[&str]) -> String {
    let mut o = node(NODE, &[]);
    let csi_drivers: Vec<&str> = drivers
        .iter()
        .copied()
        .filter(|d| !d.starts_with("kubernetes.io/"))
        .collect();
    let with_count = match limit_source {
        "csinode" => true,
        "csinode-with-no-limit" => false,
        _ => return o,
    };
    let _ = writeln!(
        o,
        "apiVersion: storage.k8s.io/v1\nkind: CSINode\nmetadata:\n  name: {NODE}\nspec:\n  drivers:"
    );
    for d in csi_drivers {
        let _ = writeln!(o, "  - name: {d}\n    nodeID: {NODE}");
        if with_count {
            let _ = writeln!(o, "    allocatable:\n      count: {max_vols}");
        }
    }
    o.push_str("---\n");
    o
}

struct LimitCase {
    name: &'static str,
    new_pod: PodDef,
    existing: &'static [PodDef],
    max_vols: u32,
    drivers: &'static [&'static str],
    limit_source: &'static str,
    /// The CSI drivers the new pod's volumes count under.
    new_pod_drivers: &'static [&'static str],
    unschedulable: bool,
}

const fn lc(
    name: &'static str,
    new_pod: PodDef,
    existing: &'static [PodDef],
    max_vols: u32,
    drivers: &'static [&'static str],
    limit_source: &'static str,
    new_pod_drivers: &'static [&'static str],
    unschedulable: bool,
) -> LimitCase {
    LimitCase {
        name,
        new_pod,
        existing,
        max_vols,
        drivers,
        limit_source,
        new_pod_drivers,
        unschedulable,
    }
}

const EBS_ONLY: &[&str] = &[EBS];
const MIGRATION: &[&str] = &[IN_TREE_EBS, EBS];

fn csi_limits_cases() -> Vec<LimitCase> {
    vec![
        lc(
            "fits when node volume limit >= new pods CSI volume",
            CSI_EBS_ONE,
            &[RUNNING, CSI_EBS_TWO],
            4,
            EBS_ONLY,
            "csinode",
            EBS_ONLY,
            false,
        ),
        lc(
            "doesn't when node volume limit <= pods CSI volume",
            CSI_EBS_ONE,
            &[RUNNING, CSI_EBS_TWO],
            2,
            EBS_ONLY,
            "csinode",
            EBS_ONLY,
            true,
        ),
        lc(
            "should when driver does not support volume limits",
            CSI_EBS_ONE,
            &[RUNNING, CSI_EBS_TWO],
            2,
            EBS_ONLY,
            "csinode-with-no-limit",
            EBS_ONLY,
            false,
        ),
        lc(
            "count pending PVCs towards volume limit <= pods CSI volume",
            CSI_EBS_ONE,
            &[PENDING_VOLUME, CSI_EBS_TWO],
            2,
            EBS_ONLY,
            "csinode",
            EBS_ONLY,
            true,
        ),
        lc(
            "count multiple pending pvcs towards volume limit >= pods CSI volume",
            CSI_EBS_ONE,
            &[PENDING_VOLUME, UNBOUND_PVC_2, CSI_EBS_TWO],
            4,
            EBS_ONLY,
            "csinode",
            EBS_ONLY,
            false,
        ),
        lc(
            "should count PVCs with invalid PV name but valid SC",
            CSI_EBS_ONE,
            &[MISSING_PV, CSI_EBS_TWO],
            2,
            EBS_ONLY,
            "csinode",
            EBS_ONLY,
            true,
        ),
        lc(
            "don't count pvcs with missing SC towards volume limit",
            CSI_EBS_ONE,
            &[RUNNING, NO_SC_PVC],
            2,
            EBS_ONLY,
            "csinode",
            EBS_ONLY,
            false,
        ),
        lc(
            "count pvcs with the same type towards volume limit",
            CSI_EBS_ONE,
            &[GCE_TWO, CSI_EBS_TWO],
            2,
            &[EBS, GCE],
            "csinode",
            EBS_ONLY,
            true,
        ),
        lc(
            "don't count pvcs with different type towards volume limit",
            GCE_TWO,
            &[CSI_EBS_TWO, RUNNING],
            2,
            &[EBS, GCE],
            "csinode",
            &[GCE],
            false,
        ),
        lc(
            "should count in-tree volumes if migration is enabled",
            IN_TREE_ONE,
            &[IN_TREE_TWO],
            2,
            MIGRATION,
            "csinode",
            EBS_ONLY,
            true,
        ),
        lc(
            "nil csi node",
            IN_TREE_INLINE,
            &[IN_TREE_TWO],
            0,
            MIGRATION,
            "",
            EBS_ONLY,
            false,
        ),
        lc(
            "should count unbound in-tree volumes if migration is enabled",
            PENDING_VOLUME,
            &[IN_TREE_TWO],
            2,
            MIGRATION,
            "csinode",
            EBS_ONLY,
            true,
        ),
        lc(
            "should not limit pod if volume used does not report limits",
            IN_TREE_ONE,
            &[IN_TREE_TWO],
            2,
            MIGRATION,
            "csinode-with-no-limit",
            EBS_ONLY,
            false,
        ),
        lc(
            "should not count non-migratable in-tree volumes",
            IN_TREE_NON_MIGRATABLE,
            &[CSI_EBS_TWO],
            2,
            &[HOSTPATH, EBS],
            "csinode",
            &[],
            false,
        ),
        lc(
            "should count in-tree inline volumes if migration is enabled",
            IN_TREE_INLINE,
            &[IN_TREE_TWO],
            2,
            MIGRATION,
            "csinode",
            EBS_ONLY,
            true,
        ),
        lc(
            "should count in-tree and csi volumes if migration is enabled (when scheduling in-tree volumes)",
            IN_TREE_ONE,
            &[CSI_EBS_TWO],
            2,
            MIGRATION,
            "csinode",
            EBS_ONLY,
            true,
        ),
        lc(
            "should count in-tree, inline and csi volumes if migration is enabled (when scheduling in-tree volumes)",
            IN_TREE_INLINE,
            &[CSI_EBS_TWO, IN_TREE_ONE],
            3,
            MIGRATION,
            "csinode",
            EBS_ONLY,
            true,
        ),
        lc(
            "should not count in-tree, inline and csi volumes if migration is enabled (when scheduling in-tree volumes)",
            IN_TREE_INLINE_SAME_ID,
            &[CSI_EBS_TWO, IN_TREE_ONE],
            3,
            MIGRATION,
            "csinode",
            EBS_ONLY,
            false,
        ),
        lc(
            "should count in-tree and csi volumes if migration is enabled (when scheduling csi volumes)",
            CSI_EBS_ONE,
            &[IN_TREE_TWO],
            2,
            MIGRATION,
            "csinode",
            EBS_ONLY,
            true,
        ),
        lc(
            "ephemeral volume unbound",
            EPHEMERAL,
            &[],
            0,
            EBS_ONLY,
            "csinode-with-no-limit",
            EBS_ONLY,
            false,
        ),
        lc(
            "ephemeral doesn't when node volume limit <= pods CSI volume",
            EPHEMERAL,
            &[RUNNING, CSI_EBS_TWO],
            2,
            EBS_ONLY,
            "csinode",
            EBS_ONLY,
            true,
        ),
        lc(
            "ephemeral doesn't when node volume limit <= pods ephemeral CSI volume",
            CSI_EBS_ONE,
            &[RUNNING, EPHEMERAL_TWO],
            2,
            EBS_ONLY,
            "csinode",
            EBS_ONLY,
            true,
        ),
        lc(
            "persistent doesn't when node volume limit <= pods ephemeral CSI volume + persistent volume",
            CSI_EBS_ONE,
            &[RUNNING, EPHEMERAL, CSI_EBS_TWO],
            3,
            EBS_ONLY,
            "csinode",
            EBS_ONLY,
            true,
        ),
        lc(
            "persistent okay when node volume limit > pods ephemeral CSI volume + persistent volume",
            CSI_EBS_ONE,
            &[RUNNING, EPHEMERAL, CSI_EBS_TWO],
            5,
            EBS_ONLY,
            "csinode",
            EBS_ONLY,
            false,
        ),
        lc(
            "don't skip Filter when the pod has pvcs",
            PVC_WITH_CM_SECRET,
            &[],
            2,
            EBS_ONLY,
            "csinode",
            EBS_ONLY,
            false,
        ),
        lc(
            "don't skip Filter when the pod has inline migratable volumes",
            INLINE_MIGRATABLE_WITH_CM_SECRET,
            &[IN_TREE_TWO],
            2,
            MIGRATION,
            "csinode",
            EBS_ONLY,
            true,
        ),
    ]
}

#[test]
fn test_csi_limits() {
    let mut failures = Vec::new();
    for c in csi_limits_cases() {
        let mut yaml = fixtures(c.drivers);
        yaml.push_str(&node_and_csinode(c.limit_source, c.max_vols, c.drivers));
        for p in c.existing.iter().chain(std::iter::once(&c.new_pod)) {
            yaml.push_str(&pod_yaml(p));
        }
        let plan = berth_tests::plan(&yaml);
        let hit: Vec<String> = plan
            .violations
            .iter()
            .filter(|v| v.node == NODE && c.new_pod_drivers.contains(&v.driver.as_str()))
            .map(|v| format!("{} {}/{}", v.driver, v.count, v.limit))
            .collect();
        let name = format!("TestCSILimits/{}", c.name);
        if berth_tests::upstream::is_open_divergence(&name) {
            if hit.is_empty() != c.unschedulable {
                failures.push(format!(
                    "{name}: now agrees with upstream: remove it from OPEN_DIVERGENCES"
                ));
            }
            continue;
        }
        if hit.is_empty() == c.unschedulable {
            failures.push(format!(
                "TestCSILimits/{}: upstream {}, berth violations {:?} (all: {:?})",
                c.name,
                if c.unschedulable {
                    "Unschedulable (max volume count exceeded)"
                } else {
                    "fits"
                },
                hit,
                plan.violations
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// volumebinding/binder_test.go: FindPodVolumes for a pod on node1
// ---------------------------------------------------------------------------

const WAIT_CLASS: &str = "wait-class";
const IMMEDIATE_CLASS: &str = "immediate-class";
const WAIT_CLASS_WITH_PROVISIONER: &str = "wait-class-with-provisioner";
const TEST_PROVISIONER: &str = "test-provisioner";
const NODE_LABEL_KEY: &str = "nodeKey";

/// newTestBinder's classes, and node1 (nodeKey=node1).
fn binder_env() -> Vec<String> {
    // allowedTopologies: nodeKey in `values`.
    let topology = |class: String, values: &str| {
        class.replace(
            "volumeBindingMode: WaitForFirstConsumer\n",
            &format!(
                "volumeBindingMode: WaitForFirstConsumer\nallowedTopologies:\n- matchLabelExpressions:\n  - key: {NODE_LABEL_KEY}\n    values: [{values}]\n"
            ),
        )
    };
    let wait = Some("WaitForFirstConsumer");
    vec![
        topology(
            storage_class(WAIT_CLASS_WITH_PROVISIONER, TEST_PROVISIONER, None, wait),
            "node1, reference-value",
        ),
        storage_class(IMMEDIATE_CLASS, "", None, Some("Immediate")),
        storage_class(WAIT_CLASS, "kubernetes.io/no-provisioner", None, wait),
        topology(
            storage_class("topo-mismatch-class", TEST_PROVISIONER, None, wait),
            "reference-value",
        ),
        node("node1", &[(NODE_LABEL_KEY, "node1")]),
    ]
}

/// makeTestPVC(name, size, node, state, pvName, _, class): namespace
/// testns, uid `pvc-uid` (upstream gives every claim that uid).
fn test_pvc(name: &str, size: &str, state: &str, pv: &str, class: &str) -> Pvc {
    let mut c = Pvc::new("testns", name, size)
        .uid("pvc-uid")
        .class(class)
        .volume_mode("Filesystem");
    match state {
        "selected-node" => c = c.ann(ANN_SELECTED_NODE, "node1"),
        "bound" => c = c.ann(ANN_BIND_COMPLETED, "yes").volume_name(pv),
        "prebound" => c = c.volume_name(pv),
        _ => {}
    }
    c
}

/// makeTestPV(name, node, capacity, _, boundToPVC, class): Available,
/// affinity nodeKey=node, claimRef (with bound-by-controller) when bound.
fn test_pv(name: &str, node: &str, capacity: &str, bound_to: Option<&str>, class: &str) -> Pv {
    let mut pv = Pv::new(name, capacity)
        .class(class)
        .volume_mode("Filesystem")
        .source("  local:\n    path: /mnt/upstream\n")
        .affinity_in(NODE_LABEL_KEY, node)
        .phase("Available");
    if let Some(claim) = bound_to {
        pv = pv
            .claim_ref_in("testns", "pvc-uid", claim)
            .ann(ANN_BOUND_BY_CONTROLLER, "yes");
    }
    pv
}

fn unbound_pvc() -> Pvc {
    test_pvc("unbound-pvc", "1G", "unbound", "", WAIT_CLASS)
}
fn unbound_pvc2() -> Pvc {
    test_pvc("unbound-pvc2", "5G", "unbound", "", WAIT_CLASS)
}
fn bound_pvc() -> Pvc {
    test_pvc("bound-pvc", "1G", "bound", "pv-bound", WAIT_CLASS)
}
fn immediate_bound_pvc() -> Pvc {
    test_pvc(
        "immediate-bound-pvc",
        "1G",
        "bound",
        "pv-bound-immediate",
        IMMEDIATE_CLASS,
    )
}
fn provisioned_pvc() -> Pvc {
    test_pvc(
        "provisioned-pvc",
        "1Gi",
        "unbound",
        "",
        WAIT_CLASS_WITH_PROVISIONER,
    )
}
fn selected_node_pvc() -> Pvc {
    test_pvc(
        "provisioned-pvc",
        "1Gi",
        "selected-node",
        "",
        WAIT_CLASS_WITH_PROVISIONER,
    )
}
fn pv_node1a() -> Pv {
    test_pv("pv-node1a", "node1", "5G", None, WAIT_CLASS)
}
fn pv_node1b() -> Pv {
    test_pv("pv-node1b", "node1", "10G", None, WAIT_CLASS)
}
fn pv_node2() -> Pv {
    test_pv("pv-node2", "node2", "1G", None, WAIT_CLASS)
}
fn pv_bound() -> Pv {
    test_pv("pv-bound", "node1", "1G", Some("bound-pvc"), WAIT_CLASS)
}
fn pv_bound_immediate() -> Pv {
    test_pv(
        "pv-bound-immediate",
        "node1",
        "1G",
        Some("immediate-bound-pvc"),
        IMMEDIATE_CLASS,
    )
}

/// One FindPodVolumes case that fits node1: upstream's expected static
/// bindings and dynamic provisionings, plus the claims already bound.
struct FindCase {
    name: &'static str,
    pvs: Vec<Pv>,
    claims: Vec<Pvc>,
    /// Extra pod volumes (YAML under `volumes:`), e.g. an ephemeral volume.
    extra_pod_volumes: &'static str,
    wants: Vec<Want>,
    /// The outcome needs provisioning, which capacity tracking refuses
    /// without CSIStorageCapacity objects.
    needs_capacity: bool,
}

fn find_without_provisioning() -> Vec<FindCase> {
    use Want::*;
    vec![
        FindCase {
            name: "TestFindPodVolumesWithoutProvisioning/no-volumes",
            pvs: vec![],
            claims: vec![],
            extra_pod_volumes: "",
            wants: vec![],
            needs_capacity: false,
        },
        FindCase {
            name: "TestFindPodVolumesWithoutProvisioning/no-pvcs",
            pvs: vec![],
            claims: vec![],
            extra_pod_volumes: "  - name: empty\n    emptyDir: {}\n",
            wants: vec![],
            needs_capacity: false,
        },
        FindCase {
            name: "TestFindPodVolumesWithoutProvisioning/bound-pvc",
            pvs: vec![pv_bound()],
            claims: vec![bound_pvc()],
            extra_pod_volumes: "",
            wants: vec![Bound("testns/bound-pvc", "pv-bound")],
            needs_capacity: false,
        },
        FindCase {
            name: "TestFindPodVolumesWithoutProvisioning/unbound-pvc,pv-same-node",
            pvs: vec![pv_node2(), pv_node1a(), pv_node1b()],
            claims: vec![unbound_pvc()],
            extra_pod_volumes: "",
            wants: vec![Bound("testns/unbound-pvc", "pv-node1a")],
            needs_capacity: false,
        },
        FindCase {
            name: "TestFindPodVolumesWithoutProvisioning/two-unbound-pvcs",
            pvs: vec![pv_node1a(), pv_node1b()],
            claims: vec![unbound_pvc(), unbound_pvc2()],
            extra_pod_volumes: "",
            wants: vec![
                Bound("testns/unbound-pvc", "pv-node1a"),
                Bound("testns/unbound-pvc2", "pv-node1b"),
            ],
            needs_capacity: false,
        },
        FindCase {
            name: "TestFindPodVolumesWithoutProvisioning/two-unbound-pvcs,order-by-size",
            pvs: vec![pv_node1a(), pv_node1b()],
            claims: vec![unbound_pvc2(), unbound_pvc()],
            extra_pod_volumes: "",
            wants: vec![
                Bound("testns/unbound-pvc", "pv-node1a"),
                Bound("testns/unbound-pvc2", "pv-node1b"),
            ],
            needs_capacity: false,
        },
        FindCase {
            name: "TestFindPodVolumesWithoutProvisioning/one-bound,one-unbound",
            pvs: vec![pv_bound(), pv_node1a()],
            claims: vec![unbound_pvc(), bound_pvc()],
            extra_pod_volumes: "",
            wants: vec![
                Bound("testns/unbound-pvc", "pv-node1a"),
                Bound("testns/bound-pvc", "pv-bound"),
            ],
            needs_capacity: false,
        },
        FindCase {
            name: "TestFindPodVolumesWithoutProvisioning/immediate-bound-pvc",
            pvs: vec![pv_bound_immediate()],
            claims: vec![immediate_bound_pvc()],
            extra_pod_volumes: "",
            wants: vec![Bound("testns/immediate-bound-pvc", "pv-bound-immediate")],
            needs_capacity: false,
        },
        // The ephemeral claim test-pod-test-volume exists, owned by the
        // pod, bound to pv-bound (claimRef to it).
        FindCase {
            name: "TestFindPodVolumesWithoutProvisioning/generic-ephemeral,with-pvc",
            pvs: vec![test_pv(
                "pv-bound",
                "node1",
                "1G",
                Some("test-pod-test-volume"),
                WAIT_CLASS,
            )],
            claims: vec![test_pvc(
                "test-pod-test-volume",
                "1G",
                "bound",
                "pv-bound",
                IMMEDIATE_CLASS,
            )],
            extra_pod_volumes: "  - name: test-volume\n    ephemeral:\n      volumeClaimTemplate:\n        spec:\n          accessModes: [ReadWriteOnce]\n          storageClassName: immediate-class\n          resources:\n            requests:\n              storage: 1G\n",
            wants: vec![Bound("testns/test-pod-test-volume", "pv-bound")],
            needs_capacity: false,
        },
    ]
}

fn find_with_provisioning() -> Vec<FindCase> {
    use Want::*;
    vec![
        FindCase {
            name: "TestFindPodVolumesWithProvisioning/one-provisioned",
            pvs: vec![],
            claims: vec![provisioned_pvc()],
            extra_pod_volumes: "",
            wants: vec![Provisioned("testns/provisioned-pvc")],
            needs_capacity: true,
        },
        FindCase {
            name: "TestFindPodVolumesWithProvisioning/two-unbound-pvcs,one-matched,one-provisioned",
            pvs: vec![pv_node1a()],
            claims: vec![unbound_pvc(), provisioned_pvc()],
            extra_pod_volumes: "",
            wants: vec![
                Bound("testns/unbound-pvc", "pv-node1a"),
                Provisioned("testns/provisioned-pvc"),
            ],
            needs_capacity: true,
        },
        FindCase {
            name: "TestFindPodVolumesWithProvisioning/one-bound,one-provisioned",
            pvs: vec![pv_bound()],
            claims: vec![bound_pvc(), provisioned_pvc()],
            extra_pod_volumes: "",
            wants: vec![
                Bound("testns/bound-pvc", "pv-bound"),
                Provisioned("testns/provisioned-pvc"),
            ],
            needs_capacity: true,
        },
        FindCase {
            name: "TestFindPodVolumesWithProvisioning/one-binding,one-selected-node",
            pvs: vec![pv_bound()],
            claims: vec![bound_pvc(), selected_node_pvc()],
            extra_pod_volumes: "",
            wants: vec![
                Bound("testns/bound-pvc", "pv-bound"),
                Provisioned("testns/provisioned-pvc"),
            ],
            needs_capacity: true,
        },
        FindCase {
            name: "TestFindPodVolumesWithProvisioning/one-immediate-bound,one-provisioned",
            pvs: vec![pv_bound_immediate()],
            claims: vec![immediate_bound_pvc(), provisioned_pvc()],
            extra_pod_volumes: "",
            wants: vec![
                Bound("testns/immediate-bound-pvc", "pv-bound-immediate"),
                Provisioned("testns/provisioned-pvc"),
            ],
            needs_capacity: true,
        },
    ]
}

/// makeTestPVForCSIMigration: a GCE PD bound to pvc-migration-bound,
/// zone labels us-east-1 (the translation lib turns them into node
/// affinity), no affinity of its own.
fn find_with_csi_migration() -> Vec<(FindCase, String)> {
    use Want::*;
    let pv = || {
        Pv::new("pv-migration-bound", "1G")
            .class(WAIT_CLASS)
            .volume_mode("Filesystem")
            .label("failure-domain.beta.kubernetes.io/zone", "us-east-1")
            .label("failure-domain.beta.kubernetes.io/region", "us-east-1a")
            .source("  gcePersistentDisk:\n    pdName: test-disk\n    fsType: ext4\n")
            .claim_ref_in("testns", "pvc-uid", "pvc-migration-bound")
            .ann(ANN_BOUND_BY_CONTROLLER, "yes")
            .phase("Available")
    };
    let claim = || {
        test_pvc(
            "pvc-migration-bound",
            "1G",
            "bound",
            "pv-migration-bound",
            WAIT_CLASS,
        )
    };
    let csinode = |migrated: &str| {
        format!(
            "apiVersion: storage.k8s.io/v1\nkind: CSINode\nmetadata:\n  name: node1\n  annotations:\n    storage.alpha.kubernetes.io/migrated-plugins: \"{migrated}\"\nspec:\n  drivers: []\n---\n"
        )
    };
    let wants = || vec![Bound("testns/pvc-migration-bound", "pv-migration-bound")];
    let case = |name| FindCase {
        name,
        pvs: vec![pv()],
        claims: vec![claim()],
        extra_pod_volumes: "",
        wants: wants(),
        needs_capacity: false,
    };
    vec![
        (
            case("TestFindPodVolumesWithCSIMigration/pvc-bound"),
            csinode("kubernetes.io/gce-pd"),
        ),
        (
            case("TestFindPodVolumesWithCSIMigration/pvc-bound,csinode-not-migrated"),
            csinode(""),
        ),
        (
            case("TestFindPodVolumesWithCSIMigration/pvc-bound,missing-csinode"),
            String::new(),
        ),
    ]
}

/// The pod `testns/test-pod` on node1 with the case's claims.
fn test_pod(claims: &[Pvc], extra_volumes: &str) -> String {
    let mut o = String::from(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: test-pod\n  namespace: testns\nspec:\n  nodeName: node1\n  containers:\n  - name: c\n    image: i\n",
    );
    if !claims.is_empty() || !extra_volumes.is_empty() {
        o.push_str("  volumes:\n");
    }
    for (i, c) in claims.iter().enumerate() {
        if c.name == "test-pod-test-volume" {
            continue;
        }
        let _ = writeln!(
            o,
            "  - name: v{i}\n    persistentVolumeClaim:\n      claimName: {}",
            c.name
        );
    }
    o.push_str(extra_volumes);
    o.push_str("---\n");
    o
}

fn run_find_cases(cases: &[FindCase], node_extra: &str, variants: bool) -> Vec<String> {
    let mut failures = Vec::new();
    let drivers: &[(&str, Option<bool>)] = if variants {
        &[
            ("no CSIDriver", None),
            ("CSIDriver with capacity tracking", Some(true)),
            ("CSIDriver without capacity tracking", Some(false)),
        ]
    } else {
        &[("", None)]
    };
    for (variant, tracking) in drivers {
        for c in cases {
            if c.needs_capacity && *tracking == Some(true) {
                // Listed in PENDING_POD_SCHEDULING.
                continue;
            }
            let claims: Vec<Pvc> = c
                .claims
                .iter()
                .cloned()
                .map(|mut x| {
                    if x.modes.is_empty() {
                        x.modes = vec!["ReadWriteOnce".into()];
                    }
                    x
                })
                .collect();
            let mut extra = binder_env();
            extra.push(node_extra.to_string());
            if let Some(t) = tracking {
                extra.push(format!(
                    "apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata:\n  name: {TEST_PROVISIONER}\nspec:\n  storageCapacity: {t}\n---\n"
                ));
            }
            extra.push(test_pod(&claims, c.extra_pod_volumes));
            let plan = berth_tests::plan(&manifests(&c.pvs, &claims, &extra));
            for line in unmet(&plan, &c.wants) {
                failures.push(format!("{} [{variant}]: {line}", c.name));
            }
            // Nothing else of the pod is left pending.
            let stuck: Vec<String> = plan
                .pending
                .iter()
                .filter(|p| p.claim.namespace == "testns")
                .map(|p| format!("{}: {}", p.claim, p.reason))
                .collect();
            if !stuck.is_empty() {
                failures.push(format!("{} [{variant}]: pending {stuck:?}", c.name));
            }
        }
    }
    failures
}

#[test]
fn test_find_pod_volumes_without_provisioning() {
    let f = run_find_cases(&find_without_provisioning(), "", true);
    assert!(f.is_empty(), "{}", f.join("\n"));
}

#[test]
fn test_find_pod_volumes_with_provisioning() {
    let f = run_find_cases(&find_with_provisioning(), "", true);
    assert!(f.is_empty(), "{}", f.join("\n"));
}

#[test]
fn test_find_pod_volumes_with_csi_migration() {
    let mut failures = Vec::new();
    for (c, csinode) in find_with_csi_migration() {
        // node1Zone1: topology.gke.io/zone=us-east-1 (replaces node1).
        let mut c = c;
        c.extra_pod_volumes = "";
        let node_doc = format!(
            "{}{csinode}",
            node("node1", &[("topology.gke.io/zone", "us-east-1")])
        );
        failures.extend(run_find_cases(std::slice::from_ref(&c), &node_doc, false));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// TestCapacity's CSIStorageCapacity objects: (node label value, `""` for
/// network attached; capacity; maximumVolumeSize; class).
/// Upstream names every object `net`; they are `net-0`, `net-1`, … here,
/// as one namespace cannot hold two.
type CapacityRow = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static str,
);

fn capacity_cases() -> Vec<(&'static str, Vec<CapacityRow>, bool)> {
    let wcp = WAIT_CLASS_WITH_PROVISIONER;
    vec![
        ("network-attached", vec![("", Some("1Gi"), None, wcp)], true),
        (
            "local-storage",
            vec![("node1", Some("1Gi"), None, wcp)],
            true,
        ),
        (
            "multiple",
            vec![
                ("", Some("1Gi"), None, wcp),
                ("node2", Some("1Gi"), None, wcp),
                ("node1", Some("1Gi"), None, wcp),
            ],
            true,
        ),
        ("no-storage", vec![], false),
        ("wrong-node", vec![("node2", Some("1Gi"), None, wcp)], false),
        (
            "wrong-storage-class",
            vec![("node1", Some("1Gi"), None, WAIT_CLASS)],
            false,
        ),
        (
            "insufficient-storage",
            vec![("node1", Some("1Mi"), None, wcp)],
            false,
        ),
        (
            "insufficient-volume-size",
            vec![("node1", Some("1Gi"), Some("1Mi"), wcp)],
            false,
        ),
        (
            "zero-storage",
            vec![("node1", Some("0Mi"), None, wcp)],
            false,
        ),
        (
            "zero-volume-size",
            vec![("node1", None, Some("0Mi"), wcp)],
            false,
        ),
        ("nil-storage", vec![("node1", None, None, wcp)], false),
    ]
}

fn capacity_yaml(rows: &[CapacityRow]) -> String {
    let mut o = String::new();
    for (i, (node, capacity, max, class)) in rows.iter().enumerate() {
        let _ = writeln!(
            o,
            "apiVersion: storage.k8s.io/v1\nkind: CSIStorageCapacity\nmetadata:\n  name: net-{i}\n  namespace: kube-system\nstorageClassName: {class}"
        );
        if node.is_empty() {
            o.push_str("nodeTopology: {}\n");
        } else {
            let _ = writeln!(
                o,
                "nodeTopology:\n  matchLabels:\n    {NODE_LABEL_KEY}: {node}"
            );
        }
        if let Some(c) = capacity {
            let _ = writeln!(o, "capacity: {c}");
        }
        if let Some(m) = max {
            let _ = writeln!(o, "maximumVolumeSize: {m}");
        }
        o.push_str("---\n");
    }
    o
}

/// Scenarios where upstream finds node1 fits: all of them when the driver
/// does not opt in to capacity tracking, the first three when it does.
#[test]
fn test_capacity() {
    let mut failures = Vec::new();
    for opt_in in [true, false] {
        for (name, rows, fits_with_opt_in) in capacity_cases() {
            if opt_in && !fits_with_opt_in {
                // Listed in PENDING_POD_SCHEDULING.
                continue;
            }
            let c = FindCase {
                name,
                pvs: vec![],
                claims: vec![provisioned_pvc()],
                extra_pod_volumes: "",
                wants: vec![Want::Provisioned("testns/provisioned-pvc")],
                needs_capacity: false,
            };
            let extra = format!(
                "apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata:\n  name: {TEST_PROVISIONER}\nspec:\n  storageCapacity: {opt_in}\n---\n{}",
                capacity_yaml(&rows)
            );
            for f in run_find_cases(std::slice::from_ref(&c), &extra, false) {
                failures.push(format!(
                    "TestCapacity/CSIDriver.StorageCapacity={opt_in}/{f}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn not_applicable_and_pending_lists_are_a_partition() {
    let names: Vec<String> = csi_limits_cases()
        .iter()
        .map(|c| format!("TestCSILimits/{}", c.name))
        .chain(
            find_without_provisioning()
                .iter()
                .map(|c| c.name.to_string()),
        )
        .chain(find_with_provisioning().iter().map(|c| c.name.to_string()))
        .chain(
            find_with_csi_migration()
                .iter()
                .map(|(c, _)| c.name.to_string()),
        )
        .chain(
            capacity_cases()
                .iter()
                .map(|(n, ..)| format!("TestCapacity/{n}")),
        )
        .chain(reject_cases().iter().map(|c| c.name.to_string()))
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let all: Vec<(&str, &str)> = NOT_APPLICABLE
        .iter()
        .chain(PENDING_POD_SCHEDULING)
        .copied()
        .collect();
    assert_partition(&refs, &all);
}

/// One FindPodVolumes case where node1 does not fit: the pod (without a
/// node now) goes through berth's scheduling with node1 the only node, and
/// the FailedScheduling message must carry upstream's reason. Upstream's
/// `shouldFail` cases are the scheduler's PreFilter refusals.
struct RejectCase {
    name: &'static str,
    pvs: Vec<Pv>,
    claims: Vec<Pvc>,
    /// The claims the pod names, when not all of `claims` exist.
    pod_claims: Option<Vec<Pvc>>,
    reason: &'static str,
}

const NOT_FOUND_BOUND: &str = "persistentvolumeclaim \"bound-pvc\" not found";
const UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
const PV_NOT_EXIST: &str =
    "1 node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
const BIND_CONFLICT: &str = "1 node(s) didn't find available persistent volumes to bind";
const NODE_CONFLICT: &str = "1 node(s) didn't match PersistentVolume's node affinity";

fn reject_cases() -> Vec<RejectCase> {
    let immediate_unbound = || {
        test_pvc(
            "immediate-unbound-pvc",
            "1G",
            "unbound",
            "",
            IMMEDIATE_CLASS,
        )
    };
    let case = |name, pvs, claims, reason| RejectCase {
        name,
        pvs,
        claims,
        pod_claims: None,
        reason,
    };
    vec![
        RejectCase {
            name: "TestFindPodVolumesWithoutProvisioning/pvc-not-found",
            pvs: vec![],
            claims: vec![],
            pod_claims: Some(vec![bound_pvc()]),
            reason: NOT_FOUND_BOUND,
        },
        case(
            "TestFindPodVolumesWithoutProvisioning/bound-pvc,pv-not-exists",
            vec![],
            vec![bound_pvc()],
            PV_NOT_EXIST,
        ),
        case(
            "TestFindPodVolumesWithoutProvisioning/unbound-pvc,pv-different-node",
            vec![pv_node2()],
            vec![unbound_pvc()],
            BIND_CONFLICT,
        ),
        case(
            "TestFindPodVolumesWithoutProvisioning/two-unbound-pvcs,partial-match",
            vec![pv_node1a()],
            vec![unbound_pvc(), unbound_pvc2()],
            BIND_CONFLICT,
        ),
        case(
            "TestFindPodVolumesWithoutProvisioning/one-bound,one-unbound,no-match",
            vec![pv_bound(), pv_node2()],
            vec![unbound_pvc(), bound_pvc()],
            BIND_CONFLICT,
        ),
        case(
            "TestFindPodVolumesWithoutProvisioning/immediate-bound-pvc-wrong-node",
            vec![test_pv(
                "pv-bound-immediate",
                "node2",
                "1G",
                Some("immediate-bound-pvc"),
                IMMEDIATE_CLASS,
            )],
            vec![immediate_bound_pvc()],
            NODE_CONFLICT,
        ),
        case(
            "TestFindPodVolumesWithoutProvisioning/immediate-unbound-pvc",
            vec![],
            vec![immediate_unbound()],
            UNBOUND_IMMEDIATE,
        ),
        case(
            "TestFindPodVolumesWithoutProvisioning/immediate-unbound-pvc,delayed-mode-bound",
            vec![pv_bound()],
            vec![immediate_unbound(), bound_pvc()],
            UNBOUND_IMMEDIATE,
        ),
        case(
            "TestFindPodVolumesWithoutProvisioning/immediate-unbound-pvc,delayed-mode-unbound",
            vec![],
            vec![immediate_unbound(), unbound_pvc()],
            UNBOUND_IMMEDIATE,
        ),
        case(
            "TestFindPodVolumesWithProvisioning/immediate-unbound-pvc",
            vec![],
            vec![immediate_unbound()],
            UNBOUND_IMMEDIATE,
        ),
        case(
            "TestFindPodVolumesWithProvisioning/invalid-provisioner",
            vec![],
            vec![test_pvc(
                "no-provisioner-pvc",
                "1Gi",
                "unbound",
                "",
                WAIT_CLASS,
            )],
            BIND_CONFLICT,
        ),
        case(
            "TestFindPodVolumesWithProvisioning/volume-topology-unsatisfied",
            vec![],
            vec![test_pvc(
                "topo-mismatch-pvc",
                "1Gi",
                "unbound",
                "",
                "topo-mismatch-class",
            )],
            BIND_CONFLICT,
        ),
    ]
}

#[test]
fn test_find_pod_volumes_where_node1_does_not_fit() {
    let mut failures = Vec::new();
    for c in reject_cases() {
        let with_modes = |claims: &[Pvc]| -> Vec<Pvc> {
            claims
                .iter()
                .cloned()
                .map(|mut x| {
                    if x.modes.is_empty() {
                        x.modes = vec!["ReadWriteOnce".into()];
                    }
                    x
                })
                .collect()
        };
        let claims = with_modes(&c.claims);
        let pod_claims = with_modes(c.pod_claims.as_deref().unwrap_or(&c.claims));
        let mut extra = binder_env();
        // The same pod, not on a node yet: berth's scheduling decides.
        extra.push(test_pod(&pod_claims, "").replace("  nodeName: node1\n", ""));
        let plan = berth_tests::plan(&manifests(&c.pvs, &claims, &extra));
        let got = plan
            .scheduling
            .iter()
            .find(|s| s.pod.name == "test-pod")
            .map(|s| (s.node.clone(), s.reason.clone()));
        let want = format!("0/1 nodes are available: {}.", c.reason);
        if got != Some((None, Some(want.clone()))) {
            failures.push(format!("{}: want {want:?}, berth {got:?}", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
