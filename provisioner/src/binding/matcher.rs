//! The checks upstream applies between one claim and one volume, in upstream's
//! order: `FindMatchingVolume` (PV controller and scheduler) and
//! `checkVolumeSatisfyClaim` (claims that name their volume).
//!
//! The index answers "which volume" quickly; this module answers "why not"
//! for a given pair, for pending reasons, near misses and `explain`.

use super::admission::Admitted;
use super::plan::Mismatch;
use super::snapshot::{Claim, Volume};
use crate::model::{ClaimKey, Labels};
use crate::quantity::Quantity;

/// What a volume is to the planner, derived from its claimRef and phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeState {
    /// Available for any matching claim.
    Free,
    /// `spec.claimRef` names this claim (with a matching or empty uid):
    /// only it may bind the volume.
    Reserved(ClaimKey),
    /// Its claim is gone: the reclaim policy applies and nobody binds it.
    Released(ClaimKey),
    /// Being deleted, or in a phase that never binds.
    Unusable(&'static str),
}

/// A claim as the matcher sees it, after admission resolved its class.
pub struct ClaimView<'a> {
    pub claim: &'a Claim,
    pub class: &'a str,
    pub request: Quantity,
}

impl<'a> ClaimView<'a> {
    /// The view of an admitted claim; a missing request reads as zero (such
    /// claims were rejected, unless they already existed).
    pub fn of(a: &'a Admitted<'_>) -> Self {
        let claim = a.claim.as_ref();
        ClaimView {
            claim,
            class: &a.class,
            request: claim.request.unwrap_or_else(Quantity::zero),
        }
    }
}

/// Upstream `IsVolumeBoundToClaim`: name and namespace match, and the uid
/// matches when the claimRef carries one.
pub fn is_bound_to_claim(volume: &Volume, claim: &Claim) -> bool {
    volume.claim_ref.as_ref().is_some_and(|r| {
        r.key == claim.key
            && match (&r.uid, &claim.uid) {
                (None, _) => true,
                (Some(a), Some(b)) => a == b,
                (Some(_), None) => false,
            }
    })
}

/// Every reason `FindMatchingVolume` would skip this volume for this claim
/// (empty = it matches). `node` is set on the scheduler path, which also
/// checks node affinity and access modes.
pub fn mismatches(
    volume: &Volume,
    state: &VolumeState,
    taken_by: Option<&ClaimKey>,
    view: &ClaimView<'_>,
    node: Option<(&str, &Labels)>,
) -> Vec<Mismatch> {
    let claim = view.claim;
    let mut out = Vec::new();
    if let Some(other) = taken_by.filter(|k| **k != claim.key) {
        out.push(Mismatch::BoundTo(other.clone()));
    }
    let bound_to_this = is_bound_to_claim(volume, claim);
    match state {
        VolumeState::Reserved(k) if *k != claim.key => out.push(Mismatch::ReservedFor(k.clone())),
        VolumeState::Released(k) => out.push(Mismatch::Released(k.clone())),
        _ => {}
    }
    match volume.capacity {
        Some(have) if have < view.request => out.push(Mismatch::TooSmall {
            have,
            want: view.request,
        }),
        None => out.push(Mismatch::NoCapacity),
        _ => {}
    }
    if volume.volume_mode != claim.volume_mode {
        out.push(Mismatch::VolumeMode {
            have: volume.volume_mode,
            want: claim.volume_mode,
        });
    }
    if volume.attributes_class != claim.attributes_class {
        out.push(Mismatch::AttributesClass {
            have: volume.attributes_class.clone(),
            want: claim.attributes_class.clone(),
        });
    }
    if volume.deleting {
        out.push(Mismatch::Deleting);
    }
    if let Some((name, labels)) = node {
        if let Some(aff) = &volume.node_affinity {
            if !aff.matches(name, labels) {
                out.push(Mismatch::NodeAffinity {
                    node: name.to_string(),
                });
            }
        }
    }
    // A volume reserved for this claim is checked only for the above.
    if bound_to_this {
        return out;
    }
    if let VolumeState::Unusable(phase) = state {
        out.push(Mismatch::NotAvailable { phase });
    }
    if let Some(sel) = &claim.selector {
        if !sel.matches(&volume.labels) {
            out.push(Mismatch::Selector);
        }
    }
    if volume.class != view.class {
        out.push(Mismatch::Class {
            have: volume.class.clone(),
            want: view.class.to_string(),
        });
    }
    let missing = volume.access_modes.missing_from(claim.access_modes);
    if !missing.is_empty() {
        out.push(Mismatch::AccessModes {
            missing: missing.iter().collect(),
        });
    }
    out
}

/// Upstream `checkVolumeSatisfyClaim`, for a claim that names this volume in
/// `spec.volumeName`; the message is the one the VolumeMismatch event carries.
/// Sizes are compared as whole units rounded up, as upstream's `Value()` does.
pub fn satisfies_named(volume: &Volume, view: &ClaimView<'_>) -> Result<(), String> {
    let claim = view.claim;
    if volume.deleting {
        return Err(format!(
            "the volume is marked for deletion {:?}",
            volume.name
        ));
    }
    let have = volume.capacity.map_or(0, |q| q.value_ceil());
    if have < view.request.value_ceil() {
        return Err("requested PV is too small".into());
    }
    if volume.class != view.class {
        return Err("storageClassName does not match".into());
    }
    if volume.attributes_class != claim.attributes_class {
        return Err("volumeAttributesClassName does not match".into());
    }
    if volume.volume_mode != claim.volume_mode {
        return Err("incompatible volumeMode".into());
    }
    if !volume.access_modes.contains_all(claim.access_modes) {
        return Err("incompatible accessMode".into());
    }
    Ok(())
}
