//! The planner's rounds in a cluster: `berth controller --bind` binds with
//! the binding core where kube-controller-manager runs without its PV
//! binder, and the node-local controller writes berth's placement of
//! Immediate claims (the node the planner chose, as `selected-node`).
//!
//! Reflectors keep the objects the planner reads; every change (coalesced
//! over a short window) starts a round: snapshot → `binding::plan` →
//! [`effects`] → [`apply`]. Rounds are sequential, so one plan's writes are
//! all done (or failed) before the next plan is made; our own writes are
//! laid over the stores until their watch events arrive ([`overlay`]). The
//! same converter and planner run behind `berth dry-run`, so the cluster
//! binds exactly what dry-run predicts for the same objects.

pub mod apply;
pub mod effects;
pub mod overlay;

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::{CSIDriver, CSINode, CSIStorageCapacity, StorageClass};
use kube::ResourceExt;
use kube::runtime::reflector::Store;

use crate::binding::{self, Options, Snapshot};
use crate::cluster::LiveObjects;
use crate::cluster::objects::pod_uses_volumes;
use crate::manifest::{Reconverter, Reuse};
use crate::model::ClaimKey;
use apply::{Applier, Objects, Planned};
use effects::effects;

use super::Context;
use super::caches::reflect;

/// How long a burst of changes is gathered before planning: long enough to
/// take a `kubectl apply` of many objects in one round, short enough not to
/// be felt.
const COALESCE: Duration = Duration::from_millis(50);
/// A round also runs this often without changes (retries after conflicts
/// are sooner, see [`RETRY`]).
const RESYNC: Duration = Duration::from_secs(30);
const RETRY: Duration = Duration::from_millis(250);

/// Source name of live objects in error messages.
const SOURCE: &str = "cluster";

/// What the rounds carry out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    /// The PV binder's whole job (`--bind`).
    pub bind: bool,
    /// berth's placement of Immediate claims of node-local provisioners.
    pub place: bool,
}

struct Stores {
    namespaces: Store<Namespace>,
    classes: Store<StorageClass>,
    nodes: Store<Node>,
    csi_nodes: Store<CSINode>,
    csi_drivers: Option<Store<CSIDriver>>,
    capacities: Option<Store<CSIStorageCapacity>>,
    volumes: Store<PersistentVolume>,
    claims: Store<PersistentVolumeClaim>,
    /// Consumers matter to binding, not to placement: only kept with `--bind`.
    pods: Option<Store<Pod>>,
}

/// Runs planner rounds until the future is dropped (shutdown, lost lease).
pub async fn run(ctx: Arc<Context>, workers: usize, mode: Mode) {
    let client = &ctx.client;
    let caches = &ctx.caches;
    let changed = caches.changed.clone();
    let stores = Stores {
        namespaces: reflect(client, &changed),
        classes: caches.classes.clone(),
        nodes: caches.nodes.clone(),
        csi_nodes: caches.csi_nodes.clone(),
        csi_drivers: caches.csi_drivers.clone(),
        capacities: caches.capacities.clone(),
        volumes: caches.volumes.clone(),
        claims: caches.claims.clone(),
        pods: mode.bind.then(|| reflect(client, &changed)),
    };
    // Planning from a half-listed cluster could bind a claim to a worse
    // volume than one not yet listed: wait for every first list.
    let ready = async {
        caches.ready().await?;
        stores.namespaces.wait_until_ready().await?;
        match &stores.pods {
            Some(p) => p.wait_until_ready().await,
            None => Ok(()),
        }
    };
    if let Err(e) = ready.await {
        tracing::error!(error = %e, "binder stores never became ready");
        return;
    }
    tracing::info!(?mode, "planner rounds ready");
    let applier = Applier::new(
        client.clone(),
        ctx.events.clone(),
        mode,
        ctx.provisioner.clone(),
    );
    let mut reconverter = Reconverter::default();
    let mut wait = Duration::ZERO;
    loop {
        tokio::select! {
            _ = changed.notified() => {}
            _ = tokio::time::sleep(if wait.is_zero() { RESYNC } else { wait }) => {}
        }
        tokio::time::sleep(COALESCE).await;
        let retry = round(&stores, &applier, &mut reconverter, workers).await;
        wait = if retry {
            RETRY
        } else {
            // Zero waits for the next change or the resync.
            applier
                .quiet_left()
                .map_or(Duration::ZERO, |left| left.max(COALESCE))
        };
    }
}

/// The VolumeSnapshots (and their contents) that unbound claims restore
/// from: fetched per round, since only restores waiting for a volume need
/// them and the CRDs may not be installed at all.
async fn restore_sources(
    client: &kube::Client,
    claims: &[std::sync::Arc<k8s_openapi::api::core::v1::PersistentVolumeClaim>],
) -> Vec<std::sync::Arc<kube::api::DynamicObject>> {
    let mut out = Vec::new();
    for c in claims {
        let Some(spec) = c.spec.as_ref() else {
            continue;
        };
        if spec.volume_name.as_deref().is_some_and(|v| !v.is_empty()) {
            continue;
        }
        let snapshot = spec
            .data_source
            .as_ref()
            .filter(|d| d.kind == "VolumeSnapshot")
            .map(|d| d.name.clone())
            .or_else(|| {
                spec.data_source_ref
                    .as_ref()
                    .filter(|d| d.kind == "VolumeSnapshot" && d.namespace.is_none())
                    .map(|d| d.name.clone())
            });
        let Some(name) = snapshot else {
            continue;
        };
        let ns = c.namespace().unwrap_or_default();
        match crate::cluster::snapshots::fetch(client, &ns, &name).await {
            Ok(objects) => out.extend(objects),
            Err(e) => {
                tracing::warn!(claim = %format!("{ns}/{}", c.name_any()), snapshot = %name, error = %e, "reading a restore's snapshot failed")
            }
        }
    }
    out.sort_by(|a, b| (a.namespace(), a.name_any()).cmp(&(b.namespace(), b.name_any())));
    out.dedup_by(|a, b| {
        a.types == b.types && a.namespace() == b.namespace() && a.name_any() == b.name_any()
    });
    out
}

/// One plan and its effects; true when some write must be retried.
async fn round(
    stores: &Stores,
    applier: &Applier,
    reconverter: &mut Reconverter,
    workers: usize,
) -> bool {
    let started = std::time::Instant::now();
    let volumes = applier.volumes.view(stores.volumes.state());
    let claims = applier.claims.view(stores.claims.state());
    let mut pods = stores.pods.as_ref().map(|p| p.state()).unwrap_or_default();
    pods.retain(|p| pod_uses_volumes(p));
    let live = LiveObjects {
        namespaces: stores.namespaces.state(),
        classes: stores.classes.state(),
        nodes: stores.nodes.state(),
        csi_nodes: stores.csi_nodes.state(),
        csi_drivers: stores
            .csi_drivers
            .as_ref()
            .map(|s| s.state())
            .unwrap_or_default(),
        capacities: stores
            .capacities
            .as_ref()
            .map(|s| s.state())
            .unwrap_or_default(),
        volumes: volumes.clone(),
        claims: claims.clone(),
        pods,
        ..LiveObjects::default()
    };
    let mut live = live;
    live.snapshots = restore_sources(applier.client(), &live.claims).await;
    let Some((snap, reuse)) = snapshot(&live, reconverter) else {
        return true;
    };
    let options = Options {
        near_misses: false,
        node_verdicts: false,
        schedule_pods: false,
    };
    let outcome = binding::run(&snap, &options);
    let mut todo = effects(&snap, &outcome.plan, &outcome.states);
    drop(outcome);
    reconverter.recycle(snap);
    let objects = Objects {
        volumes: volumes.into_iter().map(|v| (v.name_any(), v)).collect(),
        claims: claims
            .into_iter()
            .map(|c| {
                (
                    ClaimKey::new(c.namespace().unwrap_or_default(), c.name_any()),
                    c,
                )
            })
            .collect(),
    };
    todo.retain(|e| applier.wants(e, &objects));
    applier.forget_except(&objects.claims);
    if todo.is_empty() {
        return false;
    }
    // From here on only the objects the effects write are held, each until
    // its last write has taken it.
    drop(live);
    let in_flight = Planned::new(objects, &todo);
    let planned = started.elapsed();
    let results: Vec<_> = stream::iter(&todo)
        .map(|e| applier.apply(e, &in_flight))
        .buffer_unordered(workers.max(1))
        .collect()
        .await;
    let mut retry = false;
    let mut failed = 0;
    for r in results {
        if let Err(e) = r {
            failed += 1;
            retry |= e.is_conflict();
            if e.is_conflict() {
                tracing::debug!(error = %e, "binder write raced another change; retrying");
            } else {
                tracing::warn!(error = %e, "binder write failed");
                retry = true;
            }
        }
    }
    tracing::info!(
        effects = todo.len(),
        failed,
        converted = reuse.converted,
        reused = reuse.reused,
        plan_ms = planned.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "planner round"
    );
    retry
}

/// The snapshot of the live objects, converted from the caches' typed
/// objects (no JSON is made per round), reusing the objects of the last
/// round that have not changed since. An object the API server accepted
/// but berth cannot read (say, a quantity beyond its range) is left out
/// with an error naming it, rather than stopping all binding.
fn snapshot(live: &LiveObjects, reconverter: &mut Reconverter) -> Option<(Snapshot, Reuse)> {
    let objects = match live.typed() {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "decoding cluster objects");
            return None;
        }
    };
    let (snap, reuse, refused) = reconverter.snapshot(SOURCE, &objects);
    for e in refused {
        tracing::error!(error = %e, "skipping an object berth cannot read");
    }
    Some((snap, reuse))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Arc<T> {
        Arc::new(serde_json::from_value(v).expect("valid test object"))
    }

    #[test]
    fn an_object_berth_cannot_read_is_left_out_and_the_rest_planned() {
        let pv = |name: &str, size: &str| {
            obj(serde_json::json!({
                "metadata": {"name": name},
                "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                         "storageClassName": "static", "hostPath": {"path": "/tmp/a"}},
            }))
        };
        let live = LiveObjects {
            volumes: vec![
                pv("pv-fine", "1Gi"),
                pv("pv-huge", "100000000000000000000000Ei"),
                pv("pv-other", "2Gi"),
            ],
            ..LiveObjects::default()
        };
        let mut reconverter = Reconverter::default();
        let (snap, _) =
            snapshot(&live, &mut reconverter).expect("a snapshot without the unreadable volume");
        let names: Vec<&str> = snap.volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["pv-fine", "pv-other"]);
    }
}
