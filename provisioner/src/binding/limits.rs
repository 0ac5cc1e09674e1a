//! Per-node volume limits, as the scheduler's NodeVolumeLimits plugin counts them.
//!
//! For every node, the distinct volumes used by the (not terminated) pods on
//! it are counted per CSI driver: a bound claim counts its PV's
//! `driver/volumeHandle` (in-tree sources count under the CSI driver they are
//! migrated to), an unbound claim counts once against its class's provisioner,
//! and an inline CSI volume counts under its driver. A node is over its limit
//! when a driver's count exceeds `CSINode.spec.drivers[].allocatable.count`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::plan::Violation;
use super::snapshot::{PodVolume, Snapshot};
use crate::model::ClaimKey;

/// What a claim resolves to for counting.
pub enum ClaimUse<'a> {
    /// Bound to a volume of this driver with this handle.
    Volume { driver: &'a str, handle: &'a str },
    /// Not bound yet: it will be a volume of this provisioner.
    Unbound { provisioner: &'a str },
    /// Neither: not counted (no class, non-CSI source, or no such claim).
    Uncounted,
}

pub fn violations<'a>(
    snapshot: &'a Snapshot,
    resolve: impl Fn(&ClaimKey) -> ClaimUse<'a>,
) -> Vec<Violation> {
    // node → driver → distinct volume ids
    let mut used: BTreeMap<&str, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for pod in &snapshot.pods {
        let Some(node) = pod.node_name.as_deref() else {
            continue;
        };
        if pod.terminated {
            continue;
        }
        for vol in &pod.volumes {
            let (driver, id) = match vol {
                PodVolume::InlineCsi { driver, handle } => {
                    (driver.as_str(), format!("{driver}/{handle}/{}", pod.key))
                }
                PodVolume::Claim(name) => {
                    let key = ClaimKey::new(pod.key.namespace.clone(), name.clone());
                    match resolve(&key) {
                        ClaimUse::Volume { driver, handle } => {
                            (driver, format!("{driver}/{handle}"))
                        }
                        ClaimUse::Unbound { provisioner } => (provisioner, format!("claim:{key}")),
                        ClaimUse::Uncounted => continue,
                    }
                }
            };
            used.entry(node)
                .or_default()
                .entry(driver.to_string())
                .or_default()
                .insert(id);
        }
    }
    let limits: HashMap<(&str, &str), u32> = snapshot
        .csi_nodes
        .iter()
        .flat_map(|n| {
            n.drivers
                .iter()
                .filter_map(move |(d, c)| c.map(|c| ((n.name.as_str(), d.as_str()), c)))
        })
        .collect();
    let mut out = Vec::new();
    for (node, drivers) in used {
        for (driver, ids) in drivers {
            if let Some(&limit) = limits.get(&(node, driver.as_str())) {
                let count = ids.len() as u32;
                if count > limit {
                    out.push(Violation {
                        node: node.to_string(),
                        driver,
                        limit,
                        count,
                    });
                }
            }
        }
    }
    out
}
