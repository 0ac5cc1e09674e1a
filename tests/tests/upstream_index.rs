//! Upstream's own tests of the PV controller's volume index, ported case by
//! case so berth's matching is judged by Kubernetes' tables rather than by
//! our reading of the code.
//!
//! Ports `pkg/controller/volume/persistentvolume/index_test.go`:
//! TestMatchVolume (current cases, and the beta storage-class annotation
//! variants from the TestBetaStorageClassMatch era), TestMatchingWithBoundVolumes,
//! TestFindingVolumeWithDifferentAccessModes, TestFindingPreboundVolumes,
//! TestVolumeModeCheck, TestFilteringVolumeModes,
//! TestStorageObjectInUseProtectionFiltering, TestBestMatchDelayed and
//! TestCheckAccessModes. Each upstream object is rendered as a manifest with
//! the same fields (names, capacities, modes, classes, claimRefs, phases),
//! the claim is planned alone with those volumes, and the volume berth binds
//! it to is compared with upstream's expected match (upstream names the
//! volume by UID; the comment next to each case gives the UID → name map).
//! `pvBadSize` and `pvBadMode` are not valid object names on a real API
//! server (upper case), so they are written `pv-bad-size` and `pv-bad-mode`.

use berth_tests::upstream::*;
use berth_tests::{bound_volume, pending_reason, plan};

const RWO: &[&str] = &["ReadWriteOnce"];
const ROX: &[&str] = &["ReadOnlyMany"];
const RWX: &[&str] = &["ReadWriteMany"];
const RWO_ROX: &[&str] = &["ReadWriteOnce", "ReadOnlyMany"];
const ROX_RWO: &[&str] = &["ReadOnlyMany", "ReadWriteOnce"];
const ALL3: &[&str] = &["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany"];

/// Cases upstream has that berth's plan cannot express, with the reason.
const NOT_APPLICABLE: &[(&str, &str)] = &[
    (
        "TestListByAccessModes",
        "tests the index's internal listByAccessModes ordering; the plan only shows which volume is chosen, which TestMatchVolume covers",
    ),
    (
        "TestAllPossibleAccessModes",
        "tests the index's internal allPossibleMatchingAccessModes; not observable in a plan beyond the choice TestFindingVolumeWithDifferentAccessModes covers",
    ),
    (
        "TestFindMatchVolumeWithNode",
        "moved upstream to component-helpers pv_helpers_test.go; ported from there in upstream_helpers.rs",
    ),
    (
        "TestVolumeModeCheck/feature disabled - pvc block and pv filesystem",
        "BlockVolume feature gate disabled: the gate is GA and locked on, a cluster cannot disable it",
    ),
    (
        "TestVolumeModeCheck/feature disabled - pvc filesystem and pv block",
        "BlockVolume feature gate disabled: GA and locked on",
    ),
    (
        "TestVolumeModeCheck/feature disabled - pvc block and pv block",
        "BlockVolume feature gate disabled: GA and locked on",
    ),
    (
        "TestVolumeModeCheck/feature disabled - pvc filesystem and pv filesystem",
        "BlockVolume feature gate disabled: GA and locked on",
    ),
    (
        "TestFilteringVolumeModes/2-1 feature disabled - pvc mode is nil and pv mode is nil",
        "BlockVolume feature gate disabled: GA and locked on",
    ),
    (
        "TestFilteringVolumeModes/2-2 feature disabled - pvc mode is block and pv mode is block - fields should be dropped by api and not analyzed with gate disabled",
        "BlockVolume feature gate disabled: GA and locked on",
    ),
    (
        "TestFilteringVolumeModes/2-3 feature disabled - pvc mode is filesystem and pv mode is filesystem - fields should be dropped by api and not analyzed with gate disabled",
        "BlockVolume feature gate disabled: GA and locked on",
    ),
    (
        "TestStorageObjectInUseProtectionFiltering/checkVolumeSatisfyClaim/feature disabled - pv deletionTimeStamp not set",
        "StorageObjectInUseProtection feature gate disabled: GA and removed",
    ),
    (
        "TestStorageObjectInUseProtectionFiltering/checkVolumeSatisfyClaim/feature disabled - pv deletionTimeStamp set",
        "StorageObjectInUseProtection feature gate disabled: GA and removed",
    ),
    (
        "TestStorageObjectInUseProtectionFiltering/findBestMatchForClaim/feature disabled - pv deletionTimeStamp not set",
        "StorageObjectInUseProtection feature gate disabled: GA and removed",
    ),
    (
        "TestStorageObjectInUseProtectionFiltering/findBestMatchForClaim/feature disabled - pv deletionTimeStamp set",
        "StorageObjectInUseProtection feature gate disabled: GA and removed",
    ),
];

/// One ported case: its upstream name, the manifests, the claim and the
/// volume upstream expects it to get (`None`: no match).
struct Case {
    name: String,
    yaml: String,
    claim: String,
    want: Option<&'static str>,
}

/// Runs every case and reports all mismatches at once, so one failing case
/// does not hide the others.
fn run(cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let p = plan(&c.yaml);
        let got = bound_volume(&p, &c.claim);
        if got.as_deref() != c.want {
            failures.push(format!(
                "{}: upstream expects {:?}, berth binds {:?} (pending: {:?})",
                c.name,
                c.want,
                got,
                pending_reason(&p, &c.claim)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn local() -> &'static str {
    "  local:\n    path: /mnt/disks/upstream\n"
}
fn glusterfs() -> &'static str {
    "  glusterfs:\n    endpoints: glusterfs-cluster\n    path: upstream\n"
}
fn host_path() -> &'static str {
    "  hostPath:\n    path: /tmp/upstream\n"
}

/// `createTestVolumes()` of index_test.go, in upstream's (deliberately
/// unsorted) order. UID → name: gce-pd-10 gce003, gce-pd-20 gce004, nfs-5
/// nfs002, gce-pd-1 gce001, nfs-10 nfs003, gce-pd-5 gce002, nfs-1 nfs001,
/// gce-pd-2 gce0022, gce-pd-silver1 gce0023, gce-pd-silver2 gce0024,
/// gce-pd-gold gce0025, local-pd-very-large local001,
/// local-pd-extremely-large local002, affinity-pv affinity001, affinity-pv2
/// affinity002, affinity-prebound and affinity-pv3 both affinity003 (the
/// later replaces the earlier in upstream's store, as in berth's input),
/// affinity-pv4-{pending,failed,released,empty}.
fn create_test_volumes(beta_class: bool) -> Vec<Pv> {
    let fs = |pv: Pv| pv.volume_mode("Filesystem");
    let classed = |pv: Pv, class: &str| {
        if beta_class {
            pv.ann(ANN_BETA_CLASS, class)
        } else {
            pv.class(class)
        }
    };
    let wait = |name: &str, cap: &str, value: &str| {
        fs(Pv::new(name, cap))
            .modes(RWO_ROX)
            .source(local())
            .class("wait")
            .affinity_in("key1", value)
    };
    vec![
        fs(Pv::new("gce003", "10G"))
            .modes(RWO_ROX)
            .phase("Available"),
        fs(Pv::new("gce004", "20G"))
            .modes(RWO_ROX)
            .claim_ref_uid_only("def456")
            .phase("Bound"),
        fs(Pv::new("nfs002", "5G"))
            .modes(ALL3)
            .source(glusterfs())
            .phase("Available"),
        fs(Pv::new("gce001", "1G"))
            .modes(RWO_ROX)
            .claim_ref_uid_only("abc123")
            .phase("Bound"),
        fs(Pv::new("nfs003", "10G"))
            .modes(ALL3)
            .source(glusterfs())
            .phase("Available"),
        fs(Pv::new("gce002", "5G"))
            .modes(RWO_ROX)
            .phase("Available"),
        fs(Pv::new("nfs001", "1G"))
            .modes(ALL3)
            .source(glusterfs())
            .phase("Available"),
        fs(Pv::new("gce0022", "20000G"))
            .modes(RWO)
            .label("should-exist", "true")
            .phase("Available"),
        classed(
            fs(Pv::new("gce0023", "10000G"))
                .modes(RWO)
                .label("should-exist", "true"),
            "silver",
        )
        .phase("Available"),
        classed(fs(Pv::new("gce0024", "100G")).modes(RWO), "silver").phase("Available"),
        classed(fs(Pv::new("gce0025", "50G")).modes(RWO), "gold").phase("Available"),
        fs(Pv::new("local001", "200E"))
            .modes(ALL3)
            .source(local())
            .class("large")
            .phase("Available"),
        fs(Pv::new("local002", "800E"))
            .modes(ALL3)
            .source(local())
            .class("large")
            .phase("Available"),
        wait("affinity001", "100G", "value1").phase("Available"),
        wait("affinity002", "150G", "value1").phase("Available"),
        wait("affinity003", "100G", "value1")
            .claim_ref_in("myns", "", "claim02")
            .phase("Available"),
        wait("affinity003", "200G", "value3").phase("Available"),
        wait("affinity004-pending", "200G", "value4").phase("Pending"),
        wait("affinity004-failed", "200G", "value4").phase("Failed"),
        wait("affinity004-released", "200G", "value4").phase("Released"),
        wait("affinity004-empty", "200G", "value4"),
    ]
}

/// Upstream's `makePVC(size, modfn)`: myns/claim01, ROX+RWO, Filesystem.
fn make_pvc(size: &str) -> Pvc {
    Pvc::new("myns", "claim01", size)
        .modes(ROX_RWO)
        .volume_mode("Filesystem")
}

fn case(name: impl Into<String>, volumes: &[Pv], claim: Pvc, want: Option<&'static str>) -> Case {
    Case {
        name: name.into(),
        yaml: manifests(volumes, std::slice::from_ref(&claim), &[]),
        claim: claim.key(),
        want,
    }
}

fn match_volume_cases(beta: bool) -> Vec<Case> {
    let vols = create_test_volumes(beta);
    let silver = |c: Pvc| {
        if beta {
            c.ann(ANN_BETA_CLASS, "silver")
        } else {
            c.class("silver")
        }
    };
    let n = |current: &'static str, beta_name: &'static str| if beta { beta_name } else { current };
    let mut cases = vec![
        // The class-independent scenarios are the same in both eras; they
        // run once, with the current objects.
        case(
            n(
                "TestMatchVolume/successful-match-with-class",
                "TestMatchVolume(beta)/successful-match-with-class",
            ),
            &vols,
            silver(
                make_pvc("1G")
                    .match_label("should-exist", "true")
                    .modes(RWO),
            ),
            Some("gce0023"),
        ),
        case(
            n(
                "TestMatchVolume/successful-match-with-class-and-labels",
                "TestMatchVolume(beta)/successful-match-with-class-and-labels",
            ),
            &vols,
            silver(make_pvc("1G").modes(RWO)),
            Some("gce0024"),
        ),
    ];
    if beta {
        return cases;
    }
    cases.extend([
        case(
            "TestMatchVolume/successful-match-gce-10",
            &vols,
            make_pvc("8G"),
            Some("gce003"),
        ),
        case(
            "TestMatchVolume/successful-match-nfs-5",
            &vols,
            make_pvc("5G").modes(&["ReadOnlyMany", "ReadWriteOnce", "ReadWriteMany"]),
            Some("nfs002"),
        ),
        case(
            "TestMatchVolume/successful-skip-1g-bound-volume",
            &vols,
            make_pvc("1G"),
            Some("gce002"),
        ),
        case(
            "TestMatchVolume/successful-no-match",
            &vols,
            make_pvc("999G"),
            None,
        ),
        case(
            "TestMatchVolume/successful-no-match-due-to-label",
            &vols,
            make_pvc("999G").match_label("should-not-exist", "true"),
            None,
        ),
        case(
            "TestMatchVolume/successful-no-match-due-to-size-constraint-with-label-selector",
            &vols,
            make_pvc("20000G")
                .match_label("should-exist", "true")
                .modes(ROX_RWO),
            None,
        ),
        case(
            "TestMatchVolume/successful-match-due-with-constraint-and-label-selector",
            &vols,
            make_pvc("20000G")
                .match_label("should-exist", "true")
                .modes(RWO),
            Some("gce0022"),
        ),
        case(
            "TestMatchVolume/successful-match-very-large",
            &vols,
            make_pvc("1E").modes(RWO).class("large"),
            Some("local001"),
        ),
        case(
            "TestMatchVolume/successful-match-exact-extremely-large",
            &vols,
            make_pvc("800E").modes(RWO).class("large"),
            Some("local002"),
        ),
        case(
            "TestMatchVolume/successful-no-match-way-too-large",
            &vols,
            make_pvc("950E").modes(RWO).class("large"),
            None,
        ),
    ]);
    cases
}

#[test]
fn test_match_volume() {
    run(&match_volume_cases(false));
}

/// The TestBetaStorageClassMatch era: the same scenarios with the class in
/// `volume.beta.kubernetes.io/storage-class` on both claim and volume.
#[test]
fn test_match_volume_beta_class_annotation() {
    run(&match_volume_cases(true));
}

fn matching_with_bound_volumes_cases() -> Vec<Case> {
    // UID gce-pd-1 → gce001 (claimRef {UID: abc123}, Bound), gce-pd-2 → gce002.
    let vols = [
        Pv::new("gce001", "1G")
            .modes(RWO_ROX)
            .volume_mode("Filesystem")
            .claim_ref_uid_only("abc123")
            .phase("Bound"),
        Pv::new("gce002", "1G")
            .modes(RWO_ROX)
            .volume_mode("Filesystem")
            .phase("Available"),
    ];
    vec![case(
        "TestMatchingWithBoundVolumes",
        &vols,
        make_pvc("1G"),
        Some("gce002"),
    )]
}

#[test]
fn test_matching_with_bound_volumes() {
    run(&matching_with_bound_volumes_cases());
}

/// The three volumes of TestFindingVolumeWithDifferentAccessModes;
/// `bound` names the ones whose claimRef is set to an empty reference.
fn access_mode_volumes(bound: &[&str]) -> Vec<Pv> {
    let v = |name: &str, modes: &[&str], source: &str| {
        let pv = Pv::new(name, "10G")
            .modes(modes)
            .volume_mode("Filesystem")
            .source(source)
            .phase("Available");
        if bound.contains(&name) {
            pv.claim_ref_empty()
        } else {
            pv
        }
    };
    vec![
        v(
            "gce",
            RWO_ROX,
            "  gcePersistentDisk:\n    pdName: upstream-test\n",
        ),
        v(
            "ebs",
            RWO,
            "  awsElasticBlockStore:\n    volumeID: upstream-test\n",
        ),
        v(
            "nfs",
            ALL3,
            "  nfs:\n    server: nfs.example\n    path: /upstream\n",
        ),
    ]
}

fn finding_volume_with_different_access_modes_cases() -> Vec<Case> {
    let claim = |modes: &[&str]| {
        Pvc::new("myns", "claim01", "1G")
            .modes(modes)
            .volume_mode("Filesystem")
    };
    let free = access_mode_volumes(&[]);
    vec![
        case(
            "TestFindingVolumeWithDifferentAccessModes/RWO gets the exact set",
            &free,
            claim(RWO),
            Some("ebs"),
        ),
        case(
            "TestFindingVolumeWithDifferentAccessModes/RWO+ROX",
            &free,
            claim(RWO_ROX),
            Some("gce"),
        ),
        case(
            "TestFindingVolumeWithDifferentAccessModes/order of the requested modes should not matter",
            &free,
            claim(&["ReadWriteMany", "ReadWriteOnce", "ReadOnlyMany"]),
            Some("nfs"),
        ),
        case(
            "TestFindingVolumeWithDifferentAccessModes/fewer modes requested should still match",
            &free,
            claim(RWX),
            Some("nfs"),
        ),
        case(
            "TestFindingVolumeWithDifferentAccessModes/pretend the exact match is bound, should get the next level up of modes",
            &access_mode_volumes(&["ebs"]),
            claim(RWO),
            Some("gce"),
        ),
        case(
            "TestFindingVolumeWithDifferentAccessModes/continue up the levels of modes",
            &access_mode_volumes(&["ebs", "gce"]),
            claim(RWO),
            Some("nfs"),
        ),
        case(
            "TestFindingVolumeWithDifferentAccessModes/partial mode request",
            &access_mode_volumes(&["ebs"]),
            claim(ROX),
            Some("gce"),
        ),
    ]
}

#[test]
fn test_finding_volume_with_different_access_modes() {
    run(&finding_volume_with_different_access_modes_cases());
}

fn finding_prebound_volumes_cases() -> Vec<Case> {
    // testVolume(name, size): hostPath, RWO, Filesystem, Available.
    let test_volume = |name: &str, size: &str| {
        Pv::new(name, size)
            .modes(RWO)
            .volume_mode("Filesystem")
            .source(host_path())
            .phase("Available")
    };
    // pv-bad-mode is ROX; `reserved` gets the claim's reference
    // (`ref.GetReference(claim)`: kind, namespace, name, no uid as the
    // claim has none), `foo` gets {Name: foo, Namespace: bar}.
    let volumes = |reserved: Option<&str>, foo: Option<&str>| {
        [
            "pv1:1Gi",
            "pv5:5Gi",
            "pv8:8Gi",
            "pv-bad-size:1Mi",
            "pv-bad-mode:1Gi",
        ]
        .iter()
        .map(|s| {
            let (name, size) = s.split_once(':').unwrap();
            let mut pv = test_volume(name, size);
            if name == "pv-bad-mode" {
                pv = pv.modes(ROX);
            }
            if reserved == Some(name) {
                pv = pv.claim_ref_in("myns", "", "claim01");
            }
            if foo == Some(name) {
                pv = pv.claim_ref_in("bar", "", "foo");
            }
            pv
        })
        .collect::<Vec<_>>()
    };
    let claim = Pvc::new("myns", "claim01", "1Gi")
        .modes(RWO)
        .volume_mode("Filesystem");
    vec![
        case(
            "TestFindingPreboundVolumes/expected exact match on size",
            &volumes(None, None),
            claim.clone(),
            Some("pv1"),
        ),
        case(
            "TestFindingPreboundVolumes/pretend the exact match is pre-bound, should get the next size up",
            &volumes(None, Some("pv1")),
            claim.clone(),
            Some("pv5"),
        ),
        case(
            "TestFindingPreboundVolumes/pretend the exact match is available but the largest volume is pre-bound to the claim",
            &volumes(Some("pv8"), None),
            claim.clone(),
            Some("pv8"),
        ),
        case(
            "TestFindingPreboundVolumes/pretend the volume with too small a size is pre-bound to the claim, should get the exact match",
            &volumes(Some("pv-bad-size"), None),
            claim.clone(),
            Some("pv1"),
        ),
        case(
            "TestFindingPreboundVolumes/pretend the volume without the right access mode is pre-bound to the claim, should get the exact match",
            &volumes(Some("pv-bad-mode"), None),
            claim,
            Some("pv1"),
        ),
    ]
}

#[test]
fn test_finding_prebound_volumes() {
    run(&finding_prebound_volumes_cases());
}

/// `createVolumeMode{Block,Filesystem,Nil}TestVolume()`: 10G, RWO, local.
fn mode_volume(mode: Option<&str>) -> Pv {
    let name = if mode.is_some() { "block" } else { "nil-mode" };
    let pv = Pv::new(name, "10G")
        .modes(RWO)
        .source(local())
        .phase("Available");
    match mode {
        Some(m) => pv.volume_mode(m),
        None => pv,
    }
}

/// `makeVolumeModePVC(size, mode, nil)`: myns/claim01, RWO.
fn mode_pvc(size: &str, mode: Option<&str>) -> Pvc {
    let c = Pvc::new("myns", "claim01", size).modes(RWO);
    match mode {
        Some(m) => c.volume_mode(m),
        None => c,
    }
}

/// TestVolumeModeCheck tests `CheckVolumeModeMismatches` alone; a mismatch
/// means the only volume is not matched, no mismatch means it is.
fn volume_mode_check_cases() -> Vec<Case> {
    let (b, f) = (Some("Block"), Some("Filesystem"));
    let table: &[(&'static str, Option<&str>, Option<&str>, bool)] = &[
        ("feature enabled - pvc block and pv filesystem", b, f, true),
        ("feature enabled - pvc filesystem and pv block", f, b, true),
        ("feature enabled - pvc block and pv block", b, b, false),
        (
            "feature enabled - pvc filesystem and pv filesystem",
            f,
            f,
            false,
        ),
        (
            "feature enabled - pvc filesystem and pv nil",
            f,
            None,
            false,
        ),
        (
            "feature enabled - pvc nil and pv filesystem",
            None,
            f,
            false,
        ),
        ("feature enabled - pvc nil and pv nil", None, None, false),
        ("feature enabled - pvc nil and pv block", None, b, true),
        ("feature enabled - pvc block and pv nil", b, None, true),
    ];
    let cases: Vec<Case> = table
        .iter()
        .map(|(name, pvc_mode, pv_mode, mismatch)| {
            let pv = mode_volume(*pv_mode);
            let want = (!mismatch).then_some(if pv_mode.is_some() {
                "block"
            } else {
                "nil-mode"
            });
            case(
                format!("TestVolumeModeCheck/{name}"),
                &[pv],
                mode_pvc("8G", *pvc_mode),
                want,
            )
        })
        .collect();
    cases
}

#[test]
fn test_volume_mode_check() {
    run(&volume_mode_check_cases());
}

fn filtering_volume_modes_cases() -> Vec<Case> {
    let (b, f) = (Some("Block"), Some("Filesystem"));
    // (name, pv mode, pvc mode, match)
    let table: &[(&'static str, Option<&str>, Option<&str>, bool)] = &[
        (
            "1-1 feature enabled - pvc block and pv filesystem",
            f,
            b,
            false,
        ),
        (
            "1-2 feature enabled - pvc filesystem and pv block",
            b,
            f,
            false,
        ),
        (
            "1-3 feature enabled - pvc block and pv no mode with default filesystem",
            f,
            b,
            false,
        ),
        (
            "1-4 feature enabled - pvc no mode defaulted to filesystem and pv block",
            b,
            f,
            false,
        ),
        ("1-5 feature enabled - pvc block and pv block", b, b, true),
        (
            "1-6 feature enabled - pvc filesystem and pv filesystem",
            f,
            f,
            true,
        ),
        (
            "1-7 feature enabled - pvc mode is nil and defaulted and pv mode is nil and defaulted",
            f,
            f,
            true,
        ),
    ];
    let cases: Vec<Case> = table
        .iter()
        .map(|(name, pv_mode, pvc_mode, matches)| {
            case(
                format!("TestFilteringVolumeModes/{name}"),
                &[mode_volume(*pv_mode)],
                mode_pvc("8G", *pvc_mode),
                matches.then_some("block"),
            )
        })
        .collect();
    cases
}

#[test]
fn test_filtering_volume_modes() {
    run(&filtering_volume_modes_cases());
}

fn storage_object_in_use_protection_filtering_cases() -> Vec<Case> {
    let pv = || {
        Pv::new("pv1", "1G")
            .modes(RWO)
            .volume_mode("Filesystem")
            .source(host_path())
            .phase("Available")
    };
    let pvc = || {
        Pvc::new("myns", "pvc1", "1G")
            .modes(RWO)
            .volume_mode("Filesystem")
    };
    vec![
        // checkVolumeSatisfyClaim is the check for a claim that names its
        // volume: the claim carries spec.volumeName.
        case(
            "TestStorageObjectInUseProtectionFiltering/checkVolumeSatisfyClaim/feature enabled - pv deletionTimeStamp not set",
            &[pv()],
            pvc().volume_name("pv1"),
            Some("pv1"),
        ),
        case(
            "TestStorageObjectInUseProtectionFiltering/checkVolumeSatisfyClaim/feature enabled - pv deletionTimeStamp set",
            &[pv().deleting()],
            pvc().volume_name("pv1"),
            None,
        ),
        case(
            "TestStorageObjectInUseProtectionFiltering/findBestMatchForClaim/feature enabled - pv deletionTimeStamp not set",
            &[pv()],
            pvc(),
            Some("pv1"),
        ),
        case(
            "TestStorageObjectInUseProtectionFiltering/findBestMatchForClaim/feature enabled - pv deletionTimeStamp set",
            &[pv().deleting()],
            pvc(),
            None,
        ),
    ]
}

#[test]
fn test_storage_object_in_use_protection_filtering() {
    run(&storage_object_in_use_protection_filtering_cases());
}

/// Upstream calls findBestMatchForClaim(claim, delayBinding=true) on a
/// class-less claim; a plan decides delay from the claim's class, so the
/// claim names a WaitForFirstConsumer class `wait` (whose volumes are in
/// createTestVolumes) and no pod uses it: the PV controller binds nothing.
fn best_match_delayed_cases() -> Vec<Case> {
    let mut c = case(
        "TestBestMatchDelayed",
        &create_test_volumes(false),
        make_pvc("8G").class("wait"),
        None,
    );
    c.yaml = format!(
        "{}{}",
        storage_class(
            "wait",
            "kubernetes.io/no-provisioner",
            None,
            Some("WaitForFirstConsumer")
        ),
        c.yaml
    );
    vec![c]
}

#[test]
fn test_best_match_delayed() {
    run(&best_match_delayed_cases());
}

/// CheckAccessModes is the scheduler path's access-mode check; it runs for
/// a WaitForFirstConsumer claim whose pod is on a node. The volume has
/// RWO+RWX (no affinity), so only the claim's modes decide.
fn check_access_modes_cases() -> Vec<Case> {
    let table: &[(&'static str, &[&str], bool)] = &[
        ("success-single-mode", RWX, true),
        (
            "success-many-modes",
            &["ReadWriteMany", "ReadWriteOnce"],
            true,
        ),
        ("fail-single-mode", ROX, false),
        ("fail-many-modes", &["ReadWriteMany", "ReadOnlyMany"], false),
    ];
    let cases: Vec<Case> = table
        .iter()
        .map(|(name, modes, ok)| {
            let pv = Pv::new("pv", "100G")
                .modes(&["ReadWriteOnce", "ReadWriteMany"])
                .class("wait")
                .phase("Available");
            let claim = make_pvc("100G").modes(modes).class("wait");
            let mut c = case(
                format!("TestCheckAccessModes/{name}"),
                &[pv],
                claim,
                ok.then_some("pv"),
            );
            c.yaml = format!(
                "{}{}{}{}",
                storage_class(
                    "wait",
                    "kubernetes.io/no-provisioner",
                    None,
                    Some("WaitForFirstConsumer")
                ),
                node("node1", &[]),
                pod("myns", "pod1", Some("node1"), &["claim01"]),
                c.yaml
            );
            c
        })
        .collect();
    cases
}

#[test]
fn test_check_access_modes() {
    run(&check_access_modes_cases());
}

/// Every upstream case is either ported above or listed as not applicable,
/// never both.
#[test]
fn not_applicable_list_is_a_partition() {
    let cases: Vec<Case> = [
        match_volume_cases(false),
        match_volume_cases(true),
        matching_with_bound_volumes_cases(),
        finding_volume_with_different_access_modes_cases(),
        finding_prebound_volumes_cases(),
        volume_mode_check_cases(),
        filtering_volume_modes_cases(),
        storage_object_in_use_protection_filtering_cases(),
        best_match_delayed_cases(),
        check_access_modes_cases(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let ported: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    assert_partition(&ported, NOT_APPLICABLE);
    assert!(NOT_APPLICABLE.iter().all(|(n, _)| n.starts_with("Test")));
}
