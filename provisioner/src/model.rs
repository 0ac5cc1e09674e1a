//! Typed domain values shared by the binding core, the CLI and the controller.
//!
//! Everything the core compares is parsed into one of these at the edge
//! (`snapshot::convert`), so the core never interprets raw API strings.

use std::collections::BTreeMap;
use std::fmt;

pub use storage_classes::AccessMode;

/// A namespaced object's identity, ordered by namespace then name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

/// The identity of a PersistentVolumeClaim.
pub type ClaimKey = ObjectKey;

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A set of access modes as a bitset (see [`AccessMode::bit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct AccessModes(u8);

impl AccessModes {
    pub const EMPTY: AccessModes = AccessModes(0);

    pub fn insert(&mut self, mode: AccessMode) {
        self.0 |= mode.bit();
    }

    pub fn contains(self, mode: AccessMode) -> bool {
        self.0 & mode.bit() != 0
    }

    /// Whether every mode of `other` is in `self` (upstream `ContainsAllAccessModes`).
    pub fn contains_all(self, other: AccessModes) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn len(self) -> u32 {
        self.0.count_ones()
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn iter(self) -> impl Iterator<Item = AccessMode> {
        AccessMode::ALL
            .into_iter()
            .filter(move |m| self.contains(*m))
    }

    /// Modes of `other` that `self` lacks.
    pub fn missing_from(self, other: AccessModes) -> AccessModes {
        AccessModes(other.0 & !self.0)
    }
}

impl FromIterator<AccessMode> for AccessModes {
    fn from_iter<T: IntoIterator<Item = AccessMode>>(iter: T) -> Self {
        let mut set = AccessModes::EMPTY;
        for m in iter {
            set.insert(m);
        }
        set
    }
}

impl fmt::Display for AccessModes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("<none>");
        }
        let mut first = true;
        for m in self.iter() {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            f.write_str(m.short())?;
        }
        Ok(())
    }
}

/// `spec.volumeMode`; unset means Filesystem on both PVs and claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VolumeMode {
    #[default]
    Filesystem,
    Block,
}

impl fmt::Display for VolumeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VolumeMode::Filesystem => "Filesystem",
            VolumeMode::Block => "Block",
        })
    }
}

/// `persistentVolumeReclaimPolicy` / StorageClass `reclaimPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReclaimPolicy {
    Retain,
    Delete,
    Recycle,
    /// A value the PV controller does not know; it marks such volumes Failed.
    Unknown(String),
}

impl ReclaimPolicy {
    pub fn as_str(&self) -> &str {
        match self {
            ReclaimPolicy::Retain => "Retain",
            ReclaimPolicy::Delete => "Delete",
            ReclaimPolicy::Recycle => "Recycle",
            ReclaimPolicy::Unknown(s) => s,
        }
    }
}

impl fmt::Display for ReclaimPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// StorageClass `volumeBindingMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BindingMode {
    #[default]
    Immediate,
    WaitForFirstConsumer,
}

/// PersistentVolume `status.phase` as written in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VolumePhase {
    Pending,
    Available,
    Bound,
    Released,
    Failed,
}

impl VolumePhase {
    /// The API spelling of the phase.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumePhase::Pending => "Pending",
            VolumePhase::Available => "Available",
            VolumePhase::Bound => "Bound",
            VolumePhase::Released => "Released",
            VolumePhase::Failed => "Failed",
        }
    }
}

/// PersistentVolumeClaim `status.phase` as written in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ClaimPhase {
    #[default]
    Pending,
    Bound,
    Lost,
}

impl ClaimPhase {
    /// The API spelling of the phase.
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimPhase::Pending => "Pending",
            ClaimPhase::Bound => "Bound",
            ClaimPhase::Lost => "Lost",
        }
    }
}

/// Object labels.
pub type Labels = BTreeMap<String, String>;

/// One `matchExpressions` requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelRequirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed `metav1.LabelSelector`: all requirements must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    pub requirements: Vec<LabelRequirement>,
}

impl LabelRequirement {
    pub fn matches(&self, labels: &Labels) -> bool {
        match self {
            LabelRequirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            // NotIn matches when the key is absent, as upstream's selector does.
            LabelRequirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            LabelRequirement::Exists(k) => labels.contains_key(k),
            LabelRequirement::DoesNotExist(k) => !labels.contains_key(k),
        }
    }
}

impl LabelSelector {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| match r {
                LabelRequirement::In(k, vs) if vs.len() == 1 => format!("{k}={}", vs[0]),
                LabelRequirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                LabelRequirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                LabelRequirement::Exists(k) => k.clone(),
                LabelRequirement::DoesNotExist(k) => format!("!{k}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// One requirement of a node selector term (PV `nodeAffinity`, allowedTopologies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRequirement {
    Label(LabelRequirement),
    /// `Gt`/`Lt` compare the label as an integer; a non-integer label never matches.
    Gt(String, i64),
    Lt(String, i64),
    /// `matchFields` on `metadata.name`, the only field upstream supports.
    NameIn(Vec<String>),
    NameNotIn(Vec<String>),
}

/// A parsed `NodeSelector`: the node must match at least one term; a term
/// matches when all its requirements hold; an empty term matches nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeSelector {
    pub terms: Vec<Vec<NodeRequirement>>,
}

impl NodeSelector {
    /// When the selector is a single `key In (values)` requirement (the shape
    /// of local and zonal volumes), that key and those values: an index can
    /// then find the volumes of a node by its label instead of testing each.
    pub fn as_single_in(&self) -> Option<(&str, &[String])> {
        match self.terms.as_slice() {
            [term] => match term.as_slice() {
                [NodeRequirement::Label(LabelRequirement::In(k, vs))] => Some((k, vs)),
                _ => None,
            },
            _ => None,
        }
    }

    /// The nodes NodeAffinity's PreFilter narrows a pod to: when every term
    /// names nodes with `metadata.name In` (ANDed within a term, ORed across
    /// terms), their union; `None` when some term names none, so every node
    /// is a candidate. An empty set is upstream's "pod affinity terms
    /// conflict", which fails the pod on every node; a node outside a set is
    /// never filtered and counts as "node(s) didn't satisfy plugin(s)
    /// [NodeAffinity]".
    pub fn named_nodes(&self) -> Option<std::collections::BTreeSet<&str>> {
        if self.terms.is_empty() {
            return None;
        }
        let mut union = std::collections::BTreeSet::new();
        for term in &self.terms {
            let mut names: Option<std::collections::BTreeSet<&str>> = None;
            for r in term {
                let NodeRequirement::NameIn(values) = r else {
                    continue;
                };
                let set = values.iter().map(String::as_str).collect();
                names = Some(match names {
                    None => set,
                    Some(n) => n.intersection(&set).copied().collect(),
                });
            }
            union.extend(names?);
        }
        Some(union)
    }

    pub fn matches(&self, node_name: &str, labels: &Labels) -> bool {
        self.terms.iter().any(|term| {
            !term.is_empty()
                && term.iter().all(|r| match r {
                    NodeRequirement::Label(l) => l.matches(labels),
                    NodeRequirement::Gt(k, n) => labels
                        .get(k)
                        .and_then(|v| v.parse::<i64>().ok())
                        .is_some_and(|v| v > *n),
                    NodeRequirement::Lt(k, n) => labels
                        .get(k)
                        .and_then(|v| v.parse::<i64>().ok())
                        .is_some_and(|v| v < *n),
                    NodeRequirement::NameIn(names) => names.iter().any(|n| n == node_name),
                    NodeRequirement::NameNotIn(names) => names.iter().all(|n| n != node_name),
                })
        })
    }
}

/// A DNS-1123 subdomain (object names, label key prefixes), with the API
/// server's message when it is not one.
pub fn validate_dns_subdomain(value: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
    };
    if value.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    if value.split('.').all(label_ok) {
        Ok(())
    } else {
        Err("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into())
    }
}

/// A label key: `[prefix/]name`, the prefix a DNS subdomain, the name at
/// most 63 characters of alphanumerics, `-`, `_` and `.`, starting and
/// ending alphanumeric (the API server's `IsQualifiedName`).
pub fn validate_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return Err("prefix part must be non-empty".into());
        }
        validate_dns_subdomain(p).map_err(|e| format!("prefix part {e}"))?;
    }
    let b = name.as_bytes();
    if b.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if b.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    let inner_ok = b
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if !inner_ok || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return Err("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selector_operators() {
        let l = labels(&[("release", "stable"), ("environment", "dev")]);
        let sel = |r: LabelRequirement| LabelSelector {
            requirements: vec![r],
        };
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cases = [
            (
                sel(LabelRequirement::In("environment".into(), s(&["dev"]))),
                true,
            ),
            (
                sel(LabelRequirement::In("environment".into(), s(&["prod"]))),
                false,
            ),
            (
                sel(LabelRequirement::NotIn("environment".into(), s(&["prod"]))),
                true,
            ),
            (sel(LabelRequirement::NotIn("tier".into(), s(&["x"]))), true),
            (
                sel(LabelRequirement::NotIn("environment".into(), s(&["dev"]))),
                false,
            ),
            (sel(LabelRequirement::Exists("release".into())), true),
            (sel(LabelRequirement::Exists("tier".into())), false),
            (sel(LabelRequirement::DoesNotExist("tier".into())), true),
            (sel(LabelRequirement::DoesNotExist("release".into())), false),
            (LabelSelector::default(), true),
        ];
        for (selector, want) in cases {
            assert_eq!(selector.matches(&l), want, "{selector}");
        }
    }

    #[test]
    fn access_mode_bitset() {
        let rwo: AccessModes = [AccessMode::ReadWriteOnce].into_iter().collect();
        let both: AccessModes = [AccessMode::ReadWriteOnce, AccessMode::ReadOnlyMany]
            .into_iter()
            .collect();
        assert!(both.contains_all(rwo));
        assert!(!rwo.contains_all(both));
        assert_eq!(both.len(), 2);
        assert_eq!(both.to_string(), "RWO,ROX");
        assert!(AccessModes::EMPTY.contains_all(AccessModes::EMPTY));
    }

    #[test]
    fn node_selector_terms_are_ored_and_requirements_anded() {
        let l = labels(&[("zone", "a"), ("cpus", "8")]);
        let ns = NodeSelector {
            terms: vec![
                vec![NodeRequirement::Label(LabelRequirement::In(
                    "zone".into(),
                    vec!["b".into()],
                ))],
                vec![
                    NodeRequirement::Gt("cpus".into(), 4),
                    NodeRequirement::NameIn(vec!["n1".into()]),
                ],
            ],
        };
        assert!(ns.matches("n1", &l));
        assert!(!ns.matches("n2", &l));
        assert!(
            !NodeSelector {
                terms: vec![vec![]]
            }
            .matches("n1", &l)
        );
    }

    #[test]
    fn named_nodes_are_node_affinitys_prefilter_set() {
        let name_in =
            |v: &[&str]| NodeRequirement::NameIn(v.iter().map(|s| s.to_string()).collect());
        let zone = NodeRequirement::Label(LabelRequirement::Exists("zone".into()));
        let set =
            |v: &[&'static str]| Some(v.iter().copied().collect::<std::collections::BTreeSet<_>>());
        let cases = [
            (vec![], None),
            (vec![vec![zone.clone()]], None),
            (vec![vec![name_in(&["n1"])]], set(&["n1"])),
            (vec![vec![name_in(&["n1"]), zone.clone()]], set(&["n1"])),
            (
                vec![vec![name_in(&["n1"])], vec![name_in(&["n2"])]],
                set(&["n1", "n2"]),
            ),
            (vec![vec![name_in(&["n1"])], vec![zone.clone()]], None),
            (vec![vec![name_in(&["n1"]), name_in(&["n2"])]], set(&[])),
            (
                vec![vec![name_in(&["n1", "n2"]), name_in(&["n2", "n3"])]],
                set(&["n2"]),
            ),
            (
                vec![vec![NodeRequirement::NameNotIn(vec!["n1".into()])]],
                None,
            ),
        ];
        for (terms, want) in cases {
            let sel = NodeSelector { terms };
            assert_eq!(sel.named_nodes(), want, "{sel:?}");
        }
    }

    #[test]
    fn label_keys_are_checked_like_the_api_server_does() {
        for good in [
            "topology.csi.berth.dev/node",
            "zone",
            "kubernetes.io/hostname",
            "a_b.c-d",
        ] {
            assert_eq!(validate_label_key(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "/node",
            "Topology.example/node",
            "example.com/",
            "example.com/-node",
            "a/b/c",
            "node!",
            &"n".repeat(64),
            &format!("{}/node", "p".repeat(254)),
        ] {
            assert!(validate_label_key(bad).is_err(), "{bad:?}");
        }
    }
}
