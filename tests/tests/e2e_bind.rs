//! berth's binder (`berth controller --bind`) and `berth dry-run
//! --from-cluster` against the real control plane:
//! - with kube-controller-manager's PV binder off, berth (deploy/bind's
//!   shape: a node agent and the controller with `--bind`, running with only
//!   the RBAC in `deploy/rbac.yaml` and `deploy/bind/rbac.yaml`) binds a
//!   set of static volumes exactly as `berth dry-run` predicted, both from
//!   the manifests and from the live cluster, with upstream's annotations,
//!   phases and events, hands the dynamic claim to the provisioner, and
//!   releases volumes by policy when claims go;
//! - with kube-scheduler, berth's binder finishes what the scheduler starts
//!   for WaitForFirstConsumer claims: a local volume the scheduler chose,
//!   and a volume berth provisions on the node the scheduler selected;
//! - with the stock binder, `dry-run --from-cluster` taken while the binder
//!   is paused predicts exactly what it then does.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_tests::control_plane::{Cluster, DRIVER, NodeSpec, Options, TOPOLOGY_KEY};
use berth_tests::{berth_bin, repo_root};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use kube::api::DeleteParams;
use serde_json::Value;

const NODE: &str = "node-a";
const NS: &str = "shop";
/// berth's provisioning intent on a claim (controller/intent.rs).
const INTENT: &str = "csi.berth.dev/provisioning";

fn manifest() -> std::path::PathBuf {
    repo_root().join("tests/e2e/static-binding.yaml")
}

/// A control plane (stock binder and scheduler on or off) with one Ready
/// node carrying berth's driver.
async fn cluster(stock_binder: bool, scheduler: bool) -> Cluster {
    Cluster::start_with(
        Options {
            stock_binder,
            scheduler,
            ..Options::default()
        },
        &[NODE],
    )
    .await
}

/// `berth dry-run -o json` with `args`, parsed.
fn dry_run(args: &[&str]) -> Value {
    let out = Command::new(berth_bin())
        .arg("dry-run")
        .args(args)
        .args(["-o", "json"])
        .output()
        .expect("run berth dry-run");
    assert!(
        out.status.success(),
        "berth dry-run {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("dry-run prints JSON")
}

fn from_cluster(kubeconfig: &Path) -> Value {
    let kc = kubeconfig.display().to_string();
    dry_run(&["--from-cluster", "--kubeconfig", &kc])
}

/// `claim → volume` for every binding of a plan.
fn bindings(plan: &Value) -> BTreeMap<String, String> {
    plan["bindings"]
        .as_array()
        .expect("bindings")
        .iter()
        .map(|b| {
            (
                b["claim"].as_str().unwrap_or_default().to_string(),
                b["volume"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn listed(plan: &Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = plan[key]
        .as_array()
        .expect(key)
        .iter()
        .map(|p| p["claim"].as_str().unwrap_or_default().to_string())
        .collect();
    v.sort();
    v
}

fn annotation<'a>(o: &'a impl ResourceExt, key: &str) -> Option<&'a str> {
    o.annotations().get(key).map(String::as_str)
}

/// Waits for an event with `reason` on the claim `ns/name`.
async fn event(
    env: &Cluster,
    ns: &str,
    name: &str,
    reason: &str,
) -> k8s_openapi::api::core::v1::Event {
    env.wait(
        &format!("{reason} event on {name}"),
        Duration::from_secs(30),
        || async {
            env.events_for(ns, name)
                .await
                .into_iter()
                .find(|e| e.reason.as_deref() == Some(reason))
        },
    )
    .await
}

async fn claim(env: &Cluster, name: &str) -> PersistentVolumeClaim {
    env.claims(NS).get(name).await.expect("claim")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_mode_binds_exactly_what_dry_run_predicts() {
    // deploy/bind's shape: a node agent and the controller with --bind,
    // each with only its ServiceAccount's rights.
    let mut env = Cluster::start_node_local_with(
        Options {
            stock_binder: false,
            scheduler: false,
            ..Options::default()
        },
        &[NodeSpec::new(NODE, "64Gi")],
    )
    .await;
    env.cp.apply_file(&manifest()).await.expect("apply");
    // The agent says how much room its node has for `fast`: then the
    // planner can place the dynamic claim there.
    env.wait_capacities("fast").await;

    // Nothing binds them yet: the stock binder is off and berth not started.
    let offline = dry_run(&["-f", &manifest().display().to_string()]);
    let live = from_cluster(&env.cp.kubeconfig);
    let predicted = bindings(&offline);
    assert_eq!(bindings(&live), predicted, "live read and manifests agree");
    assert_eq!(listed(&live, "provisioning"), [format!("{NS}/dynamic")]);
    assert_eq!(
        listed(&live, "pending"),
        [format!("{NS}/nothing-fits"), format!("{NS}/too-big")]
    );
    // The prediction is not trivial: every way of matching is in it.
    for (claim, volume) in [
        ("small", "pv-1g"),             // the smallest that fits
        ("medium", "pv-5g"),            // skips the reserved and the named volume
        ("gold", "pv-10g-gold"),        // by selector
        ("shared", "pv-20g-shared"),    // by access mode
        ("reserved", "pv-2g-reserved"), // by the PV's claimRef
        ("named", "pv-30g-named"),      // by spec.volumeName
    ] {
        assert_eq!(
            predicted.get(&format!("{NS}/{claim}")).map(String::as_str),
            Some(volume),
            "{claim}"
        );
    }
    for pvc in env
        .claims(NS)
        .list(&Default::default())
        .await
        .expect("list")
        .items
    {
        assert_ne!(
            pvc.status.and_then(|s| s.phase).as_deref(),
            Some("Bound"),
            "nothing may bind before berth starts"
        );
    }

    // berth runs as it would in the cluster: with nothing but the rights
    // deploy/ grants its ServiceAccounts (rbac.yaml and bind/rbac.yaml).
    let kubeconfig = env.service_account_kubeconfig(&["bind/rbac.yaml"]).await;
    env.berth
        .add_controller_with(&kubeconfig, &["--bind"])
        .expect("start the controller");
    for (claim_key, volume) in &predicted {
        let name = claim_key.trim_start_matches("shop/");
        assert_eq!(&env.wait_bound(NS, name).await, volume, "{claim_key}");
    }
    let dynamic = claim(&env, "dynamic").await;
    assert_eq!(
        env.wait_bound(NS, "dynamic").await,
        format!("pvc-{}", dynamic.uid().expect("uid")),
        "the dynamic claim is provisioned by berth and bound by berth"
    );

    // Upstream's marks: berth chose the volume for `small`, the user chose
    // it for `named` (volumeName) and for `reserved` (claimRef).
    let small = claim(&env, "small").await;
    assert_eq!(
        annotation(&small, "pv.kubernetes.io/bind-completed"),
        Some("yes")
    );
    assert_eq!(
        annotation(&small, "pv.kubernetes.io/bound-by-controller"),
        Some("yes")
    );
    let status = small.status.clone().expect("status");
    assert_eq!(
        status
            .capacity
            .and_then(|c| c.get("storage").cloned())
            .map(|q| q.0)
            .as_deref(),
        Some("1Gi")
    );
    let named = claim(&env, "named").await;
    assert_eq!(
        annotation(&named, "pv.kubernetes.io/bind-completed"),
        Some("yes")
    );
    assert_eq!(
        annotation(&named, "pv.kubernetes.io/bound-by-controller"),
        None
    );
    let pv_small = env.pvs().get("pv-1g").await.expect("pv");
    assert_eq!(
        annotation(&pv_small, "pv.kubernetes.io/bound-by-controller"),
        Some("yes")
    );
    let claim_ref = pv_small
        .spec
        .clone()
        .and_then(|s| s.claim_ref)
        .expect("claimRef");
    assert_eq!(claim_ref.uid, small.uid());
    assert_eq!(
        pv_small.status.and_then(|s| s.phase).as_deref(),
        Some("Bound")
    );
    let pv_reserved = env.pvs().get("pv-2g-reserved").await.expect("pv");
    assert_eq!(
        annotation(&pv_reserved, "pv.kubernetes.io/bound-by-controller"),
        None
    );
    let pv_tiny = env.pvs().get("pv-tiny").await.expect("pv");
    assert_eq!(
        pv_tiny.status.and_then(|s| s.phase).as_deref(),
        Some("Available"),
        "an unclaimed volume becomes Available"
    );

    // The two that cannot bind say why, with upstream's reasons.
    let mismatch = event(&env, NS, "too-big", "VolumeMismatch").await;
    assert!(
        mismatch.message.unwrap_or_default().contains("pv-tiny"),
        "the event names the volume"
    );
    event(&env, NS, "nothing-fits", "ProvisioningFailed").await;
    // berth placed `dynamic` for its own agent, which made it at once: the
    // agent says so, and the binder's "waiting for the external
    // provisioner" stays unsaid (it speaks only after a quiet time, below).
    event(&env, NS, "dynamic", "ProvisioningSucceeded").await;
    let said: Vec<String> = env
        .events_for(NS, "dynamic")
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        !said.iter().any(|r| r == "ExternalProvisioning"),
        "{said:?}"
    );
    // The binding write settled the provisioning intent: a bound claim
    // carries no berth finalizer.
    assert!(
        !claim(&env, "dynamic")
            .await
            .finalizers()
            .iter()
            .any(|f| f == INTENT),
        "dynamic still holds {INTENT}"
    );
    for name in ["too-big", "nothing-fits"] {
        let c = claim(&env, name).await;
        assert_eq!(
            c.status.and_then(|s| s.phase).as_deref(),
            Some("Pending"),
            "{name}"
        );
    }

    // Read back, the cluster is what was predicted: the same pairs, now
    // already bound.
    let after = from_cluster(&env.cp.kubeconfig);
    let mut expected = predicted.clone();
    expected.insert(
        "shop/dynamic".into(),
        format!("pvc-{}", dynamic.uid().expect("uid")),
    );
    assert_eq!(bindings(&after), expected);
    assert!(
        after["bindings"]
            .as_array()
            .expect("bindings")
            .iter()
            .all(|b| b["how"] == "already-bound"),
        "{after:#}"
    );

    // Claims go: Retain leaves the volume Released, Delete removes it.
    env.claims(NS)
        .delete("small", &DeleteParams::default())
        .await
        .expect("delete small");
    env.wait("pv-1g Released", Duration::from_secs(30), || async {
        let pv = env.pvs().get("pv-1g").await.ok()?;
        (pv.status?.phase.as_deref() == Some("Released")).then_some(())
    })
    .await;
    env.claims(NS)
        .delete("dynamic", &DeleteParams::default())
        .await
        .expect("delete dynamic");
    env.wait_pv_gone(&format!("pvc-{}", dynamic.uid().expect("uid")))
        .await;

    // A claim placed for an agent that does not answer: placed with its
    // intent in one write, and said to wait for the provisioner once the
    // quiet time is over.
    env.agent(NODE).kill();
    let slow: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "slow", "namespace": NS },
        "spec": {
            "storageClassName": "fast",
            "accessModes": ["ReadWriteOnce"],
            "resources": { "requests": { "storage": "64Mi" } },
        },
    }))
    .expect("claim");
    env.claims(NS)
        .create(&Default::default(), &slow)
        .await
        .expect("create slow");
    let waiting = event(&env, NS, "slow", "ExternalProvisioning").await;
    assert!(
        waiting
            .message
            .unwrap_or_default()
            .contains("external provisioner 'csi.berth.dev'"),
        "upstream's words"
    );
    let slow = claim(&env, "slow").await;
    assert_eq!(
        annotation(&slow, "volume.kubernetes.io/selected-node"),
        Some(NODE)
    );
    assert!(
        slow.finalizers().iter().any(|f| f == INTENT),
        "the placing write records the intent: {:?}",
        slow.finalizers()
    );
    assert_ne!(slow.status.and_then(|s| s.phase).as_deref(), Some("Bound"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_from_cluster_predicts_what_the_stock_binder_then_does() {
    let env = cluster(true, false).await;
    let kcm = env
        .cp
        .pid_of("kube-controller-manager")
        .expect("kube-controller-manager runs");
    // Hold the stock binder still while the objects arrive and berth reads
    // them, so the prediction is made before the binder acts.
    let signal = |sig: nix::sys::signal::Signal| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(kcm as i32), sig)
            .expect("signal kube-controller-manager");
    };
    signal(nix::sys::signal::Signal::SIGSTOP);
    let applied = env.cp.apply_file(&manifest()).await;
    let predicted = applied.map(|_| from_cluster(&env.cp.kubeconfig));
    signal(nix::sys::signal::Signal::SIGCONT);
    let predicted = predicted.expect("apply the manifest");
    let claims = bindings(&predicted);
    assert_eq!(claims.len(), 6, "{predicted:#}");

    for (claim_key, volume) in &claims {
        let name = claim_key.trim_start_matches("shop/");
        assert_eq!(
            &env.wait_bound(NS, name).await,
            volume,
            "the stock binder bound {claim_key} as predicted"
        );
    }
    for name in ["too-big", "nothing-fits"] {
        let c = claim(&env, name).await;
        assert_eq!(
            c.status.and_then(|s| s.phase).as_deref(),
            Some("Pending"),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_mode_finishes_what_the_scheduler_starts_for_delayed_claims() {
    let mut env = cluster(false, true).await;
    env.berth
        .add_controller(&["--bind"])
        .expect("start the controller");
    let yaml = format!(
        "
apiVersion: v1
kind: Namespace
metadata: {{name: apps}}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: berth-wffc}}
provisioner: {DRIVER}
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: local-static}}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: local-pv}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  storageClassName: local-static
  local: {{path: /mnt/disks/a}}
  nodeAffinity:
    required:
      nodeSelectorTerms:
        - matchExpressions: [{{key: {TOPOLOGY_KEY}, operator: In, values: [{NODE}]}}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: dynamic, namespace: apps}}
spec:
  storageClassName: berth-wffc
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 64Mi}}}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: static, namespace: apps}}
spec:
  storageClassName: local-static
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
"
    );
    let file = env.cp.dir().join("delayed.yaml");
    std::fs::write(&file, yaml).expect("write manifest");
    env.cp.apply_file(&file).await.expect("apply");

    // No consumer yet: both wait, and berth says so.
    let waiting = event(&env, "apps", "dynamic", "WaitForFirstConsumer").await;
    assert_eq!(waiting.type_.as_deref(), Some("Normal"));
    event(&env, "apps", "static", "WaitForFirstConsumer").await;

    env.pod("apps", "uses-dynamic", "dynamic", serde_json::json!({}))
        .await;
    env.pod("apps", "uses-static", "static", serde_json::json!({}))
        .await;
    let dynamic = env.claims("apps").get("dynamic").await.expect("claim");
    let pv = env.wait_bound("apps", "dynamic").await;
    assert_eq!(pv, format!("pvc-{}", dynamic.uid().expect("uid")));
    let made = env.pvs().get(&pv).await.expect("pv");
    assert_eq!(berth_tests::control_plane::affinity_nodes(&made), [NODE]);
    assert_eq!(env.wait_bound("apps", "static").await, "local-pv");
    // The scheduler let the pods onto the node once berth finished binding.
    for pod in ["uses-dynamic", "uses-static"] {
        let pods = env.pods("apps");
        env.wait(
            &format!("pod {pod} scheduled"),
            Duration::from_secs(60),
            || {
                let pods = pods.clone();
                async move {
                    let p = pods.get(pod).await.ok()?;
                    (p.spec?.node_name.as_deref() == Some(NODE)).then_some(())
                }
            },
        )
        .await;
    }
}
