//! Table-driven cases for each binding rule of the PV controller and the
//! scheduler's VolumeBinding plugin, as berth predicts them.

use berth_tests::*;

const RWO: &[&str] = &["ReadWriteOnce"];
const RWX: &[&str] = &["ReadWriteMany"];
const RWO_ROX: &[&str] = &["ReadWriteOnce", "ReadOnlyMany"];
const ALL3: &[&str] = &["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany"];

/// (case name, manifests, claim, expected volume or None)
fn check_bindings(cases: &[(&str, String, &str, Option<&str>)]) {
    for (name, yaml, claim, want) in cases {
        let plan = plan(yaml);
        assert_eq!(
            bound_volume(&plan, claim).as_deref(),
            *want,
            "case {name}: plan = {plan:#?}"
        );
    }
}

#[test]
fn capacity_is_exact_quantity_arithmetic() {
    let cls = class("c", "kubernetes.io/no-provisioner", "");
    check_bindings(&[
        (
            "1G is less than 1Gi",
            format!(
                "{cls}{}{}",
                pv("p", "1G", RWO, "c", ""),
                pvc("a", "1Gi", RWO, Some("c"), "")
            ),
            "default/a",
            None,
        ),
        (
            "1024Mi equals 1Gi",
            format!(
                "{cls}{}{}",
                pv("p", "1024Mi", RWO, "c", ""),
                pvc("a", "1Gi", RWO, Some("c"), "")
            ),
            "default/a",
            Some("p"),
        ),
        (
            "smallest fitting volume wins",
            format!(
                "{cls}{}{}{}{}",
                pv("big", "100Gi", RWO, "c", ""),
                pv("small", "2Gi", RWO, "c", ""),
                pv("tiny", "1Gi", RWO, "c", ""),
                pvc("a", "1500Mi", RWO, Some("c"), "")
            ),
            "default/a",
            Some("small"),
        ),
        (
            "equal capacity tie goes to the smallest name",
            format!(
                "{cls}{}{}{}",
                pv("pv-b", "5Gi", RWO, "c", ""),
                pv("pv-a", "5Gi", RWO, "c", ""),
                pvc("a", "5Gi", RWO, Some("c"), "")
            ),
            "default/a",
            Some("pv-a"),
        ),
    ]);
}

#[test]
fn access_mode_sets_are_tried_from_fewest_modes() {
    let cls = class("c", "kubernetes.io/no-provisioner", "");
    check_bindings(&[
        (
            "exact set beats a smaller volume with more modes",
            format!(
                "{cls}{}{}{}",
                pv("nfs-small", "1Gi", ALL3, "c", ""),
                pv("rwo-big", "50Gi", RWO, "c", ""),
                pvc("a", "1Gi", RWO, Some("c"), "")
            ),
            "default/a",
            Some("rwo-big"),
        ),
        (
            "falls back to a superset when the exact set has nothing big enough",
            format!(
                "{cls}{}{}{}",
                pv("rwo-small", "1Gi", RWO, "c", ""),
                pv("rwo-rox", "10Gi", RWO_ROX, "c", ""),
                pvc("a", "5Gi", RWO, Some("c"), "")
            ),
            "default/a",
            Some("rwo-rox"),
        ),
        (
            "a volume lacking a requested mode never matches",
            format!(
                "{cls}{}{}",
                pv("p", "10Gi", RWO, "c", ""),
                pvc("a", "1Gi", RWX, Some("c"), "")
            ),
            "default/a",
            None,
        ),
    ]);
}

#[test]
fn class_volume_mode_selector_and_phase_filters() {
    let cls = class("c", "kubernetes.io/no-provisioner", "");
    let labelled = pv("p", "10Gi", RWO, "c", "").replace(
        "metadata:\n  name: p\n",
        "metadata:\n  name: p\n  labels:\n    release: stable\n    environment: dev\n",
    );
    check_bindings(&[
        (
            "class must be equal",
            format!("{cls}{}{}", pv("p", "10Gi", RWO, "other", ""), pvc("a", "1Gi", RWO, Some("c"), "")),
            "default/a",
            None,
        ),
        (
            "an explicit empty class matches only class-less volumes",
            format!("{}{}", pv("p", "10Gi", RWO, "", ""), pvc("a", "1Gi", RWO, Some(""), "")),
            "default/a",
            Some("p"),
        ),
        (
            "beta annotation wins over the field",
            format!(
                "{cls}{}{}",
                pv("p", "10Gi", RWO, "c", ""),
                pvc("a", "1Gi", RWO, Some("other"), "").replace(
                    "  namespace: default\n",
                    "  namespace: default\n  annotations:\n    volume.beta.kubernetes.io/storage-class: c\n"
                )
            ),
            "default/a",
            Some("p"),
        ),
        (
            "volumeMode unset equals Filesystem",
            format!(
                "{cls}{}{}",
                pv("p", "10Gi", RWO, "c", "  volumeMode: Filesystem"),
                pvc("a", "1Gi", RWO, Some("c"), "")
            ),
            "default/a",
            Some("p"),
        ),
        (
            "Block claims do not take Filesystem volumes",
            format!(
                "{cls}{}{}",
                pv("p", "10Gi", RWO, "c", ""),
                pvc("a", "1Gi", RWO, Some("c"), "  volumeMode: Block")
            ),
            "default/a",
            None,
        ),
        (
            "selector matchLabels and In expression",
            format!(
                "{cls}{labelled}{}",
                pvc(
                    "a",
                    "1Gi",
                    RWO,
                    Some("c"),
                    "  selector:\n    matchLabels:\n      release: stable\n    matchExpressions:\n      - {key: environment, operator: In, values: [dev]}"
                )
            ),
            "default/a",
            Some("p"),
        ),
        (
            "selector NotIn excludes",
            format!(
                "{cls}{labelled}{}",
                pvc(
                    "a",
                    "1Gi",
                    RWO,
                    Some("c"),
                    "  selector:\n    matchExpressions:\n      - {key: environment, operator: NotIn, values: [dev]}"
                )
            ),
            "default/a",
            None,
        ),
        (
            "selector DoesNotExist and Exists",
            format!(
                "{cls}{labelled}{}",
                pvc(
                    "a",
                    "1Gi",
                    RWO,
                    Some("c"),
                    "  selector:\n    matchExpressions:\n      - {key: tier, operator: DoesNotExist}\n      - {key: release, operator: Exists}"
                )
            ),
            "default/a",
            Some("p"),
        ),
        (
            "a volume being deleted is skipped",
            format!(
                "{cls}{}{}",
                pv("p", "10Gi", RWO, "c", "").replace(
                    "metadata:\n  name: p\n",
                    "metadata:\n  name: p\n  deletionTimestamp: \"2026-01-01T00:00:00Z\"\n"
                ),
                pvc("a", "1Gi", RWO, Some("c"), "")
            ),
            "default/a",
            None,
        ),
    ]);
}

#[test]
fn claim_ref_pre_binding() {
    let cls = class("c", "kubernetes.io/no-provisioner", "");
    let reserved_for = |claim: &str, uid: &str| {
        let uid = if uid.is_empty() {
            String::new()
        } else {
            format!("\n    uid: {uid}")
        };
        format!("  claimRef:\n    name: {claim}\n    namespace: default{uid}")
    };
    check_bindings(&[
        (
            "pre-bound volume wins over a smaller free one, without class or selector checks",
            format!(
                "{cls}{}{}{}",
                pv("free", "1Gi", RWO, "c", ""),
                pv("reserved", "9Gi", RWO, "other", &reserved_for("a", "")),
                pvc("a", "1Gi", RWO, Some("c"), "")
            ),
            "default/a",
            Some("reserved"),
        ),
        (
            "a reservation for another claim is never taken",
            format!(
                "{cls}{}{}",
                pv("reserved", "9Gi", RWO, "c", &reserved_for("someone", "")),
                pvc("a", "1Gi", RWO, Some("c"), "")
            ),
            "default/a",
            None,
        ),
        (
            "pre-bound volume still needs capacity",
            format!(
                "{cls}{}{}",
                pv("reserved", "1Gi", RWO, "c", &reserved_for("a", "")),
                pvc("a", "2Gi", RWO, Some("c"), "")
            ),
            "default/a",
            None,
        ),
        (
            "a uid claimRef to a new claim is a released volume, never rebound",
            format!(
                "{cls}{}{}",
                pv("old", "9Gi", RWO, "c", &reserved_for("a", "\"1234\"")),
                pvc("a", "1Gi", RWO, Some("c"), "")
            ),
            "default/a",
            None,
        ),
    ]);
}

#[test]
fn volume_name_binds_only_that_volume_after_checks() {
    let cls = class("c", "kubernetes.io/no-provisioner", "");
    let named = |v: &str| format!("  volumeName: {v}");
    let cases: &[(&str, String, Option<&str>, Option<&str>)] = &[
        (
            "named volume is bound, selector ignored",
            format!(
                "{cls}{}{}{}",
                pv("small", "1Gi", RWO, "c", ""),
                pv("named", "50Gi", RWO, "c", ""),
                pvc(
                    "a",
                    "1Gi",
                    RWO,
                    Some("c"),
                    &format!(
                        "{}\n  selector:\n    matchLabels:\n      nope: nope",
                        named("named")
                    )
                )
            ),
            Some("named"),
            None,
        ),
        (
            "too small",
            format!(
                "{cls}{}{}",
                pv("named", "1Gi", RWO, "c", ""),
                pvc("a", "2Gi", RWO, Some("c"), &named("named"))
            ),
            None,
            Some("Cannot bind to requested volume \"named\": requested PV is too small"),
        ),
        (
            "class mismatch",
            format!(
                "{cls}{}{}",
                pv("named", "5Gi", RWO, "x", ""),
                pvc("a", "2Gi", RWO, Some("c"), &named("named"))
            ),
            None,
            Some("Cannot bind to requested volume \"named\": storageClassName does not match"),
        ),
        (
            "access mode mismatch",
            format!(
                "{cls}{}{}",
                pv("named", "5Gi", RWO, "c", ""),
                pvc("a", "2Gi", RWX, Some("c"), &named("named"))
            ),
            None,
            Some("Cannot bind to requested volume \"named\": incompatible accessMode"),
        ),
        (
            "volume mode mismatch",
            format!(
                "{cls}{}{}",
                pv("named", "5Gi", RWO, "c", "  volumeMode: Block"),
                pvc("a", "2Gi", RWO, Some("c"), &named("named"))
            ),
            None,
            Some("Cannot bind to requested volume \"named\": incompatible volumeMode"),
        ),
        (
            "missing volume",
            format!("{cls}{}", pvc("a", "2Gi", RWO, Some("c"), &named("ghost"))),
            None,
            Some("volume \"ghost\" requested by spec.volumeName does not exist"),
        ),
        (
            "volume reserved for someone else",
            format!(
                "{cls}{}{}",
                pv(
                    "named",
                    "5Gi",
                    RWO,
                    "c",
                    "  claimRef:\n    name: other\n    namespace: default"
                ),
                pvc("a", "2Gi", RWO, Some("c"), &named("named"))
            ),
            None,
            Some("volume \"named\" already bound to a different claim."),
        ),
    ];
    for (name, yaml, want_bound, want_reason) in cases {
        let plan = plan(yaml);
        assert_eq!(
            bound_volume(&plan, "default/a").as_deref(),
            *want_bound,
            "case {name}"
        );
        assert_eq!(
            pending_reason(&plan, "default/a").as_deref(),
            *want_reason,
            "case {name}"
        );
    }
}

#[test]
fn volume_name_claims_are_decided_before_matching_claims() {
    // `aaa` sorts first and would take `only` by matching; `zzz` names it.
    let cls = class("c", "kubernetes.io/no-provisioner", "");
    let yaml = format!(
        "{cls}{}{}{}",
        pv("only", "5Gi", RWO, "c", ""),
        pvc("aaa", "1Gi", RWO, Some("c"), ""),
        pvc("zzz", "1Gi", RWO, Some("c"), "  volumeName: only")
    );
    let plan = plan(&yaml);
    assert_eq!(bound_volume(&plan, "default/zzz").as_deref(), Some("only"));
    assert_eq!(bound_volume(&plan, "default/aaa"), None);
}

#[test]
fn no_volume_is_bound_twice() {
    let cls = class("c", "kubernetes.io/no-provisioner", "");
    let yaml = format!(
        "{cls}{}{}{}{}",
        pv("one", "5Gi", RWO, "c", ""),
        pvc("a", "1Gi", RWO, Some("c"), ""),
        pvc("b", "1Gi", RWO, Some("c"), ""),
        pvc("c", "1Gi", RWO, Some("c"), "")
    );
    let plan = plan(&yaml);
    assert_eq!(
        bindings(&plan),
        vec![("default/a".to_string(), "one".to_string())]
    );
    assert_eq!(plan.pending.len(), 2);
}

#[test]
fn dynamic_provisioning_rules() {
    let cases: &[(&str, String, Option<&str>)] = &[
        (
            "unmatched claim of a provisioning class is provisioned",
            format!(
                "{}{}",
                class("fast", "ebs.csi.aws.com", ""),
                pvc("a", "1Gi", RWO, Some("fast"), "")
            ),
            None,
        ),
        (
            "a selector is never provisioned",
            format!(
                "{}{}",
                class("fast", "ebs.csi.aws.com", ""),
                pvc(
                    "a",
                    "1Gi",
                    RWO,
                    Some("fast"),
                    "  selector:\n    matchLabels:\n      a: b"
                )
            ),
            Some(
                "no persistent volume matches and a claim with a selector is never provisioned (claim Selector is not supported)",
            ),
        ),
        (
            "an explicit empty class is never provisioned nor defaulted",
            format!(
                "{}{}",
                "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: fast\n  annotations:\n    storageclass.kubernetes.io/is-default-class: \"true\"\nprovisioner: ebs.csi.aws.com\n---\n",
                pvc("a", "1Gi", RWO, Some(""), "")
            ),
            Some("no persistent volumes available for this claim and no storage class is set"),
        ),
        (
            "no-provisioner never creates volumes",
            format!(
                "{}{}",
                class("local", "kubernetes.io/no-provisioner", ""),
                pvc("a", "1Gi", RWO, Some("local"), "")
            ),
            Some(
                "no persistent volume matches and storage class \"local\" uses kubernetes.io/no-provisioner, which never creates volumes",
            ),
        ),
        (
            "missing class",
            pvc("a", "1Gi", RWO, Some("ghost"), ""),
            Some("storageclass.storage.k8s.io \"ghost\" not found"),
        ),
        (
            "an access mode the provisioner cannot serve",
            format!(
                "{}{}",
                class("ebs", "kubernetes.io/aws-ebs", ""),
                pvc("a", "1Gi", RWX, Some("ebs"), "")
            ),
            Some(
                "no persistent volume matches and provisioner kubernetes.io/aws-ebs cannot serve access mode ReadWriteMany",
            ),
        ),
    ];
    for (name, yaml, want_reason) in cases {
        let plan = plan(yaml);
        if name.contains("empty class") {
            // The default exists: a claim without any class does get it.
            let unset = plan_with_extra(yaml, &pvc("unset", "1Gi", RWO, None, ""));
            assert_eq!(
                provisioned(&unset, "default/unset"),
                Some(None),
                "case {name}"
            );
        }
        assert_eq!(
            pending_reason(&plan, "default/a").as_deref(),
            *want_reason,
            "case {name}: {plan:#?}"
        );
        assert_eq!(
            provisioned(&plan, "default/a").is_some(),
            want_reason.is_none(),
            "case {name}"
        );
    }
}

fn plan_with_extra(yaml: &str, extra: &str) -> berth::binding::Plan {
    plan(&format!("{yaml}\n---\n{extra}"))
}

const WFFC_CLASS: &str = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: local\nprovisioner: csi.berth.dev\nvolumeBindingMode: WaitForFirstConsumer\n---\n";

fn node(name: &str, zone: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    zone: {zone}\n---\n"
    )
}

fn pod(name: &str, node: Option<&str>, claim: &str) -> String {
    let node = node
        .map(|n| format!("  nodeName: {n}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{node}  containers:\n  - name: c\n    image: i\n  volumes:\n  - name: v\n    persistentVolumeClaim:\n      claimName: {claim}\n---\n"
    )
}

fn zone_affinity(zone: &str) -> String {
    format!(
        "  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      - matchExpressions:\n        - key: zone\n          operator: In\n          values: [{zone}]"
    )
}

#[test]
fn wait_for_first_consumer() {
    let base = format!(
        "{WFFC_CLASS}{}{}{}{}",
        node("n1", "a"),
        node("n2", "b"),
        pv("in-a", "5Gi", RWO, "local", &zone_affinity("a")),
        pv("in-b", "5Gi", RWO, "local", &zone_affinity("b"))
    );
    // No consumer: waits, even though volumes would fit.
    let p = plan(&format!(
        "{base}{}",
        pvc("a", "1Gi", RWO, Some("local"), "")
    ));
    assert_eq!(
        pending_reason(&p, "default/a").as_deref(),
        Some("waiting for first consumer to be created before binding")
    );
    // A consumer that is not scheduled yet: berth schedules it as the
    // scheduler would (both nodes fit; the first by name) and the claim
    // binds on that node.
    let p = plan(&format!(
        "{base}{}{}",
        pvc("a", "1Gi", RWO, Some("local"), ""),
        pod("app", None, "a")
    ));
    assert_eq!(pending_reason(&p, "default/a"), None);
    assert_eq!(bound_volume(&p, "default/a").as_deref(), Some("in-a"));
    assert_eq!(p.scheduling[0].node.as_deref(), Some("n1"));
    // Not schedulable (its only node cordoned): the claim keeps waiting
    // for its pod, and the pod says why.
    let p = plan(&format!(
        "{}{}{}",
        base.replace(
            "    zone: a\n---\n",
            "    zone: a\nspec:\n  unschedulable: true\n---\n"
        )
        .replace(
            "    zone: b\n---\n",
            "    zone: b\nspec:\n  unschedulable: true\n---\n"
        ),
        pvc("a", "1Gi", RWO, Some("local"), ""),
        pod("app", None, "a")
    ));
    assert_eq!(
        pending_reason(&p, "default/a").as_deref(),
        Some("waiting for pod default/app to be scheduled")
    );
    assert_eq!(
        p.scheduling[0].reason.as_deref(),
        Some("0/2 nodes are available: 2 node(s) were unschedulable.")
    );
    // Scheduled on n2: only the volume whose node affinity allows n2.
    let p = plan(&format!(
        "{base}{}{}",
        pvc("a", "1Gi", RWO, Some("local"), ""),
        pod("app", Some("n2"), "a")
    ));
    assert_eq!(bound_volume(&p, "default/a").as_deref(), Some("in-b"));
    // Scheduled, no static volume fits: provisioned for that node.
    let p = plan(&format!(
        "{base}{}{}",
        pvc("a", "50Gi", RWO, Some("local"), ""),
        pod("app", Some("n1"), "a")
    ));
    assert_eq!(provisioned(&p, "default/a"), Some(Some("n1".to_string())));
    // selected-node annotation: provisioned there (the PV controller does not match static PVs then).
    let annotated = pvc("a", "1Gi", RWO, Some("local"), "").replace(
        "  namespace: default\n",
        "  namespace: default\n  annotations:\n    volume.kubernetes.io/selected-node: n1\n",
    );
    let p = plan(&format!("{base}{annotated}"));
    assert_eq!(provisioned(&p, "default/a"), Some(Some("n1".to_string())));
}

#[test]
fn reclaim_policies() {
    let cls = class("c", "kubernetes.io/no-provisioner", "");
    let released = |name: &str, policy: &str, source: &str| {
        format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {name}\nspec:\n  capacity:\n    storage: 5Gi\n  accessModes: [ReadWriteOnce]\n  storageClassName: c\n  persistentVolumeReclaimPolicy: {policy}\n  claimRef:\n    name: gone-{name}\n    namespace: default\n    uid: 11111111-2222\n{source}\n---\n"
        )
    };
    let nfs = "  nfs:\n    path: /x\n    server: s";
    let csi = "  csi:\n    driver: csi.berth.dev\n    volumeHandle: h1";
    let yaml = format!(
        "{cls}{}{}{}{}{}{}",
        released("retain", "Retain", nfs),
        released("delete-csi", "Delete", csi),
        released("delete-nfs", "Delete", nfs),
        released("recycle-nfs", "Recycle", nfs),
        released("recycle-csi", "Recycle", csi),
        released("weird", "Shred", nfs),
    );
    let p = plan(&yaml);
    let got: Vec<(String, &str)> = p
        .reclaim
        .iter()
        .map(|r| (r.volume.clone(), r.action.as_str()))
        .collect();
    let want = vec![
        ("delete-csi".to_string(), "delete"),
        ("delete-nfs".to_string(), "fail"),
        ("recycle-csi".to_string(), "fail"),
        ("recycle-nfs".to_string(), "recycle"),
        ("retain".to_string(), "keep"),
        ("weird".to_string(), "fail"),
    ];
    assert_eq!(got, want);
    // A claimRef without uid is a reservation, not a release.
    let yaml = format!(
        "{cls}{}",
        pv(
            "r",
            "5Gi",
            RWO,
            "c",
            "  claimRef:\n    name: later\n    namespace: default"
        )
    );
    assert!(plan(&yaml).reclaim.is_empty());
    // A claim that exists with the same uid keeps its volume bound.
    let yaml = format!(
        "{cls}{}{}",
        released("kept", "Delete", csi).replace("gone-kept", "mine"),
        pvc("mine", "1Gi", RWO, Some("c"), "  volumeName: kept").replace(
            "  namespace: default\n",
            "  namespace: default\n  uid: 11111111-2222\n"
        )
    );
    let p = plan(&yaml);
    assert!(p.reclaim.is_empty());
    assert_eq!(bound_volume(&p, "default/mine").as_deref(), Some("kept"));
    // The same claim with another uid: the volume is released.
    let p = plan(&yaml.replace("  uid: 11111111-2222\n  ", "  uid: \"99\"\n  "));
    assert_eq!(p.reclaim.len(), 1);
}

#[test]
fn admission_default_class() {
    let default = |name: &str, ts: &str| {
        format!(
            "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: {name}\n  creationTimestamp: \"{ts}\"\n  annotations:\n    storageclass.kubernetes.io/is-default-class: \"true\"\nprovisioner: ebs.csi.aws.com\n---\n"
        )
    };
    let cases = [
        (
            "newest default wins",
            format!(
                "{}{}",
                default("old", "2024-01-01T00:00:00Z"),
                default("new", "2025-01-01T00:00:00Z")
            ),
            "new",
        ),
        (
            "same time: smallest name",
            format!(
                "{}{}",
                default("b", "2025-01-01T00:00:00Z"),
                default("a", "2025-01-01T00:00:00Z")
            ),
            "a",
        ),
    ];
    for (name, classes, want) in cases {
        let p = plan(&format!("{classes}{}", pvc("a", "1Gi", RWO, None, "")));
        let got = p
            .provisioning
            .iter()
            .find(|x| x.claim.to_string() == "default/a")
            .map(|x| x.class.clone());
        assert_eq!(got.as_deref(), Some(want), "case {name}");
    }
    // No default at all: the claim matches class-less volumes only.
    let p = plan(&format!(
        "{}{}",
        pv("p", "5Gi", RWO, "", ""),
        pvc("a", "1Gi", RWO, None, "")
    ));
    assert_eq!(bound_volume(&p, "default/a").as_deref(), Some("p"));
}

fn limit_range(min: &str, max: &str) -> String {
    format!(
        "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: storage\n  namespace: default\nspec:\n  limits:\n  - type: PersistentVolumeClaim\n    min:\n      storage: {min}\n    max:\n      storage: {max}\n---\n"
    )
}

#[test]
fn admission_limit_range() {
    let lr = limit_range("1Gi", "2Gi");
    let cls = class("c", "ebs.csi.aws.com", "");
    let p = plan(&format!(
        "{cls}{lr}{}{}{}",
        pvc("small", "500Mi", RWO, Some("c"), ""),
        pvc("big", "5Gi", RWO, Some("c"), ""),
        pvc("ok", "2Gi", RWO, Some("c"), "")
    ));
    assert_eq!(
        rejection(&p, "default/small").as_deref(),
        Some(
            "persistentvolumeclaims \"small\" is forbidden: minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"
        )
    );
    assert_eq!(
        rejection(&p, "default/big").as_deref(),
        Some(
            "persistentvolumeclaims \"big\" is forbidden: maximum storage usage per PersistentVolumeClaim is 2Gi, but request is 5Gi"
        )
    );
    assert!(provisioned(&p, "default/ok").is_some());
    // A LimitRange created after the claim does not constrain it.
    let p = plan(&format!(
        "{cls}{}{lr}",
        pvc("small", "500Mi", RWO, Some("c"), "")
    ));
    assert!(p.rejected.is_empty());
}

fn quota(hard: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata:\n  name: storage\n  namespace: default\nspec:\n  hard:\n{hard}\n---\n"
    )
}

#[test]
fn admission_resource_quota() {
    let cls = class("gold", "csi.berth.dev", "");
    // requests.storage: the third claim would exceed; a rejected claim takes no quota.
    let q = quota("    requests.storage: 10Gi");
    let p = plan(&format!(
        "{cls}{q}{}{}{}",
        pvc("a", "4Gi", RWO, Some("gold"), ""),
        pvc("b", "8Gi", RWO, Some("gold"), ""),
        pvc("c", "6Gi", RWO, Some("gold"), "")
    ));
    assert_eq!(
        rejection(&p, "default/b").as_deref(),
        Some(
            "persistentvolumeclaims \"b\" is forbidden: exceeded quota: storage, requested: requests.storage=8Gi, used: requests.storage=4Gi, limited: requests.storage=10Gi"
        )
    );
    assert!(
        rejection(&p, "default/c").is_none(),
        "b was rejected, so c fits"
    );

    // persistentvolumeclaims count (written as a bare number).
    let p = plan(&format!(
        "{cls}{}{}{}",
        quota("    persistentvolumeclaims: 1"),
        pvc("a", "1Gi", RWO, Some("gold"), ""),
        pvc("b", "1Gi", RWO, Some("gold"), "")
    ));
    assert!(rejection(&p, "default/b").is_some_and(|r| r.contains("persistentvolumeclaims=1")));

    // per-class keys apply only to that class.
    let p = plan(&format!(
        "{cls}{}{}{}{}",
        class("silver", "csi.berth.dev", ""),
        quota(
            "    gold.storageclass.storage.k8s.io/requests.storage: 1Gi\n    gold.storageclass.storage.k8s.io/persistentvolumeclaims: \"5\""
        ),
        pvc("g", "2Gi", RWO, Some("gold"), ""),
        pvc("s", "2Gi", RWO, Some("silver"), "")
    ));
    assert!(
        rejection(&p, "default/g")
            .is_some_and(|r| r.contains("gold.storageclass.storage.k8s.io/requests.storage=2Gi"))
    );
    assert!(rejection(&p, "default/s").is_none());
}

#[test]
fn per_node_volume_limits() {
    let csinode = "apiVersion: storage.k8s.io/v1\nkind: CSINode\nmetadata:\n  name: n1\nspec:\n  drivers:\n  - name: csi.berth.dev\n    nodeID: n1\n    allocatable:\n      count: 2\n---\n";
    let bound_pv = |name: &str| {
        format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {name}\nspec:\n  capacity:\n    storage: 1Gi\n  accessModes: [ReadWriteOnce]\n  storageClassName: fast\n  csi:\n    driver: csi.berth.dev\n    volumeHandle: h-{name}\n---\n"
        )
    };
    let yaml = format!(
        "{}{}{csinode}{}{}{}{}{}{}{}",
        class("fast", "csi.berth.dev", ""),
        node("n1", "a"),
        bound_pv("v1"),
        bound_pv("v2"),
        pvc("c1", "1Gi", RWO, Some("fast"), "  volumeName: v1"),
        pvc("c2", "1Gi", RWO, Some("fast"), "  volumeName: v2"),
        pvc("c3", "1Gi", RWO, Some("fast"), ""),
        pod("p1", Some("n1"), "c1") + &pod("p2", Some("n1"), "c2"),
        // the same claim twice counts once
        pod("p3", Some("n1"), "c3") + &pod("p4", Some("n1"), "c3")
    );
    let p = plan(&yaml);
    assert_eq!(p.violations.len(), 1, "{:#?}", p.violations);
    let v = &p.violations[0];
    assert_eq!(
        (v.node.as_str(), v.driver.as_str(), v.limit, v.count),
        ("n1", "csi.berth.dev", 2, 3)
    );
}

#[test]
fn statefulset_claim_templates_expand_per_replica() {
    let sts = "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  selector:\n    matchLabels:\n      app: nginx\n  serviceName: nginx\n  template:\n    metadata:\n      labels:\n        app: nginx\n    spec:\n      containers:\n      - name: nginx\n        image: nginx\n  volumeClaimTemplates:\n  - metadata:\n      name: www\n    spec:\n      accessModes: [ReadWriteOnce]\n      storageClassName: fast\n      resources:\n        requests:\n          storage: 1Gi\n---\n";
    // www-web-1 exists already and is used as it is (bound to a static volume).
    let yaml = format!(
        "{}{}{}{sts}",
        class("fast", "ebs.csi.aws.com", ""),
        pv("static", "1Gi", RWO, "fast", ""),
        pvc(
            "www-web-1",
            "1Gi",
            RWO,
            Some("fast"),
            "  volumeName: static"
        )
    );
    let p = plan(&yaml);
    let mut provisioned: Vec<String> = p.provisioning.iter().map(|x| x.claim.to_string()).collect();
    provisioned.sort();
    assert_eq!(provisioned, ["default/www-web-0", "default/www-web-2"]);
    assert_eq!(
        bound_volume(&p, "default/www-web-1").as_deref(),
        Some("static")
    );
}

#[test]
fn public_instance_limits_warn_when_csinode_publishes_none() {
    let vols: String = (0..26)
        .map(|i| format!("  - name: v{i}\n    csi: {{driver: ebs.csi.aws.com}}\n"))
        .collect();
    let yaml = format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels:\n    node.kubernetes.io/instance-type: m5.large\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  nodeName: n1\n  containers: [{{name: c, image: i}}]\n  volumes:\n{vols}"
    );
    let p = plan(&yaml);
    assert!(
        p.violations.is_empty(),
        "no CSINode limit, so no scheduler violation"
    );
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("uses 26 ebs.csi.aws.com volumes") && w.contains("at most 25")),
        "{:?}",
        p.warnings
    );
    // 25 volumes are within the limit: no warning.
    let p = plan(&yaml.replace("  - name: v25\n    csi: {driver: ebs.csi.aws.com}\n", ""));
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

/// VolumeAttributesClass (GA, on by default): `FindMatchingVolume` skips a
/// volume whose `volumeAttributesClassName` differs from the claim's (unset
/// is `""`), pre-bound volumes included, and `checkVolumeSatisfyClaim`
/// refuses a named volume with "volumeAttributesClassName does not match"
/// (after the class check, before the volume mode check).
#[test]
fn volume_attributes_class_must_be_equal() {
    let cls = class("c", "kubernetes.io/no-provisioner", "");
    let vac = |v: &str| format!("  volumeAttributesClassName: {v}");
    let bind_cases = vec![
        (
            "both unset",
            format!(
                "{cls}{}{}",
                pv("p", "1Gi", RWO, "c", ""),
                pvc("a", "1Gi", RWO, Some("c"), "")
            ),
            "default/a",
            Some("p"),
        ),
        (
            "claim's class on the volume too",
            format!(
                "{cls}{}{}{}",
                pv("plain", "1Gi", RWO, "c", ""),
                pv("gold", "5Gi", RWO, "c", &vac("gold")),
                pvc("a", "1Gi", RWO, Some("c"), &vac("gold"))
            ),
            "default/a",
            Some("gold"),
        ),
        (
            "a claim without one skips a volume with one",
            format!(
                "{cls}{}{}",
                pv("gold", "1Gi", RWO, "c", &vac("gold")),
                pvc("a", "1Gi", RWO, Some("c"), "")
            ),
            "default/a",
            None,
        ),
        (
            "another class",
            format!(
                "{cls}{}{}",
                pv("silver", "1Gi", RWO, "c", &vac("silver")),
                pvc("a", "1Gi", RWO, Some("c"), &vac("gold"))
            ),
            "default/a",
            None,
        ),
        (
            "a volume pre-bound to the claim is skipped too",
            format!(
                "{cls}{}{}",
                pv(
                    "pre",
                    "1Gi",
                    RWO,
                    "c",
                    "  claimRef:\n    namespace: default\n    name: a"
                ),
                pvc("a", "1Gi", RWO, Some("c"), &vac("gold"))
            ),
            "default/a",
            None,
        ),
    ];
    check_bindings(&bind_cases);

    let p = plan(&format!(
        "{cls}{}{}",
        pv("named", "5Gi", RWO, "c", &vac("silver")),
        pvc(
            "a",
            "1Gi",
            RWO,
            Some("c"),
            &format!("  volumeName: named\n{}", vac("gold"))
        )
    ));
    assert_eq!(
        pending_reason(&p, "default/a").as_deref(),
        Some("Cannot bind to requested volume \"named\": volumeAttributesClassName does not match")
    );
    // The class check comes first.
    let p = plan(&format!(
        "{cls}{}{}",
        pv("named", "5Gi", RWO, "x", &vac("silver")),
        pvc("a", "1Gi", RWO, Some("c"), "  volumeName: named")
    ));
    assert_eq!(
        pending_reason(&p, "default/a").as_deref(),
        Some("Cannot bind to requested volume \"named\": storageClassName does not match")
    );
    // A near miss says why.
    let p = plan(&format!(
        "{cls}{}{}",
        pv("silver", "1Gi", RWO, "c", &vac("silver")),
        pvc("a", "1Gi", RWO, Some("c"), &vac("gold"))
    ));
    let near: Vec<String> = p
        .pending
        .iter()
        .flat_map(|x| x.candidates.iter().map(|c| c.to_string()))
        .collect();
    assert!(
        near.iter()
            .any(|c| c.contains("volumeAttributesClassName \"silver\" != \"gold\"")),
        "{near:?}"
    );
}

/// `syncVolume`'s "claim bound elsewhere" branch: the volume's claimRef
/// (with uid) names a live claim whose `spec.volumeName` is another volume.
#[test]
fn claim_bound_elsewhere() {
    let cls = class("c", "kubernetes.io/no-provisioner", "");
    // pv "old" points at claim a (uid 1); a is bound to "new".
    let old = |annotations: &str, policy: &str| {
        format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: old\n  annotations: {{{annotations}}}\nspec:\n  capacity:\n    storage: 5Gi\n  accessModes: [ReadWriteOnce]\n  storageClassName: c\n  persistentVolumeReclaimPolicy: {policy}\n  claimRef:\n    name: a\n    namespace: default\n    uid: \"1\"\n  csi:\n    driver: csi.berth.dev\n    volumeHandle: h-old\nstatus:\n  phase: Bound\n---\n"
        )
    };
    let rest = format!(
        "{cls}{}{}{}",
        pv(
            "new",
            "5Gi",
            RWO,
            "c",
            "  claimRef:\n    name: a\n    namespace: default\n    uid: \"1\""
        ),
        pvc("a", "1Gi", RWO, Some("c"), "  volumeName: new").replace(
            "  namespace: default\n",
            "  namespace: default\n  uid: \"1\"\n"
        ),
        pvc("b", "1Gi", RWO, Some("c"), "")
    );
    let action = |p: &berth::binding::Plan| {
        p.reclaim
            .iter()
            .find(|r| r.volume == "old")
            .map(|r| (r.action.as_str(), r.reason.clone()))
    };
    let cases: &[(&str, &str, &str, Option<&str>, Option<&str>)] = &[
        // (case, annotations, policy, old's action, what claim b gets)
        (
            "dynamically provisioned with Delete: released and deleted",
            "pv.kubernetes.io/provisioned-by: csi.berth.dev",
            "Delete",
            Some("delete"),
            None,
        ),
        (
            "dynamically provisioned with Retain, bound by controller: back to Available",
            "pv.kubernetes.io/provisioned-by: csi.berth.dev, pv.kubernetes.io/bound-by-controller: \"yes\"",
            "Retain",
            Some("unbind"),
            Some("old"),
        ),
        (
            "bound by controller: the claimRef goes, another claim may take it",
            "pv.kubernetes.io/bound-by-controller: \"yes\"",
            "Delete",
            Some("unbind"),
            Some("old"),
        ),
        (
            "bound by a user: only the uid goes, the volume stays reserved for a",
            "",
            "Delete",
            Some("unbind"),
            None,
        ),
    ];
    for (name, ann, policy, want_action, b_gets) in cases {
        let p = plan(&format!("{}{rest}", old(ann, policy)));
        assert_eq!(
            action(&p).map(|(a, _)| a),
            *want_action,
            "case {name}: {:#?}",
            p.reclaim
        );
        assert_eq!(
            bound_volume(&p, "default/b").as_deref(),
            *b_gets,
            "case {name}: {p:#?}"
        );
        assert_eq!(
            bound_volume(&p, "default/a").as_deref(),
            Some("new"),
            "case {name}"
        );
        let (_, reason) = action(&p).unwrap_or_default();
        assert!(
            reason.contains("bound to volume new"),
            "case {name}: {reason}"
        );
    }
    // The claim bound to this very volume, or not bound yet: still reserved.
    let p = plan(&format!(
        "{}{}",
        old("pv.kubernetes.io/bound-by-controller: \"yes\"", "Delete"),
        rest.replace("volumeName: new", "volumeName: old")
    ));
    assert!(action(&p).is_none(), "{:#?}", p.reclaim);
    assert_eq!(bound_volume(&p, "default/a").as_deref(), Some("old"));
}
