//! Upstream's tests of the shared storage helpers the PV controller and the
//! scheduler both call, ported case by case against berth's plan.
//!
//! Ports `staging/src/k8s.io/component-helpers/storage/volume/pv_helpers_test.go`
//! (TestDelayBindingMode, TestFindMatchVolumeWithNode) and `helpers_test.go`
//! (TestCheckVolumeNodeAffinity, TestPersistentVolumeClaimHasClass). The node-aware matching
//! (`FindMatchingVolume` with a node) is the scheduler's VolumeBinding path;
//! berth runs it for pods already on a node, so each case puts the claim's
//! pod on the case's node, with upstream's class `wait` as a
//! WaitForFirstConsumer class without provisioner. Upstream's
//! `excludedVolumes` (volumes already chosen for the pod's other claims) are
//! expressed as other claims of the same pod that sort first and take them.

use berth_tests::upstream::*;

const RWO: &[&str] = &["ReadWriteOnce"];
const RWO_ROX: &[&str] = &["ReadWriteOnce", "ReadOnlyMany"];

/// Upstream cases a plan cannot express.
const NOT_APPLICABLE: &[(&str, &str)] = &[
    (
        "TestDelayBindingMode/no-mode-class",
        "a StorageClass without volumeBindingMode cannot be stored: the API server defaults it to Immediate",
    ),
    (
        "TestFindMatchVolumeWithNode/[VolumeAttributiesClass: false] (all cases)",
        "VolumeAttributesClass feature gate disabled: GA and on; only the enabled run is ported",
    ),
    (
        "TestFindMatchVolumeWithNode/fail-on-error",
        "runs only with the VolumeAttributesClass gate disabled (FindMatchingVolume errors on a claim with a class); GA and on",
    ),
    (
        "TestFindMatchVolumeWithNode/fail-volumes-vac",
        "runs only with the VolumeAttributesClass gate disabled; GA and on",
    ),
    (
        "TestCheckVolumeNodeAffinity/valid-no-constraints",
        "nodeAffinity without `required` is refused by the API server's PV validation (required: must specify required node constraints)",
    ),
    (
        "TestCheckVolumeNodeAffinity/select-nothing",
        "`required` without node selector terms is refused by the API server's PV validation (must have at least one node selector term)",
    ),
];

/// Upstream cases about where the scheduler may put a pod that is not on a
/// node yet; they wait for berth's prediction of pod scheduling.
const PENDING_POD_SCHEDULING: &[(&str, &str)] = &[(
    "TestFindMatchVolumeWithNode/fail-prebound-node-affinity",
    "pending berth's pod scheduling prediction: the scheduler refuses node3 for a pod whose claim is pre-bound to a volume of node1; a pod already on node3 cannot express it (the PV controller binds the pre-bound pair regardless of nodes)",
)];

fn wait_class() -> String {
    storage_class(
        "wait",
        "kubernetes.io/no-provisioner",
        None,
        Some("WaitForFirstConsumer"),
    )
}

// ---------------------------------------------------------------------------
// TestDelayBindingMode
// ---------------------------------------------------------------------------

/// IsDelayBindingMode decides whether the PV controller binds a claim now:
/// each case gives the claim a free volume of its class and no pod, so a
/// delayed claim stays waiting and an immediate one is bound.
#[test]
fn test_delay_binding_mode() {
    use Want::*;
    let classes = vec![
        storage_class(
            "immediate-mode",
            "kubernetes.io/no-provisioner",
            None,
            Some("Immediate"),
        ),
        storage_class(
            "wait-mode",
            "kubernetes.io/no-provisioner",
            None,
            Some("WaitForFirstConsumer"),
        ),
    ];
    let vol = |class: &str| Pv::new("pv", "1Gi").class(class).phase("Available");
    let claim = |class: Option<&str>| {
        let c = Pvc::new("default", "claim", "1Gi");
        match class {
            Some(cl) => c.class(cl),
            None => c,
        }
    };
    let cases = vec![
        SyncCase {
            name: "TestDelayBindingMode/nil-class",
            volumes: vec![vol("")],
            claims: vec![claim(None)],
            wants: vec![Bound("default/claim", "pv")],
        },
        SyncCase {
            name: "TestDelayBindingMode/class-not-found",
            volumes: vec![vol("not-here")],
            claims: vec![claim(Some("not-here"))],
            wants: vec![Bound("default/claim", "pv")],
        },
        SyncCase {
            name: "TestDelayBindingMode/immediate-mode-class",
            volumes: vec![vol("immediate-mode")],
            claims: vec![claim(Some("immediate-mode"))],
            wants: vec![Bound("default/claim", "pv")],
        },
        SyncCase {
            name: "TestDelayBindingMode/wait-mode-class",
            volumes: vec![vol("wait-mode")],
            claims: vec![claim(Some("wait-mode"))],
            wants: vec![PendingBecause(
                "default/claim",
                "waiting for first consumer",
            )],
        },
    ];
    run_sync_cases(&cases, &classes);
}

// ---------------------------------------------------------------------------
// TestFindMatchVolumeWithNode
// ---------------------------------------------------------------------------

/// `makeTestVolume(uid, name, capacity, available, modfn)`: local, RWO+ROX,
/// Filesystem, phase Available when `available`.
fn make_test_volume(name: &str, capacity: &str, available: bool) -> Pv {
    let pv = Pv::new(name, capacity)
        .modes(RWO_ROX)
        .volume_mode("Filesystem")
        .source("  local:\n    path: /mnt/disks/upstream\n");
    if available { pv.phase("Available") } else { pv }
}

/// The volumes of TestFindMatchVolumeWithNode. UID → name: local-small
/// local001, local-pd-very-large local002, affinity-pv affinity001,
/// affinity-pv2 affinity002, affinity-prebound affinity003, affinity-pv3
/// affinity003 upstream — two PVs cannot share a name on an API server, so
/// affinity-pv3 is `affinity003-pv3` here — and affinity-pv4 affinity004
/// (no phase).
fn node_volumes(vac: Option<&str>) -> Vec<Pv> {
    let vols = vec![
        make_test_volume("local001", "5G", true),
        make_test_volume("local002", "200E", true).class("large"),
        make_test_volume("affinity001", "100G", true)
            .class("wait")
            .affinity_in("key1", "value1"),
        make_test_volume("affinity002", "150G", true)
            .class("wait")
            .affinity_in("key1", "value1"),
        make_test_volume("affinity003", "100G", true)
            .class("wait")
            .claim_ref_in("myns", "", "claim02")
            .affinity_in("key1", "value1"),
        make_test_volume("affinity003-pv3", "200G", true)
            .class("wait")
            .affinity_in("key1", "value3"),
        make_test_volume("affinity004", "200G", false)
            .class("wait")
            .affinity_in("key1", "value4"),
    ];
    match vac {
        Some(v) => vols.into_iter().map(|pv| pv.attributes_class(v)).collect(),
        None => vols,
    }
}

/// `makeTestPersistentVolumeClaim(name, size, modes, modfn)`: myns, class
/// `wait`, Filesystem.
fn make_claim(name: &str, size: &str, modes: &[&str]) -> Pvc {
    Pvc::new("myns", name, size)
        .modes(modes)
        .class("wait")
        .volume_mode("Filesystem")
}

fn nodes() -> String {
    (1..=4)
        .map(|i| node(&format!("node{i}"), &[("key1", &format!("value{i}"))]))
        .collect()
}

/// One node-aware case: the claims (the last is upstream's claim, the
/// others stand for `excludedVolumes`), the pod's node, the volumes.
struct NodeCase {
    name: &'static str,
    volumes: Vec<Pv>,
    claims: Vec<Pvc>,
    node: &'static str,
    wants: Vec<Want>,
}

fn run_node_cases(cases: Vec<NodeCase>) {
    let mut failures = Vec::new();
    for c in cases {
        let names: Vec<&str> = c.claims.iter().map(|x| x.name.as_str()).collect();
        let extra = vec![
            wait_class(),
            nodes(),
            pod("myns", "pod1", Some(c.node), &names),
        ];
        let p = berth_tests::plan(&manifests(&c.volumes, &c.claims, &extra));
        for line in unmet(&p, &c.wants) {
            failures.push(format!("{}: {line}", c.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn find_match_volume_with_node_cases() -> Vec<NodeCase> {
    use Want::*;
    let vols = node_volumes(None);
    let gold = node_volumes(Some("gold"));
    vec![
        NodeCase {
            name: "TestFindMatchVolumeWithNode/success-match",
            volumes: vols.clone(),
            claims: vec![make_claim("claim01", "100G", RWO)],
            node: "node1",
            wants: vec![Bound("myns/claim01", "affinity001")],
        },
        NodeCase {
            name: "TestFindMatchVolumeWithNode/success-prebound",
            volumes: vols.clone(),
            claims: vec![make_claim("claim02", "100G", RWO)],
            node: "node1",
            wants: vec![Bound("myns/claim02", "affinity003")],
        },
        // excludedVolumes {affinity001}: the pod's claim00 takes it first.
        NodeCase {
            name: "TestFindMatchVolumeWithNode/success-exclusion",
            volumes: vols.clone(),
            claims: vec![
                make_claim("claim00", "100G", RWO),
                make_claim("claim01", "100G", RWO),
            ],
            node: "node1",
            wants: vec![
                Bound("myns/claim00", "affinity001"),
                Bound("myns/claim01", "affinity002"),
            ],
        },
        // excludedVolumes {affinity001, affinity002}: two other claims of
        // the pod take them.
        NodeCase {
            name: "TestFindMatchVolumeWithNode/fail-exclusion",
            volumes: vols.clone(),
            claims: vec![
                make_claim("claim00a", "100G", RWO),
                make_claim("claim00b", "100G", RWO),
                make_claim("claim01", "100G", RWO),
            ],
            node: "node1",
            wants: vec![
                Bound("myns/claim00a", "affinity001"),
                Bound("myns/claim00b", "affinity002"),
                NoVolume("myns/claim01"),
            ],
        },
        NodeCase {
            name: "TestFindMatchVolumeWithNode/fail-accessmode",
            volumes: vols.clone(),
            claims: vec![make_claim("claim01", "100G", &["ReadWriteMany"])],
            node: "node1",
            wants: vec![NoVolume("myns/claim01")],
        },
        NodeCase {
            name: "TestFindMatchVolumeWithNode/fail-nodeaffinity",
            volumes: vols.clone(),
            claims: vec![make_claim("claim01", "100G", RWO)],
            node: "node2",
            wants: vec![NoVolume("myns/claim01")],
        },
        // One FindMatchingVolume call skips affinity004, whose phase is not
        // Available. The PV controller's syncVolume makes every volume
        // without claimRef Available, and the scheduler's retry then
        // matches it: converged state asserted.
        NodeCase {
            name: "TestFindMatchVolumeWithNode/fail-nonavaliable",
            volumes: vols.clone(),
            claims: vec![make_claim("claim04", "100G", RWO)],
            node: "node4",
            wants: vec![Bound("myns/claim04", "affinity004")],
        },
        NodeCase {
            name: "TestFindMatchVolumeWithNode/success-bad-and-good-node-affinity",
            volumes: vols.clone(),
            claims: vec![make_claim("claim03", "100G", RWO)],
            node: "node3",
            wants: vec![Bound("myns/claim03", "affinity003-pv3")],
        },
        NodeCase {
            name: "TestFindMatchVolumeWithNode/success-match-with-vac",
            volumes: gold.clone(),
            claims: vec![make_claim("claim01", "100G", RWO).attributes_class("gold")],
            node: "node1",
            wants: vec![Bound("myns/claim01", "affinity001")],
        },
        NodeCase {
            name: "TestFindMatchVolumeWithNode/fail-vac",
            volumes: vols,
            claims: vec![make_claim("claim01", "100G", RWO).attributes_class("silver")],
            node: "node1",
            wants: vec![NoVolume("myns/claim01")],
        },
        NodeCase {
            name: "TestFindMatchVolumeWithNode/fail-prebound-vac",
            volumes: gold,
            claims: vec![make_claim("claim02", "100G", RWO).attributes_class("silver")],
            node: "node1",
            wants: vec![NoVolume("myns/claim02")],
        },
    ]
}

#[test]
fn test_find_match_volume_with_node() {
    run_node_cases(find_match_volume_with_node_cases());
}

// ---------------------------------------------------------------------------
// TestCheckVolumeNodeAffinity (helpers_test.go)
// ---------------------------------------------------------------------------

/// A `required` node selector from terms, each a list of
/// (key, values) `In` requirements.
fn required(terms: &[&[(&str, &[&str])]]) -> String {
    let mut o = String::from("  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n");
    for term in terms {
        if term.is_empty() {
            o.push_str("      - matchExpressions: []\n");
            continue;
        }
        o.push_str("      - matchExpressions:\n");
        for (k, vs) in *term {
            o.push_str(&format!(
                "        - key: {k}\n          operator: In\n          values: [{}]\n",
                vs.join(", ")
            ));
        }
    }
    o
}

/// CheckNodeAffinity(pv, nodeLabels) with nodeLabels test-key1=test-value1,
/// test-key2=test-value2: the volume's claim is used by a pod on that node,
/// so success means berth binds it there.
#[test]
fn test_check_volume_node_affinity() {
    let table: Vec<(&'static str, Option<String>, bool)> = vec![
        ("valid-nil", None, true),
        ("select-nothing-empty-terms", Some(required(&[&[]])), false),
        (
            "valid-multiple-terms",
            Some(required(&[
                &[("test-key3", &["test-value1", "test-value3"])],
                &[("test-key2", &["test-value0", "test-value2"])],
            ])),
            true,
        ),
        (
            "valid-multiple-match-expressions",
            Some(required(&[&[
                ("test-key1", &["test-value1", "test-value3"]),
                ("test-key2", &["test-value0", "test-value2"]),
            ]])),
            true,
        ),
        (
            "invalid-multiple-match-expressions-key",
            Some(required(&[&[
                ("test-key1", &["test-value1", "test-value3"]),
                ("test-key3", &["test-value0", "test-value2"]),
            ]])),
            false,
        ),
        (
            "invalid-multiple-match-expressions-values",
            Some(required(&[&[
                ("test-key1", &["test-value3", "test-value4"]),
                ("test-key2", &["test-value0", "test-value2"]),
            ]])),
            false,
        ),
        (
            "invalid-multiple-terms",
            Some(required(&[
                &[("test-key3", &["test-value1", "test-value3"])],
                &[("test-key2", &["test-value0", "test-value1"])],
            ])),
            false,
        ),
    ];
    let mut failures = Vec::new();
    for (name, affinity, ok) in table {
        let mut pv = Pv::new("test-constraints", "1Gi")
            .class("wait")
            .phase("Available");
        if let Some(a) = &affinity {
            pv = pv.node_affinity(a);
        }
        let claim = Pvc::new("default", "claim", "1Gi").class("wait");
        let extra = vec![
            wait_class(),
            node(
                "node",
                &[("test-key1", "test-value1"), ("test-key2", "test-value2")],
            ),
            pod("default", "pod", Some("node"), &["claim"]),
        ];
        let p = berth_tests::plan(&manifests(&[pv], &[claim], &extra));
        let want = if ok {
            Want::Bound("default/claim", "test-constraints")
        } else {
            Want::NoVolume("default/claim")
        };
        for line in unmet(&p, &[want]) {
            failures.push(format!("TestCheckVolumeNodeAffinity/{name}: {line}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------
// TestPersistentVolumeClaimHasClass (helpers_test.go)
// ---------------------------------------------------------------------------

/// PersistentVolumeClaimHasClass decides whether a default class is given
/// to a claim (DefaultStorageClass admission, and the PV controller's
/// retroactive default): a default class exists, so a claim without class
/// is provisioned with it, and one whose class is set (even to `""`, by
/// annotation or field) is not.
#[test]
fn test_persistent_volume_claim_has_class() {
    use Want::*;
    let default = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: standard\n  annotations:\n    storageclass.kubernetes.io/is-default-class: \"true\"\nprovisioner: csi.example.com\n---\n".to_string();
    let claim = || Pvc::new("default", "claim", "1Gi");
    let cases = vec![
        SyncCase {
            name: "TestPersistentVolumeClaimHasClass/no storage class",
            volumes: vec![],
            claims: vec![claim()],
            wants: vec![Provisioned("default/claim")],
        },
        SyncCase {
            name: "TestPersistentVolumeClaimHasClass/storage class set on annotation",
            volumes: vec![],
            claims: vec![claim().ann(ANN_BETA_CLASS, "")],
            wants: vec![PendingBecause("default/claim", "no storage class is set")],
        },
        SyncCase {
            name: "TestPersistentVolumeClaimHasClass/storage class set on spec",
            volumes: vec![],
            claims: vec![claim().class("")],
            wants: vec![PendingBecause("default/claim", "no storage class is set")],
        },
    ];
    run_sync_cases(&cases, &[default]);
}

#[test]
fn not_applicable_and_pending_lists_are_a_partition() {
    let ported: Vec<&str> = find_match_volume_with_node_cases()
        .iter()
        .map(|c| c.name)
        .collect();
    let all: Vec<(&str, &str)> = NOT_APPLICABLE
        .iter()
        .chain(PENDING_POD_SCHEDULING)
        .copied()
        .collect();
    assert_partition(&ported, &all);
}
