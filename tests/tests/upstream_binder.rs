//! Upstream's PV controller binder tests, ported case by case: berth's plan
//! for upstream's initial objects must be the state upstream's controller
//! reaches.
//!
//! Ports `pkg/controller/volume/persistentvolume/binder_test.go`: TestSync
//! (sets 1–4, 13 and the VolumeAttributesClass cases) and
//! TestSyncBlockVolume (14-1 … 14-14-1) and TestMultiSync (10-1, 10-2).
//! Objects are upstream's `newVolume` /
//! `newClaim` (GCE PD, RWO+ROX, Filesystem, namespace `default`) rendered as
//! manifests, with upstream's class `wait` (WaitForFirstConsumer, no
//! provisioner) as the only StorageClass.
//!
//! TestSync runs one `syncClaim` or `syncVolume` and compares the objects
//! after that one call. A plan is the state the controller converges to, so
//! where the one call is an intermediate step (the volume is released by the
//! next `syncVolume`, the claim is bound by the next `syncClaim`, …) the
//! converged state is asserted and the case says so.
//!
//! Upstream names some objects `volume1-4_1`, `claim2-6_1`; the API server
//! refuses `_` in object names (and so does berth's loader), so these are
//! written with `.` instead (`volume1-4.1`).

use berth_tests::upstream::*;

const AVAILABLE: &str = "Available";
const BOUND: &str = "Bound";
const RELEASED: &str = "Released";
const FAILED: &str = "Failed";
const PENDING: &str = "Pending";
const RETAIN: &str = "Retain";
const DELETE: &str = "Delete";
const EMPTY: &str = "";
const GOLD: &str = "gold";
const SILVER: &str = "silver";
const WAIT: &str = "wait";
const BBC: &str = ANN_BOUND_BY_CONTROLLER;
const BC: &str = ANN_BIND_COMPLETED;

/// Upstream test cases a plan cannot express.
const NOT_APPLICABLE: &[(&str, &str)] = &[
    (
        "TestSync/2-13 - claim prebound to unbound volume that volume attributes class is same",
        "VolumeAttributesClass feature gate disabled (emulated 1.35): the gate is GA and on",
    ),
    (
        "TestSync/features.VolumeAttributesClass=false (all cases)",
        "upstream runs the whole table a second time with the VolumeAttributesClass gate off; GA and on in the clusters berth predicts, so only the enabled run is ported",
    ),
];

fn v(
    name: &str,
    cap: &str,
    uid: &str,
    claim: &str,
    phase: &str,
    policy: &str,
    class: &str,
    anns: &[&str],
) -> Pv {
    new_volume(name, cap, uid, claim, phase, policy, class, anns)
}

fn c(
    name: &str,
    uid: &str,
    cap: &str,
    volume: &str,
    phase: &str,
    class: Option<&str>,
    anns: &[&str],
) -> Pvc {
    new_claim(name, uid, cap, volume, phase, class, anns)
}

/// upstream's `labels` in TestSync.
const LABELS: &[(&str, &str)] = &[("foo", "true"), ("bar", "false")];

fn labelled(pv: Pv) -> Pv {
    LABELS.iter().fold(pv, |pv, (k, val)| pv.label(k, val))
}

fn classes() -> Vec<String> {
    // upstream: StorageClass{Name: wait, VolumeBindingMode: WaitForFirstConsumer}, no provisioner.
    vec![storage_class(WAIT, "", None, Some("WaitForFirstConsumer"))]
}

fn case(name: &'static str, volumes: Vec<Pv>, claims: Vec<Pvc>, wants: Vec<Want>) -> SyncCase {
    SyncCase {
        name,
        volumes,
        claims,
        wants,
    }
}

fn set1() -> Vec<SyncCase> {
    use Want::*;
    vec![
        case(
            "1-1 - successful bind",
            vec![v("volume1-1", "1Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[])],
            vec![c("claim1-1", "uid1-1", "1Gi", "", PENDING, None, &[])],
            vec![Bound("default/claim1-1", "volume1-1")],
        ),
        case(
            "1-2 - noop",
            vec![v("volume1-2", "1Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[])],
            vec![c("claim1-2", "uid1-2", "10Gi", "", PENDING, None, &[])],
            vec![Pending("default/claim1-2"), NoReclaim("volume1-2")],
        ),
        case(
            "1-3 - reset to Pending",
            vec![v("volume1-3", "1Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[])],
            vec![c("claim1-3", "uid1-3", "10Gi", "", BOUND, None, &[])],
            vec![Pending("default/claim1-3"), VolumeUnbound("volume1-3")],
        ),
        case(
            "1-4 - smallest volume",
            vec![
                v("volume1-4.1", "10Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[]),
                v("volume1-4.2", "1Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[]),
            ],
            vec![c("claim1-4", "uid1-4", "1Gi", "", PENDING, None, &[])],
            vec![Bound("default/claim1-4", "volume1-4.2")],
        ),
        case(
            "1-5 - prebound volume by name - success",
            vec![
                v(
                    "volume1-5.1",
                    "10Gi",
                    "",
                    "claim1-5",
                    AVAILABLE,
                    RETAIN,
                    EMPTY,
                    &[],
                ),
                v("volume1-5.2", "1Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[]),
            ],
            vec![c("claim1-5", "uid1-5", "1Gi", "", PENDING, None, &[])],
            vec![Bound("default/claim1-5", "volume1-5.1")],
        ),
        case(
            "1-6 - prebound volume by UID - success",
            vec![
                v(
                    "volume1-6.1",
                    "10Gi",
                    "uid1-6",
                    "claim1-6",
                    AVAILABLE,
                    RETAIN,
                    EMPTY,
                    &[],
                ),
                v("volume1-6.2", "1Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[]),
            ],
            vec![c("claim1-6", "uid1-6", "1Gi", "", PENDING, None, &[])],
            vec![Bound("default/claim1-6", "volume1-6.1")],
        ),
        // One syncClaim leaves the volume alone; the next syncVolume finds
        // its claim has another UID and releases it (Retain keeps it):
        // converged state asserted.
        case(
            "1-7 - prebound volume to different claim",
            vec![v(
                "volume1-7",
                "10Gi",
                "uid1-777",
                "claim1-7",
                AVAILABLE,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![c("claim1-7", "uid1-7", "1Gi", "", PENDING, None, &[])],
            vec![Pending("default/claim1-7"), Reclaim("volume1-7", "keep")],
        ),
        case(
            "1-8 - complete bind after crash - PV bound",
            vec![v(
                "volume1-8",
                "1Gi",
                "uid1-8",
                "claim1-8",
                AVAILABLE,
                RETAIN,
                EMPTY,
                &[BBC],
            )],
            vec![c("claim1-8", "uid1-8", "1Gi", "", PENDING, None, &[])],
            vec![Bound("default/claim1-8", "volume1-8")],
        ),
        case(
            "1-9 - complete bind after crash - PV status saved",
            vec![v(
                "volume1-9",
                "1Gi",
                "uid1-9",
                "claim1-9",
                BOUND,
                RETAIN,
                EMPTY,
                &[BBC],
            )],
            vec![c("claim1-9", "uid1-9", "1Gi", "", PENDING, None, &[])],
            vec![Bound("default/claim1-9", "volume1-9")],
        ),
        case(
            "1-10 - complete bind after crash - PVC bound",
            vec![v(
                "volume1-10",
                "1Gi",
                "uid1-10",
                "claim1-10",
                BOUND,
                RETAIN,
                EMPTY,
                &[BBC],
            )],
            vec![c(
                "claim1-10",
                "uid1-10",
                "1Gi",
                "volume1-10",
                PENDING,
                None,
                &[BBC, BC],
            )],
            vec![Bound("default/claim1-10", "volume1-10")],
        ),
        case(
            "1-11 - bind when selector matches",
            vec![labelled(v(
                "volume1-1",
                "1Gi",
                "",
                "",
                AVAILABLE,
                RETAIN,
                EMPTY,
                &[],
            ))],
            vec![c("claim1-1", "uid1-1", "1Gi", "", PENDING, None, &[]).match_labels(LABELS)],
            vec![Bound("default/claim1-1", "volume1-1")],
        ),
        case(
            "1-12 - do not bind when selector does not match",
            vec![v("volume1-1", "1Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[])],
            vec![c("claim1-1", "uid1-1", "1Gi", "", PENDING, None, &[]).match_labels(LABELS)],
            vec![Pending("default/claim1-1"), VolumeUnbound("volume1-1")],
        ),
        case(
            "1-13 - delayed binding",
            vec![v("volume1-1", "1Gi", "", "", AVAILABLE, RETAIN, WAIT, &[])],
            vec![c("claim1-1", "uid1-1", "1Gi", "", PENDING, Some(WAIT), &[])],
            vec![PendingBecause(
                "default/claim1-1",
                "waiting for first consumer",
            )],
        ),
        case(
            "1-14 - successful prebound PV",
            vec![v(
                "volume1-1",
                "1Gi",
                "",
                "claim1-1",
                AVAILABLE,
                RETAIN,
                WAIT,
                &[],
            )],
            vec![c("claim1-1", "uid1-1", "1Gi", "", PENDING, Some(WAIT), &[])],
            vec![Bound("default/claim1-1", "volume1-1")],
        ),
        case(
            "1-15 - successful prebound PVC",
            vec![
                v(
                    "volume1-15.1",
                    "10Gi",
                    "",
                    "",
                    AVAILABLE,
                    RETAIN,
                    EMPTY,
                    &[],
                ),
                v("volume1-15.2", "1Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[]),
            ],
            vec![c(
                "claim1-15",
                "uid1-15",
                "1Gi",
                "volume1-15.1",
                PENDING,
                None,
                &[],
            )],
            vec![Bound("default/claim1-15", "volume1-15.1")],
        ),
        case(
            "1-16 - successful prebound PVC",
            vec![v(
                "volume1-16",
                "1Gi",
                "",
                "",
                AVAILABLE,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![
                c(
                    "claim1-16",
                    "uid1-16",
                    "1Gi",
                    "volume1-16",
                    PENDING,
                    None,
                    &[],
                )
                .modes(&["ReadWriteMany"]),
            ],
            vec![PendingBecause(
                "default/claim1-16",
                "incompatible accessMode",
            )],
        ),
        // One syncClaim skips volumes whose phase is not Available; every
        // syncVolume of a volume without claimRef makes it Available, and the
        // next syncClaim binds one of the four equal volumes: converged state.
        case(
            "1-17 - skip non-available PV if it's not pre-bind",
            vec![
                v(
                    "volume1-17-pending",
                    "1Gi",
                    "",
                    "",
                    PENDING,
                    RETAIN,
                    EMPTY,
                    &[],
                ),
                v(
                    "volume1-17-failed",
                    "1Gi",
                    "",
                    "",
                    FAILED,
                    RETAIN,
                    EMPTY,
                    &[],
                ),
                v(
                    "volume1-17-released",
                    "1Gi",
                    "",
                    "",
                    RELEASED,
                    RETAIN,
                    EMPTY,
                    &[],
                ),
                v("volume1-17-empty", "1Gi", "", "", "", RETAIN, EMPTY, &[]),
            ],
            vec![c("claim1-17", "uid1-17", "1Gi", "", PENDING, None, &[])],
            vec![BoundToOneOf(
                "default/claim1-17",
                &[
                    "volume1-17-pending",
                    "volume1-17-failed",
                    "volume1-17-released",
                    "volume1-17-empty",
                ],
            )],
        ),
        case(
            "1-18 - successful pre-bound PV to PVC provisioning",
            vec![v(
                "volume1-18",
                "1Gi",
                "uid1-18",
                "claim1-18",
                AVAILABLE,
                RETAIN,
                WAIT,
                &[],
            )],
            vec![
                c("claim1-18", "uid1-18", "1Gi", "", PENDING, Some(WAIT), &[])
                    .ann(ANN_SELECTED_NODE, "node1"),
            ],
            vec![Bound("default/claim1-18", "volume1-18")],
        ),
    ]
}

fn set2() -> Vec<SyncCase> {
    use Want::*;
    vec![
        case(
            "2-1 - claim prebound to non-existing volume - noop",
            vec![],
            vec![c(
                "claim2-1",
                "uid2-1",
                "10Gi",
                "volume2-1",
                PENDING,
                None,
                &[],
            )],
            vec![Pending("default/claim2-1")],
        ),
        // Phase Bound without pv.kubernetes.io/bind-completed: upstream
        // takes the unbound-claim path and resets it to Pending, not Lost.
        case(
            "2-2 - claim prebound to non-existing volume - reset status",
            vec![],
            vec![c(
                "claim2-2",
                "uid2-2",
                "10Gi",
                "volume2-2",
                BOUND,
                None,
                &[],
            )],
            vec![Pending("default/claim2-2")],
        ),
        case(
            "2-3 - claim prebound to unbound volume",
            vec![v("volume2-3", "1Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[])],
            vec![c(
                "claim2-3",
                "uid2-3",
                "1Gi",
                "volume2-3",
                PENDING,
                None,
                &[],
            )],
            vec![Bound("default/claim2-3", "volume2-3")],
        ),
        case(
            "2-4 - claim prebound to prebound volume by name",
            vec![v(
                "volume2-4",
                "1Gi",
                "",
                "claim2-4",
                AVAILABLE,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![c(
                "claim2-4",
                "uid2-4",
                "1Gi",
                "volume2-4",
                PENDING,
                None,
                &[],
            )],
            vec![Bound("default/claim2-4", "volume2-4")],
        ),
        case(
            "2-5 - claim prebound to prebound volume by UID",
            vec![v(
                "volume2-5",
                "1Gi",
                "uid2-5",
                "claim2-5",
                AVAILABLE,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![c(
                "claim2-5",
                "uid2-5",
                "1Gi",
                "volume2-5",
                PENDING,
                None,
                &[],
            )],
            vec![Bound("default/claim2-5", "volume2-5")],
        ),
        // The volume's claim claim2-6.1 does not exist: the next syncVolume
        // releases it (Retain keeps it). Converged state asserted.
        case(
            "2-6 - claim prebound to already bound volume",
            vec![v(
                "volume2-6",
                "1Gi",
                "uid2-6_1",
                "claim2-6.1",
                BOUND,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![c(
                "claim2-6",
                "uid2-6",
                "1Gi",
                "volume2-6",
                BOUND,
                None,
                &[],
            )],
            vec![Pending("default/claim2-6"), Reclaim("volume2-6", "keep")],
        ),
        // Upstream's syncClaim returns an error and leaves the claim as it
        // is (phase Bound); the claim never gets the volume. The volume's
        // claim is missing, so syncVolume releases it.
        case(
            "2-7 - claim bound by controller to already bound volume",
            vec![v(
                "volume2-7",
                "1Gi",
                "uid2-7_1",
                "claim2-7.1",
                BOUND,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![c(
                "claim2-7",
                "uid2-7",
                "1Gi",
                "volume2-7",
                BOUND,
                None,
                &[BBC],
            )],
            vec![NoVolume("default/claim2-7"), Reclaim("volume2-7", "keep")],
        ),
        case(
            "2-8 - claim prebound to unbound volume that does not match the selector",
            vec![v("volume2-8", "1Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[])],
            vec![
                c("claim2-8", "uid2-8", "1Gi", "volume2-8", PENDING, None, &[])
                    .match_labels(LABELS),
            ],
            vec![Bound("default/claim2-8", "volume2-8")],
        ),
        case(
            "2-9 - claim prebound to unbound volume that size is smaller than requested",
            vec![v("volume2-9", "1Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[])],
            vec![c(
                "claim2-9",
                "uid2-9",
                "2Gi",
                "volume2-9",
                BOUND,
                None,
                &[],
            )],
            vec![
                Pending("default/claim2-9"),
                PendingBecause("default/claim2-9", "requested PV is too small"),
            ],
        ),
        // newVolume with uid "1" and no claim name: no claimRef at all.
        case(
            "2-10 - claim prebound to unbound volume that class is different",
            vec![v(
                "volume2-10",
                "1Gi",
                "1",
                "",
                AVAILABLE,
                RETAIN,
                GOLD,
                &[],
            )],
            vec![c(
                "claim2-10",
                "uid2-10",
                "1Gi",
                "volume2-10",
                BOUND,
                None,
                &[],
            )],
            vec![
                Pending("default/claim2-10"),
                PendingBecause("default/claim2-10", "storageClassName does not match"),
            ],
        ),
        case(
            "2-11 - claim prebound to unbound volume that volume attributes class is different",
            vec![
                v("volume2-11", "1Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[])
                    .attributes_class(GOLD),
            ],
            vec![c(
                "claim2-11",
                "uid2-11",
                "1Gi",
                "volume2-11",
                BOUND,
                None,
                &[],
            )],
            vec![
                Pending("default/claim2-11"),
                PendingBecause(
                    "default/claim2-11",
                    "volumeAttributesClassName does not match",
                ),
            ],
        ),
        case(
            "2-12 - claim prebound to unbound volume that volume attributes class is same",
            vec![
                v("volume2-12", "1Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[])
                    .attributes_class(GOLD),
            ],
            vec![
                c(
                    "claim2-12",
                    "uid2-12",
                    "1Gi",
                    "volume2-12",
                    PENDING,
                    None,
                    &[],
                )
                .attributes_class(GOLD),
            ],
            vec![Bound("default/claim2-12", "volume2-12")],
        ),
    ]
}

fn set3() -> Vec<SyncCase> {
    use Want::*;
    vec![
        case(
            "3-1 - bound claim with missing VolumeName",
            vec![],
            vec![c("claim3-1", "uid3-1", "10Gi", "", BOUND, None, &[BBC, BC])],
            vec![Lost("default/claim3-1")],
        ),
        case(
            "3-2 - bound claim with missing volume",
            vec![],
            vec![c(
                "claim3-2",
                "uid3-2",
                "10Gi",
                "volume3-2",
                BOUND,
                None,
                &[BBC, BC],
            )],
            vec![Lost("default/claim3-2")],
        ),
        case(
            "3-3 - bound claim with unbound volume",
            vec![v(
                "volume3-3",
                "10Gi",
                "",
                "",
                AVAILABLE,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![c(
                "claim3-3",
                "uid3-3",
                "10Gi",
                "volume3-3",
                PENDING,
                None,
                &[BBC, BC],
            )],
            vec![Bound("default/claim3-3", "volume3-3")],
        ),
        // The claim is Lost; the volume's claimRef names the claim with
        // another UID, so the next syncVolume releases it (Retain keeps it).
        case(
            "3-4 - bound claim with prebound volume",
            vec![v(
                "volume3-4",
                "10Gi",
                "claim3-4-x",
                "claim3-4",
                AVAILABLE,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![c(
                "claim3-4",
                "uid3-4",
                "10Gi",
                "volume3-4",
                PENDING,
                None,
                &[BBC, BC],
            )],
            vec![Lost("default/claim3-4"), Reclaim("volume3-4", "keep")],
        ),
        case(
            "3-5 - bound claim with bound volume",
            vec![v(
                "volume3-5",
                "10Gi",
                "uid3-5",
                "claim3-5",
                AVAILABLE,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![c(
                "claim3-5",
                "uid3-5",
                "10Gi",
                "volume3-5",
                PENDING,
                None,
                &[BC],
            )],
            vec![Bound("default/claim3-5", "volume3-5")],
        ),
        // The claim is Lost; the volume's claim claim3-6-x does not exist,
        // so the next syncVolume releases it (Retain keeps it).
        case(
            "3-6 - bound claim with bound volume",
            vec![v(
                "volume3-6",
                "10Gi",
                "uid3-6-x",
                "claim3-6-x",
                AVAILABLE,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![c(
                "claim3-6",
                "uid3-6",
                "10Gi",
                "volume3-6",
                PENDING,
                None,
                &[BC],
            )],
            vec![Lost("default/claim3-6"), Reclaim("volume3-6", "keep")],
        ),
        case(
            "3-7 - bound claim with unbound volume where selector doesn't match",
            vec![v(
                "volume3-3",
                "10Gi",
                "",
                "",
                AVAILABLE,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![
                c(
                    "claim3-3",
                    "uid3-3",
                    "10Gi",
                    "volume3-3",
                    PENDING,
                    None,
                    &[BBC, BC],
                )
                .match_labels(LABELS),
            ],
            vec![Bound("default/claim3-3", "volume3-3")],
        ),
    ]
}

fn set4() -> Vec<SyncCase> {
    use Want::*;
    vec![
        case(
            "4-1 - pending volume",
            vec![v(
                "volume4-1",
                "10Gi",
                "",
                "",
                AVAILABLE,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![],
            vec![NoReclaim("volume4-1"), VolumeUnbound("volume4-1")],
        ),
        case(
            "4-2 - pending prebound volume",
            vec![v(
                "volume4-2",
                "10Gi",
                "",
                "claim4-2",
                AVAILABLE,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![],
            vec![NoReclaim("volume4-2"), VolumeUnbound("volume4-2")],
        ),
        case(
            "4-3 - bound volume with missing claim",
            vec![v(
                "volume4-3",
                "10Gi",
                "uid4-3",
                "claim4-3",
                BOUND,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![],
            vec![Reclaim("volume4-3", "keep")],
        ),
        // The claim has bind-completed and names the volume, whose claimRef
        // has another UID: the next syncClaim marks it Lost (converged).
        case(
            "4-4 - volume bound to claim with different UID",
            vec![v(
                "volume4-4",
                "10Gi",
                "uid4-4",
                "claim4-4",
                BOUND,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![c(
                "claim4-4",
                "uid4-4-x",
                "10Gi",
                "volume4-4",
                BOUND,
                None,
                &[BC],
            )],
            vec![Reclaim("volume4-4", "keep"), Lost("default/claim4-4")],
        ),
        // syncVolume leaves it; the next syncClaim finds the volume
        // reserved for it by UID and binds it (converged).
        case(
            "4-5 - volume bound by controller to unbound claim",
            vec![v(
                "volume4-5",
                "10Gi",
                "uid4-5",
                "claim4-5",
                BOUND,
                RETAIN,
                EMPTY,
                &[BBC],
            )],
            vec![c("claim4-5", "uid4-5", "10Gi", "", PENDING, None, &[])],
            vec![
                Bound("default/claim4-5", "volume4-5"),
                NoReclaim("volume4-5"),
            ],
        ),
        case(
            "4-5 - volume bound by user to bound claim",
            vec![v(
                "volume4-5",
                "10Gi",
                "uid4-5",
                "claim4-5",
                BOUND,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![c("claim4-5", "uid4-5", "10Gi", "", PENDING, None, &[])],
            vec![
                Bound("default/claim4-5", "volume4-5"),
                NoReclaim("volume4-5"),
            ],
        ),
        case(
            "4-6 - volume bound by to bound claim",
            vec![v(
                "volume4-6",
                "10Gi",
                "uid4-6",
                "claim4-6",
                AVAILABLE,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![c(
                "claim4-6",
                "uid4-6",
                "10Gi",
                "volume4-6",
                BOUND,
                None,
                &[],
            )],
            vec![Bound("default/claim4-6", "volume4-6")],
        ),
        // Claim bound elsewhere, volume bound by the controller: the
        // claimRef is removed and the volume is Available again.
        case(
            "4-7 - volume bound by controller to claim bound somewhere else",
            vec![v(
                "volume4-7",
                "10Gi",
                "uid4-7",
                "claim4-7",
                BOUND,
                RETAIN,
                EMPTY,
                &[BBC],
            )],
            vec![c(
                "claim4-7",
                "uid4-7",
                "10Gi",
                "volume4-7-x",
                BOUND,
                None,
                &[],
            )],
            vec![
                Reclaim("volume4-7", "unbind"),
                VolumeUnbound("volume4-7"),
                NoVolume("default/claim4-7"),
            ],
        ),
        // Claim bound elsewhere, volume bound by a user: the claimRef keeps
        // the name, loses the UID, the volume is Available.
        case(
            "4-8 - volume bound by user to claim bound somewhere else",
            vec![v(
                "volume4-8",
                "10Gi",
                "uid4-8",
                "claim4-8",
                BOUND,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![c(
                "claim4-8",
                "uid4-8",
                "10Gi",
                "volume4-8-x",
                BOUND,
                None,
                &[],
            )],
            vec![
                Reclaim("volume4-8", "unbind"),
                VolumeUnbound("volume4-8"),
                NoVolume("default/claim4-8"),
            ],
        ),
        case(
            "4-9 - volume bound to bound claim, with PersistentVolumeReclaimDelete",
            vec![v(
                "volume4-9",
                "10Gi",
                "uid4-9",
                "claim4-9",
                AVAILABLE,
                DELETE,
                EMPTY,
                &[],
            )],
            vec![c(
                "claim4-9",
                "uid4-9",
                "10Gi",
                "volume4-9",
                BOUND,
                None,
                &[],
            )],
            vec![
                Bound("default/claim4-9", "volume4-9"),
                NoReclaim("volume4-9"),
            ],
        ),
        // A GCE PD without provisioned-by: no deleter plugin → Failed.
        case(
            "4-10 - volume bound to missing claim",
            vec![v(
                "volume4-10",
                "10Gi",
                "uid4-10",
                "claim4-10",
                AVAILABLE,
                DELETE,
                EMPTY,
                &[],
            )],
            vec![],
            vec![Reclaim("volume4-10", "fail")],
        ),
        // Upstream: the claim is in etcd but not yet in the controller's
        // cache, and nothing happens until it is. Converged: the claim is
        // seen and the volume is Bound.
        case(
            "4-11 - volume bound to unknown claim",
            vec![v(
                "volume4-11",
                "10Gi",
                "uid4-11",
                "claim4-11",
                AVAILABLE,
                DELETE,
                EMPTY,
                &[],
            )],
            vec![c(
                "claim4-11",
                "uid4-11",
                "10Gi",
                "volume4-11",
                BOUND,
                None,
                &[],
            )],
            vec![
                Bound("default/claim4-11", "volume4-11"),
                NoReclaim("volume4-11"),
            ],
        ),
        // Upstream: the cache still has the claim's old UID; etcd has the
        // new one, which the volume names. Converged: the newest claim.
        case(
            "4-12 - volume bound to newest claim but not updated to local cache",
            vec![v(
                "volume4-12",
                "10Gi",
                "uid4-12-new",
                "claim4-12",
                AVAILABLE,
                DELETE,
                EMPTY,
                &[],
            )],
            vec![c(
                "claim4-12",
                "uid4-12-new",
                "10Gi",
                "volume4-12",
                BOUND,
                None,
                &[],
            )],
            vec![
                Bound("default/claim4-12", "volume4-12"),
                NoReclaim("volume4-12"),
            ],
        ),
    ]
}

fn set13() -> Vec<SyncCase> {
    use Want::*;
    vec![
        case(
            "13-1 - binding to class",
            vec![
                v("volume13-1-1", "1Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[]),
                v("volume13-1-2", "10Gi", "", "", AVAILABLE, RETAIN, GOLD, &[]),
            ],
            vec![c(
                "claim13-1",
                "uid13-1",
                "1Gi",
                "",
                PENDING,
                Some(GOLD),
                &[],
            )],
            vec![Bound("default/claim13-1", "volume13-1-2")],
        ),
        case(
            "13-2 - binding without a class",
            vec![
                v("volume13-2-1", "1Gi", "", "", AVAILABLE, RETAIN, GOLD, &[]),
                v(
                    "volume13-2-2",
                    "10Gi",
                    "",
                    "",
                    AVAILABLE,
                    RETAIN,
                    EMPTY,
                    &[],
                ),
            ],
            vec![c("claim13-2", "uid13-2", "1Gi", "", PENDING, None, &[])],
            vec![Bound("default/claim13-2", "volume13-2-2")],
        ),
        case(
            "13-3 - binding to specific a class",
            vec![
                v(
                    "volume13-3-1",
                    "1Gi",
                    "",
                    "",
                    AVAILABLE,
                    RETAIN,
                    SILVER,
                    &[],
                ),
                v("volume13-3-2", "10Gi", "", "", AVAILABLE, RETAIN, GOLD, &[]),
            ],
            vec![c(
                "claim13-3",
                "uid13-3",
                "1Gi",
                "",
                PENDING,
                Some(GOLD),
                &[],
            )],
            vec![Bound("default/claim13-3", "volume13-3-2")],
        ),
        case(
            "13-4 - empty class",
            vec![v(
                "volume13-4",
                "1Gi",
                "",
                "",
                AVAILABLE,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![c(
                "claim13-4",
                "uid13-4",
                "1Gi",
                "",
                PENDING,
                Some(EMPTY),
                &[],
            )],
            vec![Bound("default/claim13-4", "volume13-4")],
        ),
        case(
            "13-5 - nil class",
            vec![v(
                "volume13-5",
                "1Gi",
                "",
                "",
                AVAILABLE,
                RETAIN,
                EMPTY,
                &[],
            )],
            vec![c("claim13-5", "uid13-5", "1Gi", "", PENDING, None, &[])],
            vec![Bound("default/claim13-5", "volume13-5")],
        ),
    ]
}

fn block_cases() -> Vec<SyncCase> {
    use Want::*;
    let vm = |pv: Pv, m: &str| pv.volume_mode(m);
    let cm = |pvc: Pvc, m: &str| pvc.volume_mode(m);
    let (b, f) = ("Block", "Filesystem");
    vec![
        case(
            "14-1 - binding to volumeMode block",
            vec![vm(
                v("volume14-1", "10Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[]),
                b,
            )],
            vec![cm(
                c("claim14-1", "uid14-1", "10Gi", "", PENDING, None, &[]),
                b,
            )],
            vec![Bound("default/claim14-1", "volume14-1")],
        ),
        case(
            "14-2 - binding to volumeMode filesystem",
            vec![vm(
                v("volume14-2", "10Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[]),
                f,
            )],
            vec![cm(
                c("claim14-2", "uid14-2", "10Gi", "", PENDING, None, &[]),
                f,
            )],
            vec![Bound("default/claim14-2", "volume14-2")],
        ),
        case(
            "14-3 - do not bind pv volumeMode filesystem and pvc volumeMode block",
            vec![vm(
                v("volume14-3", "10Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[]),
                f,
            )],
            vec![cm(
                c("claim14-3", "uid14-3", "10Gi", "", PENDING, None, &[]),
                b,
            )],
            vec![Pending("default/claim14-3")],
        ),
        case(
            "14-4 - do not bind pv volumeMode block and pvc volumeMode filesystem",
            vec![vm(
                v("volume14-4", "10Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[]),
                b,
            )],
            vec![cm(
                c("claim14-4", "uid14-4", "10Gi", "", PENDING, None, &[]),
                f,
            )],
            vec![Pending("default/claim14-4")],
        ),
        case(
            "14-5 - do not bind when matching class but not volumeMode",
            vec![vm(
                v("volume14-5", "10Gi", "", "", AVAILABLE, RETAIN, GOLD, &[]),
                f,
            )],
            vec![cm(
                c("claim14-5", "uid14-5", "10Gi", "", PENDING, Some(GOLD), &[]),
                b,
            )],
            vec![Pending("default/claim14-5")],
        ),
        case(
            "14-5-1 - do not bind when matching volumeModes but class does not match",
            vec![vm(
                v("volume14-5-1", "10Gi", "", "", AVAILABLE, RETAIN, GOLD, &[]),
                f,
            )],
            vec![cm(
                c(
                    "claim14-5-1",
                    "uid14-5-1",
                    "10Gi",
                    "",
                    PENDING,
                    Some(SILVER),
                    &[],
                ),
                f,
            )],
            vec![Pending("default/claim14-5-1")],
        ),
        case(
            "14-5-2 - do not bind when pvc is prebound to pv with matching volumeModes but class does not match",
            vec![vm(
                v("volume14-5-2", "10Gi", "", "", AVAILABLE, RETAIN, GOLD, &[]),
                f,
            )],
            vec![cm(
                c(
                    "claim14-5-2",
                    "uid14-5-2",
                    "10Gi",
                    "volume14-5-2",
                    PENDING,
                    Some(SILVER),
                    &[],
                ),
                f,
            )],
            vec![PendingBecause(
                "default/claim14-5-2",
                "storageClassName does not match",
            )],
        ),
        case(
            "14-7 - bind when pv volume is prebound and volumeModes match",
            vec![vm(
                v(
                    "volume14-7",
                    "10Gi",
                    "",
                    "claim14-7",
                    AVAILABLE,
                    RETAIN,
                    EMPTY,
                    &[],
                ),
                b,
            )],
            vec![cm(
                c("claim14-7", "uid14-7", "10Gi", "", PENDING, None, &[]),
                b,
            )],
            vec![Bound("default/claim14-7", "volume14-7")],
        ),
        case(
            "14-8 - do not bind when pvc is prebound to pv with mismatching volumeModes",
            vec![vm(
                v("volume14-8", "10Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[]),
                b,
            )],
            vec![cm(
                c(
                    "claim14-8",
                    "uid14-8",
                    "10Gi",
                    "volume14-8",
                    PENDING,
                    None,
                    &[],
                ),
                f,
            )],
            vec![PendingBecause(
                "default/claim14-8",
                "incompatible volumeMode",
            )],
        ),
        case(
            "14-8-1 - do not bind when pvc is prebound to pv with mismatching volumeModes",
            vec![vm(
                v(
                    "volume14-8-1",
                    "10Gi",
                    "",
                    "claim14-8-1",
                    AVAILABLE,
                    RETAIN,
                    EMPTY,
                    &[],
                ),
                b,
            )],
            vec![cm(
                c("claim14-8-1", "uid14-8-1", "10Gi", "", PENDING, None, &[]),
                f,
            )],
            vec![
                Pending("default/claim14-8-1"),
                VolumeUnbound("volume14-8-1"),
            ],
        ),
        case(
            "14-9 - bind when pvc is prebound to pv with matching volumeModes block",
            vec![vm(
                v("volume14-9", "10Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[]),
                b,
            )],
            vec![cm(
                c(
                    "claim14-9",
                    "uid14-9",
                    "10Gi",
                    "volume14-9",
                    PENDING,
                    None,
                    &[],
                ),
                b,
            )],
            vec![Bound("default/claim14-9", "volume14-9")],
        ),
        case(
            "14-10 - bind when pv is prebound to pvc with matching volumeModes block",
            vec![vm(
                v(
                    "volume14-10",
                    "10Gi",
                    "",
                    "claim14-10",
                    AVAILABLE,
                    RETAIN,
                    EMPTY,
                    &[],
                ),
                b,
            )],
            vec![cm(
                c("claim14-10", "uid14-10", "10Gi", "", PENDING, None, &[]),
                b,
            )],
            vec![Bound("default/claim14-10", "volume14-10")],
        ),
        case(
            "14-11 - bind when pvc is prebound to pv with matching volumeModes filesystem",
            vec![vm(
                v("volume14-11", "10Gi", "", "", AVAILABLE, RETAIN, EMPTY, &[]),
                f,
            )],
            vec![cm(
                c(
                    "claim14-11",
                    "uid14-11",
                    "10Gi",
                    "volume14-11",
                    PENDING,
                    None,
                    &[],
                ),
                f,
            )],
            vec![Bound("default/claim14-11", "volume14-11")],
        ),
        case(
            "14-12 - bind when pv is prebound to pvc with matching volumeModes filesystem",
            vec![vm(
                v(
                    "volume14-12",
                    "10Gi",
                    "",
                    "claim14-12",
                    AVAILABLE,
                    RETAIN,
                    EMPTY,
                    &[],
                ),
                f,
            )],
            vec![cm(
                c("claim14-12", "uid14-12", "10Gi", "", PENDING, None, &[]),
                f,
            )],
            vec![Bound("default/claim14-12", "volume14-12")],
        ),
        // syncVolume only warns; syncClaim's FindMatchingVolume skips the
        // volume for its mode before looking at the claimRef, so the claim
        // stays Pending and the volume keeps its claimRef (converged).
        case(
            "14-13 - output warning when pv is prebound to pvc with different volumeModes",
            vec![vm(
                v(
                    "volume14-13",
                    "10Gi",
                    "uid14-13",
                    "claim14-13",
                    AVAILABLE,
                    RETAIN,
                    EMPTY,
                    &[BBC],
                ),
                f,
            )],
            vec![cm(
                c("claim14-13", "uid14-13", "10Gi", "", PENDING, None, &[]),
                b,
            )],
            vec![
                Pending("default/claim14-13"),
                NoReclaim("volume14-13"),
                VolumeUnbound("volume14-13"),
            ],
        ),
        case(
            "14-13-1 - output warning when pv is prebound to pvc with different volumeModes",
            vec![vm(
                v(
                    "volume14-13-1",
                    "10Gi",
                    "uid14-13-1",
                    "claim14-13-1",
                    AVAILABLE,
                    RETAIN,
                    EMPTY,
                    &[BBC],
                ),
                b,
            )],
            vec![cm(
                c("claim14-13-1", "uid14-13-1", "10Gi", "", PENDING, None, &[]),
                f,
            )],
            vec![
                Pending("default/claim14-13-1"),
                NoReclaim("volume14-13-1"),
                VolumeUnbound("volume14-13-1"),
            ],
        ),
        // syncVolume waits for syncClaim, which binds the volume reserved
        // for the claim by UID (converged).
        case(
            "14-14 - wait for synClaim without warning when pv is prebound to pvc with matching volumeModes block",
            vec![vm(
                v(
                    "volume14-14",
                    "10Gi",
                    "uid14-14",
                    "claim14-14",
                    AVAILABLE,
                    RETAIN,
                    EMPTY,
                    &[BBC],
                ),
                b,
            )],
            vec![cm(
                c("claim14-14", "uid14-14", "10Gi", "", PENDING, None, &[]),
                b,
            )],
            vec![Bound("default/claim14-14", "volume14-14")],
        ),
        case(
            "14-14-1 - wait for synClaim without warning when pv is prebound to pvc with matching volumeModes file",
            vec![vm(
                v(
                    "volume14-14-1",
                    "10Gi",
                    "uid14-14-1",
                    "claim14-14-1",
                    AVAILABLE,
                    RETAIN,
                    EMPTY,
                    &[BBC],
                ),
                f,
            )],
            vec![cm(
                c("claim14-14-1", "uid14-14-1", "10Gi", "", PENDING, None, &[]),
                f,
            )],
            vec![Bound("default/claim14-14-1", "volume14-14-1")],
        ),
    ]
}

/// TestMultiSync runs the controller to a stable state, as a plan does.
fn multi_sync_cases() -> Vec<SyncCase> {
    use Want::*;
    vec![
        case(
            "10-1 - successful bind",
            vec![v("volume10-1", "1Gi", "", "", PENDING, RETAIN, EMPTY, &[])],
            vec![c("claim10-1", "uid10-1", "1Gi", "", PENDING, None, &[])],
            vec![Bound("default/claim10-1", "volume10-1")],
        ),
        // Two controllers bound two PVs to one claim; the claim names
        // volume10-2-1, volume10-2-2 rolls back to Available.
        case(
            "10-2 - bind PV race",
            vec![
                v(
                    "volume10-2-1",
                    "1Gi",
                    "uid10-2",
                    "claim10-2",
                    BOUND,
                    RETAIN,
                    EMPTY,
                    &[BBC],
                ),
                v(
                    "volume10-2-2",
                    "1Gi",
                    "uid10-2",
                    "claim10-2",
                    BOUND,
                    RETAIN,
                    EMPTY,
                    &[BBC],
                ),
            ],
            vec![c(
                "claim10-2",
                "uid10-2",
                "1Gi",
                "volume10-2-1",
                BOUND,
                None,
                &[BBC, BC],
            )],
            vec![
                Bound("default/claim10-2", "volume10-2-1"),
                Reclaim("volume10-2-2", "unbind"),
                VolumeUnbound("volume10-2-2"),
            ],
        ),
    ]
}

#[test]
fn test_multi_sync() {
    run_sync_cases(&multi_sync_cases(), &classes());
}

#[test]
fn test_sync_set1_any_volume() {
    run_sync_cases(&set1(), &classes());
}

#[test]
fn test_sync_set2_named_volume() {
    run_sync_cases(&set2(), &classes());
}

#[test]
fn test_sync_set3_bound_claims() {
    run_sync_cases(&set3(), &classes());
}

#[test]
fn test_sync_set4_sync_volume() {
    run_sync_cases(&set4(), &classes());
}

#[test]
fn test_sync_set13_classes() {
    run_sync_cases(&set13(), &classes());
}

#[test]
fn test_sync_block_volume() {
    run_sync_cases(&block_cases(), &classes());
}

#[test]
fn not_applicable_list_is_a_partition() {
    let sync: Vec<SyncCase> = [set1(), set2(), set3(), set4(), set13()]
        .into_iter()
        .flatten()
        .collect();
    // Upstream itself has two cases named "4-5 - …" with different
    // suffixes; names must be unique within a port.
    let names: Vec<String> = sync
        .iter()
        .map(|c| format!("TestSync/{}", c.name))
        .chain(
            block_cases()
                .iter()
                .map(|c| format!("TestSyncBlockVolume/{}", c.name)),
        )
        .chain(
            multi_sync_cases()
                .iter()
                .map(|c| format!("TestMultiSync/{}", c.name)),
        )
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_partition(&refs, NOT_APPLICABLE);
}
