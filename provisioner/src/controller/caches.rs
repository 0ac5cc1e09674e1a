//! Watch-fed caches of the objects the controller reads, shared by the
//! provisioner, the reclaimer and the binder.
//!
//! Reading from caches instead of GETting per claim is what lets the
//! controller spend its API budget (`--kube-api-qps`) on writes: a
//! provisioned claim costs its PV and its events, not a round of lookups.
//! Every change to any cache pokes [`Caches::changed`], which the binder
//! waits on.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::{CSINode, StorageClass};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

/// Starts a reflector for `K`; every event pokes `changed`.
pub fn reflect<K>(client: &Client, changed: &Arc<Notify>) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let api: Api<K> = Api::all(client.clone());
    let changed = changed.clone();
    let events = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .for_each(move |event| {
            if let Err(e) = event {
                tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying");
            }
            changed.notify_one();
            futures::future::ready(())
        });
    tokio::spawn(events);
    store
}

/// The objects provisioning (and the binder) read.
pub struct Caches {
    pub claims: Store<PersistentVolumeClaim>,
    pub classes: Store<StorageClass>,
    pub volumes: Store<PersistentVolume>,
    pub nodes: Store<Node>,
    pub csi_nodes: Store<CSINode>,
    pub changed: Arc<Notify>,
}

impl Caches {
    pub fn start(client: &Client) -> Caches {
        let changed = Arc::new(Notify::new());
        Caches {
            claims: reflect(client, &changed),
            classes: reflect(client, &changed),
            volumes: reflect(client, &changed),
            nodes: reflect(client, &changed),
            csi_nodes: reflect(client, &changed),
            changed,
        }
    }

    /// Waits for every cache's first list.
    pub async fn ready(&self) -> Result<(), reflector::store::WriterDropped> {
        self.claims.wait_until_ready().await?;
        self.classes.wait_until_ready().await?;
        self.volumes.wait_until_ready().await?;
        self.nodes.wait_until_ready().await?;
        self.csi_nodes.wait_until_ready().await
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
            .map(Arc::new))
    }
}
