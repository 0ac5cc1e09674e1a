//! Claims that controllers would create: one per StatefulSet replica and
//! `volumeClaimTemplates` entry, named `<template>-<statefulset>-<ordinal>`,
//! and one per generic ephemeral volume of a pod, named `<pod>-<volume>`.
//!
//! A claim of that name that already exists in the input is used as it is,
//! exactly as the StatefulSet and ephemeral-volume controllers do. Generated
//! claims are created right after their owner, so they take its place in
//! creation order.

use rustc_hash::FxHashSet as HashSet;
use std::borrow::Cow;

use super::snapshot::{Claim, ClaimSource, ClaimTemplate, Origin, Snapshot, StatefulSet};
use crate::model::{ClaimKey, ObjectKey};

/// All claims in creation order, and the StatefulSet pods that will use them
/// (not scheduled yet, so they are consumers without a node).
pub struct Expanded<'a> {
    pub claims: Vec<Cow<'a, Claim>>,
    pub set_pods: Vec<SetPod<'a>>,
}

/// A pod a StatefulSet will create: its name, the claims it will use and
/// its set (whose template says what it asks of a node).
pub struct SetPod<'a> {
    pub key: ObjectKey,
    pub ordinal: u32,
    pub claims: Vec<String>,
    pub set: &'a StatefulSet,
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
                let source = ClaimSource::StatefulSet {
                    set: set.key.clone(),
                    ordinal,
                };
                claims.push(Cow::Owned(from_template(
                    key,
                    t,
                    source,
                    &set.origin,
                    set.seq,
                )));
            }
            if !pod_names.contains(&pod) {
                set_pods.push(SetPod {
                    key: pod,
                    ordinal,
                    claims: used,
                    set,
                });
            }
        }
    }
    for pod in &snapshot.pods {
        for t in &pod.ephemeral {
            let key = ClaimKey::new(pod.key.namespace.clone(), t.name.clone());
            if existing.contains(&key) {
                continue;
            }
            let source = ClaimSource::Ephemeral {
                pod: pod.key.clone(),
            };
            claims.push(Cow::Owned(from_template(
                key,
                t,
                source,
                &pod.origin,
                pod.seq,
            )));
        }
    }
    // Stable: generated claims follow every claim written before their set.
    claims.sort_by_key(|c| c.seq);
    Expanded { claims, set_pods }
}

fn from_template(
    key: ClaimKey,
    t: &ClaimTemplate,
    source: ClaimSource,
    origin: &Origin,
    seq: usize,
) -> Claim {
    Claim {
        key,
        uid: None,
        class: t.class.clone(),
        request: t.request,
        access_modes: t.access_modes,
        volume_mode: t.volume_mode,
        selector: t.selector.clone(),
        attributes_class: t.attributes_class.clone(),
        volume_name: None,
        selected_node: None,
        phase: crate::model::ClaimPhase::Pending,
        bind_completed: false,
        deleting: false,
        data_source: None,
        source,
        origin: origin.clone(),
        seq,
    }
}
