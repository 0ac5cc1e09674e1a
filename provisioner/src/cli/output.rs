//! Rendering a plan: the stable JSON/YAML contract and the human table.
//!
//! The JSON keys `bindings`, `provisioning`, `pending`, `rejected`,
//! `reclaim`, `violations`, `warnings` and `scheduling` and their fields
//! never change; new keys may be added.

use std::fmt::Display;
use std::io::Write;

use serde::{Serialize, Serializer};

use super::table::Table;
use crate::binding::{BindHow, Content, Plan};

#[derive(Serialize)]
struct PlanDoc<'a> {
    bindings: Vec<BindingDoc<'a>>,
    provisioning: Vec<ProvisioningDoc<'a>>,
    pending: Vec<PendingDoc<'a>>,
    rejected: Vec<RejectedDoc<'a>>,
    reclaim: Vec<ReclaimDoc<'a>>,
    violations: Vec<ViolationDoc<'a>>,
    warnings: &'a [String],
    scheduling: Vec<SchedulingDoc<'a>>,
}

/// A pod without a node: where berth's scheduling put it, or why nowhere.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SchedulingDoc<'a> {
    pod: Shown<'a>,
    node: Option<&'a str>,
    feasible_nodes: usize,
    reason: Option<&'a str>,
}

#[derive(Serialize)]
struct BindingDoc<'a> {
    claim: Shown<'a>,
    volume: &'a str,
    how: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProvisioningDoc<'a> {
    claim: Shown<'a>,
    storage_class: &'a str,
    provisioner: &'a str,
    node: Option<&'a str>,
    request: String,
    /// Present when berth's placement chose `node` (Immediate claims of a
    /// node-local provisioner).
    #[serde(skip_serializing_if = "Option::is_none")]
    placement: Option<PlacementDoc>,
    /// The size the volume gets when the request is below its file
    /// system's minimum.
    #[serde(skip_serializing_if = "Option::is_none")]
    rounded_up_to: Option<String>,
    /// What the volume is made from, for a claim with a data source.
    #[serde(skip_serializing_if = "Option::is_none")]
    data_source: Option<DataSourceDoc<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DataSourceDoc<'a> {
    kind: &'static str,
    name: &'a str,
    /// The source claim's PV (clones) or the snapshot's source PV, if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    volume: Option<&'a str>,
    /// The CSI volume or snapshot id CreateVolume is given.
    handle: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlacementDoc {
    /// Free storage on the node before this claim (absent without storage
    /// capacity tracking).
    #[serde(skip_serializing_if = "Option::is_none")]
    free_storage: Option<String>,
    feasible_nodes: usize,
}

#[derive(Serialize)]
struct PendingDoc<'a> {
    claim: Shown<'a>,
    reason: Shown<'a>,
    candidates: Vec<Shown<'a>>,
}

#[derive(Serialize)]
struct RejectedDoc<'a> {
    kind: &'a str,
    object: Shown<'a>,
    reason: &'a str,
}

#[derive(Serialize)]
struct ReclaimDoc<'a> {
    volume: &'a str,
    policy: &'a str,
    action: &'static str,
    reason: &'a str,
}

#[derive(Serialize)]
struct ViolationDoc<'a> {
    node: &'a str,
    driver: &'a str,
    limit: u32,
    count: u32,
}

/// A value serialized as the string its `Display` writes, without
/// allocating that string.
struct Shown<'a>(&'a dyn Display);

impl Serialize for Shown<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self.0)
    }
}

fn how(h: &BindHow) -> &'static str {
    match h {
        BindHow::AlreadyBound => "already-bound",
        BindHow::VolumeName => "volume-name",
        BindHow::PreBound => "pre-bound",
        BindHow::Matched => "matched",
        BindHow::Scheduler { .. } => "scheduler",
    }
}

fn doc(plan: &Plan) -> PlanDoc<'_> {
    PlanDoc {
        bindings: plan
            .bindings
            .iter()
            .map(|b| BindingDoc {
                claim: Shown(&b.claim),
                volume: &b.volume,
                how: how(&b.how),
            })
            .collect(),
        provisioning: plan
            .provisioning
            .iter()
            .map(|p| ProvisioningDoc {
                claim: Shown(&p.claim),
                storage_class: &p.class,
                provisioner: &p.provisioner,
                node: p.node.as_deref(),
                request: p.request.to_string(),
                placement: p.placement.as_ref().map(|pl| PlacementDoc {
                    free_storage: pl.free.map(|q| q.to_string()),
                    feasible_nodes: pl.feasible,
                }),
                rounded_up_to: p.rounded_up.map(|q| q.to_string()),
                data_source: p.content.as_ref().map(|c| match c {
                    Content::Clone {
                        claim,
                        volume,
                        handle,
                    } => DataSourceDoc {
                        kind: "PersistentVolumeClaim",
                        name: claim,
                        volume: Some(volume),
                        handle,
                    },
                    Content::Restore {
                        snapshot,
                        handle,
                        volume,
                    } => DataSourceDoc {
                        kind: "VolumeSnapshot",
                        name: snapshot,
                        volume: volume.as_deref(),
                        handle,
                    },
                }),
            })
            .collect(),
        pending: plan
            .pending
            .iter()
            .map(|p| PendingDoc {
                claim: Shown(&p.claim),
                reason: Shown(&p.reason),
                candidates: p.candidates.iter().map(|c| Shown(c)).collect(),
            })
            .collect(),
        rejected: plan
            .rejected
            .iter()
            .map(|r| RejectedDoc {
                kind: r.kind,
                object: Shown(&r.object),
                reason: &r.reason,
            })
            .collect(),
        reclaim: plan
            .reclaim
            .iter()
            .map(|r| ReclaimDoc {
                volume: &r.volume,
                policy: r.policy.as_str(),
                action: r.action.as_str(),
                reason: &r.reason,
            })
            .collect(),
        violations: plan
            .violations
            .iter()
            .map(|v| ViolationDoc {
                node: &v.node,
                driver: &v.driver,
                limit: v.limit,
                count: v.count,
            })
            .collect(),
        warnings: &plan.warnings,
        scheduling: plan
            .scheduling
            .iter()
            .map(|p| SchedulingDoc {
                pod: Shown(&p.pod),
                node: p.node.as_deref(),
                feasible_nodes: p.feasible_nodes,
                reason: p.reason.as_deref(),
            })
            .collect(),
    }
}

/// Writes the plan as one pretty-printed JSON object and a newline, as it
/// is serialized: no copy of the whole text is held in memory. Serializing
/// plain strings and numbers cannot fail, so an error is `out`'s.
pub fn write_json(plan: &Plan, out: &mut impl Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &doc(plan))?;
    out.write_all(b"\n")
}

pub fn to_yaml(plan: &Plan) -> String {
    serde_saphyr::to_string(&doc(plan)).unwrap_or_else(|e| format!("error: {e}\n"))
}

pub fn to_table(plan: &Plan) -> String {
    let mut rows: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    for b in &plan.bindings {
        let detail = match &b.how {
            BindHow::Scheduler { node } => format!("matched for node {node}"),
            other => how(other).replace('-', " "),
        };
        rows.push((
            b.claim.to_string(),
            vec!["Bound".into(), b.volume.clone(), detail],
            vec![],
        ));
    }
    for p in &plan.provisioning {
        let node = match (&p.node, &p.placement) {
            (Some(n), Some(pl)) => format!(" on node {n} ({pl})"),
            (Some(n), None) => format!(" on node {n}"),
            (None, _) => String::new(),
        };
        let rounded = p
            .rounded_up
            .map(|q| format!(" (rounded up to {q}, its file system's minimum)"))
            .unwrap_or_default();
        let content = p
            .content
            .as_ref()
            .map(|c| format!(", {c}"))
            .unwrap_or_default();
        rows.push((
            p.claim.to_string(),
            vec![
                "Provision".into(),
                format!("{} ({})", p.provisioner, p.class),
                format!("{}{rounded}{node}{content}", p.request),
            ],
            vec![],
        ));
    }
    for p in &plan.pending {
        rows.push((
            p.claim.to_string(),
            vec!["Pending".into(), "-".into(), p.reason.to_string()],
            p.candidates
                .iter()
                .map(|c| format!("nearly: {c}"))
                .collect(),
        ));
    }
    for r in &plan.rejected {
        rows.push((
            r.object.to_string(),
            vec!["Rejected".into(), "-".into(), r.reason.clone()],
            vec![],
        ));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut claims = Table::new(&["CLAIM", "STATUS", "VOLUME", "DETAIL"]);
    for (claim, cells, extra) in rows {
        let mut row = vec![claim];
        row.extend(cells);
        claims.row(row);
        for e in extra {
            claims.row(vec![String::new(), String::new(), String::new(), e]);
        }
    }
    let mut out = String::new();
    if claims.is_empty() {
        out.push_str("No claims.\n");
    } else {
        out.push_str(&claims.render());
    }
    if !plan.reclaim.is_empty() {
        let mut t = Table::new(&["RELEASED VOLUME", "POLICY", "ACTION", "REASON"]);
        for r in &plan.reclaim {
            t.row(vec![
                r.volume.clone(),
                r.policy.to_string(),
                r.action.as_str().into(),
                r.reason.clone(),
            ]);
        }
        out.push('\n');
        out.push_str(&t.render());
    }
    if !plan.violations.is_empty() {
        let mut t = Table::new(&["NODE", "DRIVER", "VOLUMES", "LIMIT"]);
        for v in &plan.violations {
            t.row(vec![
                v.node.clone(),
                v.driver.clone(),
                v.count.to_string(),
                v.limit.to_string(),
            ]);
        }
        out.push_str("\nNodes over their volume limit:\n");
        out.push_str(&t.render());
    }
    if !plan.scheduling.is_empty() {
        let mut t = Table::new(&["POD", "NODE", "FEASIBLE", "REASON"]);
        for p in &plan.scheduling {
            t.row(vec![
                p.pod.to_string(),
                p.node.clone().unwrap_or_else(|| "-".into()),
                p.feasible_nodes.to_string(),
                p.reason.clone().unwrap_or_default(),
            ]);
        }
        out.push_str("\nPods without a node (berth's scheduling):\n");
        out.push_str(&t.render());
    }
    if !plan.warnings.is_empty() {
        out.push_str("\nWarnings:\n");
        for w in &plan.warnings {
            out.push_str(&format!("  - {w}\n"));
        }
    }
    out
}
