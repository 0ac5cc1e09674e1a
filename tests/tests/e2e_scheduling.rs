//! berth's scheduling prediction against the real kube-scheduler: pods
//! without a node are planned by `berth dry-run --from-cluster` and
//! `berth explain pod` while the scheduler is held still (SIGSTOP), then the
//! scheduler runs (SIGCONT), and what it does must be what berth said:
//!
//! - every pod it binds lands on a node berth found feasible for it, and a
//!   pod berth found exactly one feasible node for lands on that node;
//! - the pods it leaves unschedulable are exactly berth's, each with a
//!   FailedScheduling message that starts with berth's reason (the event
//!   adds a preemption sentence berth does not predict);
//! - every claim of a bound pod is bound to a volume on the pod's node
//!   (its class has one per node): berth's volume when the scheduler chose
//!   berth's node;
//! - berth's feasible set of each pod is exactly the scheduler's: the
//!   scenario is copied once per node into a namespace of its own, every
//!   pod of the copy pinned to that node (`nodeSelector` on
//!   `kubernetes.io/hostname`), so the scheduler binds the copy iff the
//!   node passes its filters for the pod; this also checks the issue's "a
//!   node the real scheduler's feasible set contains" for berth's choice.
//!
//! Why the assertions are sound although both schedulers place pods one
//! at a time, each decision changing what the next pod sees: no pod's
//! feasibility depends on where another pod went. Node filters (cordon,
//! taints, labels) do not change. The only requests are 3 cpus (the
//! 1000-cpu pod is placed nowhere): the small node has 2, so such a pod
//! never fits there, and the other nodes have 100, more than all such pods
//! together (three such pods × 6 copies × 3 cpus = 54). Every claim has a storage class
//! of its own whose volumes no other claim can take, at most one volume
//! per node, so a pod's volumes are never taken by another pod. Hence each
//! pod's feasible set is the same in any order, in berth's order and in
//! the scheduler's, and a pod unschedulable once stays so.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::berth_bin;
use berth_tests::control_plane::{ControlPlane, Options};
use k8s_openapi::api::core::v1::{
    Event, Node, PersistentVolume, PersistentVolumeClaim, Pod, ServiceAccount,
};
use kube::api::{Api, ListParams, Patch, PatchParams};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

/// The nodes, all `kubernetes.io/hostname` = name: n1 and n5 `disk: ssd`
/// with n5 cordoned, n2 `disk: ssd` with a `gpu:NoSchedule` taint, n3 and
/// n4 `disk: hdd` with n4 holding 2 cpus where the others have 100.
const NODES: [&str; 5] = ["n1", "n2", "n3", "n4", "n5"];

const TOLERATE_GPU: &str = r#"[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]"#;

/// A WaitForFirstConsumer claim of a class of its own (`no-provisioner`)
/// with one 10Gi local volume on each node of `volumes_on`.
struct Claim {
    name: &'static str,
    storage: &'static str,
    volumes_on: &'static [&'static str],
}

/// One pending pod, and the nodes that pass every filter for it.
struct Case {
    pod: &'static str,
    node_selector: Option<&'static str>,
    tolerations: Option<&'static str>,
    affinity: Option<&'static str>,
    cpu: Option<&'static str>,
    claims: &'static [Claim],
    feasible: &'static [&'static str],
}

/// A pod with no constraint, to build the cases from.
const UNCONSTRAINED: Case = Case {
    pod: "",
    node_selector: None,
    tolerations: None,
    affinity: None,
    cpu: None,
    claims: &[],
    feasible: &[],
};

const CASES: &[Case] = &[
    Case {
        pod: "anywhere",
        feasible: &["n1", "n3", "n4"],
        ..UNCONSTRAINED
    },
    Case {
        pod: "tolerates-gpu",
        tolerations: Some(TOLERATE_GPU),
        feasible: &["n1", "n2", "n3", "n4"],
        ..UNCONSTRAINED
    },
    Case {
        pod: "ssd",
        node_selector: Some(r#"{"disk": "ssd"}"#),
        feasible: &["n1"],
        ..UNCONSTRAINED
    },
    Case {
        pod: "ssd-tolerates-gpu",
        node_selector: Some(r#"{"disk": "ssd"}"#),
        tolerations: Some(TOLERATE_GPU),
        feasible: &["n1", "n2"],
        ..UNCONSTRAINED
    },
    Case {
        pod: "hdd-or-nvme",
        affinity: Some(
            r#"{"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["nvme"]}]},
                {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd", "nvme"]},
                                      {"key": "kubernetes.io/os", "operator": "Exists"}]}]}}}"#,
        ),
        feasible: &["n3", "n4"],
        ..UNCONSTRAINED
    },
    Case {
        pod: "three-cpus",
        cpu: Some("3"),
        feasible: &["n1", "n3"],
        ..UNCONSTRAINED
    },
    Case {
        pod: "three-cpus-tolerates-gpu",
        cpu: Some("3"),
        tolerations: Some(TOLERATE_GPU),
        feasible: &["n1", "n2", "n3"],
        ..UNCONSTRAINED
    },
    Case {
        pod: "hungry",
        cpu: Some("1000"),
        ..UNCONSTRAINED
    },
    Case {
        pod: "wrong-disk",
        node_selector: Some(r#"{"disk": "nvme"}"#),
        ..UNCONSTRAINED
    },
    Case {
        pod: "fits",
        claims: &[Claim {
            name: "small",
            storage: "1Gi",
            volumes_on: &["n1", "n2"],
        }],
        feasible: &["n1"],
        ..UNCONSTRAINED
    },
    Case {
        pod: "too-big",
        claims: &[Claim {
            name: "big",
            storage: "20Gi",
            volumes_on: &["n1", "n3"],
        }],
        ..UNCONSTRAINED
    },
    Case {
        pod: "spread",
        claims: &[Claim {
            name: "spread",
            storage: "1Gi",
            volumes_on: &["n1", "n3", "n4"],
        }],
        feasible: &["n1", "n3", "n4"],
        ..UNCONSTRAINED
    },
    Case {
        pod: "volume-and-cpus",
        cpu: Some("3"),
        claims: &[Claim {
            name: "fast",
            storage: "1Gi",
            volumes_on: &["n3", "n4"],
        }],
        feasible: &["n3"],
        ..UNCONSTRAINED
    },
    Case {
        pod: "two-claims",
        tolerations: Some(TOLERATE_GPU),
        claims: &[
            Claim {
                name: "data",
                storage: "1Gi",
                volumes_on: &["n1", "n2", "n3", "n4"],
            },
            Claim {
                name: "logs",
                storage: "1Gi",
                volumes_on: &["n2", "n4", "n5"],
            },
        ],
        feasible: &["n2", "n4"],
        ..UNCONSTRAINED
    },
    Case {
        pod: "volume-on-tainted",
        claims: &[Claim {
            name: "tainted",
            storage: "1Gi",
            volumes_on: &["n2"],
        }],
        ..UNCONSTRAINED
    },
];

/// One copy of the scenario: the pods as they are in `default`, or each
/// pinned to one node in a namespace of its own. Classes and volumes are
/// cluster-wide, so a copy's are suffixed.
struct Copy {
    namespace: String,
    suffix: String,
    pin: Option<&'static str>,
}

fn copies() -> Vec<Copy> {
    let mut all = vec![Copy {
        namespace: "default".into(),
        suffix: String::new(),
        pin: None,
    }];
    all.extend(NODES.iter().map(|&n| Copy {
        namespace: format!("pin-{n}"),
        suffix: format!("-pin-{n}"),
        pin: Some(n),
    }));
    all
}

fn parse(fragment: &str) -> Value {
    serde_json::from_str(fragment).expect("a JSON fragment")
}

/// Namespaces, classes, volumes and claims of one copy.
fn storage_docs(copy: &Copy) -> Vec<Value> {
    let mut docs = Vec::new();
    if copy.namespace != "default" {
        docs.push(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": copy.namespace}}),
        );
    }
    for claim in CASES.iter().flat_map(|c| c.claims) {
        let class = format!("{}{}", claim.name, copy.suffix);
        docs.push(json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": class},
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "WaitForFirstConsumer",
        }));
        for node in claim.volumes_on {
            docs.push(json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": format!("pv-{class}-{node}")},
                "spec": {
                    "capacity": {"storage": "10Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": class,
                    "local": {"path": format!("/mnt/{}", claim.name)},
                    "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
                },
            }));
        }
        docs.push(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim.name, "namespace": copy.namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": class,
                "resources": {"requests": {"storage": claim.storage}},
            },
        }));
    }
    docs
}

fn pod_doc(copy: &Copy, case: &Case) -> Value {
    let mut spec = json!({
        "containers": [{"name": "c", "image": "registry.invalid/app:1"}],
    });
    if let Some(s) = case.node_selector {
        spec["nodeSelector"] = parse(s);
    }
    if let Some(pin) = copy.pin {
        spec["nodeSelector"]["kubernetes.io/hostname"] = json!(pin);
    }
    if let Some(t) = case.tolerations {
        spec["tolerations"] = parse(t);
    }
    if let Some(a) = case.affinity {
        spec["affinity"] = parse(a);
    }
    if let Some(cpu) = case.cpu {
        spec["containers"][0]["resources"] = json!({"requests": {"cpu": cpu}});
    }
    if !case.claims.is_empty() {
        spec["volumes"] = case
            .claims
            .iter()
            .map(|c| json!({"name": c.name, "persistentVolumeClaim": {"claimName": c.name}}))
            .collect();
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": case.pod, "namespace": copy.namespace},
        "spec": spec,
    })
}

/// Writes `docs` as one manifest in the control plane's directory.
fn manifest(cp: &ControlPlane, name: &str, docs: &[Value]) -> PathBuf {
    let file = cp.dir().join(name);
    let text: Vec<String> = docs.iter().map(Value::to_string).collect();
    std::fs::write(&file, text.join("\n---\n")).expect("write the manifest");
    file
}

fn berth(args: &[&str], kubeconfig: &Path) -> String {
    let out = Command::new(berth_bin())
        .args(args)
        .args(["--from-cluster", "--kubeconfig"])
        .arg(kubeconfig)
        .output()
        .expect("run berth");
    assert!(
        out.status.success(),
        "berth {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The nodes `berth explain pod` lists as passing every filter; every node
/// must be listed, passing or rejected by a named filter.
fn explained_feasible(text: &str) -> BTreeSet<String> {
    let mut in_nodes = false;
    let mut listed = BTreeSet::new();
    let mut feasible = BTreeSet::new();
    for line in text.lines() {
        if !line.starts_with("    ") {
            in_nodes = line == "  nodes:";
            continue;
        }
        if !in_nodes {
            continue;
        }
        let (node, verdict) = line
            .trim()
            .split_once(": ")
            .unwrap_or_else(|| panic!("a node line: {line:?}\n{text}"));
        if verdict == "passes every filter" {
            feasible.insert(node.to_string());
        } else {
            assert!(verdict.starts_with("rejected by "), "{line:?}\n{text}");
        }
        listed.insert(node.to_string());
    }
    let all: BTreeSet<String> = NODES.iter().map(|n| n.to_string()).collect();
    assert_eq!(listed, all, "every node is listed:\n{text}");
    feasible
}

/// Everything berth said, read while the scheduler was stopped.
struct Prediction {
    dry_run: Value,
    /// `berth explain pod` of each pod of the `default` copy.
    explained: BTreeMap<&'static str, String>,
}

fn predict(kubeconfig: &Path) -> Prediction {
    let dry_run = berth(&["dry-run", "-o", "json"], kubeconfig);
    let explained = CASES
        .iter()
        .map(|c| {
            let text = berth(&["explain", "pod", c.pod, "-n", "default"], kubeconfig);
            (c.pod, text)
        })
        .collect();
    Prediction {
        dry_run: serde_json::from_str(&dry_run).expect("JSON"),
        explained,
    }
}

/// What the scheduler has done with one pod so far.
#[derive(Debug, Default)]
struct Observed {
    node: Option<String>,
    /// The PodScheduled=False condition's message (its latest attempt).
    unschedulable: Option<String>,
    failed_events: Vec<String>,
}

async fn observe(pods: &Api<Pod>, events: &Api<Event>) -> BTreeMap<String, Observed> {
    let mut seen: BTreeMap<String, Observed> = BTreeMap::new();
    for pod in pods.list(&ListParams::default()).await.expect("pods").items {
        let key = format!(
            "{}/{}",
            pod.metadata.namespace.unwrap_or_default(),
            pod.metadata.name.unwrap_or_default()
        );
        let o = seen.entry(key).or_default();
        o.node = pod.spec.and_then(|s| s.node_name);
        o.unschedulable = pod
            .status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            .and_then(|c| c.message);
    }
    let failed = ListParams::default().fields("reason=FailedScheduling");
    for e in events.list(&failed).await.expect("events").items {
        let o = &e.involved_object;
        let key = format!(
            "{}/{}",
            o.namespace.clone().unwrap_or_default(),
            o.name.clone().unwrap_or_default()
        );
        if let (Some(entry), Some(m)) = (seen.get_mut(&key), e.message) {
            entry.failed_events.push(m);
        }
    }
    seen
}

/// The PV a claim is bound to, and the node that volume is on.
async fn claim_volume(
    client: &kube::Client,
    namespace: &str,
    claim: &str,
) -> (String, Option<String>) {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let volume = claims
        .get(claim)
        .await
        .expect("claim")
        .spec
        .and_then(|s| s.volume_name)
        .unwrap_or_else(|| panic!("{namespace}/{claim} is bound once its pod is"));
    let pv = Api::<PersistentVolume>::all(client.clone())
        .get(&volume)
        .await
        .expect("volume");
    let node = pv
        .spec
        .and_then(|s| s.node_affinity)
        .and_then(|a| a.required)
        .and_then(|r| r.node_selector_terms.into_iter().next())
        .and_then(|t| t.match_expressions.into_iter().flatten().next())
        .and_then(|e| e.values.into_iter().flatten().next());
    (volume, node)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_predicts_what_kube_scheduler_does() {
    let started = Instant::now();
    let cp = ControlPlane::start_with(Options::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client = cp.client().await.expect("client");
    let nodes: Api<Node> = Api::all(client.clone());
    for (name, disk) in [
        ("n1", "ssd"),
        ("n2", "ssd"),
        ("n3", "hdd"),
        ("n4", "hdd"),
        ("n5", "ssd"),
    ] {
        let labels = BTreeMap::from([("disk".to_string(), disk.to_string())]);
        cp.create_node(name, &labels).await.expect("node");
        let cpu = if name == "n4" { "2" } else { "100" };
        let status = json!({"status": {"capacity": {"cpu": cpu}, "allocatable": {"cpu": cpu}}});
        nodes
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("node cpus");
    }
    let patch = |spec: Value| Patch::Merge(json!({ "spec": spec }));
    nodes
        .patch(
            "n5",
            &PatchParams::default(),
            &patch(json!({"unschedulable": true})),
        )
        .await
        .expect("cordon n5");
    nodes
        .patch(
            "n2",
            &PatchParams::default(),
            &patch(json!({"taints": [{"key": "gpu", "effect": "NoSchedule"}]})),
        )
        .await
        .expect("taint n2");

    // Storage first, while the scheduler runs, so that its caches hold the
    // claims and volumes before the pods arrive.
    let copies = copies();
    let storage: Vec<Value> = copies.iter().flat_map(storage_docs).collect();
    cp.apply_file(&manifest(&cp, "storage.yaml", &storage))
        .await
        .expect("apply the storage");
    // Pods need their namespace's default ServiceAccount (made by the
    // controller manager).
    for copy in &copies {
        let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &copy.namespace);
        let deadline = Instant::now() + Duration::from_secs(20);
        while accounts.get_opt("default").await.expect("get").is_none() {
            assert!(
                Instant::now() < deadline,
                "no ServiceAccount in {}",
                copy.namespace
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // Hold the scheduler while the pods arrive and berth reads the cluster.
    let scheduler = cp.pid_of("kube-scheduler").expect("kube-scheduler runs");
    let signal = |sig| kill(Pid::from_raw(scheduler as i32), sig).expect("signal the scheduler");
    let pods: Vec<Value> = copies
        .iter()
        .flat_map(|copy| CASES.iter().map(move |case| pod_doc(copy, case)))
        .collect();
    signal(Signal::SIGSTOP);
    let applied = cp.apply_file(&manifest(&cp, "pods.yaml", &pods)).await;
    let predicted = applied
        .as_ref()
        .ok()
        .map(|_| std::panic::catch_unwind(AssertUnwindSafe(|| predict(&cp.kubeconfig))));
    signal(Signal::SIGCONT);
    applied.expect("apply the pods");
    let Prediction { dry_run, explained } = predicted
        .expect("predicted")
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    let predicted_at = started.elapsed();

    // berth's verdict for every pod (originals and pinned copies).
    let scheduling: BTreeMap<String, &Value> = dry_run["scheduling"]
        .as_array()
        .expect("scheduling")
        .iter()
        .map(|s| (s["pod"].as_str().expect("pod").to_string(), s))
        .collect();
    let verdict = |ns: &str, pod: &str| -> &Value {
        scheduling
            .get(&format!("{ns}/{pod}"))
            .unwrap_or_else(|| panic!("no prediction for {ns}/{pod}: {dry_run:#}"))
    };
    let predicted_volume = |claim: String| -> Option<String> {
        dry_run["bindings"]
            .as_array()
            .expect("bindings")
            .iter()
            .find(|b| b["claim"] == claim.as_str())
            .map(|b| b["volume"].as_str().expect("volume").to_string())
    };

    // berth's feasible set of each pod: the scenario's, told the same way
    // by `explain` and by `dry-run`, and by the pinned copies (a copy pinned
    // to a node is placed there exactly when the node is feasible).
    let mut feasible: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for case in CASES {
        let text = &explained[case.pod];
        let set = explained_feasible(text);
        let expected: BTreeSet<String> = case.feasible.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            set, expected,
            "{}: berth's feasible nodes\n{text}",
            case.pod
        );
        let v = verdict("default", case.pod);
        assert_eq!(v["feasibleNodes"], set.len(), "{}: {v}\n{text}", case.pod);
        match v["node"].as_str() {
            Some(node) => assert!(set.contains(node), "{}: {v}\n{text}", case.pod),
            None => assert!(set.is_empty(), "{}: {v}", case.pod),
        }
        for copy in copies.iter().filter(|c| c.pin.is_some()) {
            let pin = copy.pin.expect("pinned");
            let v = verdict(&copy.namespace, case.pod);
            let placed = v["node"].as_str();
            assert_eq!(
                placed,
                set.contains(pin).then_some(pin),
                "{}/{}: pinned copy, {v}\nunpinned:\n{text}",
                copy.namespace,
                case.pod
            );
        }
        feasible.insert(case.pod, set);
    }

    // Let the scheduler try every pod: a pod berth places must get a node
    // (a FailedScheduling on the way can be the scheduler's caches still
    // filling after SIGCONT: it retries), a pod berth does not place must
    // fail with berth's words and get no node.
    let all_pods: Api<Pod> = Api::all(client.clone());
    let all_events: Api<Event> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(40);
    let observed = loop {
        let observed = observe(&all_pods, &all_events).await;
        let mut waiting = Vec::new();
        for (key, v) in &scheduling {
            let o = observed
                .get(key)
                .unwrap_or_else(|| panic!("berth predicted a pod that does not exist: {key}"));
            let unschedulable = v["node"]
                .is_null()
                .then(|| v["reason"].as_str().expect("a reason"));
            match unschedulable {
                None => {
                    if o.node.is_none() {
                        waiting.push(format!("{key}: not bound yet ({o:?})"));
                    }
                }
                Some(reason) => {
                    assert_eq!(
                        o.node, None,
                        "{key}: berth predicted unschedulable ({reason:?}), the scheduler bound it"
                    );
                    let said = |m: &String| m.starts_with(reason);
                    if !o.unschedulable.as_ref().is_some_and(said)
                        || !o.failed_events.iter().any(said)
                    {
                        waiting.push(format!(
                            "{key}: no FailedScheduling starting with berth's {reason:?} yet ({o:?})"
                        ));
                    }
                }
            }
        }
        if waiting.is_empty() {
            break observed;
        }
        assert!(
            Instant::now() < deadline,
            "the scheduler disagrees with berth:\n{}\n{}",
            waiting.join("\n"),
            cp.logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let predicted_pods: BTreeSet<&String> = scheduling.keys().collect();
    let existing: BTreeSet<&String> = observed.keys().collect();
    assert_eq!(predicted_pods, existing, "berth predicts every pending pod");

    // Where the scheduler put each pod: in berth's feasible set; on berth's
    // node when that set has one node; its claims on the volumes berth
    // would bind on that node (one per class and node).
    let mut landed = Vec::new();
    for copy in &copies {
        for case in CASES {
            let key = format!("{}/{}", copy.namespace, case.pod);
            let Some(node) = observed[&key].node.clone() else {
                continue;
            };
            let set = &feasible[case.pod];
            assert!(
                set.contains(&node),
                "{key}: the scheduler chose {node}, berth's feasible nodes are {set:?}"
            );
            if let Some(pin) = copy.pin {
                assert_eq!(node, pin, "{key}");
            }
            let berths_node = verdict(&copy.namespace, case.pod)["node"]
                .as_str()
                .expect("berth places it");
            if set.len() == 1 {
                assert_eq!(node, berths_node, "{key}: its one feasible node");
            }
            for claim in case.claims {
                let (volume, on) = claim_volume(&client, &copy.namespace, claim.name).await;
                assert_eq!(on.as_deref(), Some(node.as_str()), "{key}: {volume}");
                if node == berths_node {
                    let predicted = predicted_volume(format!("{}/{}", copy.namespace, claim.name));
                    assert_eq!(predicted.as_deref(), Some(volume.as_str()), "{key}");
                }
            }
            if copy.pin.is_none() {
                landed.push(format!("{} on {node}", case.pod));
            }
        }
    }

    // The pods left unschedulable are berth's, still without a node now
    // that every other pod is placed.
    let now = observe(&all_pods, &all_events).await;
    let unscheduled: BTreeSet<&String> = now
        .iter()
        .filter(|(_, o)| o.node.is_none())
        .map(|(k, _)| k)
        .collect();
    let berth_unscheduled: BTreeSet<&String> = scheduling
        .iter()
        .filter(|(_, v)| v["node"].is_null())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(unscheduled, berth_unscheduled);
    eprintln!(
        "predicted after {predicted_at:?}, checked after {:?}: {} of {} pods unschedulable; {}",
        started.elapsed(),
        unscheduled.len(),
        scheduling.len(),
        landed.join(", ")
    );
}
