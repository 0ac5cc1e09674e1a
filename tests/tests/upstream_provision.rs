//! Upstream's PV controller provisioning tests, ported for the outcomes a
//! plan can express: is the claim provisioned (with which class, on which
//! node), bound to an existing volume, or left Pending.
//!
//! Ports `pkg/controller/volume/persistentvolume/provision_test.go`
//! (TestProvisionSync, TestProvisionMultiSync).
//!
//! Upstream's classes `gold`, `silver` and `copper` name a mock in-tree
//! provisioner (`kubernetes.io/mock-volume`) that the test injects and
//! scripts. berth predicts a real cluster, where that plugin does not exist,
//! so where upstream's outcome is "the mock provisioner made the volume" the
//! class names a CSI driver instead (`csi.example.com`, provisioned by its
//! external-provisioner, the same outcome); "11-2 - plugin not found" keeps
//! the mock plugin's name, which no real cluster has. External classes are
//! upstream's as they are. TestProvisionSync asserts one syncClaim (the
//! hand-off to the provisioner, the ExternalProvisioning event); the plan
//! asserts the converged outcome: the claim is provisioned.

use berth_tests::upstream::*;

const AVAILABLE: &str = "Available";
const PENDING: &str = "Pending";
const RETAIN: &str = "Retain";
const DELETE: &str = "Delete";
/// The provisioner standing for upstream's injected mock provisioner.
const DRIVER: &str = "csi.example.com";

const NOT_APPLICABLE: &[(&str, &str)] = &[
    (
        "TestProvisionSync/11-3 - newProvisioner failure",
        "the mock plugin is scripted to fail creating a provisioner (injected plugin error)",
    ),
    (
        "TestProvisionSync/11-4 - provision failure",
        "the mock plugin's Provision() is scripted to fail (injected plugin error)",
    ),
    (
        "TestProvisionSync/11-7 - claim is bound before provisioning",
        "race injected between syncClaim and the provision operation (a parallel controller creates the PV)",
    ),
    (
        "TestProvisionSync/11-8 - cannot save provisioned volume",
        "injected API error on PersistentVolumes.Create",
    ),
    (
        "TestProvisionSync/11-9 - cannot save provisioned volume, delete succeeds",
        "injected API errors on PersistentVolumes.Create",
    ),
    (
        "TestProvisionSync/11-10 - cannot save provisioned volume, no delete plugin found",
        "injected API errors on PersistentVolumes.Create",
    ),
    (
        "TestProvisionSync/11-11 - cannot save provisioned volume, deleter fails",
        "injected API errors on PersistentVolumes.Create and scripted deleter errors",
    ),
    (
        "TestProvisionSync/11-12 - cannot save provisioned volume, delete succeeds 2nd time",
        "injected API errors on PersistentVolumes.Create and scripted deleter errors",
    ),
    (
        "TestProvisionSync/11-19 - provisioned volume saved but API server crashed",
        "injected API errors on PersistentVolumes.Create (AlreadyExists after a crash)",
    ),
    (
        "TestProvisionSync/11-20 - unsupported storageClass.mountOptions",
        "outcome set by the mock in-tree plugin's SupportsMountOption() = false; the PV controller does not check mount options of external (CSI) provisioners",
    ),
    (
        "TestProvisionSync/11-25 - failed in-tree provision with data source",
        "outcome set by the mock in-tree plugin refusing data sources; every in-tree provisioner of a current cluster is migrated to CSI",
    ),
    (
        "TestDisablingDynamicProvisioner",
        "tests the controller flag --enable-dynamic-provisioning=false; a plan predicts the default controller-manager",
    ),
];

fn classes() -> Vec<String> {
    let imm = Some("Immediate");
    let wait = Some("WaitForFirstConsumer");
    vec![
        storage_class("gold", DRIVER, Some(DELETE), imm),
        storage_class("silver", DRIVER, Some(DELETE), imm),
        storage_class("copper", DRIVER, Some(DELETE), wait),
        storage_class("external", "vendor.com/my-volume", Some(DELETE), imm),
        storage_class(
            "external-wait",
            "vendor.com/my-volume-wait",
            Some(DELETE),
            wait,
        ),
        storage_class(
            "unknown-internal",
            "kubernetes.io/unknown",
            Some(DELETE),
            imm,
        ),
        storage_class("csi", "mydriver.csi.k8s.io", Some(DELETE), imm),
        node("node1", &[]),
    ]
}

fn claim(name: &str, uid: &str, class: Option<&str>) -> Pvc {
    new_claim(name, uid, "1Gi", "", PENDING, class, &[])
}

fn case(name: &'static str, volumes: Vec<Pv>, claims: Vec<Pvc>, wants: Vec<Want>) -> SyncCase {
    SyncCase {
        name,
        volumes,
        claims,
        wants,
    }
}

fn provision_cases() -> Vec<SyncCase> {
    use Want::*;
    vec![
        case(
            "TestProvisionSync/11-1 - successful provision with storage class 1",
            vec![],
            vec![claim("claim11-1", "uid11-1", Some("gold"))],
            vec![Provisioned("default/claim11-1")],
        ),
        case(
            "TestProvisionSync/11-6 - provisioning when there is a volume available",
            vec![new_volume(
                "volume11-6",
                "1Gi",
                "",
                "",
                AVAILABLE,
                RETAIN,
                "gold",
                &[],
            )],
            vec![claim("claim11-6", "uid11-6", Some("gold"))],
            vec![Bound("default/claim11-6", "volume11-6")],
        ),
        case(
            "TestProvisionSync/11-13 - successful provision with storage class 2",
            vec![],
            vec![claim("claim11-13", "uid11-13", Some("silver"))],
            vec![Provisioned("default/claim11-13")],
        ),
        case(
            "TestProvisionSync/11-14 - fail due to non-existing class",
            vec![],
            vec![claim("claim11-14", "uid11-14", Some("non-existing"))],
            vec![Pending("default/claim11-14")],
        ),
        case(
            "TestProvisionSync/11-15 - no provisioning with class=''",
            vec![],
            vec![claim("claim11-15", "uid11-15", Some(""))],
            vec![Pending("default/claim11-15")],
        ),
        case(
            "TestProvisionSync/11-16 - no provisioning with class=nil",
            vec![],
            vec![claim("claim11-15", "uid11-15", None)],
            vec![Pending("default/claim11-15")],
        ),
        // Converged: the external provisioner makes the volume.
        case(
            "TestProvisionSync/11-17 - external provisioner",
            vec![],
            vec![claim("claim11-17", "uid11-17", Some("external"))],
            vec![Provisioned("default/claim11-17")],
        ),
        // A `kubernetes.io/` provisioner is in-tree; without that plugin
        // the PV controller fails and no external provisioner takes it.
        case(
            "TestProvisionSync/11-18 - unknown internal provisioner",
            vec![],
            vec![claim("claim11-18", "uid11-18", Some("unknown-internal"))],
            vec![Pending("default/claim11-18")],
        ),
        // The in-tree plugin is migrated to CSI: its CSI driver's external
        // provisioner makes the volume (converged). A real migrated
        // in-tree provisioner stands for upstream's mock one.
        case(
            "TestProvisionSync/11-21 - external provisioner for CSI migration",
            vec![],
            vec![claim("claim11-21", "uid11-21", Some("gold-migrated"))],
            vec![Provisioned("default/claim11-21")],
        ),
        case(
            "TestProvisionSync/11-22 - external provisioner with volume available",
            vec![new_volume(
                "volume11-22",
                "1Gi",
                "",
                "",
                AVAILABLE,
                RETAIN,
                "external",
                &[],
            )],
            vec![claim("claim11-22", "uid11-22", Some("external"))],
            vec![Bound("default/claim11-22", "volume11-22")],
        ),
        case(
            "TestProvisionSync/11-23 - skip finding PV and provision for PVC annotated with AnnSelectedNode",
            vec![new_volume(
                "volume11-23",
                "1Gi",
                "",
                "",
                AVAILABLE,
                DELETE,
                "copper",
                &[],
            )],
            vec![claim("claim11-23", "uid11-23", Some("copper")).ann(ANN_SELECTED_NODE, "node1")],
            vec![
                Provisioned("default/claim11-23"),
                VolumeUnbound("volume11-23"),
            ],
        ),
        case(
            "TestProvisionSync/11-24 - skip finding PV and wait external provisioner for PVC annotated with AnnSelectedNode",
            vec![new_volume(
                "volume11-24",
                "1Gi",
                "",
                "",
                AVAILABLE,
                DELETE,
                "external-wait",
                &[],
            )],
            vec![
                claim("claim11-24", "uid11-24", Some("external-wait"))
                    .ann(ANN_SELECTED_NODE, "node1"),
            ],
            vec![
                Provisioned("default/claim11-24"),
                VolumeUnbound("volume11-24"),
            ],
        ),
        case(
            "TestProvisionMultiSync/12-1 - successful provision",
            vec![],
            vec![claim("claim12-1", "uid12-1", Some("gold"))],
            vec![Provisioned("default/claim12-1")],
        ),
        case(
            "TestProvisionMultiSync/12-2 - external provisioner with volume provisioned success",
            vec![],
            vec![claim("claim12-2", "uid12-2", Some("external"))],
            vec![Provisioned("default/claim12-2")],
        ),
        case(
            "TestProvisionMultiSync/12-3 - external provisioner with volume to be provisioned",
            vec![],
            vec![claim("claim12-3", "uid12-3", Some("external"))],
            vec![Provisioned("default/claim12-3")],
        ),
        case(
            "TestProvisionMultiSync/12-4 - external provisioner with volume provisioned/bound success",
            vec![],
            vec![claim("claim12-4", "uid12-4", Some("external"))],
            vec![Provisioned("default/claim12-4")],
        ),
    ]
}

/// "11-2 - plugin not found": upstream's class names the mock in-tree
/// plugin, which is not installed. No real cluster has it either.
fn plugin_not_found() -> (SyncCase, Vec<String>) {
    (
        case(
            "TestProvisionSync/11-2 - plugin not found",
            vec![],
            vec![claim("claim11-2", "uid11-2", Some("gold"))],
            vec![Want::Pending("default/claim11-2")],
        ),
        vec![storage_class(
            "gold",
            MOCK_PLUGIN,
            Some(DELETE),
            Some("Immediate"),
        )],
    )
}

/// "11-26 - csi with data source": upstream asserts only the hand-off to
/// the external provisioner. There is no VolumeSnapshot `test-snap`, so the
/// converged state is Pending: the external-provisioner cannot find it.
fn csi_with_data_source() -> SyncCase {
    let c = claim("claim11-26", "uid11-26", Some("csi"))
        .ann(
            "volume.kubernetes.io/storage-provisioner",
            "mydriver.csi.k8s.io",
        )
        .spec_yaml(
            "  dataSource:\n    name: test-snap\n    kind: VolumeSnapshot\n    apiGroup: snapshot.storage.k8s.io\n",
        );
    case(
        "TestProvisionSync/11-26 - csi with data source",
        vec![],
        vec![c],
        vec![Want::NoVolume("default/claim11-26")],
    )
}

#[test]
fn test_provision_sync() {
    let mut extra = classes();
    extra.push(storage_class(
        "gold-migrated",
        "kubernetes.io/gce-pd",
        Some(DELETE),
        Some("Immediate"),
    ));
    run_sync_cases(&provision_cases(), &extra);
}

#[test]
fn test_provision_sync_plugin_not_found() {
    let (c, extra) = plugin_not_found();
    run_sync_cases(&[c], &extra);
}

#[test]
fn test_provision_sync_csi_with_data_source() {
    run_sync_cases(&[csi_with_data_source()], &classes());
}

#[test]
fn not_applicable_list_is_a_partition() {
    let mut names: Vec<&str> = provision_cases().iter().map(|c| c.name).collect();
    let extra = [plugin_not_found().0.name, csi_with_data_source().name];
    names.extend(extra);
    assert_partition(&names, NOT_APPLICABLE);
}
