//! Dynamic provisioning: a claim whose class names our provisioner gets a
//! CSI volume named `pvc-<claim uid>` (so a restarted controller finds, not
//! duplicates, its work) and a PV pre-bound to the claim.
//!
//! The flow follows the CSI external-provisioner: wait for
//! `volume.kubernetes.io/selected-node` under WaitForFirstConsumer, pass the
//! class parameters, topology (selected node, else allowedTopologies) and
//! mount options, and on ResourceExhausted for a selected node hand the claim
//! back to the scheduler by removing the annotation.
//!
//! Before the first CreateVolume the claim gets berth's intent finalizer,
//! dropped once the PV exists or the volume is deleted again ([`intent`]):
//! a claim deleted mid-provisioning, or while berth is down, is held until
//! its volume is gone, so no process killed at any moment leaks one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::Context;
use super::csi_client::CsiClient;
use super::data_source;
use super::events::{PROVISIONING_FAILED, PROVISIONING_SUCCEEDED, VOLUME_DELETED};
use super::intent::{self, IntentError, Step};
use super::ownership::{ANN_SELECTED_NODE, selected_node};
use crate::binding::Content;
use crate::quantity::Quantity;

pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
pub const PV_FINALIZER: &str = "external-provisioner.volume.kubernetes.io/finalizer";
/// Class parameters under this prefix are Kubernetes' own, never the driver's.
const RESERVED_PREFIX: &str = "csi.storage.k8s.io/";

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Resize(#[from] super::resize::ResizeError),
    #[error("StorageClass {0:?} not found")]
    ClassNotFound(String),
    #[error("StorageClass {class:?} now names provisioner {provisioner:?}")]
    ClassOfAnotherProvisioner { class: String, provisioner: String },
    /// The claim's provisioning intent (its finalizer, or the deletion of
    /// the volume of a claim deleted before its PV was made).
    #[error(transparent)]
    Intent(#[from] IntentError),
    #[error("claim {claim}: {field}: {message}")]
    InvalidClaim {
        claim: String,
        field: &'static str,
        message: String,
    },
    #[error("node {node:?} has not registered driver {driver:?} (no CSINode entry yet)")]
    NodeNotRegistered { node: String, driver: String },
    #[error("node {node:?} lacks topology label {key:?}")]
    NodeTopology { node: String, key: String },
    #[error("node {node:?} is at its volume limit: {used} of {limit} {driver} volumes")]
    NodeFull {
        node: String,
        driver: String,
        used: usize,
        limit: i32,
    },
    /// The claim's data source cannot be used (yet); the planner's words.
    #[error("{0}")]
    DataSource(String),
    #[error(
        "failed to provision volume with StorageClass {class:?}: volume content source missing"
    )]
    ContentSourceMissing { class: String },
    #[error(
        "failed to provision volume with StorageClass {class:?}: rpc error: code = {code:?} desc = {message}"
    )]
    Csi {
        class: String,
        code: tonic::Code,
        message: String,
    },
}

impl ProvisionError {
    /// Final errors will fail again until someone edits the claim or class;
    /// they are still retried, but only on the capped backoff.
    pub fn outcome(&self) -> &'static str {
        match self {
            ProvisionError::ClassNotFound(_)
            | ProvisionError::ClassOfAnotherProvisioner { .. }
            | ProvisionError::InvalidClaim { .. } => "final_error",
            // The driver rejected the request itself: retrying the same
            // request cannot succeed (InvalidArgument, OutOfRange, ...).
            ProvisionError::Csi { code, .. } if is_final_code(*code) => "final_error",
            _ => "transient_error",
        }
    }
}

fn is_final_code(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        InvalidArgument
            | OutOfRange
            | AlreadyExists
            | FailedPrecondition
            | Unimplemented
            | PermissionDenied
    )
}

fn key(pvc: &PersistentVolumeClaim) -> String {
    format!("{}/{}", pvc.namespace().unwrap_or_default(), pvc.name_any())
}

/// The provisioner a claim asks for, if any (GA annotation first, then beta).
fn requested_provisioner(pvc: &PersistentVolumeClaim) -> Option<&str> {
    let a = pvc.metadata.annotations.as_ref()?;
    a.get(ANN_STORAGE_PROVISIONER)
        .or_else(|| a.get(ANN_BETA_STORAGE_PROVISIONER))
        .map(String::as_str)
}

/// Name of the volume and PV for a claim: stable across restarts.
pub fn volume_name(pvc: &PersistentVolumeClaim) -> Option<String> {
    pvc.metadata.uid.as_ref().map(|u| format!("pvc-{u}"))
}

pub async fn reconcile(
    pvc: Arc<PersistentVolumeClaim>,
    ctx: Arc<Context>,
) -> Result<Action, ProvisionError> {
    let k = key(&pvc);
    let Some(csi) = ctx.csi.clone() else {
        return Ok(Action::await_change());
    };
    if let Some(done) = settle_intent(&pvc, &ctx, &csi).await {
        return done;
    }
    // A bound claim has its volume: the only thing left to do for it is
    // to grow it when asked (an agent does that for its node's volumes).
    let bound = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .is_some_and(|v| !v.is_empty());
    if bound && ctx.scope.node().is_some() && pvc.metadata.deletion_timestamp.is_none() {
        ctx.pending.remove(&k);
        ctx.metrics.queue_depth.set(ctx.pending.len() as i64);
        let action = super::resize::reconcile(&pvc, &ctx).await?;
        ctx.backoff.reset(&k);
        return Ok(action);
    }
    if let Some(done) = super::data_source::release_source(&pvc, &ctx).await {
        return done;
    }
    let wants_us = pvc.metadata.deletion_timestamp.is_none()
        && ctx.scope.owns_claim(&pvc)
        && pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_deref())
            .unwrap_or("")
            .is_empty()
        && requested_provisioner(&pvc) == Some(ctx.provisioner.as_str());
    if !wants_us {
        ctx.done(&k);
        return Ok(Action::await_change());
    }
    let Some(pv_name) = volume_name(&pvc) else {
        return Ok(Action::await_change());
    };
    let class_name = pvc
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default();
    let class = ctx
        .caches
        .get(&ctx.client, &ctx.caches.classes, &class_name)
        .await?
        .ok_or_else(|| ProvisionError::ClassNotFound(class_name.clone()));
    let class = match class {
        Ok(c) => c,
        Err(e) => return Err(ctx.fail(&pvc, e).await),
    };
    if class.provisioner != ctx.provisioner {
        ctx.done(&k);
        return Ok(Action::await_change());
    }
    let wffc = class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer");
    let node = selected_node(&pvc).map(str::to_string);
    if wffc && node.is_none() {
        // The scheduler has not picked a node yet; the annotation's arrival
        // is a change to this claim and wakes us up.
        return Ok(Action::await_change());
    }
    // A PV made a moment ago may not be cached yet; then CreateVolume
    // returns the same volume (same name) and creating the PV conflicts,
    // which is success: no lookup is needed to be idempotent.
    if ctx.caches.volumes.get(&ObjectRef::new(&pv_name)).is_some() {
        ctx.done(&k);
        return Ok(Action::await_change());
    }
    ctx.pending.insert(k.clone(), ());
    ctx.metrics.queue_depth.set(ctx.pending.len() as i64);

    let mut request = match build_request(&pvc, &class, &pv_name, node.as_deref(), true, &ctx).await
    {
        Ok(r) => r,
        Err(e @ ProvisionError::NodeFull { .. }) => {
            ctx.metrics
                .observe_provision("transient_error", std::time::Duration::ZERO);
            return Err(reschedule(&pvc, e, false, &ctx).await);
        }
        Err(e) => return Err(ctx.fail(&pvc, e).await),
    };
    // A clone or a restore: never an empty volume in its place.
    let content = match data_source::resolve(&pvc, &class, node.as_deref(), &ctx).await {
        Ok(None) => None,
        Ok(Some(data_source::Source::Content(c))) => Some(c),
        Ok(Some(data_source::Source::Populator(why))) => {
            ctx.events
                .normal(
                    &pvc.object_ref(&()),
                    super::events::PROVISIONING,
                    "Provision",
                    "Assuming an external populator will provision the volume".into(),
                )
                .await;
            tracing::info!(claim = %k, reason = %why, "left to a volume populator");
            ctx.done(&k);
            return Ok(Action::await_change());
        }
        Err(e) => {
            ctx.metrics
                .observe_provision(e.outcome(), std::time::Duration::ZERO);
            return Err(ctx.fail(&pvc, e).await);
        }
    };
    if let Some(c) = &content {
        if let Content::Clone { claim, .. } = c {
            let ns = pvc.namespace().unwrap_or_default();
            if let Err(e) = data_source::protect_source(&ctx.client, &ns, claim).await {
                return Err(ctx.fail(&pvc, e).await);
            }
        }
        tracing::info!(claim = %k, source = %c, "provisioning from a data source");
        request.volume_content_source = Some(data_source::csi_source(c));
    }

    // The intent is durable before the volume can exist: from here on a
    // deleted claim waits for its volume to be deleted.
    let claim = match intent::add(&pvc, &ctx).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            tracing::info!(claim = %k, "claim deleted before CreateVolume; nothing made");
            ctx.done(&k);
            return Ok(Action::await_change());
        }
        Err(e) => return Err(ctx.fail(&pvc, e.into()).await),
    };

    // One event per outcome (ProvisioningSucceeded or ProvisioningFailed),
    // not also one when the work starts: events share the API budget with
    // the writes that matter.
    let pvc_ref = pvc.object_ref(&());
    let started = Instant::now();
    let volume = match csi.create_volume(request.clone()).await {
        Ok(v) => v,
        Err(status) => {
            let e = ProvisionError::Csi {
                class: class_name.clone(),
                code: status.code(),
                message: status.message().to_string(),
            };
            ctx.metrics
                .observe_provision(e.outcome(), started.elapsed());
            if status.code() == tonic::Code::ResourceExhausted && node.is_some() {
                // Nothing of this name is on the node: the intent goes with
                // the node, in the same write.
                return Err(reschedule(&claim, e, true, &ctx).await);
            }
            // A claim deleted meanwhile is held by the finalizer: the
            // retry finds it deleting and deletes what the driver made.
            return Err(ctx.fail(&pvc, e).await);
        }
    };

    // A driver that ignored the content source made an empty volume:
    // delete it rather than hand it out as a copy.
    if content.is_some() && volume.content_source.is_none() {
        // On failure the finalizer keeps the claim: a retry gets the same
        // volume from CreateVolume and deletes it again.
        if let Err(status) = csi.delete_volume(&volume.volume_id).await {
            tracing::warn!(claim = %k, volume = %volume.volume_id, error = %status.message(), "deleting a volume made without its content failed; retrying");
        }
        ctx.metrics
            .observe_provision("final_error", started.elapsed());
        return Err(ctx
            .fail(
                &pvc,
                ProvisionError::ContentSourceMissing {
                    class: class_name.clone(),
                },
            )
            .await);
    }

    // The claim may have been deleted while the driver worked: then the
    // volume has no owner and must not outlive its claim. (A deletion the
    // cache has not seen yet leaves a PV whose claim is gone: it is
    // released and reclaimed by its policy, as upstream's are.)
    if !still_wanted_cached(&pvc, &ctx).await? {
        tracing::info!(claim = %k, volume = %volume.volume_id, "claim deleted during provisioning; deleting the volume");
        return delete_intended(&claim, &ctx, &csi, &pv_name, Some(volume.volume_id)).await;
    }

    let pv = build_pv(
        &pvc,
        &class,
        &pv_name,
        &volume,
        &ctx.provisioner,
        &ctx.driver,
    )?;
    let pvs: Api<PersistentVolume> = Api::all(ctx.client.clone());
    match pvs.create(&PostParams::default(), &pv).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => {
            ctx.metrics
                .observe_provision("transient_error", started.elapsed());
            return Err(ctx.fail(&pvc, e.into()).await);
        }
    }
    ctx.metrics.observe_provision("success", started.elapsed());
    tracing::info!(claim = %k, volume = %pv_name, "provisioned");
    // The finalizer stays until this process's PV cache has the PV (or the
    // claim is bound to it): dropped earlier, a reconcile with a lagging
    // cache would record the intent again.
    ctx.events
        .normal(
            &pvc_ref,
            PROVISIONING_SUCCEEDED,
            "Provision",
            format!("Successfully provisioned volume {pv_name}"),
        )
        .await;
    ctx.done(&k);
    Ok(Action::await_change())
}

pub fn error_policy(
    pvc: Arc<PersistentVolumeClaim>,
    err: &ProvisionError,
    ctx: Arc<Context>,
) -> Action {
    let delay = ctx.backoff.next(&key(&pvc));
    tracing::warn!(claim = %key(&pvc), error = %err, retry_in = ?delay, "provisioning failed");
    Action::requeue(delay)
}

/// [`still_wanted`], answered from the claims cache when it has the claim.
async fn still_wanted_cached(
    pvc: &PersistentVolumeClaim,
    ctx: &Context,
) -> Result<bool, ProvisionError> {
    let at = ObjectRef::new(&pvc.name_any()).within(&pvc.namespace().unwrap_or_default());
    match ctx.caches.claims.get(&at) {
        Some(c) => {
            Ok(c.metadata.uid == pvc.metadata.uid && c.metadata.deletion_timestamp.is_none())
        }
        None => still_wanted(pvc, ctx).await,
    }
}

/// The claim still exists as the same object and is not being deleted.
async fn still_wanted(pvc: &PersistentVolumeClaim, ctx: &Context) -> Result<bool, ProvisionError> {
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &pvc.namespace().unwrap_or_default());
    let current = claims.get_opt(&pvc.name_any()).await?;
    Ok(current.is_some_and(|c| {
        c.metadata.uid == pvc.metadata.uid && c.metadata.deletion_timestamp.is_none()
    }))
}

/// Failures after which the driver may have made (or still be making) the
/// volume: the call timed out, was cut off, or raced another one for the
/// same name.
fn may_have_created(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        DeadlineExceeded | Unavailable | Cancelled | Unknown | Internal | Aborted
    )
}

/// The selected node cannot take the volume: drop `selected-node` so the
/// scheduler picks again, and say why on the claim. `drop_intent` when the
/// driver said nothing of the claim's name is on the node: then the
/// finalizer goes in the same write (the next node's provisioner adds it
/// again before its CreateVolume).
async fn reschedule(
    pvc: &PersistentVolumeClaim,
    err: ProvisionError,
    drop_intent: bool,
    ctx: &Context,
) -> ProvisionError {
    if drop_intent && intent::has_finalizer(pvc) {
        if let Err(e) = intent::release(pvc, ctx, true).await {
            tracing::warn!(claim = %key(pvc), error = %e, "removing selected-node and the provisioning finalizer failed");
        }
        return ctx.fail(pvc, err).await;
    }
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &pvc.namespace().unwrap_or_default());
    let patch = serde_json::json!({ "metadata": { "annotations": { ANN_SELECTED_NODE: null } } });
    if let Err(e) = claims
        .patch(
            &pvc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        tracing::warn!(claim = %key(pvc), error = %e, "removing selected-node failed");
    }
    ctx.fail(pvc, err).await
}

/// The claim's provisioning intent ([`intent`]): `Some` when it decided
/// this reconcile (the finalizer was dropped, or the volume of a claim
/// that will have no PV was deleted).
async fn settle_intent(
    pvc: &PersistentVolumeClaim,
    ctx: &Context,
    csi: &CsiClient,
) -> Option<Result<Action, ProvisionError>> {
    if !intent::has_finalizer(pvc) {
        return None;
    }
    let pv_name = volume_name(pvc)?;
    let deleting = pvc.metadata.deletion_timestamp.is_some();
    let bound_to = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .filter(|v| !v.is_empty());
    let bound_elsewhere = bound_to.is_some_and(|v| v != pv_name);
    let mut pv_exists = bound_to == Some(pv_name.as_str())
        || ctx.caches.volumes.get(&ObjectRef::new(&pv_name)).is_some();
    if !pv_exists && (deleting || bound_elsewhere) {
        // About to delete data: a PV the cache has not seen yet must not
        // be missed, so ask the API server.
        match Api::<PersistentVolume>::all(ctx.client.clone())
            .get_metadata_opt(&pv_name)
            .await
        {
            Ok(found) => pv_exists = found.is_some(),
            Err(source) => {
                let e = IntentError::VolumeLookup {
                    claim: key(pvc),
                    volume: pv_name,
                    source,
                };
                return Some(Err(ctx.fail(pvc, e.into()).await));
            }
        }
    }
    match intent::decide(true, deleting, pv_exists, bound_elsewhere) {
        Step::Provision | Step::Nothing => None,
        Step::Release => {
            tracing::info!(claim = %key(pvc), volume = %pv_name, "the PV exists; dropping the provisioning finalizer");
            Some(match intent::release(pvc, ctx, false).await {
                Ok(()) => Ok(Action::await_change()),
                Err(e) => Err(ctx.fail(pvc, e.into()).await),
            })
        }
        Step::DeleteVolume => Some(delete_intended(pvc, ctx, csi, &pv_name, None).await),
    }
}

/// What looking for a deleted claim's volume found.
enum Found {
    Volume(String),
    Absent,
    /// It cannot be looked for; why.
    Unknown(String),
}

/// Deletes the volume of a claim that will have no PV (it was deleted, or
/// bound to another volume), then drops the finalizer. `id` when the
/// caller just made the volume.
async fn delete_intended(
    pvc: &PersistentVolumeClaim,
    ctx: &Context,
    csi: &CsiClient,
    pv_name: &str,
    id: Option<String>,
) -> Result<Action, ProvisionError> {
    let k = key(pvc);
    if id.is_some() {
        // Made in this reconcile, but an earlier one may have made its PV:
        // a volume with a PV is never deleted here.
        match Api::<PersistentVolume>::all(ctx.client.clone())
            .get_metadata_opt(pv_name)
            .await
        {
            Ok(None) => {}
            // The next look finds the PV and drops the finalizer.
            Ok(Some(_)) => return Ok(Action::requeue(std::time::Duration::from_secs(1))),
            Err(source) => {
                let e = IntentError::VolumeLookup {
                    claim: k,
                    volume: pv_name.to_string(),
                    source,
                };
                return Err(ctx.fail(pvc, e.into()).await);
            }
        }
    }
    let found = match id {
        Some(id) => Found::Volume(id),
        None => match find_volume(pvc, ctx, csi, pv_name).await {
            Ok(f) => f,
            Err(e) => return Err(ctx.fail(pvc, e).await),
        },
    };
    match found {
        Found::Unknown(why) => {
            if let Err(e) = intent::abandon(pvc, ctx, pv_name, &why).await {
                return Err(ctx.fail(pvc, e.into()).await);
            }
        }
        Found::Absent => {
            tracing::info!(claim = %k, volume = %pv_name, "no volume was made for the claim; dropping the provisioning finalizer");
            if let Err(e) = intent::release(pvc, ctx, false).await {
                return Err(ctx.fail(pvc, e.into()).await);
            }
        }
        Found::Volume(id) => {
            let started = Instant::now();
            if let Err(status) = csi.delete_volume(&id).await {
                ctx.metrics
                    .observe_deletion("transient_error", started.elapsed());
                let e = IntentError::DeleteVolume {
                    claim: k.clone(),
                    volume: pv_name.to_string(),
                    id,
                    code: status.code(),
                    message: status.message().to_string(),
                };
                return Err(ctx.fail(pvc, e.into()).await);
            }
            ctx.metrics.observe_deletion("success", started.elapsed());
            let bound_elsewhere = pvc
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .is_some_and(|v| !v.is_empty() && v != pv_name);
            let why = if bound_elsewhere {
                "the claim was bound to another volume"
            } else {
                "the claim was deleted before its PersistentVolume was made"
            };
            tracing::info!(claim = %k, volume = %pv_name, id = %id, reason = why, "deleted the volume of a claim that will have no PV");
            ctx.events
                .normal(
                    &pvc.object_ref(&()),
                    VOLUME_DELETED,
                    "Delete",
                    format!("Deleted volume {pv_name} of claim {k}: {why}"),
                )
                .await;
            if let Err(e) = intent::release(pvc, ctx, false).await {
                return Err(ctx.fail(pvc, e.into()).await);
            }
        }
    }
    ctx.done(&k);
    Ok(Action::await_change())
}

/// The id of the volume named `pv_name`, if the driver has one. CSI has no
/// lookup by name, but CreateVolume is idempotent by name: the same request
/// again returns the volume (waiting for one still being made, or making
/// it). When the request cannot be rebuilt (its class or node is gone) or
/// the driver cannot tell, a node agent asks its own store.
async fn find_volume(
    pvc: &PersistentVolumeClaim,
    ctx: &Context,
    csi: &CsiClient,
    pv_name: &str,
) -> Result<Found, ProvisionError> {
    let why = match rebuild_request(pvc, ctx, pv_name).await {
        Ok(request) => match csi.create_volume(request).await {
            Ok(v) => return Ok(Found::Volume(v.volume_id)),
            // Outages: retry on the claim's backoff; the claim is held.
            Err(s) if may_have_created(s.code()) => {
                return Err(IntentError::FindVolume {
                    claim: key(pvc),
                    volume: pv_name.to_string(),
                    code: s.code(),
                    message: s.message().to_string(),
                }
                .into());
            }
            // A volume of that name made from another request, or a source
            // that is gone: the answer says nothing about our volume.
            Err(s) if matches!(s.code(), tonic::Code::AlreadyExists | tonic::Code::NotFound) => {
                format!("CreateVolume: {:?}: {}", s.code(), s.message())
            }
            // The driver refused the request itself: the same request never
            // made anything.
            Err(_) => return Ok(Found::Absent),
        },
        Err(e) => e.to_string(),
    };
    let Some(lookup) = ctx.volume_lookup.get() else {
        return Ok(Found::Unknown(why));
    };
    match lookup(pv_name) {
        Ok(Some(id)) => Ok(Found::Volume(id)),
        Ok(None) => Ok(Found::Absent),
        Err(message) => Err(IntentError::LocalLookup {
            claim: key(pvc),
            volume: pv_name.to_string(),
            message,
        }
        .into()),
    }
}

/// The CreateVolume request provisioning made (or would make) for the
/// claim: the same class, node and content source.
async fn rebuild_request(
    pvc: &PersistentVolumeClaim,
    ctx: &Context,
    pv_name: &str,
) -> Result<csi_proto::CreateVolumeRequest, ProvisionError> {
    let class_name = pvc
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default();
    let class = ctx
        .caches
        .get(&ctx.client, &ctx.caches.classes, &class_name)
        .await?
        .ok_or_else(|| ProvisionError::ClassNotFound(class_name.clone()))?;
    if class.provisioner != ctx.provisioner {
        return Err(ProvisionError::ClassOfAnotherProvisioner {
            class: class_name,
            provisioner: class.provisioner.clone(),
        });
    }
    let node = selected_node(pvc);
    let mut request = build_request(pvc, &class, pv_name, node, false, ctx).await?;
    match data_source::resolve(pvc, &class, node, ctx).await? {
        None => {}
        Some(data_source::Source::Content(c)) => {
            request.volume_content_source = Some(data_source::csi_source(&c));
        }
        Some(data_source::Source::Populator(why)) => {
            return Err(ProvisionError::DataSource(why));
        }
    }
    Ok(request)
}

impl Context {
    /// Records a failed attempt on the claim (Warning event) and returns the error.
    async fn fail(&self, pvc: &PersistentVolumeClaim, err: ProvisionError) -> ProvisionError {
        let (reason, action) = match &err {
            ProvisionError::Intent(e) => (e.reason(), "Delete"),
            _ => (PROVISIONING_FAILED, "Provision"),
        };
        tracing::debug!(claim = %key(pvc), reason, error = %err, "attempt failed");
        self.events
            .warning(&pvc.object_ref(&()), reason, action, err.to_string())
            .await;
        err
    }

    fn done(&self, key: &str) {
        self.backoff.reset(key);
        self.pending.remove(key);
        self.metrics.queue_depth.set(self.pending.len() as i64);
    }
}

fn invalid(pvc: &PersistentVolumeClaim, field: &'static str, message: String) -> ProvisionError {
    ProvisionError::InvalidClaim {
        claim: key(pvc),
        field,
        message,
    }
}

fn bytes(pvc: &PersistentVolumeClaim, field: &'static str, q: &str) -> Result<i64, ProvisionError> {
    let parsed = Quantity::parse(q).map_err(|e| invalid(pvc, field, e.to_string()))?;
    i64::try_from(parsed.value_ceil())
        .map_err(|_| invalid(pvc, field, format!("{q} is out of range")))
}

fn access_mode(mode: &str) -> Option<i32> {
    use csi_proto::volume_capability::access_mode::Mode;
    let m = match mode {
        "ReadWriteOnce" => Mode::SingleNodeWriter,
        "ReadOnlyMany" => Mode::MultiNodeReaderOnly,
        "ReadWriteMany" => Mode::MultiNodeMultiWriter,
        "ReadWriteOncePod" => Mode::SingleNodeSingleWriter,
        _ => return None,
    };
    Some(m as i32)
}

fn fs_type(class: &StorageClass) -> Option<String> {
    let p = class.parameters.as_ref()?;
    p.get("csi.storage.k8s.io/fstype")
        .or_else(|| p.get("fsType"))
        .cloned()
}

async fn build_request(
    pvc: &PersistentVolumeClaim,
    class: &StorageClass,
    pv_name: &str,
    node: Option<&str>,
    check_limit: bool,
    ctx: &Context,
) -> Result<csi_proto::CreateVolumeRequest, ProvisionError> {
    use csi_proto::volume_capability::{AccessMode, AccessType, BlockVolume, MountVolume};
    let spec = pvc.spec.clone().unwrap_or_default();
    let resources = spec.resources.unwrap_or_default();
    let request = resources
        .requests
        .as_ref()
        .and_then(|r| r.get("storage"))
        .ok_or_else(|| invalid(pvc, "spec.resources.requests.storage", "missing".into()))?;
    let required = bytes(pvc, "spec.resources.requests.storage", &request.0)?;
    let limit = match resources.limits.as_ref().and_then(|l| l.get("storage")) {
        Some(q) => bytes(pvc, "spec.resources.limits.storage", &q.0)?,
        None => 0,
    };
    let block = spec.volume_mode.as_deref() == Some("Block");
    let access_type = if block {
        AccessType::Block(BlockVolume {})
    } else {
        AccessType::Mount(MountVolume {
            fs_type: fs_type(class).unwrap_or_default(),
            mount_flags: class.mount_options.clone().unwrap_or_default(),
            volume_mount_group: String::new(),
        })
    };
    let mut capabilities = Vec::new();
    for mode in spec.access_modes.unwrap_or_default() {
        let mode = access_mode(&mode).ok_or_else(|| {
            invalid(
                pvc,
                "spec.accessModes",
                format!("unknown access mode {mode:?}"),
            )
        })?;
        capabilities.push(csi_proto::VolumeCapability {
            access_type: Some(access_type.clone()),
            access_mode: Some(AccessMode { mode }),
        });
    }
    if capabilities.is_empty() {
        return Err(invalid(pvc, "spec.accessModes", "empty".into()));
    }

    let mut parameters: HashMap<String, String> = class
        .parameters
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !k.starts_with(RESERVED_PREFIX))
        .collect();
    // What the external-provisioner passes with --extra-create-metadata.
    parameters.insert("csi.storage.k8s.io/pvc/name".into(), pvc.name_any());
    parameters.insert(
        "csi.storage.k8s.io/pvc/namespace".into(),
        pvc.namespace().unwrap_or_default(),
    );
    parameters.insert("csi.storage.k8s.io/pv/name".into(), pv_name.to_string());

    let accessibility = match node {
        Some(node) => Some(node_topology(node, check_limit, ctx).await?),
        None => allowed_topologies(class),
    };
    Ok(csi_proto::CreateVolumeRequest {
        name: pv_name.to_string(),
        capacity_range: Some(csi_proto::CapacityRange {
            required_bytes: required,
            limit_bytes: limit,
        }),
        volume_capabilities: capabilities,
        parameters,
        accessibility_requirements: accessibility,
        ..Default::default()
    })
}

/// The selected node's segment for our driver's topology keys (as the
/// kubelet registered them in CSINode), after checking the node's volume
/// limit from the same CSINode entry when `check_limit` (not when the
/// request is rebuilt to find a volume already made).
async fn node_topology(
    node: &str,
    check_limit: bool,
    ctx: &Context,
) -> Result<csi_proto::TopologyRequirement, ProvisionError> {
    let not_registered = || ProvisionError::NodeNotRegistered {
        node: node.to_string(),
        driver: ctx.driver.clone(),
    };
    let csinode = ctx
        .caches
        .get(&ctx.client, &ctx.caches.csi_nodes, node)
        .await?
        .ok_or_else(not_registered)?;
    let entry = csinode
        .spec
        .drivers
        .iter()
        .find(|d| d.name == ctx.driver)
        .ok_or_else(not_registered)?;
    let labels = ctx
        .caches
        .get(&ctx.client, &ctx.caches.nodes, node)
        .await?
        .ok_or_else(not_registered)?
        .metadata
        .labels
        .clone()
        .unwrap_or_default();
    let mut segments = HashMap::new();
    for key in entry.topology_keys.clone().unwrap_or_default() {
        let value = labels
            .get(&key)
            .ok_or_else(|| ProvisionError::NodeTopology {
                node: node.to_string(),
                key: key.clone(),
            })?;
        segments.insert(key, value.clone());
    }
    if let Some(limit) = entry
        .allocatable
        .as_ref()
        .and_then(|a| a.count)
        .filter(|_| check_limit)
    {
        let used = volumes_on_node(&labels, ctx).await?;
        if used >= usize::try_from(limit).unwrap_or(0) {
            return Err(ProvisionError::NodeFull {
                node: node.to_string(),
                driver: ctx.driver.clone(),
                used,
                limit,
            });
        }
    }
    let topology = csi_proto::Topology { segments };
    Ok(csi_proto::TopologyRequirement {
        requisite: vec![topology.clone()],
        preferred: vec![topology],
    })
}

/// Our driver's volumes whose node affinity a node with `labels` satisfies.
async fn volumes_on_node(
    labels: &BTreeMap<String, String>,
    ctx: &Context,
) -> Result<usize, ProvisionError> {
    let count = ctx
        .caches
        .volumes
        .state()
        .iter()
        .filter(|pv| {
            let spec = pv.spec.as_ref();
            spec.and_then(|s| s.csi.as_ref())
                .is_some_and(|c| c.driver == ctx.driver)
                && spec
                    .and_then(|s| s.node_affinity.as_ref())
                    .and_then(|a| a.required.as_ref())
                    .is_some_and(|sel| {
                        sel.node_selector_terms.iter().any(|term| {
                            term.match_expressions.iter().flatten().all(|e| {
                                e.operator == "In"
                                    && labels
                                        .get(&e.key)
                                        .is_some_and(|v| e.values.iter().flatten().any(|x| x == v))
                            })
                        })
                    })
        })
        .count();
    Ok(count)
}

/// allowedTopologies as CSI requisite segments: each term's label
/// requirements multiplied out (a term with `zone in [a,b]` gives two).
fn allowed_topologies(class: &StorageClass) -> Option<csi_proto::TopologyRequirement> {
    let terms = class
        .allowed_topologies
        .as_ref()
        .filter(|t| !t.is_empty())?;
    let mut requisite = Vec::new();
    for term in terms {
        let mut combos: Vec<HashMap<String, String>> = vec![HashMap::new()];
        for expr in term.match_label_expressions.iter().flatten() {
            let mut next = Vec::new();
            for combo in &combos {
                for v in &expr.values {
                    let mut c = combo.clone();
                    c.insert(expr.key.clone(), v.clone());
                    next.push(c);
                }
            }
            combos = next;
        }
        requisite.extend(
            combos
                .into_iter()
                .filter(|c| !c.is_empty())
                .map(|segments| csi_proto::Topology { segments }),
        );
    }
    if requisite.is_empty() {
        return None;
    }
    Some(csi_proto::TopologyRequirement {
        preferred: requisite.clone(),
        requisite,
    })
}

fn build_pv(
    pvc: &PersistentVolumeClaim,
    class: &StorageClass,
    pv_name: &str,
    volume: &csi_proto::Volume,
    provisioner: &str,
    driver: &str,
) -> Result<PersistentVolume, ProvisionError> {
    let spec = pvc.spec.clone().unwrap_or_default();
    let terms: Vec<serde_json::Value> = volume
        .accessible_topology
        .iter()
        .map(|t| {
            let mut keys: Vec<_> = t.segments.iter().collect();
            keys.sort();
            let exprs: Vec<_> = keys
                .into_iter()
                .map(|(k, v)| serde_json::json!({ "key": k, "operator": "In", "values": [v] }))
                .collect();
            serde_json::json!({ "matchExpressions": exprs })
        })
        .collect();
    let mut pv_spec = serde_json::json!({
        // Canonical, as upstream writes it (`64Mi`, not `67108864`).
        "capacity": { "storage": u64::try_from(volume.capacity_bytes).map(|b| Quantity::from_bytes(b).to_string()).unwrap_or_default() },
        "accessModes": spec.access_modes.clone().unwrap_or_default(),
        "volumeMode": spec.volume_mode.clone().unwrap_or_else(|| "Filesystem".into()),
        "storageClassName": class.metadata.name.clone().unwrap_or_default(),
        "persistentVolumeReclaimPolicy": class.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
        "claimRef": {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": pvc.namespace(),
            "name": pvc.name_any(),
            "uid": pvc.metadata.uid,
            "resourceVersion": pvc.metadata.resource_version,
        },
        "csi": {
            "driver": driver,
            "volumeHandle": volume.volume_id,
            "volumeAttributes": volume.volume_context,
        },
    });
    if volume.capacity_bytes == 0 {
        // A driver may report 0 for "unknown": the claim's request is the size.
        pv_spec["capacity"]["storage"] = serde_json::json!(
            spec.resources
                .and_then(|r| r.requests)
                .and_then(|r| r.get("storage").map(|q| q.0.clone()))
        );
    }
    if let Some(fs) = fs_type(class) {
        pv_spec["csi"]["fsType"] = serde_json::json!(fs);
    }
    if let Some(opts) = class.mount_options.as_ref().filter(|o| !o.is_empty()) {
        pv_spec["mountOptions"] = serde_json::json!(opts);
    }
    if !terms.is_empty() {
        pv_spec["nodeAffinity"] = serde_json::json!({ "required": { "nodeSelectorTerms": terms } });
    }
    let pv = serde_json::json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": pv_name,
            "annotations": { ANN_PROVISIONED_BY: provisioner },
            "finalizers": [PV_FINALIZER],
        },
        "spec": pv_spec,
    });
    serde_json::from_value(pv).map_err(|e| invalid(pvc, "persistentVolume", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(yaml: serde_json::Value) -> StorageClass {
        serde_json::from_value(yaml).unwrap()
    }

    #[test]
    fn allowed_topologies_multiply_out_each_term() {
        let c = class(serde_json::json!({
            "metadata": {"name": "c"}, "provisioner": "p",
            "allowedTopologies": [{"matchLabelExpressions": [
                {"key": "zone", "values": ["a", "b"]},
                {"key": "rack", "values": ["1"]},
            ]}],
        }));
        let req = allowed_topologies(&c).unwrap();
        assert_eq!(req.requisite.len(), 2);
        assert!(req.requisite.iter().all(|t| t.segments["rack"] == "1"));
    }

    #[test]
    fn no_allowed_topologies_means_no_requirement() {
        let c = class(serde_json::json!({"metadata": {"name": "c"}, "provisioner": "p"}));
        assert!(allowed_topologies(&c).is_none());
    }

    #[test]
    fn only_failures_with_an_unknown_outcome_may_leave_a_volume_behind() {
        use tonic::Code::*;
        for (code, may) in [
            (DeadlineExceeded, true),
            (Unavailable, true),
            (Aborted, true),
            (Internal, true),
            (InvalidArgument, false),
            (ResourceExhausted, false),
            (OutOfRange, false),
            (AlreadyExists, false),
        ] {
            assert_eq!(may_have_created(code), may, "{code:?}");
        }
    }

    #[test]
    fn driver_rejections_are_final_and_outages_transient() {
        let csi = |code| ProvisionError::Csi {
            class: "c".into(),
            code,
            message: String::new(),
        };
        assert_eq!(csi(tonic::Code::InvalidArgument).outcome(), "final_error");
        assert_eq!(csi(tonic::Code::Unavailable).outcome(), "transient_error");
        assert_eq!(
            csi(tonic::Code::ResourceExhausted).outcome(),
            "transient_error"
        );
    }
}
