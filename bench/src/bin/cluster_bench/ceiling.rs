//! Comparison 5, the ceiling: how fast a bare client can write what berth
//! writes per provisioned claim, on the same kind of control plane.
//!
//! Per claim, berth's timed window in comparison 3 holds the claim's
//! creation (the bench's) and berth's writes as the whole engine: the
//! placing patch (selected-node, provisioner annotations and the intent
//! finalizer), the PV, its `ProvisioningSucceeded` Event (events.k8s.io/v1
//! through kube-runtime's recorder), the PV's phase, the claim's
//! volumeName and its phase. The bare client makes exactly these writes,
//! in that order, for `size` claims, `concurrency` claims at a time, with
//! the same kind of kube client (kube-rs, no client-side rate limit) and no
//! CSI call, no watch, no planning: what remains is the API server's and
//! etcd's cost. Its claims/s is the most an engine making berth's writes
//! could reach here; berth's end-to-end rate (claims created to all Bound)
//! is reported as a fraction of it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::cluster::{BenchError, Cluster, DRIVER, NAMESPACE, NODE, claim, object};
use crate::provisioning::CLASS;

/// Writes per claim, as berth's timed window holds them (the claim's
/// creation included).
pub const WRITES_PER_CLAIM: usize = 7;

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

fn volume(i: usize, uid: &str) -> PersistentVolume {
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
            "claimRef": {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "namespace": NAMESPACE, "name": format!("claim-{i:05}"), "uid": uid,
            },
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
    let pw = PatchParams::default();
    let events: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NAMESPACE);
    let name = format!("claim-{i:05}");
    let pv_name = format!("raw-{i:05}");
    let fail = |what: &str| {
        let what = format!("{what} for {name}");
        move |source| BenchError::Kube { what, source }
    };
    let created = claims
        .create(&pp, &claim(i, CLASS, "1Mi"))
        .await
        .map_err(fail("creating the claim"))?;
    let finalizers = [
        created.finalizers(),
        &["csi.berth.dev/provisioning".to_string()],
    ]
    .concat();
    let placed = json!({ "metadata": {
        "resourceVersion": created.metadata.resource_version,
        "annotations": {
            "volume.kubernetes.io/selected-node": NODE,
            "volume.kubernetes.io/storage-provisioner": DRIVER,
            "volume.beta.kubernetes.io/storage-provisioner": DRIVER,
        },
        "finalizers": finalizers,
    } });
    let mut placed = claims
        .patch(&name, &pw, &Patch::Merge(&placed))
        .await
        .map_err(fail("placing the claim"))?;
    let uid = placed.metadata.uid.clone().unwrap_or_default();
    pvs.create(&pp, &volume(i, &uid))
        .await
        .map_err(fail("creating the PV"))?;
    events
        .create(&pp, &event(i, "ProvisioningSucceeded"))
        .await
        .map_err(fail("creating the Event"))?;
    pvs.patch_status(
        &pv_name,
        &pw,
        &Patch::Merge(&json!({ "status": { "phase": "Bound" } })),
    )
    .await
    .map_err(fail("the PV's phase"))?;
    placed.spec.get_or_insert_with(Default::default).volume_name = Some(pv_name);
    placed
        .annotations_mut()
        .insert("pv.kubernetes.io/bind-completed".into(), "yes".into());
    placed.metadata.finalizers = Some(
        placed
            .finalizers()
            .iter()
            .filter(|f| *f != "csi.berth.dev/provisioning")
            .cloned()
            .collect(),
    );
    claims
        .replace(&name, &pp, &placed)
        .await
        .map_err(fail("binding the claim"))?;
    let phase = json!({ "status": {
        "phase": "Bound",
        "capacity": { "storage": "1Mi" },
        "accessModes": ["ReadWriteOnce"],
    } });
    claims
        .patch_status(&name, &pw, &Patch::Merge(&phase))
        .await
        .map_err(fail("the claim's phase"))?;
    Ok(())
}

/// Seconds the bare client took to write `size` volumes' objects.
pub async fn run(size: usize, concurrency: usize, timeout: Duration) -> Result<f64, BenchError> {
    // No PV binder: the bare client makes the binder's writes itself.
    let cluster = Cluster::start(false).await?;
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
