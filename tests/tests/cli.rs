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
