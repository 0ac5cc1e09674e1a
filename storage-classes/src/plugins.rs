//! The volume plugin table (which access modes each PersistentVolume source can
//! serve, whether it can be recycled or deleted) and the provisioners berth knows
//! by name, with the StorageClass parameters each one accepts.
//!
//! The access-mode cells are those of the talk "Fasten your seat belts, it's time
//! to k8s!" (itself a copy of the Kubernetes documentation of 2020), checked
//! against the current Kubernetes "Persistent Volumes" page; where the two
//! differ, the talk wins for RWO/ROX/RWX and the difference is noted at the row.

use crate::access::AccessMode;
use crate::access::Support::{self, DependsOnDriver, No, WhenPodsCollocated, Yes};
use crate::parameters::ParameterSpec;

/// The provisioner name of StorageClasses for pre-created volumes (typically
/// `local` PVs): nothing is provisioned, the class only carries the binding mode.
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// One PersistentVolume source type.
#[derive(Debug, PartialEq, Eq)]
pub struct VolumePlugin {
    /// Name as in the Kubernetes access-mode table, e.g. `"AWSElasticBlockStore"`.
    pub name: &'static str,
    /// The `PersistentVolumeSpec` field holding this source, e.g. `"awsElasticBlockStore"`.
    pub source_field: &'static str,
    /// The in-tree dynamic provisioner, if Kubernetes ever shipped one.
    pub internal_provisioner: Option<&'static str>,
    /// The CSI driver this in-tree plugin is migrated to, if any.
    pub csi_migration_driver: Option<&'static str>,
    pub rwo: Support,
    pub rox: Support,
    pub rwx: Support,
    pub rwop: Support,
    /// Whether `persistentVolumeReclaimPolicy: Recycle` can work.
    pub recyclable: bool,
    /// Whether `Delete` can work: a deleter exists, in-tree or via CSI migration.
    pub deletable: bool,
}

/// In-tree plugins whose volumes the scheduler's NodeVolumeLimits filter
/// counts under the CSI driver they migrate to (its `isCSIMigrationOn`); the
/// volumes of every other in-tree plugin are not counted there at all.
const LIMIT_COUNTED_PLUGINS: [&str; 5] = [
    "kubernetes.io/aws-ebs",
    "kubernetes.io/portworx-volume",
    "kubernetes.io/gce-pd",
    "kubernetes.io/azure-disk",
    "kubernetes.io/cinder",
];

impl VolumePlugin {
    /// The CSI driver whose per-node volume limit this in-tree plugin's
    /// volumes count against, if the scheduler counts them at all.
    pub fn limit_counted_driver(&self) -> Option<&'static str> {
        let provisioner = self.internal_provisioner?;
        LIMIT_COUNTED_PLUGINS
            .contains(&provisioner)
            .then_some(self.csi_migration_driver)
            .flatten()
    }

    /// This plugin's cell for `mode`.
    pub fn supports(&self, mode: AccessMode) -> Support {
        match mode {
            AccessMode::ReadWriteOnce => self.rwo,
            AccessMode::ReadOnlyMany => self.rox,
            AccessMode::ReadWriteMany => self.rwx,
            AccessMode::ReadWriteOncePod => self.rwop,
        }
    }
}

/// A provisioner name that may appear in `StorageClass.provisioner`.
#[derive(Debug, PartialEq, Eq)]
pub struct Provisioner {
    pub name: &'static str,
    /// The PersistentVolume source the provisioned volumes use.
    pub plugin: &'static VolumePlugin,
    /// Every key the provisioner accepts in `StorageClass.parameters`.
    pub parameters: &'static [ParameterSpec],
    /// The provisioner matches keys without regard to ASCII case.
    pub case_insensitive_keys: bool,
    /// Per-driver cells (ordered as [`AccessMode::ALL`]) replacing the plugin's
    /// row, for drivers that are narrower or wider than their plugin in general.
    pub modes: Option<[Support; 4]>,
    /// Volumes live on one node and the provisioner serves each node from an
    /// agent there, so a claim that binds at once (Immediate) still needs a
    /// node chosen for it: berth's controller chooses it (the planner's
    /// placement) and writes `volume.kubernetes.io/selected-node`.
    pub node_local: bool,
}

impl Provisioner {
    /// This provisioner's support for `mode`.
    pub fn supports(&self, mode: AccessMode) -> Support {
        match self.modes {
            Some(cells) => cells[mode.index()],
            None => self.plugin.supports(mode),
        }
    }
}

/// Builds an in-tree plugin row.
///
/// ReadWriteOncePod is documented as supported only for CSI volumes: the
/// scheduler and kubelet enforce it on the CSI path. An in-tree PV whose plugin
/// is migrated to CSI is served by that CSI driver, so it can carry RWOP; an
/// in-tree plugin with no migration path cannot. The RWOP cell is therefore
/// derived from `csi_migration_driver` rather than written by hand.
const fn in_tree(
    name: &'static str,
    source_field: &'static str,
    internal_provisioner: Option<&'static str>,
    csi_migration_driver: Option<&'static str>,
    [rwo, rox, rwx]: [Support; 3],
    recyclable: bool,
    deletable: bool,
) -> VolumePlugin {
    let rwop = match csi_migration_driver {
        Some(_) => Yes,
        None => No,
    };
    VolumePlugin {
        name,
        source_field,
        internal_provisioner,
        csi_migration_driver,
        rwo,
        rox,
        rwx,
        rwop,
        recyclable,
        deletable,
    }
}

// Positions in PLUGINS, for the provisioner table below.
const AWS_EBS: usize = 0;
const AZURE_FILE: usize = 1;
const AZURE_DISK: usize = 2;
const CINDER: usize = 4;
const CSI: usize = 5;
const FLOCKER: usize = 8;
const GCE_PD: usize = 9;
const GLUSTERFS: usize = 10;
const QUOBYTE: usize = 13;
const RBD: usize = 15;
const VSPHERE: usize = 16;
const PORTWORX: usize = 17;
const SCALEIO: usize = 18;
const STORAGEOS: usize = 19;
const LOCAL: usize = 20;

// `deletable` follows the in-tree deleters: every plugin that had an internal
// provisioner also had a deleter. Several of those plugins (Flocker, Quobyte,
// StorageOS, ScaleIO, Glusterfs) have since been removed from Kubernetes; the
// catalog describes them as the talk does. NFS, iSCSI, FC, CephFS and Local
// never had one; FlexVolume leaves it to an external provisioner; HostPath's
// deleter only runs with a non-default controller-manager flag meant for
// single-node testing.
static PLUGINS: [VolumePlugin; 21] = [
    in_tree(
        "AWSElasticBlockStore",
        "awsElasticBlockStore",
        Some("kubernetes.io/aws-ebs"),
        Some("ebs.csi.aws.com"),
        [Yes, No, No],
        false,
        true,
    ),
    in_tree(
        "AzureFile",
        "azureFile",
        Some("kubernetes.io/azure-file"),
        Some("file.csi.azure.com"),
        // The talk's RWX cell is OCR debris ("₹"); the documentation the talk
        // copied, then and now, has a check mark there. An SMB share is
        // multi-writer by nature, so this reads it as Yes.
        [Yes, Yes, Yes],
        false,
        true,
    ),
    in_tree(
        "AzureDisk",
        "azureDisk",
        Some("kubernetes.io/azure-disk"),
        Some("disk.csi.azure.com"),
        [Yes, No, No],
        false,
        true,
    ),
    in_tree(
        "CephFS",
        "cephfs",
        None,
        None,
        [Yes, Yes, Yes],
        false,
        false,
    ),
    in_tree(
        "Cinder",
        "cinder",
        Some("kubernetes.io/cinder"),
        Some("cinder.csi.openstack.org"),
        // Later documentation added "(if multi-attach volumes are available)"
        // to the RWX cell; the talk has No, which is kept.
        [Yes, No, No],
        false,
        true,
    ),
    VolumePlugin {
        name: "CSI",
        source_field: "csi",
        internal_provisioner: None,
        csi_migration_driver: None,
        rwo: DependsOnDriver,
        rox: DependsOnDriver,
        rwx: DependsOnDriver,
        rwop: DependsOnDriver,
        recyclable: false,
        deletable: true,
    },
    in_tree("FC", "fc", None, None, [Yes, Yes, No], false, false),
    in_tree(
        "FlexVolume",
        "flexVolume",
        None,
        None,
        [Yes, Yes, DependsOnDriver],
        false,
        false,
    ),
    in_tree(
        "Flocker",
        "flocker",
        Some("kubernetes.io/flocker"),
        None,
        [Yes, No, No],
        false,
        true,
    ),
    in_tree(
        "GCEPersistentDisk",
        "gcePersistentDisk",
        Some("kubernetes.io/gce-pd"),
        Some("pd.csi.storage.gke.io"),
        [Yes, Yes, No],
        false,
        true,
    ),
    in_tree(
        "Glusterfs",
        "glusterfs",
        Some("kubernetes.io/glusterfs"),
        None,
        [Yes, Yes, Yes],
        false,
        true,
    ),
    in_tree(
        "HostPath",
        "hostPath",
        None,
        None,
        [Yes, No, No],
        true,
        false,
    ),
    in_tree("iSCSI", "iscsi", None, None, [Yes, Yes, No], false, false),
    in_tree(
        "Quobyte",
        "quobyte",
        Some("kubernetes.io/quobyte"),
        None,
        [Yes, Yes, Yes],
        false,
        true,
    ),
    in_tree("NFS", "nfs", None, None, [Yes, Yes, Yes], true, false),
    in_tree(
        "RBD",
        "rbd",
        Some("kubernetes.io/rbd"),
        // RBD's migration to rbd.csi.ceph.com never left alpha and the in-tree
        // plugin was removed instead, so it is not a migration target here.
        None,
        [Yes, Yes, No],
        false,
        true,
    ),
    in_tree(
        "VsphereVolume",
        "vsphereVolume",
        Some("kubernetes.io/vsphere-volume"),
        Some("csi.vsphere.vmware.com"),
        [Yes, No, WhenPodsCollocated],
        false,
        true,
    ),
    in_tree(
        "PortworxVolume",
        "portworxVolume",
        Some("kubernetes.io/portworx-volume"),
        Some("pxd.portworx.com"),
        [Yes, No, Yes],
        false,
        true,
    ),
    in_tree(
        "ScaleIO",
        "scaleIO",
        Some("kubernetes.io/scaleio"),
        None,
        [Yes, Yes, No],
        false,
        true,
    ),
    in_tree(
        "StorageOS",
        "storageos",
        Some("kubernetes.io/storageos"),
        None,
        [Yes, No, No],
        false,
        true,
    ),
    // Not in the talk's access-mode table; a local volume is a disk of one node.
    in_tree("Local", "local", None, None, [Yes, No, No], false, false),
];

/// Every volume plugin, in the order of the talk's table, then Local.
pub fn plugins() -> &'static [VolumePlugin] {
    &PLUGINS
}

/// Looks a plugin up by its table name, ignoring ASCII case (`"nfs"` finds NFS).
pub fn plugin_by_name(name: &str) -> Option<&'static VolumePlugin> {
    PLUGINS.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// The plugin whose in-tree provisioner is `name` (`kubernetes.io/aws-ebs`).
pub fn plugin_for_provisioner(name: &str) -> Option<&'static VolumePlugin> {
    PLUGINS
        .iter()
        .find(|p| p.internal_provisioner == Some(name))
}

/// Looks a plugin up by its `PersistentVolumeSpec` field name. Exact match:
/// JSON field names are case-sensitive in the API.
pub fn plugin_for_source_field(field: &str) -> Option<&'static VolumePlugin> {
    PLUGINS.iter().find(|p| p.source_field == field)
}

// ---------------------------------------------------------------------------
// StorageClass parameters, per provisioner. In-tree lists follow the
// Kubernetes "Storage Classes" page of the talk's era plus the keys the
// in-tree code accepted; CSI lists follow each driver's parameter docs.

const TRUE_FALSE: &[&str] = &["true", "false"];

const EBS_TYPES: &[&str] = &["gp2", "gp3", "io1", "io2", "sc1", "st1", "standard"];
// The CSI driver adds the Snow device types.
const EBS_CSI_TYPES: &[&str] = &[
    "gp2", "gp3", "io1", "io2", "sc1", "st1", "standard", "sbp1", "sbg1",
];

const AZURE_DISK_SKUS: &[&str] = &[
    "Standard_LRS",
    "Premium_LRS",
    "StandardSSD_LRS",
    "UltraSSD_LRS",
    "Premium_ZRS",
    "StandardSSD_ZRS",
];
// Premium SSD v2 exists only through the CSI driver.
const AZURE_DISK_CSI_SKUS: &[&str] = &[
    "Standard_LRS",
    "Premium_LRS",
    "StandardSSD_LRS",
    "PremiumV2_LRS",
    "UltraSSD_LRS",
    "Premium_ZRS",
    "StandardSSD_ZRS",
];
const AZURE_CACHING: &[&str] = &["None", "ReadOnly", "ReadWrite"];

static AWS_EBS_PARAMS: [ParameterSpec; 9] = [
    ParameterSpec::one_of("type", EBS_TYPES, "EBS volume type"),
    ParameterSpec::any("zone", "deprecated: zone to create the volume in"),
    ParameterSpec::any(
        "zones",
        "deprecated: comma-separated zones to spread volumes over",
    ),
    ParameterSpec::number(
        "iopsPerGB",
        "I/O operations per second per GiB (io1, io2, gp3)",
    ),
    ParameterSpec::number("iops", "I/O operations per second (io1, io2, gp3)"),
    ParameterSpec::number("throughput", "throughput in MiB/s (gp3)"),
    ParameterSpec::one_of("encrypted", TRUE_FALSE, "encrypt the volume"),
    ParameterSpec::any("kmsKeyId", "ARN of the KMS key used when encrypted"),
    ParameterSpec::any("fsType", "filesystem to create, default ext4"),
];

static GCE_PD_PARAMS: [ParameterSpec; 5] = [
    ParameterSpec::one_of(
        "type",
        &["pd-standard", "pd-ssd", "pd-balanced", "pd-extreme"],
        "persistent disk type",
    ),
    ParameterSpec::any("zone", "deprecated: zone to create the disk in"),
    ParameterSpec::any(
        "zones",
        "deprecated: comma-separated zones to spread disks over",
    ),
    ParameterSpec::one_of(
        "replication-type",
        &["none", "regional-pd"],
        "zonal or regional persistent disk",
    ),
    ParameterSpec::any("fstype", "filesystem to create (ext4 or xfs), default ext4"),
];

static AZURE_DISK_PARAMS: [ParameterSpec; 9] = [
    ParameterSpec::one_of("skuName", AZURE_DISK_SKUS, "storage account SKU tier"),
    ParameterSpec::one_of(
        "storageaccounttype",
        AZURE_DISK_SKUS,
        "older spelling of skuName",
    ),
    ParameterSpec::one_of(
        "kind",
        &["shared", "dedicated", "managed"],
        "unmanaged disk in a shared or dedicated storage account, or a managed disk",
    ),
    ParameterSpec::any("location", "storage account location"),
    ParameterSpec::any("storageAccount", "storage account name for unmanaged disks"),
    ParameterSpec::one_of("cachingMode", AZURE_CACHING, "host cache setting"),
    ParameterSpec::any("fsType", "filesystem to create"),
    ParameterSpec::any("resourceGroup", "resource group to create the disk in"),
    ParameterSpec::any(
        "diskEncryptionSetID",
        "disk encryption set for encryption at rest",
    ),
];

static AZURE_FILE_PARAMS: [ParameterSpec; 6] = [
    ParameterSpec::any("skuName", "storage account SKU tier"),
    ParameterSpec::any("location", "storage account location"),
    ParameterSpec::any("storageAccount", "storage account name"),
    ParameterSpec::any("secretNamespace", "namespace of the account-key secret"),
    ParameterSpec::any("secretName", "name of the account-key secret"),
    ParameterSpec::one_of("readOnly", TRUE_FALSE, "mount the share read-only"),
];

static CINDER_PARAMS: [ParameterSpec; 3] = [
    ParameterSpec::any("type", "Cinder volume type"),
    ParameterSpec::any("availability", "availability zone"),
    ParameterSpec::any("fsType", "filesystem to create"),
];

static GLUSTERFS_PARAMS: [ParameterSpec; 14] = [
    ParameterSpec::any("resturl", "Heketi REST URL (required)"),
    ParameterSpec::one_of(
        "restauthenabled",
        TRUE_FALSE,
        "deprecated: enable REST authentication",
    ),
    ParameterSpec::any("restuser", "Heketi user"),
    ParameterSpec::any("restuserkey", "deprecated: Heketi user's password"),
    ParameterSpec::any("secretNamespace", "namespace of the Heketi secret"),
    ParameterSpec::any("secretName", "name of the Heketi secret"),
    ParameterSpec::any("clusterid", "Heketi cluster id(s), comma-separated"),
    ParameterSpec::number("gidMin", "lowest GID to allocate"),
    ParameterSpec::number("gidMax", "highest GID to allocate"),
    ParameterSpec::any("volumetype", "e.g. replicate:3, disperse:4:2, none"),
    ParameterSpec::any("volumeoptions", "Gluster volume options"),
    ParameterSpec::any("volumenameprefix", "prefix for generated volume names"),
    ParameterSpec::number("snapfactor", "thin pool snapshot factor"),
    ParameterSpec::any(
        "customepnameprefix",
        "prefix for the generated endpoint name",
    ),
];

static QUOBYTE_PARAMS: [ParameterSpec; 8] = [
    ParameterSpec::any("quobyteAPIServer", "API server, http(s)://host:7860"),
    ParameterSpec::any("registry", "registry host:port list"),
    ParameterSpec::any("adminSecretName", "secret with API user and password"),
    ParameterSpec::any("adminSecretNamespace", "namespace of that secret"),
    ParameterSpec::any("user", "user all access is mapped to"),
    ParameterSpec::any("group", "group all access is mapped to"),
    ParameterSpec::any("quobyteConfig", "volume configuration name"),
    ParameterSpec::any("quobyteTenant", "tenant id"),
];

static RBD_PARAMS: [ParameterSpec; 11] = [
    ParameterSpec::any("monitors", "Ceph monitors, comma-separated (required)"),
    ParameterSpec::any("adminId", "client id able to create images"),
    ParameterSpec::any("adminSecretName", "secret for adminId (required)"),
    ParameterSpec::any("adminSecretNamespace", "namespace of adminSecretName"),
    ParameterSpec::any("pool", "RBD pool"),
    ParameterSpec::any("userId", "client id used to map the image"),
    ParameterSpec::any("userSecretName", "secret for userId (required)"),
    ParameterSpec::any("userSecretNamespace", "namespace of userSecretName"),
    ParameterSpec::any("fsType", "filesystem to create"),
    ParameterSpec::one_of("imageFormat", &["1", "2"], "RBD image format"),
    ParameterSpec::any(
        "imageFeatures",
        "image features; only layering is supported",
    ),
];

static VSPHERE_PARAMS: [ParameterSpec; 10] = [
    ParameterSpec::one_of(
        "diskformat",
        &["thin", "zeroedthick", "eagerzeroedthick"],
        "virtual disk format",
    ),
    ParameterSpec::any("datastore", "datastore to create the disk on"),
    ParameterSpec::any("fstype", "filesystem to create"),
    ParameterSpec::any("storagePolicyName", "existing SPBM policy"),
    ParameterSpec::number("hostFailuresToTolerate", "vSAN capability"),
    ParameterSpec::number("forceProvisioning", "vSAN capability (0 or 1)"),
    ParameterSpec::number("cacheReservation", "vSAN capability, percent"),
    ParameterSpec::number("diskStripes", "vSAN capability"),
    ParameterSpec::number("objectSpaceReservation", "vSAN capability, percent"),
    ParameterSpec::number("iopsLimit", "vSAN capability"),
];

// The in-tree Portworx provisioner also forwarded every parameter to the
// Portworx server as a volume label, so keys outside this documented list were
// not rejected there; flagging them still catches typos of the real ones.
static PORTWORX_PARAMS: [ParameterSpec; 7] = [
    ParameterSpec::one_of("fs", &["none", "xfs", "ext4"], "filesystem to lay out"),
    ParameterSpec::number("block_size", "block size in KiB"),
    ParameterSpec::number("repl", "synchronous replicas, 1 to 3"),
    ParameterSpec::one_of(
        "io_priority",
        &["high", "medium", "low"],
        "storage performance class",
    ),
    ParameterSpec::number("snap_interval", "minutes between snapshots, 0 disables"),
    ParameterSpec::number("aggregation_level", "chunks to spread the volume over"),
    ParameterSpec::one_of("ephemeral", TRUE_FALSE, "clean up after unmount"),
];

static SCALEIO_PARAMS: [ParameterSpec; 8] = [
    ParameterSpec::any("gateway", "ScaleIO API gateway address (required)"),
    ParameterSpec::any("system", "ScaleIO system name (required)"),
    ParameterSpec::any("protectionDomain", "protection domain (required)"),
    ParameterSpec::any("storagePool", "storage pool (required)"),
    ParameterSpec::one_of(
        "storageMode",
        &["ThinProvisioned", "ThickProvisioned"],
        "provisioning mode",
    ),
    ParameterSpec::any("secretRef", "secret with gateway credentials (required)"),
    ParameterSpec::one_of("readOnly", TRUE_FALSE, "mount read-only"),
    ParameterSpec::any("fsType", "filesystem to create"),
];

static STORAGEOS_PARAMS: [ParameterSpec; 5] = [
    ParameterSpec::any("pool", "capacity pool"),
    ParameterSpec::any("description", "description given to created volumes"),
    ParameterSpec::any("fsType", "filesystem to request"),
    ParameterSpec::any("adminSecretNamespace", "namespace of the API secret"),
    ParameterSpec::any("adminSecretName", "secret with API address and credentials"),
];

static EBS_CSI_PARAMS: [ParameterSpec; 11] = [
    ParameterSpec::one_of("type", EBS_CSI_TYPES, "EBS volume type, default gp3"),
    ParameterSpec::number("iopsPerGB", "I/O operations per second per GiB"),
    ParameterSpec::one_of(
        "allowAutoIOPSPerGBIncrease",
        TRUE_FALSE,
        "raise IOPS into the supported range instead of failing",
    ),
    ParameterSpec::number("iops", "I/O operations per second"),
    ParameterSpec::number("throughput", "throughput in MiB/s (gp3)"),
    ParameterSpec::one_of("encrypted", TRUE_FALSE, "encrypt the volume"),
    ParameterSpec::one_of("blockExpress", TRUE_FALSE, "io2 Block Express IOPS limit"),
    ParameterSpec::any("kmsKeyId", "ARN of the KMS key"),
    ParameterSpec::number("blockSize", "filesystem block size"),
    ParameterSpec::any("fsType", "deprecated: use csi.storage.k8s.io/fstype"),
    ParameterSpec::prefixed(
        "tagSpecification_",
        "numbered key=value tags for the volume",
    ),
];

// No `fstype` here: for the CSI driver that is `csi.storage.k8s.io/fstype`, and
// a bare `fstype` is rejected as an invalid option.
static PD_CSI_PARAMS: [ParameterSpec; 7] = [
    ParameterSpec::any("type", "any Compute Engine disk type, default pd-standard"),
    ParameterSpec::one_of(
        "replication-type",
        &["none", "regional-pd"],
        "zonal or regional disk",
    ),
    ParameterSpec::any("disk-encryption-kms-key", "customer-managed encryption key"),
    ParameterSpec::any("labels", "key1=value1,key2=value2 disk labels"),
    ParameterSpec::number("provisioned-iops-on-create", "IOPS to provision"),
    ParameterSpec::any(
        "provisioned-throughput-on-create",
        "throughput to provision",
    ),
    ParameterSpec::any("resource-tags", "resource manager tags"),
];

static AZURE_DISK_CSI_PARAMS: [ParameterSpec; 20] = [
    ParameterSpec::one_of("skuName", AZURE_DISK_CSI_SKUS, "disk SKU"),
    ParameterSpec::one_of(
        "storageAccountType",
        AZURE_DISK_CSI_SKUS,
        "alias of skuName",
    ),
    ParameterSpec::any("kind", "accepted for in-tree compatibility; always managed"),
    ParameterSpec::one_of("cachingMode", AZURE_CACHING, "host cache setting"),
    ParameterSpec::any("fsType", "filesystem to create"),
    ParameterSpec::any("location", "Azure region"),
    ParameterSpec::any("resourceGroup", "resource group to create the disk in"),
    ParameterSpec::any("subscriptionID", "subscription to create the disk in"),
    ParameterSpec::number("DiskIOPSReadWrite", "Ultra / Premium v2 IOPS"),
    ParameterSpec::number("DiskMBpsReadWrite", "Ultra / Premium v2 throughput"),
    ParameterSpec::one_of(
        "LogicalSectorSize",
        &["512", "4096"],
        "Ultra disk sector size",
    ),
    ParameterSpec::any("tags", "key1=val1,key2=val2 disk tags"),
    ParameterSpec::any("diskEncryptionSetID", "disk encryption set"),
    ParameterSpec::any("diskEncryptionType", "encryption at rest type"),
    ParameterSpec::one_of("writeAcceleratorEnabled", TRUE_FALSE, "write accelerator"),
    ParameterSpec::one_of(
        "networkAccessPolicy",
        &["AllowAll", "DenyAll", "AllowPrivate"],
        "SAS access policy",
    ),
    ParameterSpec::any("diskAccessID", "DiskAccess resource for private endpoints"),
    ParameterSpec::one_of("enableBursting", TRUE_FALSE, "on-demand bursting"),
    ParameterSpec::number("maxShares", "nodes that may attach the disk at once"),
    ParameterSpec::any("zoned", "accepted for in-tree compatibility"),
];

static AZURE_FILE_CSI_PARAMS: [ParameterSpec; 19] = [
    ParameterSpec::any("skuName", "storage account type, e.g. Standard_LRS"),
    ParameterSpec::any("storageAccountType", "alias of skuName"),
    ParameterSpec::any("storageAccount", "storage account name"),
    ParameterSpec::any("location", "Azure region"),
    ParameterSpec::any("resourceGroup", "resource group of the share"),
    ParameterSpec::any("shareName", "file share name"),
    ParameterSpec::any("server", "storage account server address"),
    ParameterSpec::one_of("protocol", &["smb", "nfs"], "file share protocol"),
    ParameterSpec::one_of("enableLargeFileShares", TRUE_FALSE, "large file shares"),
    ParameterSpec::one_of(
        "storeAccountKey",
        TRUE_FALSE,
        "keep the account key in a secret",
    ),
    ParameterSpec::any("secretName", "secret holding the account key"),
    ParameterSpec::any("secretNamespace", "namespace of that secret"),
    ParameterSpec::one_of("useDataPlaneAPI", TRUE_FALSE, "use the data plane API"),
    ParameterSpec::one_of(
        "disableDeleteRetentionPolicy",
        TRUE_FALSE,
        "disable soft delete on created accounts",
    ),
    ParameterSpec::any("tags", "tags for a created storage account"),
    ParameterSpec::any("networkEndpointType", "e.g. privateEndpoint"),
    ParameterSpec::any("accessTier", "share access tier"),
    ParameterSpec::any("fsType", "filesystem for the VHD disk feature"),
    ParameterSpec::any("diskName", "existing VHD file for the VHD disk feature"),
];

// `volumeType` is not here: local-path reads it from a PVC annotation
// (`volumeType`) or a StorageClass annotation (`defaultVolumeType`), never from
// parameters, so writing it as a parameter silently does nothing.
static LOCAL_PATH_PARAMS: [ParameterSpec; 2] = [
    ParameterSpec::any("nodePath", "which configured node path to use"),
    ParameterSpec::any("pathPattern", "Go template for the volume sub-directory"),
];

static BERTH_PARAMS: [ParameterSpec; 1] = [ParameterSpec::one_of(
    "fsType",
    &["ext4", "xfs"],
    "filesystem berth formats the volume with",
)];

/// Builds an in-tree provisioner entry: its name is the plugin's internal
/// provisioner and its keys are compared case-insensitively, as the in-tree
/// code lower-cased every key before matching.
const fn in_tree_provisioner(
    name: &'static str,
    plugin: &'static VolumePlugin,
    parameters: &'static [ParameterSpec],
) -> Provisioner {
    Provisioner {
        name,
        plugin,
        parameters,
        case_insensitive_keys: true,
        modes: None,
        node_local: false,
    }
}

// The four cloud CSI drivers match keys case-insensitively too (their docs and
// code lower-case the key before the switch), which is why they are not
// case-sensitive here. Their modes are the migrated plugin's cells plus RWOP;
// where a driver can go further only for some parameters (EBS io1/io2
// Multi-Attach and Azure shared disks, both needing block volumes and a
// specific setting), the cell says DependsOnDriver and the driver decides at
// CreateVolume.
static PROVISIONERS: [Provisioner; 20] = [
    in_tree_provisioner("kubernetes.io/aws-ebs", &PLUGINS[AWS_EBS], &AWS_EBS_PARAMS),
    in_tree_provisioner(
        "kubernetes.io/azure-file",
        &PLUGINS[AZURE_FILE],
        &AZURE_FILE_PARAMS,
    ),
    in_tree_provisioner(
        "kubernetes.io/azure-disk",
        &PLUGINS[AZURE_DISK],
        &AZURE_DISK_PARAMS,
    ),
    in_tree_provisioner("kubernetes.io/cinder", &PLUGINS[CINDER], &CINDER_PARAMS),
    // The in-tree Flocker provisioner refused any parameter at all.
    in_tree_provisioner("kubernetes.io/flocker", &PLUGINS[FLOCKER], &[]),
    in_tree_provisioner("kubernetes.io/gce-pd", &PLUGINS[GCE_PD], &GCE_PD_PARAMS),
    in_tree_provisioner(
        "kubernetes.io/glusterfs",
        &PLUGINS[GLUSTERFS],
        &GLUSTERFS_PARAMS,
    ),
    in_tree_provisioner("kubernetes.io/quobyte", &PLUGINS[QUOBYTE], &QUOBYTE_PARAMS),
    in_tree_provisioner("kubernetes.io/rbd", &PLUGINS[RBD], &RBD_PARAMS),
    in_tree_provisioner(
        "kubernetes.io/vsphere-volume",
        &PLUGINS[VSPHERE],
        &VSPHERE_PARAMS,
    ),
    in_tree_provisioner(
        "kubernetes.io/portworx-volume",
        &PLUGINS[PORTWORX],
        &PORTWORX_PARAMS,
    ),
    in_tree_provisioner("kubernetes.io/scaleio", &PLUGINS[SCALEIO], &SCALEIO_PARAMS),
    in_tree_provisioner(
        "kubernetes.io/storageos",
        &PLUGINS[STORAGEOS],
        &STORAGEOS_PARAMS,
    ),
    Provisioner {
        name: "ebs.csi.aws.com",
        plugin: &PLUGINS[CSI],
        parameters: &EBS_CSI_PARAMS,
        case_insensitive_keys: true,
        modes: Some([Yes, No, DependsOnDriver, Yes]),
        node_local: false,
    },
    Provisioner {
        name: "pd.csi.storage.gke.io",
        plugin: &PLUGINS[CSI],
        parameters: &PD_CSI_PARAMS,
        case_insensitive_keys: true,
        modes: Some([Yes, Yes, No, Yes]),
        node_local: false,
    },
    Provisioner {
        name: "disk.csi.azure.com",
        plugin: &PLUGINS[CSI],
        parameters: &AZURE_DISK_CSI_PARAMS,
        case_insensitive_keys: true,
        // ROX and RWX need `maxShares` of 2 or more.
        modes: Some([Yes, DependsOnDriver, DependsOnDriver, Yes]),
        node_local: false,
    },
    Provisioner {
        name: "file.csi.azure.com",
        plugin: &PLUGINS[CSI],
        parameters: &AZURE_FILE_CSI_PARAMS,
        case_insensitive_keys: true,
        modes: Some([Yes, Yes, Yes, Yes]),
        node_local: false,
    },
    // kind's default class. It creates node-bound hostPath or local PVs and
    // refuses every access mode but RWO in its default per-node configuration.
    Provisioner {
        name: "rancher.io/local-path",
        plugin: &PLUGINS[LOCAL],
        parameters: &LOCAL_PATH_PARAMS,
        case_insensitive_keys: false,
        modes: Some([Yes, No, No, No]),
        node_local: false,
    },
    Provisioner {
        name: NO_PROVISIONER,
        plugin: &PLUGINS[LOCAL],
        parameters: &[],
        case_insensitive_keys: false,
        modes: None,
        node_local: false,
    },
    // berth's own driver: node-local volumes, so one node (or one pod) at a time.
    Provisioner {
        name: "csi.berth.dev",
        plugin: &PLUGINS[CSI],
        parameters: &BERTH_PARAMS,
        case_insensitive_keys: false,
        modes: Some([Yes, No, No, Yes]),
        node_local: true,
    },
];

/// Every provisioner the catalog knows.
pub fn provisioners() -> &'static [Provisioner] {
    &PROVISIONERS
}

/// Looks a provisioner up by its exact name; `None` for names the catalog does
/// not know, such as an arbitrary third-party CSI driver.
pub fn provisioner(name: &str) -> Option<&'static Provisioner> {
    PROVISIONERS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn only_five_migrated_plugins_count_against_csi_volume_limits() {
        let counted: Vec<(&str, &str)> = plugins()
            .iter()
            .filter_map(|p| Some((p.source_field, p.limit_counted_driver()?)))
            .collect();
        assert_eq!(
            counted,
            [
                ("awsElasticBlockStore", "ebs.csi.aws.com"),
                ("azureDisk", "disk.csi.azure.com"),
                ("cinder", "cinder.csi.openstack.org"),
                ("gcePersistentDisk", "pd.csi.storage.gke.io"),
                ("portworxVolume", "pxd.portworx.com"),
            ]
        );
        // Migrated, yet not counted by the filter.
        let vsphere = plugin_for_provisioner("kubernetes.io/vsphere-volume").expect("vsphere");
        assert!(vsphere.csi_migration_driver.is_some());
        assert_eq!(vsphere.limit_counted_driver(), None);
    }

    /// The talk's access-mode table, row by row, as (name, RWO, ROX, RWX).
    const TALK_TABLE: [(&str, Support, Support, Support); 20] = [
        ("AWSElasticBlockStore", Yes, No, No),
        ("AzureFile", Yes, Yes, Yes),
        ("AzureDisk", Yes, No, No),
        ("CephFS", Yes, Yes, Yes),
        ("Cinder", Yes, No, No),
        ("CSI", DependsOnDriver, DependsOnDriver, DependsOnDriver),
        ("FC", Yes, Yes, No),
        ("FlexVolume", Yes, Yes, DependsOnDriver),
        ("Flocker", Yes, No, No),
        ("GCEPersistentDisk", Yes, Yes, No),
        ("Glusterfs", Yes, Yes, Yes),
        ("HostPath", Yes, No, No),
        ("iSCSI", Yes, Yes, No),
        ("Quobyte", Yes, Yes, Yes),
        ("NFS", Yes, Yes, Yes),
        ("RBD", Yes, Yes, No),
        ("VsphereVolume", Yes, No, WhenPodsCollocated),
        ("PortworxVolume", Yes, No, Yes),
        ("ScaleIO", Yes, Yes, No),
        ("StorageOS", Yes, No, No),
    ];

    #[test]
    fn every_row_of_the_talks_table_is_present_with_its_cells() {
        for (name, rwo, rox, rwx) in TALK_TABLE {
            let p = plugin_by_name(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(p.name, name);
            assert_eq!([p.rwo, p.rox, p.rwx], [rwo, rox, rwx], "{name} RWO/ROX/RWX");
            assert_eq!(p.supports(AccessMode::ReadWriteOnce), rwo);
            assert_eq!(p.supports(AccessMode::ReadOnlyMany), rox);
            assert_eq!(p.supports(AccessMode::ReadWriteMany), rwx);
        }
        // The table plus Local, nothing else.
        assert_eq!(plugins().len(), TALK_TABLE.len() + 1);
        let local = plugin_by_name("Local").expect("Local row");
        assert_eq!([local.rwo, local.rox, local.rwx], [Yes, No, No]);
    }

    #[test]
    fn rwop_is_driver_dependent_for_csi_and_follows_migration_for_in_tree() {
        for p in plugins() {
            let expected = if p.source_field == "csi" {
                DependsOnDriver
            } else if p.csi_migration_driver.is_some() {
                Yes
            } else {
                No
            };
            assert_eq!(p.rwop, expected, "{}", p.name);
            assert_eq!(p.supports(AccessMode::ReadWriteOncePod), expected);
        }
    }

    #[test]
    fn migration_drivers_are_the_documented_ones() {
        let table = [
            ("AWSElasticBlockStore", Some("ebs.csi.aws.com")),
            ("GCEPersistentDisk", Some("pd.csi.storage.gke.io")),
            ("AzureDisk", Some("disk.csi.azure.com")),
            ("AzureFile", Some("file.csi.azure.com")),
            ("Cinder", Some("cinder.csi.openstack.org")),
            ("VsphereVolume", Some("csi.vsphere.vmware.com")),
            ("PortworxVolume", Some("pxd.portworx.com")),
            ("RBD", None),
            ("NFS", None),
            ("CSI", None),
        ];
        for (name, driver) in table {
            assert_eq!(
                plugin_by_name(name).map(|p| p.csi_migration_driver),
                Some(driver)
            );
        }
    }

    #[test]
    fn only_nfs_and_hostpath_recycle() {
        let recyclable: Vec<&str> = plugins()
            .iter()
            .filter(|p| p.recyclable)
            .map(|p| p.name)
            .collect();
        assert_eq!(recyclable, ["HostPath", "NFS"]);
    }

    #[test]
    fn delete_works_where_a_deleter_exists() {
        let table = [
            ("NFS", false),
            ("iSCSI", false),
            ("FC", false),
            ("CephFS", false),
            ("Local", false),
            ("FlexVolume", false),
            ("HostPath", false),
            ("CSI", true),
            ("AWSElasticBlockStore", true),
            ("GCEPersistentDisk", true),
            ("AzureDisk", true),
        ];
        for (name, deletable) in table {
            assert_eq!(
                plugin_by_name(name).map(|p| p.deletable),
                Some(deletable),
                "{name}"
            );
        }
        // Every plugin with an in-tree provisioner had a deleter too.
        for p in plugins()
            .iter()
            .filter(|p| p.internal_provisioner.is_some())
        {
            assert!(p.deletable, "{}", p.name);
        }
    }

    #[test]
    fn plugin_lookups_by_name_and_source_field() {
        let table = [
            ("nfs", "nfs", "NFS"),
            ("NFS", "nfs", "NFS"),
            ("hostpath", "hostPath", "HostPath"),
            (
                "awselasticblockstore",
                "awsElasticBlockStore",
                "AWSElasticBlockStore",
            ),
            ("ISCSI", "iscsi", "iSCSI"),
            ("csi", "csi", "CSI"),
            ("vspherevolume", "vsphereVolume", "VsphereVolume"),
            ("Local", "local", "Local"),
            ("scaleio", "scaleIO", "ScaleIO"),
        ];
        for (name, field, expected) in table {
            assert_eq!(
                plugin_by_name(name).map(|p| p.name),
                Some(expected),
                "{name}"
            );
            let by_field = plugin_for_source_field(field).map(|p| p.name);
            assert_eq!(by_field, Some(expected), "{field}");
        }
        for unknown in ["", "Ceph", "emptyDir", "EBS"] {
            assert!(plugin_by_name(unknown).is_none(), "{unknown}");
            assert!(plugin_for_source_field(unknown).is_none(), "{unknown}");
        }
        // Source fields are JSON names and must match exactly.
        assert!(plugin_for_source_field("NFS").is_none());
        assert!(plugin_for_source_field("hostpath").is_none());
    }

    #[test]
    fn source_fields_are_the_persistent_volume_spec_fields() {
        let fields: Vec<&str> = plugins().iter().map(|p| p.source_field).collect();
        assert_eq!(
            fields,
            [
                "awsElasticBlockStore",
                "azureFile",
                "azureDisk",
                "cephfs",
                "cinder",
                "csi",
                "fc",
                "flexVolume",
                "flocker",
                "gcePersistentDisk",
                "glusterfs",
                "hostPath",
                "iscsi",
                "quobyte",
                "nfs",
                "rbd",
                "vsphereVolume",
                "portworxVolume",
                "scaleIO",
                "storageos",
                "local",
            ]
        );
    }

    #[test]
    fn every_internal_provisioner_of_the_talk_is_a_provisioner() {
        let table = [
            ("kubernetes.io/aws-ebs", "AWSElasticBlockStore"),
            ("kubernetes.io/azure-file", "AzureFile"),
            ("kubernetes.io/azure-disk", "AzureDisk"),
            ("kubernetes.io/cinder", "Cinder"),
            ("kubernetes.io/flocker", "Flocker"),
            ("kubernetes.io/gce-pd", "GCEPersistentDisk"),
            ("kubernetes.io/glusterfs", "Glusterfs"),
            ("kubernetes.io/quobyte", "Quobyte"),
            ("kubernetes.io/rbd", "RBD"),
            ("kubernetes.io/vsphere-volume", "VsphereVolume"),
            ("kubernetes.io/portworx-volume", "PortworxVolume"),
            ("kubernetes.io/scaleio", "ScaleIO"),
            ("kubernetes.io/storageos", "StorageOS"),
        ];
        for (name, plugin) in table {
            let p = provisioner(name).unwrap_or_else(|| panic!("{name} missing"));
            assert_eq!(p.plugin.name, plugin, "{name}");
            assert_eq!(p.plugin.internal_provisioner, Some(name));
            assert!(p.case_insensitive_keys, "{name}");
            assert_eq!(p.modes, None, "{name}");
        }
        // And the plugin table agrees: no internal provisioner is left out.
        let with_internal = plugins()
            .iter()
            .filter(|p| p.internal_provisioner.is_some())
            .count();
        assert_eq!(with_internal, table.len());
    }

    #[test]
    fn provisioner_lookup_is_exact_and_unknown_is_none() {
        let table = [
            ("ebs.csi.aws.com", "CSI"),
            ("pd.csi.storage.gke.io", "CSI"),
            ("disk.csi.azure.com", "CSI"),
            ("file.csi.azure.com", "CSI"),
            ("csi.berth.dev", "CSI"),
            ("rancher.io/local-path", "Local"),
            (NO_PROVISIONER, "Local"),
        ];
        for (name, plugin) in table {
            assert_eq!(
                provisioner(name).map(|p| p.plugin.name),
                Some(plugin),
                "{name}"
            );
        }
        for unknown in [
            "",
            "example.com/my-driver",
            "Kubernetes.io/aws-ebs",
            "kubernetes.io/aws-ebs ",
            "kubernetes.io/nfs",
        ] {
            assert!(provisioner(unknown).is_none(), "{unknown:?}");
        }
    }

    #[test]
    fn provisioner_names_and_parameter_keys_are_unique() {
        let mut names = HashSet::new();
        for p in provisioners() {
            assert!(names.insert(p.name), "duplicate provisioner {}", p.name);
            let mut keys = HashSet::new();
            for spec in p.parameters {
                let key = if p.case_insensitive_keys {
                    spec.name.to_ascii_lowercase()
                } else {
                    spec.name.to_string()
                };
                assert!(keys.insert(key), "{}: duplicate key {}", p.name, spec.name);
                assert!(!spec.doc.is_empty(), "{}: {} has no doc", p.name, spec.name);
            }
        }
    }

    #[test]
    fn provisioner_modes_override_the_plugin_row() {
        use AccessMode::*;
        let table = [
            ("csi.berth.dev", [Yes, No, No, Yes]),
            ("rancher.io/local-path", [Yes, No, No, No]),
            (NO_PROVISIONER, [Yes, No, No, No]),
            ("kubernetes.io/aws-ebs", [Yes, No, No, Yes]),
            (
                "kubernetes.io/vsphere-volume",
                [Yes, No, WhenPodsCollocated, Yes],
            ),
            ("kubernetes.io/glusterfs", [Yes, Yes, Yes, No]),
            ("file.csi.azure.com", [Yes, Yes, Yes, Yes]),
            ("ebs.csi.aws.com", [Yes, No, DependsOnDriver, Yes]),
        ];
        for (name, cells) in table {
            let p = provisioner(name).expect("known provisioner");
            let got = [ReadWriteOnce, ReadOnlyMany, ReadWriteMany, ReadWriteOncePod]
                .map(|m| p.supports(m));
            assert_eq!(got, cells, "{name}");
        }
    }

    #[test]
    fn csi_drivers_sit_on_the_csi_plugin_and_in_tree_ones_do_not() {
        for p in provisioners() {
            let looks_in_tree = p.name.starts_with("kubernetes.io/");
            let on_csi = p.plugin.source_field == "csi";
            assert!(!(looks_in_tree && on_csi), "{}", p.name);
        }
    }
}
