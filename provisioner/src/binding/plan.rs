//! The binding core's output: what the cluster would do, and why.
//!
//! Every decision carries a reason whose wording is shared by `dry-run`,
//! `explain` and (later) Kubernetes Events, so the three never disagree.

use std::fmt;

use crate::model::{AccessMode, ClaimKey, ObjectKey, ReclaimPolicy, VolumeMode};
use crate::quantity::Quantity;

/// How a claim came to be bound to its volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindHow {
    /// Claim and volume already point at each other.
    AlreadyBound,
    /// The claim named the volume in `spec.volumeName`.
    VolumeName,
    /// The volume's `spec.claimRef` reserved it for the claim.
    PreBound,
    /// The PV controller's best match (smallest fitting volume).
    Matched,
    /// Delayed binding: the scheduler matched it for a pod on this node.
    Scheduler { node: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub claim: ClaimKey,
    pub volume: String,
    pub how: BindHow,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioning {
    pub claim: ClaimKey,
    pub class: String,
    pub provisioner: String,
    /// The node the volume is made on: the scheduler's choice for a
    /// WaitForFirstConsumer claim, berth's placement for an Immediate claim
    /// of a node-local provisioner; `None` when the provisioner decides.
    pub node: Option<String>,
    pub request: Quantity,
    /// Set when berth's placement chose `node` (see [`Placement`]).
    pub placement: Option<Placement>,
    /// The size berth's driver makes when the request is below the class's
    /// file system's minimum (xfs: 300Mi): the volume, and the PV, get this.
    pub rounded_up: Option<Quantity>,
    /// What the new volume is made from, when the claim has a data source.
    pub content: Option<Content>,
}

/// A provisioning's content source, resolved to the CSI id it is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A clone of the claim `claim`, whose volume is `volume` (CSI `handle`).
    Clone {
        claim: String,
        volume: String,
        handle: String,
    },
    /// A restore of the VolumeSnapshot `snapshot` (CSI snapshot `handle`),
    /// taken of the PV `volume` when that is known.
    Restore {
        snapshot: String,
        handle: String,
        volume: Option<String>,
    },
}

impl Content {
    /// The PV the content comes from, when known.
    pub fn source_volume(&self) -> Option<&str> {
        match self {
            Content::Clone { volume, .. } => Some(volume).filter(|v| !v.is_empty()),
            Content::Restore { volume, .. } => volume.as_ref(),
        }
        .map(String::as_str)
    }
}

impl fmt::Display for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Content::Clone { claim, volume, .. } => {
                write!(f, "clone of claim {claim} (volume {volume})")
            }
            Content::Restore { snapshot, .. } => write!(f, "restore of snapshot {snapshot}"),
        }
    }
}

impl Provisioning {
    /// What the volume will take on its node.
    pub fn size(&self) -> Quantity {
        self.rounded_up.unwrap_or(self.request)
    }
}

/// Why berth's placement chose a node for an Immediate claim of a
/// node-local provisioner: the node with the most free storage for the
/// class (after the volumes already planned on it), ties by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Free storage on the chosen node before this claim, as placement
    /// counts it; `None` when the driver publishes no storage capacity (the
    /// node with the fewest of the driver's volumes is chosen then).
    pub free: Option<Quantity>,
    /// Nodes that could have taken the volume.
    pub feasible: usize,
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.free {
            Some(free) => write!(
                f,
                "placed by berth: most free storage, {free} free, {} feasible node(s)",
                self.feasible
            ),
            None => write!(
                f,
                "placed by berth: fewest volumes, {} feasible node(s)",
                self.feasible
            ),
        }
    }
}

/// Why a claim that was compared against a volume did not take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    TooSmall {
        have: Quantity,
        want: Quantity,
    },
    NoCapacity,
    Class {
        have: String,
        want: String,
    },
    VolumeMode {
        have: VolumeMode,
        want: VolumeMode,
    },
    /// `volumeAttributesClassName` differs (unset reads as `""`).
    AttributesClass {
        have: String,
        want: String,
    },
    AccessModes {
        missing: Vec<AccessMode>,
    },
    Selector,
    NotAvailable {
        phase: &'static str,
    },
    ReservedFor(ClaimKey),
    BoundTo(ClaimKey),
    /// Its claim is gone; released volumes are never bound again.
    Released(ClaimKey),
    Deleting,
    NodeAffinity {
        node: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::TooSmall { have, want } => write!(f, "{have} < {want} requested"),
            Mismatch::NoCapacity => f.write_str("no capacity set"),
            Mismatch::Class { have, want } => {
                write!(f, "storageClassName {have:?} != {want:?}")
            }
            Mismatch::VolumeMode { have, want } => write!(f, "volumeMode {have} != {want}"),
            Mismatch::AttributesClass { have, want } => {
                write!(f, "volumeAttributesClassName {have:?} != {want:?}")
            }
            Mismatch::AccessModes { missing } => {
                let names: Vec<&str> = missing.iter().map(|m| m.as_str()).collect();
                write!(f, "lacks access mode {}", names.join(","))
            }
            Mismatch::Selector => f.write_str("labels do not match the claim's selector"),
            Mismatch::NotAvailable { phase } => write!(f, "phase is {phase}, not Available"),
            Mismatch::ReservedFor(k) => write!(f, "reserved for claim {k} by spec.claimRef"),
            Mismatch::BoundTo(k) => write!(f, "bound to {k}"),
            Mismatch::Released(k) => write!(f, "Released (its claim {k} is gone)"),
            Mismatch::Deleting => f.write_str("is being deleted"),
            Mismatch::NodeAffinity { node } => {
                write!(f, "nodeAffinity does not allow node {node}")
            }
        }
    }
}

/// A volume that nearly matched a pending claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearMiss {
    pub volume: String,
    pub problems: Vec<Mismatch>,
}

impl fmt::Display for NearMiss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.problems.iter().map(|p| p.to_string()).collect();
        write!(f, "{}: {}", self.volume, parts.join("; "))
    }
}

/// Why a claim the binder once bound (`pv.kubernetes.io/bind-completed`)
/// is Lost: upstream `syncBoundClaim`'s three ways of losing a volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostCause {
    /// `spec.volumeName` was emptied.
    NoVolumeName,
    /// The volume it names does not exist.
    VolumeMissing(String),
    /// The volume it names is bound to another claim (another uid).
    Misbound(String),
}

impl LostCause {
    /// The PV controller's event message for this loss, word for word.
    pub fn event_message(&self) -> &'static str {
        match self {
            LostCause::NoVolumeName => {
                "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!"
            }
            LostCause::VolumeMissing(_) => {
                "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
            }
            LostCause::Misbound(_) => {
                "Two claims are bound to the same volume, this one is bound incorrectly"
            }
        }
    }
}

impl fmt::Display for LostCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostCause::NoVolumeName => {
                write!(f, "it was bound but its spec.volumeName is empty")
            }
            LostCause::VolumeMissing(v) => write!(f, "its bound volume {v:?} does not exist"),
            LostCause::Misbound(v) => write!(
                f,
                "its volume {v:?} is bound to another claim (two claims are bound to the same volume, this one incorrectly)"
            ),
        }
    }
}

/// Why a claim stays Pending. The wording follows the PV controller's and
/// the scheduler's event messages where they exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PendingReason {
    WaitingForFirstConsumer,
    WaitingForPodScheduled(Vec<ObjectKey>),
    NoClass,
    ClassNotFound(String),
    NoProvisioner(String),
    /// The class names a `kubernetes.io/` provisioner that is neither an
    /// in-tree plugin of this Kubernetes nor migrated to a CSI driver.
    NoInTreePlugin {
        class: String,
        provisioner: String,
    },
    SelectorNotProvisionable,
    AccessModeUnsupported {
        provisioner: String,
        mode: AccessMode,
    },
    VolumeNotFound(String),
    Lost(LostCause),
    VolumeMismatch {
        volume: String,
        problem: String,
    },
    VolumeBoundElsewhere(String),
    NoVolumeOnNode {
        node: String,
        class: String,
    },
    TopologyNotAllowed {
        node: String,
        class: String,
    },
    /// The scheduler's storage capacity check failed on the pod's node.
    NotEnoughStorage {
        node: String,
        class: String,
    },
    /// berth's placement found no node for an Immediate claim of a
    /// node-local provisioner; per reason, how many nodes it ruled out.
    NoNodeForVolume {
        class: String,
        nodes: usize,
        rejected: Vec<(NodeRejection, usize)>,
    },
    /// The claim's data source cannot be used (yet): no volume is made.
    DataSource {
        class: String,
        kind: String,
        name: String,
        problem: super::data_source::Problem,
    },
    /// A data source of another kind: a volume populator fills the claim.
    WaitingForPopulator {
        kind: String,
        name: String,
    },
}

/// Why placement ruled a node out, worded as the scheduler's filters are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeRejection {
    NotRegistered,
    NotSourceNode,
    TopologyNotAllowed,
    VolumeLimit,
    NotEnoughStorage,
}

impl fmt::Display for NodeRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeRejection::NotRegistered => "node(s) did not have the driver registered",
            NodeRejection::NotSourceNode => "node(s) did not hold the data source's volume",
            NodeRejection::TopologyNotAllowed => {
                "node(s) did not match the storage class's allowedTopologies"
            }
            NodeRejection::VolumeLimit => "node(s) exceed max volume count",
            NodeRejection::NotEnoughStorage => "node(s) did not have enough free storage",
        })
    }
}

impl fmt::Display for PendingReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PendingReason::WaitingForFirstConsumer => {
                f.write_str("waiting for first consumer to be created before binding")
            }
            PendingReason::WaitingForPodScheduled(pods) => {
                let names: Vec<String> = pods.iter().map(|p| p.to_string()).collect();
                write!(f, "waiting for pod {} to be scheduled", names.join(", "))
            }
            PendingReason::NoClass => f.write_str(
                "no persistent volumes available for this claim and no storage class is set",
            ),
            PendingReason::ClassNotFound(c) => {
                write!(f, "storageclass.storage.k8s.io {c:?} not found")
            }
            PendingReason::NoInTreePlugin { class, provisioner } => write!(
                f,
                "storage class {class:?} names {provisioner}: no volume plugin matched name: {provisioner}, and no external provisioner serves kubernetes.io/ names"
            ),
            PendingReason::NoProvisioner(c) => write!(
                f,
                "no persistent volume matches and storage class {c:?} uses kubernetes.io/no-provisioner, which never creates volumes"
            ),
            PendingReason::SelectorNotProvisionable => f.write_str(
                "no persistent volume matches and a claim with a selector is never provisioned (claim Selector is not supported)",
            ),
            PendingReason::AccessModeUnsupported { provisioner, mode } => write!(
                f,
                "no persistent volume matches and provisioner {provisioner} cannot serve access mode {mode}"
            ),
            PendingReason::VolumeNotFound(v) => {
                write!(f, "volume {v:?} requested by spec.volumeName does not exist")
            }
            PendingReason::Lost(cause) => write!(f, "claim is Lost: {cause}"),
            PendingReason::VolumeMismatch { volume, problem } => {
                write!(f, "Cannot bind to requested volume {volume:?}: {problem}")
            }
            PendingReason::VolumeBoundElsewhere(v) => {
                write!(f, "volume {v:?} already bound to a different claim.")
            }
            PendingReason::NoVolumeOnNode { node, class } => write!(
                f,
                "node {node:?} has no available persistent volume for this claim and storage class {class:?} does not provision"
            ),
            PendingReason::TopologyNotAllowed { node, class } => write!(
                f,
                "storage class {class:?} allowedTopologies do not include node {node:?}"
            ),
            PendingReason::NotEnoughStorage { node, class } => write!(
                f,
                "node {node:?} did not have enough free storage for storage class {class:?}"
            ),
            PendingReason::NoNodeForVolume {
                class,
                nodes,
                rejected,
            } => {
                write!(
                    f,
                    "no node has room for a new volume of storage class {class:?}: 0/{nodes} nodes are available"
                )?;
                let parts: Vec<String> = rejected.iter().map(|(r, n)| format!("{n} {r}")).collect();
                if !parts.is_empty() {
                    write!(f, ": {}", parts.join(", "))?;
                }
                f.write_str(".")
            }
            PendingReason::DataSource {
                class,
                kind,
                name,
                problem,
            } => write!(
                f,
                "failed to provision volume with StorageClass {class:?}: {}",
                problem.message(kind, name)
            ),
            PendingReason::WaitingForPopulator { kind, name } => write!(
                f,
                "data source ({kind} {name}) is not handled by the provisioner, assuming an external populator will provision it"
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingClaim {
    pub claim: ClaimKey,
    pub reason: PendingReason,
    pub candidates: Vec<NearMiss>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub kind: &'static str,
    pub object: ObjectKey,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReclaimVerb {
    Keep,
    Delete,
    Recycle,
    Fail,
    /// The claim is bound to another volume: the claimRef is removed (or
    /// loses its uid) and the volume is Available again.
    Unbind,
}

impl ReclaimVerb {
    pub fn as_str(self) -> &'static str {
        match self {
            ReclaimVerb::Keep => "keep",
            ReclaimVerb::Delete => "delete",
            ReclaimVerb::Recycle => "recycle",
            ReclaimVerb::Fail => "fail",
            ReclaimVerb::Unbind => "unbind",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reclaim {
    pub volume: String,
    pub policy: ReclaimPolicy,
    pub action: ReclaimVerb,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub node: String,
    pub driver: String,
    pub limit: u32,
    pub count: u32,
}

/// The whole plan. Lists are sorted (claims and volumes by key, rejections in
/// creation order), so equal snapshots give byte-identical output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub bindings: Vec<Binding>,
    pub provisioning: Vec<Provisioning>,
    pub pending: Vec<PendingClaim>,
    pub rejected: Vec<Rejection>,
    pub reclaim: Vec<Reclaim>,
    pub violations: Vec<Violation>,
    pub warnings: Vec<String>,
    /// Pods without a node, in the order berth scheduled them.
    pub scheduling: Vec<PodPlacement>,
}

/// berth's prediction for a pod without a node: the scheduler's filters on
/// every node, then berth's choice among the nodes that pass them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPlacement {
    pub pod: ObjectKey,
    /// `None` when no node passes every filter.
    pub node: Option<String>,
    pub feasible_nodes: usize,
    /// The scheduler's FailedScheduling message, for a pod that fits nowhere.
    pub reason: Option<String>,
    /// Each rejected node with the filter that rejected it, by node name
    /// (only when asked for: `Options::node_verdicts`).
    pub rejected: Vec<NodeVerdict>,
}

/// Why one node cannot take a pod: the first filter that fails, in the
/// scheduler's order, with that filter's reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeVerdict {
    pub node: String,
    pub filter: &'static str,
    pub reasons: Vec<String>,
}
