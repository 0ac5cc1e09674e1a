//! What the scheduler reads from Nodes and Pods, typed at the edge: a
//! node's cordon, taints and allocatable resources; a pod's node selector,
//! required node affinity, tolerations, effective resource requests, and
//! whether it requires inter-pod affinity (which berth does not evaluate).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::convert::{Ctx, InputError, node_selector};
use super::names;
use crate::binding::snapshot::{
    InterPodAffinity, PodScheduling, Resources, Taint, TaintEffect, Toleration,
};
use crate::quantity::Quantity;

/// A Node's `spec.unschedulable`, `spec.taints` and `status.allocatable`.
pub(super) fn node(
    ctx: &Ctx<'_>,
    o: &core::Node,
) -> Result<(bool, Vec<Taint>, Option<Resources>), InputError> {
    let spec = o.spec.clone().unwrap_or_default();
    let mut taints = Vec::new();
    for (i, t) in spec.taints.iter().flatten().enumerate() {
        let field = format!("spec.taints[{i}].effect");
        let effect = match effect(&t.effect) {
            Some(e) => e,
            None => return Err(ctx.err(field, unsupported_effect(&t.effect))),
        };
        taints.push(Taint {
            key: t.key.clone(),
            value: t.value.clone().unwrap_or_default(),
            effect,
        });
    }
    let allocatable = match o.status.as_ref().and_then(|s| s.allocatable.as_ref()) {
        Some(a) => Some(resources(ctx, "status.allocatable", a, true)?),
        None => None,
    };
    Ok((spec.unschedulable.unwrap_or(false), taints, allocatable))
}

/// A pod's scheduling constraints and effective requests; `at` is where
/// the pod spec sits in its object (`spec`, `spec.template.spec`).
pub(super) fn pod(
    ctx: &Ctx<'_>,
    at: &str,
    spec: &core::PodSpec,
) -> Result<PodScheduling, InputError> {
    let node_affinity = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref());
    let affinity = match node_affinity.and_then(|n| {
        n.required_during_scheduling_ignored_during_execution
            .as_ref()
    }) {
        Some(sel) => Some(node_selector(
            ctx,
            &format!("{at}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"),
            &without_unparsable_terms(sel),
        )?),
        None => None,
    };
    let required =
        |terms: Option<&Vec<core::PodAffinityTerm>>| terms.is_some_and(|t| !t.is_empty());
    let inter_pod = InterPodAffinity {
        affinity: required(
            spec.affinity
                .as_ref()
                .and_then(|a| a.pod_affinity.as_ref())
                .and_then(|p| {
                    p.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
        ),
        anti_affinity: required(
            spec.affinity
                .as_ref()
                .and_then(|a| a.pod_anti_affinity.as_ref())
                .and_then(|p| {
                    p.required_during_scheduling_ignored_during_execution
                        .as_ref()
                }),
        ),
    };
    let mut tolerations = Vec::new();
    for (i, t) in spec.tolerations.iter().flatten().enumerate() {
        let effect = match t.effect.as_deref() {
            None | Some("") => None,
            Some(e) => match effect(e) {
                Some(e) => Some(e),
                None => {
                    return Err(ctx.err(
                        format!("{at}.tolerations[{i}].effect"),
                        unsupported_effect(e),
                    ));
                }
            },
        };
        let exists = match t.operator.as_deref() {
            None | Some("") | Some("Equal") => false,
            Some("Exists") => true,
            // TaintTolerationComparisonOperators is alpha and off in v1.36:
            // the API server refuses these, naming all four operators.
            Some(op @ ("Lt" | "Gt")) => {
                return Err(ctx.err(
                    format!("{at}.tolerations[{i}].operator"),
                    format!(
                        "Unsupported value: {op:?}: supported values: \"Equal\", \"Exists\", \"Lt\", \"Gt\""
                    ),
                ));
            }
            Some(other) => {
                return Err(ctx.err(
                    format!("{at}.tolerations[{i}].operator"),
                    format!(
                        "Unsupported value: {other:?}: supported values: \"Equal\", \"Exists\""
                    ),
                ));
            }
        };
        tolerations.push(Toleration {
            key: t.key.clone().unwrap_or_default(),
            exists,
            value: t.value.clone().unwrap_or_default(),
            effect,
        });
    }
    Ok(PodScheduling {
        node_selector: spec.node_selector.clone().unwrap_or_default(),
        affinity,
        tolerations,
        requests: requests(ctx, at, spec)?,
        inter_pod,
    })
}

/// The pod's required node affinity with every term the scheduler cannot
/// parse emptied: upstream's `LazyErrorNodeSelector` never matches such a
/// term, while the other terms still count. These are mistakes the API
/// server lets through (a non-integer `Gt`/`Lt` value) or let through
/// before it checked them (label values, kept valid on pods that had them:
/// `AllowInvalidLabelValueInRequiredNodeAffinity`). Mistakes it always
/// refuses (an unknown operator or field, `Gt` with several values) stay
/// input errors, reported by `node_selector`.
fn without_unparsable_terms(sel: &core::NodeSelector) -> core::NodeSelector {
    let mut sel = sel.clone();
    for term in &mut sel.node_selector_terms {
        if !parses(term) {
            *term = core::NodeSelectorTerm::default();
        }
    }
    sel
}

/// Whether upstream's `newNodeSelectorTerm` parses the term without error
/// (labels' `NewRequirement`; the field selector's single value). Unknown
/// operators and fields count as parsing here: `node_selector` refuses them.
fn parses(term: &core::NodeSelectorTerm) -> bool {
    let expressions = term.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let shape = match e.operator.as_str() {
            "In" | "NotIn" => !values.is_empty(),
            "Exists" | "DoesNotExist" => values.is_empty(),
            "Gt" | "Lt" => values.len() != 1 || values[0].parse::<i64>().is_ok(),
            _ => true,
        };
        shape
            && names::label_key(&e.key).is_empty()
            && values.iter().all(|v| names::label_value(v).is_empty())
    });
    let fields = term.match_fields.iter().flatten().all(|e| {
        !matches!(e.operator.as_str(), "In" | "NotIn")
            || e.values.as_ref().is_some_and(|v| v.len() == 1)
    });
    expressions && fields
}

fn effect(s: &str) -> Option<TaintEffect> {
    match s {
        "NoSchedule" => Some(TaintEffect::NoSchedule),
        "PreferNoSchedule" => Some(TaintEffect::PreferNoSchedule),
        "NoExecute" => Some(TaintEffect::NoExecute),
        _ => None,
    }
}

fn unsupported_effect(s: &str) -> String {
    format!(
        "Unsupported value: {s:?}: supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""
    )
}

/// Upstream `PodRequests`: the app containers' sum, raised to the largest
/// init container (each counted with the sidecars started before it),
/// sidecars added to the sum, plus the pod's overhead.
fn requests(ctx: &Ctx<'_>, at: &str, spec: &core::PodSpec) -> Result<Resources, InputError> {
    let mut sum = Resources::default();
    for (i, c) in spec.containers.iter().enumerate() {
        sum.add(&container(ctx, &format!("{at}.containers[{i}]"), c)?);
    }
    let mut sidecars = Resources::default();
    let mut init = Resources::default();
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let mut r = container(ctx, &format!("{at}.initContainers[{i}]"), c)?;
        if c.restart_policy.as_deref() == Some("Always") {
            sum.add(&r);
            sidecars.add(&r);
            r = sidecars;
        } else {
            r.add(&sidecars);
        }
        init.max(&r);
    }
    sum.max(&init);
    if let Some(o) = &spec.overhead {
        sum.add(&resources(ctx, &format!("{at}.overhead"), o, false)?);
    }
    Ok(sum)
}

/// A container's requests; a resource with a limit and no request requests
/// its limit (the API server's defaulting).
fn container(ctx: &Ctx<'_>, field: &str, c: &core::Container) -> Result<Resources, InputError> {
    let Some(r) = &c.resources else {
        return Ok(Resources::default());
    };
    let mut merged: BTreeMap<String, ApiQuantity> = r.limits.clone().unwrap_or_default();
    merged.extend(r.requests.clone().unwrap_or_default());
    resources(ctx, &format!("{field}.resources.requests"), &merged, false)
}

fn resources(
    ctx: &Ctx<'_>,
    field: &str,
    list: &BTreeMap<String, ApiQuantity>,
    with_pods: bool,
) -> Result<Resources, InputError> {
    let q = |name: &str| -> Result<Option<Quantity>, InputError> {
        list.get(name)
            .map(|v| ctx.quantity(&format!("{field}.{name}"), &v.0))
            .transpose()
    };
    let milli = |q: Quantity| -> i64 {
        // MilliValue rounds up, as the scheduler's does.
        let nanos = q.as_nanos();
        let m = nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0);
        i64::try_from(m).unwrap_or(i64::MAX)
    };
    Ok(Resources {
        milli_cpu: q("cpu")?.map(milli).unwrap_or(0),
        memory: q("memory")?.map(|q| q.value_ceil()).unwrap_or(0),
        ephemeral_storage: q("ephemeral-storage")?.map(|q| q.value_ceil()).unwrap_or(0),
        pods: if with_pods {
            q("pods")?
                .map(|q| i64::try_from(q.value_ceil()).unwrap_or(i64::MAX))
                .unwrap_or(0)
        } else {
            0
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str, op: &str, values: &[&str]) -> core::NodeSelectorRequirement {
        core::NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn terms_the_scheduler_cannot_parse_are_the_ones_it_never_matches() {
        let expr = |r| core::NodeSelectorTerm {
            match_expressions: Some(vec![r]),
            match_fields: None,
        };
        let field = |r| core::NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![r]),
        };
        let cases = [
            (expr(req("zone", "In", &["a", "b"])), true),
            (expr(req("kernel", "Gt", &["0204"])), true),
            (expr(req("GPU", "Exists", &[])), true),
            (field(req("metadata.name", "In", &["n1"])), true),
            // Left to node_selector, which refuses them as the API server does.
            (expr(req("zone", "Near", &["a"])), true),
            (expr(req("kernel", "Gt", &["1", "2"])), true),
            // Never matched by the scheduler.
            (
                expr(req("foo", "NotIn", &["invalid value: ___@#$%^"])),
                false,
            ),
            (expr(req("kernel", "Gt", &["new"])), false),
            (expr(req("kernel", "Lt", &["-1"])), false),
            (expr(req("zone", "In", &[])), false),
            (expr(req("zone", "NotIn", &[])), false),
            (expr(req("zone", "Exists", &["a"])), false),
            (expr(req("bad key!", "Exists", &[])), false),
            (field(req("metadata.name", "In", &["n1", "n2"])), false),
            (field(req("metadata.name", "NotIn", &[])), false),
        ];
        for (term, want) in cases {
            assert_eq!(parses(&term), want, "{term:?}");
        }
    }
}
