//! Reclaim of the volumes we provisioned, by their reclaim policy:
//! Delete → DeleteVolume, then the PV goes and our finalizer with it (never
//! while a VolumeAttachment still references the PV); Retain → the PV stays
//! Released and the volume is kept. A PV deleted before its claim is held by
//! our finalizer until it is no longer bound, then handled the same way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::Context;
use super::events::{VOLUME_DELETED, VOLUME_FAILED_DELETE};
use super::provision::{ANN_PROVISIONED_BY, PV_FINALIZER};

/// How often a PV waiting for its VolumeAttachments to go is looked at again.
const ATTACHED_RECHECK: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ReclaimError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("DeleteVolume {volume:?}: rpc error: code = {code:?} desc = {message}")]
    Csi {
        volume: String,
        code: tonic::Code,
        message: String,
    },
}

fn ours(pv: &PersistentVolume, ctx: &Context) -> bool {
    pv.annotations().get(ANN_PROVISIONED_BY).map(String::as_str) == Some(ctx.provisioner.as_str())
        && ctx.scope.owns_volume(pv, &ctx.topology_key)
}

fn has_finalizer(pv: &PersistentVolume) -> bool {
    pv.finalizers().iter().any(|f| f == PV_FINALIZER)
}

pub async fn reconcile(
    pv: Arc<PersistentVolume>,
    ctx: Arc<Context>,
) -> Result<Action, ReclaimError> {
    let Some(csi) = ctx.csi.clone() else {
        return Ok(Action::await_change());
    };
    if !ours(&pv, &ctx) {
        return Ok(Action::await_change());
    }
    let name = pv.name_any();
    let phase = pv
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("");
    let policy = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Delete");
    let deleting = pv.metadata.deletion_timestamp.is_some();
    // A bound PV's data is in use: nothing happens to it, even if the PV
    // object was deleted (pv-protection holds it until the claim lets go).
    let released = phase == "Released" || (deleting && phase != "Bound");
    if !released {
        return Ok(Action::await_change());
    }
    if policy != "Delete" {
        // Retain (or the deprecated Recycle, which CSI volumes do not do):
        // the volume stays; only a deleted PV loses our finalizer.
        if deleting && has_finalizer(&pv) {
            remove_finalizer(&pv, &ctx).await?;
        }
        return Ok(Action::await_change());
    }
    if !has_finalizer(&pv) && deleting {
        return Ok(Action::await_change());
    }
    if attached(&name, &ctx).await? {
        tracing::info!(volume = %name, "waiting for VolumeAttachments to go before deleting");
        return Ok(Action::requeue(ATTACHED_RECHECK));
    }
    let handle = pv
        .spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .map(|c| c.volume_handle.clone());
    if let Some(handle) = handle.filter(|h| !ctx.deleted.contains_key(h)) {
        let started = Instant::now();
        if let Err(status) = csi.delete_volume(&handle).await {
            ctx.metrics
                .observe_deletion("transient_error", started.elapsed());
            let err = ReclaimError::Csi {
                volume: handle,
                code: status.code(),
                message: status.message().to_string(),
            };
            ctx.events
                .warning(
                    &pv.object_ref(&()),
                    VOLUME_FAILED_DELETE,
                    "Delete",
                    err.to_string(),
                )
                .await;
            return Err(err);
        }
        ctx.metrics.observe_deletion("success", started.elapsed());
        remember_deleted(&ctx, &handle);
        ctx.events
            .normal(
                &pv.object_ref(&()),
                VOLUME_DELETED,
                "Delete",
                format!("Deleted volume {handle}"),
            )
            .await;
    }
    let api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    if !deleting {
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    release_pv(&api, &name, &ctx).await?;
    tracing::info!(volume = %name, "reclaimed (Delete)");
    Ok(Action::await_change())
}

pub fn error_policy(pv: Arc<PersistentVolume>, err: &ReclaimError, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff.next(&format!("pv/{}", pv.name_any()));
    tracing::warn!(volume = %pv.name_any(), error = %err, retry_in = ?delay, "reclaim failed");
    Action::requeue(delay)
}

async fn attached(pv: &str, ctx: &Context) -> Result<bool, ReclaimError> {
    let vas = Api::<VolumeAttachment>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?;
    Ok(vas
        .items
        .iter()
        .any(|va| va.spec.source.persistent_volume_name.as_deref() == Some(pv)))
}

/// How long a deleted volume's handle is remembered: far longer than a
/// watch cache lags its writes.
const REMEMBER_DELETED: Duration = Duration::from_secs(600);

fn remember_deleted(ctx: &Context, handle: &str) {
    let now = Instant::now();
    ctx.deleted
        .retain(|_, at| now.duration_since(*at) < REMEMBER_DELETED);
    ctx.deleted.insert(handle.to_string(), now);
}

/// How often a finalizer removal that conflicts is retried on a fresh read
/// before the whole reclaim is retried.
const CONFLICT_RETRIES: usize = 5;

/// Lets the PV of a deleted volume go: drops our finalizer. The PV changes
/// under us while it is deleted (the binder's status writes, pv-protection),
/// so a 409 is answered by reading the PV again and retrying the update
/// here: going back through the reconcile would repeat DeleteVolume.
async fn release_pv(
    api: &Api<PersistentVolume>,
    name: &str,
    ctx: &Context,
) -> Result<(), ReclaimError> {
    let mut attempt = 0;
    loop {
        let Some(current) = api.get_opt(name).await? else {
            return Ok(());
        };
        match remove_finalizer(&current, ctx).await {
            Err(ReclaimError::Kube(kube::Error::Api(s)))
                if s.code == 409 && attempt < CONFLICT_RETRIES =>
            {
                attempt += 1;
                tracing::debug!(volume = %name, attempt, "PV changed while releasing it; reading it again");
            }
            other => return other,
        }
    }
}

/// Drops our finalizer with an update that carries the resourceVersion, so a
/// concurrent change to the list of finalizers is not lost (it conflicts and
/// is retried instead).
async fn remove_finalizer(pv: &PersistentVolume, ctx: &Context) -> Result<(), ReclaimError> {
    let mut updated = pv.clone();
    updated.metadata.finalizers = Some(
        pv.finalizers()
            .iter()
            .filter(|f| *f != PV_FINALIZER)
            .cloned()
            .collect(),
    );
    let api: Api<PersistentVolume> = Api::all(ctx.client.clone());
    match api
        .replace(&pv.name_any(), &PostParams::default(), &updated)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
