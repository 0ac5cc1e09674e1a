//! `berth dry-run` and `berth explain` as a user runs them: the JSON contract,
//! the exit codes, and errors that name the document, object, field and value.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use berth_tests::{berth_bin, repo_root};
use serde_json::Value;

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(berth_bin())
        .args(args)
        .current_dir(repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait berth")
}

fn json(args: &[&str], stdin: Option<&str>) -> Value {
    let out = run(args, stdin);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is exactly one JSON object")
}

#[test]
fn json_contract_has_every_key_with_its_shape() {
    let v = json(&["dry-run", "-f", "examples/demo", "-o", "json"], None);
    for key in [
        "bindings",
        "provisioning",
        "pending",
        "rejected",
        "reclaim",
        "violations",
        "warnings",
        "scheduling",
    ] {
        assert!(v[key].is_array(), "missing array {key}");
    }
    assert!(
        v["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["claim"] == "shop/media" && b["volume"] == "nfs-01")
    );
    let db = v["provisioning"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["claim"] == "shop/db")
        .expect("db provisioned");
    assert_eq!(db["storageClass"], "fast");
    assert_eq!(db["provisioner"], "kubernetes.io/aws-ebs");
    assert!(db["node"].is_null());
    let cache = v["provisioning"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["claim"] == "shop/cache")
        .expect("cache provisioned");
    assert_eq!(cache["node"], "node-a");
    assert!(
        v["pending"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["claim"].is_string() && p["reason"].is_string())
    );
    let huge = v["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["object"] == "shop/huge")
        .expect("huge rejected");
    assert_eq!(huge["kind"], "PersistentVolumeClaim");
    let reclaim: Vec<(String, String, String)> = v["reclaim"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["volume"].as_str().unwrap().into(),
                r["policy"].as_str().unwrap().into(),
                r["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        reclaim,
        [
            ("archive-2025".into(), "Recycle".into(), "recycle".into()),
            ("pvc-0b7e".into(), "Delete".into(), "delete".into())
        ]
    );
    let viol = &v["violations"][0];
    assert_eq!(
        (
            viol["node"].as_str(),
            viol["driver"].as_str(),
            viol["limit"].as_u64(),
            viol["count"].as_u64()
        ),
        (Some("node-a"), Some("csi.berth.dev"), Some(2), Some(4))
    );
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("encryptd"))
    );
}

#[test]
fn output_is_deterministic_and_yaml_matches_json() {
    let a = run(&["dry-run", "-f", "examples/demo", "-o", "json"], None);
    let b = run(&["dry-run", "-f", "examples/demo", "-o", "json"], None);
    assert_eq!(a.stdout, b.stdout);
    let y = run(&["dry-run", "-f", "examples/demo", "-o", "yaml"], None);
    assert!(y.status.success());
    let from_yaml: Value = serde_json::to_value(
        berth::manifest::parse_str("out", &String::from_utf8_lossy(&y.stdout))
            .expect("yaml parses")[0]
            .value
            .clone(),
    )
    .expect("value");
    let from_json: Value = serde_json::from_slice(&a.stdout).expect("json");
    assert_eq!(from_yaml, from_json);
}

#[test]
fn table_shows_reasons_and_near_misses() {
    let out = run(&["dry-run", "-f", "examples/seed/pv-and-claim.yaml"], None);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("default/myclaim"), "{text}");
    assert!(text.contains("Pending"), "{text}");
    assert!(text.contains("pv0003: 5Gi < 8Gi requested"), "{text}");
}

#[test]
fn stdin_lists_and_json_input() {
    let list = r#"{"apiVersion":"v1","kind":"List","items":[
      {"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"p"},"spec":{"capacity":{"storage":"2Gi"},"accessModes":["ReadWriteOnce"],"hostPath":{"path":"/x"}}},
      {"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"c","namespace":"ns"},"spec":{"storageClassName":"","accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Gi"}}}},
      {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ignored"}}]}"#;
    let v = json(&["dry-run", "-f", "-", "-o", "json"], Some(list));
    assert_eq!(v["bindings"][0]["claim"], "ns/c");
    assert_eq!(v["bindings"][0]["volume"], "p");
    assert!(
        v["warnings"][0]
            .as_str()
            .unwrap()
            .contains("ignoring ConfigMap")
    );
}

#[test]
fn bad_input_exits_2_naming_document_object_field_and_value() {
    let cases = [
        (
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: big\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 12XB\n",
            &[
                "-: document 2",
                "PersistentVolumeClaim big",
                "spec.resources.requests.storage",
                "\"12XB\"",
            ][..],
        ),
        (
            "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: p\nspec:\n  accessModes: [ReadWriteSometimes]\n",
            &[
                "PersistentVolume p",
                "spec.accessModes[0]",
                "ReadWriteSometimes",
            ][..],
        ),
        (
            "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: p\nspec:\n  capacity: [1, 2]\n",
            &["PersistentVolume p", "spec.capacity"][..],
        ),
        (
            "kind: [unclosed\n",
            &["-: document 1", "not valid YAML"][..],
        ),
        (
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {}\n",
            &["metadata.name", "Required value"][..],
        ),
        ("just a string\n", &["expected an object"][..]),
        // The API server's name and label checks, in its words.
        (
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: Bad_Name!\n",
            &[
                "PersistentVolumeClaim Bad_Name!",
                "metadata.name: Invalid value: \"Bad_Name!\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters",
            ][..],
        ),
        (
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: web.v2\n",
            &["metadata.name: Invalid value: \"web.v2\": must not contain dots"][..],
        ),
        (
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels:\n    zone: eu west\n",
            &[
                "Node n1",
                "metadata.labels: Invalid value: \"eu west\": a valid label must be an empty string",
            ][..],
        ),
    ];
    for (input, needles) in cases {
        let out = run(&["dry-run", "-f", "-"], Some(input));
        assert_eq!(out.status.code(), Some(2), "input {input:?}");
        assert!(out.stdout.is_empty(), "nothing on stdout for bad input");
        let err = String::from_utf8_lossy(&out.stderr);
        for n in needles {
            assert!(err.contains(n), "stderr {err:?} lacks {n:?}");
        }
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = run(&["dry-run", "-f", "does/not/exist.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn explain_prints_the_reasoning_for_one_claim() {
    let out = run(
        &[
            "explain",
            "pvc",
            "myclaim",
            "-n",
            "default",
            "-f",
            "examples/seed/pv-and-claim.yaml",
        ],
        None,
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "PersistentVolumeClaim default/myclaim",
        "wants: 8Gi",
        "class \"slow\"",
        "decision: Pending",
        "pv0003: 5Gi < 8Gi requested; labels do not match",
    ] {
        assert!(text.contains(needle), "{text} lacks {needle}");
    }
    let out = run(
        &[
            "explain",
            "pvc",
            "cache",
            "-n",
            "shop",
            "-f",
            "examples/demo",
        ],
        None,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("-> \"standard\" (DefaultStorageClass)"),
        "{text}"
    );
    assert!(text.contains("on node node-a"), "{text}");
    let out = run(&["explain", "pvc", "nope", "-f", "examples/demo"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn from_cluster_errors_name_the_kubeconfig_and_the_missing_input() {
    let out = run(
        &[
            "dry-run",
            "--from-cluster",
            "--kubeconfig",
            "/nonexistent/berth.kubeconfig",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reading kubeconfig /nonexistent/berth.kubeconfig"),
        "{err}"
    );
    // Neither manifests nor a cluster: a usage error, not an empty plan.
    let out = run(&["dry-run"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--filename"));
}

// --- `kubectl berth`: the binary installed as a kubectl plugin (issue 11).

/// A directory holding `kubectl-berth`, a symlink to the berth under test,
/// as `ln -s $(command -v berth) ~/.local/bin/kubectl-berth` makes it.
fn plugin_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::os::unix::fs::symlink(berth_bin(), dir.path().join("kubectl-berth"))
        .expect("symlink kubectl-berth");
    dir
}

/// Runs `program` with `args` in an environment without a kubeconfig or an
/// in-cluster service (HOME is an empty directory), plus `env`.
fn run_isolated(program: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().expect("temp home");
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(repo_root())
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("HOME", home.path())
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run")
}

/// A kubeconfig whose one cluster is a closed port: reading it needs no
/// server, talking to it fails at once.
fn dead_kubeconfig(dir: &std::path::Path, name: &str, contexts: &[(&str, Option<&str>)]) -> String {
    let mut yaml = String::from(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: nowhere\n  cluster:\n    server: https://127.0.0.1:1\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n",
    );
    for (ctx, ns) in contexts {
        yaml.push_str(&format!(
            "- name: {ctx}\n  context:\n    cluster: nowhere\n    user: u\n"
        ));
        if let Some(ns) = ns {
            yaml.push_str(&format!("    namespace: {ns}\n"));
        }
    }
    if let Some((first, _)) = contexts.first() {
        yaml.push_str(&format!("current-context: {first}\n"));
    }
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write kubeconfig");
    path.display().to_string()
}

#[test]
fn plugin_mode_help_says_kubectl_berth() {
    let dir = plugin_dir();
    let plugin = dir.path().join("kubectl-berth");
    let out = run_isolated(&plugin, &["dry-run", "--help"], &[]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Usage: kubectl berth dry-run"), "{help}");
    assert!(help.contains("--context <CONTEXT>"), "{help}");
    assert!(help.contains("-A, --all-namespaces"), "{help}");
    assert!(help.contains("(the default)"), "{help}");
    let out = run_isolated(&plugin, &["--help"], &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: kubectl berth "));
    // The same binary under its own name keeps its own name.
    let out = run_isolated(&berth_bin(), &["dry-run", "--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Usage: berth dry-run"), "{help}");
    // A usage error names the command the user typed.
    let out = run_isolated(&plugin, &["dry-run", "-n", "a", "-A"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kubectl berth dry-run"), "{err}");
}

#[test]
fn plugin_mode_reads_the_cluster_by_default_and_only_files_with_f() {
    let dir = plugin_dir();
    let plugin = dir.path().join("kubectl-berth");
    // No kubeconfig and not in a cluster: the cluster was what it tried.
    let out = run_isolated(&plugin, &["dry-run"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in-cluster") && err.contains("kubeconfig"),
        "{err}"
    );
    // `-f` alone is kubectl's local files: no cluster needed, same plan.
    let out = run_isolated(
        &plugin,
        &["dry-run", "-f", "examples/demo", "-o", "json"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plain = run(&["dry-run", "-f", "examples/demo", "-o", "json"], None);
    assert_eq!(out.stdout, plain.stdout);
    // Plain berth keeps its contract: an input must be named.
    let out = run_isolated(&berth_bin(), &["dry-run"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--filename") && err.contains("--from-cluster"),
        "{err}"
    );
    // A cluster flag where no cluster is read is a usage error, not ignored.
    for (program, flag) in [(berth_bin(), "--context"), (plugin.clone(), "--kubeconfig")] {
        let out = run_isolated(
            &program,
            &["dry-run", "-f", "examples/demo", flag, "x"],
            &[],
        );
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(flag) && err.contains("add --from-cluster"),
            "{err}"
        );
    }
}

#[test]
fn unknown_context_is_an_error_naming_it_and_the_kubeconfig() {
    let dir = plugin_dir();
    let plugin = dir.path().join("kubectl-berth");
    let kc = dead_kubeconfig(
        dir.path(),
        "a.kubeconfig",
        &[("dev", Some("team-a")), ("prod", None)],
    );
    for program in [plugin.clone(), berth_bin()] {
        let out = run_isolated(
            &program,
            &[
                "dry-run",
                "--from-cluster",
                "--kubeconfig",
                &kc,
                "--context",
                "nope",
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "kubeconfig {kc}: no context \"nope\" (its contexts: dev, prod)"
            )),
            "{err}"
        );
    }
    // $KUBECONFIG lists several files, merged as kubectl merges them: a
    // context of the second file is found, and the error then is the
    // dead server's, naming it and the context.
    let other = dead_kubeconfig(dir.path(), "b.kubeconfig", &[("staging", None)]);
    let list = format!("{kc}:{other}");
    let out = run_isolated(
        &plugin,
        &["explain", "pvc", "x", "--context", "staging"],
        &[("KUBECONFIG", &list)],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reading the cluster at https://127.0.0.1:1/ (context staging)"),
        "{err}"
    );
    let out = run_isolated(
        &plugin,
        &["explain", "pvc", "x", "--context", "nope"],
        &[("KUBECONFIG", &list)],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no context \"nope\" (its contexts: dev, prod, staging)"),
        "{err}"
    );
}

#[test]
fn namespace_narrows_the_report_not_the_plan() {
    // A second namespace beside the demo's shop: a claim bound to a static
    // volume, and a released volume of one of its claims.
    let team_b = r#"
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-team-b}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  hostPath: {path: /b}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-team-b-old}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  persistentVolumeReclaimPolicy: Retain
  claimRef: {namespace: team-b, name: gone, uid: 11111111-2222-4333-8444-555555555555}
  hostPath: {path: /b-old}
status: {phase: Bound}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: team-b}
spec:
  storageClassName: ""
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"#;
    let all = json(
        &["dry-run", "-f", "examples/demo", "-f", "-", "-o", "json"],
        Some(team_b),
    );
    let shop = json(
        &[
            "dry-run",
            "-f",
            "examples/demo",
            "-f",
            "-",
            "-n",
            "shop",
            "-o",
            "json",
        ],
        Some(team_b),
    );
    let b = json(
        &[
            "dry-run",
            "-f",
            "examples/demo",
            "-f",
            "-",
            "-n",
            "team-b",
            "-o",
            "json",
        ],
        Some(team_b),
    );
    let keys =
        |v: &Value| -> Vec<String> { v.as_object().expect("object").keys().cloned().collect() };
    assert_eq!(
        keys(&shop),
        keys(&all),
        "same keys: filtering only removes entries"
    );
    let items = |v: &Value, key: &str, field: &str| -> Vec<String> {
        v[key]
            .as_array()
            .expect(key)
            .iter()
            .map(|e| e[field].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(items(&b, "bindings", "claim"), ["team-b/data"]);
    assert_eq!(items(&b, "reclaim", "volume"), ["pv-team-b-old"]);
    for key in ["provisioning", "pending", "rejected"] {
        assert!(
            b[key].as_array().expect(key).is_empty(),
            "{key}: {}",
            b[key]
        );
    }
    for (key, field) in [
        ("bindings", "claim"),
        ("provisioning", "claim"),
        ("pending", "claim"),
        ("rejected", "object"),
    ] {
        let names = items(&shop, key, field);
        assert!(
            names.iter().all(|n| n.starts_with("shop/")),
            "{key}: {names:?}"
        );
        let expected: Vec<String> = items(&all, key, field)
            .into_iter()
            .filter(|n| n.starts_with("shop/"))
            .collect();
        assert_eq!(names, expected, "{key}: every shop entry of the whole plan");
    }
    assert!(items(&shop, "rejected", "object").contains(&"shop/huge".to_string()));
    assert_eq!(
        items(&shop, "reclaim", "volume"),
        ["archive-2025", "pvc-0b7e"]
    );
    // Node limits and warnings are the whole cluster's.
    for v in [&shop, &b] {
        assert_eq!(v["violations"], all["violations"]);
        assert_eq!(v["warnings"], all["warnings"]);
    }
    // `-A` is the default, spelled out.
    let a = json(
        &[
            "dry-run",
            "-f",
            "examples/demo",
            "-f",
            "-",
            "-A",
            "-o",
            "json",
        ],
        Some(team_b),
    );
    assert_eq!(a, all);
}

/// Two pods without a node: one fits on n1 (its local volume is there),
/// the other finds no volume left on n1 and n2 is tainted.
const UNSCHEDULED: &str = r#"apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {kubernetes.io/hostname: n1}}
---
apiVersion: v1
kind: Node
metadata: {name: n2, labels: {kubernetes.io/hostname: n2}}
spec:
  taints: [{key: gpu, effect: NoSchedule}]
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-n1}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: local
  local: {path: /mnt/a}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [n1]}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, namespace: shop}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: local
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: more, namespace: shop}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: local
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  containers: [{name: c, image: nginx}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop}
spec:
  containers: [{name: c, image: nginx}]
  volumes: [{name: d, persistentVolumeClaim: {claimName: more}}]
"#;

#[test]
fn pods_without_a_node_are_scheduled_and_explained() {
    let v = json(&["dry-run", "-f", "-", "-o", "json"], Some(UNSCHEDULED));
    let scheduling = v["scheduling"].as_array().expect("scheduling");
    assert_eq!(scheduling.len(), 2, "{v:#}");
    assert_eq!(scheduling[0]["pod"], "shop/web");
    assert_eq!(scheduling[0]["node"], "n1");
    assert_eq!(scheduling[0]["feasibleNodes"], 1);
    assert!(scheduling[0]["reason"].is_null());
    assert_eq!(scheduling[1]["pod"], "shop/api");
    assert!(scheduling[1]["node"].is_null());
    assert_eq!(scheduling[1]["feasibleNodes"], 0);
    assert_eq!(
        scheduling[1]["reason"],
        "0/2 nodes are available: 1 node(s) didn't find available persistent volumes to bind, 1 node(s) had untolerated taint(s)."
    );
    // The claim of the scheduled pod is bound on its node.
    assert!(
        v["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["claim"] == "shop/data"
                && b["volume"] == "pv-n1"
                && b["how"] == "scheduler")
    );

    let out = run(
        &["explain", "pod", "api", "-n", "shop", "-f", "-"],
        Some(UNSCHEDULED),
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "Pod shop/api",
        "  unschedulable: 0/2 nodes are available:",
        "    n1: rejected by VolumeBinding: node(s) didn't find available persistent volumes to bind",
        "    n2: rejected by TaintToleration: node(s) had untolerated taint(s)",
        "    more: pending: waiting for pod shop/api to be scheduled",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    let out = run(
        &["explain", "pod", "web", "-n", "shop", "-f", "-"],
        Some(UNSCHEDULED),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("  scheduled to node n1 by berth: 1 of 2 nodes"),
        "{text}"
    );
    assert!(text.contains("    data: bound to volume pv-n1"), "{text}");
    let out = run(
        &["explain", "pod", "nope", "-n", "shop", "-f", "-"],
        Some(UNSCHEDULED),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Pod shop/nope is not in the input"));
}
