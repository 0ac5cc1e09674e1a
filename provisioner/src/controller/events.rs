//! Kubernetes Events the controller writes, and the one place their reasons
//! are spelled. The reasons are upstream's, so `kubectl describe` reads the
//! same as with the CSI external-provisioner.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};

use crate::binding::{LostCause, PendingReason};

pub const PROVISIONING_SUCCEEDED: &str = "ProvisioningSucceeded";
pub const PROVISIONING_FAILED: &str = "ProvisioningFailed";
/// Said (Normal) of a claim a volume populator fills.
pub const PROVISIONING: &str = "Provisioning";
pub const VOLUME_DELETED: &str = "VolumeDeleted";
pub const VOLUME_FAILED_DELETE: &str = "VolumeFailedDelete";
// The external-resizer's reasons, written by the agent (resize.rs).
pub const RESIZING: &str = "Resizing";
pub const FILE_SYSTEM_RESIZE_REQUIRED: &str = "FileSystemResizeRequired";
pub const VOLUME_RESIZE_SUCCESSFUL: &str = "VolumeResizeSuccessful";
pub const VOLUME_RESIZE_FAILED: &str = "VolumeResizeFailed";
/// berth's own: the Node a volume lived on was deleted (node_loss.rs).
pub const NODE_LOST: &str = "NodeLost";
/// berth's own: a directory volume holds more than its capacity, which
/// nothing enforces (agent/usage_events.rs).
pub const VOLUME_OVER_CAPACITY: &str = "VolumeOverCapacity";
/// berth's own: a deleted claim's volume could not be looked for (its class
/// or node is gone), so the claim was released without it (intent.rs).
pub const CLEANUP_ABANDONED: &str = "VolumeCleanupAbandoned";
// The PV controller's reasons, written by the binder (`--bind`).
pub const FAILED_BINDING: &str = "FailedBinding";
pub const VOLUME_MISMATCH: &str = "VolumeMismatch";
pub const WAIT_FOR_FIRST_CONSUMER: &str = "WaitForFirstConsumer";
pub const EXTERNAL_PROVISIONING: &str = "ExternalProvisioning";
pub const CLAIM_LOST: &str = "ClaimLost";
pub const CLAIM_MISBOUND: &str = "ClaimMisbound";
pub const VOLUME_FAILED_RECYCLE: &str = "VolumeFailedRecycle";

/// The event a waiting claim gets, as the PV controller (or, for topology,
/// the scheduler) would write it: whether it is a warning, and its reason.
pub fn for_pending(reason: &PendingReason) -> (bool, &'static str) {
    match reason {
        PendingReason::WaitingForFirstConsumer | PendingReason::WaitingForPodScheduled(_) => {
            (false, WAIT_FOR_FIRST_CONSUMER)
        }
        // Upstream says this one as a Normal event: nothing is broken yet.
        PendingReason::NoClass => (false, FAILED_BINDING),
        PendingReason::ClassNotFound(_)
        | PendingReason::NoProvisioner(_)
        | PendingReason::NoInTreePlugin { .. }
        | PendingReason::SelectorNotProvisionable
        | PendingReason::AccessModeUnsupported { .. }
        | PendingReason::NotEnoughStorage { .. }
        | PendingReason::NoNodeForVolume { .. }
        | PendingReason::DataSource { .. } => (true, PROVISIONING_FAILED),
        PendingReason::WaitingForPopulator { .. } => (false, PROVISIONING),
        PendingReason::VolumeMismatch { .. } => (true, VOLUME_MISMATCH),
        PendingReason::Lost(LostCause::Misbound(_)) => (true, CLAIM_MISBOUND),
        PendingReason::Lost(_) => (true, CLAIM_LOST),
        PendingReason::VolumeNotFound(_)
        | PendingReason::VolumeBoundElsewhere(_)
        | PendingReason::NoVolumeOnNode { .. }
        | PendingReason::TopologyNotAllowed { .. } => (true, FAILED_BINDING),
    }
}

#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
}

impl Events {
    pub fn new(recorder: Recorder) -> Self {
        Events { recorder }
    }

    pub async fn normal(&self, on: &ObjectReference, reason: &str, action: &str, note: String) {
        self.publish(on, EventType::Normal, reason, action, note)
            .await
    }

    pub async fn warning(&self, on: &ObjectReference, reason: &str, action: &str, note: String) {
        self.publish(on, EventType::Warning, reason, action, note)
            .await
    }

    async fn publish(
        &self,
        on: &ObjectReference,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let ev = Event {
            type_,
            reason: reason.to_string(),
            // The Events API caps a note at 1 kB.
            note: Some(truncate(note, 1000)),
            action: action.to_string(),
            secondary: None,
        };
        // An event is best effort: failing to write one must not fail the work.
        if let Err(e) = self.recorder.publish(&ev, on).await {
            tracing::warn!(reason, error = %e, "writing event failed");
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
