//! VolumeSnapshots and VolumeSnapshotContents from a live cluster, for
//! restores. They are CRDs (`snapshot.storage.k8s.io/v1`) that a cluster
//! may not have installed: a missing kind reads as no objects, never as an
//! error.

use std::sync::Arc;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::{Client, ResourceExt};

use crate::manifest::convert::SNAPSHOT_GROUP;

fn resource(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(SNAPSHOT_GROUP, "v1", kind))
}

/// 404 on a kind's path: the CRD is not installed.
fn absent(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Fetches objects with their `apiVersion` and `kind` set, as documents
/// need them.
fn typed(mut o: DynamicObject, ar: &ApiResource) -> Arc<DynamicObject> {
    o.types = Some(kube::api::TypeMeta {
        api_version: ar.api_version.clone(),
        kind: ar.kind.clone(),
    });
    o.managed_fields_mut().clear();
    Arc::new(o)
}

/// The VolumeSnapshot `namespace/name` and the content it is bound to,
/// as far as they exist.
pub async fn fetch(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Vec<Arc<DynamicObject>>, kube::Error> {
    let snap_ar = resource("VolumeSnapshot");
    let snaps: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &snap_ar);
    let snapshot = match snaps.get_opt(name).await {
        Ok(Some(s)) => s,
        Ok(None) => return Ok(Vec::new()),
        Err(e) if absent(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let content_name = snapshot
        .data
        .pointer("/status/boundVolumeSnapshotContentName")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let mut out = vec![typed(snapshot, &snap_ar)];
    if let Some(content_name) = content_name {
        let content_ar = resource("VolumeSnapshotContent");
        let contents: Api<DynamicObject> = Api::all_with(client.clone(), &content_ar);
        match contents.get_opt(&content_name).await {
            Ok(Some(c)) => out.push(typed(c, &content_ar)),
            Ok(None) => {}
            Err(e) if absent(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Every VolumeSnapshot and VolumeSnapshotContent (none without the CRDs).
pub async fn list(client: &Client) -> Result<Vec<Arc<DynamicObject>>, kube::Error> {
    let mut out = Vec::new();
    for kind in ["VolumeSnapshot", "VolumeSnapshotContent"] {
        let ar = resource(kind);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        match api.list(&ListParams::default()).await {
            Ok(l) => out.extend(l.items.into_iter().map(|o| typed(o, &ar))),
            Err(e) if absent(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}
