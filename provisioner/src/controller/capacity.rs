//! The node agent's `CSIStorageCapacity` objects: one per StorageClass of
//! its driver, saying how much a new volume of that class can still get on
//! this node (`capacity`, and `maximumVolumeSize` for one volume), so the
//! scheduler (WaitForFirstConsumer) and berth's placement (Immediate) only
//! send volumes where they fit.
//!
//! - Values come from the agent's own driver, read in one step with the
//!   bytes its volumes hold, which go into the `csi.berth.dev/volume-bytes`
//!   annotation: berth's placement uses it to count volumes made or deleted
//!   after the object was written (the binding core's `placement`). A
//!   node-local pool is the same for every class.
//! - They are republished when the driver's free space changes (a volume
//!   made, deleted or grown), when classes change, and every minute (free
//!   space of a file system changes under us), at most once a second, and
//!   only objects whose values differ are written.
//! - Names are deterministic (`berth-<hash of node and class>`), so a
//!   restarted agent finds its objects instead of adding more.
//! - Each is owned by the Node object, so the garbage collector removes
//!   them with the node (external-provisioner's objects owned by its
//!   DaemonSet outlive deleted nodes: its issue #1337).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::{CSIStorageCapacity, StorageClass};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use tokio::sync::watch;

use super::Context;
use super::metrics::Outcome;
use crate::binding::snapshot::ANN_VOLUME_BYTES;
use crate::csi::volumes::CapacityReading;
use crate::quantity::Quantity;

/// Reads the driver's capacity.
pub type Reading = Arc<dyn Fn() -> CapacityReading + Send + Sync>;

pub const LABEL_DRIVER: &str = "csi.storage.k8s.io/drivername";
pub const LABEL_MANAGED_BY: &str = "csi.storage.k8s.io/managed-by";

/// Republished at least this often.
const RESYNC: Duration = Duration::from_secs(60);
/// Changes are gathered this long before publishing, and publishes are at
/// least this far apart: a burst of volumes costs one write per class.
const SETTLE: Duration = Duration::from_millis(250);
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// FNV-1a: a stable hash (std's is seeded per process).
fn fnv64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The deterministic name of a node's object for a class.
pub fn object_name(node: &str, class: &str) -> String {
    format!("berth-{:016x}", fnv64(&[node, class]))
}

/// The `managed-by` label value of a node's objects; node names longer
/// than a label value allows are hashed.
pub fn managed_by(node: &str) -> String {
    let plain = format!("berth-node-{node}");
    if plain.len() <= 63 {
        plain
    } else {
        format!("berth-node-{:016x}", fnv64(&[node]))
    }
}

/// What one class's object should say.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    class: String,
    capacity: String,
    maximum: String,
    volume_bytes: String,
}

/// The object for `wanted` on `node` (owned by the Node with `node_uid`).
fn object(
    namespace: &str,
    node: &str,
    node_uid: &str,
    driver: &str,
    topology_key: &str,
    wanted: &Wanted,
) -> Result<CSIStorageCapacity, serde_json::Error> {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "CSIStorageCapacity",
        "metadata": {
            "name": object_name(node, &wanted.class),
            "namespace": namespace,
            "labels": { LABEL_DRIVER: driver, LABEL_MANAGED_BY: managed_by(node) },
            "annotations": { ANN_VOLUME_BYTES: wanted.volume_bytes },
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid,
            }],
        },
        "storageClassName": wanted.class,
        "nodeTopology": { "matchLabels": { topology_key: node } },
        "capacity": wanted.capacity,
        "maximumVolumeSize": wanted.maximum,
    }))
}

/// Whether `have` already says what `want` says.
fn same(have: &CSIStorageCapacity, want: &CSIStorageCapacity) -> bool {
    have.storage_class_name == want.storage_class_name
        && have.capacity == want.capacity
        && have.maximum_volume_size == want.maximum_volume_size
        && have.node_topology == want.node_topology
        && have.metadata.owner_references == want.metadata.owner_references
        && have.metadata.labels == want.metadata.labels
        && have.metadata.annotations == want.metadata.annotations
}

/// Publishes this node's objects until the future is dropped; `changes`
/// fires when the driver's free space changes.
pub async fn run(
    ctx: Arc<Context>,
    namespace: String,
    mut changes: watch::Receiver<()>,
    reading: Reading,
) {
    let Some(node) = ctx.scope.node().map(str::to_string) else {
        return;
    };
    let api: Api<CSIStorageCapacity> = Api::namespaced(ctx.client.clone(), &namespace);
    let (own, writer) = reflector::store();
    let selector = format!("{LABEL_MANAGED_BY}={}", managed_by(&node));
    let feed = watcher(api.clone(), watcher::Config::default().labels(&selector))
        .default_backoff()
        .reflect(writer)
        .for_each(|_| futures::future::ready(()));
    tokio::spawn(feed);
    if ctx.caches.ready().await.is_err() || own.wait_until_ready().await.is_err() {
        tracing::error!("capacity publisher: caches never became ready");
        return;
    }
    let mut last = Instant::now() - MIN_INTERVAL;
    loop {
        let wait = MIN_INTERVAL.saturating_sub(last.elapsed());
        tokio::time::sleep(wait).await;
        last = Instant::now();
        if let Err(e) = publish(&ctx, &api, &own, &namespace, &node, &reading).await {
            tracing::warn!(node, error = %e, "publishing storage capacity failed; retrying");
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = ctx.caches.changed.notified() => {}
            _ = tokio::time::sleep(RESYNC) => {}
        }
        tokio::time::sleep(SETTLE).await;
    }
}

#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("node {0} not found")]
    NoNode(String),
    #[error("building CSIStorageCapacity: {0}")]
    Encode(#[from] serde_json::Error),
}

/// One pass: make the node's objects say what the driver says now.
async fn publish(
    ctx: &Context,
    api: &Api<CSIStorageCapacity>,
    own: &Store<CSIStorageCapacity>,
    namespace: &str,
    node: &str,
    reading: &Reading,
) -> Result<(), PublishError> {
    let node_uid = ctx
        .caches
        .get::<Node>(&ctx.client, &ctx.caches.nodes, node)
        .await?
        .and_then(|n| n.metadata.uid.clone())
        .ok_or_else(|| PublishError::NoNode(node.to_string()))?;
    let mut classes: Vec<Arc<StorageClass>> = ctx
        .caches
        .classes
        .state()
        .into_iter()
        .filter(|c| c.provisioner == ctx.provisioner)
        .collect();
    classes.sort_by_key(|c| c.name_any());
    let now = reading();
    let bytes = |n: u64| Quantity::from_bytes(n).to_string();
    let mut want: BTreeMap<String, CSIStorageCapacity> = BTreeMap::new();
    for class in classes {
        let wanted = Wanted {
            class: class.name_any(),
            capacity: bytes(now.available),
            maximum: bytes(now.available),
            volume_bytes: now.volume_bytes.to_string(),
        };
        let obj = object(
            namespace,
            node,
            &node_uid,
            &ctx.driver,
            &ctx.topology_key,
            &wanted,
        )?;
        want.insert(obj.name_any(), obj);
    }
    for (name, obj) in &want {
        let have = own.get(&ObjectRef::new(name).within(namespace));
        let result = match have {
            Some(h) if same(&h, obj) => continue,
            Some(h) => {
                let mut next = obj.clone();
                next.metadata.resource_version = h.resource_version();
                api.replace(name, &PostParams::default(), &next)
                    .await
                    .map(|_| "updated")
            }
            None => match api.create(&PostParams::default(), obj).await {
                // Made by an earlier run the cache has not shown yet.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok("exists"),
                other => other.map(|_| "created"),
            },
        };
        record(ctx, result)?;
    }
    for stale in own.state() {
        let name = stale.name_any();
        if want.contains_key(&name) || stale.meta().deletion_timestamp.is_some() {
            continue;
        }
        let result = match api.delete(&name, &DeleteParams::default()).await {
            Err(kube::Error::Api(s)) if s.code == 404 => Ok("deleted"),
            other => other.map(|_| "deleted"),
        };
        record(ctx, result)?;
    }
    Ok(())
}

fn record(ctx: &Context, result: Result<&'static str, kube::Error>) -> Result<(), PublishError> {
    let outcome = match &result {
        Ok(o) => o,
        Err(_) => "error",
    };
    ctx.metrics
        .capacity_writes
        .get_or_create(&Outcome { outcome })
        .inc();
    result.map(|_| ()).map_err(PublishError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_valid_and_distinct() {
        let a = object_name("node-a", "berth-local");
        assert_eq!(a, object_name("node-a", "berth-local"), "deterministic");
        assert_ne!(a, object_name("node-a", "berth-immediate"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(object_name("ab", "c"), object_name("a", "bc"));
        assert!(crate::model::validate_dns_subdomain(&a).is_ok(), "{a}");
    }

    #[test]
    fn managed_by_is_a_valid_label_value_for_any_node_name() {
        assert_eq!(managed_by("node-a"), "berth-node-node-a");
        let long = format!("{}.example.com", "n".repeat(60));
        let v = managed_by(&long);
        assert!(v.len() <= 63, "{v}");
        assert_ne!(v, managed_by(&format!("{long}x")));
    }

    #[test]
    fn objects_are_owned_by_their_node_and_select_it() {
        let w = Wanted {
            class: "berth-local".into(),
            capacity: "9Gi".into(),
            maximum: "9Gi".into(),
            volume_bytes: "1073741824".into(),
        };
        let o = object(
            "berth-system",
            "node-a",
            "uid-1",
            "csi.berth.dev",
            "topology.csi.berth.dev/node",
            &w,
        )
        .expect("object");
        let owner = &o.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Node", "node-a", "uid-1")
        );
        let topo = o
            .node_topology
            .as_ref()
            .and_then(|t| t.match_labels.as_ref());
        assert_eq!(
            topo.and_then(|l| l.get("topology.csi.berth.dev/node"))
                .map(String::as_str),
            Some("node-a")
        );
        assert_eq!(o.capacity.as_ref().map(|q| q.0.as_str()), Some("9Gi"));
        assert!(same(&o, &o.clone()));
        let mut other = o.clone();
        other.capacity = Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
            "8Gi".into(),
        ));
        assert!(!same(&o, &other));
    }
}
