//! Findings that do not change the plan but that a person should see:
//! unknown StorageClass parameters, references to missing objects, quotas
//! berth does not apply, node-affinity conflicts, inter-pod affinity berth
//! does not evaluate; and the per-node volume counts handed to `limits`.

use rustc_hash::FxHashMap as HashMap;

use super::admission::Admitted;
use super::engine::Engine;
use super::limits::{self, ClaimUse};
use super::snapshot::{InterPodAffinity, PodVolume};
use crate::model::{ClaimKey, Labels};

impl<'s> Engine<'s> {
    /// Volume counts per node and driver, for limits and their warnings;
    /// pods berth scheduled count on their chosen nodes.
    pub(super) fn usage(
        &self,
        admitted: &[Admitted<'s>],
        bound: &HashMap<(&str, &str), usize>,
    ) -> limits::Usage {
        let classes: HashMap<(&str, &str), &str> = admitted
            .iter()
            .map(|a| {
                (
                    (a.claim.key.namespace.as_str(), a.claim.key.name.as_str()),
                    a.class.as_str(),
                )
            })
            .collect();
        let resolve = |ns: &'s str, name: &'s str| {
            let class = classes.get(&(ns, name)).copied();
            self.claim_use(class, bound.get(&(ns, name)).copied())
        };
        let sets = limits::volume_sets(
            self.snap,
            |p| {
                p.node_name
                    .as_deref()
                    .or_else(|| self.placed.get(&p.key).copied())
            },
            &resolve,
        );
        limits::counts(&sets)
    }

    /// How a claim counts against volume limits: its bound volume's driver
    /// and handle, else its class's provisioner (a migrated in-tree one
    /// under its CSI driver, if the filter counts that plugin at all).
    pub(super) fn claim_use(&self, class: Option<&str>, volume: Option<usize>) -> ClaimUse<'s> {
        let snap = self.snap;
        if let Some(v) = volume {
            let vol = &snap.volumes[v];
            return match (&vol.source.csi_driver, &vol.source.csi_handle) {
                (Some(d), Some(h)) => ClaimUse::Volume {
                    driver: d.as_str(),
                    handle: h.as_str(),
                },
                _ => match &vol.source.migrated {
                    Some(m) => ClaimUse::Volume {
                        driver: m.driver,
                        handle: m.handle.as_str(),
                    },
                    None => ClaimUse::Uncounted,
                },
            };
        }
        let Some(class) = class.and_then(|c| self.classes.get(c)) else {
            return ClaimUse::Uncounted;
        };
        let provisioner = class.provisioner.as_str();
        if provisioner == storage_classes::NO_PROVISIONER {
            return ClaimUse::Uncounted;
        }
        match storage_classes::plugin_for_provisioner(provisioner) {
            Some(p) if p.csi_migration_driver.is_some() => match p.limit_counted_driver() {
                Some(driver) => ClaimUse::Unbound {
                    provisioner: driver,
                },
                None => ClaimUse::Uncounted,
            },
            _ => ClaimUse::Unbound { provisioner },
        }
    }

    pub(super) fn warnings(
        &self,
        admitted: &[Admitted<'s>],
        usage: &limits::Usage,
        bound: &HashMap<(&str, &str), usize>,
    ) -> Vec<String> {
        let mut w: Vec<String> = self.snap.warnings.clone();
        w.extend(limits::catalog_warnings(self.snap, usage));
        for class in &self.snap.classes {
            let params = class
                .parameters
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()));
            for issue in storage_classes::check_parameters(&class.provisioner, params) {
                w.push(format!("StorageClass {}: {issue}", class.name));
            }
        }
        for q in self.snap.quotas.iter().filter(|q| q.scoped) {
            w.push(format!(
                "ResourceQuota {}: has scopes; berth does not apply scoped quotas to claims",
                q.key
            ));
        }
        let known: rustc_hash::FxHashSet<(&str, &str)> = admitted
            .iter()
            .map(|a| (a.claim.key.namespace.as_str(), a.claim.key.name.as_str()))
            .collect();
        for a in admitted {
            if let Some(n) = &a.claim.selected_node {
                if !self.nodes.contains_key(n.as_str()) {
                    w.push(format!(
                        "PersistentVolumeClaim {}: annotation volume.kubernetes.io/selected-node names node {n:?}, which does not exist",
                        a.claim.key
                    ));
                }
            }
        }
        let rejected: rustc_hash::FxHashSet<(&str, &str)> = self
            .plan
            .rejected
            .iter()
            .map(|r| (r.object.namespace.as_str(), r.object.name.as_str()))
            .collect();
        for pod in &self.snap.pods {
            let node = pod.node_name.as_deref();
            if let Some(n) = node {
                if !self.nodes.contains_key(n) {
                    w.push(format!(
                        "Pod {}: spec.nodeName {n:?} is not a known Node",
                        pod.key
                    ));
                }
            }
            for v in &pod.volumes {
                let PodVolume::Claim(name) = v else { continue };
                let id = (pod.key.namespace.as_str(), name.as_str());
                if !known.contains(&id) && !rejected.contains(&id) {
                    let key = ClaimKey::new(pod.key.namespace.clone(), name.clone());
                    w.push(format!(
                        "Pod {}: uses PersistentVolumeClaim {key}, which does not exist",
                        pod.key
                    ));
                    continue;
                }
                let (Some(n), Some(&vi)) = (node, bound.get(&id)) else {
                    continue;
                };
                let labels = self.nodes.get(n).map_or(&EMPTY, |nd| &nd.labels);
                let vol = &self.snap.volumes[vi];
                if vol
                    .node_affinity
                    .as_ref()
                    .is_some_and(|a| !a.matches(n, labels))
                {
                    w.push(format!(
                        "Pod {}: volume {} of claim {}/{name} has a node affinity conflict with node {n:?}",
                        pod.key, vol.name, pod.key.namespace
                    ));
                }
            }
        }
        w.extend(self.inter_pod_warnings());
        w
    }

    /// berth does not evaluate inter-pod affinity. The scheduler runs it
    /// last (InterPodAffinity), so it can only take nodes away: a pod berth
    /// finds unschedulable stays so with the same message, but a node
    /// berth predicts for a pod with required terms may be refused, and
    /// a running pod's required anti-affinity may refuse pods berth places
    /// next to it. Preferred terms only score nodes and change no filter.
    fn inter_pod_warnings(&self) -> Vec<String> {
        let mut flagged: HashMap<(&str, String), InterPodAffinity> = HashMap::default();
        for p in &self.snap.pods {
            if p.node_name.is_none() && !p.terminated && p.scheduling.inter_pod.any() {
                let key = (p.key.namespace.as_str(), p.key.name.clone());
                flagged.insert(key, p.scheduling.inter_pod);
            }
        }
        for s in self
            .snap
            .stateful_sets
            .iter()
            .filter(|s| s.scheduling.inter_pod.any())
        {
            for ordinal in 0..s.replicas {
                let key = (
                    s.key.namespace.as_str(),
                    format!("{}-{ordinal}", s.key.name),
                );
                flagged.entry(key).or_insert(s.scheduling.inter_pod);
            }
        }
        let mut w = Vec::new();
        let mut placed_any = false;
        for placement in &self.plan.scheduling {
            let Some(node) = &placement.node else {
                continue;
            };
            placed_any = true;
            let key = (placement.pod.namespace.as_str(), placement.pod.name.clone());
            if let Some(terms) = flagged.get(&key) {
                w.push(format!(
                    "Pod {}: requires {}, which berth does not evaluate (inter-pod affinity): the scheduler may reject node {node:?}, which berth predicts",
                    placement.pod,
                    terms_named(*terms)
                ));
            }
        }
        if placed_any {
            for p in &self.snap.pods {
                let Some(node) = p.node_name.as_deref() else {
                    continue;
                };
                if !p.terminated && p.scheduling.inter_pod.anti_affinity {
                    w.push(format!(
                        "Pod {}: requires podAntiAffinity, which berth does not evaluate (inter-pod affinity): the scheduler may keep the pods berth places from node {node:?} and its topology domain",
                        p.key
                    ));
                }
            }
        }
        w
    }
}

fn terms_named(t: InterPodAffinity) -> &'static str {
    match (t.affinity, t.anti_affinity) {
        (true, true) => "podAffinity and podAntiAffinity",
        (true, false) => "podAffinity",
        _ => "podAntiAffinity",
    }
}

static EMPTY: Labels = Labels::new();
