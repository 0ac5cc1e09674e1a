//! Table-driven cases for where new node-local volumes go: berth's placement
//! of Immediate claims of `csi.berth.dev` (the node with the most free
//! storage, ties by name, a burst spread by what is already planned) and the
//! scheduler's storage capacity check for WaitForFirstConsumer claims.

use berth_tests::*;

const RWO: &[&str] = &["ReadWriteOnce"];
const KEY: &str = "topology.csi.berth.dev/node";

/// A node labelled with its name under berth's topology key (and `zone`),
/// with berth registered in its CSINode (`limit` = allocatable count).
fn node(name: &str, zone: &str, limit: Option<u32>) -> String {
    let allocatable = limit
        .map(|l| format!("    allocatable:\n      count: {l}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    {KEY}: {name}\n    zone: {zone}\n---\napiVersion: storage.k8s.io/v1\nkind: CSINode\nmetadata:\n  name: {name}\nspec:\n  drivers:\n  - name: csi.berth.dev\n    nodeID: {name}\n    topologyKeys: [{KEY}]\n{allocatable}---\n"
    )
}

/// A node that exists but has not registered berth (no CSINode entry).
fn bare_node(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    {KEY}: {name}\n---\n"
    )
}

fn csi_driver(storage_capacity: bool) -> String {
    format!(
        "apiVersion: storage.k8s.io/v1\nkind: CSIDriver\nmetadata:\n  name: csi.berth.dev\nspec:\n  attachRequired: false\n  storageCapacity: {storage_capacity}\n---\n"
    )
}

/// A CSIStorageCapacity of `class` for `node`, as berth's agent publishes it.
fn capacity(node: &str, class: &str, size: &str, max: Option<&str>) -> String {
    let max = max
        .map(|m| format!("maximumVolumeSize: {m}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: storage.k8s.io/v1\nkind: CSIStorageCapacity\nmetadata:\n  name: cap-{node}-{class}\n  namespace: berth-system\nstorageClassName: {class}\nnodeTopology:\n  matchLabels:\n    {KEY}: {node}\ncapacity: {size}\n{max}---\n"
    )
}

fn immediate(extra: &str) -> String {
    class("fast", "csi.berth.dev", extra)
}

/// Claim → node for every claim provisioned on a node.
fn placed(p: &berth::binding::Plan) -> Vec<(String, String)> {
    p.provisioning
        .iter()
        .filter_map(|x| Some((x.claim.name.clone(), x.node.clone()?)))
        .collect()
}

#[test]
fn the_node_with_the_most_free_storage_wins() {
    let cases: &[(&str, String, Option<&str>)] = &[
        (
            "most free storage",
            format!(
                "{}{}{}{}{}{}{}",
                csi_driver(true),
                node("na", "a", None),
                node("nb", "b", None),
                capacity("na", "fast", "5Gi", None),
                capacity("nb", "fast", "8Gi", None),
                immediate(""),
                pvc("c", "1Gi", RWO, Some("fast"), "")
            ),
            Some("nb"),
        ),
        (
            "ties go to the smallest node name",
            format!(
                "{}{}{}{}{}{}{}",
                csi_driver(true),
                node("nb", "b", None),
                node("na", "a", None),
                capacity("na", "fast", "8Gi", None),
                capacity("nb", "fast", "8Gi", None),
                immediate(""),
                pvc("c", "1Gi", RWO, Some("fast"), "")
            ),
            Some("na"),
        ),
        (
            "a node too small for the claim is skipped",
            format!(
                "{}{}{}{}{}{}{}",
                csi_driver(true),
                node("na", "a", None),
                node("nb", "b", None),
                capacity("na", "fast", "1Gi", None),
                capacity("nb", "fast", "3Gi", None),
                immediate(""),
                pvc("c", "2Gi", RWO, Some("fast"), "")
            ),
            Some("nb"),
        ),
        (
            "maximumVolumeSize bounds one volume even with more free storage",
            format!(
                "{}{}{}{}{}{}{}",
                csi_driver(true),
                node("na", "a", None),
                node("nb", "b", None),
                capacity("na", "fast", "100Gi", Some("1Gi")),
                capacity("nb", "fast", "3Gi", None),
                immediate(""),
                pvc("c", "2Gi", RWO, Some("fast"), "")
            ),
            Some("nb"),
        ),
        (
            "capacity of another class does not count",
            format!(
                "{}{}{}{}{}{}{}",
                csi_driver(true),
                node("na", "a", None),
                node("nb", "b", None),
                capacity("na", "other", "100Gi", None),
                capacity("nb", "fast", "3Gi", None),
                immediate(""),
                pvc("c", "2Gi", RWO, Some("fast"), "")
            ),
            Some("nb"),
        ),
        (
            "allowedTopologies rule nodes out",
            format!(
                "{}{}{}{}{}{}{}",
                csi_driver(true),
                node("na", "a", None),
                node("nb", "b", None),
                capacity("na", "fast", "100Gi", None),
                capacity("nb", "fast", "3Gi", None),
                immediate(
                    "allowedTopologies:\n- matchLabelExpressions:\n  - key: zone\n    values: [b]"
                ),
                pvc("c", "2Gi", RWO, Some("fast"), "")
            ),
            Some("nb"),
        ),
        (
            "a node without berth registered is skipped",
            format!(
                "{}{}{}{}{}{}{}",
                csi_driver(true),
                bare_node("na"),
                node("nb", "b", None),
                capacity("na", "fast", "100Gi", None),
                capacity("nb", "fast", "3Gi", None),
                immediate(""),
                pvc("c", "2Gi", RWO, Some("fast"), "")
            ),
            Some("nb"),
        ),
        (
            "a node at its volume limit is skipped",
            format!(
                "{}{}{}{}{}{}{}{}",
                csi_driver(true),
                node("na", "a", Some(1)),
                node("nb", "b", None),
                capacity("na", "fast", "100Gi", None),
                capacity("nb", "fast", "3Gi", None),
                pv(
                    "existing",
                    "1Gi",
                    RWO,
                    "fast",
                    &format!(
                        "  claimRef: {{namespace: default, name: old, uid: u1}}\n  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      - matchExpressions:\n        - {{key: {KEY}, operator: In, values: [na]}}"
                    )
                )
                .replace(
                    "  nfs:\n    path: /x\n    server: nfs.example\n",
                    "  csi: {driver: csi.berth.dev, volumeHandle: h1}\n"
                ),
                immediate(""),
                pvc("c", "2Gi", RWO, Some("fast"), "")
            ),
            Some("nb"),
        ),
        (
            "without storage capacity tracking the node with fewest volumes wins",
            format!(
                "{}{}{}{}{}{}",
                csi_driver(false),
                node("na", "a", None),
                node("nb", "b", None),
                pv(
                    "existing",
                    "1Gi",
                    RWO,
                    "fast",
                    &format!(
                        "  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      - matchExpressions:\n        - {{key: {KEY}, operator: In, values: [na]}}"
                    )
                )
                .replace(
                    "  nfs:\n    path: /x\n    server: nfs.example\n",
                    "  csi: {driver: csi.berth.dev, volumeHandle: h1}\n"
                ),
                immediate(""),
                pvc("c", "50Gi", RWO, Some("fast"), "")
            ),
            Some("nb"),
        ),
    ];
    for (name, yaml, want) in cases {
        let p = plan(yaml);
        let got = p
            .provisioning
            .iter()
            .find(|x| x.claim.to_string() == "default/c");
        assert_eq!(
            got.and_then(|x| x.node.as_deref()),
            *want,
            "case {name}: {p:#?}"
        );
        assert!(
            got.is_some_and(|x| x.placement.is_some()),
            "case {name}: berth's placement is recorded"
        );
    }
}

#[test]
fn a_burst_spreads_by_what_is_already_planned() {
    let claims: String = (1..=6)
        .map(|i| pvc(&format!("c{i}"), "2Gi", RWO, Some("fast"), ""))
        .collect();
    let yaml = format!(
        "{}{}{}{}{}{}{}{}{claims}",
        csi_driver(true),
        node("na", "a", None),
        node("nb", "b", None),
        node("nc", "c", None),
        capacity("na", "fast", "10Gi", None),
        capacity("nb", "fast", "8Gi", None),
        capacity("nc", "fast", "5Gi", None),
        immediate(""),
    );
    let p = plan(&yaml);
    // Free before each claim: na 10, nb 8, nc 5 → c1 na (10) → c2 na (8 = nb
    // 8, name) → c3 nb (8) → c4 na (6 = nb 6) → c5 nb (6) → c6 nc (5 > 4).
    let want = [
        ("c1", "na"),
        ("c2", "na"),
        ("c3", "nb"),
        ("c4", "na"),
        ("c5", "nb"),
        ("c6", "nc"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(c, n)| (c.to_string(), n.to_string()))
        .collect();
    assert_eq!(placed(&p), want);
    let free: Vec<String> = p
        .provisioning
        .iter()
        .map(|x| {
            x.placement
                .as_ref()
                .and_then(|pl| pl.free)
                .map(|q| q.to_string())
        })
        .map(|f| f.unwrap_or_default())
        .collect();
    assert_eq!(free, ["10Gi", "8Gi", "8Gi", "6Gi", "6Gi", "5Gi"]);
}

#[test]
fn claims_already_placed_count_against_their_node() {
    // c0 names nb already (an earlier round placed it, its agent has not
    // made the volume yet): nb has 8Gi - 6Gi = 2Gi left, so c1 goes to na.
    let placed_claim = pvc("c0", "6Gi", RWO, Some("fast"), "").replace(
        "  namespace: default\n",
        "  namespace: default\n  annotations:\n    volume.kubernetes.io/selected-node: nb\n",
    );
    let yaml = format!(
        "{}{}{}{}{}{}{placed_claim}{}",
        csi_driver(true),
        node("na", "a", None),
        node("nb", "b", None),
        capacity("na", "fast", "5Gi", None),
        capacity("nb", "fast", "8Gi", None),
        immediate(""),
        pvc("c1", "1Gi", RWO, Some("fast"), "")
    );
    let p = plan(&yaml);
    assert_eq!(
        placed(&p),
        [
            ("c0".to_string(), "nb".to_string()),
            ("c1".to_string(), "na".to_string())
        ]
    );
    let c0 = p.provisioning.iter().find(|x| x.claim.name == "c0");
    assert!(
        c0.is_some_and(|x| x.placement.is_none()),
        "c0's node was not chosen by this plan"
    );
}

#[test]
fn volumes_made_after_a_capacity_object_was_written_count_at_once() {
    // node-a's object was written when its volumes held 0 bytes; a 1Gi PV
    // has appeared on it since: 2Gi + 0 - 1Gi = 1Gi free, less than node-b.
    let stale = capacity("na", "fast", "2Gi", None).replace(
        "  namespace: berth-system\n",
        "  namespace: berth-system\n  annotations:\n    csi.berth.dev/volume-bytes: \"0\"\n",
    );
    let newer_pv = pv(
        "made-since",
        "1Gi",
        RWO,
        "fast",
        &format!(
            "  claimRef: {{namespace: default, name: old, uid: u1}}\n  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      - matchExpressions:\n        - {{key: {KEY}, operator: In, values: [na]}}"
        ),
    )
    .replace(
        "  nfs:\n    path: /x\n    server: nfs.example\n",
        "  csi: {driver: csi.berth.dev, volumeHandle: h1}\n",
    );
    let base = format!(
        "{}{}{}{}{}",
        csi_driver(true),
        node("na", "a", None),
        node("nb", "b", None),
        capacity("nb", "fast", "1536Mi", None),
        immediate(""),
    );
    let claim = pvc("c", "1Gi", RWO, Some("fast"), "");
    let p = plan(&format!("{base}{stale}{newer_pv}{claim}"));
    assert_eq!(placed(&p), [("c".to_string(), "nb".to_string())]);
    // The same object without the annotation is taken at its word.
    let p = plan(&format!(
        "{base}{}{newer_pv}{claim}",
        capacity("na", "fast", "2Gi", None)
    ));
    assert_eq!(placed(&p), [("c".to_string(), "na".to_string())]);
    // Once the object has caught up (its volumes hold the 1Gi), the same.
    let caught_up = capacity("na", "fast", "1Gi", None).replace(
        "  namespace: berth-system\n",
        "  namespace: berth-system\n  annotations:\n    csi.berth.dev/volume-bytes: 1Gi\n",
    );
    let p = plan(&format!("{base}{caught_up}{newer_pv}{claim}"));
    assert_eq!(placed(&p), [("c".to_string(), "nb".to_string())]);
}

#[test]
fn no_node_with_room_leaves_the_claim_pending_and_says_why() {
    let yaml = format!(
        "{}{}{}{}{}{}{}{}",
        csi_driver(true),
        node("na", "a", None),
        node("nb", "b", None),
        bare_node("nc"),
        capacity("na", "fast", "1Gi", None),
        immediate("allowedTopologies:\n- matchLabelExpressions:\n  - key: zone\n    values: [a]"),
        pvc("c", "2Gi", RWO, Some("fast"), ""),
        ""
    );
    let p = plan(&yaml);
    assert_eq!(
        pending_reason(&p, "default/c").as_deref(),
        Some(
            "no node has room for a new volume of storage class \"fast\": 0/3 nodes are available: 1 node(s) did not have the driver registered, 1 node(s) did not match the storage class's allowedTopologies, 1 node(s) did not have enough free storage."
        )
    );
    // No nodes at all.
    let p = plan(&format!(
        "{}{}",
        immediate(""),
        pvc("c", "2Gi", RWO, Some("fast"), "")
    ));
    assert_eq!(
        pending_reason(&p, "default/c").as_deref(),
        Some(
            "no node has room for a new volume of storage class \"fast\": 0/0 nodes are available."
        )
    );
}

#[test]
fn placement_only_applies_to_node_local_provisioners() {
    let yaml = format!(
        "{}{}{}",
        node("na", "a", None),
        class("ebs", "ebs.csi.aws.com", ""),
        pvc("c", "2Gi", RWO, Some("ebs"), "")
    );
    let p = plan(&yaml);
    assert_eq!(provisioned(&p, "default/c"), Some(None));
}

#[test]
fn the_scheduler_checks_storage_capacity_on_the_pods_node() {
    let wffc = class(
        "local",
        "csi.berth.dev",
        "volumeBindingMode: WaitForFirstConsumer",
    );
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: app\nspec:\n  nodeName: na\n  containers:\n  - name: c\n    image: i\n  volumes:\n  - name: v\n    persistentVolumeClaim:\n      claimName: c\n---\n";
    let cases: &[(&str, String, Result<&str, &str>)] = &[
        (
            "enough storage: provisioned on the pod's node",
            format!(
                "{}{}",
                csi_driver(true),
                capacity("na", "local", "5Gi", None)
            ),
            Ok("na"),
        ),
        (
            "too little storage",
            format!(
                "{}{}",
                csi_driver(true),
                capacity("na", "local", "1Gi", None)
            ),
            Err("node \"na\" did not have enough free storage for storage class \"local\""),
        ),
        (
            "no capacity object for the node",
            format!(
                "{}{}",
                csi_driver(true),
                capacity("nb", "local", "5Gi", None)
            ),
            Err("node \"na\" did not have enough free storage for storage class \"local\""),
        ),
        (
            "maximumVolumeSize is what the scheduler compares",
            format!(
                "{}{}",
                csi_driver(true),
                capacity("na", "local", "50Gi", Some("1Gi"))
            ),
            Err("node \"na\" did not have enough free storage for storage class \"local\""),
        ),
        (
            "a driver without storageCapacity is not checked",
            csi_driver(false),
            Ok("na"),
        ),
        (
            "no CSIDriver object is not checked",
            String::new(),
            Ok("na"),
        ),
    ];
    for (name, extra, want) in cases {
        let yaml = format!(
            "{}{wffc}{extra}{pod}{}",
            node("na", "a", None),
            pvc("c", "2Gi", RWO, Some("local"), "")
        );
        let p = plan(&yaml);
        match want {
            Ok(n) => assert_eq!(
                provisioned(&p, "default/c"),
                Some(Some(n.to_string())),
                "case {name}: {p:#?}"
            ),
            Err(reason) => assert_eq!(
                pending_reason(&p, "default/c").as_deref(),
                Some(*reason),
                "case {name}"
            ),
        }
    }
}

#[test]
fn capacity_objects_are_validated_at_the_edge() {
    let bad = "apiVersion: storage.k8s.io/v1\nkind: CSIStorageCapacity\nmetadata:\n  name: c\n  namespace: ns\nstorageClassName: fast\ncapacity: 12XB\n";
    let docs = berth::manifest::parse_str("caps.yaml", bad).expect("yaml");
    let err = berth::manifest::to_snapshot(docs).expect_err("bad quantity");
    let text = err.to_string();
    assert!(
        text.contains("CSIStorageCapacity c") && text.contains("capacity"),
        "{text}"
    );
    let unnamed_class = "apiVersion: storage.k8s.io/v1\nkind: CSIStorageCapacity\nmetadata:\n  name: c\n  namespace: ns\nstorageClassName: \"\"\n";
    let docs = berth::manifest::parse_str("caps.yaml", unnamed_class).expect("yaml");
    let err = berth::manifest::to_snapshot(docs).expect_err("no class");
    assert!(err.to_string().contains("storageClassName"), "{err}");
}

#[test]
fn a_request_below_the_file_systems_minimum_is_rounded_up_and_placed_at_that_size() {
    // xfs volumes are at least 300Mi: a 64Mi claim takes 300Mi on its node,
    // so the second one no longer fits node-a's 400Mi.
    let xfs = class(
        "xfs",
        "csi.berth.dev",
        "parameters:\n  csi.storage.k8s.io/fstype: xfs",
    );
    let yaml = format!(
        "{}{}{}{}{}{xfs}{}{}{}",
        csi_driver(true),
        node("na", "a", None),
        node("nb", "b", None),
        capacity("na", "xfs", "400Mi", None),
        capacity("nb", "xfs", "350Mi", None),
        pvc("c1", "64Mi", RWO, Some("xfs"), ""),
        pvc("c2", "64Mi", RWO, Some("xfs"), ""),
        pvc("block", "1Mi", RWO, Some("xfs"), "  volumeMode: Block"),
    );
    let p = plan(&yaml);
    let got: Vec<(String, Option<String>, Option<String>)> = p
        .provisioning
        .iter()
        .map(|x| {
            (
                x.claim.name.clone(),
                x.node.clone(),
                x.rounded_up.map(|q| q.to_string()),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("block".to_string(), Some("na".to_string()), None),
            (
                "c1".to_string(),
                Some("na".to_string()),
                Some("300Mi".to_string())
            ),
            (
                "c2".to_string(),
                Some("nb".to_string()),
                Some("300Mi".to_string())
            ),
        ],
        "raw block has no file system and no minimum"
    );
    // `berth dry-run` says so.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("xfs.yaml");
    std::fs::write(&file, &yaml).expect("write");
    let out = std::process::Command::new(berth_bin())
        .args(["dry-run", "-f"])
        .arg(&file)
        .output()
        .expect("berth dry-run");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("64Mi (rounded up to 300Mi, its file system's minimum)"),
        "{table}"
    );
}
