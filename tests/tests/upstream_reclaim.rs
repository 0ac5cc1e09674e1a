//! Upstream's PV controller reclaim tests (delete and recycle), ported case
//! by case: berth's reclaim action for upstream's released volumes must be
//! what upstream's controller does to them.
//!
//! Ports `pkg/controller/volume/persistentvolume/delete_test.go`
//! (TestDeleteSync, TestDeleteMultiSync) and `recycle_test.go`
//! (TestRecycleSync, TestRecycleMultiSync).
//!
//! Upstream injects a mock in-tree plugin (`kubernetes.io/mock-volume`) that
//! can delete or recycle any volume, and scripts its result per case. berth
//! predicts with the plugins a real cluster has, so a case whose upstream
//! outcome is "the plugin did it" is ported with a volume a real cluster
//! reclaims the same way: for delete, a CSI volume whose provisioner is
//! named in `pv.kubernetes.io/provisioned-by` (its external provisioner
//! deletes it); for recycle, an NFS volume (NFS has the in-tree recycler).
//! "Plugin not found" cases keep upstream's GCE PD source, which no plugin of
//! a current cluster deletes or recycles. Scripted plugin failures and races
//! injected between sync and operation are not applicable.

use berth_tests::upstream::*;

const BOUND: &str = "Bound";
const PENDING: &str = "Pending";
const DELETE: &str = "Delete";
const RECYCLE: &str = "Recycle";
const EMPTY: &str = "";
const BBC: &str = ANN_BOUND_BY_CONTROLLER;
/// The CSI driver standing for upstream's mock deleter.
const DRIVER: &str = "csi.example.com";

const NOT_APPLICABLE: &[(&str, &str)] = &[
    (
        "TestDeleteSync/8-4 - newDeleter returns error",
        "the mock plugin is scripted to fail creating a deleter (injected plugin error)",
    ),
    (
        "TestDeleteSync/8-5 - delete returns error",
        "the mock plugin's delete() is scripted to fail (injected plugin error)",
    ),
    (
        "TestDeleteSync/8-6 - volume is deleted before deleting",
        "race injected between syncVolume and the delete operation (the volume disappears)",
    ),
    (
        "TestDeleteSync/8-7 - volume is bound before deleting",
        "race injected between syncVolume and the delete operation (a claim is resurrected)",
    ),
    (
        "TestRecycleSync/6-4 - newRecycler returns error",
        "the mock plugin is scripted to fail creating a recycler (injected plugin error)",
    ),
    (
        "TestRecycleSync/6-5 - recycle returns error",
        "the mock plugin's recycle() is scripted to fail (injected plugin error)",
    ),
    (
        "TestRecycleSync/6-6 - volume is deleted before recycling",
        "race injected between syncVolume and the recycle operation (the volume disappears)",
    ),
    (
        "TestRecycleSync/6-7 - volume is deleted before recycling",
        "race injected between syncVolume and the recycle operation (another recycler finished)",
    ),
    (
        "TestRecycleSync/6-8 - prebound volume is deleted before recycling",
        "race injected between syncVolume and the recycle operation (another recycler finished)",
    ),
];

fn v(name: &str, uid: &str, claim: &str, policy: &str, anns: &[&str]) -> Pv {
    new_volume(name, "1Gi", uid, claim, BOUND, policy, EMPTY, anns)
}

/// The stand-in for "the mock deleter deletes it": provisioned by a CSI
/// driver that deletes its volumes.
fn deletable(pv: Pv) -> Pv {
    pv.csi(DRIVER).ann(ANN_PROVISIONED_BY, DRIVER)
}

/// The stand-in for "the mock recycler recycles it": NFS.
fn recyclable(pv: Pv) -> Pv {
    pv.source("  nfs:\n    server: nfs.example\n    path: /upstream\n")
}

fn case(name: &'static str, volumes: Vec<Pv>, claims: Vec<Pvc>, wants: Vec<Want>) -> SyncCase {
    SyncCase {
        name,
        volumes,
        claims,
        wants,
    }
}

fn delete_cases() -> Vec<SyncCase> {
    use Want::*;
    vec![
        case(
            "TestDeleteSync/8-1 - successful delete",
            vec![deletable(v(
                "volume8-1",
                "uid8-1",
                "claim8-1",
                DELETE,
                &[BBC],
            ))],
            vec![],
            vec![Reclaim("volume8-1", "delete")],
        ),
        case(
            "TestDeleteSync/8-2 - successful delete with prebound volume",
            vec![deletable(v("volume8-2", "uid8-2", "claim8-2", DELETE, &[]))],
            vec![],
            vec![Reclaim("volume8-2", "delete")],
        ),
        // No plugin deletes a static GCE PD in a current cluster: Failed.
        case(
            "TestDeleteSync/8-3 - plugin not found",
            vec![v("volume8-3", "uid8-3", "claim8-3", DELETE, &[])],
            vec![],
            vec![Reclaim("volume8-3", "fail")],
        ),
        case(
            "TestDeleteSync/8-9 - prebound volume is deleted while the claim exists",
            vec![deletable(v("volume8-9", "uid8-9", "claim8-9", DELETE, &[]))],
            vec![new_claim(
                "claim8-9",
                "uid8-9-x",
                "10Gi",
                "",
                PENDING,
                None,
                &[],
            )],
            vec![Reclaim("volume8-9", "delete"), VolumeUnbound("volume8-9")],
        ),
        // provisioned-by names an external provisioner: the PV controller
        // marks it Released and the external provisioner deletes it.
        case(
            "TestDeleteSync/8-10 - external deleter",
            vec![
                v("volume8-10", "uid10-1", "claim10-1", DELETE, &[BBC])
                    .ann(ANN_PROVISIONED_BY, "external.io/test"),
            ],
            vec![],
            vec![Reclaim("volume8-10", "delete")],
        ),
        // The claim is bound to volume8-11-2: volume8-11-1 lost the race and
        // is deleted.
        case(
            "TestDeleteSync/8-11 - two PVs provisioned for a single claim",
            vec![
                deletable(v("volume8-11-1", "uid8-11", "claim8-11", DELETE, &[])),
                deletable(v("volume8-11-2", "uid8-11", "claim8-11", DELETE, &[])),
            ],
            vec![new_claim(
                "claim8-11",
                "uid8-11",
                "10Gi",
                "volume8-11-2",
                BOUND,
                None,
                &[],
            )],
            vec![
                Reclaim("volume8-11-1", "delete"),
                Bound("default/claim8-11", "volume8-11-2"),
                NoReclaim("volume8-11-2"),
            ],
        ),
        case(
            "TestDeleteSync/8-12 - two PVs externally provisioned for a single claim",
            vec![
                v("volume8-12-1", "uid8-12", "claim8-12", DELETE, &[])
                    .ann(ANN_PROVISIONED_BY, "external.io/test"),
                v(
                    "volume8-12-2",
                    "uid8-12",
                    "claim8-12",
                    DELETE,
                    &[ANN_PROVISIONED_BY],
                ),
            ],
            vec![new_claim(
                "claim8-12",
                "uid8-12",
                "10Gi",
                "volume8-12-2",
                BOUND,
                None,
                &[],
            )],
            vec![
                Reclaim("volume8-12-1", "delete"),
                Bound("default/claim8-12", "volume8-12-2"),
            ],
        ),
        // Upstream: the first delete() fails, the controller retries and
        // the second succeeds; converged: deleted.
        case(
            "TestDeleteMultiSync/9-1 - delete returns error",
            vec![deletable(v("volume9-1", "uid9-1", "claim9-1", DELETE, &[]))],
            vec![],
            vec![Reclaim("volume9-1", "delete")],
        ),
    ]
}

fn recycle_cases() -> Vec<SyncCase> {
    use Want::*;
    vec![
        case(
            "TestRecycleSync/6-1 - successful recycle",
            vec![recyclable(v(
                "volume6-1",
                "uid6-1",
                "claim6-1",
                RECYCLE,
                &[BBC],
            ))],
            vec![],
            vec![Reclaim("volume6-1", "recycle")],
        ),
        case(
            "TestRecycleSync/6-2 - successful recycle with prebound volume",
            vec![recyclable(v(
                "volume6-2",
                "uid6-2",
                "claim6-2",
                RECYCLE,
                &[],
            ))],
            vec![],
            vec![Reclaim("volume6-2", "recycle")],
        ),
        // GCE PD has no recycler.
        case(
            "TestRecycleSync/6-3 - plugin not found",
            vec![v("volume6-3", "uid6-3", "claim6-3", RECYCLE, &[])],
            vec![],
            vec![Reclaim("volume6-3", "fail")],
        ),
        case(
            "TestRecycleSync/6-9 - prebound volume is recycled while the claim exists",
            vec![recyclable(v(
                "volume6-9",
                "uid6-9",
                "claim6-9",
                RECYCLE,
                &[],
            ))],
            vec![new_claim(
                "claim6-9",
                "uid6-9-x",
                "10Gi",
                "",
                PENDING,
                None,
                &[],
            )],
            vec![Reclaim("volume6-9", "recycle"), VolumeUnbound("volume6-9")],
        ),
        case(
            "TestRecycleSync/6-10 - unknown reclaim policy",
            vec![v("volume6-10", "uid6-10", "claim6-10", "Unknown", &[])],
            vec![],
            vec![Reclaim("volume6-10", "fail")],
        ),
        // Upstream: the first recycle() fails, the retry succeeds;
        // converged: recycled.
        case(
            "TestRecycleMultiSync/7-1 - recycle returns error",
            vec![recyclable(v(
                "volume7-1",
                "uid7-1",
                "claim7-1",
                RECYCLE,
                &[],
            ))],
            vec![],
            vec![Reclaim("volume7-1", "recycle")],
        ),
    ]
}

#[test]
fn test_delete_sync() {
    run_sync_cases(&delete_cases(), &[]);
}

#[test]
fn test_recycle_sync() {
    run_sync_cases(&recycle_cases(), &[]);
}

#[test]
fn not_applicable_list_is_a_partition() {
    let names: Vec<&str> = delete_cases()
        .iter()
        .chain(recycle_cases().iter())
        .map(|c| c.name)
        .collect();
    assert_partition(&names, NOT_APPLICABLE);
}
