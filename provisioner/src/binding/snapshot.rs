//! The binding core's input: typed objects, already parsed and validated at the edge.
//!
//! A `Snapshot` is what a cluster looks like (or would look like once the
//! manifests are applied). Objects keep their position in the input
//! (`seq`) because admission is applied in creation order.

use crate::model::{
    AccessModes, BindingMode, ClaimKey, LabelSelector, Labels, NodeSelector, ObjectKey,
    ReclaimPolicy, VolumeMode, VolumePhase,
};
use crate::quantity::Quantity;

/// Where an object came from, for messages (`file.yaml: document 3`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    pub source: String,
    /// 1-based document number within the source.
    pub document: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: document {}", self.source, self.document)
    }
}

/// A creation timestamp in seconds since the epoch; `None` means "created now".
pub type Created = Option<i64>;

#[derive(Debug, Clone)]
pub struct StorageClass {
    pub name: String,
    pub provisioner: String,
    pub parameters: Vec<(String, String)>,
    pub reclaim_policy: ReclaimPolicy,
    pub binding_mode: BindingMode,
    pub is_default: bool,
    pub created: Created,
    /// `allowedTopologies`, as a node selector; `None` means any node.
    pub allowed_topologies: Option<NodeSelector>,
    pub origin: Origin,
}

/// How a claim names its class. The beta annotation, when present, has
/// already won over the field during conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimClass {
    /// Neither field nor annotation: DefaultStorageClass admission may fill it.
    Unset,
    /// Set, possibly to `""`, which means "no class" and is never defaulted.
    Named(String),
}

impl ClaimClass {
    /// Upstream `GetPersistentVolumeClaimClass`: unset reads as `""`.
    pub fn effective(&self) -> &str {
        match self {
            ClaimClass::Unset => "",
            ClaimClass::Named(n) => n,
        }
    }
}

/// Who wrote the claim into the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimSource {
    Manifest,
    /// Generated from a StatefulSet's `volumeClaimTemplates`.
    StatefulSet {
        set: ObjectKey,
        ordinal: u32,
    },
    /// Generated for a pod's generic ephemeral volume.
    Ephemeral {
        pod: ObjectKey,
    },
}

#[derive(Debug, Clone)]
pub struct Claim {
    pub key: ClaimKey,
    pub uid: Option<String>,
    pub class: ClaimClass,
    /// `spec.resources.requests.storage`; a claim without it is rejected by admission.
    pub request: Option<Quantity>,
    pub access_modes: AccessModes,
    pub volume_mode: VolumeMode,
    pub selector: Option<LabelSelector>,
    /// `spec.volumeAttributesClassName`; `""` when unset.
    pub attributes_class: String,
    pub volume_name: Option<String>,
    /// `volume.kubernetes.io/selected-node`.
    pub selected_node: Option<String>,
    /// `status.phase`; only the binder's own writes and the display read it:
    /// the decisions follow `bind_completed`, as upstream's do.
    pub phase: crate::model::ClaimPhase,
    /// `pv.kubernetes.io/bind-completed`: the binder finished binding this
    /// claim once, so a claim that has since lost its volume is Lost rather
    /// than Pending (upstream `syncClaim` picks `syncBoundClaim` by it).
    pub bind_completed: bool,
    pub deleting: bool,
    /// `spec.dataSource`, else `spec.dataSourceRef`: what the new volume's
    /// content comes from.
    pub data_source: Option<DataSource>,
    pub source: ClaimSource,
    pub origin: Origin,
    /// Position in creation order.
    pub seq: usize,
}

impl Claim {
    /// A claim with a uid already exists in the cluster: it passed admission
    /// long ago and only counts toward quota.
    pub fn exists(&self) -> bool {
        self.uid.is_some()
    }
}

/// A claim's data source, sorted by who fills the volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// A clone of another claim in the claim's namespace.
    Claim(String),
    /// A restore of a `snapshot.storage.k8s.io` VolumeSnapshot in the
    /// claim's namespace.
    Snapshot(String),
    /// Any other kind: a volume populator fills the volume, the provisioner
    /// does not.
    Populator {
        group: String,
        kind: String,
        name: String,
    },
    /// A source the provisioner refuses before looking it up (a
    /// `dataSourceRef` in another namespace, a VolumeSnapshot of another
    /// API group, no name).
    Refused {
        kind: String,
        name: String,
        problem: super::data_source::Problem,
    },
}

impl DataSource {
    /// The kind, as the claim names it.
    pub fn kind(&self) -> &str {
        match self {
            DataSource::Claim(_) => "PersistentVolumeClaim",
            DataSource::Snapshot(_) => "VolumeSnapshot",
            DataSource::Populator { kind, .. } | DataSource::Refused { kind, .. } => kind,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            DataSource::Claim(n) | DataSource::Snapshot(n) => n,
            DataSource::Populator { name, .. } | DataSource::Refused { name, .. } => name,
        }
    }
}

/// A `snapshot.storage.k8s.io/v1` VolumeSnapshot, as restores need it.
#[derive(Debug, Clone)]
pub struct VolumeSnapshot {
    pub key: ObjectKey,
    pub uid: Option<String>,
    pub deleting: bool,
    /// Carries the provisioner's `volumesnapshot-as-source-protection`
    /// finalizer: a restore already started and may finish.
    pub protected: bool,
    /// `status.boundVolumeSnapshotContentName`.
    pub content: Option<String>,
    /// `status.readyToUse`.
    pub ready: bool,
    /// `status.restoreSize`.
    pub restore_size: Option<Quantity>,
}

/// A `snapshot.storage.k8s.io/v1` VolumeSnapshotContent.
#[derive(Debug, Clone)]
pub struct SnapshotContent {
    pub name: String,
    pub driver: String,
    /// `spec.volumeSnapshotRef`: namespace/name and uid.
    pub snapshot: Option<(ObjectKey, Option<String>)>,
    /// `status.snapshotHandle`: the id CreateVolume restores from.
    pub handle: Option<String>,
    /// `spec.source.volumeHandle`: the volume it was taken of, if known.
    pub source_volume: Option<String>,
}

/// `spec.claimRef` of a PersistentVolume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRef {
    pub key: ClaimKey,
    pub uid: Option<String>,
}

pub use crate::manifest::migration::Migrated;

/// What backs a volume, as far as binding, reclaim and limits care.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VolumeSource {
    /// The PV spec field that is set (`nfs`, `csi`, `awsElasticBlockStore`, …).
    pub field: Option<String>,
    /// CSI driver and handle, or the CSI driver an in-tree source migrates to.
    pub csi_driver: Option<String>,
    pub csi_handle: Option<String>,
    /// An in-tree source the scheduler counts against a CSI driver's
    /// volume limit: that driver and the handle CSI migration gives it.
    pub migrated: Option<Migrated>,
    /// `pv.kubernetes.io/provisioned-by`: the provisioner that deletes it.
    pub provisioned_by: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Volume {
    pub name: String,
    pub capacity: Option<Quantity>,
    pub access_modes: AccessModes,
    pub volume_mode: VolumeMode,
    /// `spec.storageClassName` (beta annotation wins); `""` when unset.
    pub class: String,
    /// `spec.volumeAttributesClassName`; `""` when unset.
    pub attributes_class: String,
    pub labels: Labels,
    pub claim_ref: Option<ClaimRef>,
    /// `pv.kubernetes.io/bound-by-controller`: the binder chose this volume
    /// for its claim (rather than a user writing the claimRef).
    pub bound_by_controller: bool,
    pub phase: Option<VolumePhase>,
    pub reclaim_policy: ReclaimPolicy,
    pub deleting: bool,
    pub node_affinity: Option<NodeSelector>,
    pub source: VolumeSource,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub labels: Labels,
    /// `spec.unschedulable` (cordoned).
    pub unschedulable: bool,
    pub taints: Vec<Taint>,
    /// `status.allocatable`; `None` when the node states none (a
    /// hand-written Node), and berth then does not check resources on it.
    pub allocatable: Option<Resources>,
}

/// The compute resources the scheduler's NodeResourcesFit compares: a
/// pod's requests, a node's allocatable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i128,
    pub ephemeral_storage: i128,
    /// How many pods a node takes; unused for a pod's requests.
    pub pods: i64,
}

impl Resources {
    /// Adds `other`, saturating: requests come from input and may be huge.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_add(other.ephemeral_storage);
    }

    /// Each resource's larger value.
    pub fn max(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: TaintEffect,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    /// `""` with `Exists` tolerates every key.
    pub key: String,
    /// `Exists` when true, else `Equal`.
    pub exists: bool,
    pub value: String,
    /// `None` tolerates every effect.
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// Upstream `ToleratesTaint`.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        self.exists || self.value == taint.value
    }
}

#[derive(Debug, Clone)]
pub struct CsiNode {
    pub name: String,
    /// Driver name and its `allocatable.count`, if published.
    pub drivers: Vec<(String, Option<u32>)>,
}

/// A `CSIDriver` object: only what scheduling reads from it.
#[derive(Debug, Clone)]
pub struct CsiDriver {
    pub name: String,
    /// `spec.storageCapacity`: the scheduler (and berth's placement) only
    /// put new volumes of this driver where a `CSIStorageCapacity` says
    /// they fit.
    pub storage_capacity: bool,
}

/// A `CSIStorageCapacity` object: how much a class can still get on the
/// nodes its topology selects.
#[derive(Debug, Clone)]
pub struct StorageCapacity {
    pub key: ObjectKey,
    pub class: String,
    /// `nodeTopology`; `None` means no node can reach it (upstream).
    pub node_topology: Option<LabelSelector>,
    pub capacity: Option<Quantity>,
    pub maximum_volume_size: Option<Quantity>,
    /// berth's agents say how many bytes their volumes held when the
    /// object was written (the [`ANN_VOLUME_BYTES`] annotation), so
    /// placement can count volumes made or deleted since from their PVs
    /// instead of waiting for the object to catch up.
    pub volume_bytes: Option<Quantity>,
}

/// Annotation on berth's CSIStorageCapacity objects: bytes of the node's
/// volumes when `capacity` was measured.
pub const ANN_VOLUME_BYTES: &str = "csi.berth.dev/volume-bytes";

impl StorageCapacity {
    /// The largest new volume this object admits: `maximumVolumeSize` when
    /// set (the scheduler prefers it), else `capacity`.
    pub fn volume_limit(&self) -> Option<Quantity> {
        self.maximum_volume_size.or(self.capacity)
    }

    /// The scheduler's `nodeHasAccess`: a label match on `nodeTopology`.
    pub fn reaches(&self, labels: &Labels) -> bool {
        self.node_topology
            .as_ref()
            .is_some_and(|t| t.matches(labels))
    }
}

/// A volume a pod uses, resolved enough for binding and limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodVolume {
    Claim(String),
    /// An inline CSI volume: counted against its driver's limit.
    InlineCsi {
        driver: String,
        handle: String,
    },
    /// An inline in-tree volume CSI migration serves: counted against its
    /// driver's limit by its translated handle, once however many pods and
    /// PVs name it.
    InlineMigrated(Migrated),
}

#[derive(Debug, Clone)]
pub struct Pod {
    pub key: ObjectKey,
    pub node_name: Option<String>,
    pub volumes: Vec<PodVolume>,
    /// Succeeded or Failed pods hold no volumes on their node.
    pub terminated: bool,
    /// Generic ephemeral volumes: the claim `<pod>-<volume>` and its template.
    pub ephemeral: Vec<ClaimTemplate>,
    /// What the scheduler reads to place a pod without a node.
    pub scheduling: PodScheduling,
    pub origin: Origin,
    pub seq: usize,
}

/// A pod's scheduling constraints and requests.
#[derive(Debug, Clone, Default)]
pub struct PodScheduling {
    /// `spec.nodeSelector`: every label must be on the node.
    pub node_selector: Labels,
    /// `affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution`.
    pub affinity: Option<NodeSelector>,
    pub tolerations: Vec<Toleration>,
    /// The pod's effective requests (containers, init containers, sidecars
    /// and overhead, as upstream `PodRequests` adds them).
    pub requests: Resources,
    /// Required inter-pod affinity terms, which berth does not evaluate:
    /// the plan warns where it places such a pod.
    pub inter_pod: InterPodAffinity,
}

/// Which required inter-pod affinity a pod has
/// (`requiredDuringSchedulingIgnoredDuringExecution` terms); preferred
/// terms only score nodes and are not recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InterPodAffinity {
    pub affinity: bool,
    pub anti_affinity: bool,
}

impl InterPodAffinity {
    pub fn any(self) -> bool {
        self.affinity || self.anti_affinity
    }
}

/// A claim template of a StatefulSet, already typed.
#[derive(Debug, Clone)]
pub struct ClaimTemplate {
    pub name: String,
    pub class: ClaimClass,
    pub request: Option<Quantity>,
    pub access_modes: AccessModes,
    pub volume_mode: VolumeMode,
    pub selector: Option<LabelSelector>,
    pub attributes_class: String,
}

#[derive(Debug, Clone)]
pub struct StatefulSet {
    pub key: ObjectKey,
    pub replicas: u32,
    pub templates: Vec<ClaimTemplate>,
    /// What its pods ask of a node (`spec.template.spec`).
    pub scheduling: PodScheduling,
    pub origin: Origin,
    pub seq: usize,
}

#[derive(Debug, Clone)]
pub struct Namespace {
    pub name: String,
    pub terminating: bool,
    pub seq: usize,
}

/// The PersistentVolumeClaim part of a LimitRange.
#[derive(Debug, Clone)]
pub struct LimitRange {
    pub key: ObjectKey,
    /// One entry per `type: PersistentVolumeClaim` item: (min, max) storage.
    pub claim_limits: Vec<(Option<Quantity>, Option<Quantity>)>,
    pub seq: usize,
}

/// A quota resource that applies to claims.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaResource {
    RequestsStorage,
    Claims,
    ClassRequestsStorage(String),
    ClassClaims(String),
}

impl std::fmt::Display for QuotaResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuotaResource::RequestsStorage => f.write_str("requests.storage"),
            QuotaResource::Claims => f.write_str("persistentvolumeclaims"),
            QuotaResource::ClassRequestsStorage(c) => {
                write!(f, "{c}.storageclass.storage.k8s.io/requests.storage")
            }
            QuotaResource::ClassClaims(c) => {
                write!(f, "{c}.storageclass.storage.k8s.io/persistentvolumeclaims")
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct ResourceQuota {
    pub key: ObjectKey,
    /// Only the claim-related hard limits, in key order.
    pub hard: Vec<(QuotaResource, Quantity)>,
    /// Quotas with scopes select pods (or VolumeAttributesClass claims); berth
    /// does not apply them to claims and warns instead.
    pub scoped: bool,
    pub seq: usize,
}

/// Everything the core looks at.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub classes: Vec<StorageClass>,
    pub volumes: Vec<Volume>,
    pub claims: Vec<Claim>,
    pub nodes: Vec<Node>,
    pub csi_nodes: Vec<CsiNode>,
    pub csi_drivers: Vec<CsiDriver>,
    pub capacities: Vec<StorageCapacity>,
    pub snapshots: Vec<VolumeSnapshot>,
    pub snapshot_contents: Vec<SnapshotContent>,
    pub pods: Vec<Pod>,
    pub stateful_sets: Vec<StatefulSet>,
    pub namespaces: Vec<Namespace>,
    pub limit_ranges: Vec<LimitRange>,
    pub quotas: Vec<ResourceQuota>,
    /// Warnings found while building the snapshot (unknown kinds, duplicates).
    pub warnings: Vec<String>,
}
