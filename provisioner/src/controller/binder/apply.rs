//! Carrying out the binder's [`Effect`]s against the API server, with
//! upstream's writes, in upstream's order, so a crash between two writes
//! leaves a state the next round finishes (the PV's claimRef is written
//! first: a volume reserved for a claim is never given to another one).
//!
//! Object writes use the resourceVersion the binder planned from, so a
//! plan made on stale objects fails with a conflict instead of undoing
//! someone else's change; status writes are merge patches of the phase.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::Mode;
use super::effects::Effect;
use super::overlay::Overlay;
use crate::binding::PendingReason;
use crate::controller::events::{self, Events};
use crate::controller::intent;
use crate::controller::ownership::ANN_SELECTED_NODE;
use crate::controller::provision::{
    ANN_BETA_STORAGE_PROVISIONER, ANN_STORAGE_PROVISIONER, volume_name,
};
use crate::model::{ClaimKey, VolumePhase};

pub use crate::manifest::convert::ANN_BIND_COMPLETED;
pub use crate::manifest::convert::ANN_BOUND_BY_CONTROLLER;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0} is no longer in the cluster")]
    Gone(String),
}

impl ApplyError {
    /// Someone changed the object since the plan was made: retry soon,
    /// from fresh objects.
    pub fn is_conflict(&self) -> bool {
        matches!(self, ApplyError::Kube { source: kube::Error::Api(s), .. } if s.code == 409)
            || matches!(self, ApplyError::Gone(_))
    }
}

fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> ApplyError {
    let what = what.into();
    move |source| ApplyError::Kube { what, source }
}

/// The objects a round was planned from, by name.
pub struct Objects {
    pub volumes: HashMap<String, Arc<PersistentVolume>>,
    pub claims: HashMap<ClaimKey, Arc<PersistentVolumeClaim>>,
}

/// The planned objects the round's effects still write, each let go once
/// the last effect that writes it has taken it. In a burst (2,000 bindings
/// in one round) the round would otherwise hold every object it planned
/// from until its last write, next to the store's newer versions and our
/// own writes in the overlay: three copies of each object at the peak
/// instead of two.
pub struct Planned {
    volumes: Mutex<HashMap<String, (Arc<PersistentVolume>, usize)>>,
    claims: Mutex<HashMap<ClaimKey, (Arc<PersistentVolumeClaim>, usize)>>,
}

/// The volume and the claim `effect` writes (what [`Applier::apply`] takes
/// from [`Planned`]).
fn writes(effect: &Effect) -> (Option<&str>, Option<&ClaimKey>) {
    match effect {
        Effect::Bind { claim, volume, .. } => (Some(volume), Some(claim)),
        Effect::Provision { claim, .. }
        | Effect::Wait { claim, .. }
        | Effect::Lost { claim, .. } => (None, Some(claim)),
        Effect::Unbind { volume, .. } | Effect::VolumePhase { volume, .. } => (Some(volume), None),
    }
}

/// Takes one use of `key`'s object; the last use removes it.
fn take<K: std::hash::Hash + Eq, V>(
    map: &Mutex<HashMap<K, (Arc<V>, usize)>>,
    key: &K,
) -> Option<Arc<V>> {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    let (object, uses) = map.get_mut(key)?;
    *uses = uses.saturating_sub(1);
    if *uses == 0 {
        return map.remove(key).map(|(o, _)| o);
    }
    Some(object.clone())
}

impl Planned {
    /// The objects of `objects` that `todo` writes, with how many effects
    /// write each; the others are let go now.
    pub fn new(objects: Objects, todo: &[Effect]) -> Planned {
        let mut volumes: HashMap<String, usize> = HashMap::new();
        let mut claims: HashMap<&ClaimKey, usize> = HashMap::new();
        for e in todo {
            let (v, c) = writes(e);
            if let Some(v) = v {
                *volumes.entry(v.to_string()).or_default() += 1;
            }
            if let Some(c) = c {
                *claims.entry(c).or_default() += 1;
            }
        }
        let Objects {
            volumes: mut all_volumes,
            claims: mut all_claims,
        } = objects;
        Planned {
            volumes: Mutex::new(
                volumes
                    .into_iter()
                    .filter_map(|(name, uses)| {
                        let o = all_volumes.remove(&name)?;
                        Some((name, (o, uses)))
                    })
                    .collect(),
            ),
            claims: Mutex::new(
                claims
                    .into_iter()
                    .filter_map(|(key, uses)| {
                        let (key, o) = all_claims.remove_entry(key)?;
                        Some((key, (o, uses)))
                    })
                    .collect(),
            ),
        }
    }

    fn volume(&self, name: &str) -> Result<Arc<PersistentVolume>, ApplyError> {
        take(&self.volumes, &name.to_string())
            .ok_or_else(|| ApplyError::Gone(format!("PersistentVolume {name}")))
    }

    fn claim(&self, key: &ClaimKey) -> Result<Arc<PersistentVolumeClaim>, ApplyError> {
        take(&self.claims, key)
            .ok_or_else(|| ApplyError::Gone(format!("PersistentVolumeClaim {key}")))
    }

    /// How many objects are still held.
    pub fn held(&self) -> usize {
        self.volumes.lock().unwrap_or_else(|e| e.into_inner()).len()
            + self.claims.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

pub struct Applier {
    client: Client,
    events: Events,
    mode: Mode,
    pub volumes: Overlay<PersistentVolume>,
    pub claims: Overlay<PersistentVolumeClaim>,
    /// The name berth's own node agents provision for.
    provisioner: String,
    /// The last event note written per claim, so a waiting claim gets one
    /// event per distinct reason rather than one per round.
    said: Mutex<HashMap<ClaimKey, String>>,
    /// When this process placed a claim on a node for its own agents.
    placed: Mutex<HashMap<ClaimKey, Instant>>,
}

/// How long a claim berth placed for its own agent may wait for its volume
/// before the binder says `ExternalProvisioning` on it. Upstream's binder
/// says it at once, for a provisioner it knows nothing of; berth knows its
/// agent is at work and only speaks when the wait is worth a look (the
/// agent's `ProvisioningSucceeded` or `ProvisioningFailed` tells the rest).
const QUIET_AFTER_PLACING: Duration = Duration::from_secs(5);

fn has_annotation(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
    value: &str,
) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .is_some_and(|v| v == value)
}

impl Applier {
    /// `provisioner`: the name berth's own agents provision for.
    pub fn new(client: Client, events: Events, mode: Mode, provisioner: String) -> Self {
        Applier {
            client,
            events,
            mode,
            provisioner,
            volumes: Overlay::default(),
            claims: Overlay::default(),
            said: Mutex::new(HashMap::new()),
            placed: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this process carries the effect out: everything with
    /// `--bind`; otherwise only berth's placement (the stock binder does
    /// the rest) and saying that no node has room.
    pub fn wants(&self, effect: &Effect, objects: &Objects) -> bool {
        if self.mode.bind {
            return true;
        }
        self.mode.place
            && match effect {
                Effect::Provision { node, .. } => node.is_some(),
                Effect::Wait { reason, .. }
                    if matches!(reason, PendingReason::NoNodeForVolume { .. }) =>
                {
                    true
                }
                // A claim with a node is its agent's to explain; one
                // without waits on placement, which says why.
                Effect::Wait { claim, reason } => {
                    matches!(reason, PendingReason::DataSource { .. })
                        && objects.claims.get(claim).is_some_and(|c| {
                            crate::controller::ownership::selected_node(c).is_none()
                        })
                }
                _ => false,
            }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Carries out one effect on the objects it was planned from (each
    /// taken from `planned` as [`writes`] says).
    pub async fn apply(&self, effect: &Effect, planned: &Planned) -> Result<(), ApplyError> {
        let volume = |name: &str| planned.volume(name);
        let claim = |key: &ClaimKey| planned.claim(key);
        match effect {
            Effect::Bind {
                claim: key,
                volume: name,
                chosen,
            } => self.bind(volume(name)?, claim(key)?, *chosen).await,
            Effect::Provision {
                claim: key,
                provisioner,
                node,
            } => {
                self.hand_to_provisioner(claim(key)?, provisioner, node.as_deref())
                    .await
            }
            Effect::Wait { claim: key, reason } => {
                let pvc = claim(key)?;
                let (warning, why) = events::for_pending(reason);
                self.say_once(key, &pvc, warning, why, reason.to_string())
                    .await;
                Ok(())
            }
            Effect::Lost { claim: key, cause } => {
                let pvc = claim(key)?;
                self.claim_status(&pvc, json!({ "status": { "phase": "Lost" } }))
                    .await?;
                let reason = PendingReason::Lost(cause.clone());
                let (warning, why) = events::for_pending(&reason);
                self.say_once(key, &pvc, warning, why, cause.event_message().into())
                    .await;
                Ok(())
            }
            Effect::Unbind {
                volume: name,
                clear_ref,
            } => self.unbind(volume(name)?, *clear_ref).await,
            Effect::VolumePhase {
                volume: name,
                phase,
                message,
            } => {
                let pv = volume(name)?;
                let mut status = json!({ "phase": phase.as_str() });
                if let Some(m) = message {
                    status["message"] = json!(m);
                }
                self.volume_status(&pv, json!({ "status": status })).await?;
                if let (VolumePhase::Failed, Some(m)) = (phase, message) {
                    let reason = if m.contains("recycle") {
                        events::VOLUME_FAILED_RECYCLE
                    } else {
                        events::VOLUME_FAILED_DELETE
                    };
                    self.events
                        .warning(&pv.object_ref(&()), reason, "Reclaim", m.clone())
                        .await;
                }
                Ok(())
            }
        }
    }

    /// Upstream's `bind`: PV claimRef, PV phase, claim volumeName and
    /// annotations, claim phase/capacity/access modes; each only if missing.
    async fn bind(
        &self,
        pv: Arc<PersistentVolume>,
        pvc: Arc<PersistentVolumeClaim>,
        chosen: bool,
    ) -> Result<(), ApplyError> {
        let pv_name = pv.name_any();
        let ns = pvc.namespace().unwrap_or_default();
        let pvc_name = pvc.name_any();
        let uid = pvc.uid();
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);

        let claim_ref = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
        let names_claim = claim_ref.is_some_and(|r| {
            r.name.as_deref() == Some(pvc_name.as_str())
                && r.namespace.as_deref() == Some(ns.as_str())
        });
        let uid_matches = claim_ref.is_some_and(|r| r.uid == uid);
        let mut pv = pv;
        if !(names_claim && uid_matches) {
            let mut next = (*pv).clone();
            next.spec.get_or_insert_with(Default::default).claim_ref = Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: Some(ns.clone()),
                name: Some(pvc_name.clone()),
                uid: uid.clone(),
                resource_version: pvc.resource_version(),
                ..Default::default()
            });
            // A claimRef the user wrote is a pre-binding, not our choice.
            if !names_claim {
                next.annotations_mut()
                    .insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
            }
            let written = pvs
                .replace(&pv_name, &PostParams::default(), &next)
                .await
                .map_err(kube(format!("binding PersistentVolume {pv_name}")))?;
            pv = self.volumes.record(&pv, written);
        }
        let pv_phase = pv.status.as_ref().and_then(|s| s.phase.as_deref());
        if pv_phase != Some("Bound") {
            pv = self
                .volume_status(&pv, json!({ "status": { "phase": "Bound" } }))
                .await?;
        }

        let spec = pvc.spec.clone().unwrap_or_default();
        // The provisioning intent is settled once the claim is bound to the
        // PV made for it (intent.rs: "PV exists: drop the finalizer"); the
        // binding write drops it, which spares the agent a write of its own
        // racing this one.
        let settles_intent =
            intent::has_finalizer(&pvc) && volume_name(&pvc).as_deref() == Some(pv_name.as_str());
        let needs_spec = spec.volume_name.as_deref() != Some(pv_name.as_str())
            || !has_annotation(&pvc.metadata, ANN_BIND_COMPLETED, "yes")
            || (chosen && !has_annotation(&pvc.metadata, ANN_BOUND_BY_CONTROLLER, "yes"))
            || settles_intent;
        let mut pvc = pvc;
        if needs_spec {
            let mut next = (*pvc).clone();
            next.spec.get_or_insert_with(Default::default).volume_name = Some(pv_name.clone());
            let ann = next.annotations_mut();
            ann.insert(ANN_BIND_COMPLETED.into(), "yes".into());
            if chosen {
                ann.insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
            }
            if settles_intent {
                next.metadata.finalizers = Some(intent::with_finalizer(&pvc, false));
            }
            let written = claims
                .replace(&pvc_name, &PostParams::default(), &next)
                .await
                .map_err(kube(format!(
                    "binding PersistentVolumeClaim {ns}/{pvc_name}"
                )))?;
            pvc = self.claims.record(&pvc, written);
        }
        let status = pvc.status.clone().unwrap_or_default();
        let pv_spec = pv.spec.clone().unwrap_or_default();
        if status.phase.as_deref() != Some("Bound")
            || status.capacity != pv_spec.capacity
            || status.access_modes != pv_spec.access_modes
        {
            self.claim_status(
                &pvc,
                json!({ "status": {
                    "phase": "Bound",
                    "capacity": pv_spec.capacity,
                    "accessModes": pv_spec.access_modes,
                } }),
            )
            .await?;
        }
        tracing::info!(claim = %format!("{ns}/{pvc_name}"), volume = %pv_name, "bound");
        Ok(())
    }

    /// Upstream's `unbindVolume`: the claimRef (and the bound-by-controller
    /// annotation) removed when the binder wrote it, else only the
    /// claimRef's uid; then phase Available.
    async fn unbind(&self, pv: Arc<PersistentVolume>, clear_ref: bool) -> Result<(), ApplyError> {
        let name = pv.name_any();
        let mut next = (*pv).clone();
        let spec = next.spec.get_or_insert_with(Default::default);
        if clear_ref {
            spec.claim_ref = None;
            next.annotations_mut().remove(ANN_BOUND_BY_CONTROLLER);
        } else if let Some(r) = spec.claim_ref.as_mut() {
            r.uid = None;
        }
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let written = pvs
            .replace(&name, &PostParams::default(), &next)
            .await
            .map_err(kube(format!("unbinding PersistentVolume {name}")))?;
        let pv = self.volumes.record(&pv, written);
        self.volume_status(&pv, json!({ "status": { "phase": "Available" } }))
            .await?;
        tracing::info!(volume = %name, clear_ref, "unbound: its claim is bound to another volume");
        Ok(())
    }

    /// Upstream annotates the claim with its provisioner (GA and beta keys)
    /// and says so; the provisioner watches for the annotation. berth's
    /// placement adds `selected-node` in the same write; without `--bind`
    /// the stock binder hands the claim over and only the node is written.
    async fn hand_to_provisioner(
        &self,
        pvc: Arc<PersistentVolumeClaim>,
        provisioner: &str,
        node: Option<&str>,
    ) -> Result<(), ApplyError> {
        let key = ClaimKey::new(pvc.namespace().unwrap_or_default(), pvc.name_any());
        let mut annotations = serde_json::Map::new();
        if self.mode.bind
            && (!has_annotation(&pvc.metadata, ANN_STORAGE_PROVISIONER, provisioner)
                || !has_annotation(&pvc.metadata, ANN_BETA_STORAGE_PROVISIONER, provisioner))
        {
            annotations.insert(ANN_STORAGE_PROVISIONER.into(), json!(provisioner));
            annotations.insert(ANN_BETA_STORAGE_PROVISIONER.into(), json!(provisioner));
        }
        if let Some(node) = node {
            annotations.insert(ANN_SELECTED_NODE.into(), json!(node));
        }
        // berth's own agent will provision it: its intent (intent.rs) is
        // recorded in the placing write, not in a write of the agent's.
        let ours = node.is_some() && provisioner == self.provisioner;
        if !annotations.is_empty() {
            let claims: Api<PersistentVolumeClaim> =
                Api::namespaced(self.client.clone(), &key.namespace);
            // The resourceVersion makes a claim that changed since the plan
            // (re-created, placed by someone else) conflict, not be
            // overwritten, and keeps the finalizers another controller adds
            // meanwhile (a merge patch replaces the list whole).
            let mut patch = json!({ "metadata": {
                "resourceVersion": pvc.resource_version(),
                "annotations": annotations,
            } });
            if ours && !intent::has_finalizer(&pvc) {
                patch["metadata"]["finalizers"] = json!(intent::with_finalizer(&pvc, true));
            }
            let written = claims
                .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(kube(format!("annotating PersistentVolumeClaim {key}")))?;
            self.claims.record(&pvc, written);
            if let Some(node) = node {
                tracing::info!(claim = %key, node, "placed");
                if ours {
                    self.lock_placed().insert(key.clone(), Instant::now());
                }
            }
        }
        if !self.mode.bind {
            return Ok(());
        }
        let quiet = self
            .lock_placed()
            .get(&key)
            .is_some_and(|at| at.elapsed() < QUIET_AFTER_PLACING);
        if quiet {
            return Ok(());
        }
        self.say_once(
            &key,
            &pvc,
            false,
            events::EXTERNAL_PROVISIONING,
            format!(
                "Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually by the system administrator. If volume creation is delayed, please verify that your external provisioner is running and correctly registered."
            ),
        )
        .await;
        Ok(())
    }

    async fn volume_status(
        &self,
        pv: &Arc<PersistentVolume>,
        patch: serde_json::Value,
    ) -> Result<Arc<PersistentVolume>, ApplyError> {
        let name = pv.name_any();
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let written = pvs
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube(format!("status of PersistentVolume {name}")))?;
        Ok(self.volumes.record(pv, written))
    }

    async fn claim_status(
        &self,
        pvc: &Arc<PersistentVolumeClaim>,
        patch: serde_json::Value,
    ) -> Result<Arc<PersistentVolumeClaim>, ApplyError> {
        let ns = pvc.namespace().unwrap_or_default();
        let name = pvc.name_any();
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        let written = claims
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube(format!("status of PersistentVolumeClaim {ns}/{name}")))?;
        Ok(self.claims.record(pvc, written))
    }

    async fn say_once(
        &self,
        key: &ClaimKey,
        pvc: &PersistentVolumeClaim,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let line = format!("{reason}: {note}");
        {
            let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
            if said.get(key) == Some(&line) {
                return;
            }
            said.insert(key.clone(), line);
        }
        let on = pvc.object_ref(&());
        if warning {
            self.events.warning(&on, reason, "Binding", note).await;
        } else {
            self.events.normal(&on, reason, "Binding", note).await;
        }
    }

    /// How long until the first claim placed for berth's own agents and
    /// still waiting ends its quiet time, so a round runs then and says
    /// `ExternalProvisioning` on it without waiting for the resync.
    pub fn quiet_left(&self) -> Option<Duration> {
        self.lock_placed()
            .values()
            .filter_map(|at| QUIET_AFTER_PLACING.checked_sub(at.elapsed()))
            .min()
    }

    fn lock_placed(&self) -> std::sync::MutexGuard<'_, HashMap<ClaimKey, Instant>> {
        self.placed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets what was said about claims that no longer exist, and the
    /// placing times of claims that are bound or gone.
    pub fn forget_except(&self, live: &HashMap<ClaimKey, Arc<PersistentVolumeClaim>>) {
        let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        said.retain(|k, _| live.contains_key(k));
        let bound = |c: &PersistentVolumeClaim| {
            c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
        };
        self.lock_placed()
            .retain(|k, _| live.get(k).is_some_and(|c| !bound(c)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(name: &str) -> Arc<PersistentVolume> {
        Arc::new(PersistentVolume {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    #[test]
    fn a_planned_object_is_let_go_with_its_last_write() {
        let objects = Objects {
            volumes: [
                ("pv-a", pv("pv-a")),
                ("pv-b", pv("pv-b")),
                ("pv-c", pv("pv-c")),
            ]
            .into_iter()
            .map(|(n, v)| (n.to_string(), v))
            .collect(),
            claims: HashMap::new(),
        };
        let todo = vec![
            Effect::Unbind {
                volume: "pv-a".into(),
                clear_ref: true,
            },
            Effect::VolumePhase {
                volume: "pv-a".into(),
                phase: VolumePhase::Available,
                message: None,
            },
            Effect::VolumePhase {
                volume: "pv-b".into(),
                phase: VolumePhase::Released,
                message: None,
            },
        ];
        let weak_c = Arc::downgrade(&objects.volumes["pv-c"]);
        let planned = Planned::new(objects, &todo);
        assert_eq!(planned.held(), 2, "pv-c is written by no effect");
        assert!(weak_c.upgrade().is_none(), "and is let go at once");

        let first = planned.volume("pv-a").expect("pv-a");
        assert_eq!(planned.held(), 2, "pv-a has a second write to come");
        drop(first);
        let second = planned.volume("pv-a").expect("pv-a again");
        assert_eq!(planned.held(), 1);
        let weak_a = Arc::downgrade(&second);
        drop(second);
        assert!(
            weak_a.upgrade().is_none(),
            "pv-a is let go after its last write"
        );
        assert!(matches!(planned.volume("pv-a"), Err(ApplyError::Gone(_))));
        assert!(planned.volume("pv-b").is_ok());
        assert_eq!(planned.held(), 0);
    }
}
