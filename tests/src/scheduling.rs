//! Builders and readers shared by the scheduling suites
//! (`scheduling_rules.rs`, `upstream_scheduler_filters.rs`): Nodes with
//! labels, taints and allocatable resources, pods without a node, and what
//! berth decided for each pod and each node.
//!
//! Label keys and values are written as JSON strings, which YAML reads
//! verbatim, so values such as `0206` or `true` stay strings.

use berth::binding::{Options, Plan, plan_with};

fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// A Node; `spec` and `status` are YAML indented by two spaces, placed
/// under `spec:` and `status:` (either may be empty).
pub fn node(name: &str, labels: &[(&str, &str)], spec: &str, status: &str) -> String {
    let mut o = format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {}\n",
        q(name)
    );
    if !labels.is_empty() {
        o.push_str("  labels:\n");
        for (k, v) in labels {
            o.push_str(&format!("    {}: {}\n", q(k), q(v)));
        }
    }
    format!("{o}spec:\n{spec}\nstatus:\n{status}\n---\n")
}

/// `spec.taints` lines for [`node`]: (key, value, effect), value `""`
/// left out.
pub fn taints(list: &[(&str, &str, &str)]) -> String {
    let mut o = String::from("  taints:\n");
    for (k, v, effect) in list {
        o.push_str(&format!("  - key: {}\n    effect: {effect}\n", q(k)));
        if !v.is_empty() {
            o.push_str(&format!("    value: {}\n", q(v)));
        }
    }
    o
}

/// One toleration; `""` leaves a field out (no operator is `Equal`, no
/// effect tolerates every effect).
#[derive(Clone, Copy)]
pub struct Tol<'a> {
    pub key: &'a str,
    pub operator: &'a str,
    pub value: &'a str,
    pub effect: &'a str,
}

/// `spec.tolerations` lines for [`pod`].
pub fn tolerations(list: &[Tol<'_>]) -> String {
    let mut o = String::from("  tolerations:\n");
    for t in list {
        let mut first = true;
        for (field, v) in [
            ("key", t.key),
            ("operator", t.operator),
            ("value", t.value),
            ("effect", t.effect),
        ] {
            if v.is_empty() {
                continue;
            }
            o.push_str(if first { "  - " } else { "    " });
            o.push_str(&format!("{field}: {}\n", q(v)));
            first = false;
        }
        if first {
            o.push_str("  - {}\n");
        }
    }
    o
}

/// `spec.nodeSelector` lines for [`pod`].
pub fn node_selector(pairs: &[(&str, &str)]) -> String {
    let mut o = String::from("  nodeSelector:\n");
    for (k, v) in pairs {
        o.push_str(&format!("    {}: {}\n", q(k), q(v)));
    }
    o
}

/// A pod in `default` without a node, using `claims`; `spec` is YAML
/// indented by two spaces, placed under `spec:`.
pub fn pod(name: &str, claims: &[&str], spec: &str) -> String {
    let vols: String = claims
        .iter()
        .enumerate()
        .map(|(i, c)| format!("  - name: v{i}\n    persistentVolumeClaim:\n      claimName: {c}\n"))
        .collect();
    let vols = if vols.is_empty() {
        String::new()
    } else {
        format!("  volumes:\n{vols}")
    };
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {}\n  namespace: default\nspec:\n  containers:\n  - name: c\n    image: i\n{spec}\n{vols}---\n",
        q(name)
    )
}

/// (pod, node or "-", reason or "") for every pod berth scheduled.
pub fn scheduled(p: &Plan) -> Vec<(String, String, String)> {
    p.scheduling
        .iter()
        .map(|s| {
            (
                s.pod.name.clone(),
                s.node.clone().unwrap_or_else(|| "-".into()),
                s.reason.clone().unwrap_or_default(),
            )
        })
        .collect()
}

/// Plans manifests keeping every rejected node's verdict, as `explain pod`.
pub fn plan_with_verdicts(yaml: &str) -> Plan {
    plan_with(
        &crate::snapshot(yaml),
        &Options {
            node_verdicts: true,
            ..Options::default()
        },
    )
}

/// The filter that rejected `node` for `pod`, with its reasons; `None`
/// when the node was not rejected (plan with [`plan_with_verdicts`]).
pub fn verdict(p: &Plan, pod: &str, node: &str) -> Option<(String, Vec<String>)> {
    p.scheduling
        .iter()
        .find(|s| s.pod.name == pod)?
        .rejected
        .iter()
        .find(|v| v.node == node)
        .map(|v| (v.filter.to_string(), v.reasons.clone()))
}

/// The plan's warnings that name `Pod ns/name:`.
pub fn pod_warnings(p: &Plan, pod: &str) -> Vec<String> {
    let prefix = format!("Pod {pod}: ");
    p.warnings
        .iter()
        .filter(|w| w.starts_with(&prefix))
        .cloned()
        .collect()
}

/// One requirement of a node selector term: (key, operator, values).
pub type Req<'a> = (&'a str, &'a str, &'a [&'a str]);

/// `spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution`
/// lines for [`pod`]: each term is (matchExpressions, matchFields); `None`
/// leaves that list out, `Some(&[])` writes it empty.
pub fn required_node_affinity(terms: &[(Option<&[Req<'_>]>, Option<&[Req<'_>]>)]) -> String {
    let mut o = String::from(
        "  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n",
    );
    for (expressions, fields) in terms {
        let mut first = true;
        for (list, reqs) in [("matchExpressions", expressions), ("matchFields", fields)] {
            let Some(reqs) = reqs else { continue };
            o.push_str(if first { "        - " } else { "          " });
            first = false;
            if reqs.is_empty() {
                o.push_str(&format!("{list}: []\n"));
                continue;
            }
            o.push_str(&format!("{list}:\n"));
            for (key, op, values) in *reqs {
                o.push_str(&format!(
                    "          - key: {}\n            operator: {op}\n",
                    q(key)
                ));
                if !values.is_empty() {
                    let vs: Vec<String> = values.iter().map(|v| q(v)).collect();
                    o.push_str(&format!("            values: [{}]\n", vs.join(", ")));
                }
            }
        }
        if first {
            o.push_str("        - {}\n");
        }
    }
    o
}
