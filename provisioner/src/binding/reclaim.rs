//! Volume states and reclaim, as the PV controller's `syncVolume` decides them.
//!
//! - no claimRef → Available;
//! - a claimRef without uid is a reservation: the volume stays Available, but
//!   only that claim may take it, whether or not the claim exists yet;
//! - a claimRef with a uid whose claim exists with that uid → reserved for it
//!   (bound, or binding in progress);
//! - a claimRef with a uid whose claim is absent or has another uid → Released,
//!   and the reclaim policy runs: Retain keeps it, Delete deletes it (when a
//!   deleter exists), Recycle scrubs it (only NFS and HostPath have recyclers),
//!   an unknown policy fails it.

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
                    VolumeState::Reserved(r.key.clone())
                }
                (Some(_), _) => VolumeState::Released(r.key.clone()),
            }
        })
        .collect()
}

/// What the reclaim policy does to each released volume, sorted by volume name.
pub fn reclaim_actions(volumes: &[Volume], states: &[VolumeState]) -> Vec<Reclaim> {
    let mut out: Vec<Reclaim> = volumes
        .iter()
        .zip(states)
        .filter_map(|(v, s)| match s {
            VolumeState::Released(claim) => Some(reclaim_one(v, claim)),
            _ => None,
        })
        .collect();
    out.sort_by(|a, b| a.volume.cmp(&b.volume));
    out
}

fn reclaim_one(v: &Volume, claim: &ClaimKey) -> Reclaim {
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
            } else if plugin.is_some_and(|p| p.deletable) {
                (
                    ReclaimVerb::Delete,
                    format!("claim {claim} is gone; the {plugin_name} volume is deleted"),
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
