//! Findings that do not change the plan but that a person should see:
//! unknown StorageClass parameters, references to missing objects, quotas
//! berth does not apply, node-affinity conflicts; and the per-node volume
//! counts handed to `limits`.

use std::collections::HashMap;

use super::admission::Admitted;
use super::engine::Engine;
use super::limits::{self, ClaimUse};
use super::snapshot::PodVolume;
use crate::model::{ClaimKey, Labels};

impl<'s> Engine<'s> {
    /// Volume counts per node and driver, for limits and their warnings.
    pub(super) fn usage(&self, admitted: &[Admitted<'s>]) -> limits::Usage {
        let classes: HashMap<&ClaimKey, &str> = admitted
            .iter()
            .map(|a| (&a.claim.key, a.class.as_str()))
            .collect();
        limits::usage(self.snap, |key| {
            if let Some(&v) = self.bound.get(key) {
                let vol = &self.snap.volumes[v];
                return match (&vol.source.csi_driver, &vol.source.csi_handle) {
                    (Some(d), Some(h)) => ClaimUse::Volume {
                        driver: d.as_str(),
                        handle: h.as_str(),
                    },
                    (Some(d), None) => ClaimUse::Volume {
                        driver: d.as_str(),
                        handle: vol.name.as_str(),
                    },
                    _ => ClaimUse::Uncounted,
                };
            }
            match classes.get(key).and_then(|c| self.classes.get(c)) {
                Some(class) if class.provisioner != storage_classes::NO_PROVISIONER => {
                    ClaimUse::Unbound {
                        provisioner: class.provisioner.as_str(),
                    }
                }
                _ => ClaimUse::Uncounted,
            }
        })
    }

    pub(super) fn add_warnings(&mut self, admitted: &[Admitted<'s>], usage: &limits::Usage) {
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
        let known: HashMap<&ClaimKey, &Admitted<'s>> =
            admitted.iter().map(|a| (&a.claim.key, a)).collect();
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
        let rejected: std::collections::HashSet<_> =
            self.plan.rejected.iter().map(|r| &r.object).collect();
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
                let key = ClaimKey::new(pod.key.namespace.clone(), name.clone());
                if !known.contains_key(&key) && !rejected.contains(&key) {
                    w.push(format!(
                        "Pod {}: uses PersistentVolumeClaim {key}, which does not exist",
                        pod.key
                    ));
                    continue;
                }
                let (Some(n), Some(&vi)) = (node, self.bound.get(&key)) else {
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
                        "Pod {}: volume {} of claim {key} has a node affinity conflict with node {n:?}",
                        pod.key, vol.name
                    ));
                }
            }
        }
        self.plan.warnings = w;
    }
}

static EMPTY: Labels = Labels::new();
