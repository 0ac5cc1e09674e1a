//! Admission of PersistentVolumeClaims, as the API server would apply it to
//! claims created now, in creation order: NamespaceLifecycle, DefaultStorageClass
//! (mutating), object validation, then LimitRanger and ResourceQuota (validating).
//!
//! Claims that already exist (they carry a uid) are not admitted again: they
//! only count toward quota usage. A rejected claim takes no quota.
//! LimitRanges and ResourceQuotas constrain only claims created after them.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

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

/// What constrains claims in one namespace (indexes into the snapshot).
#[derive(Default)]
struct NamespacePolicy {
    terminating: bool,
    limit_ranges: Vec<usize>,
    /// Sorted by quota name: the first exceeded quota is reported.
    quotas: Vec<usize>,
}

fn policies(snapshot: &Snapshot) -> FxHashMap<&str, NamespacePolicy> {
    let mut map: FxHashMap<&str, NamespacePolicy> = FxHashMap::default();
    for n in snapshot.namespaces.iter().filter(|n| n.terminating) {
        map.entry(n.name.as_str()).or_default().terminating = true;
    }
    for (i, lr) in snapshot.limit_ranges.iter().enumerate() {
        map.entry(lr.key.namespace.as_str())
            .or_default()
            .limit_ranges
            .push(i);
    }
    for (i, q) in snapshot.quotas.iter().enumerate() {
        map.entry(q.key.namespace.as_str())
            .or_default()
            .quotas
            .push(i);
    }
    for p in map.values_mut() {
        p.quotas.sort_by(|&a, &b| {
            snapshot.quotas[a]
                .key
                .name
                .cmp(&snapshot.quotas[b].key.name)
        });
    }
    map
}

/// Claims must be given in creation order.
pub fn admit<'a>(snapshot: &Snapshot, claims: Vec<Cow<'a, Claim>>) -> Admission<'a> {
    let default = default_class(&snapshot.classes).map(|c| c.name.clone());
    let policies = policies(snapshot);
    let none = NamespacePolicy::default();
    let mut usage: Vec<BTreeMap<QuotaResource, Quantity>> =
        vec![BTreeMap::new(); snapshot.quotas.len()];
    // Reserved: an admitted claim is large, and moving them all on every
    // doubling shows in a 100k plan.
    let mut out = Admission {
        admitted: Vec::with_capacity(claims.len()),
        rejected: Vec::new(),
    };

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
        let policy = policies.get(claim.key.namespace.as_str()).unwrap_or(&none);
        if !claim.exists() {
            if let Some(reason) = reject_reason(snapshot, policy, &claim, &class, &usage) {
                out.rejected.push(Rejection {
                    kind: "PersistentVolumeClaim",
                    object: claim.key.clone(),
                    reason,
                });
                continue;
            }
        }
        charge(snapshot, policy, &claim, &class, &mut usage);
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
    policy: &NamespacePolicy,
    claim: &Claim,
    class: &str,
    usage: &[BTreeMap<QuotaResource, Quantity>],
) -> Option<String> {
    let ns = &claim.key.namespace;
    if policy.terminating {
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
    if let Some(msg) = limit_range_violation(snapshot, policy, claim, request) {
        return Some(format!(
            "persistentvolumeclaims {:?} is forbidden: {msg}",
            claim.key.name
        ));
    }
    if let Some(msg) = quota_violation(snapshot, policy, claim, class, request, usage) {
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

fn limit_range_violation(
    snapshot: &Snapshot,
    policy: &NamespacePolicy,
    claim: &Claim,
    request: Quantity,
) -> Option<String> {
    let mut errors = Vec::new();
    for lr in policy
        .limit_ranges
        .iter()
        .map(|&i| &snapshot.limit_ranges[i])
        .filter(|lr| lr.seq < claim.seq)
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
    policy: &NamespacePolicy,
    claim: &Claim,
    class: &str,
    request: Quantity,
    usage: &[BTreeMap<QuotaResource, Quantity>],
) -> Option<String> {
    if policy.quotas.is_empty() {
        return None;
    }
    let delta = delta(class, request);
    for (idx, quota) in policy
        .quotas
        .iter()
        .map(|&i| (i, &snapshot.quotas[i]))
        .filter(|(_, q)| applies(q, claim))
    {
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
    policy: &NamespacePolicy,
    claim: &Claim,
    class: &str,
    usage: &mut [BTreeMap<QuotaResource, Quantity>],
) {
    let Some(request) = claim.request else {
        return;
    };
    if policy.quotas.is_empty() {
        return;
    }
    let delta = delta(class, request);
    for &idx in &policy.quotas {
        let quota = &snapshot.quotas[idx];
        // Existing claims count toward every quota of their namespace.
        let counts = !quota.scoped && (claim.exists() || quota.seq < claim.seq);
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
