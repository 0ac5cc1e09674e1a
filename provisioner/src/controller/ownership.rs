//! Who acts on a claim or a volume: one rule, used by the provisioner, the
//! reclaimer, the resizer, the caches that feed them and the controller's
//! node-loss handling.
//!
//! - A volume belongs to the node its PV's required node affinity names
//!   under the driver's topology key (`topology.csi.berth.dev/node In
//!   [node]`): that node's agent deletes and expands it, and when that Node
//!   is gone the controller handles what is left.
//! - A claim waiting for a volume belongs to the node in its
//!   `volume.kubernetes.io/selected-node` annotation (the scheduler's
//!   choice, or berth's placement for Immediate claims): that node's agent
//!   provisions it.
//!
//! A process running for the whole cluster (`berth controller
//! --csi-endpoint`, one driver for every claim) has [`Scope::Cluster`] and
//! owns everything.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

pub use crate::manifest::convert::ANN_SELECTED_NODE;

/// What a process is responsible for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every claim and volume of the provisioner.
    Cluster,
    /// Only the claims and volumes of one node (a node agent).
    Node(String),
}

/// The node a claim was assigned to, if any.
pub fn selected_node(pvc: &PersistentVolumeClaim) -> Option<&str> {
    pvc.metadata
        .annotations
        .as_ref()?
        .get(ANN_SELECTED_NODE)
        .map(String::as_str)
}

/// The node a volume lives on: the single value its required node affinity
/// gives `topology_key`, in any term. `None` when the affinity does not pin
/// the volume to exactly one node under that key.
pub fn volume_node<'a>(pv: &'a PersistentVolume, topology_key: &str) -> Option<&'a str> {
    let terms = &pv
        .spec
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required
        .as_ref()?
        .node_selector_terms;
    let mut found: Option<&str> = None;
    for term in terms {
        for e in term.match_expressions.iter().flatten() {
            if e.key != topology_key || e.operator != "In" {
                continue;
            }
            match e.values.as_deref() {
                Some([v]) if found.is_none_or(|f| f == v) => found = Some(v),
                _ => return None,
            }
        }
    }
    found
}

impl Scope {
    /// The node this process serves, for a node agent.
    pub fn node(&self) -> Option<&str> {
        match self {
            Scope::Cluster => None,
            Scope::Node(n) => Some(n),
        }
    }

    /// Whether this process provisions for the claim (when it wants a
    /// volume of our provisioner at all).
    pub fn owns_claim(&self, pvc: &PersistentVolumeClaim) -> bool {
        match self {
            Scope::Cluster => true,
            Scope::Node(n) => selected_node(pvc) == Some(n.as_str()),
        }
    }

    /// Whether this process deletes and expands the volume.
    pub fn owns_volume(&self, pv: &PersistentVolume, topology_key: &str) -> bool {
        match self {
            Scope::Cluster => true,
            Scope::Node(n) => volume_node(pv, topology_key) == Some(n.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "topology.csi.berth.dev/node";

    fn pv(affinity: serde_json::Value) -> PersistentVolume {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pv"},
            "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": affinity}}},
        }))
        .expect("pv")
    }

    fn pvc(node: Option<&str>) -> PersistentVolumeClaim {
        let annotations = match node {
            Some(n) => serde_json::json!({ ANN_SELECTED_NODE: n }),
            None => serde_json::json!({}),
        };
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c", "namespace": "ns", "annotations": annotations},
        }))
        .expect("pvc")
    }

    #[test]
    fn a_volume_belongs_to_the_one_node_its_affinity_names() {
        let cases = [
            (
                "one term, one value",
                serde_json::json!([{"matchExpressions": [{"key": KEY, "operator": "In", "values": ["b"]}]}]),
                Some("b"),
            ),
            (
                "other keys beside it do not matter",
                serde_json::json!([{"matchExpressions": [
                    {"key": "zone", "operator": "In", "values": ["z1", "z2"]},
                    {"key": KEY, "operator": "In", "values": ["b"]}]}]),
                Some("b"),
            ),
            (
                "two values: no single owner",
                serde_json::json!([{"matchExpressions": [{"key": KEY, "operator": "In", "values": ["a", "b"]}]}]),
                None,
            ),
            (
                "two terms naming different nodes: no single owner",
                serde_json::json!([
                    {"matchExpressions": [{"key": KEY, "operator": "In", "values": ["a"]}]},
                    {"matchExpressions": [{"key": KEY, "operator": "In", "values": ["b"]}]}]),
                None,
            ),
            (
                "another key only",
                serde_json::json!([{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["b"]}]}]),
                None,
            ),
            (
                "NotIn is not ownership",
                serde_json::json!([{"matchExpressions": [{"key": KEY, "operator": "NotIn", "values": ["b"]}]}]),
                None,
            ),
        ];
        for (name, affinity, want) in cases {
            assert_eq!(volume_node(&pv(affinity), KEY), want, "case {name}");
        }
        let mut none = pv(serde_json::json!([]));
        none.spec = None;
        assert_eq!(volume_node(&none, KEY), None);
    }

    #[test]
    fn agents_own_only_their_nodes_claims_and_volumes() {
        let b = Scope::Node("b".into());
        assert!(b.owns_claim(&pvc(Some("b"))));
        assert!(!b.owns_claim(&pvc(Some("a"))));
        assert!(!b.owns_claim(&pvc(None)), "unplaced claims wait for a node");
        assert!(Scope::Cluster.owns_claim(&pvc(None)));
        let on_a = pv(
            serde_json::json!([{"matchExpressions": [{"key": KEY, "operator": "In", "values": ["a"]}]}]),
        );
        assert!(!b.owns_volume(&on_a, KEY));
        assert!(Scope::Node("a".into()).owns_volume(&on_a, KEY));
        assert!(Scope::Cluster.owns_volume(&on_a, KEY));
    }
}
