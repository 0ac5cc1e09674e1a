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
//! that fail a pod on every node at once: a ReadWriteOncePod claim already
//! in use, a claim that does not exist or is being deleted, an unbound
//! Immediate claim.
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

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use super::admission::Admitted;
use super::engine::Engine;
use super::expand::SetPod;
use super::index::Filter;
use super::limits::{self, VolumeId, VolumeSets};
use super::matcher::ClaimView;
use super::plan::{NodeVerdict, PendingReason, PodPlacement};
use super::snapshot::{Node, Pod, PodScheduling, PodVolume, Resources, Taint, TaintEffect};
use crate::model::{AccessMode, ClaimKey, ObjectKey};

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
    load: HashMap<&'p str, Load>,
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
        let mut nodes: Vec<&'s Node> = self.snap.nodes.iter().collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let index_of: HashMap<&ClaimKey, usize> = admitted
            .iter()
            .enumerate()
            .map(|(i, a)| (&a.claim.key, i))
            .collect();
        let mut state: State<'p> = self.scheduling_state(admitted);
        let mut resolved: HashSet<ClaimKey> = HashSet::default();

        for pod in &pods {
            let (prefilter, needs) = self.pod_needs(pod, admitted, &index_of, &state);
            let mut feasible: Vec<&'s Node> = Vec::new();
            let mut rejected: Vec<NodeVerdict> = Vec::new();
            let mut histogram: HashMap<&'static str, usize> = HashMap::default();
            if prefilter.is_none() {
                let counted = self.pod_volume_ids(pod, admitted, &index_of, &state);
                for &node in &nodes {
                    match self.filter_node(pod, node, &needs, &counted, &state, admitted) {
                        None => feasible.push(node),
                        Some((filter, reasons)) => {
                            for r in &reasons {
                                *histogram.entry(r).or_default() += 1;
                            }
                            if verdicts {
                                rejected.push(NodeVerdict {
                                    node: node.name.clone(),
                                    filter,
                                    reasons: reasons.iter().map(|r| r.to_string()).collect(),
                                });
                            }
                        }
                    }
                }
            } else if verdicts {
                rejected = nodes
                    .iter()
                    .map(|n| NodeVerdict {
                        node: n.name.clone(),
                        filter: prefilter.as_ref().map_or("", |p| p.0),
                        reasons: prefilter.iter().map(|p| p.1.clone()).collect(),
                    })
                    .collect();
            }
            let chosen = feasible.iter().copied().min_by(|a, b| {
                let (la, lb) = (state.pods_on(&a.name), state.pods_on(&b.name));
                (la, &a.name).cmp(&(lb, &b.name))
            });
            let reason = match chosen {
                Some(_) => None,
                None => Some(fit_error(
                    nodes.len(),
                    prefilter.as_ref().map(|p| p.1.as_str()),
                    &histogram,
                )),
            };
            if let Some(node) = chosen {
                self.commit(
                    pod,
                    node,
                    &needs,
                    admitted,
                    &index_of,
                    &mut state,
                    &mut resolved,
                );
            }
            self.plan.scheduling.push(PodPlacement {
                pod: pod.key.clone(),
                node: chosen.map(|n| n.name.clone()),
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

    fn scheduling_state<'p>(&self, admitted: &[Admitted<'s>]) -> State<'p>
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
        let mut load: HashMap<&'p str, Load> = HashMap::default();
        let mut in_use = HashSet::default();
        for pod in self.snap.pods.iter().filter(|p| !p.terminated) {
            let Some(node) = pod.node_name.as_deref() else {
                continue;
            };
            let l = load.entry(node).or_default();
            l.pods = l.pods.saturating_add(1);
            l.used.add(&pod.scheduling.requests);
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

    /// The first filter that rejects `node` for the pod, with its reasons.
    fn filter_node(
        &mut self,
        pod: &Candidate<'_>,
        node: &Node,
        needs: &[Need],
        counted: &[(&str, VolumeId<'_>)],
        state: &State<'_>,
        admitted: &[Admitted<'s>],
    ) -> Option<(&'static str, Vec<&'static str>)> {
        let s = pod.scheduling;
        if node.unschedulable && !tolerates_unschedulable(s) {
            return Some((NODE_UNSCHEDULABLE, vec![UNSCHEDULABLE]));
        }
        if node
            .taints
            .iter()
            .filter(|t| matches!(t.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute))
            .any(|t| !s.tolerations.iter().any(|tol| tol.tolerates(t)))
        {
            return Some((TAINT_TOLERATION, vec![UNTOLERATED]));
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
            return Some((NODE_AFFINITY, vec![AFFINITY]));
        }
        if let Some(a) = &node.allocatable {
            let load = state
                .load
                .get(node.name.as_str())
                .copied()
                .unwrap_or_default();
            let short = insufficient(&s.requests, a, &load);
            if !short.is_empty() {
                return Some((NODE_RESOURCES_FIT, short));
            }
        }
        if over_volume_limit(node, counted, state) {
            return Some((NODE_VOLUME_LIMITS, vec![MAX_VOLUMES]));
        }
        let binding = self.volume_binding(node, needs, admitted);
        if !binding.is_empty() {
            return Some((VOLUME_BINDING, binding));
        }
        if self.zone_conflict(node, needs) {
            return Some((VOLUME_ZONE, vec![ZONE_CONFLICT]));
        }
        None
    }

    /// VolumeBinding's Filter: bound volumes must reach the node; delayed
    /// claims must each find a distinct free volume there or be
    /// provisionable there with room.
    fn volume_binding(
        &mut self,
        node: &Node,
        needs: &[Need],
        admitted: &[Admitted<'s>],
    ) -> Vec<&'static str> {
        let mut reasons: Vec<&'static str> = Vec::new();
        let add = |r: &'static str, reasons: &mut Vec<&'static str>| {
            if !reasons.contains(&r) {
                reasons.push(r);
            }
        };
        let mut delayed: Vec<usize> = Vec::new();
        for need in needs {
            match need {
                Need::Bound(v) => {
                    let affinity = self.snap.volumes[*v].node_affinity.as_ref();
                    if affinity.is_some_and(|a| !a.matches(&node.name, &node.labels)) {
                        add(NODE_CONFLICT, &mut reasons);
                    }
                }
                Need::NoVolume => add(PV_NOT_EXIST, &mut reasons),
                Need::On(n) if *n != node.name => add(BIND_CONFLICT, &mut reasons),
                Need::On(_) | Need::Anywhere => {}
                Need::Delayed(i) => delayed.push(*i),
            }
        }
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
                self.index.take(v);
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
                        add(NOT_ENOUGH_SPACE, &mut reasons);
                    }
                }
                Err(_) => add(BIND_CONFLICT, &mut reasons),
            }
        }
        for v in held {
            self.index.release(v);
        }
        reasons
    }

    /// VolumeZone: a bound volume's zone and region labels must hold the
    /// node's values, when the node has any such label.
    fn zone_conflict(&self, node: &Node, needs: &[Need]) -> bool {
        if !ZONE_LABELS.iter().any(|k| node.labels.contains_key(*k)) {
            return false;
        }
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

    /// Places the pod on `node`: its delayed claims are decided there and
    /// everything the next pods see is updated.
    #[allow(clippy::too_many_arguments)]
    fn commit<'p>(
        &mut self,
        pod: &Candidate<'p>,
        node: &'s Node,
        needs: &[Need],
        admitted: &[Admitted<'s>],
        index_of: &HashMap<&ClaimKey, usize>,
        state: &mut State<'p>,
        resolved: &mut HashSet<ClaimKey>,
    ) where
        's: 'p,
    {
        if pod.pod.is_some() {
            self.placed.insert(pod.key.clone(), node.name.as_str());
        }
        let l = state.load.entry(node.name.as_str()).or_default();
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

impl State<'_> {
    fn pods_on(&self, node: &str) -> i64 {
        self.load.get(node).map_or(0, |l| l.pods)
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
fn insufficient(req: &Resources, alloc: &Resources, load: &Load) -> Vec<&'static str> {
    let mut out = Vec::new();
    if load.pods.saturating_add(1) > alloc.pods {
        out.push("Too many pods");
    }
    if req.milli_cpu > 0 && req.milli_cpu > alloc.milli_cpu.saturating_sub(load.used.milli_cpu) {
        out.push("Insufficient cpu");
    }
    if req.memory > 0 && req.memory > alloc.memory.saturating_sub(load.used.memory) {
        out.push("Insufficient memory");
    }
    if req.ephemeral_storage > 0
        && req.ephemeral_storage
            > alloc
                .ephemeral_storage
                .saturating_sub(load.used.ephemeral_storage)
    {
        out.push("Insufficient ephemeral-storage");
    }
    out
}

/// NodeVolumeLimits: the pod's volumes new to the node, per driver, on top
/// of the node's, above the CSINode's count.
fn over_volume_limit(node: &Node, counted: &[(&str, VolumeId<'_>)], state: &State<'_>) -> bool {
    let mut new: HashMap<&str, HashSet<&VolumeId<'_>>> = HashMap::default();
    for (driver, id) in counted {
        let on_node = state
            .volumes
            .get(&(node.name.as_str(), *driver))
            .is_some_and(|ids| ids.contains(id));
        if !on_node {
            new.entry(driver).or_default().insert(id);
        }
    }
    new.iter().any(|(driver, ids)| {
        state
            .limits
            .get(&(node.name.as_str(), *driver))
            .is_some_and(|&limit| {
                let current = state
                    .volumes
                    .get(&(node.name.as_str(), *driver))
                    .map_or(0, |s| s.len());
                current + ids.len() > limit as usize
            })
    })
}

/// The scheduler's FitError message, without the preemption sentence.
fn fit_error(nodes: usize, prefilter: Option<&str>, histogram: &HashMap<&str, usize>) -> String {
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
