//! `berth controller` + `berth csi` against the real control plane, with the
//! stock PV binder and kube-scheduler: Immediate and WaitForFirstConsumer
//! provisioning to Bound, reclaim by policy, invalid class parameters, a
//! controller restart in the middle of the work, the controller running
//! with nothing but the RBAC in `deploy/`, and claims deleted while their
//! volume is being made.

use std::time::Duration;

use berth_tests::control_plane::{Cluster, DRIVER, NodeSpec, TOPOLOGY_KEY};
use berth_tests::http_get;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

const NODE: &str = "node-a";

/// A control plane with one fake node and berth on it: the driver and one
/// controller started with `flags`.
async fn start_with(flags: &[&str]) -> Cluster {
    let mut env = Cluster::start(&[NODE]).await;
    env.berth
        .add_controller(flags)
        .expect("start the controller");
    env
}

async fn start() -> Cluster {
    start_with(&[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_claims_bind_and_are_reclaimed_by_policy() {
    let env = start().await;
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
    env.wait_pv_gone(&pv_name).await;
    let pvs = env.pvs();

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
    let env = start().await;
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
    let env = start().await;
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

    env.pod("wffc", "app", "data", json!({})).await;
    let pods = env.pods("wffc");

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
    let mut env = start().await;
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
    let mut env = start_with(&a.iter().map(String::as_str).collect::<Vec<_>>()).await;
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
        .trim_end()
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

/// Every volume the driver holds, from ListVolumes over its socket.
async fn driver_volumes(env: &Cluster) -> Vec<String> {
    use csi_proto::controller_client::ControllerClient;
    let channel = csi_proto::connect_unix(env.berth.socket.clone())
        .await
        .expect("connect to the driver");
    let mut ctrl = ControllerClient::new(channel);
    let (mut out, mut token) = (Vec::new(), String::new());
    loop {
        let page = ctrl
            .list_volumes(csi_proto::ListVolumesRequest {
                max_entries: 0,
                starting_token: token,
            })
            .await
            .expect("ListVolumes")
            .into_inner();
        out.extend(
            page.entries
                .into_iter()
                .filter_map(|e| e.volume.map(|v| v.volume_id)),
        );
        if page.next_token.is_empty() {
            return out;
        }
        token = page.next_token;
    }
}

/// Waits until no berth PV and no driver volume is left, and it stays so
/// for a few consecutive polls (work still in flight would show up).
async fn wait_nothing_left(env: &Cluster, what: &str) {
    let quiet = std::cell::Cell::new(0);
    env.wait(what, Duration::from_secs(60), || {
        let quiet = &quiet;
        async move {
            let pvs = env.berth_pvs().await;
            let volumes = driver_volumes(env).await;
            let clean = pvs.is_empty() && volumes.is_empty();
            quiet.set(if clean { quiet.get() + 1 } else { 0 });
            (quiet.get() >= 8).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_rbac_is_all_berth_needs() {
    // deploy/'s shape with deploy/'s ServiceAccounts: node-a's and node-b's
    // agents as berth-node, the controller as berth-controller. node-b has
    // too little room for the claim sent there: its agent gets
    // ResourceExhausted and must patch the claim to hand it back to the
    // scheduler.
    let mut env =
        Cluster::start_node_local(&[NodeSpec::new(NODE, "4Gi"), NodeSpec::new("node-b", "32Mi")])
            .await;
    env.berth
        .add_controller(&["--leader-elect", "--leader-election-namespace=berth-system"])
        .expect("controller");

    env.namespace("apps").await;
    env.class("now", "Immediate", "Delete", json!({})).await;
    env.class("later", "WaitForFirstConsumer", "Delete", json!({}))
        .await;
    env.claim("apps", "direct", "now").await;
    env.claim("apps", "consumed", "later").await;
    env.pod("apps", "app", "consumed", json!({})).await;
    env.claim_with(
        "apps",
        "elsewhere",
        "later",
        json!({ "volume.kubernetes.io/selected-node": "node-b" }),
    )
    .await;

    let direct = env.wait_bound("apps", "direct").await;
    let consumed = env.wait_bound("apps", "consumed").await;
    for claim in ["direct", "consumed"] {
        let events = env.events_for("apps", claim).await;
        assert!(
            events
                .iter()
                .any(|e| e.reason.as_deref() == Some("ProvisioningSucceeded")),
            "the agent may write events: {events:?}"
        );
    }
    let claims = env.claims("apps");
    env.wait(
        "selected-node dropped from the claim sent to node-b",
        Duration::from_secs(60),
        || {
            let claims = claims.clone();
            async move {
                let c = claims.get("elsewhere").await.ok()?;
                (!c.annotations()
                    .contains_key("volume.kubernetes.io/selected-node"))
                .then_some(())
            }
        },
    )
    .await;

    // Reclaim: DeleteVolume, delete the PV, drop the finalizer.
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    env.pods("apps").delete("app", &now).await.expect("pod");
    for claim in ["direct", "consumed", "elsewhere"] {
        claims.delete(claim, &now).await.expect("delete claim");
    }
    env.wait_pv_gone(&direct).await;
    env.wait_pv_gone(&consumed).await;
    for agent in &env.berth.agents {
        assert!(
            agent.volumes_on_disk().is_empty(),
            "{}: every volume reclaimed",
            agent.node
        );
    }

    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(env.client.clone(), "berth-system");
    assert!(
        leases
            .get_opt("csi-berth-dev-controller")
            .await
            .unwrap()
            .is_some(),
        "the leader-election Lease lives in berth-system"
    );
    let mut logs = vec![std::fs::read_to_string(&env.berth.controllers[0].log).unwrap()];
    logs.extend(env.berth.agents.iter().map(|a| a.all_logs()));
    for log in logs {
        assert!(
            !log.to_lowercase().contains("forbidden"),
            "a request was refused by RBAC:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_deleted_right_after_creation_leaves_no_volume() {
    let env = start().await;
    env.namespace("churn").await;
    env.class("fast", "Immediate", "Delete", json!({})).await;
    for round in 0..5 {
        let name = format!("brief-{round}");
        env.claim("churn", &name, "fast").await;
        env.claims("churn")
            .delete(&name, &DeleteParams::default())
            .await
            .expect("delete claim");
    }
    wait_nothing_left(&env, "no PV and no volume after deleted claims").await;
    // The controller is still working: a claim that stays gets its volume.
    env.claim("churn", "kept", "fast").await;
    env.wait_bound("churn", "kept").await;
    assert_eq!(
        driver_volumes(&env).await.len(),
        1,
        "only the kept claim's volume"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_claims_deleted_while_provisioning_leaves_no_volume() {
    let env = start().await;
    env.namespace("burst").await;
    env.class("fast", "Immediate", "Delete", json!({})).await;
    // Created and deleted side by side, so the deletions land while the
    // controller works through the claims: some have a volume and a PV by
    // then, some are mid-CreateVolume, some were never looked at.
    let claims = env.claims("burst");
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..24 {
        let claims = claims.clone();
        let pvc = Cluster::claim_object(&format!("c{i}"), "fast", json!({}));
        burst.spawn(async move {
            claims.create(&PostParams::default(), &pvc).await?;
            claims
                .delete(&pvc.name_any(), &DeleteParams::default())
                .await
                .map(|_| ())
        });
    }
    while let Some(done) = burst.join_next().await {
        done.expect("task").expect("create and delete a claim");
    }
    wait_nothing_left(&env, "no PV and no volume after the burst").await;
    let left = claims.list(&ListParams::default()).await.unwrap().items;
    assert!(left.is_empty(), "claims left: {left:?}");
}
