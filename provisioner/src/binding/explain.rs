//! `berth explain pvc`: the full reasoning for one claim, in the same words
//! the plan uses — admission, the class, the decision, and every volume the
//! claim was compared with and why it did or did not fit. `berth explain
//! pod`: where berth's scheduling puts a pod without a node, every node with
//! the filter that rejected it, and what became of the pod's claims.

use super::matcher::{ClaimView, mismatches};
use super::plan::{BindHow, Plan};
use super::snapshot::{ClaimClass, ClaimSource, PodVolume, Snapshot};
use super::{Options, run};
use crate::model::{BindingMode, ClaimKey, ObjectKey};
use crate::quantity::Quantity;

/// At most this many volumes are listed one by one.
const MAX_VOLUMES: usize = 50;

/// Lines of explanation, or `None` when no such claim is in the input.
pub fn explain(snapshot: &Snapshot, key: &ClaimKey) -> Option<Vec<String>> {
    let outcome = run(snapshot, &Options::default());
    let plan: &Plan = &outcome.plan;
    let mut out = Vec::new();

    let admitted = outcome.admitted.iter().find(|a| &a.claim.key == key);
    let rejected = plan.rejected.iter().find(|r| &r.object == key);
    let claim = match (admitted, rejected) {
        (Some(a), _) => a.claim.as_ref(),
        (None, Some(r)) => {
            out.push(format!("PersistentVolumeClaim {key}"));
            out.push(format!("  admission: rejected: {}", r.reason));
            return Some(out);
        }
        (None, None) => return None,
    };
    let origin = match &claim.source {
        ClaimSource::Manifest => format!("{}", claim.origin),
        ClaimSource::StatefulSet { set, ordinal } => {
            format!("{} (StatefulSet {set}, replica {ordinal})", claim.origin)
        }
        ClaimSource::Ephemeral { pod } => {
            format!("{} (ephemeral volume of pod {pod})", claim.origin)
        }
    };
    out.push(format!("PersistentVolumeClaim {key}  [{origin}]"));
    let request = claim.request.unwrap_or_else(Quantity::zero);
    out.push(format!(
        "  wants: {request}, access modes {}, volumeMode {}{}{}",
        claim.access_modes,
        claim.volume_mode,
        claim
            .selector
            .as_ref()
            .map(|s| format!(", selector {s}"))
            .unwrap_or_default(),
        claim
            .volume_name
            .as_ref()
            .map(|v| format!(", spec.volumeName {v}"))
            .unwrap_or_default(),
    ));
    let Some(a) = admitted else {
        return Some(out);
    };
    let written = match &claim.class {
        ClaimClass::Unset => "unset".to_string(),
        ClaimClass::Named(n) => format!("{n:?}"),
    };
    if a.defaulted {
        out.push(format!(
            "  admission: storageClassName {written} -> {:?} (DefaultStorageClass)",
            a.class
        ));
    } else if claim.exists() {
        out.push("  admission: already exists (has a uid); counted toward quota only".into());
    } else {
        out.push(format!("  admission: admitted; storageClassName {written}"));
    }
    match snapshot.classes.iter().find(|c| c.name == a.class) {
        Some(c) => out.push(format!(
            "  class {:?}: provisioner {}, volumeBindingMode {}, reclaimPolicy {}",
            c.name,
            c.provisioner,
            match c.binding_mode {
                BindingMode::Immediate => "Immediate",
                BindingMode::WaitForFirstConsumer => "WaitForFirstConsumer",
            },
            c.reclaim_policy
        )),
        None if a.class.is_empty() => out.push("  class: none (\"\")".into()),
        None => out.push(format!("  class {:?}: not found", a.class)),
    }

    if let Some(b) = plan.bindings.iter().find(|b| &b.claim == key) {
        let how = match &b.how {
            BindHow::AlreadyBound => "already bound".to_string(),
            BindHow::VolumeName => "named by spec.volumeName".to_string(),
            BindHow::PreBound => "reserved for it by the volume's claimRef".to_string(),
            BindHow::Matched => "smallest matching volume (PV controller)".to_string(),
            BindHow::Scheduler { node } => {
                format!("smallest matching volume on node {node} (scheduler)")
            }
        };
        out.push(format!("  decision: Bound to {} ({how})", b.volume));
    } else if let Some(p) = plan.provisioning.iter().find(|p| &p.claim == key) {
        out.push(format!(
            "  decision: provisioned by {} from class {:?}{}",
            p.provisioner,
            p.class,
            match (&p.node, &p.placement) {
                (Some(n), Some(pl)) => format!(" on node {n} ({pl})"),
                (Some(n), None) => format!(" on node {n}"),
                (None, _) => String::new(),
            }
        ));
        if let Some(q) = p.rounded_up {
            out.push(format!(
                "  size: {q}, not the {} requested: its file system's minimum",
                p.request
            ));
        }
    } else if let Some(p) = plan.pending.iter().find(|p| &p.claim == key) {
        out.push(format!("  decision: Pending: {}", p.reason));
    }

    let view = ClaimView::of(a);
    let mut rows: Vec<(usize, String)> = snapshot
        .volumes
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let problems = mismatches(
                v,
                &outcome.states[i],
                outcome.taken[i].map(|b| &plan.bindings[b as usize].claim),
                &view,
                None,
            );
            let text = if problems.is_empty() {
                format!(
                    "{} ({}): fits",
                    v.name,
                    v.capacity.unwrap_or_else(Quantity::zero)
                )
            } else {
                let p: Vec<String> = problems.iter().map(|m| m.to_string()).collect();
                format!("{}: {}", v.name, p.join("; "))
            };
            (problems.len(), text)
        })
        .collect();
    rows.sort();
    out.push(format!("  volumes compared: {}", rows.len()));
    let shown = rows.len().min(MAX_VOLUMES);
    for (_, text) in &rows[..shown] {
        out.push(format!("    {text}"));
    }
    if rows.len() > shown {
        out.push(format!("    ... {} more", rows.len() - shown));
    }
    Some(out)
}

/// The reasoning for one pod: where berth's scheduling put it (or why
/// nowhere), each node with the filter that rejected it, and what became
/// of its claims. `None` when the pod is not in the snapshot.
pub fn explain_pod(snapshot: &Snapshot, key: &ObjectKey) -> Option<Vec<String>> {
    let pod = snapshot.pods.iter().find(|p| &p.key == key)?;
    let options = Options {
        node_verdicts: true,
        ..Options::default()
    };
    let plan = run(snapshot, &options).plan;
    let mut out = vec![format!("Pod {key}")];
    if let Some(node) = &pod.node_name {
        out.push(format!(
            "  on node {node} (spec.nodeName): already scheduled, berth does not place it"
        ));
    } else if pod.terminated {
        out.push("  finished (Succeeded or Failed): holds no node and no volumes".into());
    } else if let Some(s) = plan.scheduling.iter().find(|s| &s.pod == key) {
        let total = snapshot.nodes.len();
        match (&s.node, &s.reason) {
            (Some(node), _) => out.push(format!(
                "  scheduled to node {node} by berth: {} of {total} nodes pass every filter; the one running the fewest pods wins, ties by name (the scheduler's scoring may pick another feasible node)",
                s.feasible_nodes
            )),
            (None, Some(reason)) => out.push(format!("  unschedulable: {reason}")),
            (None, None) => out.push("  unschedulable".into()),
        }
        let mut names: Vec<&str> = snapshot.nodes.iter().map(|n| n.name.as_str()).collect();
        names.sort_unstable();
        if !names.is_empty() {
            out.push("  nodes:".into());
        }
        for name in names {
            match s.rejected.iter().find(|v| v.node == name) {
                Some(v) => out.push(format!(
                    "    {name}: rejected by {}: {}",
                    v.filter,
                    v.reasons.join(", ")
                )),
                None => out.push(format!("    {name}: passes every filter")),
            }
        }
    }
    let claims: Vec<&str> = pod
        .volumes
        .iter()
        .filter_map(|v| match v {
            PodVolume::Claim(name) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    if !claims.is_empty() {
        out.push("  claims:".into());
    }
    for name in claims {
        let ck = ClaimKey::new(key.namespace.clone(), name.to_string());
        let line = if let Some(b) = plan.bindings.iter().find(|b| b.claim == ck) {
            format!("bound to volume {}", b.volume)
        } else if let Some(p) = plan.provisioning.iter().find(|p| p.claim == ck) {
            match &p.node {
                Some(n) => format!("provisioned by {} on node {n}", p.provisioner),
                None => format!("provisioned by {}", p.provisioner),
            }
        } else if let Some(p) = plan.pending.iter().find(|p| p.claim == ck) {
            format!("pending: {}", p.reason)
        } else if let Some(r) = plan.rejected.iter().find(|r| r.object == ck) {
            format!("rejected: {}", r.reason)
        } else {
            "not in the input".to_string()
        };
        out.push(format!("    {name}: {line}"));
    }
    Some(out)
}
