//! Per-node volume limits, as the scheduler's NodeVolumeLimits plugin counts them.
//!
//! For every node, the distinct volumes used by the (not terminated) pods on
//! it are counted per CSI driver: a bound claim counts its PV's
//! `driver/volumeHandle` (in-tree sources count under the CSI driver they are
//! migrated to), an unbound claim counts once against its class's provisioner,
//! and an inline CSI volume counts under its driver. A node is over its limit
//! when a driver's count exceeds `CSINode.spec.drivers[].allocatable.count`.
//! Where a CSINode publishes no limit, the catalog's public default for the
//! node's instance type is used for a warning only, since the scheduler
//! would not enforce it.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::{FxHashMap, FxHashSet};

use super::plan::Violation;
use super::snapshot::{Pod, PodVolume, Snapshot};

/// What a claim resolves to for counting.
pub enum ClaimUse<'a> {
    /// Bound to a volume of this driver with this handle.
    Volume { driver: &'a str, handle: &'a str },
    /// Not bound yet: it will be a volume of this provisioner.
    Unbound { provisioner: &'a str },
    /// Neither: not counted (no class, non-CSI source, or no such claim).
    Uncounted,
}

/// Distinct volumes per node and driver.
pub type Usage = BTreeMap<String, BTreeMap<String, u32>>;

/// A volume's identity for counting, borrowed from the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VolumeId<'a> {
    Handle(&'a str),
    /// An unbound claim: (namespace, name).
    Claim(&'a str, &'a str),
    /// An inline volume: (handle, pod namespace, pod name).
    Inline(&'a str, &'a str, &'a str),
}

/// Per (node, driver): the distinct volumes the node's pods use.
pub type VolumeSets<'a> = FxHashMap<(&'a str, &'a str), FxHashSet<VolumeId<'a>>>;

/// The counted volumes of one pod, with their drivers. `resolve` gets a
/// claim's namespace and name.
pub fn pod_volumes<'a>(
    pod: &'a Pod,
    resolve: &impl Fn(&'a str, &'a str) -> ClaimUse<'a>,
) -> Vec<(&'a str, VolumeId<'a>)> {
    let mut out = Vec::new();
    for vol in &pod.volumes {
        out.push(match vol {
            PodVolume::InlineCsi { driver, handle } => (
                driver.as_str(),
                VolumeId::Inline(handle, &pod.key.namespace, &pod.key.name),
            ),
            PodVolume::InlineMigrated(m) => (m.driver, VolumeId::Handle(&m.handle)),
            PodVolume::Claim(name) => match claim_volume(&pod.key.namespace, name, resolve) {
                Some(v) => v,
                None => continue,
            },
        });
    }
    out
}

/// A claim's counted volume, with its driver; `None` when not counted.
pub fn claim_volume<'a>(
    namespace: &'a str,
    name: &'a str,
    resolve: &impl Fn(&'a str, &'a str) -> ClaimUse<'a>,
) -> Option<(&'a str, VolumeId<'a>)> {
    match resolve(namespace, name) {
        ClaimUse::Volume { driver, handle } => Some((driver, VolumeId::Handle(handle))),
        ClaimUse::Unbound { provisioner } => Some((provisioner, VolumeId::Claim(namespace, name))),
        ClaimUse::Uncounted => None,
    }
}

/// The distinct volumes each node's pods use, per driver; `node_of` gives
/// a pod's node (its own, or the one berth scheduled it to).
pub fn volume_sets<'a>(
    snapshot: &'a Snapshot,
    node_of: impl Fn(&'a Pod) -> Option<&'a str>,
    resolve: &impl Fn(&'a str, &'a str) -> ClaimUse<'a>,
) -> VolumeSets<'a> {
    let mut used = VolumeSets::default();
    for pod in snapshot.pods.iter().filter(|p| !p.terminated) {
        let Some(node) = node_of(pod) else {
            continue;
        };
        for (driver, id) in pod_volumes(pod, resolve) {
            used.entry((node, driver)).or_default().insert(id);
        }
    }
    used
}

/// Counts the distinct volumes each node's pods use, per driver. `resolve`
/// gets a claim's namespace and name.
pub fn usage<'a>(
    snapshot: &'a Snapshot,
    resolve: impl Fn(&'a str, &'a str) -> ClaimUse<'a>,
) -> Usage {
    counts(&volume_sets(snapshot, |p| p.node_name.as_deref(), &resolve))
}

/// Per node and driver, how many volumes.
pub fn counts(sets: &VolumeSets<'_>) -> Usage {
    let mut out = Usage::new();
    for ((node, driver), ids) in sets {
        out.entry(node.to_string())
            .or_default()
            .insert(driver.to_string(), ids.len() as u32);
    }
    out
}

/// `CSINode` limits: (node, driver) → `allocatable.count`.
pub fn published_limits(snapshot: &Snapshot) -> FxHashMap<(&str, &str), u32> {
    snapshot
        .csi_nodes
        .iter()
        .flat_map(|n| {
            n.drivers
                .iter()
                .filter_map(move |(d, c)| c.map(|c| ((n.name.as_str(), d.as_str()), c)))
        })
        .collect()
}

/// Nodes whose count for a driver exceeds the CSINode's allocatable count.
pub fn violations(snapshot: &Snapshot, usage: &Usage) -> Vec<Violation> {
    let limits = published_limits(snapshot);
    let mut out = Vec::new();
    for (node, drivers) in usage {
        for (driver, &count) in drivers {
            if let Some(&limit) = limits.get(&(node.as_str(), driver.as_str())) {
                if count > limit {
                    out.push(Violation {
                        node: node.clone(),
                        driver: driver.clone(),
                        limit,
                        count,
                    });
                }
            }
        }
    }
    out
}

/// Nodes over the public default limit of their instance type for a driver
/// whose CSINode publishes no limit: not a violation the scheduler sees, but
/// attaches will fail on such a node.
pub fn catalog_warnings(snapshot: &Snapshot, usage: &Usage) -> Vec<String> {
    let published: BTreeSet<(&str, &str)> = snapshot
        .csi_nodes
        .iter()
        .flat_map(|n| {
            n.drivers
                .iter()
                .filter(|(_, c)| c.is_some())
                .map(move |(d, _)| (n.name.as_str(), d.as_str()))
        })
        .collect();
    let mut out = Vec::new();
    for node in &snapshot.nodes {
        let Some(instance) = node
            .labels
            .get("node.kubernetes.io/instance-type")
            .or_else(|| node.labels.get("beta.kubernetes.io/instance-type"))
        else {
            continue;
        };
        for (driver, &count) in usage.get(&node.name).into_iter().flatten() {
            if published.contains(&(node.name.as_str(), driver.as_str())) {
                continue;
            }
            if let Some(limit) = storage_classes::default_volume_limit(driver, instance) {
                if count > limit {
                    out.push(format!(
                        "Node {}: uses {count} {driver} volumes; instance type {instance} attaches at most {limit} (public default; its CSINode publishes no limit)",
                        node.name
                    ));
                }
            }
        }
    }
    out
}
