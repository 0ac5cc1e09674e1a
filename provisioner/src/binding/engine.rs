//! The decision loop: one claim at a time, as the PV controller and the
//! scheduler's VolumeBinding plugin would decide it.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;

use super::admission::Admitted;
use super::index::{Filter, VolumeIndex};
use super::matcher::{ClaimView, VolumeState, is_bound_to_claim, satisfies_named};
use super::plan::*;
use super::reclaim;
use super::snapshot::{self, Claim, Node, Snapshot, StorageClass};
use crate::model::{BindingMode, ClaimKey, ClaimPhase, Labels, NodeSelector, ObjectKey};

const EMPTY_LABELS: &Labels = &Labels::new();

/// berth's driver makes a volume at least as large as its file system's
/// minimum (csi/format.rs): a Filesystem claim of a class with an `fsType`
/// asking for less gets that much.
fn rounded_up(
    class: &StorageClass,
    claim: &Claim,
    request: crate::quantity::Quantity,
) -> Option<crate::quantity::Quantity> {
    if class.provisioner != crate::csi::DRIVER_NAME
        || claim.volume_mode != crate::model::VolumeMode::Filesystem
    {
        return None;
    }
    let fs = class
        .parameters
        .iter()
        .find(|(k, _)| k == "csi.storage.k8s.io/fstype" || k == "fsType")
        .map(|(_, v)| v.as_str())?;
    let min = crate::csi::format::minimum_bytes(fs);
    (request.value_ceil() < i128::from(min)).then(|| crate::quantity::Quantity::from_bytes(min))
}

/// The catalog says the provisioner's volumes live on one node each.
fn node_local(provisioner: &str) -> bool {
    storage_classes::provisioner(provisioner).is_some_and(|p| p.node_local)
}

pub(super) struct Engine<'s> {
    pub(super) snap: &'s Snapshot,
    pub(super) classes: HashMap<&'s str, &'s StorageClass>,
    pub(super) nodes: HashMap<&'s str, &'s Node>,
    pub(super) states: Vec<VolumeState>,
    /// Per volume: the index in `plan.bindings` of the binding that took it.
    pub(super) taken: Vec<Option<u32>>,
    pub(super) index: VolumeIndex,
    pub(super) by_name: HashMap<&'s str, usize>,
    pub(super) reserved: HashMap<ClaimKey, Vec<usize>>,
    /// Claim → pods using it, with their node if scheduled.
    pub(super) consumers: HashMap<ClaimKey, Vec<(ObjectKey, Option<String>)>>,
    /// WaitForFirstConsumer claims left for the scheduler path (admitted index).
    pub(super) deferred: BTreeMap<ClaimKey, usize>,
    /// Immediate claims of node-local provisioners waiting for berth's
    /// placement (admitted index).
    pub(super) unplaced: Vec<usize>,
    /// Pods without a node that berth's scheduling placed: pod → node.
    pub(super) placed: HashMap<ObjectKey, &'s str>,
    /// Every claim of the snapshot by key: the sources of clones.
    pub(super) claims: HashMap<&'s ClaimKey, &'s Claim>,
    pub(super) plan: Plan,
}

impl<'s> Engine<'s> {
    pub(super) fn new(snap: &'s Snapshot, admitted: &[Admitted<'s>]) -> Self {
        let claims: HashMap<&ClaimKey, &Claim> = admitted
            .iter()
            .map(|a| (&a.claim.key, a.claim.as_ref()))
            .collect();
        let states = reclaim::volume_states(&snap.volumes, &claims);
        let index = VolumeIndex::build(&snap.volumes, |i| states[i] == VolumeState::Free);
        let mut reserved: HashMap<ClaimKey, Vec<usize>> = HashMap::default();
        for (i, s) in states.iter().enumerate() {
            if let VolumeState::Reserved(k) = s {
                reserved.entry(k.clone()).or_default().push(i);
            }
        }
        Engine {
            snap,
            classes: snap.classes.iter().map(|c| (c.name.as_str(), c)).collect(),
            nodes: snap.nodes.iter().map(|n| (n.name.as_str(), n)).collect(),
            taken: vec![None; snap.volumes.len()],
            by_name: snap
                .volumes
                .iter()
                .enumerate()
                .map(|(i, v)| (v.name.as_str(), i))
                .collect(),
            states,
            index,
            reserved,
            consumers: HashMap::default(),
            deferred: BTreeMap::new(),
            unplaced: Vec::new(),
            placed: HashMap::default(),
            claims: snap.claims.iter().map(|c| (&c.key, c)).collect(),
            plan: Plan::default(),
        }
    }

    /// The claim that took a volume during planning.
    pub(super) fn taken_by(&self, volume: usize) -> Option<&ClaimKey> {
        self.taken[volume].map(|b| &self.plan.bindings[b as usize].claim)
    }

    /// (namespace, name) of each bound claim → its volume, for the passes
    /// after decisions.
    pub(super) fn bound(&self) -> HashMap<(&str, &str), usize> {
        self.taken
            .iter()
            .enumerate()
            .filter_map(|(v, b)| {
                b.map(|b| {
                    let k = &self.plan.bindings[b as usize].claim;
                    ((k.namespace.as_str(), k.name.as_str()), v)
                })
            })
            .collect()
    }

    pub(super) fn bind(&mut self, claim: &ClaimKey, volume: usize, how: BindHow) {
        self.taken[volume] = Some(self.plan.bindings.len() as u32);
        self.index.take(volume);
        self.plan.bindings.push(Binding {
            claim: claim.clone(),
            volume: self.snap.volumes[volume].name.clone(),
            how,
        });
    }

    fn pend(&mut self, claim: &ClaimKey, reason: PendingReason) {
        self.plan.pending.push(PendingClaim {
            claim: claim.clone(),
            reason,
            candidates: Vec::new(),
        });
    }

    /// Decides one claim; `i` is its position in `admitted`.
    pub(super) fn decide(&mut self, i: usize, a: &Admitted<'s>) {
        let claim = a.claim.as_ref();
        let view = ClaimView::of(a);
        if claim.bind_completed {
            self.decide_bound(&view);
            return;
        }
        if let Some(name) = &claim.volume_name {
            self.decide_named(&view, name);
            return;
        }
        let class = self.classes.get(a.class.as_str()).copied();
        let delayed = class.is_some_and(|c| c.binding_mode == BindingMode::WaitForFirstConsumer);

        if let Some((v, how)) = self.find_match(&view, delayed) {
            self.bind(&claim.key, v, how);
            return;
        }
        if !delayed {
            if class.is_some_and(|c| node_local(&c.provisioner)) {
                // Its agent provisions once a node is chosen: the one a
                // claim already names, else berth's placement's.
                match &claim.selected_node {
                    Some(node) => match self.provision(&view, Some(node)) {
                        Ok(p) => self.plan.provisioning.push(p),
                        Err(r) => self.pend(&claim.key, r),
                    },
                    None => self.unplaced.push(i),
                }
                return;
            }
            match self.provision(&view, None) {
                Ok(p) => self.plan.provisioning.push(p),
                Err(r) => self.pend(&claim.key, r),
            }
            return;
        }
        if let Some(node) = claim.selected_node.clone() {
            match self.provision(&view, Some(&node)) {
                Ok(p) => self.plan.provisioning.push(p),
                Err(r) => self.pend(&claim.key, r),
            }
            return;
        }
        let consumers = self.consumers.get(&claim.key).cloned().unwrap_or_default();
        if consumers.iter().any(|(_, node)| node.is_some()) {
            self.deferred.insert(claim.key.clone(), i);
            return;
        }
        let reason = if consumers.is_empty() {
            PendingReason::WaitingForFirstConsumer
        } else {
            let mut pods: Vec<ObjectKey> = consumers.into_iter().map(|(p, _)| p).collect();
            pods.sort();
            pods.dedup();
            PendingReason::WaitingForPodScheduled(pods)
        };
        self.pend(&claim.key, reason);
    }

    /// Upstream `syncBoundClaim`, for a claim the binder finished binding
    /// once: it keeps the volume it names, taking it back if the volume was
    /// unbound in between, or it is Lost. Only the uid in the volume's
    /// claimRef counts here, as upstream compares only that.
    fn decide_bound(&mut self, view: &ClaimView<'_>) {
        let claim = view.claim;
        let Some(name) = &claim.volume_name else {
            self.pend(&claim.key, PendingReason::Lost(LostCause::NoVolumeName));
            return;
        };
        let Some(&v) = self.by_name.get(name.as_str()) else {
            let cause = LostCause::VolumeMissing(name.clone());
            self.pend(&claim.key, PendingReason::Lost(cause));
            return;
        };
        let ours = match &self.snap.volumes[v].claim_ref {
            None => true,
            Some(r) => r.uid.as_deref().unwrap_or("") == claim.uid.as_deref().unwrap_or(""),
        };
        if !ours || self.taken[v].is_some() {
            let cause = LostCause::Misbound(name.clone());
            self.pend(&claim.key, PendingReason::Lost(cause));
            return;
        }
        let how = if claim.phase == ClaimPhase::Bound {
            BindHow::AlreadyBound
        } else {
            BindHow::VolumeName
        };
        self.bind(&claim.key, v, how);
    }

    /// Upstream `syncUnboundClaim` for a claim that names its volume.
    fn decide_named(&mut self, view: &ClaimView<'_>, name: &str) {
        let claim = view.claim;
        let Some(&v) = self.by_name.get(name) else {
            let reason = PendingReason::VolumeNotFound(name.to_string());
            self.pend(&claim.key, reason);
            return;
        };
        let volume = &self.snap.volumes[v];
        if self.taken[v].is_some() {
            self.pend(
                &claim.key,
                PendingReason::VolumeBoundElsewhere(name.to_string()),
            );
            return;
        }
        if volume.claim_ref.is_none() {
            match satisfies_named(volume, view) {
                Ok(()) => self.bind(&claim.key, v, BindHow::VolumeName),
                Err(problem) => self.pend(
                    &claim.key,
                    PendingReason::VolumeMismatch {
                        volume: name.to_string(),
                        problem,
                    },
                ),
            }
        } else if is_bound_to_claim(volume, claim) {
            // Upstream finishes such a binding without further checks.
            let how = if claim.phase == ClaimPhase::Bound {
                BindHow::AlreadyBound
            } else {
                BindHow::VolumeName
            };
            self.bind(&claim.key, v, how);
        } else {
            self.pend(
                &claim.key,
                PendingReason::VolumeBoundElsewhere(name.to_string()),
            );
        }
    }

    /// Upstream `findBestMatchForClaim`: access-mode sets from fewest modes to
    /// most; in each, a volume reserved for the claim wins, otherwise the
    /// smallest fitting one. Under delayed binding only reserved volumes are
    /// considered here (the scheduler matches the rest).
    fn find_match(&mut self, view: &ClaimView<'_>, delayed: bool) -> Option<(usize, BindHow)> {
        let claim = view.claim;
        let pre: Vec<usize> = self
            .reserved
            .get(&claim.key)
            .map(|vs| {
                vs.iter()
                    .copied()
                    .filter(|&v| self.taken[v].is_none())
                    .filter(|&v| is_bound_to_claim(&self.snap.volumes[v], claim))
                    .collect()
            })
            .unwrap_or_default();
        let mut sets = if delayed {
            Vec::new()
        } else {
            self.index
                .candidate_sets(view.class, claim.volume_mode, claim.access_modes)
        };
        for &v in &pre {
            let m = self.snap.volumes[v].access_modes;
            if m.contains_all(claim.access_modes) {
                sets.push(m);
            }
        }
        sets.sort_by_key(|m| (m.len(), m.bits()));
        sets.dedup();
        let filter = Filter {
            selector: claim.selector.as_ref(),
            attributes_class: &claim.attributes_class,
            node: None,
            exclude: &[],
        };
        for set in sets {
            let reserved = pre
                .iter()
                .copied()
                .filter(|&v| {
                    let vol = &self.snap.volumes[v];
                    vol.access_modes == set
                        && vol.capacity.is_some_and(|c| c >= view.request)
                        && vol.volume_mode == claim.volume_mode
                        && vol.attributes_class == claim.attributes_class
                        && !vol.deleting
                })
                .min_by(|&a, &b| self.snap.volumes[a].name.cmp(&self.snap.volumes[b].name));
            if let Some(v) = reserved {
                return Some((v, BindHow::PreBound));
            }
            if delayed {
                continue;
            }
            if let Some(v) = self.index.smallest_in_set(
                &self.snap.volumes,
                view.class,
                claim.volume_mode,
                set,
                view.request,
                &filter,
            ) {
                return Some((v, BindHow::Matched));
            }
        }
        None
    }

    /// Whether a claim that found no volume gets one provisioned, and for which node.
    pub(super) fn provision(
        &self,
        view: &ClaimView<'_>,
        node: Option<&str>,
    ) -> Result<Provisioning, PendingReason> {
        let claim = view.claim;
        if view.class.is_empty() {
            return Err(PendingReason::NoClass);
        }
        let Some(class) = self.classes.get(view.class).copied() else {
            return Err(PendingReason::ClassNotFound(view.class.to_string()));
        };
        // The scheduler treats an empty provisioner like no-provisioner.
        if class.provisioner.is_empty() || class.provisioner == storage_classes::NO_PROVISIONER {
            return Err(match node {
                Some(n) if claim.selected_node.is_none() => PendingReason::NoVolumeOnNode {
                    node: n.to_string(),
                    class: class.name.clone(),
                },
                _ => PendingReason::NoProvisioner(class.name.clone()),
            });
        }
        // `kubernetes.io/` names are the PV controller's own plugins: one it
        // does not have (and no CSI migration takes over) provisions nothing.
        if class.provisioner.starts_with("kubernetes.io/")
            && storage_classes::provisioner(&class.provisioner).is_none()
        {
            return Err(PendingReason::NoInTreePlugin {
                class: class.name.clone(),
                provisioner: class.provisioner.clone(),
            });
        }
        if claim.selector.is_some() {
            return Err(PendingReason::SelectorNotProvisionable);
        }
        if let Some(p) = storage_classes::provisioner(&class.provisioner) {
            if let Some(mode) = claim.access_modes.iter().find(|m| !p.supports(*m).allows()) {
                return Err(PendingReason::AccessModeUnsupported {
                    provisioner: class.provisioner.clone(),
                    mode,
                });
            }
        }
        if let (Some(n), Some(allowed)) = (node, &class.allowed_topologies) {
            let labels = self.nodes.get(n).map_or(EMPTY_LABELS, |nd| &nd.labels);
            if !allowed.matches(n, labels) {
                return Err(PendingReason::TopologyNotAllowed {
                    node: n.to_string(),
                    class: class.name.clone(),
                });
            }
        }
        Ok(Provisioning {
            claim: claim.key.clone(),
            class: class.name.clone(),
            provisioner: class.provisioner.clone(),
            node: node.map(str::to_string),
            request: view.request,
            placement: None,
            rounded_up: rounded_up(class, claim, view.request),
            content: self.content(view, class, node)?,
        })
    }

    /// The claim's data source, checked by the external-provisioner's rules
    /// (`data_source`), as the content its volume is made from.
    fn content(
        &self,
        view: &ClaimView<'_>,
        class: &StorageClass,
        node: Option<&str>,
    ) -> Result<Option<Content>, PendingReason> {
        use super::data_source::{self as ds, Problem};
        use super::snapshot::DataSource;
        let claim = view.claim;
        let Some(source) = &claim.data_source else {
            return Ok(None);
        };
        let fail = |problem: Problem| PendingReason::DataSource {
            class: class.name.clone(),
            kind: source.kind().to_string(),
            name: source.name().to_string(),
            problem,
        };
        let new = ds::NewClaim {
            name: &claim.key.name,
            namespace: &claim.key.namespace,
            class: Some(view.class),
            request: Some(view.request),
            block: claim.volume_mode == crate::model::VolumeMode::Block,
            driver: &class.provisioner,
        };
        let content =
            match source {
                DataSource::Populator { kind, name, .. } => {
                    return Err(PendingReason::WaitingForPopulator {
                        kind: kind.clone(),
                        name: name.clone(),
                    });
                }
                DataSource::Refused { problem, .. } => return Err(fail(problem.clone())),
                DataSource::Claim(name) => {
                    let key = ClaimKey::new(claim.key.namespace.clone(), name.clone());
                    let src = self.claims.get(&key).copied();
                    let src_view = src.map(|c| ds::SourceClaim {
                        uid: c.uid.as_deref(),
                        phase: c.phase.as_str(),
                        deleting: c.deleting,
                        class: match &c.class {
                            snapshot::ClaimClass::Unset => None,
                            snapshot::ClaimClass::Named(n) => Some(n.as_str()),
                        },
                        request: c.request,
                        volume_name: c.volume_name.as_deref(),
                    });
                    let volume = src
                        .and_then(|c| c.volume_name.as_deref())
                        .and_then(|v| self.by_name.get(v))
                        .map(|&i| &self.snap.volumes[i]);
                    let vol_view = volume.map(|v| ds::SourceVolume {
                        csi_driver: v.source.csi_driver.as_deref(),
                        handle: v.source.csi_handle.as_deref(),
                        claim_ref: v.claim_ref.as_ref().map(|r| {
                            (
                                r.key.namespace.as_str(),
                                r.key.name.as_str(),
                                r.uid.as_deref(),
                            )
                        }),
                        bound: v.phase == Some(crate::model::VolumePhase::Bound),
                        block: v.volume_mode == crate::model::VolumeMode::Block,
                    });
                    let handle = ds::check_clone(&new, name, src_view.as_ref(), vol_view.as_ref())
                        .map_err(fail)?;
                    Content::Clone {
                        claim: name.clone(),
                        volume: volume.map(|v| v.name.clone()).unwrap_or_default(),
                        handle: handle.to_string(),
                    }
                }
                DataSource::Snapshot(name) => {
                    let snap =
                        self.snap.snapshots.iter().find(|s| {
                            s.key.namespace == claim.key.namespace && s.key.name == *name
                        });
                    let content = snap
                        .and_then(|s| s.content.as_deref())
                        .and_then(|c| self.snap.snapshot_contents.iter().find(|x| x.name == c));
                    let snap_view = snap.map(|s| ds::SnapshotView {
                        uid: s.uid.as_deref(),
                        deleting: s.deleting,
                        protected: s.protected,
                        content: s.content.as_deref(),
                        ready: s.ready,
                        restore_size: s.restore_size,
                    });
                    let content_view = content.map(|c| ds::ContentView {
                        driver: &c.driver,
                        snapshot: c.snapshot.as_ref().map(|(k, uid)| {
                            (k.namespace.as_str(), k.name.as_str(), uid.as_deref())
                        }),
                        handle: c.handle.as_deref(),
                    });
                    let handle =
                        ds::check_restore(&new, name, snap_view.as_ref(), content_view.as_ref())
                            .map_err(fail)?;
                    let volume = content
                        .and_then(|c| c.source_volume.as_deref())
                        .and_then(|h| {
                            self.snap
                                .volumes
                                .iter()
                                .find(|v| v.source.csi_handle.as_deref() == Some(h))
                        })
                        .map(|v| v.name.clone());
                    Content::Restore {
                        snapshot: name.clone(),
                        handle: handle.to_string(),
                        volume,
                    }
                }
            };
        // A node-local volume can only be made where its source lives.
        if let (Some(n), Some(affinity)) = (node, self.source_affinity(&content))
            && node_local(&class.provisioner)
        {
            let labels = self.nodes.get(n).map_or(EMPTY_LABELS, |nd| &nd.labels);
            if !affinity.matches(n, labels) {
                return Err(fail(Problem::SourceOnOtherNode {
                    source: content.source_volume().unwrap_or_default().to_string(),
                    node: n.to_string(),
                }));
            }
        }
        Ok(Some(content))
    }

    /// The node affinity of the volume a clone or restore is made from.
    pub(super) fn source_affinity(&self, content: &Content) -> Option<&'s NodeSelector> {
        let name = content.source_volume()?;
        let &i = self.by_name.get(name)?;
        self.snap.volumes[i].node_affinity.as_ref()
    }

    /// The scheduler's VolumeBinding for pods already placed on a node.
    pub(super) fn schedule_deferred(&mut self, admitted: &[Admitted<'s>]) {
        let mut pods: Vec<&snapshot::Pod> = self
            .snap
            .pods
            .iter()
            .filter(|p| p.node_name.is_some() && !p.terminated)
            .collect();
        pods.sort_by(|a, b| a.key.cmp(&b.key));
        for pod in pods {
            let Some(node) = pod.node_name.as_deref() else {
                continue;
            };
            let mine: Vec<usize> = pod
                .volumes
                .iter()
                .filter_map(|v| match v {
                    snapshot::PodVolume::Claim(name) => {
                        let key = ClaimKey::new(pod.key.namespace.clone(), name.clone());
                        self.deferred.remove(&key)
                    }
                    _ => None,
                })
                .collect();
            self.decide_on_node(admitted, mine, node);
        }
    }

    /// The scheduler's VolumeBinding for the claims of a pod placed on
    /// `node` (admitted indexes): smallest request first, each bound to the
    /// smallest free volume that fits on the node, else provisioned there.
    pub(super) fn decide_on_node(
        &mut self,
        admitted: &[Admitted<'s>],
        mut mine: Vec<usize>,
        node: &str,
    ) {
        mine.sort_by(|&a, &b| {
            let (ca, cb) = (&admitted[a].claim, &admitted[b].claim);
            (ca.request, &ca.key).cmp(&(cb.request, &cb.key))
        });
        let labels = self.nodes.get(node).map_or(EMPTY_LABELS, |n| &n.labels);
        for i in mine {
            let a = &admitted[i];
            let claim = a.claim.as_ref();
            let view = ClaimView::of(a);
            let filter = Filter {
                selector: claim.selector.as_ref(),
                attributes_class: &claim.attributes_class,
                node: Some((node, labels)),
                exclude: &[],
            };
            let found = self.index.smallest_any_set(
                &self.snap.volumes,
                &a.class,
                claim.volume_mode,
                claim.access_modes,
                view.request,
                &filter,
            );
            match found {
                Some(v) => self.bind(
                    &claim.key,
                    v,
                    BindHow::Scheduler {
                        node: node.to_string(),
                    },
                ),
                None => match self.provision(&view, Some(node)) {
                    Ok(p) => {
                        let fits = self
                            .classes
                            .get(p.class.as_str())
                            .is_none_or(|c| self.storage_fits(c, node, view.request));
                        if fits {
                            self.plan.provisioning.push(p);
                        } else {
                            self.pend(
                                &claim.key,
                                PendingReason::NotEnoughStorage {
                                    node: node.to_string(),
                                    class: p.class,
                                },
                            );
                        }
                    }
                    Err(r) => self.pend(&claim.key, r),
                },
            }
        }
    }
}
