//! Claims with a data source: what their volume is made from, decided by
//! the planner, and the protection of a clone's source while it is read.
//!
//! The provisioner does not judge a data source itself: it gathers the
//! claim, its class, its node and the source's objects (the source claim
//! and its PV, or the VolumeSnapshot and its content) into a small snapshot
//! and asks the same planner `berth dry-run` uses. So a clone refused by
//! the provisioner is refused with the words a dry-run shows.
//!
//! As the external-provisioner does, the source claim of a clone carries
//! `provisioner.storage.kubernetes.io/cloning-protection` from before
//! CreateVolume; when the source is deleted, the finalizer is removed once
//! no Pending claim of its namespace still clones it.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::{CSINode, StorageClass};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};

use super::Context;
use super::provision::ProvisionError;
use crate::binding::{self, Content, PendingReason};
use crate::cluster::LiveObjects;

pub const CLONE_FINALIZER: &str = "provisioner.storage.kubernetes.io/cloning-protection";

/// What a claim's volume is made from.
#[derive(Debug)]
pub enum Source {
    /// A clone or a restore: CreateVolume gets this content source.
    Content(Content),
    /// A populator fills the claim; the provisioner does nothing.
    Populator(String),
}

/// `(kind, name)` of the claim's data source, as upstream picks it
/// (`dataSource` first).
fn requested(pvc: &PersistentVolumeClaim) -> Option<(&str, &str)> {
    let spec = pvc.spec.as_ref()?;
    if let Some(d) = &spec.data_source {
        return Some((d.kind.as_str(), d.name.as_str()));
    }
    spec.data_source_ref
        .as_ref()
        .map(|d| (d.kind.as_str(), d.name.as_str()))
}

/// The content of the claim's volume, or why there is none yet; `None`
/// for a claim without a data source.
pub async fn resolve(
    pvc: &PersistentVolumeClaim,
    class: &StorageClass,
    node: Option<&str>,
    ctx: &Context,
) -> Result<Option<Source>, ProvisionError> {
    let Some((kind, name)) = requested(pvc) else {
        return Ok(None);
    };
    let namespace = pvc.namespace().unwrap_or_default();
    let client = &ctx.client;
    let mut live = LiveObjects {
        classes: vec![Arc::new(class.clone())],
        claims: vec![Arc::new(pvc.clone())],
        ..LiveObjects::default()
    };
    if let Some(node) = node {
        live.nodes.extend(
            Api::<Node>::all(client.clone())
                .get_opt(node)
                .await?
                .map(Arc::new),
        );
        live.csi_nodes.extend(
            Api::<CSINode>::all(client.clone())
                .get_opt(node)
                .await?
                .map(Arc::new),
        );
    }
    match kind {
        "PersistentVolumeClaim" if !name.is_empty() => {
            let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
            if let Some(source) = claims.get_opt(name).await? {
                let volume = source
                    .spec
                    .as_ref()
                    .and_then(|s| s.volume_name.clone())
                    .filter(|v| !v.is_empty());
                if let Some(volume) = volume {
                    live.volumes.extend(
                        Api::<PersistentVolume>::all(client.clone())
                            .get_opt(&volume)
                            .await?
                            .map(Arc::new),
                    );
                }
                live.claims.push(Arc::new(source));
            }
        }
        "VolumeSnapshot" if !name.is_empty() => {
            live.snapshots = crate::cluster::snapshots::fetch(client, &namespace, name).await?;
            // The snapshot's source volume says which node the restore
            // must be made on; a node's cache holds the volumes of its node.
            let source_handle = live.snapshots.iter().find_map(|o| {
                o.data
                    .pointer("/spec/source/volumeHandle")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            });
            if let Some(handle) = source_handle {
                live.volumes
                    .extend(ctx.caches.volumes.state().into_iter().filter(|p| {
                        p.spec
                            .as_ref()
                            .and_then(|s| s.csi.as_ref())
                            .is_some_and(|c| c.volume_handle == handle)
                    }));
            }
        }
        _ => {}
    }
    let snapshot = live
        .snapshot("cluster")
        .map_err(|e| ProvisionError::DataSource(e.to_string()))?;
    let plan = binding::plan(&snapshot);
    let key = (namespace.as_str(), pvc.name_any());
    if let Some(p) = plan
        .provisioning
        .into_iter()
        .find(|p| (p.claim.namespace.as_str(), p.claim.name.clone()) == key)
    {
        return Ok(p.content.map(Source::Content));
    }
    let reason = plan
        .pending
        .into_iter()
        .find(|p| (p.claim.namespace.as_str(), p.claim.name.clone()) == key)
        .map(|p| p.reason);
    match reason {
        Some(r @ PendingReason::WaitingForPopulator { .. }) => {
            Ok(Some(Source::Populator(r.to_string())))
        }
        Some(r) => Err(ProvisionError::DataSource(r.to_string())),
        None => Err(ProvisionError::DataSource(format!(
            "data source {kind} {name}: the planner made no decision for the claim"
        ))),
    }
}

/// The CSI content source for CreateVolume.
pub fn csi_source(content: &Content) -> csi_proto::VolumeContentSource {
    use csi_proto::volume_content_source::{SnapshotSource, Type, VolumeSource};
    csi_proto::VolumeContentSource {
        r#type: Some(match content {
            Content::Clone { handle, .. } => Type::Volume(VolumeSource {
                volume_id: handle.clone(),
            }),
            Content::Restore { handle, .. } => Type::Snapshot(SnapshotSource {
                snapshot_id: handle.clone(),
            }),
        }),
    }
}

fn has_finalizer(pvc: &PersistentVolumeClaim) -> bool {
    pvc.finalizers().iter().any(|f| f == CLONE_FINALIZER)
}

/// Puts the cloning protection on the source claim before its volume is
/// read, so the source cannot go while the clone is made.
pub async fn protect_source(
    client: &Client,
    namespace: &str,
    source: &str,
) -> Result<(), ProvisionError> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let Some(mut pvc) = claims.get_opt(source).await? else {
        return Ok(());
    };
    if has_finalizer(&pvc) {
        return Ok(());
    }
    pvc.finalizers_mut().push(CLONE_FINALIZER.to_string());
    // The update carries the resourceVersion: a concurrent change
    // conflicts and the provisioning is retried.
    claims.replace(source, &PostParams::default(), &pvc).await?;
    Ok(())
}

/// For a deleted claim that was a clone's source: drops the cloning
/// protection once no Pending claim of its namespace clones it. `None`
/// when the claim is not such a claim.
pub async fn release_source(
    pvc: &PersistentVolumeClaim,
    ctx: &Context,
) -> Option<Result<Action, ProvisionError>> {
    if pvc.metadata.deletion_timestamp.is_none() || !has_finalizer(pvc) {
        return None;
    }
    Some(release(pvc, ctx).await)
}

async fn release(pvc: &PersistentVolumeClaim, ctx: &Context) -> Result<Action, ProvisionError> {
    let namespace = pvc.namespace().unwrap_or_default();
    let name = pvc.name_any();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
    let cloning = claims
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|c| {
            c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending")
                && c.spec
                    .as_ref()
                    .and_then(|s| s.data_source.as_ref())
                    .is_some_and(|d| d.kind == "PersistentVolumeClaim" && d.name == name)
        })
        .map(|c| c.name_any())
        .collect::<Vec<_>>();
    if !cloning.is_empty() {
        tracing::info!(claim = %format!("{namespace}/{name}"), clones = ?cloning, "deleted claim is still being cloned; keeping its cloning protection");
        return Ok(Action::requeue(std::time::Duration::from_secs(5)));
    }
    let mut updated = pvc.clone();
    updated.finalizers_mut().retain(|f| f != CLONE_FINALIZER);
    match claims
        .replace(&name, &PostParams::default(), &updated)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    tracing::info!(claim = %format!("{namespace}/{name}"), "cloning finished; cloning protection removed");
    Ok(Action::await_change())
}
