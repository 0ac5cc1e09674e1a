//! Comparison 5, the ceiling: how fast a bare client can write what berth
//! writes per provisioned claim, on the same kind of control plane.
//!
//! Per claim berth creates one PV and one Event (ProvisioningSucceeded,
//! events.k8s.io/v1 through kube-runtime's recorder), in that order. The bare client does exactly that for `size` made-up volumes,
//! `concurrency` volumes at a time, with the same kind of kube client
//! (kube-rs, no client-side rate limit) and no CSI call, no watch, no
//! binder wait: what remains is the API server's and etcd's cost. Its
//! PVs/s is the most a provisioner could reach here; berth's end-to-end
//! PVs/s (claims created to all Bound) is reported as a fraction of it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::cluster::{BenchError, Cluster, DRIVER, NAMESPACE, NODE, object};
use crate::provisioning::CLASS;

/// Writes per volume, as berth makes them.
pub const WRITES_PER_VOLUME: usize = 2;

fn event(i: usize, reason: &str) -> Event {
    let now = k8s_openapi::jiff::Timestamp::now();
    object(json!({
        "metadata": {
            "name": format!("claim-{i:05}.{}", reason.to_lowercase()),
            "namespace": NAMESPACE,
        },
        "eventTime": now.to_string(),
        "type": "Normal",
        "reason": reason,
        "action": "Provision",
        "note": format!("volume raw-{i:05}"),
        "reportingController": DRIVER,
        "reportingInstance": "bench-ceiling",
        "regarding": {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "namespace": NAMESPACE, "name": format!("claim-{i:05}"),
        },
    }))
}

fn volume(i: usize) -> PersistentVolume {
    object(json!({
        "metadata": {
            "name": format!("raw-{i:05}"),
            "annotations": { "pv.kubernetes.io/provisioned-by": DRIVER },
            "finalizers": ["external-provisioner.volume.kubernetes.io/finalizer"],
        },
        "spec": {
            "capacity": { "storage": "1Mi" },
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": CLASS,
            "volumeMode": "Filesystem",
            "csi": {
                "driver": DRIVER,
                "volumeHandle": format!("raw-{i:05}"),
                "fsType": "ext4",
                "volumeAttributes": { "storage.kubernetes.io/csiProvisionerIdentity": "bench" },
            },
            "nodeAffinity": { "required": { "nodeSelectorTerms": [{ "matchExpressions": [{
                "key": "topology.csi.berth.dev/node", "operator": "In", "values": [NODE],
            }] }] } },
        }
    }))
}

async fn write_one(client: &Client, i: usize) -> Result<(), BenchError> {
    let pp = PostParams::default();
    let events: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let fail = |what: &str| {
        let what = format!("{what} for raw-{i:05}");
        move |source| BenchError::Kube { what, source }
    };
    pvs.create(&pp, &volume(i))
        .await
        .map_err(fail("creating the PV"))?;
    events
        .create(&pp, &event(i, "ProvisioningSucceeded"))
        .await
        .map_err(fail("creating the Event"))?;
    Ok(())
}

/// Seconds the bare client took to write `size` volumes' objects.
pub async fn run(size: usize, concurrency: usize, timeout: Duration) -> Result<f64, BenchError> {
    let cluster = Cluster::start(true).await?;
    let client = cluster.client.clone();
    let done = AtomicUsize::new(0);
    let t0 = Instant::now();
    let work = futures::stream::iter((0..size).map(Ok::<_, BenchError>)).try_for_each_concurrent(
        concurrency.max(1),
        |i| {
            let (client, done) = (&client, &done);
            async move {
                write_one(client, i).await?;
                done.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        },
    );
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| BenchError::Timeout {
            what: "the bare client's writes".into(),
            after: timeout,
            done: done.load(Ordering::Relaxed),
            want: size,
            logs: cluster.logs(),
        })??;
    Ok(t0.elapsed().as_secs_f64())
}
