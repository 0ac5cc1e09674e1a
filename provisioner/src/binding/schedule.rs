//! Where pods without a node go, and what their volumes become there.
//!
//! For every pod that has no `spec.nodeName` (and has not finished), the
//! scheduler's filters run on every node in the scheduler's own order, and
//! the first one that fails rejects the node: NodeUnschedulable,
//! TaintToleration, NodeAffinity (`nodeSelector` and required node
//! affinity), NodeResourcesFit (requests against allocatable, counting the
//! pods already on the node), NodeVolumeLimits (CSINode), VolumeBinding
//! (bound volumes' node affinity; for WaitForFirstConsumer claims a free
//! volume on the node or provisioning there: `allowedTopologies` and
//! CSIStorageCapacity) and VolumeZone. Before them, the PreFilter checks
//! that fail a pod on every node at once: node affinity whose terms all
//! name nodes (`metadata.name In`) but no node in common ("pod affinity
//! terms conflict"), a ReadWriteOncePod claim already in use, a claim that
//! does not exist or is being deleted, an unbound Immediate claim. When
//! every term names nodes, only those are filtered; the others count as
//! "node(s) didn't satisfy plugin(s) [NodeAffinity]", as the scheduler
//! reports nodes its PreFilter left out.
//!
//! Where berth chooses (documented, deterministic; upstream's scoring is
//! not reproduced, so the real scheduler may pick another feasible node):
//! - pods are scheduled one at a time in creation order, each decision
//!   visible to the next (pods and requests per node, volume counts,
//!   claims in use, volumes taken, storage planned);
//! - among the nodes that pass every filter, the one running the fewest
//!   pods wins, ties by node name;
//! - the pod's WaitForFirstConsumer claims are then bound or provisioned on
//!   that node as VolumeBinding does (smallest request first);
//! - an unschedulable pod gets the scheduler's FailedScheduling message
//!   (`0/N nodes are available: …`), without the preemption sentence that
//!   follows it in the event, since berth does not predict preemption;
//! - a node without `status.allocatable` (a hand-written Node) is not
//!   checked for resources;
//! - pods a StatefulSet will create are scheduled too, from its template,
//!   after the pods that exist, each set's in ordinal order (the
//!   StatefulSet controller creates them one by one).
//!
//! Every pod meets every node, so the per-node check must be cheap: node
//! state lives in vectors by node position, a rejection's reasons inline,
//! and for the common pod — one plain WaitForFirstConsumer claim — what a
//! node offers a claim of that shape (its largest free volume, whether
//! provisioning there is possible and up to what size) is remembered per
//! node and forgotten only for the nodes that could see a volume when a
//! binding takes it. A node's trial never takes the volumes it finds (it
//! excludes them), so the index's free-lists never learn a false "taken".

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::admission::Admitted;
use super::engine::Engine;
use super::expand::SetPod;
use super::index::Filter;
use super::limits::{self, VolumeId, VolumeSets};
use super::matcher::ClaimView;
use super::placement::Room;
use super::plan::{NodeVerdict, PendingReason, PodPlacement};
use super::snapshot::{Node, Pod, PodScheduling, PodVolume, Resources, Taint, TaintEffect};
use crate::model::{AccessMode, ClaimKey, ObjectKey, VolumeMode};

/// A pod to schedule: one that exists without a node, or one a StatefulSet
/// will create.
struct Candidate<'p> {
    key: &'p ObjectKey,
    /// Creation order: existing pods first by their place in the input,
    /// then each set's pods by ordinal.
    order: (u8, usize, u32),
    claims: Vec<&'p str>,
    scheduling: &'p PodScheduling,
    /// The pod object, for its inline volumes (`None` for a set's pod).
    pod: Option<&'p Pod>,
}

pub const NODE_UNSCHEDULABLE: &str = "NodeUnschedulable";
pub const TAINT_TOLERATION: &str = "TaintToleration";
pub const NODE_AFFINITY: &str = "NodeAffinity";
pub const NODE_RESOURCES_FIT: &str = "NodeResourcesFit";
pub const NODE_VOLUME_LIMITS: &str = "NodeVolumeLimits";
pub const VOLUME_BINDING: &str = "VolumeBinding";
pub const VOLUME_ZONE: &str = "VolumeZone";

// The scheduler's reasons, word for word (v1.36).
const UNSCHEDULABLE: &str = "node(s) were unschedulable";
const UNTOLERATED: &str = "node(s) had untolerated taint(s)";
const AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
const MAX_VOLUMES: &str = "node(s) exceed max volume count";
const BIND_CONFLICT: &str = "node(s) didn't find available persistent volumes to bind";
const NODE_CONFLICT: &str = "node(s) didn't match PersistentVolume's node affinity";
const NOT_ENOUGH_SPACE: &str = "node(s) did not have enough free storage";
const PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";
const ZONE_CONFLICT: &str = "node(s) had no available volume zone";
const RWOP_CONFLICT: &str = "node(s) unavailable due to PersistentVolumeClaim with ReadWriteOncePod access mode already in-use by another pod";
const UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
const NO_NODES: &str = "no nodes available to schedule pods";
/// A node outside the names NodeAffinity's PreFilter narrowed the pod to.
const NOT_NAMED: &str = "node(s) didn't satisfy plugin(s) [NodeAffinity]";
const TERMS_CONFLICT: &str = "pod affinity terms conflict";

/// The labels VolumeZone compares between a bound volume and a node.
const ZONE_LABELS: [&str; 4] = [
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
];

/// What one of a pod's claims asks of a node.
enum Need {
    /// Bound to this volume: its node affinity and zone labels count.
    Bound(usize),
    /// Names a volume that does not exist.
    NoVolume,
    /// Its volume is being made on this node.
    On(String),
    /// Being provisioned wherever its provisioner likes: no constraint.
    Anywhere,
    /// WaitForFirstConsumer: bound or provisioned on the chosen node
    /// (admitted index).
    Delayed(usize),
}

#[derive(Default, Clone, Copy)]
struct Load {
    pods: i64,
    used: Resources,
}

/// The state scheduling carries from one pod to the next.
struct State<'p> {
    /// By node position (nodes in name order).
    load: Vec<Load>,
    /// Claims used by pods that are on a node (or placed by berth).
    in_use: HashSet<ClaimKey>,
    volumes: VolumeSets<'p>,
    limits: HashMap<(&'p str, &'p str), u32>,
    bound: HashMap<ClaimKey, usize>,
    /// Claims being provisioned → the node named for them, if any.
    provisioning: HashMap<ClaimKey, Option<String>>,
    waiting: HashSet<ClaimKey>,
}

impl<'s> Engine<'s> {
    /// Schedules the pods without a node (see the module documentation);
    /// `verdicts` keeps every rejected node's reason for `explain`.
    pub(super) fn schedule_pods<'p>(
        &mut self,
        admitted: &[Admitted<'s>],
        set_pods: &'p [SetPod<'s>],
        verdicts: bool,
    ) where
        's: 'p,
    {
        let mut pods: Vec<Candidate<'p>> = self
            .snap
            .pods
            .iter()
            .filter(|p| p.node_name.is_none() && !p.terminated)
            .map(|p| Candidate {
                key: &p.key,
                order: (0, p.seq, 0),
                claims: p
                    .volumes
                    .iter()
                    .filter_map(|v| match v {
                        PodVolume::Claim(name) => Some(name.as_str()),
                        _ => None,
                    })
                    .collect(),
                scheduling: &p.scheduling,
                pod: Some(p),
            })
            .collect();
        pods.extend(set_pods.iter().map(|p| Candidate {
            key: &p.key,
            order: (1, p.set.seq, p.ordinal),
            claims: p.claims.iter().map(String::as_str).collect(),
            scheduling: &p.set.scheduling,
            pod: None,
        }));
        if pods.is_empty() {
            return;
        }
        pods.sort_by(|a, b| (a.order, a.key).cmp(&(b.order, b.key)));
        let nodes = Nodes::new(self.snap.nodes.iter().collect());
        let index_of: HashMap<&ClaimKey, usize> = admitted
            .iter()
            .enumerate()
            .map(|(i, a)| (&a.claim.key, i))
            .collect();
        let mut state: State<'p> = self.scheduling_state(admitted, &nodes);
        let facts: Vec<NodeFacts> = nodes
            .list
            .iter()
            .map(|n| NodeFacts {
                limited: state.limits.keys().any(|(node, _)| *node == n.name),
                zoned: ZONE_LABELS.iter().any(|k| n.labels.contains_key(*k)),
            })
            .collect();
        let mut cache = ShapeCache::new(nodes.list.len());
        let mut resolved: HashSet<ClaimKey> = HashSet::default();

        // Reused from pod to pod.
        let mut feasible: Vec<usize> = Vec::with_capacity(nodes.list.len());
        let mut histogram: Vec<(&'static str, usize)> = Vec::new();
        for pod in &pods {
            // NodeAffinity's PreFilter runs first: a pod whose every term
            // names nodes is tried on those alone, and none is a conflict.
            let named = pod
                .scheduling
                .affinity
                .as_ref()
                .and_then(|a| a.named_nodes());
            let (prefilter, needs) = match &named {
                Some(names) if names.is_empty() => (
                    Some((NODE_AFFINITY, TERMS_CONFLICT.to_string())),
                    Vec::new(),
                ),
                _ => self.pod_needs(pod, admitted, &index_of, &state),
            };
            feasible.clear();
            histogram.clear();
            let mut rejected: Vec<NodeVerdict> = Vec::new();
            if prefilter.is_none() {
                let counted = self.pod_volume_ids(pod, admitted, &index_of, &state);
                let shape = self.one_claim_shape(&needs, admitted, &mut cache);
                for (at, &node) in nodes.list.iter().enumerate() {
                    let trial = Trial {
                        at,
                        node,
                        facts: &facts[at],
                    };
                    let unnamed = named
                        .as_ref()
                        .is_some_and(|names| !names.contains(node.name.as_str()));
                    let verdict = if unnamed {
                        Some((NODE_AFFINITY, Reasons::one(NOT_NAMED)))
                    } else {
                        self.filter_node(
                            pod, &trial, &needs, shape, &counted, &state, admitted, &mut cache,
                        )
                    };
                    match verdict {
                        None => feasible.push(at),
                        Some((filter, reasons)) => {
                            for &r in reasons.as_slice() {
                                // The same constant, usually the same address.
                                let same = |seen: &str| {
                                    std::ptr::eq(seen.as_ptr(), r.as_ptr()) && seen.len() == r.len()
                                        || seen == r
                                };
                                match histogram.iter_mut().find(|(seen, _)| same(seen)) {
                                    Some((_, n)) => *n += 1,
                                    None => histogram.push((r, 1)),
                                }
                            }
                            if verdicts {
                                rejected.push(NodeVerdict {
                                    node: node.name.clone(),
                                    filter,
                                    reasons: reasons
                                        .as_slice()
                                        .iter()
                                        .map(|r| r.to_string())
                                        .collect(),
                                });
                            }
                        }
                    }
                }
            } else if verdicts {
                rejected = nodes
                    .list
                    .iter()
                    .map(|n| NodeVerdict {
                        node: n.name.clone(),
                        filter: prefilter.as_ref().map_or("", |p| p.0),
                        reasons: prefilter.iter().map(|p| p.1.clone()).collect(),
                    })
                    .collect();
            }
            // Positions follow node names, so the smallest position breaks
            // a tie on pods by name.
            let chosen = feasible
                .iter()
                .copied()
                .min_by_key(|&at| (state.load[at].pods, at));
            let reason = match chosen {
                Some(_) => None,
                None => Some(fit_error(
                    nodes.list.len(),
                    prefilter.as_ref().map(|p| p.1.as_str()),
                    &histogram,
                )),
            };
            if let Some(at) = chosen {
                let placed = Placed {
                    at,
                    node: nodes.list[at],
                };
                self.commit(
                    pod,
                    placed,
                    &needs,
                    admitted,
                    &index_of,
                    &mut state,
                    &mut resolved,
                    &nodes,
                    &mut cache,
                );
            }
            self.plan.scheduling.push(PodPlacement {
                pod: pod.key.clone(),
                node: chosen.map(|at| nodes.list[at].name.clone()),
                feasible_nodes: feasible.len(),
                reason,
                rejected,
            });
        }
        self.plan.pending.retain(|p| {
            !(resolved.contains(&p.claim)
                && matches!(p.reason, PendingReason::WaitingForPodScheduled(_)))
        });
    }

    fn scheduling_state<'p>(&self, admitted: &[Admitted<'s>], nodes: &Nodes<'s>) -> State<'p>
    where
        's: 'p,
    {
        let mut bound: HashMap<ClaimKey, usize> = HashMap::default();
        for (v, b) in self.taken.iter().enumerate() {
            if let Some(b) = b {
                bound.insert(self.plan.bindings[*b as usize].claim.clone(), v);
            }
        }
        let class_of: HashMap<&ClaimKey, &str> = admitted
            .iter()
            .map(|a| (&a.claim.key, a.class.as_str()))
            .collect();
        let mut load = vec![Load::default(); nodes.list.len()];
        let mut in_use = HashSet::default();
        for pod in self.snap.pods.iter().filter(|p| !p.terminated) {
            let Some(node) = pod.node_name.as_deref() else {
                continue;
            };
            if let Some(&at) = nodes.position.get(node) {
                let l = &mut load[at];
                l.pods = l.pods.saturating_add(1);
                l.used.add(&pod.scheduling.requests);
            }
            for v in &pod.volumes {
                if let PodVolume::Claim(name) = v {
                    in_use.insert(ClaimKey::new(pod.key.namespace.clone(), name.clone()));
                }
            }
        }
        let volumes = {
            let resolve = |ns: &'s str, name: &'s str| {
                let key = ClaimKey::new(ns.to_string(), name.to_string());
                self.claim_use(class_of.get(&key).copied(), bound.get(&key).copied())
            };
            limits::volume_sets(self.snap, |p| p.node_name.as_deref(), &resolve)
        };
        State {
            load,
            in_use,
            volumes,
            limits: limits::published_limits(self.snap),
            bound,
            provisioning: self
                .plan
                .provisioning
                .iter()
                .map(|p| (p.claim.clone(), p.node.clone()))
                .collect(),
            waiting: self
                .plan
                .pending
                .iter()
                .filter(|p| matches!(p.reason, PendingReason::WaitingForPodScheduled(_)))
                .map(|p| p.claim.clone())
                .collect(),
        }
    }

    /// The pod's claims, each with what it asks of a node, or the PreFilter
    /// failure that rules out every node: (plugin, message).
    fn pod_needs(
        &self,
        pod: &Candidate<'_>,
        admitted: &[Admitted<'s>],
        index_of: &HashMap<&ClaimKey, usize>,
        state: &State<'_>,
    ) -> (Option<(&'static str, String)>, Vec<Need>) {
        let keys: Vec<ClaimKey> = pod
            .claims
            .iter()
            .map(|name| ClaimKey::new(pod.key.namespace.clone(), name.to_string()))
            .collect();
        // VolumeRestrictions runs its PreFilter before VolumeBinding's.
        for key in &keys {
            let rwop = index_of.get(key).is_some_and(|&i| {
                admitted[i]
                    .claim
                    .access_modes
                    .contains(AccessMode::ReadWriteOncePod)
            });
            if rwop && state.in_use.contains(key) {
                return (
                    Some(("VolumeRestrictions", RWOP_CONFLICT.into())),
                    Vec::new(),
                );
            }
        }
        let mut needs = Vec::new();
        let mut immediate = false;
        for key in &keys {
            let Some(&i) = index_of.get(key) else {
                let msg = format!("persistentvolumeclaim {:?} not found", key.name);
                return (Some((VOLUME_BINDING, msg)), Vec::new());
            };
            let claim = admitted[i].claim.as_ref();
            if claim.deleting {
                let msg = format!("persistentvolumeclaim {:?} is being deleted", key.name);
                return (Some((VOLUME_BINDING, msg)), Vec::new());
            }
            let need = if let Some(&v) = state.bound.get(key) {
                Need::Bound(v)
            } else if state.waiting.contains(key) {
                Need::Delayed(i)
            } else if let Some(node) = state.provisioning.get(key) {
                match node {
                    Some(n) => Need::On(n.clone()),
                    None => Need::Anywhere,
                }
            } else if claim
                .volume_name
                .as_deref()
                .is_some_and(|v| !self.by_name.contains_key(v))
            {
                Need::NoVolume
            } else {
                immediate = true;
                continue;
            };
            needs.push(need);
        }
        if immediate {
            return (Some((VOLUME_BINDING, UNBOUND_IMMEDIATE.into())), Vec::new());
        }
        (None, needs)
    }

    /// The volumes the pod would add to a node's counts, by driver.
    fn pod_volume_ids<'p>(
        &self,
        pod: &Candidate<'p>,
        admitted: &[Admitted<'s>],
        index_of: &HashMap<&ClaimKey, usize>,
        state: &State<'p>,
    ) -> Vec<(&'p str, VolumeId<'p>)>
    where
        's: 'p,
    {
        let resolve = |ns: &'p str, name: &'p str| {
            let key = ClaimKey::new(ns.to_string(), name.to_string());
            let class = index_of.get(&key).map(|&i| admitted[i].class.as_str());
            self.claim_use(class, state.bound.get(&key).copied())
        };
        match pod.pod {
            Some(p) => limits::pod_volumes(p, &resolve),
            None => pod
                .claims
                .iter()
                .filter_map(|name| limits::claim_volume(&pod.key.namespace, name, &resolve))
                .collect(),
        }
    }

    /// The shape of the pod's only WaitForFirstConsumer claim, when that is
    /// all VolumeBinding has to search for it and the claim is plain (no
    /// selector, data source or selected node): then whether a node has a
    /// volume or room for it is a cached fact of the node, not a search.
    fn one_claim_shape<'c>(
        &self,
        needs: &[Need],
        admitted: &'c [Admitted<'s>],
        cache: &mut ShapeCache<'c>,
    ) -> Option<(usize, usize)> {
        let mut delayed = needs.iter().filter_map(|n| match n {
            Need::Delayed(i) => Some(*i),
            _ => None,
        });
        let (Some(i), None) = (delayed.next(), delayed.next()) else {
            return None;
        };
        let a = &admitted[i];
        let claim = a.claim.as_ref();
        if claim.selector.is_some() || claim.data_source.is_some() || claim.selected_node.is_some()
        {
            return None;
        }
        let key = ShapeKey {
            class: a.class.as_str(),
            mode: claim.volume_mode,
            modes: claim.access_modes.bits(),
            attributes_class: claim.attributes_class.as_str(),
        };
        Some((cache.shape(key), i))
    }

    /// The first filter that rejects the trial's node for the pod, with its
    /// reasons.
    #[allow(clippy::too_many_arguments)]
    fn filter_node(
        &mut self,
        pod: &Candidate<'_>,
        trial: &Trial<'_>,
        needs: &[Need],
        shape: Option<(usize, usize)>,
        counted: &[(&str, VolumeId<'_>)],
        state: &State<'_>,
        admitted: &[Admitted<'s>],
        cache: &mut ShapeCache<'_>,
    ) -> Option<(&'static str, Reasons)> {
        let s = pod.scheduling;
        let node = trial.node;
        if node.unschedulable && !tolerates_unschedulable(s) {
            return Some((NODE_UNSCHEDULABLE, Reasons::one(UNSCHEDULABLE)));
        }
        if node
            .taints
            .iter()
            .filter(|t| matches!(t.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute))
            .any(|t| !s.tolerations.iter().any(|tol| tol.tolerates(t)))
        {
            return Some((TAINT_TOLERATION, Reasons::one(UNTOLERATED)));
        }
        let selected = s
            .node_selector
            .iter()
            .all(|(k, v)| node.labels.get(k) == Some(v));
        if !selected
            || s.affinity
                .as_ref()
                .is_some_and(|a| !a.matches(&node.name, &node.labels))
        {
            return Some((NODE_AFFINITY, Reasons::one(AFFINITY)));
        }
        if let Some(a) = &node.allocatable {
            let short = insufficient(&s.requests, a, &state.load[trial.at]);
            if !short.is_empty() {
                return Some((NODE_RESOURCES_FIT, short));
            }
        }
        if trial.facts.limited && over_volume_limit(node, counted, state) {
            return Some((NODE_VOLUME_LIMITS, Reasons::one(MAX_VOLUMES)));
        }
        if !needs.is_empty() {
            let binding = match shape {
                Some(shape) => self.volume_binding_cached(trial, needs, shape, admitted, cache),
                None => self.volume_binding(node, needs, admitted),
            };
            if !binding.is_empty() {
                return Some((VOLUME_BINDING, binding));
            }
        }
        if trial.facts.zoned && self.zone_conflict(node, needs) {
            return Some((VOLUME_ZONE, Reasons::one(ZONE_CONFLICT)));
        }
        None
    }

    /// VolumeBinding's reasons from the claims that are bound, named or
    /// being provisioned; the WaitForFirstConsumer ones go to `delayed`.
    fn settled_needs(&self, node: &Node, needs: &[Need], delayed: &mut Vec<usize>) -> Reasons {
        let mut reasons = Reasons::default();
        for need in needs {
            let reason = match need {
                Need::Bound(v) => {
                    let affinity = self.snap.volumes[*v].node_affinity.as_ref();
                    affinity
                        .is_some_and(|a| !a.matches(&node.name, &node.labels))
                        .then_some(NODE_CONFLICT)
                }
                Need::NoVolume => Some(PV_NOT_EXIST),
                Need::On(n) if *n != node.name => Some(BIND_CONFLICT),
                Need::On(_) | Need::Anywhere => None,
                Need::Delayed(i) => {
                    delayed.push(*i);
                    None
                }
            };
            if let Some(r) = reason {
                reasons.add(r);
            }
        }
        reasons
    }

    /// VolumeBinding's Filter for a pod whose one delayed claim has a
    /// cached shape: a free volume of that shape on the node as large as
    /// the request, else provisioning there with room.
    fn volume_binding_cached(
        &mut self,
        trial: &Trial<'_>,
        needs: &[Need],
        (shape, claim): (usize, usize),
        admitted: &[Admitted<'s>],
        cache: &mut ShapeCache<'_>,
    ) -> Reasons {
        let node = trial.node;
        // The one delayed claim is `claim`; the others are settled.
        let mut reasons = if needs.len() > 1 {
            self.settled_needs(node, needs, &mut Vec::new())
        } else {
            Reasons::default()
        };
        let view = ClaimView::of(&admitted[claim]);
        let largest = match cache.largest(shape, trial.at) {
            Some(known) => known,
            None => {
                let key = cache.keys[shape];
                let found = self.index.largest_on_node(
                    &self.snap.volumes,
                    key.class,
                    key.mode,
                    view.claim.access_modes,
                    key.attributes_class,
                    &node.name,
                    &node.labels,
                );
                cache.set_largest(shape, trial.at, found);
                found
            }
        };
        if largest.is_some_and(|l| l >= view.request.as_nanos()) {
            return reasons;
        }
        let room = match cache.room(shape, trial.at) {
            Some(known) => known,
            None => {
                let room = match self.provision(&view, Some(&node.name)) {
                    Ok(p) => Some(
                        self.classes
                            .get(p.class.as_str())
                            .map_or(Room::Any, |c| self.storage_room(c, &node.name)),
                    ),
                    Err(_) => None,
                };
                cache.set_room(shape, trial.at, room);
                room
            }
        };
        match room {
            Some(room) if !room.admits(view.request) => reasons.add(NOT_ENOUGH_SPACE),
            Some(_) => {}
            None => reasons.add(BIND_CONFLICT),
        }
        reasons
    }

    /// VolumeBinding's Filter: bound volumes must reach the node; delayed
    /// claims must each find a distinct free volume there or be
    /// provisionable there with room.
    fn volume_binding(
        &mut self,
        node: &Node,
        needs: &[Need],
        admitted: &[Admitted<'s>],
    ) -> Reasons {
        let mut delayed: Vec<usize> = Vec::new();
        let mut reasons = self.settled_needs(node, needs, &mut delayed);
        // Smallest request first, as the binder matches them; volumes
        // found are held for the rest of this node's check only.
        delayed.sort_by(|&a, &b| {
            let (ca, cb) = (&admitted[a].claim, &admitted[b].claim);
            (ca.request, &ca.key).cmp(&(cb.request, &cb.key))
        });
        let mut held = Vec::new();
        for i in delayed {
            let a = &admitted[i];
            let claim = a.claim.as_ref();
            let view = ClaimView::of(a);
            let filter = Filter {
                selector: claim.selector.as_ref(),
                attributes_class: &claim.attributes_class,
                node: Some((&node.name, &node.labels)),
                exclude: &held,
            };
            let found = self.index.smallest_any_set(
                &self.snap.volumes,
                &a.class,
                claim.volume_mode,
                claim.access_modes,
                view.request,
                &filter,
            );
            if let Some(v) = found {
                held.push(v);
                continue;
            }
            match self.provision(&view, Some(&node.name)) {
                Ok(p) => {
                    let fits = self
                        .classes
                        .get(p.class.as_str())
                        .is_none_or(|c| self.storage_fits(c, &node.name, view.request));
                    if !fits {
                        reasons.add(NOT_ENOUGH_SPACE);
                    }
                }
                Err(_) => reasons.add(BIND_CONFLICT),
            }
        }
        reasons
    }

    /// VolumeZone: a bound volume's zone and region labels must hold the
    /// node's values, when the node has any such label.
    /// Only for a node with a zone or region label (`NodeFacts::zoned`).
    fn zone_conflict(&self, node: &Node, needs: &[Need]) -> bool {
        needs.iter().any(|need| {
            let Need::Bound(v) = need else {
                return false;
            };
            let labels = &self.snap.volumes[*v].labels;
            ZONE_LABELS.iter().any(|k| {
                labels.get(*k).is_some_and(|zones| {
                    node.labels
                        .get(*k)
                        .is_none_or(|nv| !zones.split("__").any(|z| z == nv))
                })
            })
        })
    }

    /// Places the pod on its node: its delayed claims are decided there and
    /// everything the next pods see is updated.
    #[allow(clippy::too_many_arguments)]
    fn commit<'p>(
        &mut self,
        pod: &Candidate<'p>,
        placed: Placed<'s>,
        needs: &[Need],
        admitted: &[Admitted<'s>],
        index_of: &HashMap<&ClaimKey, usize>,
        state: &mut State<'p>,
        resolved: &mut HashSet<ClaimKey>,
        nodes: &Nodes<'s>,
        cache: &mut ShapeCache<'_>,
    ) where
        's: 'p,
    {
        let node = placed.node;
        if pod.pod.is_some() {
            self.placed.insert(pod.key.clone(), node.name.as_str());
        }
        let l = &mut state.load[placed.at];
        l.pods = l.pods.saturating_add(1);
        l.used.add(&pod.scheduling.requests);
        let delayed: Vec<usize> = needs
            .iter()
            .filter_map(|n| match n {
                Need::Delayed(i) => Some(*i),
                _ => None,
            })
            .collect();
        let (bindings, provisioning) = (self.plan.bindings.len(), self.plan.provisioning.len());
        for &i in &delayed {
            let key = admitted[i].claim.key.clone();
            state.waiting.remove(&key);
            resolved.insert(key);
        }
        self.decide_on_node(admitted, delayed, &node.name);
        for b in &self.plan.bindings[bindings..] {
            if let Some(&v) = self.by_name.get(b.volume.as_str()) {
                state.bound.insert(b.claim.clone(), v);
                // Every node that could see this volume now sees one less.
                match self.snap.volumes[v]
                    .node_affinity
                    .as_ref()
                    .and_then(|a| a.as_single_in())
                {
                    Some((key, values)) => {
                        for value in values {
                            for &at in nodes.labelled(key, value) {
                                cache.touch(at);
                            }
                        }
                    }
                    None => cache.touch_all(),
                }
            }
        }
        for p in &self.plan.provisioning[provisioning..] {
            state
                .provisioning
                .insert(p.claim.clone(), Some(node.name.clone()));
        }
        for name in &pod.claims {
            state
                .in_use
                .insert(ClaimKey::new(pod.key.namespace.clone(), name.to_string()));
        }
        for (driver, id) in self.pod_volume_ids(pod, admitted, index_of, state) {
            state
                .volumes
                .entry((node.name.as_str(), driver))
                .or_default()
                .insert(id);
        }
    }
}

/// The nodes in name order, with lookups by name and by label.
struct Nodes<'s> {
    list: Vec<&'s Node>,
    position: HashMap<&'s str, usize>,
    /// `key=value` → positions of the nodes with that label.
    by_label: HashMap<(&'s str, &'s str), Vec<usize>>,
}

impl<'s> Nodes<'s> {
    fn new(mut list: Vec<&'s Node>) -> Self {
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let position = list
            .iter()
            .enumerate()
            .map(|(at, n)| (n.name.as_str(), at))
            .collect();
        let mut by_label: HashMap<(&'s str, &'s str), Vec<usize>> = HashMap::default();
        for (at, n) in list.iter().enumerate() {
            for (k, v) in n.labels.iter() {
                by_label
                    .entry((k.as_str(), v.as_str()))
                    .or_default()
                    .push(at);
            }
        }
        Nodes {
            list,
            position,
            by_label,
        }
    }

    fn labelled<'k>(&'k self, key: &'k str, value: &'k str) -> &'k [usize] {
        // The map's keys live longer than `'k`; looking up with shorter
        // ones only needs the (covariant) map seen at `'k`.
        let by_label: &'k HashMap<(&'k str, &'k str), Vec<usize>> = &self.by_label;
        by_label.get(&(key, value)).map_or(&[], Vec::as_slice)
    }
}

/// Facts of a node that hold for the whole run.
struct NodeFacts {
    /// Some CSINode count applies to it.
    limited: bool,
    /// It has a zone or region label (VolumeZone looks at it).
    zoned: bool,
}

/// One node being checked for a pod.
struct Trial<'a> {
    at: usize,
    node: &'a Node,
    facts: &'a NodeFacts,
}

/// The node chosen for a pod.
#[derive(Clone, Copy)]
struct Placed<'s> {
    at: usize,
    node: &'s Node,
}

/// What a plain WaitForFirstConsumer claim's search depends on besides
/// its request and the node.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct ShapeKey<'c> {
    class: &'c str,
    mode: VolumeMode,
    modes: u8,
    attributes_class: &'c str,
}

/// A node's largest free capacity for a shape, with the node's stamp when
/// it was found.
type Stamped = (u64, Option<i128>);

/// Per claim shape and node: the largest free volume there (valid until a
/// binding touches the node) and whether provisioning there is possible
/// and up to what size (valid for the whole run: the capacity check does
/// not subtract what is planned).
struct ShapeCache<'c> {
    ids: HashMap<ShapeKey<'c>, usize>,
    keys: Vec<ShapeKey<'c>>,
    /// Per shape, per node: (stamp when computed, largest free capacity).
    largest: Vec<Vec<Option<Stamped>>>,
    /// Per shape, per node: `None` inside when it cannot be provisioned.
    room: Vec<Vec<Option<Option<Room>>>>,
    /// Per node: bumped when a volume it could see is bound.
    touched: Vec<u32>,
    /// Bumped when a volume every node could see is bound.
    epoch: u32,
}

impl<'c> ShapeCache<'c> {
    fn new(nodes: usize) -> Self {
        ShapeCache {
            ids: HashMap::default(),
            keys: Vec::new(),
            largest: Vec::new(),
            room: Vec::new(),
            touched: vec![0; nodes],
            epoch: 0,
        }
    }

    fn shape(&mut self, key: ShapeKey<'c>) -> usize {
        let nodes = self.touched.len();
        *self.ids.entry(key).or_insert_with(|| {
            self.keys.push(key);
            self.largest.push(vec![None; nodes]);
            self.room.push(vec![None; nodes]);
            self.keys.len() - 1
        })
    }

    fn stamp(&self, at: usize) -> u64 {
        (u64::from(self.epoch) << 32) | u64::from(self.touched[at])
    }

    fn largest(&self, shape: usize, at: usize) -> Option<Option<i128>> {
        self.largest[shape][at]
            .filter(|(stamp, _)| *stamp == self.stamp(at))
            .map(|(_, largest)| largest)
    }

    fn set_largest(&mut self, shape: usize, at: usize, largest: Option<i128>) {
        self.largest[shape][at] = Some((self.stamp(at), largest));
    }

    fn room(&self, shape: usize, at: usize) -> Option<Option<Room>> {
        self.room[shape][at]
    }

    fn set_room(&mut self, shape: usize, at: usize, room: Option<Room>) {
        self.room[shape][at] = Some(room);
    }

    fn touch(&mut self, at: usize) {
        self.touched[at] = self.touched[at].wrapping_add(1);
    }

    fn touch_all(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
    }
}

/// A filter's reasons for rejecting a node, each once: at most four (the
/// four of NodeResourcesFit, or VolumeBinding's four), kept inline since
/// most nodes checked for most pods are rejected.
#[derive(Clone, Copy, Default)]
struct Reasons {
    list: [&'static str; 4],
    len: usize,
}

impl Reasons {
    fn one(r: &'static str) -> Self {
        let mut out = Reasons::default();
        out.add(r);
        out
    }

    fn add(&mut self, r: &'static str) {
        if self.len < self.list.len() && !self.as_slice().contains(&r) {
            self.list[self.len] = r;
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[&'static str] {
        &self.list[..self.len]
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A cordoned node takes a pod that tolerates its `unschedulable` taint.
fn tolerates_unschedulable(s: &PodScheduling) -> bool {
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        value: String::new(),
        effect: TaintEffect::NoSchedule,
    };
    s.tolerations.iter().any(|t| t.tolerates(&taint))
}

/// NodeResourcesFit's reasons, in its order.
fn insufficient(req: &Resources, alloc: &Resources, load: &Load) -> Reasons {
    let mut out = Reasons::default();
    if load.pods.saturating_add(1) > alloc.pods {
        out.add("Too many pods");
    }
    if req.milli_cpu > 0 && req.milli_cpu > alloc.milli_cpu.saturating_sub(load.used.milli_cpu) {
        out.add("Insufficient cpu");
    }
    if req.memory > 0 && req.memory > alloc.memory.saturating_sub(load.used.memory) {
        out.add("Insufficient memory");
    }
    if req.ephemeral_storage > 0
        && req.ephemeral_storage
            > alloc
                .ephemeral_storage
                .saturating_sub(load.used.ephemeral_storage)
    {
        out.add("Insufficient ephemeral-storage");
    }
    out
}

/// NodeVolumeLimits: the pod's volumes new to the node, per driver, on top
/// of the node's, above the CSINode's count.
fn over_volume_limit(node: &Node, counted: &[(&str, VolumeId<'_>)], state: &State<'_>) -> bool {
    // A pod has a handful of volumes: pairwise loops beat building sets
    // for every node checked.
    counted.iter().enumerate().any(|(i, (driver, _))| {
        if counted[..i].iter().any(|(d, _)| d == driver) {
            return false;
        }
        let Some(&limit) = state.limits.get(&(node.name.as_str(), *driver)) else {
            return false;
        };
        let on_node = state.volumes.get(&(node.name.as_str(), *driver));
        let mut new = 0usize;
        for (j, (d, id)) in counted.iter().enumerate() {
            let first = !counted[..j].iter().any(|(d2, id2)| d2 == d && id2 == id);
            if d == driver && first && !on_node.is_some_and(|ids| ids.contains(id)) {
                new += 1;
            }
        }
        on_node.map_or(0, |ids| ids.len()) + new > limit as usize
    })
}

/// The scheduler's FitError message, without the preemption sentence.
fn fit_error(nodes: usize, prefilter: Option<&str>, histogram: &[(&str, usize)]) -> String {
    if nodes == 0 {
        return NO_NODES.to_string();
    }
    let mut msg = format!("0/{nodes} nodes are available:");
    if let Some(p) = prefilter {
        msg.push_str(&format!(" {p}."));
        return msg;
    }
    let mut parts: Vec<String> = histogram.iter().map(|(r, n)| format!("{n} {r}")).collect();
    // Upstream sorts the "count reason" strings as strings.
    parts.sort();
    if !parts.is_empty() {
        msg.push_str(&format!(" {}.", parts.join(", ")));
    }
    msg
}
