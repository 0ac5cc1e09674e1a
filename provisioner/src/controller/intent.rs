//! The first line of defence against leaked volumes: berth records its
//! intent to provision on the claim itself, durably, before the first
//! CreateVolume, as a finalizer ([`CLAIM_FINALIZER`]).
//!
//! Without it a claim deleted while CreateVolume is in flight, or while the
//! provisioner is down, or a crash between CreateVolume and the PV's
//! creation, leaves a volume nobody owns (external-provisioner #486). With
//! it the claim cannot go before berth has looked at it again, and that look
//! is triggered by the claim watch (a claim's deletion is an update while a
//! finalizer holds it; a restarted process lists it), so it survives
//! restarts of berth and of the API server:
//!
//! | claim | what the provisioner does ([`decide`]) |
//! |---|---|
//! | no finalizer, wants a volume | adds the finalizer (a patch carrying the resourceVersion, so no other finalizer is lost), then CreateVolume |
//! | finalizer, PV `pvc-<uid>` exists | drops the finalizer: the PV's reclaim policy owns the volume now (so a bound claim carries no berth finalizer); with `--bind` the binder drops it in the write that binds the claim to that PV |
//! | finalizer, deleted (or bound to another PV) and no PV | finds the volume (CreateVolume repeated with the same request, which is idempotent by name; a node agent also asks its own store by name), DeleteVolume (NotFound counts as done), then drops the finalizer |
//! | finalizer, the volume cannot be looked for (class gone, node gone) | drops the finalizer with a `VolumeCleanupAbandoned` Warning naming the claim and the volume: a node's orphan sweep (`agent/sweep.rs`) deletes such a volume once the claim is gone; a foreign driver's must be deleted by hand |
//!
//! In the node-local shape the controller records the intent itself when it
//! places an Immediate claim for one of berth's agents: the finalizer goes
//! in the same write as `selected-node`, and the agent finds it there
//! (nothing is made before the claim is placed, so the intent is never late).
//!
//! A claim never stays blocked silently: while DeleteVolume fails (the
//! driver is down) each attempt is a `VolumeFailedDelete` Warning on the
//! claim and is retried on the claim's backoff; in the node-local shape the
//! controller releases the deleted claims no agent can serve any more (no
//! selected node, or a Node deleted for `--node-loss-grace-secs`:
//! [`run_stranded`]), with a `NodeLost` Warning.
//!
//! Kubernetes' `kubernetes.io/pvc-protection` and berth's cloning
//! protection are other finalizers on the same list and are never touched.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::Context;
use super::events::{CLEANUP_ABANDONED, NODE_LOST, VOLUME_FAILED_DELETE};
use super::ownership::{ANN_SELECTED_NODE, selected_node};

/// berth's provisioning intent on a claim, in berth's own domain (as
/// `csi.berth.dev/volume-bytes` and the topology key are).
pub const CLAIM_FINALIZER: &str = "csi.berth.dev/provisioning";

/// How often a finalizer write that conflicts is retried on a fresh read
/// before the reconcile itself is retried.
const CONFLICT_RETRIES: usize = 5;

/// How often the controller looks for deleted claims no agent serves.
const STRANDED_TICK: Duration = Duration::from_secs(2);

/// Finds a volume's id by its name in a node agent's own store (the agent
/// holds the driver in process): `Ok(None)` when no such volume exists.
pub type VolumeLookup = Arc<dyn Fn(&str) -> Result<Option<String>, String> + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum IntentError {
    #[error("claim {claim}: writing finalizer {CLAIM_FINALIZER}: {source}")]
    Finalizer { claim: String, source: kube::Error },
    #[error("claim {claim}: looking for PersistentVolume {volume}: {source}")]
    VolumeLookup {
        claim: String,
        volume: String,
        source: kube::Error,
    },
    #[error(
        "claim {claim}: finding volume {volume} to delete it: rpc error: code = {code:?} desc = {message}"
    )]
    FindVolume {
        claim: String,
        volume: String,
        code: tonic::Code,
        message: String,
    },
    #[error("claim {claim}: finding volume {volume} in the node's store: {message}")]
    LocalLookup {
        claim: String,
        volume: String,
        message: String,
    },
    #[error(
        "claim {claim}: DeleteVolume {volume} (id {id}): rpc error: code = {code:?} desc = {message}"
    )]
    DeleteVolume {
        claim: String,
        volume: String,
        id: String,
        code: tonic::Code,
        message: String,
    },
}

impl IntentError {
    /// The event reason a failure is reported under on the claim: the one
    /// place these are decided.
    pub fn reason(&self) -> &'static str {
        match self {
            // Could not even look: the claim is held until this works.
            IntentError::Finalizer { .. } | IntentError::VolumeLookup { .. } => {
                super::events::PROVISIONING_FAILED
            }
            IntentError::FindVolume { .. }
            | IntentError::LocalLookup { .. }
            | IntentError::DeleteVolume { .. } => VOLUME_FAILED_DELETE,
        }
    }
}

/// What the provisioner does about a claim's intent finalizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Go on with provisioning (the finalizer is added before CreateVolume).
    Provision,
    /// Nothing to do: the claim is going and berth never started on it.
    Nothing,
    /// The PV exists: drop the finalizer, the PV's policy takes over.
    Release,
    /// No PV and none will be made: delete the volume, then drop the finalizer.
    DeleteVolume,
}

/// The decision for one claim. `pv_exists`: the PV `pvc-<uid>` exists;
/// `bound_elsewhere`: the claim is bound to another volume (a static one
/// won the race with our CreateVolume).
pub fn decide(has_finalizer: bool, deleting: bool, pv_exists: bool, bound_elsewhere: bool) -> Step {
    match (has_finalizer, deleting) {
        (false, true) => Step::Nothing,
        (false, false) => Step::Provision,
        (true, _) if pv_exists => Step::Release,
        (true, true) => Step::DeleteVolume,
        (true, false) if bound_elsewhere => Step::DeleteVolume,
        (true, false) => Step::Provision,
    }
}

pub fn has_finalizer(pvc: &PersistentVolumeClaim) -> bool {
    pvc.finalizers().iter().any(|f| f == CLAIM_FINALIZER)
}

fn key(pvc: &PersistentVolumeClaim) -> String {
    format!("{}/{}", pvc.namespace().unwrap_or_default(), pvc.name_any())
}

/// The merge patch that sets the claim's finalizers to `finalizers`,
/// conditional on `resource_version`: JSON merge patches replace lists
/// whole, so the precondition is what keeps a finalizer another controller
/// added meanwhile (the write conflicts and is redone on a fresh read).
fn finalizers_patch(
    resource_version: Option<&str>,
    finalizers: &[String],
    drop_selected_node: bool,
) -> serde_json::Value {
    let mut patch = serde_json::json!({
        "metadata": { "resourceVersion": resource_version, "finalizers": finalizers }
    });
    if drop_selected_node {
        patch["metadata"]["annotations"] = serde_json::json!({ ANN_SELECTED_NODE: null });
    }
    patch
}

/// The claim's finalizers with ours added (once) or removed; the order of
/// the others is kept.
pub fn with_finalizer(pvc: &PersistentVolumeClaim, present: bool) -> Vec<String> {
    let mut list: Vec<String> = pvc
        .finalizers()
        .iter()
        .filter(|f| *f != CLAIM_FINALIZER)
        .cloned()
        .collect();
    if present {
        list.push(CLAIM_FINALIZER.to_string());
    }
    list
}

/// Records the intent before CreateVolume and returns the claim as
/// written. `Ok(None)` when the claim went or is being deleted meanwhile
/// (then nothing may be created: the API server refuses new finalizers on a
/// deleted object anyway).
pub async fn add(
    pvc: &PersistentVolumeClaim,
    ctx: &Context,
) -> Result<Option<PersistentVolumeClaim>, IntentError> {
    if has_finalizer(pvc) {
        return Ok(Some(pvc.clone()));
    }
    write(pvc, ctx, true, false).await
}

/// Drops the intent (the PV exists, or the volume is deleted);
/// `drop_selected_node` also removes `selected-node` in the same write (the
/// claim goes back to the scheduler with nothing made on that node).
pub async fn release(
    pvc: &PersistentVolumeClaim,
    ctx: &Context,
    drop_selected_node: bool,
) -> Result<(), IntentError> {
    if !has_finalizer(pvc) && !drop_selected_node {
        return Ok(());
    }
    write(pvc, ctx, false, drop_selected_node).await.map(|_| ())
}

/// One finalizer write with conflicts answered by a fresh read. Returns
/// the claim as written, `None` when it is gone (or, when adding, deleted).
async fn write(
    pvc: &PersistentVolumeClaim,
    ctx: &Context,
    present: bool,
    drop_selected_node: bool,
) -> Result<Option<PersistentVolumeClaim>, IntentError> {
    let claim = key(pvc);
    let api: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &pvc.namespace().unwrap_or_default());
    let err = |source| IntentError::Finalizer {
        claim: claim.clone(),
        source,
    };
    let mut current = pvc.clone();
    let mut attempt = 0;
    loop {
        if present && current.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let patch = finalizers_patch(
            current.metadata.resource_version.as_deref(),
            &with_finalizer(&current, present),
            drop_selected_node,
        );
        match api
            .patch(
                &current.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(written) => {
                tracing::debug!(claim = %claim, finalizer = CLAIM_FINALIZER, added = present, "claim finalizer written");
                return Ok(Some(written));
            }
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(None),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < CONFLICT_RETRIES => {
                attempt += 1;
                tracing::debug!(claim = %claim, attempt, "claim changed while writing the finalizer; reading it again");
                match api.get_opt(&current.name_any()).await.map_err(err)? {
                    Some(fresh) if fresh.metadata.uid == pvc.metadata.uid => {
                        if has_finalizer(&fresh) == present && !drop_selected_node {
                            return Ok(Some(fresh));
                        }
                        current = fresh;
                    }
                    _ => return Ok(None),
                }
            }
            Err(e) => return Err(err(e)),
        }
    }
}

/// Says on the claim that its volume is left to the orphan sweep (or to an
/// administrator), then lets the claim go.
pub async fn abandon(
    pvc: &PersistentVolumeClaim,
    ctx: &Context,
    volume: &str,
    why: &str,
) -> Result<(), IntentError> {
    let claim = key(pvc);
    tracing::warn!(claim = %claim, volume, reason = why, "cannot look for the volume of a deleted claim; releasing the claim");
    ctx.events
        .warning(
            &pvc.object_ref(&()),
            CLEANUP_ABANDONED,
            "Delete",
            format!(
                "volume {volume} of claim {claim} cannot be looked for ({why}); the claim is released. A node agent's orphan sweep deletes the volume if it exists; with another driver, check for it and delete it by hand"
            ),
        )
        .await;
    release(pvc, ctx, false).await
}

/// The node-local controller's part: releases the deleted claims whose
/// node's agent cannot (no selected node, or the Node deleted for `grace`),
/// until the future is dropped. Their volumes went with the node, or a
/// returning node's orphan sweep deletes them.
pub async fn run_stranded(ctx: Arc<Context>, grace: Duration) {
    if let Err(e) = ctx.caches.ready().await {
        tracing::error!(error = %e, "caches never became ready; stranded claims are not released");
        return;
    }
    let mut gone_since: HashMap<String, Instant> = HashMap::new();
    loop {
        let mut missing_now = HashSet::new();
        for pvc in ctx.caches.claims.state() {
            if pvc.metadata.deletion_timestamp.is_none() || !has_finalizer(&pvc) {
                continue;
            }
            let why = match selected_node(&pvc) {
                None => "it names no node, so no agent serves it (a volume made on a node earlier is deleted by that node's orphan sweep)".to_string(),
                Some(node) => {
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
                    format!("its node {node} is gone, and with it any volume made there")
                }
            };
            let claim = key(&pvc);
            ctx.events
                .warning(
                    &pvc.object_ref(&()),
                    NODE_LOST,
                    "Delete",
                    format!("claim {claim} is deleted and no node agent can serve it: {why}; its provisioning finalizer is removed"),
                )
                .await;
            match release(&pvc, &ctx, false).await {
                Ok(()) => {
                    tracing::info!(claim = %claim, reason = %why, "released a deleted claim no agent serves")
                }
                Err(e) => {
                    tracing::warn!(claim = %claim, error = %e, "releasing a stranded claim failed; retrying")
                }
            }
        }
        gone_since.retain(|n, _| missing_now.contains(n));
        tokio::time::sleep(STRANDED_TICK).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pvc(finalizers: &[&str]) -> PersistentVolumeClaim {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c", "namespace": "ns", "finalizers": finalizers},
        }))
        .expect("pvc")
    }

    #[test]
    fn what_the_provisioner_does_with_its_intent() {
        use Step::*;
        // (case, has finalizer, deleting, PV exists, bound elsewhere, step)
        let cases = [
            ("new claim", false, false, false, false, Provision),
            (
                "deleted before berth started",
                false,
                true,
                false,
                false,
                Nothing,
            ),
            (
                "deleted, berth never started, PV by someone",
                false,
                true,
                true,
                false,
                Nothing,
            ),
            (
                "intent recorded, no PV yet",
                true,
                false,
                false,
                false,
                Provision,
            ),
            (
                "PV made: the PV's policy takes over",
                true,
                false,
                true,
                false,
                Release,
            ),
            (
                "deleted after the PV was made",
                true,
                true,
                true,
                false,
                Release,
            ),
            (
                "deleted before the PV was made",
                true,
                true,
                false,
                false,
                DeleteVolume,
            ),
            (
                "bound to a static volume meanwhile",
                true,
                false,
                false,
                true,
                DeleteVolume,
            ),
            (
                "bound elsewhere but our PV exists too",
                true,
                false,
                true,
                true,
                Release,
            ),
        ];
        for (name, fin, deleting, pv, elsewhere, want) in cases {
            assert_eq!(decide(fin, deleting, pv, elsewhere), want, "case {name}");
        }
    }

    #[test]
    fn other_finalizers_are_kept_in_order_and_ours_appears_once() {
        let c = pvc(&["kubernetes.io/pvc-protection", "x.example/keep"]);
        assert_eq!(
            with_finalizer(&c, true),
            [
                "kubernetes.io/pvc-protection",
                "x.example/keep",
                CLAIM_FINALIZER
            ]
        );
        let c = pvc(&[
            "kubernetes.io/pvc-protection",
            CLAIM_FINALIZER,
            "x.example/keep",
        ]);
        assert_eq!(
            with_finalizer(&c, true),
            [
                "kubernetes.io/pvc-protection",
                "x.example/keep",
                CLAIM_FINALIZER
            ]
        );
        assert_eq!(
            with_finalizer(&c, false),
            ["kubernetes.io/pvc-protection", "x.example/keep"]
        );
    }

    #[test]
    fn the_finalizer_write_is_conditional_on_the_version_read() {
        let p = finalizers_patch(Some("42"), &["a".into()], false);
        assert_eq!(p["metadata"]["resourceVersion"], "42");
        assert_eq!(p["metadata"]["finalizers"], serde_json::json!(["a"]));
        assert!(p["metadata"].get("annotations").is_none());
        let p = finalizers_patch(Some("7"), &[], true);
        assert_eq!(
            p["metadata"]["annotations"][ANN_SELECTED_NODE],
            serde_json::Value::Null
        );
        assert!(
            p["metadata"]["annotations"]
                .as_object()
                .is_some_and(|a| a.contains_key(ANN_SELECTED_NODE)),
            "null removes the annotation in a merge patch"
        );
    }

    #[test]
    fn the_finalizer_is_a_qualified_name_in_berths_domain() {
        let (domain, name) = CLAIM_FINALIZER.split_once('/').expect("domain/name");
        assert!(domain.ends_with("berth.dev"));
        assert!(
            crate::model::validate_label_key(CLAIM_FINALIZER).is_ok(),
            "{name}"
        );
    }
}
