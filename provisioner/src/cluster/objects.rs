//! The typed objects of a live cluster that the planner reads, in creation
//! order: as the manifest converter's typed input ([`LiveObjects::snapshot`],
//! what the binder plans from every round, with no JSON in between) or as
//! manifest [`Document`]s (`dry-run --from-cluster`, whose manifests are
//! applied on top).
//!
//! Both go through the manifest converter, so one place knows how a
//! Kubernetes object becomes a snapshot value.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    LimitRange, Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod, ResourceQuota,
};
use k8s_openapi::api::storage::v1::{CSIDriver, CSINode, CSIStorageCapacity, StorageClass};
use serde::Serialize;

use crate::binding::Snapshot;
use crate::manifest::{Document, InputError, Typed, Versioned, to_snapshot_typed};

/// Everything the planner looks at, as the API server returned it.
#[derive(Debug, Clone, Default)]
pub struct LiveObjects {
    pub namespaces: Vec<Arc<Namespace>>,
    pub classes: Vec<Arc<StorageClass>>,
    pub nodes: Vec<Arc<Node>>,
    pub csi_nodes: Vec<Arc<CSINode>>,
    pub csi_drivers: Vec<Arc<CSIDriver>>,
    pub capacities: Vec<Arc<CSIStorageCapacity>>,
    pub volumes: Vec<Arc<PersistentVolume>>,
    pub claims: Vec<Arc<PersistentVolumeClaim>>,
    pub pods: Vec<Arc<Pod>>,
    /// Left empty by the binder: it binds the claims that exist, and the
    /// StatefulSet controller creates the rest. `dry-run --from-cluster`
    /// reads them to predict the claims still to come.
    pub stateful_sets: Vec<Arc<StatefulSet>>,
    pub limit_ranges: Vec<Arc<LimitRange>>,
    pub quotas: Vec<Arc<ResourceQuota>>,
    /// VolumeSnapshots and VolumeSnapshotContents (CRDs, so untyped).
    pub snapshots: Vec<Arc<kube::api::DynamicObject>>,
}

/// Pods matter to the planner only through their volumes (consumers of
/// claims, inline CSI volumes for node limits); the rest are skipped so a
/// busy cluster's pods do not dominate the snapshot.
pub fn pod_uses_volumes(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        s.volumes.iter().flatten().any(|v| {
            v.persistent_volume_claim.is_some() || v.ephemeral.is_some() || v.csi.is_some()
        })
    })
}

/// A pod that still holds (or waits for) a node: what berth's scheduling
/// counts on each node, volumes or not.
pub fn pod_is_unfinished(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Sort key: creation time, then kind rank, namespace and name, so a
/// cluster read twice gives the same documents in the same order.
type Order = (i64, u8, String, String);

fn order(rank: u8, meta: &kube::api::ObjectMeta) -> Order {
    let created = meta
        .creation_timestamp
        .as_ref()
        .map_or(i64::MIN, |t| t.0.as_second());
    (
        created,
        rank,
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// One live object, borrowed from its cache until it is converted.
pub enum LiveObject<'a> {
    Namespace(&'a Namespace),
    Class(&'a StorageClass),
    Node(&'a Node),
    CsiNode(&'a CSINode),
    CsiDriver(&'a CSIDriver),
    Capacity(&'a CSIStorageCapacity),
    LimitRange(&'a LimitRange),
    Quota(&'a ResourceQuota),
    Volume(&'a PersistentVolume),
    StatefulSet(&'a StatefulSet),
    Claim(&'a PersistentVolumeClaim),
    Pod(&'a Pod),
    /// Already decoded (VolumeSnapshots and their contents).
    Decoded(Typed),
}

impl LiveObject<'_> {
    /// The converter's input: a copy of the object (the cache keeps its own).
    pub fn to_typed(&self) -> Typed {
        match self {
            LiveObject::Namespace(o) => Typed::Namespace((*o).clone()),
            LiveObject::Class(o) => Typed::StorageClass((*o).clone()),
            LiveObject::Node(o) => Typed::Node((*o).clone()),
            LiveObject::CsiNode(o) => Typed::CsiNode((*o).clone()),
            LiveObject::CsiDriver(o) => Typed::CsiDriver((*o).clone()),
            LiveObject::Capacity(o) => Typed::CsiStorageCapacity((*o).clone()),
            LiveObject::LimitRange(o) => Typed::LimitRange((*o).clone()),
            LiveObject::Quota(o) => Typed::ResourceQuota((*o).clone()),
            LiveObject::Volume(o) => Typed::PersistentVolume((*o).clone()),
            LiveObject::StatefulSet(o) => Typed::StatefulSet((*o).clone()),
            LiveObject::Claim(o) => Typed::PersistentVolumeClaim((*o).clone()),
            LiveObject::Pod(o) => Typed::Pod((*o).clone()),
            LiveObject::Decoded(t) => t.clone(),
        }
    }

    fn metadata(&self) -> &kube::api::ObjectMeta {
        match self {
            LiveObject::Namespace(o) => &o.metadata,
            LiveObject::Class(o) => &o.metadata,
            LiveObject::Node(o) => &o.metadata,
            LiveObject::CsiNode(o) => &o.metadata,
            LiveObject::CsiDriver(o) => &o.metadata,
            LiveObject::Capacity(o) => &o.metadata,
            LiveObject::LimitRange(o) => &o.metadata,
            LiveObject::Quota(o) => &o.metadata,
            LiveObject::Volume(o) => &o.metadata,
            LiveObject::StatefulSet(o) => &o.metadata,
            LiveObject::Claim(o) => &o.metadata,
            LiveObject::Pod(o) => &o.metadata,
            LiveObject::Decoded(t) => t.metadata(),
        }
    }
}

impl Versioned for LiveObject<'_> {
    fn version(&self) -> Option<(&str, &str)> {
        let meta = self.metadata();
        Some((meta.uid.as_deref()?, meta.resource_version.as_deref()?))
    }

    fn to_typed(&self) -> Typed {
        LiveObject::to_typed(self)
    }
}

struct Entry {
    order: Order,
    value: serde_json::Value,
}

fn push<T>(out: &mut Vec<Entry>, rank: u8, items: &[Arc<T>]) -> Result<(), serde_json::Error>
where
    T: kube::Resource + Serialize,
{
    for item in items {
        let order = order(rank, item.meta());
        let mut value = serde_json::to_value(&**item)?;
        // Server-side bookkeeping the converter would only warn about.
        if let Some(m) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.remove("managedFields");
        }
        out.push(Entry { order, value });
    }
    Ok(())
}

impl LiveObjects {
    pub fn len(&self) -> usize {
        self.namespaces.len()
            + self.classes.len()
            + self.nodes.len()
            + self.csi_nodes.len()
            + self.csi_drivers.len()
            + self.capacities.len()
            + self.volumes.len()
            + self.claims.len()
            + self.pods.len()
            + self.stateful_sets.len()
            + self.limit_ranges.len()
            + self.quotas.len()
            + self.snapshots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The objects as documents named after `source` (the API server's
    /// address), oldest first: admission replays creation order.
    pub fn documents(&self, source: &str) -> Result<Vec<Document>, serde_json::Error> {
        let mut entries = Vec::with_capacity(self.len());
        // Ranks order objects created in the same second the way they
        // depend on each other: namespaces and classes before claims.
        push(&mut entries, 0, &self.namespaces)?;
        push(&mut entries, 1, &self.classes)?;
        push(&mut entries, 2, &self.nodes)?;
        push(&mut entries, 3, &self.csi_nodes)?;
        push(&mut entries, 3, &self.csi_drivers)?;
        push(&mut entries, 3, &self.capacities)?;
        push(&mut entries, 4, &self.limit_ranges)?;
        push(&mut entries, 5, &self.quotas)?;
        push(&mut entries, 6, &self.volumes)?;
        push(&mut entries, 6, &self.snapshots)?;
        push(&mut entries, 7, &self.stateful_sets)?;
        push(&mut entries, 8, &self.claims)?;
        push(&mut entries, 9, &self.pods)?;
        entries.sort_by(|a, b| a.order.cmp(&b.order));
        Ok(entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| Document {
                source: source.to_string(),
                index: i + 1,
                item: None,
                value: e.value,
            })
            .collect())
    }

    /// The objects in the order of [`LiveObjects::documents`], borrowed;
    /// [`LiveObject::to_typed`] copies one when the converter takes it.
    pub fn typed<'a>(&'a self) -> Result<Vec<LiveObject<'a>>, serde_json::Error> {
        let mut out: Vec<(Order, LiveObject<'a>)> = Vec::with_capacity(self.len());
        let mut add = |rank: u8, meta: &kube::api::ObjectMeta, object: LiveObject<'a>| {
            out.push((order(rank, meta), object));
        };
        for o in &self.namespaces {
            add(0, &o.metadata, LiveObject::Namespace(o));
        }
        for o in &self.classes {
            add(1, &o.metadata, LiveObject::Class(o));
        }
        for o in &self.nodes {
            add(2, &o.metadata, LiveObject::Node(o));
        }
        for o in &self.csi_nodes {
            add(3, &o.metadata, LiveObject::CsiNode(o));
        }
        for o in &self.csi_drivers {
            add(3, &o.metadata, LiveObject::CsiDriver(o));
        }
        for o in &self.capacities {
            add(3, &o.metadata, LiveObject::Capacity(o));
        }
        for o in &self.limit_ranges {
            add(4, &o.metadata, LiveObject::LimitRange(o));
        }
        for o in &self.quotas {
            add(5, &o.metadata, LiveObject::Quota(o));
        }
        for o in &self.volumes {
            add(6, &o.metadata, LiveObject::Volume(o));
        }
        for o in &self.snapshots {
            // CRDs: decoded through JSON (a handful per restore).
            let value = serde_json::to_value(&**o)?;
            let object = match o.types.as_ref().map(|t| t.kind.as_str()) {
                Some("VolumeSnapshotContent") => LiveObject::Decoded(Typed::VolumeSnapshotContent(
                    serde_json::from_value(value)?,
                )),
                _ => LiveObject::Decoded(Typed::VolumeSnapshot(serde_json::from_value(value)?)),
            };
            add(6, &o.metadata, object);
        }
        for o in &self.stateful_sets {
            add(7, &o.metadata, LiveObject::StatefulSet(o));
        }
        for o in &self.claims {
            add(8, &o.metadata, LiveObject::Claim(o));
        }
        for o in &self.pods {
            add(9, &o.metadata, LiveObject::Pod(o));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out.into_iter().map(|(_, o)| o).collect())
    }

    /// The snapshot the planner takes, converted from the typed objects
    /// (no JSON). Objects the API server accepted can still fail here (e.g.
    /// a quantity berth cannot represent); the error names the object and
    /// the field as for manifests.
    pub fn snapshot(&self, source: &str) -> Result<Snapshot, LiveError> {
        let objects = self.typed().map_err(LiveError::Encode)?;
        Ok(to_snapshot_typed(
            source,
            objects.iter().map(LiveObject::to_typed),
        )?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("encoding a cluster object: {0}")]
    Encode(serde_json::Error),
    #[error(transparent)]
    Input(#[from] InputError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding;
    use crate::model::ClaimKey;

    fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Arc<T> {
        Arc::new(serde_json::from_value(v).expect("valid test object"))
    }

    fn objects() -> LiveObjects {
        LiveObjects {
            classes: vec![obj(serde_json::json!({
                "metadata": {"name": "static", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "provisioner": "kubernetes.io/no-provisioner",
            }))],
            volumes: vec![
                obj(serde_json::json!({
                    "metadata": {"name": "pv-big", "creationTimestamp": "2026-01-01T00:00:01Z",
                                 "managedFields": [{"manager": "kubectl"}]},
                    "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
                             "storageClassName": "static", "hostPath": {"path": "/tmp/a"}},
                    "status": {"phase": "Available"},
                })),
                obj(serde_json::json!({
                    "metadata": {"name": "pv-small", "creationTimestamp": "2026-01-01T00:00:01Z"},
                    "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                             "storageClassName": "static", "hostPath": {"path": "/tmp/b"}},
                })),
            ],
            claims: vec![obj(serde_json::json!({
                "metadata": {"name": "data", "namespace": "app", "uid": "u-1",
                             "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"storageClassName": "static", "accessModes": ["ReadWriteOnce"],
                         "resources": {"requests": {"storage": "1Gi"}}},
            }))],
            ..LiveObjects::default()
        }
    }

    #[test]
    fn documents_come_oldest_first_with_classes_before_claims_of_the_same_second() {
        let docs = objects()
            .documents("https://127.0.0.1:6443")
            .expect("encode");
        let names: Vec<&str> = docs
            .iter()
            .map(|d| d.value["metadata"]["name"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(names, ["static", "data", "pv-big", "pv-small"]);
        assert_eq!(docs[0].value["kind"], "StorageClass");
        assert_eq!(docs[3].index, 4);
        assert!(
            docs[2].value["metadata"].get("managedFields").is_none(),
            "server bookkeeping is dropped"
        );
    }

    #[test]
    fn a_live_cluster_plans_like_its_manifests() {
        let snap = objects().snapshot("cluster").expect("snapshot");
        assert!(snap.warnings.is_empty(), "{:?}", snap.warnings);
        let plan = binding::plan(&snap);
        assert_eq!(plan.bindings.len(), 1);
        assert_eq!(plan.bindings[0].claim, ClaimKey::new("app", "data"));
        assert_eq!(plan.bindings[0].volume, "pv-small");
    }

    #[test]
    fn the_typed_snapshot_is_the_snapshot_of_the_documents() {
        let mut live = objects();
        live.namespaces.push(obj(serde_json::json!({
            "metadata": {"name": "app", "creationTimestamp": "2025-12-31T00:00:00Z"},
        })));
        live.nodes.push(obj(serde_json::json!({
            "metadata": {"name": "n1", "labels": {"topology.csi.berth.dev/node": "n1"},
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"allocatable": {"pods": "110"}},
        })));
        live.csi_nodes.push(obj(serde_json::json!({
            "metadata": {"name": "n1"},
            "spec": {"drivers": [{"name": "csi.berth.dev", "nodeID": "n1",
                                  "topologyKeys": ["topology.csi.berth.dev/node"],
                                  "allocatable": {"count": 4}}]},
        })));
        live.capacities.push(obj(serde_json::json!({
            "metadata": {"name": "cap-1", "namespace": "berth-system"},
            "storageClassName": "static", "capacity": "5Gi",
            "nodeTopology": {"matchLabels": {"topology.csi.berth.dev/node": "n1"}},
        })));
        live.pods.push(obj(serde_json::json!({
            "metadata": {"name": "db", "namespace": "app", "creationTimestamp": "2026-01-01T00:00:02Z"},
            "spec": {"containers": [{"name": "c"}], "nodeName": "n1",
                     "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]},
        })));
        let typed = live.snapshot("cluster").expect("typed");
        let documents = crate::manifest::to_snapshot(live.documents("cluster").expect("encode"))
            .expect("documents");
        assert_eq!(format!("{typed:?}"), format!("{documents:?}"));
        assert_eq!(typed.volumes.len(), 2);
    }

    #[test]
    fn pods_without_volumes_are_not_inputs() {
        let plain: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "c"}], "volumes": [{"name": "tmp", "emptyDir": {}}]},
        }))
        .expect("pod");
        let with_claim: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db"},
            "spec": {"containers": [{"name": "c"}],
                     "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]},
        }))
        .expect("pod");
        assert!(!pod_uses_volumes(&plain));
        assert!(pod_uses_volumes(&with_claim));
        let mut done = plain.clone();
        done.status = Some(k8s_openapi::api::core::v1::PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        });
        assert!(pod_is_unfinished(&plain));
        assert!(!pod_is_unfinished(&done));
    }
}
