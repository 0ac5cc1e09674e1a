//! Volume expansion for the volumes an agent owns: the CSI
//! external-resizer's job, done by berth (the Go module proxy does not serve
//! external-resizer, and a sidecar per node is one more image to ship).
//!
//! A bound claim whose `spec.resources.requests.storage` grew past its
//! `status.capacity` gets, as upstream's resizer writes it:
//! 1. status: the `Resizing` condition, `allocatedResources` = the new size
//!    and `allocatedResourceStatuses[storage]` = `ControllerResizeInProgress`,
//!    and a `Resizing` event;
//! 2. `ControllerExpandVolume` on this node's driver (idempotent: a repeated
//!    call for a size already reached returns it);
//! 3. the PV's `spec.capacity`;
//! 4. when the file system must grow on the node: `FileSystemResizePending`
//!    and `NodeResizePending`, after which the kubelet calls
//!    `NodeExpandVolume` and writes the new `status.capacity` itself;
//!    otherwise (raw block) `status.capacity` now and `VolumeResizeSuccessful`.
//!
//! Refused expansions (a class without `allowVolumeExpansion`, a smaller
//! size) never reach berth: the API server's admission and validation
//! reject them with upstream's messages.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::Context;
use super::events::{
    FILE_SYSTEM_RESIZE_REQUIRED, RESIZING, VOLUME_RESIZE_FAILED, VOLUME_RESIZE_SUCCESSFUL,
};
use super::provision::ANN_PROVISIONED_BY;
use crate::quantity::Quantity;

pub const CONTROLLER_RESIZE_IN_PROGRESS: &str = "ControllerResizeInProgress";
pub const CONTROLLER_RESIZE_INFEASIBLE: &str = "ControllerResizeInfeasible";
pub const NODE_RESIZE_PENDING: &str = "NodeResizePending";
pub const NODE_RESIZE_IN_PROGRESS: &str = "NodeResizeInProgress";
/// Upstream's message on `FileSystemResizePending`.
const FS_PENDING_MESSAGE: &str =
    "Waiting for user to (re-)start a pod to finish file system resize of volume on node.";

#[derive(Debug, thiserror::Error)]
pub enum ResizeError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("resize volume {volume} failed: rpc error: code = {code:?} desc = {message}")]
    Csi {
        volume: String,
        code: tonic::Code,
        message: String,
    },
}

/// What a claim's sizes say is to be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing: no growth asked, the node is finishing it, or it was refused.
    Wait,
    /// Expand the volume to this many bytes on the controller side.
    Expand(u64),
}

/// The sizes of a bound claim, as bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes<'a> {
    pub requested: u64,
    pub status: u64,
    /// `allocatedResourceStatuses[storage]`, if any.
    pub resize_status: Option<&'a str>,
    /// `allocatedResources[storage]`: the size a refused resize was for.
    pub allocated: Option<u64>,
}

/// Decides the next step from a claim's sizes.
pub fn next_step(s: Sizes<'_>) -> Step {
    if s.requested <= s.status {
        return Step::Wait;
    }
    match s.resize_status {
        // The kubelet finishes it.
        Some(NODE_RESIZE_PENDING | NODE_RESIZE_IN_PROGRESS) => Step::Wait,
        // Refused for this size: only a new size is tried again.
        Some(CONTROLLER_RESIZE_INFEASIBLE) if s.allocated == Some(s.requested) => Step::Wait,
        _ => Step::Expand(s.requested),
    }
}

fn storage(
    map: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
) -> Option<u64> {
    let q = map?.get("storage")?;
    u64::try_from(Quantity::parse(&q.0).ok()?.value_ceil()).ok()
}

/// Expands the volume of a bound claim this agent owns, when it asks for more.
pub async fn reconcile(pvc: &PersistentVolumeClaim, ctx: &Context) -> Result<Action, ResizeError> {
    let Some(csi) = ctx.csi.as_ref() else {
        return Ok(Action::await_change());
    };
    let spec = pvc.spec.clone().unwrap_or_default();
    let status = pvc.status.clone().unwrap_or_default();
    let Some(pv_name) = spec.volume_name.filter(|n| !n.is_empty()) else {
        return Ok(Action::await_change());
    };
    if status.phase.as_deref() != Some("Bound") {
        return Ok(Action::await_change());
    }
    let Some(pv) = ctx.caches.volumes.get(&ObjectRef::new(&pv_name)) else {
        // Not a volume of this node (or not cached yet: its event brings us back).
        return Ok(Action::await_change());
    };
    let ours = pv.annotations().get(ANN_PROVISIONED_BY) == Some(&ctx.provisioner)
        && pv
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .is_some_and(|r| r.uid == pvc.metadata.uid);
    let Some(handle) = pv
        .spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .filter(|c| c.driver == ctx.driver && ours)
        .map(|c| c.volume_handle.clone())
    else {
        return Ok(Action::await_change());
    };
    let requested = storage(spec.resources.as_ref().and_then(|r| r.requests.as_ref())).unwrap_or(0);
    let sizes = Sizes {
        requested,
        status: storage(status.capacity.as_ref()).unwrap_or(0),
        resize_status: status
            .allocated_resource_statuses
            .as_ref()
            .and_then(|m| m.get("storage"))
            .map(String::as_str),
        allocated: storage(status.allocated_resources.as_ref()),
    };
    let Step::Expand(target) = next_step(sizes) else {
        return Ok(Action::await_change());
    };
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &pvc.namespace().unwrap_or_default());
    let name = pvc.name_any();
    let on = pvc.object_ref(&());
    let target_q = Quantity::from_bytes(target).to_string();

    let mut conditions = resize_conditions_removed(&status);
    conditions.push(json!({
        "type": "Resizing", "status": "True",
        "lastTransitionTime": now(),
    }));
    let started = json!({
        "metadata": { "resourceVersion": pvc.resource_version() },
        "status": {
            "conditions": conditions,
            "allocatedResources": { "storage": target_q },
            "allocatedResourceStatuses": { "storage": CONTROLLER_RESIZE_IN_PROGRESS },
        },
    });
    let pvc = claims
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&started))
        .await?;
    ctx.events
        .normal(
            &on,
            RESIZING,
            "Resize",
            format!("External resizer is resizing volume {pv_name}"),
        )
        .await;

    let expanded = csi
        .expand_volume(
            &handle,
            i64::try_from(target).unwrap_or(i64::MAX),
            capability(&pv),
        )
        .await;
    let (capacity, node_expansion) = match expanded {
        Ok(r) => (
            u64::try_from(r.capacity_bytes)
                .unwrap_or(target)
                .max(target),
            r.node_expansion_required,
        ),
        Err(s) => {
            let err = ResizeError::Csi {
                volume: pv_name.clone(),
                code: s.code(),
                message: s.message().to_string(),
            };
            ctx.events
                .warning(&on, VOLUME_RESIZE_FAILED, "Resize", err.to_string())
                .await;
            if is_final(s.code()) {
                // Infeasible for this size: kept until the user asks for
                // another one (or back for the old), as upstream does.
                let infeasible = json!({
                    "status": {
                        "conditions": resize_conditions_removed(pvc.status.as_ref().unwrap_or(&Default::default())),
                        "allocatedResourceStatuses": { "storage": CONTROLLER_RESIZE_INFEASIBLE },
                    },
                });
                claims
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&infeasible))
                    .await?;
                return Ok(Action::await_change());
            }
            return Err(err);
        }
    };

    let capacity_q = Quantity::from_bytes(capacity).to_string();
    let pv_has = storage(pv.spec.as_ref().and_then(|s| s.capacity.as_ref())).unwrap_or(0);
    if pv_has < capacity {
        let mut next: PersistentVolume = (*pv).clone();
        if let Some(spec) = next.spec.as_mut() {
            spec.capacity.get_or_insert_with(Default::default).insert(
                "storage".into(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity(capacity_q.clone()),
            );
        }
        Api::<PersistentVolume>::all(ctx.client.clone())
            .replace(&pv_name, &PostParams::default(), &next)
            .await?;
    }

    let status = pvc.status.clone().unwrap_or_default();
    let mut conditions = resize_conditions_removed(&status);
    let done = if node_expansion {
        conditions.push(json!({
            "type": "FileSystemResizePending", "status": "True",
            "lastTransitionTime": now(), "message": FS_PENDING_MESSAGE,
        }));
        json!({
            "metadata": { "resourceVersion": pvc.resource_version() },
            "status": {
                "conditions": conditions,
                "allocatedResourceStatuses": { "storage": NODE_RESIZE_PENDING },
            },
        })
    } else {
        json!({
            "metadata": { "resourceVersion": pvc.resource_version() },
            "status": {
                "conditions": conditions,
                "capacity": { "storage": capacity_q },
                "allocatedResourceStatuses": null,
            },
        })
    };
    claims
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&done))
        .await?;
    if node_expansion {
        ctx.events
            .normal(
                &on,
                FILE_SYSTEM_RESIZE_REQUIRED,
                "Resize",
                "Require file system resize of volume on node".into(),
            )
            .await;
    } else {
        ctx.events
            .normal(
                &on,
                VOLUME_RESIZE_SUCCESSFUL,
                "Resize",
                "Resize volume succeeded".into(),
            )
            .await;
    }
    tracing::info!(claim = %format!("{}/{name}", pvc.namespace().unwrap_or_default()), volume = %pv_name, capacity = %capacity_q, node_expansion, "expanded");
    Ok(Action::await_change())
}

/// Errors that the same request cannot get past.
fn is_final(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        InvalidArgument | OutOfRange | Unimplemented | FailedPrecondition
    )
}

/// The claim's conditions without the resize ones berth sets.
fn resize_conditions_removed(
    status: &k8s_openapi::api::core::v1::PersistentVolumeClaimStatus,
) -> Vec<serde_json::Value> {
    status
        .conditions
        .iter()
        .flatten()
        .filter(|c| !matches!(c.type_.as_str(), "Resizing" | "FileSystemResizePending"))
        .filter_map(|c| serde_json::to_value(c).ok())
        .collect()
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The capability the PV is used with, for ControllerExpandVolume.
fn capability(pv: &PersistentVolume) -> Option<csi_proto::VolumeCapability> {
    use csi_proto::volume_capability::access_mode::Mode;
    use csi_proto::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
    let spec = pv.spec.as_ref()?;
    let access_type = if spec.volume_mode.as_deref() == Some("Block") {
        AccessType::Block(BlockVolume {})
    } else {
        AccessType::Mount(MountVolume {
            fs_type: spec
                .csi
                .as_ref()
                .and_then(|c| c.fs_type.clone())
                .unwrap_or_default(),
            ..Default::default()
        })
    };
    let mode = if spec
        .access_modes
        .iter()
        .flatten()
        .any(|m| m == "ReadWriteOncePod")
    {
        Mode::SingleNodeSingleWriter
    } else {
        Mode::SingleNodeWriter
    };
    Some(csi_proto::VolumeCapability {
        access_type: Some(access_type),
        access_mode: Some(AccessMode { mode: mode as i32 }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(
        requested: u64,
        status: u64,
        resize: Option<&str>,
        allocated: Option<u64>,
    ) -> Sizes<'_> {
        Sizes {
            requested,
            status,
            resize_status: resize,
            allocated,
        }
    }

    #[test]
    fn what_a_claims_sizes_ask_for() {
        let cases = [
            ("nothing asked", sizes(64, 64, None, None), Step::Wait),
            (
                "smaller is not berth's (the API server refuses it)",
                sizes(32, 64, None, None),
                Step::Wait,
            ),
            ("grown", sizes(128, 64, None, None), Step::Expand(128)),
            (
                "the controller side was cut short",
                sizes(128, 64, Some(CONTROLLER_RESIZE_IN_PROGRESS), Some(128)),
                Step::Expand(128),
            ),
            (
                "the node finishes it",
                sizes(128, 64, Some(NODE_RESIZE_PENDING), Some(128)),
                Step::Wait,
            ),
            (
                "the node is at it",
                sizes(128, 64, Some(NODE_RESIZE_IN_PROGRESS), Some(128)),
                Step::Wait,
            ),
            (
                "refused for this size",
                sizes(128, 64, Some(CONTROLLER_RESIZE_INFEASIBLE), Some(128)),
                Step::Wait,
            ),
            (
                "refused before, a new size",
                sizes(96, 64, Some(CONTROLLER_RESIZE_INFEASIBLE), Some(128)),
                Step::Expand(96),
            ),
        ];
        for (name, s, want) in cases {
            assert_eq!(next_step(s), want, "case {name}");
        }
    }
}
