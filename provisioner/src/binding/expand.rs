//! Claims that controllers would create: one per StatefulSet replica and
//! `volumeClaimTemplates` entry, named `<template>-<statefulset>-<ordinal>`.
//!
//! A claim of that name that already exists in the input is used as it is,
//! exactly as the StatefulSet controller does. Generated claims are created
//! right after their StatefulSet, so they take its place in creation order.

use std::borrow::Cow;
use std::collections::HashSet;

use super::snapshot::{Claim, ClaimSource, Snapshot};
use crate::model::{ClaimKey, ObjectKey};

/// All claims in creation order, and the StatefulSet pods that will use them
/// (not scheduled yet, so they are consumers without a node).
pub struct Expanded<'a> {
    pub claims: Vec<Cow<'a, Claim>>,
    pub set_pods: Vec<(ObjectKey, Vec<String>)>,
}

pub fn expand(snapshot: &Snapshot) -> Expanded<'_> {
    let existing: HashSet<&ClaimKey> = snapshot.claims.iter().map(|c| &c.key).collect();
    let pod_names: HashSet<&ObjectKey> = snapshot.pods.iter().map(|p| &p.key).collect();
    let mut claims: Vec<Cow<'_, Claim>> = snapshot.claims.iter().map(Cow::Borrowed).collect();
    let mut set_pods = Vec::new();
    for set in &snapshot.stateful_sets {
        for ordinal in 0..set.replicas {
            let pod = ObjectKey::new(
                set.key.namespace.clone(),
                format!("{}-{ordinal}", set.key.name),
            );
            let mut used = Vec::new();
            for t in &set.templates {
                let name = format!("{}-{}-{ordinal}", t.name, set.key.name);
                let key = ClaimKey::new(set.key.namespace.clone(), name.clone());
                used.push(name);
                if existing.contains(&key) {
                    continue;
                }
                claims.push(Cow::Owned(Claim {
                    key,
                    uid: None,
                    class: t.class.clone(),
                    request: t.request,
                    access_modes: t.access_modes,
                    volume_mode: t.volume_mode,
                    selector: t.selector.clone(),
                    volume_name: None,
                    selected_node: None,
                    bound_phase: false,
                    deleting: false,
                    source: ClaimSource::StatefulSet {
                        set: set.key.clone(),
                        ordinal,
                    },
                    origin: set.origin.clone(),
                    seq: set.seq,
                }));
            }
            if !pod_names.contains(&pod) {
                set_pods.push((pod, used));
            }
        }
    }
    // Stable: generated claims follow every claim written before their set.
    claims.sort_by_key(|c| c.seq);
    Expanded { claims, set_pods }
}
