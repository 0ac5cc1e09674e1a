//! Upstream's scheduler filter tests for taints and node affinity, ported
//! case by case: each case becomes a cluster of one node (its labels and
//! taints) and the case's pod without `spec.nodeName`, which berth
//! schedules. Upstream's "fits" (a nil status) is ported as: berth places
//! the pod on that node. "Unschedulable" is ported as: berth leaves the pod
//! unschedulable with the scheduler's FailedScheduling message for one
//! node (`0/1 nodes are available: 1 <reason>.`), and `explain`'s verdict
//! names the plugin and upstream's reason word for word.
//!
//! Ports:
//! - `pkg/scheduler/framework/plugins/tainttoleration/taint_toleration_test.go`
//!   TestTaintTolerationFilter;
//! - `pkg/scheduler/framework/plugins/nodeaffinity/node_affinity_test.go`
//!   TestNodeAffinity (the Filter, and the PreFilter where its status or
//!   result decides what the scheduler says).
//!
//! Upstream calls one plugin; the scheduler runs its PreFilter first. Where
//! NodeAffinity's PreFilter returns a node set (every term names nodes with
//! `matchFields` `metadata.name In`), the scheduler never runs Filter on a
//! node outside it and counts such a node as "node(s) didn't satisfy
//! plugin(s) [NodeAffinity]" (`schedule_one.go` findNodesThatFitPod); where
//! it fails ("pod affinity terms conflict"), that is the whole message
//! (`FitError.Error`). Those cases assert what the scheduler says.
//!
//! Upstream's objects, rendered as manifests: its nodes are named `nodeA`
//! or have no name, neither of which the API server accepts, so they are
//! `node-a` and `test-node`; its pods have no name and get `pod1`.

use berth_tests::scheduling::{
    Req, Tol, node, node_selector, plan_with_verdicts, pod, required_node_affinity, taints,
    tolerations, verdict,
};
use berth_tests::upstream::{assert_partition, is_open_divergence};

/// Upstream's reasons (v1.36).
const UNTOLERATED: &str = "node(s) had untolerated taint(s)";
const AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// The status of nodes left out by a PreFilter's node set.
const NOT_IN_PREFILTER_RESULT: &str = "node(s) didn't satisfy plugin(s) [NodeAffinity]";
/// NodeAffinity PreFilter's `errReasonConflict`.
const CONFLICT: &str = "pod affinity terms conflict";

const NOT_APPLICABLE: &[(&str, &str)] = &[
    (
        "TestTaintTolerationFilter/Pod with Gt toleration cannot be scheduled on node when taint value is lower than threshold",
        "needs the TaintTolerationComparisonOperators feature gate, alpha and off in v1.36: the API server refuses Gt/Lt tolerations without it, and so does berth (see the_api_server_refuses_comparison_tolerations)",
    ),
    (
        "TestTaintTolerationFilter/Pod with Gt toleration can be scheduled on node when taint value is higher than threshold",
        "needs the TaintTolerationComparisonOperators feature gate, alpha and off in v1.36",
    ),
    (
        "TestTaintTolerationFilter/Pod with Lt toleration cannot be scheduled on node when taint value is higher than threshold",
        "needs the TaintTolerationComparisonOperators feature gate, alpha and off in v1.36",
    ),
    (
        "TestTaintTolerationFilter/Pod with Lt toleration can be scheduled on node when taint value is lower than threshold",
        "needs the TaintTolerationComparisonOperators feature gate, alpha and off in v1.36",
    ),
    (
        "TestTaintTolerationFilter/Pod with Gt toleration cannot be scheduled on node with non-numeric taint value",
        "needs the TaintTolerationComparisonOperators feature gate, alpha and off in v1.36",
    ),
    (
        "TestTaintTolerationFilterWithFeatureGate (all 6 cases)",
        "Gt/Lt tolerations with the TaintTolerationComparisonOperators gate on or off: with it off (v1.36's default) the API server refuses such a pod, as berth does; with it on, an alpha feature",
    ),
    (
        "TestTaintTolerationScore, TestIsSchedulableAfterNodeChange, Test_isSchedulableAfterPodTolerationChange",
        "scoring and queueing hints: berth chooses among feasible nodes by its own documented rule and has no scheduling queue",
    ),
    (
        "TestNodeAffinity/Matches added affinity and Pod's node affinity",
        "AddedAffinity is a NodeAffinity plugin argument of a scheduler profile; the default profile has none and berth reads no scheduler configuration",
    ),
    (
        "TestNodeAffinity/Matches added affinity but not Pod's node affinity",
        "AddedAffinity is a plugin argument of a scheduler profile (see above)",
    ),
    (
        "TestNodeAffinity/Doesn't match added affinity",
        "AddedAffinity is a plugin argument of a scheduler profile (see above)",
    ),
    (
        "TestNodeAffinityPriority, Test_isSchedulableAfterNodeChange",
        "preferred-term scoring and queueing hints: not filters (preferred terms changing no filter is pinned in scheduling_rules.rs)",
    ),
];

/// What upstream says of the node.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// The node passes: the pod goes there.
    Fits,
    /// The plugin's Filter rejects the node with this reason.
    Rejected(&'static str, &'static str),
    /// The plugin's PreFilter fails the pod on every node with this message.
    PreFilter(&'static str, &'static str),
}

struct Case {
    /// `Test…/<upstream case name>`.
    name: String,
    node: String,
    node_name: &'static str,
    /// The pod's spec lines (nodeSelector, affinity, tolerations).
    pod_spec: String,
    want: Want,
}

fn toleration(
    key: &'static str,
    operator: &'static str,
    value: &'static str,
    effect: &'static str,
) -> Tol<'static> {
    Tol {
        key,
        operator,
        value,
        effect,
    }
}

/// TestTaintTolerationFilter: upstream's `nodeWithTaints("nodeA", …)` and
/// `podWithTolerations("pod1", …)`.
fn taint_toleration_cases() -> Vec<Case> {
    let case = |name: &str, tols: &[Tol<'_>], node_taints: &[(&str, &str, &str)], want| Case {
        name: format!("TestTaintTolerationFilter/{name}"),
        node: node("node-a", &[], &taints(node_taints), ""),
        node_name: "node-a",
        pod_spec: if tols.is_empty() {
            String::new()
        } else {
            tolerations(tols)
        },
        want,
    };
    let rejected = Want::Rejected("TaintToleration", UNTOLERATED);
    vec![
        case(
            "A pod having no tolerations can't be scheduled onto a node with nonempty taints",
            &[],
            &[("dedicated", "user1", "NoSchedule")],
            rejected,
        ),
        case(
            "A pod which can be scheduled on a dedicated node assigned to user1 with effect NoSchedule",
            &[toleration("dedicated", "", "user1", "NoSchedule")],
            &[("dedicated", "user1", "NoSchedule")],
            Want::Fits,
        ),
        case(
            "A pod which can't be scheduled on a dedicated node assigned to user2 with effect NoSchedule",
            &[toleration("dedicated", "Equal", "user2", "NoSchedule")],
            &[("dedicated", "user1", "NoSchedule")],
            rejected,
        ),
        case(
            "A pod can be scheduled onto the node, with a toleration uses operator Exists that tolerates the taints on the node",
            &[toleration("foo", "Exists", "", "NoSchedule")],
            &[("foo", "bar", "NoSchedule")],
            Want::Fits,
        ),
        case(
            "A pod has multiple tolerations, node has multiple taints, all the taints are tolerated, pod can be scheduled onto the node",
            &[
                toleration("dedicated", "Equal", "user2", "NoSchedule"),
                toleration("foo", "Exists", "", "NoSchedule"),
            ],
            &[
                ("dedicated", "user2", "NoSchedule"),
                ("foo", "bar", "NoSchedule"),
            ],
            Want::Fits,
        ),
        case(
            "A pod has a toleration that keys and values match the taint on the node, but (non-empty) effect doesn't match, can't be scheduled onto the node",
            &[toleration("foo", "Equal", "bar", "PreferNoSchedule")],
            &[("foo", "bar", "NoSchedule")],
            rejected,
        ),
        case(
            "The pod has a toleration that keys and values match the taint on the node, the effect of toleration is empty, and the effect of taint is NoSchedule. Pod can be scheduled onto the node",
            &[toleration("foo", "Equal", "bar", "")],
            &[("foo", "bar", "NoSchedule")],
            Want::Fits,
        ),
        case(
            "The pod has a toleration that key and value don't match the taint on the node, but the effect of taint on node is PreferNoSchedule. Pod can be scheduled onto the node",
            &[toleration("dedicated", "Equal", "user2", "NoSchedule")],
            &[("dedicated", "user1", "PreferNoSchedule")],
            Want::Fits,
        ),
        case(
            "The pod has no toleration, but the effect of taint on node is PreferNoSchedule. Pod can be scheduled onto the node",
            &[],
            &[("dedicated", "user1", "PreferNoSchedule")],
            Want::Fits,
        ),
    ]
}

type Term<'a> = (Option<&'a [Req<'a>]>, Option<&'a [Req<'a>]>);

/// TestNodeAffinity: a node named `nodeName` (or `test-node` where upstream
/// leaves it empty) with the case's labels.
fn node_affinity_cases() -> Vec<Case> {
    let rejected = Want::Rejected("NodeAffinity", AFFINITY);
    let case =
        |name: &str, pod_spec: String, node_name: &'static str, labels: &[(&str, &str)], want| {
            Case {
                name: format!("TestNodeAffinity/{name}"),
                node: node(node_name, labels, "", ""),
                node_name,
                pod_spec,
                want,
            }
        };
    let affinity = |terms: &[Term<'_>]| required_node_affinity(terms);
    let exprs = |reqs: &'static [Req<'static>]| -> Term<'static> { (Some(reqs), None) };
    let fields = |reqs: &'static [Req<'static>]| -> Term<'static> { (None, Some(reqs)) };
    let both = |e: &'static [Req<'static>], f: &'static [Req<'static>]| -> Term<'static> {
        (Some(e), Some(f))
    };
    const N: &str = "test-node";
    let foo_bar: &[(&str, &str)] = &[("foo", "bar")];
    let gpu: &[(&str, &str)] = &[("GPU", "NVIDIA-GRID-K1")];
    vec![
        case(
            "missing labels",
            node_selector(&[("foo", "bar")]),
            N,
            &[],
            rejected,
        ),
        case(
            "same labels",
            node_selector(&[("foo", "bar")]),
            N,
            foo_bar,
            Want::Fits,
        ),
        case(
            "node labels are superset",
            node_selector(&[("foo", "bar")]),
            N,
            &[("foo", "bar"), ("baz", "blah")],
            Want::Fits,
        ),
        case(
            "node labels are subset",
            node_selector(&[("foo", "bar"), ("baz", "blah")]),
            N,
            foo_bar,
            rejected,
        ),
        case(
            "Pod with matchExpressions using In operator that matches the existing node",
            affinity(&[exprs(&[("foo", "In", &["bar", "value2"])])]),
            N,
            foo_bar,
            Want::Fits,
        ),
        case(
            "Pod with matchExpressions using Gt operator that matches the existing node",
            affinity(&[exprs(&[("kernel-version", "Gt", &["0204"])])]),
            N,
            &[("kernel-version", "0206")],
            Want::Fits,
        ),
        case(
            "Pod with matchExpressions using NotIn operator that matches the existing node",
            affinity(&[exprs(&[("mem-type", "NotIn", &["DDR", "DDR2"])])]),
            N,
            &[("mem-type", "DDR3")],
            Want::Fits,
        ),
        case(
            "Pod with matchExpressions using Exists operator that matches the existing node",
            affinity(&[exprs(&[("GPU", "Exists", &[])])]),
            N,
            gpu,
            Want::Fits,
        ),
        case(
            "Pod with affinity that don't match node's labels won't schedule onto the node",
            affinity(&[exprs(&[("foo", "In", &["value1", "value2"])])]),
            N,
            foo_bar,
            rejected,
        ),
        case(
            "Pod with empty MatchExpressions is not a valid value will match no objects and won't schedule onto the node",
            affinity(&[exprs(&[])]),
            N,
            foo_bar,
            rejected,
        ),
        case(
            "Pod with no Affinity will schedule onto a node",
            String::new(),
            N,
            foo_bar,
            Want::Fits,
        ),
        case(
            "Pod with Affinity but nil NodeSelector will schedule onto a node",
            "  affinity:\n    nodeAffinity: {}\n".into(),
            N,
            foo_bar,
            Want::Fits,
        ),
        case(
            "Pod with multiple matchExpressions ANDed that matches the existing node",
            affinity(&[exprs(&[
                ("GPU", "Exists", &[]),
                ("GPU", "NotIn", &["AMD", "INTER"]),
            ])]),
            N,
            gpu,
            Want::Fits,
        ),
        case(
            "Pod with multiple matchExpressions ANDed that doesn't match the existing node",
            affinity(&[exprs(&[
                ("GPU", "Exists", &[]),
                ("GPU", "In", &["AMD", "INTER"]),
            ])]),
            N,
            gpu,
            rejected,
        ),
        case(
            "Pod with multiple NodeSelectorTerms ORed in affinity, matches the node's labels and will schedule onto the node",
            affinity(&[
                exprs(&[("foo", "In", &["bar", "value2"])]),
                exprs(&[("diffkey", "In", &["wrong", "value2"])]),
            ]),
            N,
            foo_bar,
            Want::Fits,
        ),
        case(
            "Pod with an Affinity and a PodSpec.NodeSelector(the old thing that we are deprecating) both are satisfied, will schedule onto the node",
            format!(
                "{}{}",
                node_selector(&[("foo", "bar")]),
                affinity(&[exprs(&[("foo", "Exists", &[])])])
            ),
            N,
            foo_bar,
            Want::Fits,
        ),
        case(
            "Pod with an Affinity matches node's labels but the PodSpec.NodeSelector(the old thing that we are deprecating) is not satisfied, won't schedule onto the node",
            format!(
                "{}{}",
                node_selector(&[("foo", "bar")]),
                affinity(&[exprs(&[("foo", "Exists", &[])])])
            ),
            N,
            &[("foo", "barrrrrr")],
            rejected,
        ),
        case(
            "Pod with an invalid value in Affinity term won't be scheduled onto the node",
            affinity(&[exprs(&[("foo", "NotIn", &["invalid value: ___@#$%^"])])]),
            N,
            foo_bar,
            rejected,
        ),
        case(
            "Pod with matchFields using In operator that matches the existing node",
            affinity(&[fields(&[("metadata.name", "In", &["node1"])])]),
            "node1",
            &[],
            Want::Fits,
        ),
        // PreFilterResult {node1}: the scheduler never runs Filter on node2.
        case(
            "Pod with matchFields using In operator that does not match the existing node",
            affinity(&[fields(&[("metadata.name", "In", &["node1"])])]),
            "node2",
            &[],
            Want::Rejected("NodeAffinity", NOT_IN_PREFILTER_RESULT),
        ),
        case(
            "Pod with two terms: matchFields does not match, but matchExpressions matches",
            affinity(&[
                fields(&[
                    ("metadata.name", "In", &["node1"]),
                    ("metadata.name", "In", &["node2"]),
                ]),
                exprs(&[("foo", "In", &["bar"])]),
            ]),
            "node2",
            foo_bar,
            Want::Fits,
        ),
        // PreFilterResult {node1}: the scheduler never runs Filter on node2.
        case(
            "Pod with one term: matchFields does not match, but matchExpressions matches",
            affinity(&[both(
                &[("foo", "In", &["bar"])],
                &[("metadata.name", "In", &["node1"])],
            )]),
            "node2",
            foo_bar,
            Want::Rejected("NodeAffinity", NOT_IN_PREFILTER_RESULT),
        ),
        case(
            "Pod with one term: both matchFields and matchExpressions match",
            affinity(&[both(
                &[("foo", "In", &["bar"])],
                &[("metadata.name", "In", &["node1"])],
            )]),
            "node1",
            foo_bar,
            Want::Fits,
        ),
        case(
            "Pod with two terms: both matchFields and matchExpressions do not match",
            affinity(&[
                fields(&[("metadata.name", "In", &["node1"])]),
                exprs(&[("foo", "In", &["not-match-to-bar"])]),
            ]),
            "node2",
            foo_bar,
            rejected,
        ),
        case(
            "Pod with two terms of node.Name affinity",
            affinity(&[
                fields(&[("metadata.name", "In", &["node1"])]),
                fields(&[("metadata.name", "In", &["node2"])]),
            ]),
            "node2",
            &[],
            Want::Fits,
        ),
        case(
            "Pod with two conflicting mach field requirements",
            affinity(&[fields(&[
                ("metadata.name", "In", &["node1"]),
                ("metadata.name", "In", &["node2"]),
            ])]),
            "node2",
            foo_bar,
            Want::PreFilter("NodeAffinity", CONFLICT),
        ),
        // Upstream's Filter without its PreFilter's state computes the
        // same selector: berth has no such state, so these are plain fits.
        case(
            "Matches node selector correctly even if PreFilter is not called",
            node_selector(&[("foo", "bar")]),
            N,
            &[("foo", "bar"), ("baz", "blah")],
            Want::Fits,
        ),
        case(
            "Matches node affinity correctly even if PreFilter is not called",
            affinity(&[exprs(&[
                ("GPU", "Exists", &[]),
                ("GPU", "NotIn", &["AMD", "INTER"]),
            ])]),
            N,
            gpu,
            Want::Fits,
        ),
    ]
}

/// What berth says, against the case's want; `None` when they agree.
fn disagreement(c: &Case) -> Option<String> {
    let yaml = format!("{}{}", c.node, pod("pod1", &[], &c.pod_spec));
    let p = plan_with_verdicts(&yaml);
    let Some(s) = p.scheduling.iter().find(|s| s.pod.name == "pod1") else {
        return Some("berth did not schedule the pod".into());
    };
    let got = (
        s.node.clone(),
        s.reason.clone(),
        verdict(&p, "pod1", c.node_name),
    );
    let want = match c.want {
        Want::Fits => (Some(c.node_name.to_string()), None, None),
        Want::Rejected(plugin, reason) => (
            None,
            Some(format!("0/1 nodes are available: 1 {reason}.")),
            Some((plugin.to_string(), vec![reason.to_string()])),
        ),
        Want::PreFilter(plugin, msg) => (
            None,
            Some(format!("0/1 nodes are available: {msg}.")),
            Some((plugin.to_string(), vec![msg.to_string()])),
        ),
    };
    (got != want).then(|| format!("want {want:?}; berth {got:?}"))
}

fn run(cases: &[Case]) {
    let mut failures = Vec::new();
    for c in cases {
        let diverges = disagreement(c);
        match (is_open_divergence(&c.name), diverges) {
            (false, Some(d)) => failures.push(format!("{}: {d}", c.name)),
            (true, None) => failures.push(format!(
                "{}: now agrees with upstream: remove it from OPEN_DIVERGENCES",
                c.name
            )),
            _ => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn test_taint_toleration_filter() {
    run(&taint_toleration_cases());
}

#[test]
fn test_node_affinity() {
    run(&node_affinity_cases());
}

#[test]
fn the_api_server_refuses_comparison_tolerations() {
    // With TaintTolerationComparisonOperators off (v1.36), the API server's
    // NotSupported error names all four operators.
    for op in ["Gt", "Lt"] {
        let yaml = pod(
            "pod1",
            &[],
            &tolerations(&[toleration(
                "node.kubernetes.io/sla",
                op,
                "750",
                "NoSchedule",
            )]),
        );
        let docs = berth::manifest::parse_str("test.yaml", &yaml).expect("parses");
        let err = berth::manifest::to_snapshot(docs)
            .err()
            .unwrap_or_else(|| panic!("{op}: accepted"))
            .to_string();
        let want = format!(
            "spec.tolerations[0].operator: Unsupported value: \"{op}\": supported values: \"Equal\", \"Exists\", \"Lt\", \"Gt\""
        );
        assert!(err.contains(&want), "{op}: {err}");
    }
}

#[test]
fn ported_and_not_applicable_are_a_partition() {
    let names: Vec<String> = taint_toleration_cases()
        .into_iter()
        .chain(node_affinity_cases())
        .map(|c| c.name)
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_partition(&refs, NOT_APPLICABLE);
    // Upstream's tables: 14 cases in TestTaintTolerationFilter, 31 in
    // TestNodeAffinity.
    let (taints, affinity) = (taint_toleration_cases().len(), node_affinity_cases().len());
    let na = |prefix: &str| {
        NOT_APPLICABLE
            .iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .count()
    };
    assert_eq!(taints + na("TestTaintTolerationFilter/"), 14);
    assert_eq!(affinity + na("TestNodeAffinity/"), 31);
}
