//! Admission of PersistentVolumeClaims, as the API server would apply it to
//! claims created now, in creation order: NamespaceLifecycle, DefaultStorageClass
//! (mutating), object validation, then LimitRanger and ResourceQuota (validating).
//!
//! Claims that already exist (they carry a uid) are not admitted again: they
//! only count toward quota usage. A rejected claim takes no quota.
//! LimitRanges and ResourceQuotas constrain only claims created after them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::plan::Rejection;
use super::snapshot::{Claim, ClaimClass, QuotaResource, ResourceQuota, Snapshot, StorageClass};
use crate::model::AccessMode;
use crate::quantity::Quantity;

/// A claim that exists after admission, with its class resolved.
#[derive(Debug, Clone)]
pub struct Admitted<'a> {
    pub claim: Cow<'a, Claim>,
    /// The class after defaulting (`""` = no class).
    pub class: String,
    /// Whether DefaultStorageClass filled the class in.
    pub defaulted: bool,
}

#[derive(Debug, Default)]
pub struct Admission<'a> {
    pub admitted: Vec<Admitted<'a>>,
    pub rejected: Vec<Rejection>,
}

/// Upstream `GetDefaultClass`: among classes annotated as default, the newest
/// wins, then the smallest name. Classes without a timestamp are created now,
/// so they are newer than any class with one.
pub fn default_class(classes: &[StorageClass]) -> Option<&StorageClass> {
    classes.iter().filter(|c| c.is_default).min_by(|a, b| {
        let ta = a.created.unwrap_or(i64::MAX);
        let tb = b.created.unwrap_or(i64::MAX);
        tb.cmp(&ta).then_with(|| a.name.cmp(&b.name))
    })
}

/// Claims must be given in creation order.
pub fn admit<'a>(snapshot: &Snapshot, claims: Vec<Cow<'a, Claim>>) -> Admission<'a> {
    let default = default_class(&snapshot.classes).map(|c| c.name.clone());
    let mut usage: Vec<BTreeMap<QuotaResource, Quantity>> =
        vec![BTreeMap::new(); snapshot.quotas.len()];
    let mut out = Admission::default();

    for claim in claims {
        let (class, defaulted) = match (&claim.class, &default) {
            (ClaimClass::Named(n), _) => (n.clone(), false),
            // Existing bound claims keep an unset class; unbound ones get the
            // default retroactively, as the PV controller does.
            (ClaimClass::Unset, Some(d)) if !(claim.exists() && claim.volume_name.is_some()) => {
                (d.clone(), true)
            }
            (ClaimClass::Unset, _) => (String::new(), false),
        };
        if !claim.exists() {
            if let Some(reason) = reject_reason(snapshot, &claim, &class, &usage) {
                out.rejected.push(Rejection {
                    kind: "PersistentVolumeClaim",
                    object: claim.key.clone(),
                    reason,
                });
                continue;
            }
        }
        charge(snapshot, &claim, &class, &mut usage);
        out.admitted.push(Admitted {
            claim,
            class,
            defaulted,
        });
    }
    out
}

fn reject_reason(
    snapshot: &Snapshot,
    claim: &Claim,
    class: &str,
    usage: &[BTreeMap<QuotaResource, Quantity>],
) -> Option<String> {
    let ns = &claim.key.namespace;
    if snapshot
        .namespaces
        .iter()
        .any(|n| &n.name == ns && n.terminating)
    {
        return Some(format!(
            "unable to create new content in namespace {ns} because it is being terminated"
        ));
    }
    if let Some(problem) = validate(claim) {
        return Some(format!(
            "PersistentVolumeClaim {:?} is invalid: {problem}",
            claim.key.name
        ));
    }
    let request = claim.request?;
    if let Some(msg) = limit_range_violation(snapshot, claim, request) {
        return Some(format!(
            "persistentvolumeclaims {:?} is forbidden: {msg}",
            claim.key.name
        ));
    }
    if let Some(msg) = quota_violation(snapshot, claim, class, request, usage) {
        return Some(format!(
            "persistentvolumeclaims {:?} is forbidden: {msg}",
            claim.key.name
        ));
    }
    None
}

/// The parts of API validation that concern binding.
fn validate(claim: &Claim) -> Option<String> {
    if claim.access_modes.is_empty() {
        return Some("spec.accessModes: Required value: at least 1 access mode is required".into());
    }
    if claim.access_modes.contains(AccessMode::ReadWriteOncePod) && claim.access_modes.len() > 1 {
        return Some(
            "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes"
                .into(),
        );
    }
    match claim.request {
        None => Some("spec.resources[storage]: Required value".into()),
        Some(q) if !q.is_positive() => Some(format!(
            "spec.resources.requests[storage]: Invalid value: \"{q}\": must be greater than zero"
        )),
        Some(_) => None,
    }
}

fn limit_range_violation(snapshot: &Snapshot, claim: &Claim, request: Quantity) -> Option<String> {
    let mut errors = Vec::new();
    for lr in snapshot
        .limit_ranges
        .iter()
        .filter(|lr| lr.key.namespace == claim.key.namespace && lr.seq < claim.seq)
    {
        for (min, max) in &lr.claim_limits {
            if let Some(min) = min {
                if request < *min {
                    errors.push(format!(
                        "minimum storage usage per PersistentVolumeClaim is {min}, but request is {request}"
                    ));
                }
            }
            if let Some(max) = max {
                if request > *max {
                    errors.push(format!(
                        "maximum storage usage per PersistentVolumeClaim is {max}, but request is {request}"
                    ));
                }
            }
        }
    }
    match errors.len() {
        0 => None,
        1 => errors.pop(),
        _ => Some(format!("[{}]", errors.join(", "))),
    }
}

/// What creating this claim adds to quota usage (upstream's PVC evaluator).
fn delta(class: &str, request: Quantity) -> Vec<(QuotaResource, Quantity)> {
    let one = Quantity::from_count(1);
    let mut d = vec![
        (QuotaResource::Claims, one),
        (QuotaResource::RequestsStorage, request),
    ];
    if !class.is_empty() {
        d.push((QuotaResource::ClassClaims(class.to_string()), one));
        d.push((
            QuotaResource::ClassRequestsStorage(class.to_string()),
            request,
        ));
    }
    d
}

fn applies(quota: &ResourceQuota, claim: &Claim) -> bool {
    quota.key.namespace == claim.key.namespace && !quota.scoped && quota.seq < claim.seq
}

fn quota_violation(
    snapshot: &Snapshot,
    claim: &Claim,
    class: &str,
    request: Quantity,
    usage: &[BTreeMap<QuotaResource, Quantity>],
) -> Option<String> {
    let delta = delta(class, request);
    let mut quotas: Vec<(usize, &ResourceQuota)> = snapshot
        .quotas
        .iter()
        .enumerate()
        .filter(|(_, q)| applies(q, claim))
        .collect();
    quotas.sort_by(|a, b| a.1.key.name.cmp(&b.1.key.name));
    for (idx, quota) in quotas {
        let mut requested = Vec::new();
        let mut used = Vec::new();
        let mut limited = Vec::new();
        for (res, hard) in &quota.hard {
            let Some((_, add)) = delta.iter().find(|(r, _)| r == res) else {
                continue;
            };
            let now = usage[idx].get(res).copied().unwrap_or_else(Quantity::zero);
            if now.saturating_add(*add) > *hard {
                requested.push(format!("{res}={add}"));
                used.push(format!("{res}={now}"));
                limited.push(format!("{res}={hard}"));
            }
        }
        if !requested.is_empty() {
            return Some(format!(
                "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                quota.key.name,
                requested.join(","),
                used.join(","),
                limited.join(",")
            ));
        }
    }
    None
}

fn charge(
    snapshot: &Snapshot,
    claim: &Claim,
    class: &str,
    usage: &mut [BTreeMap<QuotaResource, Quantity>],
) {
    let Some(request) = claim.request else {
        return;
    };
    let delta = delta(class, request);
    for (idx, quota) in snapshot.quotas.iter().enumerate() {
        // Existing claims count toward every quota of their namespace.
        let counts = quota.key.namespace == claim.key.namespace
            && !quota.scoped
            && (claim.exists() || quota.seq < claim.seq);
        if !counts {
            continue;
        }
        for (res, add) in &delta {
            if quota.hard.iter().any(|(r, _)| r == res) {
                let entry = usage[idx].entry(res.clone()).or_insert_with(Quantity::zero);
                *entry = entry.saturating_add(*add);
            }
        }
    }
}
