//! Where new volumes of node-local provisioners can go, and where berth puts
//! them.
//!
//! Two decisions live here:
//! - the scheduler's storage capacity check (VolumeBinding's
//!   `hasEnoughCapacity`) for a WaitForFirstConsumer claim provisioned on
//!   its pod's node: when the provisioner's `CSIDriver` has
//!   `storageCapacity: true`, some `CSIStorageCapacity` of the claim's class
//!   that reaches the node must admit the request (`maximumVolumeSize` when
//!   set, else `capacity`);
//! - berth's placement of Immediate claims of a node-local provisioner
//!   (the catalog's `node_local`): nothing upstream chooses a node for them,
//!   so berth's controller does, from the same capacity objects. Among the
//!   nodes that have the driver registered (CSINode), match the class's
//!   `allowedTopologies`, are below the driver's volume limit and have room,
//!   the node with the most free storage wins, ties by name. Claims are
//!   placed one at a time in namespace/name order, each after the volumes
//!   already planned on a node are subtracted from its free storage, so a
//!   burst spreads over the nodes instead of piling onto the emptiest.
//!   Without storage capacity tracking the node with the fewest of the
//!   driver's volumes wins.
//!
//! Free storage is counted per node for the whole driver: a node-local
//! driver's classes share one pool, so a volume planned in one class
//! lowers what every class can get on that node (conservative for drivers
//! whose classes have separate pools). A capacity object lags its node by
//! a moment; when it says how many bytes the node's volumes held as it was
//! measured (berth's `csi.berth.dev/volume-bytes`), the node's pool is
//! that plus `capacity`, and what is free is the pool less the capacity of
//! the PVs on the node now and of the volumes planned there: volumes made
//! or deleted since the object was written count at once.

use rustc_hash::FxHashMap as HashMap;

use super::admission::Admitted;
use super::engine::Engine;
use super::matcher::ClaimView;
use super::plan::{NodeRejection, PendingClaim, PendingReason, Placement};
use super::snapshot::{CsiNode, Node, StorageClass};
use crate::model::{Labels, NodeSelector};
use crate::quantity::Quantity;

/// The largest request the capacity check admits on a node.
#[derive(Debug, Clone, Copy)]
pub(super) enum Room {
    /// The provisioner publishes no capacity: any request.
    Any,
    /// Up to the largest volume a capacity object reaching the node
    /// allows; `None`: no object reaches it, so nothing.
    UpTo(Option<Quantity>),
}

impl Room {
    pub(super) fn admits(&self, request: Quantity) -> bool {
        match self {
            Room::Any => true,
            Room::UpTo(limit) => limit.is_some_and(|l| l >= request),
        }
    }
}

fn bytes(q: Quantity) -> i128 {
    q.value_ceil()
}

impl<'s> Engine<'s> {
    /// Whether the provisioner publishes storage capacity (its CSIDriver has
    /// `storageCapacity: true`).
    fn tracks_capacity(&self, provisioner: &str) -> bool {
        self.snap
            .csi_drivers
            .iter()
            .any(|d| d.name == provisioner && d.storage_capacity)
    }

    /// The capacity objects of `class` that reach a node with `labels`.
    fn capacities_for<'a>(
        &'a self,
        class: &'a str,
        labels: &'a Labels,
    ) -> impl Iterator<Item = &'s super::snapshot::StorageCapacity> + 'a {
        self.snap
            .capacities
            .iter()
            .filter(move |c| c.class == class && c.reaches(labels))
    }

    /// The scheduler's `hasEnoughCapacity` for provisioning `request` of
    /// `class` on `node`.
    pub(super) fn storage_fits(&self, class: &StorageClass, node: &str, request: Quantity) -> bool {
        self.storage_room(class, node).admits(request)
    }

    /// What `hasEnoughCapacity` admits for `class` on `node`, whatever the
    /// request: it compares each capacity object with the request alone
    /// (nothing planned is subtracted), so this holds for the whole plan.
    pub(super) fn storage_room(&self, class: &StorageClass, node: &str) -> Room {
        if !self.tracks_capacity(&class.provisioner) {
            return Room::Any;
        }
        let Some(n) = self.nodes.get(node) else {
            return Room::UpTo(None);
        };
        Room::UpTo(
            self.capacities_for(&class.name, &n.labels)
                .filter_map(|c| c.volume_limit())
                .max(),
        )
    }

    /// Places the Immediate claims of node-local provisioners that have no
    /// node yet (`unplaced`, admitted indexes), in claim order.
    pub(super) fn place_unplaced(&mut self, admitted: &[Admitted<'s>], mut unplaced: Vec<usize>) {
        if unplaced.is_empty() {
            return;
        }
        unplaced.sort_by(|&a, &b| admitted[a].claim.key.cmp(&admitted[b].claim.key));
        // Each node with its CSINode, looked up once rather than per claim.
        let mut registrations: HashMap<&str, &'s CsiNode> = HashMap::default();
        for c in &self.snap.csi_nodes {
            registrations.entry(c.name.as_str()).or_insert(c);
        }
        let mut nodes: Vec<(&'s Node, Option<&'s CsiNode>)> = self
            .snap
            .nodes
            .iter()
            .map(|n| (n, registrations.get(n.name.as_str()).copied()))
            .collect();
        nodes.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        let mut load = Load::default();
        for i in unplaced {
            let a = &admitted[i];
            let view = ClaimView::of(a);
            let mut p = match self.provision(&view, None) {
                Ok(p) => p,
                Err(r) => {
                    self.plan.pending.push(PendingClaim {
                        claim: a.claim.key.clone(),
                        reason: r,
                        candidates: Vec::new(),
                    });
                    continue;
                }
            };
            let Some(class) = self.classes.get(p.class.as_str()).copied() else {
                continue;
            };
            load.count_planned(self, &p.provisioner);
            let source = p.content.as_ref().and_then(|c| self.source_affinity(c));
            match self.choose_node(class, &nodes, p.size(), source, &load) {
                Ok((node, placement)) => {
                    load.add(&p.provisioner, &node, p.size());
                    p.node = Some(node);
                    p.placement = Some(placement);
                    self.plan.provisioning.push(p);
                }
                Err(reason) => self.plan.pending.push(PendingClaim {
                    claim: a.claim.key.clone(),
                    reason,
                    candidates: Vec::new(),
                }),
            }
        }
    }

    fn choose_node(
        &self,
        class: &StorageClass,
        nodes: &[(&'s Node, Option<&'s CsiNode>)],
        request: Quantity,
        source: Option<&NodeSelector>,
        load: &Load,
    ) -> Result<(String, Placement), PendingReason> {
        let driver = class.provisioner.as_str();
        let tracked = self.tracks_capacity(driver);
        let want = bytes(request);
        let mut rejected: HashMap<NodeRejection, usize> = HashMap::default();
        // (score, node name, free bytes): the highest score wins, then the
        // smallest name.
        let mut best: Option<(i128, &str, Option<i128>)> = None;
        let mut feasible = 0;
        for &(node, csi_node) in nodes {
            let name = node.name.as_str();
            let registered = csi_node.and_then(|c| {
                c.drivers
                    .iter()
                    .find(|(d, _)| d == driver)
                    .map(|(_, limit)| *limit)
            });
            let Some(limit) = registered else {
                *rejected.entry(NodeRejection::NotRegistered).or_default() += 1;
                continue;
            };
            // A clone or a restore is made next to its source.
            if source.is_some_and(|s| !s.matches(name, &node.labels)) {
                *rejected.entry(NodeRejection::NotSourceNode).or_default() += 1;
                continue;
            }
            if let Some(allowed) = &class.allowed_topologies
                && !allowed.matches(name, &node.labels)
            {
                *rejected
                    .entry(NodeRejection::TopologyNotAllowed)
                    .or_default() += 1;
                continue;
            }
            let volumes = load.volumes(driver, name);
            if limit.is_some_and(|l| volumes >= l as usize) {
                *rejected.entry(NodeRejection::VolumeLimit).or_default() += 1;
                continue;
            }
            let (score, free) = if tracked {
                let planned = load.bytes(driver, name);
                let existing = load.pv_bytes(driver, name);
                // The best capacity object of the class on this node.
                let room = self
                    .capacities_for(&class.name, &node.labels)
                    .filter_map(|c| {
                        let reported = bytes(c.capacity.or(c.maximum_volume_size)?);
                        let limit = bytes(c.volume_limit()?);
                        let (free, largest) = match c.volume_bytes {
                            // Both figures were measured with `held` bytes
                            // of volumes; what the node has now replaces it.
                            Some(held) => {
                                let since = bytes(held) - existing - planned;
                                (reported + since, limit + since)
                            }
                            None => (reported - planned, limit),
                        };
                        (want <= free.min(largest)).then_some(free)
                    })
                    .max();
                let Some(free) = room else {
                    *rejected.entry(NodeRejection::NotEnoughStorage).or_default() += 1;
                    continue;
                };
                (free, Some(free))
            } else {
                (-(volumes as i128), None)
            };
            feasible += 1;
            let better = match best {
                None => true,
                Some((s, n, _)) => score > s || (score == s && name < n),
            };
            if better {
                best = Some((score, name, free));
            }
        }
        match best {
            Some((_, name, free)) => Ok((
                name.to_string(),
                Placement {
                    free: free.map(|b| Quantity::from_bytes(u64::try_from(b).unwrap_or(0))),
                    feasible,
                },
            )),
            None => {
                let mut rejected: Vec<(NodeRejection, usize)> = rejected.into_iter().collect();
                rejected.sort();
                Err(PendingReason::NoNodeForVolume {
                    class: class.name.clone(),
                    nodes: nodes.len(),
                    rejected,
                })
            }
        }
    }
}

/// What each node already holds or is about to get, per driver: volume
/// counts (existing volumes whose node affinity admits the node, plus those
/// planned on it) and planned bytes (capacity objects already count the
/// volumes that exist).
#[derive(Default)]
struct Load {
    /// Drivers whose existing volumes and earlier plan entries are counted.
    counted: Vec<String>,
    volumes: HashMap<(String, String), usize>,
    bytes: HashMap<(String, String), i128>,
    /// Capacity of the driver's PVs per node, deleting ones included (their
    /// volume is there until the agent deletes it).
    pv_bytes: HashMap<(String, String), i128>,
}

impl Load {
    /// Counts, once per driver, its volumes in the snapshot and the volumes
    /// the plan already makes on a node (selected nodes, scheduled pods).
    fn count_planned(&mut self, engine: &Engine<'_>, driver: &str) {
        if self.counted.iter().any(|d| d == driver) {
            return;
        }
        self.counted.push(driver.to_string());
        let snap = engine.snap;
        // Node-local volumes almost always name their node with one
        // `key In (value)` term: index nodes by label to find it directly.
        let mut by_label: HashMap<(&str, &str), Vec<&str>> = HashMap::default();
        for n in &snap.nodes {
            for (k, v) in &n.labels {
                by_label.entry((k, v)).or_default().push(&n.name);
            }
        }
        for v in &snap.volumes {
            if v.source.csi_driver.as_deref() != Some(driver) {
                continue;
            }
            let Some(affinity) = &v.node_affinity else {
                continue;
            };
            let nodes: Vec<&str> = match affinity.as_single_in() {
                Some((k, values)) => values
                    .iter()
                    .flat_map(|val| by_label.get(&(k, val.as_str())).into_iter().flatten())
                    .copied()
                    .collect(),
                None => snap
                    .nodes
                    .iter()
                    .filter(|n| affinity.matches(&n.name, &n.labels))
                    .map(|n| n.name.as_str())
                    .collect(),
            };
            for n in nodes {
                let key = (driver.to_string(), n.to_string());
                *self.pv_bytes.entry(key.clone()).or_default() += v.capacity.map_or(0, bytes);
                if !v.deleting {
                    *self.volumes.entry(key).or_default() += 1;
                }
            }
        }
        let planned: Vec<(String, Quantity)> = engine
            .plan
            .provisioning
            .iter()
            .filter(|p| p.provisioner == driver)
            .filter_map(|p| Some((p.node.clone()?, p.size())))
            .collect();
        for (node, request) in planned {
            self.add(driver, &node, request);
        }
    }

    fn add(&mut self, driver: &str, node: &str, request: Quantity) {
        let key = (driver.to_string(), node.to_string());
        *self.volumes.entry(key.clone()).or_default() += 1;
        *self.bytes.entry(key).or_default() += bytes(request);
    }

    fn volumes(&self, driver: &str, node: &str) -> usize {
        self.volumes
            .get(&(driver.to_string(), node.to_string()))
            .copied()
            .unwrap_or(0)
    }

    fn pv_bytes(&self, driver: &str, node: &str) -> i128 {
        self.pv_bytes
            .get(&(driver.to_string(), node.to_string()))
            .copied()
            .unwrap_or(0)
    }

    fn bytes(&self, driver: &str, node: &str) -> i128 {
        self.bytes
            .get(&(driver.to_string(), node.to_string()))
            .copied()
            .unwrap_or(0)
    }
}
