//! `berth controller` + `berth csi` against the real control plane, with the
//! stock PV binder and kube-scheduler: Immediate and WaitForFirstConsumer
//! provisioning to Bound, reclaim by policy, invalid class parameters, and a
//! controller restart in the middle of the work.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use berth_tests::control_plane::{Berth, ControlPlane};
use k8s_openapi::api::core::v1::{Event, Namespace, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const DRIVER: &str = "csi.berth.dev";
const TOPOLOGY_KEY: &str = "topology.csi.berth.dev/node";
const NODE: &str = "node-a";

struct Env {
    berth: Berth,
    cp: ControlPlane,
    client: Client,
}

impl Drop for Env {
    fn drop(&mut self) {
        // Controllers and driver go before the API server they talk to.
        self.berth.controllers.clear();
        self.berth.driver = None;
        self.cp.stop();
    }
}

impl Env {
    async fn start() -> Env {
        Self::start_with(&[]).await
    }

    /// A control plane, one fake node, the driver and one controller started with `flags`.
    async fn start_with(flags: &[&str]) -> Env {
        let cp = ControlPlane::start()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let client = cp.client().await.expect("admin client");
        let labels = BTreeMap::from([(TOPOLOGY_KEY.to_string(), NODE.to_string())]);
        cp.create_node(NODE, &labels).await.expect("node");
        cp.register_csi_node(NODE, DRIVER, NODE, &[TOPOLOGY_KEY], None)
            .await
            .expect("CSINode");
        let berth = Berth::start(&cp, NODE, flags).expect("start berth");
        Env { berth, cp, client }
    }

    fn logs(&self) -> String {
        format!("{}\n{}", self.cp.logs(), self.berth.logs())
    }

    async fn namespace(&self, name: &str) {
        let ns: Namespace =
            serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace");
    }

    async fn class(&self, name: &str, mode: &str, reclaim: &str, params: serde_json::Value) {
        let sc: StorageClass = serde_json::from_value(json!({
            "metadata": { "name": name },
            "provisioner": DRIVER,
            "volumeBindingMode": mode,
            "reclaimPolicy": reclaim,
            "parameters": params,
        }))
        .unwrap();
        Api::<StorageClass>::all(self.client.clone())
            .create(&PostParams::default(), &sc)
            .await
            .expect("storage class");
    }

    async fn claim(&self, ns: &str, name: &str, class: &str) -> PersistentVolumeClaim {
        let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": class,
                "resources": { "requests": { "storage": "64Mi" } },
            }
        }))
        .unwrap();
        self.claims(ns)
            .create(&PostParams::default(), &pvc)
            .await
            .expect("claim")
    }

    fn claims(&self, ns: &str) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn pvs(&self) -> Api<PersistentVolume> {
        Api::all(self.client.clone())
    }

    /// Polls `check` until it yields a value or `timeout` passes.
    async fn wait<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn wait_bound(&self, ns: &str, name: &str) -> String {
        let claims = self.claims(ns);
        self.wait(
            &format!("{ns}/{name} Bound"),
            Duration::from_secs(120),
            || {
                let claims = claims.clone();
                async move {
                    let c = claims.get(name).await.ok()?;
                    let phase = c.status.as_ref()?.phase.clone()?;
                    (phase == "Bound").then(|| c.spec?.volume_name).flatten()
                }
            },
        )
        .await
    }

    async fn events_for(&self, ns: &str, object: &str) -> Vec<Event> {
        let lp = ListParams::default().fields(&format!("involvedObject.name={object}"));
        Api::<Event>::namespaced(self.client.clone(), ns)
            .list(&lp)
            .await
            .expect("events")
            .items
    }

    /// PVs whose claimRef names `ns/name`.
    async fn pvs_for(&self, ns: &str, name: &str) -> Vec<PersistentVolume> {
        self.pvs()
            .list(&ListParams::default())
            .await
            .expect("pvs")
            .items
            .into_iter()
            .filter(|pv| {
                pv.spec
                    .as_ref()
                    .and_then(|s| s.claim_ref.as_ref())
                    .is_some_and(|r| {
                        r.namespace.as_deref() == Some(ns) && r.name.as_deref() == Some(name)
                    })
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_claims_bind_and_are_reclaimed_by_policy() {
    let env = Env::start().await;
    env.namespace("apps").await;
    env.class("fast-delete", "Immediate", "Delete", json!({}))
        .await;
    env.class("fast-retain", "Immediate", "Retain", json!({}))
        .await;
    let deleted = env.claim("apps", "scratch", "fast-delete").await;
    env.claim("apps", "keep", "fast-retain").await;

    let pv_name = env.wait_bound("apps", "scratch").await;
    assert_eq!(
        pv_name,
        format!("pvc-{}", deleted.uid().unwrap()),
        "deterministic PV name"
    );
    let pv = env.pvs().get(&pv_name).await.unwrap();
    assert_eq!(
        pv.annotations()
            .get("pv.kubernetes.io/provisioned-by")
            .map(String::as_str),
        Some(DRIVER)
    );
    assert!(
        pv.finalizers()
            .iter()
            .any(|f| f == "external-provisioner.volume.kubernetes.io/finalizer")
    );
    let spec = pv.spec.clone().unwrap();
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete")
    );
    assert_eq!(spec.csi.as_ref().unwrap().driver, DRIVER);
    let affinity = serde_json::to_value(spec.node_affinity.unwrap()).unwrap();
    assert_eq!(
        affinity["required"]["nodeSelectorTerms"][0]["matchExpressions"][0],
        json!({ "key": TOPOLOGY_KEY, "operator": "In", "values": [NODE] }),
        "node affinity comes from the volume's accessible topology"
    );
    let events = env.events_for("apps", "scratch").await;
    assert!(
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("ProvisioningSucceeded")),
        "ProvisioningSucceeded event on the claim: {events:?}"
    );

    let kept = env.wait_bound("apps", "keep").await;

    // Delete: the volume and the PV go.
    env.claims("apps")
        .delete("scratch", &DeleteParams::default())
        .await
        .unwrap();
    let pvs = env.pvs();
    env.wait("the Delete PV to go", Duration::from_secs(60), || {
        let pvs = pvs.clone();
        let n = pv_name.clone();
        async move {
            pvs.get_opt(&n)
                .await
                .ok()
                .and_then(|p| p.is_none().then_some(()))
        }
    })
    .await;

    // Retain: the PV stays, Released, with its volume.
    env.claims("apps")
        .delete("keep", &DeleteParams::default())
        .await
        .unwrap();
    env.wait("the Retain PV Released", Duration::from_secs(60), || {
        let pvs = pvs.clone();
        let n = kept.clone();
        async move {
            let pv = pvs.get_opt(&n).await.ok()??;
            (pv.status?.phase.as_deref() == Some("Released")).then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = env.pvs().get(&kept).await.expect("retained PV still there");
    assert_eq!(still.status.unwrap().phase.as_deref(), Some("Released"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_class_parameters_give_a_warning_event_and_create_nothing() {
    let env = Env::start().await;
    env.namespace("bad").await;
    env.class(
        "broken",
        "Immediate",
        "Delete",
        json!({ "noSuchParameter": "x" }),
    )
    .await;
    env.claim("bad", "data", "broken").await;

    let note = env
        .wait(
            "a ProvisioningFailed event",
            Duration::from_secs(60),
            || async {
                env.events_for("bad", "data")
                    .await
                    .into_iter()
                    .find(|e| e.reason.as_deref() == Some("ProvisioningFailed"))
                    .and_then(|e| e.message)
            },
        )
        .await;
    assert!(note.contains("InvalidArgument"), "{note}");
    assert!(
        note.contains("noSuchParameter"),
        "the message names the parameter: {note}"
    );
    assert_eq!(
        env.events_for("bad", "data")
            .await
            .iter()
            .find(|e| e.reason.as_deref() == Some("ProvisioningFailed"))
            .and_then(|e| e.type_.clone())
            .as_deref(),
        Some("Warning")
    );
    assert!(
        env.pvs_for("bad", "data").await.is_empty(),
        "no PV for a rejected claim"
    );
    let phase = env
        .claims("bad")
        .get("data")
        .await
        .unwrap()
        .status
        .and_then(|s| s.phase);
    assert_eq!(phase.as_deref(), Some("Pending"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_first_consumer_provisions_on_the_scheduled_node() {
    let env = Env::start().await;
    env.namespace("wffc").await;
    env.class("local", "WaitForFirstConsumer", "Delete", json!({}))
        .await;
    env.claim("wffc", "data", "local").await;

    // No consumer yet: the claim waits, nothing is provisioned.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        env.pvs_for("wffc", "data").await.is_empty(),
        "provisioned before a consumer"
    );

    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "app" },
        "spec": {
            "containers": [{ "name": "app", "image": "registry.invalid/app:1" }],
            "volumes": [{ "name": "data", "persistentVolumeClaim": { "claimName": "data" } }],
        }
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "wffc");
    // The namespace's ServiceAccount appears shortly after the namespace.
    env.wait("the pod to be admitted", Duration::from_secs(30), || {
        let pods = pods.clone();
        let pod = pod.clone();
        async move {
            pods.create(&PostParams::default(), &pod)
                .await
                .ok()
                .map(|_| ())
        }
    })
    .await;

    // Diagnose a stuck scheduling: the pod's conditions say why.
    let stuck = tokio::time::timeout(Duration::from_secs(90), env.wait_bound("wffc", "data")).await;
    let pv_name = match stuck {
        Ok(name) => name,
        Err(_) => panic!(
            "claim not bound: pod {:?}\nclaim {:?}\n{}",
            pods.get("app").await.ok().and_then(|p| p.status),
            env.claims("wffc").get("data").await.ok(),
            env.logs()
        ),
    };
    let claim = env.claims("wffc").get("data").await.unwrap();
    assert_eq!(
        claim
            .annotations()
            .get("volume.kubernetes.io/selected-node")
            .map(String::as_str),
        Some(NODE),
        "the scheduler chose the node"
    );
    let pv = env.pvs().get(&pv_name).await.unwrap();
    let affinity = serde_json::to_value(pv.spec.unwrap().node_affinity.unwrap()).unwrap();
    assert_eq!(
        affinity["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"],
        json!([NODE])
    );
    let node = env
        .wait("the pod to be scheduled", Duration::from_secs(60), || {
            let pods = pods.clone();
            async move { pods.get("app").await.ok()?.spec?.node_name }
        })
        .await;
    assert_eq!(node, NODE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_controller_and_driver_mid_run_leaves_no_duplicates() {
    let mut env = Env::start().await;
    env.namespace("restart").await;
    env.class("fast", "Immediate", "Delete", json!({})).await;
    for i in 0..6 {
        env.claim("restart", &format!("c{i}"), "fast").await;
    }
    // Crash the controller while it works, and the driver with it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.berth.controllers[0].kill();
    env.berth.restart_driver().expect("restart driver");
    env.berth.add_controller(&[]).expect("second controller");

    for i in 0..6 {
        env.wait_bound("restart", &format!("c{i}")).await;
    }
    for i in 0..6 {
        let pvs = env.pvs_for("restart", &format!("c{i}")).await;
        assert_eq!(pvs.len(), 1, "exactly one PV for c{i}");
    }
    let all = env.pvs().list(&ListParams::default()).await.unwrap().items;
    assert_eq!(all.len(), 6, "no stray PVs");
}

/// `GET path` on a loopback HTTP server, returning the body.
async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_hands_over_to_the_standby() {
    use k8s_openapi::api::coordination::v1::Lease;
    let ports = [
        berth_tests::control_plane::free_port(),
        berth_tests::control_plane::free_port(),
    ];
    let flags = |id: &'static str, port: u16| {
        vec![
            "--leader-elect".to_string(),
            "--leader-election-namespace=default".to_string(),
            "--leader-election-lease-duration=4".to_string(),
            format!("--identity={id}"),
            format!("--metrics-address=127.0.0.1:{port}"),
        ]
    };
    let a = flags("replica-a", ports[0]);
    let mut env = Env::start_with(&a.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let b = flags("replica-b", ports[1]);
    env.berth
        .add_controller(&b.iter().map(String::as_str).collect::<Vec<_>>())
        .expect("standby");
    env.namespace("ha").await;
    env.class("fast", "Immediate", "Delete", json!({})).await;
    env.claim("ha", "first", "fast").await;
    env.wait_bound("ha", "first").await;

    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "default");
    let holder = |l: Lease| l.spec.and_then(|s| s.holder_identity);
    let leader =
        holder(leases.get("csi-berth-dev-controller").await.expect("lease")).expect("a holder");
    let (leader_idx, standby) = if leader == "replica-a" {
        (0, "replica-b")
    } else {
        (1, "replica-a")
    };
    let metrics = http_get(ports[leader_idx], "/metrics").await;
    assert!(metrics.contains("berth_controller_leader 1"), "{metrics}");
    assert!(
        metrics.contains("berth_controller_provisions_total{outcome=\"success\"} 1"),
        "{metrics}"
    );
    let standby_metrics = http_get(ports[1 - leader_idx], "/metrics").await;
    assert!(
        standby_metrics.contains("berth_controller_leader 0"),
        "{standby_metrics}"
    );
    // The standby turns ready once its own CSI probe succeeds, which may
    // take a few retries on a loaded machine.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !http_get(ports[1 - leader_idx], "/readyz")
        .await
        .ends_with("ok")
    {
        assert!(std::time::Instant::now() < deadline, "a standby is ready");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    env.berth.controllers[leader_idx].kill();
    env.claim("ha", "second", "fast").await;
    env.wait_bound("ha", "second").await;
    let now = holder(leases.get("csi-berth-dev-controller").await.unwrap());
    assert_eq!(now.as_deref(), Some(standby), "the standby took the lease");
}
