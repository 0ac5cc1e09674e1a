//! Watch-fed caches of the objects berth reads, one per kind per process,
//! shared by the provisioner, the reclaimer, the binder and placement.
//!
//! Reading from caches instead of GETting per claim is what lets a process
//! spend its API budget (`--kube-api-qps`) on writes: a provisioned claim
//! costs its PV and its events, not a round of lookups. Every change to any
//! cache pokes [`Caches::changed`], which the planner rounds wait on.
//!
//! A node agent ([`Scope::Node`]) keeps only its share: claims assigned to
//! its node, volumes on its node, its own Node and CSINode. Claims and
//! volumes cannot be selected by annotation or node affinity on the server,
//! so they are filtered as they arrive, before anything is stored or
//! reconciled; an object that stops being ours is dropped from the store as
//! if deleted. Objects are stored without the fields berth never reads
//! (`managedFields`, kubectl's last-applied annotation).

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::{CSIDriver, CSINode, CSIStorageCapacity, StorageClass};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use super::ownership::Scope;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A stream of the objects a watch added or changed, already reflected into
/// its store; it must be polled (by a Controller, or [`Feeds::drive`]) for
/// the store to stay current.
pub type Feed<K> = BoxStream<'static, Result<K, watcher::Error>>;

/// What a kind needs to be watched into a store.
pub trait Cached:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
{
}

impl<K> Cached for K where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// Drops what berth never reads before an object is stored.
pub(crate) fn trim<K: Resource>(o: &mut K) {
    o.managed_fields_mut().clear();
    o.annotations_mut().remove(LAST_APPLIED);
}

/// A watch of `K` reflected into a store, keeping only objects for which
/// `keep` holds; returns the store and the feed that drives it.
fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    changed: &Arc<Notify>,
    keep: impl Fn(&K) -> bool + Send + Sync + 'static,
) -> (Store<K>, Feed<K>)
where
    K: Cached,
{
    let (store, writer) = reflector::store();
    let changed = changed.clone();
    let feed = watcher(api, config)
        .default_backoff()
        .try_filter_map(move |event| {
            // An object that is not (or no longer) ours leaves the store as
            // if deleted; it is never listed into it.
            let event = match event {
                watcher::Event::Apply(o) if !keep(&o) => Some(watcher::Event::Delete(o)),
                watcher::Event::InitApply(o) if !keep(&o) => None,
                other => Some(other),
            };
            futures::future::ready(Ok(event))
        })
        .modify(trim)
        .reflect(writer)
        .inspect(move |event| {
            if let Err(e) = event {
                tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
            }
            changed.notify_one();
        })
        .applied_objects()
        .boxed();
    (store, feed)
}

/// Starts an unfiltered reflector for `K` and drives it in the background.
pub fn reflect<K>(client: &Client, changed: &Arc<Notify>) -> Store<K>
where
    K: Cached,
{
    let (store, feed) = watch(
        Api::all(client.clone()),
        watcher::Config::default(),
        changed,
        |_| true,
    );
    tokio::spawn(feed.for_each(|_| futures::future::ready(())));
    store
}

/// The objects provisioning, reclaim, placement and the binder read.
pub struct Caches {
    pub claims: Store<PersistentVolumeClaim>,
    pub classes: Store<StorageClass>,
    pub volumes: Store<PersistentVolume>,
    pub nodes: Store<Node>,
    pub csi_nodes: Store<CSINode>,
    /// CSIDrivers and CSIStorageCapacity, for placement; only kept by the
    /// cluster-wide controller.
    pub csi_drivers: Option<Store<CSIDriver>>,
    pub capacities: Option<Store<CSIStorageCapacity>>,
    pub changed: Arc<Notify>,
}

/// The claim and volume watches, for the controllers that reconcile them.
pub struct Feeds {
    pub claims: Feed<PersistentVolumeClaim>,
    pub volumes: Feed<PersistentVolume>,
}

impl Feeds {
    /// Keeps the claim and volume caches current when no controller
    /// consumes the feeds.
    pub fn drive(self) {
        tokio::spawn(self.claims.for_each(|_| futures::future::ready(())));
        tokio::spawn(self.volumes.for_each(|_| futures::future::ready(())));
    }
}

impl Caches {
    /// Starts every watch of `scope`'s share. `placement` adds the
    /// CSIDrivers and capacity objects the cluster-wide controller places
    /// volumes with.
    pub fn start(
        client: &Client,
        scope: &Scope,
        topology_key: &str,
        placement: bool,
    ) -> (Caches, Feeds) {
        let changed = Arc::new(Notify::new());
        let all = watcher::Config::default();
        let one = |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
        let claim_scope = scope.clone();
        let (claims, claim_feed) = watch(
            Api::all(client.clone()),
            all.clone(),
            &changed,
            move |c: &PersistentVolumeClaim| claim_scope.owns_claim(c),
        );
        let volume_scope = scope.clone();
        let key = topology_key.to_string();
        let (volumes, volume_feed) = watch(
            Api::all(client.clone()),
            all.clone(),
            &changed,
            move |v: &PersistentVolume| volume_scope.owns_volume(v, &key),
        );
        let (nodes, csi_nodes) = match scope.node() {
            None => (reflect(client, &changed), reflect(client, &changed)),
            Some(node) => {
                let nodes = watch(Api::all(client.clone()), one(node), &changed, |_| true);
                let csi_nodes = watch(Api::all(client.clone()), one(node), &changed, |_| true);
                tokio::spawn(nodes.1.for_each(|_| futures::future::ready(())));
                tokio::spawn(csi_nodes.1.for_each(|_| futures::future::ready(())));
                (nodes.0, csi_nodes.0)
            }
        };
        let caches = Caches {
            claims,
            classes: reflect(client, &changed),
            volumes,
            nodes,
            csi_nodes,
            csi_drivers: placement.then(|| reflect(client, &changed)),
            capacities: placement.then(|| reflect(client, &changed)),
            changed,
        };
        let feeds = Feeds {
            claims: claim_feed,
            volumes: volume_feed,
        };
        (caches, feeds)
    }

    /// Waits for every cache's first list.
    pub async fn ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.claims.wait_until_ready().await?;
        self.classes.wait_until_ready().await?;
        self.volumes.wait_until_ready().await?;
        self.nodes.wait_until_ready().await?;
        self.csi_nodes.wait_until_ready().await?;
        if let Some(s) = &self.csi_drivers {
            s.wait_until_ready().await?;
        }
        if let Some(s) = &self.capacities {
            s.wait_until_ready().await?;
        }
        Ok(())
    }

    /// A cluster-scoped object from its cache, or from the API server when
    /// the cache has not seen it yet (it may have been created a moment
    /// ago): a miss must never turn into a false "not found".
    pub async fn get<K>(
        &self,
        client: &Client,
        store: &Store<K>,
        name: &str,
    ) -> Result<Option<Arc<K>>, kube::Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    {
        if let Some(hit) = store.get(&ObjectRef::new(name)) {
            return Ok(Some(hit));
        }
        Ok(Api::<K>::all(client.clone())
            .get_opt(name)
            .await?
            .map(|mut o| {
                trim(&mut o);
                Arc::new(o)
            }))
    }
}
