//! Volumes whose Node is gone.
//!
//! A node-local volume lives on one node ([`ownership`](super::ownership));
//! once its Node object is deleted, no agent serves it and nothing can
//! reach or delete its data. Left alone, such PVs stay forever (the CSI
//! external-provisioner needs a manual force-delete). berth's controller
//! decides, for each PV of its driver whose node has been gone for the
//! grace period (`--node-loss-grace-secs`, so a node that re-registers at
//! once keeps everything):
//!
//! | PV | what happens |
//! |---|---|
//! | its claim is gone and its policy is Delete | the PV and berth's finalizer are removed: the user asked for deletion, and the data went with the node |
//! | its claim still exists | nothing is removed; the claim gets a `NodeLost` Warning naming the node (delete the claim to get a new volume; its PV then goes as above) |
//! | its claim is gone, policy Retain (or Recycle) | the PV stays Released for an administrator, with a `NodeLost` event on it |
//!
//! Volumes on other nodes are never touched.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::Context;
use super::events::NODE_LOST;
use super::metrics::Outcome;
use super::ownership::volume_node;
use super::provision::PV_FINALIZER;

/// How often PVs are checked against the Nodes.
const TICK: Duration = Duration::from_secs(2);

/// What to do with a PV whose node is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loss {
    /// Remove the PV (and our finalizer): its claim is gone, policy Delete.
    Remove,
    /// Its claim is alive: tell the claim, remove nothing.
    TellClaim,
    /// Keep it for an administrator (Retain/Recycle), with an event.
    Keep,
}

/// The decision for one PV of a lost node; `claim_alive` says whether the
/// claim its claimRef names still exists as that object (same uid).
pub fn decide(pv: &PersistentVolume, claim_alive: bool) -> Loss {
    if claim_alive {
        return Loss::TellClaim;
    }
    let policy = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Delete");
    if policy == "Delete" {
        Loss::Remove
    } else {
        Loss::Keep
    }
}

/// Whether the claim `pv`'s claimRef names exists (uid checked when set).
fn claim_alive(pv: &PersistentVolume, ctx: &Context) -> bool {
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    let (Some(ns), Some(name)) = (r.namespace.as_deref(), r.name.as_deref()) else {
        return false;
    };
    let at = ObjectRef::<PersistentVolumeClaim>::new(name).within(ns);
    ctx.caches
        .claims
        .get(&at)
        .is_some_and(|c| r.uid.is_none() || c.metadata.uid == r.uid)
}

/// Checks PVs against Nodes every [`TICK`] until the future is dropped.
pub async fn run(ctx: Arc<Context>, grace: Duration) {
    if let Err(e) = ctx.caches.ready().await {
        tracing::error!(error = %e, "caches never became ready; node-loss handling is off");
        return;
    }
    let mut gone_since: HashMap<String, Instant> = HashMap::new();
    // PVs whose claim or PV was already told, so events are written once.
    let mut told: HashSet<String> = HashSet::new();
    loop {
        let mut missing_now = HashSet::new();
        for pv in ctx.caches.volumes.state() {
            let ours = pv
                .spec
                .as_ref()
                .and_then(|s| s.csi.as_ref())
                .is_some_and(|c| c.driver == ctx.driver);
            let Some(node) = volume_node(&pv, &ctx.topology_key).filter(|_| ours) else {
                continue;
            };
            if ctx.caches.nodes.get(&ObjectRef::new(node)).is_some() {
                continue;
            }
            missing_now.insert(node.to_string());
            let since = *gone_since
                .entry(node.to_string())
                .or_insert_with(Instant::now);
            if since.elapsed() < grace {
                continue;
            }
            let name = pv.name_any();
            let outcome = match decide(&pv, claim_alive(&pv, &ctx)) {
                Loss::Remove => match remove(&pv, &ctx).await {
                    Ok(()) => {
                        tracing::info!(volume = %name, node, "node is gone: removed the PV of a deleted claim");
                        "removed"
                    }
                    Err(e) => {
                        tracing::warn!(volume = %name, node, error = %e, "removing the PV of a lost node failed; retrying");
                        "error"
                    }
                },
                Loss::TellClaim if told.insert(name.clone()) => {
                    if let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
                        ctx.events
                            .warning(
                                r,
                                NODE_LOST,
                                "Provision",
                                format!(
                                    "node {node} of volume {name} is gone: its data cannot be reached. Delete the claim to have a new volume provisioned; its PersistentVolume is removed then"
                                ),
                            )
                            .await;
                    }
                    "claim_told"
                }
                Loss::Keep if told.insert(name.clone()) => {
                    ctx.events
                        .warning(
                            &pv.object_ref(&()),
                            NODE_LOST,
                            "Reclaim",
                            format!(
                                "node {node} is gone with this volume's data; the PersistentVolume is kept by its reclaim policy: delete it when it is no longer needed"
                            ),
                        )
                        .await;
                    "kept"
                }
                _ => continue,
            };
            ctx.metrics
                .node_loss_volumes
                .get_or_create(&Outcome { outcome })
                .inc();
        }
        // A node that came back (or whose volumes all went) starts over.
        gone_since.retain(|n, _| missing_now.contains(n));
        let live: HashSet<String> = ctx
            .caches
            .volumes
            .state()
            .iter()
            .map(|p| p.name_any())
            .collect();
        told.retain(|n| live.contains(n));
        tokio::time::sleep(TICK).await;
    }
}

/// Deletes the PV and drops our finalizer so it really goes.
async fn remove(pv: &PersistentVolume, ctx: &Context) -> Result<(), kube::Error> {
    let api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let name = pv.name_any();
    if pv.metadata.deletion_timestamp.is_none() {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    let Some(mut current) = api.get_opt(&name).await? else {
        return Ok(());
    };
    if !current.finalizers().iter().any(|f| f == PV_FINALIZER) {
        return Ok(());
    }
    current.finalizers_mut().retain(|f| f != PV_FINALIZER);
    match api.replace(&name, &PostParams::default(), &current).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(policy: &str) -> PersistentVolume {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pvc-1"},
            "spec": {"persistentVolumeReclaimPolicy": policy},
        }))
        .expect("pv")
    }

    #[test]
    fn what_happens_to_the_volumes_of_a_lost_node() {
        let cases = [
            ("claim gone, Delete", "Delete", false, Loss::Remove),
            ("claim gone, Retain", "Retain", false, Loss::Keep),
            ("claim gone, Recycle", "Recycle", false, Loss::Keep),
            ("claim alive, Delete", "Delete", true, Loss::TellClaim),
            ("claim alive, Retain", "Retain", true, Loss::TellClaim),
        ];
        for (name, policy, alive, want) in cases {
            assert_eq!(decide(&pv(policy), alive), want, "case {name}");
        }
    }
}
