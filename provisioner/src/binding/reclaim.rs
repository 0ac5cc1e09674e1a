//! Volume states and reclaim, as the PV controller's `syncVolume` decides them.
//!
//! - no claimRef → Available;
//! - a claimRef without uid is a reservation: the volume stays Available, but
//!   only that claim may take it, whether or not the claim exists yet;
//! - a claimRef with a uid whose claim exists with that uid → reserved for it
//!   (bound, or binding in progress), unless the claim is bound to another
//!   volume ("claim bound elsewhere"): a dynamically provisioned volume with
//!   policy Delete is then released and deleted, one the controller bound
//!   goes back to Available (claimRef removed), and one a user bound keeps
//!   its claimRef without the uid, waiting for the claim to come back;
//! - a claimRef with a uid whose claim is absent or has another uid → Released,
//!   and the reclaim policy runs: Retain keeps it, Delete deletes it (when a
//!   deleter exists), Recycle scrubs it (only NFS and HostPath have recyclers),
//!   an unknown policy fails it. A static volume (no `provisioned-by`) is
//!   deleted only when it is CSI (its driver's provisioner deletes it): the
//!   in-tree deleters of the cloud plugins are gone from Kubernetes, so an
//!   in-tree static volume with Delete fails, as upstream's does.

use rustc_hash::FxHashMap as HashMap;

use super::matcher::VolumeState;
use super::plan::{Reclaim, ReclaimVerb};
use super::snapshot::{Claim, Volume};
use crate::model::{ClaimKey, ReclaimPolicy};

/// The state of every volume, given the claims that exist after admission.
pub fn volume_states(volumes: &[Volume], claims: &HashMap<&ClaimKey, &Claim>) -> Vec<VolumeState> {
    volumes
        .iter()
        .map(|v| {
            if v.deleting {
                return VolumeState::Unusable("Terminating");
            }
            let Some(r) = &v.claim_ref else {
                return VolumeState::Free;
            };
            match (&r.uid, claims.get(&r.key)) {
                (None, _) => VolumeState::Reserved(r.key.clone()),
                (Some(uid), Some(c)) if c.uid.as_ref() == Some(uid) => {
                    match bound_elsewhere(v, c) {
                        None => VolumeState::Reserved(r.key.clone()),
                        Some(_) if deleted_when_superseded(v) => {
                            VolumeState::Released(r.key.clone())
                        }
                        // Converged: upstream's unbindVolume removed the
                        // claimRef this controller wrote.
                        Some(_) if v.bound_by_controller => VolumeState::Free,
                        // Converged: the uid is dropped, the user's name
                        // reservation stays.
                        Some(_) => VolumeState::Reserved(r.key.clone()),
                    }
                }
                (Some(_), _) => VolumeState::Released(r.key.clone()),
            }
        })
        .collect()
}

/// The other volume `claim` is bound to, when it is not `volume`.
fn bound_elsewhere<'c>(volume: &Volume, claim: &'c Claim) -> Option<&'c str> {
    claim
        .volume_name
        .as_deref()
        .filter(|n| *n != volume.name.as_str())
}

/// Upstream deletes a superseded volume only when it was dynamically
/// provisioned (`pv.kubernetes.io/provisioned-by`) with policy Delete.
fn deleted_when_superseded(v: &Volume) -> bool {
    v.source.provisioned_by.is_some() && v.reclaim_policy == ReclaimPolicy::Delete
}

/// What happens to each volume whose claim is gone or bound elsewhere:
/// the reclaim policy for released volumes, an unbind for the others;
/// sorted by volume name.
pub fn reclaim_actions(
    volumes: &[Volume],
    states: &[VolumeState],
    claims: &HashMap<&ClaimKey, &Claim>,
) -> Vec<Reclaim> {
    let elsewhere = |v: &Volume| {
        let r = v.claim_ref.as_ref()?;
        let c = claims.get(&r.key)?;
        (r.uid.is_some() && c.uid == r.uid)
            .then(|| bound_elsewhere(v, c))
            .flatten()
    };
    let mut out: Vec<Reclaim> = volumes
        .iter()
        .zip(states)
        .filter_map(|(v, s)| match (s, elsewhere(v)) {
            (VolumeState::Released(claim), None) => Some(reclaim_one(v, claim, None)),
            (VolumeState::Released(claim), Some(other)) => Some(reclaim_one(v, claim, Some(other))),
            (_, Some(other)) => Some(unbind(v, other)),
            (_, None) => None,
        })
        .collect();
    out.sort_by(|a, b| a.volume.cmp(&b.volume));
    out
}

/// Upstream's `unbindVolume` for a volume whose claim is bound to `other`.
fn unbind(v: &Volume, other: &str) -> Reclaim {
    let claim = v.claim_ref.as_ref().map(|r| &r.key);
    let claim = claim.map_or_else(String::new, ToString::to_string);
    let reason = if v.bound_by_controller {
        format!(
            "claim {claim} is bound to volume {other}; the claimRef this controller wrote is removed and the volume becomes Available"
        )
    } else {
        format!(
            "claim {claim} is bound to volume {other}; the volume was bound by a user: its claimRef loses the uid and keeps the volume reserved for {claim}"
        )
    };
    Reclaim {
        volume: v.name.clone(),
        policy: v.reclaim_policy.clone(),
        action: ReclaimVerb::Unbind,
        reason,
    }
}

/// `elsewhere` is the volume the claim is bound to instead, when it still
/// exists.
fn reclaim_one(v: &Volume, claim: &ClaimKey, elsewhere: Option<&str>) -> Reclaim {
    if let (Some(other), Some(p)) = (elsewhere, &v.source.provisioned_by) {
        return Reclaim {
            volume: v.name.clone(),
            policy: v.reclaim_policy.clone(),
            action: ReclaimVerb::Delete,
            reason: format!(
                "claim {claim} is bound to volume {other}; this dynamically provisioned volume is not needed: provisioner {p} deletes it"
            ),
        };
    }
    let plugin = v
        .source
        .field
        .as_deref()
        .and_then(storage_classes::plugin_for_source_field);
    let plugin_name = plugin.map_or("unknown", |p| p.name);
    let (action, reason) = match &v.reclaim_policy {
        ReclaimPolicy::Retain => (
            ReclaimVerb::Keep,
            format!(
                "claim {claim} is gone; Retain keeps the volume Released until an administrator reclaims it"
            ),
        ),
        ReclaimPolicy::Delete => {
            if let Some(p) = &v.source.provisioned_by {
                (
                    ReclaimVerb::Delete,
                    format!("claim {claim} is gone; provisioner {p} deletes the volume"),
                )
            } else if v.source.field.as_deref() == Some("csi") {
                // Upstream's findDeletablePlugin leaves CSI volumes to the
                // driver's external provisioner.
                (
                    ReclaimVerb::Delete,
                    format!(
                        "claim {claim} is gone; the CSI driver's external provisioner deletes the volume"
                    ),
                )
            } else {
                (
                    ReclaimVerb::Fail,
                    format!(
                        "claim {claim} is gone; no deletable volume plugin matched ({plugin_name} has no deleter): the volume becomes Failed"
                    ),
                )
            }
        }
        ReclaimPolicy::Recycle => {
            if plugin.is_some_and(|p| p.recyclable) {
                (
                    ReclaimVerb::Recycle,
                    format!(
                        "claim {claim} is gone; the {plugin_name} volume is scrubbed and becomes Available"
                    ),
                )
            } else {
                (
                    ReclaimVerb::Fail,
                    format!(
                        "claim {claim} is gone; no recycler plugin found for the volume ({plugin_name}): the volume becomes Failed"
                    ),
                )
            }
        }
        ReclaimPolicy::Unknown(p) => (
            ReclaimVerb::Fail,
            format!(
                "claim {claim} is gone; volume has unrecognized PersistentVolumeReclaimPolicy {p:?}: the volume becomes Failed"
            ),
        ),
    };
    Reclaim {
        volume: v.name.clone(),
        policy: v.reclaim_policy.clone(),
        action,
        reason,
    }
}
